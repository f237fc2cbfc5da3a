//! The test-time views of an image (manifest `retrieval.image_views`): names and the pixels each shows.

/// Where a zoomed view crops (see [`ImageView`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Zoom {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
    Centre,
}

impl Zoom {
    pub const ALL: [Zoom; 5] = [Zoom::TopLeft, Zoom::TopRight, Zoom::BottomLeft, Zoom::BottomRight, Zoom::Centre];

    fn tag(self) -> &'static str {
        match self {
            Zoom::TopLeft => "tl",
            Zoom::TopRight => "tr",
            Zoom::BottomLeft => "bl",
            Zoom::BottomRight => "br",
            Zoom::Centre => "c",
        }
    }
}

/// One test-time view of an image (manifest `retrieval.image_views`): the network's usual input (the centred
/// square of the shorter side) or a zoom into it — a square of [`ImageView::ZOOM_SIDE`] of its side at a corner
/// or the centre, scaled back up to the input size — optionally mirrored. Names: `original`, `flipped`,
/// `zoom-tl`, `zoom-tl-flipped`, … (`tl tr bl br c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageView {
    pub zoom: Option<Zoom>,
    pub flipped: bool,
}

impl ImageView {
    pub const ORIGINAL: ImageView = ImageView { zoom: None, flipped: false };
    pub const FLIPPED: ImageView = ImageView { zoom: None, flipped: true };
    /// The valid names, for error messages.
    pub const NAMES: &'static str = "original, flipped, zoom-tl, zoom-tr, zoom-bl, zoom-br, zoom-c, each optionally with -flipped";
    /// Side of a zoomed crop as a fraction of the centred square's side.
    pub const ZOOM_SIDE: f32 = 0.8;

    pub fn zoomed(zoom: Zoom, flipped: bool) -> Self {
        ImageView { zoom: Some(zoom), flipped }
    }

    pub fn name(&self) -> String {
        match (self.zoom, self.flipped) {
            (None, false) => "original".into(),
            (None, true) => "flipped".into(),
            (Some(z), false) => format!("zoom-{}", z.tag()),
            (Some(z), true) => format!("zoom-{}-flipped", z.tag()),
        }
    }

    /// Every view: original, flipped, then each zoom and its mirror.
    pub fn all() -> Vec<ImageView> {
        let mut all = vec![ImageView::ORIGINAL, ImageView::FLIPPED];
        all.extend(Zoom::ALL.iter().flat_map(|&z| [ImageView::zoomed(z, false), ImageView::zoomed(z, true)]));
        all
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::all().into_iter().find(|v| v.name() == name)
    }

    /// The region `(x, y, side)` of a `w`×`h` image this view shows the network, before the usual resize to
    /// the input size (the whole centred square for `original` / `flipped`).
    pub fn crop_rect(&self, w: u32, h: u32) -> (u32, u32, u32) {
        let s = w.min(h);
        let (x0, y0) = ((w - s) / 2, (h - s) / 2);
        let Some(zoom) = self.zoom else { return (x0, y0, s) };
        let z = ((s as f32 * Self::ZOOM_SIDE).round() as u32).clamp(1, s);
        let (dx, dy) = match zoom {
            Zoom::TopLeft => (0, 0),
            Zoom::TopRight => (s - z, 0),
            Zoom::BottomLeft => (0, s - z),
            Zoom::BottomRight => (s - z, s - z),
            Zoom::Centre => ((s - z) / 2, (s - z) / 2),
        };
        (x0 + dx, y0 + dy, z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_dir::Retrieval;

    /// Every view name round-trips; crops are squares inside the centred square, at the right corner.
    #[test]
    fn image_views_name_and_crop() {
        let all = ImageView::all();
        let names: std::collections::BTreeSet<String> = all.iter().map(ImageView::name).collect();
        assert_eq!(names.len(), 12, "{names:?}");
        for v in &all {
            assert_eq!(ImageView::parse(&v.name()), Some(*v));
        }
        assert_eq!(ImageView::parse("zoom-c-flipped"), Some(ImageView::zoomed(Zoom::Centre, true)));
        assert_eq!(ImageView::parse("mirror"), None);
        // a 500×375 landscape: the network sees the centred 375² square at x 62; zooms are 300² inside it
        assert_eq!(ImageView::ORIGINAL.crop_rect(500, 375), (62, 0, 375));
        assert_eq!(ImageView::FLIPPED.crop_rect(500, 375), (62, 0, 375));
        assert_eq!(ImageView::zoomed(Zoom::TopLeft, false).crop_rect(500, 375), (62, 0, 300));
        assert_eq!(ImageView::zoomed(Zoom::TopRight, true).crop_rect(500, 375), (137, 0, 300));
        assert_eq!(ImageView::zoomed(Zoom::BottomLeft, false).crop_rect(500, 375), (62, 75, 300));
        assert_eq!(ImageView::zoomed(Zoom::BottomRight, false).crop_rect(500, 375), (137, 75, 300));
        assert_eq!(ImageView::zoomed(Zoom::Centre, false).crop_rect(500, 375), (99, 37, 300));
        // portrait and tiny images stay inside
        assert_eq!(ImageView::zoomed(Zoom::BottomRight, false).crop_rect(224, 300), (45, 83, 179));
        assert_eq!(ImageView::zoomed(Zoom::Centre, false).crop_rect(1, 1), (0, 0, 1));
        let r = Retrieval::recommended();
        assert_eq!(r.views().unwrap()[..2], [ImageView::ORIGINAL, ImageView::FLIPPED]);
    }
}
