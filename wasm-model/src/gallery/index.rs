//! `gallery.json` (README "Gallery"): per-image metadata (file, thumbnail, caption, licence, hubness) of the
//! rows of `gallery.bin`, checked against it row for row.

use serde::{Deserialize, Serialize};

use super::{Gallery, GalleryError, GallerySummary, GALLERY_FORMAT_VERSION};

pub const GALLERY_INDEX_FORMAT: &str = "imgpick-gallery";

/// `gallery.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryIndex {
    pub format: String,
    pub format_version: u32,
    pub model_id: String,
    pub count: usize,
    pub items: Vec<GalleryItem>,
    /// What the gallery holds and prompts that work on it (the page's empty state); optional: galleries
    /// published before it, or by other tools, have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<GallerySummary>,
}

/// Metadata of gallery row `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryItem {
    pub id: usize,
    pub file: String,
    pub thumb: String,
    #[serde(default)]
    pub caption: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub licence: String,
    #[serde(default)]
    pub url: Option<String>,
    /// Mean cosine to the nearest captions of the model's hubness bank (manifest `retrieval`); text queries
    /// score `cosine - hubness_weight * hubness`. Absent: no correction for this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubness: Option<f32>,
}

impl GalleryIndex {
    /// A new index; `items[i].id` is set to `i`.
    pub fn new(model_id: &str, mut items: Vec<GalleryItem>) -> Self {
        items.iter_mut().enumerate().for_each(|(i, it)| it.id = i);
        Self {
            format: GALLERY_INDEX_FORMAT.into(),
            format_version: GALLERY_FORMAT_VERSION,
            model_id: model_id.into(),
            count: items.len(),
            items,
            summary: None,
        }
    }

    /// Parses and checks `gallery.json` (format, version, count, ids in order).
    pub fn from_json(json: &str) -> Result<Self, GalleryError> {
        let idx: Self = serde_json::from_str(json).map_err(|e| GalleryError::IndexJson(e.to_string()))?;
        if idx.format != GALLERY_INDEX_FORMAT {
            return Err(GalleryError::Index(format!("`format` is {:?}, expected \"{GALLERY_INDEX_FORMAT}\"", idx.format)));
        }
        if idx.format_version != GALLERY_FORMAT_VERSION {
            return Err(GalleryError::Index(format!("`format_version` is {}, this build reads 1", idx.format_version)));
        }
        if idx.count != idx.items.len() {
            return Err(GalleryError::Index(format!("`count` is {} but there are {} items", idx.count, idx.items.len())));
        }
        if let Some((i, it)) = idx.items.iter().enumerate().find(|(i, it)| it.id != *i) {
            return Err(GalleryError::Index(format!("item {i} has id {}, expected {i}", it.id)));
        }
        // a mean of cosines: anything else would shift scores arbitrarily (1e30 scored an image 5e29)
        if let Some((i, h)) = idx.items.iter().enumerate().find_map(|(i, it)| it.hubness.filter(|h| !(-1.0..=1.0).contains(h)).map(|h| (i, h))) {
            return Err(GalleryError::Index(format!("item {i} has hubness {h}, expected a finite number in [-1, 1] (a mean cosine; republish the gallery)")));
        }
        Ok(idx)
    }

    /// Refuses an index that does not describe `gallery` row for row.
    pub fn check_gallery(&self, gallery: &Gallery) -> Result<(), GalleryError> {
        if self.model_id != gallery.model_id() {
            return Err(GalleryError::Index(format!(
                "model_id {} differs from gallery.bin's {} (the two files come from different publishes)",
                self.model_id,
                gallery.model_id()
            )));
        }
        if self.count != gallery.len() {
            return Err(GalleryError::Index(format!("{} items but gallery.bin has {} rows", self.count, gallery.len())));
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an index always serialises") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::{write_gallery_bin, GalleryDtype};
    use crate::testutil::random_rows;
    use proptest::prelude::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn bin(dtype: GalleryDtype) -> Vec<u8> {
        write_gallery_bin(ID, 8, &random_rows(5, 8, 3), dtype).unwrap()
    }

    #[test]
    fn index_round_trips_and_is_checked() {
        let item = |f: &str| GalleryItem {
            id: 99,
            file: f.into(),
            thumb: format!("thumbs/{f}"),
            caption: "a cat".into(),
            source: "test".into(),
            licence: "CC0".into(),
            url: None,
            hubness: None,
        };
        let idx = GalleryIndex::new(ID, (0..5).map(|i| item(&format!("{i}.jpg"))).collect());
        let parsed = GalleryIndex::from_json(&idx.to_json()).unwrap();
        assert_eq!(parsed, idx);
        assert_eq!(parsed.items[3].id, 3);
        parsed.check_gallery(&Gallery::from_bytes(&bin(GalleryDtype::F32)).unwrap()).unwrap();
        let short = GalleryIndex::new(ID, vec![item("a")]);
        assert!(short.check_gallery(&Gallery::from_bytes(&bin(GalleryDtype::F32)).unwrap()).is_err());
        for bad in [
            "",
            "[]",
            r#"{"format":"x","format_version":1,"model_id":"","count":0,"items":[]}"#,
            r#"{"format":"imgpick-gallery","format_version":2,"model_id":"","count":0,"items":[]}"#,
            r#"{"format":"imgpick-gallery","format_version":1,"model_id":"","count":1,"items":[]}"#,
        ] {
            assert!(GalleryIndex::from_json(bad).is_err(), "{bad}");
        }
        let mut swapped = idx.clone();
        swapped.items.swap(0, 1);
        assert!(GalleryIndex::from_json(&serde_json::to_string(&swapped).unwrap()).is_err());
    }

    /// `summary` is optional: an index without it (every gallery published before it) reads as `None`, and
    /// one with it round-trips.
    #[test]
    fn summary_is_optional_and_round_trips() {
        use crate::gallery::{ExamplePrompt, ThemeCount};
        let old = r#"{"format":"imgpick-gallery","format_version":1,"model_id":"","count":0,"items":[]}"#;
        assert_eq!(GalleryIndex::from_json(old).unwrap().summary, None);
        assert!(!GalleryIndex::new(ID, Vec::new()).to_json().contains("summary"), "left out when absent");
        let mut idx = GalleryIndex::new(ID, Vec::new());
        idx.summary = Some(GallerySummary {
            themes: vec![ThemeCount { theme: "animals".into(), count: 3 }],
            examples: vec![ExamplePrompt { prompt: "a dog".into(), score: 0.25, strong: Some(4) }, ExamplePrompt { prompt: "a cat".into(), score: 0.2, strong: None }],
        });
        assert_eq!(GalleryIndex::from_json(&idx.to_json()).unwrap(), idx);
    }

    /// `hubness` is a mean cosine: a value outside [-1, 1] or not finite is refused, naming the item (a
    /// hubness of 1e30 scored an image 5e29).
    #[test]
    fn hubness_must_be_a_cosine() {
        let item = |h: Option<f32>| GalleryItem { id: 0, file: "a.jpg".into(), thumb: "thumbs/a.jpg".into(), caption: String::new(), source: String::new(), licence: String::new(), url: None, hubness: h };
        for ok in [None, Some(-1.0), Some(0.3), Some(1.0)] {
            assert!(GalleryIndex::from_json(&GalleryIndex::new(ID, vec![item(ok)]).to_json()).is_ok(), "{ok:?}");
        }
        for bad in ["1e30", "-1.5", "1.001"] {
            let json = GalleryIndex::new(ID, vec![item(Some(0.5))]).to_json().replace("0.5", bad);
            let e = GalleryIndex::from_json(&json).unwrap_err().to_string();
            assert!(e.contains("item 0") && e.contains("hubness") && e.contains("[-1, 1]"), "{bad}: {e}");
        }
    }

    proptest! {
        #[test]
        fn index_parser_never_panics(s in any::<String>()) {
            let _ = GalleryIndex::from_json(&s);
        }
    }
}
