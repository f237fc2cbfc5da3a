//! `gallery.json` (README "Gallery"): per-image metadata (file, thumbnail, caption, licence, size, hubness) of
//! the rows of `gallery.bin`, checked against it row for row.

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

/// Metadata of gallery row `id`. (`Default` so that code building items names only what it has:
/// `GalleryItem { file, thumb, ..Default::default() }`.)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// The source image's size in pixels as it is shown (after its EXIF orientation: a portrait phone photo
    /// stored sideways is taller than wide). Absent in galleries published before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// `licence` normalised (`gallery::normalise_licence`): an id of `gallery::LICENCES` (`cc-by-sa-3.0`, `pd`,
    /// `unknown`, …), whose entry says what the licence allows. Absent in galleries published before it; an id
    /// a reader does not know reads as `unknown` (`gallery::licence_info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence_id: Option<String>,
}

/// Longest `licence_id` a reader accepts (the longest known id has 17 characters).
const MAX_LICENCE_ID_LEN: usize = 64;

impl GalleryItem {
    /// What is wrong with the optional size and licence id fields (a reader filters and lays out by them): a
    /// zero side, or a licence id that is not a short lower-case id.
    pub fn field_problem(&self) -> Option<String> {
        if self.width == Some(0) || self.height == Some(0) {
            return Some(format!("has a size of {:?} × {:?} pixels, expected at least 1 × 1 (republish the gallery)", self.width, self.height));
        }
        let id_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.';
        match &self.licence_id {
            Some(id) if id.is_empty() || id.len() > MAX_LICENCE_ID_LEN || !id.bytes().all(id_char) => {
                Some(format!("has licence_id {id:?}, expected a lower-case id such as \"cc-by-sa-3.0\" (republish the gallery)"))
            }
            _ => None,
        }
    }
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
        if let Some(problem) = idx.items.iter().enumerate().find_map(|(i, it)| it.field_problem().map(|p| format!("item {i} {p}"))) {
            return Err(GalleryError::Index(problem));
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
            ..Default::default()
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
        let item = |h: Option<f32>| GalleryItem { id: 0, file: "a.jpg".into(), thumb: "thumbs/a.jpg".into(), caption: String::new(), source: String::new(), licence: String::new(), url: None, hubness: h, ..Default::default() };
        for ok in [None, Some(-1.0), Some(0.3), Some(1.0)] {
            assert!(GalleryIndex::from_json(&GalleryIndex::new(ID, vec![item(ok)]).to_json()).is_ok(), "{ok:?}");
        }
        for bad in ["1e30", "-1.5", "1.001"] {
            let json = GalleryIndex::new(ID, vec![item(Some(0.5))]).to_json().replace("0.5", bad);
            let e = GalleryIndex::from_json(&json).unwrap_err().to_string();
            assert!(e.contains("item 0") && e.contains("hubness") && e.contains("[-1, 1]"), "{bad}: {e}");
        }
    }

    /// `width`, `height` and `licence_id` are optional: an item without them (every gallery published before
    /// them) reads as `None`, items with them round-trip, and nonsense is refused naming the item.
    #[test]
    fn size_and_licence_id_are_optional_and_checked() {
        let old = r#"{"format":"imgpick-gallery","format_version":1,"model_id":"","count":1,
            "items":[{"id":0,"file":"a.jpg","thumb":"t.jpg","caption":"","source":"","licence":"CC0","url":null}]}"#;
        let it = &GalleryIndex::from_json(old).unwrap().items[0];
        assert_eq!((it.width, it.height, it.licence_id.as_deref()), (None, None, None));
        assert!(!GalleryIndex::from_json(old).unwrap().to_json().contains("width"), "left out when absent");
        let item = GalleryItem { file: "a.jpg".into(), thumb: "t.jpg".into(), width: Some(4032), height: Some(3024), licence_id: Some("cc-by-sa-3.0".into()), ..Default::default() };
        let idx = GalleryIndex::new(ID, vec![item.clone()]);
        assert_eq!(GalleryIndex::from_json(&idx.to_json()).unwrap(), idx);
        for (bad, what) in [
            (GalleryItem { width: Some(0), ..item.clone() }, "size"),
            (GalleryItem { height: Some(0), ..item.clone() }, "size"),
            (GalleryItem { licence_id: Some("CC-BY".into()), ..item.clone() }, "licence_id"),
            (GalleryItem { licence_id: Some("<b>x</b>".into()), ..item.clone() }, "licence_id"),
            (GalleryItem { licence_id: Some(String::new()), ..item.clone() }, "licence_id"),
            (GalleryItem { licence_id: Some("a".repeat(65)), ..item.clone() }, "licence_id"),
        ] {
            let e = GalleryIndex::from_json(&GalleryIndex::new(ID, vec![bad]).to_json()).unwrap_err().to_string();
            assert!(e.contains("item 0") && e.contains(what), "{e}");
        }
        // an id this build does not know is not an error: it reads as unknown
        let future = GalleryIndex::new(ID, vec![GalleryItem { licence_id: Some("cc-by-5.0".into()), ..item }]);
        let parsed = GalleryIndex::from_json(&future.to_json()).unwrap();
        assert_eq!(crate::gallery::licence_info(parsed.items[0].licence_id.as_deref().unwrap()).id, "unknown");
    }

    proptest! {
        #[test]
        fn index_parser_never_panics(s in any::<String>()) {
            let _ = GalleryIndex::from_json(&s);
        }
    }
}
