//! Fit the layout: which pictures a writer can place — their orientation, their size and what their licence
//! allows — from each gallery item's `width`, `height` and `licence_id` (README "Gallery"). A filter never
//! assumes what an item does not say: a picture without a recorded size fails a size or orientation filter,
//! and an unknown licence fails every licence filter. The user's own photos pass licence filters (they are
//! theirs) and, having no recorded size, fail the others.

use serde::{Deserialize, Serialize};

use crate::gallery::{licence_info, normalise_licence, GalleryItem, UNKNOWN_LICENCE};

/// A picture whose sides differ by at most this share of the longer one counts as square (a 1000 × 920 photo
/// is square; 1000 × 880 is landscape).
pub const SQUARE_TOLERANCE: f32 = 0.1;
/// Largest `min_side` accepted (pixels): beyond any camera.
pub const MAX_MIN_SIDE: u32 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Orientation {
    Landscape,
    Portrait,
    Square,
}

impl Orientation {
    pub fn of(width: u32, height: u32) -> Self {
        let (w, h) = (width as f32, height as f32);
        if (w - h).abs() <= SQUARE_TOLERANCE * w.max(h) {
            Orientation::Square
        } else if w > h {
            Orientation::Landscape
        } else {
            Orientation::Portrait
        }
    }
}

impl std::str::FromStr for Orientation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "landscape" => Ok(Self::Landscape),
            "portrait" => Ok(Self::Portrait),
            "square" => Ok(Self::Square),
            _ => Err(format!("orientation must be landscape, portrait or square, got {s:?}")),
        }
    }
}

/// What the licence must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LicenceNeed {
    /// Public domain or CC0: no conditions at all.
    #[serde(rename = "pd")]
    PublicDomain,
    /// Commercial use allowed (a credit may still be required).
    #[serde(rename = "commercial")]
    Commercial,
    /// Commercial use allowed, and no share-alike (an adapted picture need not carry the same licence).
    #[serde(rename = "nosa")]
    CommercialNoShareAlike,
}

impl std::str::FromStr for LicenceNeed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pd" => Ok(Self::PublicDomain),
            "commercial" => Ok(Self::Commercial),
            "nosa" => Ok(Self::CommercialNoShareAlike),
            _ => Err(format!("licence must be pd (public domain / CC0), commercial or nosa (commercial, no share-alike), got {s:?}")),
        }
    }
}

impl LicenceNeed {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PublicDomain => "pd",
            Self::Commercial => "commercial",
            Self::CommercialNoShareAlike => "nosa",
        }
    }
}

/// What a picture has to fit. The default accepts every picture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orientation: Option<Orientation>,
    /// Both sides at least this many pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_side: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence: Option<LicenceNeed>,
}

/// What a filter reads of one picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// A licence id of `gallery::LICENCES` (an id it does not know reads as `unknown`); `None` for the user's
    /// own photos.
    pub licence_id: Option<&'static str>,
    /// One of the user's own photos.
    pub own: bool,
}

impl Layout {
    /// A gallery item's: its `licence_id`, or (galleries published before it) its `licence` text normalised.
    pub fn of(item: &GalleryItem) -> Self {
        let id = item.licence_id.as_deref().or_else(|| normalise_licence(&item.licence)).unwrap_or(UNKNOWN_LICENCE);
        Layout { width: item.width, height: item.height, licence_id: Some(licence_info(id).id), own: false }
    }

    /// One of the user's own photos: no recorded size, their own licence.
    pub fn own_photo() -> Self {
        Layout { width: None, height: None, licence_id: None, own: true }
    }
}

impl LayoutFilter {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Refuses a filter that can match nothing useful (`min_side` 0 or absurd).
    pub fn check(&self) -> Result<(), String> {
        match self.min_side {
            Some(m) if m == 0 || m > MAX_MIN_SIDE => Err(format!("the minimum size must be 1 to {MAX_MIN_SIDE} pixels, got {m}")),
            _ => Ok(()),
        }
    }

    pub fn accepts(&self, l: &Layout) -> bool {
        let size = l.width.zip(l.height);
        if let Some(o) = self.orientation {
            if size.map(|(w, h)| Orientation::of(w, h)) != Some(o) {
                return false;
            }
        }
        if let Some(min) = self.min_side {
            if size.is_none_or(|(w, h)| w.min(h) < min) {
                return false;
            }
        }
        match (self.licence, l.own) {
            (None, _) | (Some(_), true) => true,
            (Some(need), false) => {
                let info = licence_info(l.licence_id.unwrap_or(UNKNOWN_LICENCE)); // an id it does not know: unknown
                match need {
                    LicenceNeed::PublicDomain => info.public_domain_or_cc0,
                    LicenceNeed::Commercial => info.commercial_use_allowed,
                    LicenceNeed::CommercialNoShareAlike => info.commercial_use_allowed && !info.share_alike,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pic(w: u32, h: u32, licence: &'static str) -> Layout {
        Layout { width: Some(w), height: Some(h), licence_id: Some(licence), own: false }
    }

    #[test]
    fn orientation_with_a_square_tolerance() {
        assert_eq!(Orientation::of(1000, 920), Orientation::Square);
        assert_eq!(Orientation::of(920, 1000), Orientation::Square);
        assert_eq!(Orientation::of(1000, 880), Orientation::Landscape);
        assert_eq!(Orientation::of(3024, 4032), Orientation::Portrait);
        let f = LayoutFilter { orientation: Some(Orientation::Landscape), ..Default::default() };
        assert!(f.accepts(&pic(1600, 900, "pd")) && !f.accepts(&pic(900, 1600, "pd")) && !f.accepts(&pic(1000, 1000, "pd")));
        assert!(!f.accepts(&Layout { width: None, height: None, licence_id: Some("pd"), own: false }), "no size: not known to fit");
    }

    #[test]
    fn minimum_size_is_the_shorter_side() {
        let f = LayoutFilter { min_side: Some(800), ..Default::default() };
        assert!(f.accepts(&pic(1200, 800, "pd")) && !f.accepts(&pic(1200, 799, "pd")));
        assert!(!f.accepts(&Layout::own_photo()), "own photos have no recorded size");
        assert!(LayoutFilter { min_side: Some(0), ..f }.check().is_err());
        assert!(LayoutFilter { min_side: Some(MAX_MIN_SIDE + 1), ..f }.check().is_err());
        assert!(f.check().is_ok() && LayoutFilter::default().is_empty() && !f.is_empty());
    }

    #[test]
    fn licence_needs_read_the_licence_table() {
        let pd = LayoutFilter { licence: Some(LicenceNeed::PublicDomain), ..Default::default() };
        let commercial = LayoutFilter { licence: Some(LicenceNeed::Commercial), ..Default::default() };
        let nosa = LayoutFilter { licence: Some(LicenceNeed::CommercialNoShareAlike), ..Default::default() };
        let cases = [
            ("pd", [true, true, true]),
            ("cc0-1.0", [true, true, true]),
            ("cc-by-4.0", [false, true, true]),
            ("cc-by-sa-3.0", [false, true, false]),
            ("gpl-2.0-or-later", [false, true, false]),
            ("cc-by-nc-4.0", [false, false, false]),
            ("unknown", [false, false, false]),
            ("some-future-id", [false, false, false]),
        ];
        for (id, [p, c, n]) in cases {
            let l = pic(10, 10, id);
            assert_eq!([pd.accepts(&l), commercial.accepts(&l), nosa.accepts(&l)], [p, c, n], "{id}");
        }
        assert!(pd.accepts(&Layout::own_photo()), "the user's photos are theirs");
        // an old gallery's item (no licence_id) is read from its licence text
        let old = GalleryItem { licence: "CC0-1.0".into(), ..Default::default() };
        assert_eq!(Layout::of(&old).licence_id, Some("cc0-1.0"));
        let odd = GalleryItem { licence: "see README".into(), ..Default::default() };
        assert_eq!(Layout::of(&odd).licence_id, Some("unknown"));
        for (s, need) in [("pd", LicenceNeed::PublicDomain), ("commercial", LicenceNeed::Commercial), ("nosa", LicenceNeed::CommercialNoShareAlike)] {
            assert_eq!(s.parse::<LicenceNeed>().unwrap(), need);
            assert_eq!(need.as_str(), s);
        }
        assert!("cc0".parse::<LicenceNeed>().unwrap_err().contains("pd"));
    }
}
