//! COCO-captions datasets: `{"images": [{id, file_name, ...}], "annotations": [{image_id, caption}]}`.
//!
//! The official COCO 2017 files and `../shared/data/flickr8k` load with the same code; several files can be
//! merged (e.g. train + extra). Optional per-image `source`, `licence` (or `license`), `url` and `title` fields
//! are kept for gallery metadata.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    // The cause is part of the message, not a `source`: `{:#}` chains would print it twice.
    #[error("cannot read captions file {path}: {cause} (check the path; COCO captions JSON expected)")]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("captions file {path} is not valid COCO captions JSON: {cause} (expected {{\"images\": [{{\"id\", \"file_name\"}}], \"annotations\": [{{\"image_id\", \"caption\"}}]}})")]
    Parse { path: PathBuf, cause: serde_json::Error },
    #[error("{path}: image id {id} appears twice (also in {first}); ids must be unique across merged files")]
    DuplicateImage { path: PathBuf, id: u64, first: PathBuf },
    #[error("{path}: annotation {index} refers to image id {image_id}, which no loaded file lists under \"images\"")]
    UnknownImage { path: PathBuf, index: usize, image_id: u64 },
    #[error("{path}: image id {id} has an empty file_name")]
    EmptyFileName { path: PathBuf, id: u64 },
    #[error("no captions files given")]
    NoFiles,
    #[error("the captions files {paths:?} contain no image with a caption")]
    Empty { paths: Vec<PathBuf> },
}

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default, alias = "license")]
    licence: Option<serde_json::Value>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    image_id: u64,
    caption: String,
}

/// One image of a dataset and its captions.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEntry {
    pub id: u64,
    pub file_name: String,
    pub captions: Vec<String>,
    pub source: Option<String>,
    pub licence: Option<String>,
    pub url: Option<String>,
    pub title: Option<String>,
}

/// Images (in file order) with their captions (in annotation order).
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub images: Vec<ImageEntry>,
    pub files: Vec<PathBuf>,
}

impl Dataset {
    /// Loads and merges COCO captions files. Images without captions are kept (a gallery may have none);
    /// use [`Dataset::with_captions`] for training and evaluation.
    pub fn load(paths: &[PathBuf]) -> Result<Self, DataError> {
        if paths.is_empty() {
            return Err(DataError::NoFiles);
        }
        let mut images: Vec<ImageEntry> = Vec::new();
        let mut index: HashMap<u64, (usize, PathBuf)> = HashMap::new();
        for path in paths {
            let text = std::fs::read_to_string(path)
                .map_err(|cause| DataError::Read { path: path.clone(), cause })?;
            let file: CocoFile = serde_json::from_str(&text)
                .map_err(|cause| DataError::Parse { path: path.clone(), cause })?;
            for im in file.images {
                if im.file_name.trim().is_empty() {
                    return Err(DataError::EmptyFileName { path: path.clone(), id: im.id });
                }
                if let Some((_, first)) = index.get(&im.id) {
                    return Err(DataError::DuplicateImage { path: path.clone(), id: im.id, first: first.clone() });
                }
                index.insert(im.id, (images.len(), path.clone()));
                images.push(ImageEntry {
                    id: im.id,
                    file_name: im.file_name,
                    captions: Vec::new(),
                    source: im.source,
                    // COCO's `license` is an integer id; keep it as text.
                    licence: im.licence.map(|v| match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    }),
                    url: im.url,
                    title: im.title,
                });
            }
            for (i, ann) in file.annotations.into_iter().enumerate() {
                let Some((slot, _)) = index.get(&ann.image_id) else {
                    return Err(DataError::UnknownImage { path: path.clone(), index: i, image_id: ann.image_id });
                };
                images[*slot].captions.push(ann.caption);
            }
        }
        Ok(Dataset { images, files: paths.to_vec() })
    }

    /// Only the images that have at least one caption (training and evaluation need pairs).
    pub fn with_captions(mut self) -> Result<Self, DataError> {
        self.images.retain(|im| im.captions.iter().any(|c| !c.trim().is_empty()));
        if self.images.is_empty() {
            return Err(DataError::Empty { paths: self.files.clone() });
        }
        Ok(self)
    }

    /// Keeps at most `n` captions per image (the VSE protocol uses 5).
    pub fn truncate_captions(mut self, n: usize) -> Self {
        for im in &mut self.images {
            im.captions.truncate(n);
        }
        self
    }

    pub fn caption_count(&self) -> usize {
        self.images.iter().map(|im| im.captions.len()).sum()
    }

    /// (caption, image index) for every caption, in order.
    pub fn pairs(&self) -> Vec<(&str, usize)> {
        self.images
            .iter()
            .enumerate()
            .flat_map(|(i, im)| im.captions.iter().map(move |c| (c.as_str(), i)))
            .collect()
    }

    /// Absolute image paths under `root`.
    pub fn image_paths(&self, root: &Path) -> Vec<PathBuf> {
        self.images.iter().map(|im| root.join(&im.file_name)).collect()
    }
}

/// Where Flickr8k is expected: `$IMGPICK_FLICKR8K`, else `../shared/data/flickr8k` beside the repository (the
/// one place the trainer looks; `fit`'s defaults, the tests and the examples all ask here).
pub fn flickr8k_location() -> PathBuf {
    match std::env::var_os("IMGPICK_FLICKR8K") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/flickr8k"),
    }
}

/// [`flickr8k_location`] when it holds the captions; `None` when absent (tests then skip).
pub fn flickr8k_dir() -> Option<PathBuf> {
    let dir = flickr8k_location();
    dir.join("captions_val.json").is_file().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn merges_files_and_keeps_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let a = write(d, "a.json", r#"{"images":[{"id":1,"file_name":"a.jpg","license":4,"url":"http://x"}],
            "annotations":[{"id":1,"image_id":1,"caption":"A dog ."},{"id":2,"image_id":1,"caption":"dog"}]}"#);
        let b = write(d, "b.json", r#"{"images":[{"id":2,"file_name":"b.jpg","source":"s","licence":"CC0"},
            {"id":3,"file_name":"c.jpg"}], "annotations":[{"id":3,"image_id":2,"caption":"A cat"}]}"#);
        let ds = Dataset::load(&[a, b]).unwrap();
        assert_eq!(ds.images.len(), 3);
        assert_eq!(ds.images[0].captions, vec!["A dog .", "dog"]);
        assert_eq!(ds.images[0].licence.as_deref(), Some("4"));
        assert_eq!(ds.images[1].licence.as_deref(), Some("CC0"));
        assert_eq!(ds.caption_count(), 3);
        let ds = ds.with_captions().unwrap();
        assert_eq!(ds.images.len(), 2);
        assert_eq!(ds.pairs(), vec![("A dog .", 0), ("dog", 0), ("A cat", 1)]);
    }

    #[test]
    fn clear_errors_on_bad_input() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let missing = d.join("nope.json");
        let e = format!("{:#}", anyhow::Error::from(Dataset::load(&[missing]).unwrap_err()));
        assert!(e.contains("cannot read captions file") && e.contains("nope.json"), "{e}");
        assert_eq!(e.matches("os error").count(), 1, "the cause is printed once: {e}");

        let wrong = write(d, "wrong.json", r#"{"pictures":[]}"#);
        let e = Dataset::load(&[wrong]).unwrap_err().to_string();
        assert!(e.contains("not valid COCO captions JSON") && e.contains("images"), "{e}");

        let no_name = write(d, "noname.json", r#"{"images":[{"id":1}],"annotations":[]}"#);
        assert!(Dataset::load(&[no_name]).unwrap_err().to_string().contains("file_name"));

        let orphan = write(d, "orphan.json", r#"{"images":[{"id":1,"file_name":"a.jpg"}],
            "annotations":[{"image_id":9,"caption":"x"}]}"#);
        let e = Dataset::load(&[orphan]).unwrap_err().to_string();
        assert!(e.contains("image id 9"), "{e}");

        let a = write(d, "dup1.json", r#"{"images":[{"id":1,"file_name":"a.jpg"}]}"#);
        let b = write(d, "dup2.json", r#"{"images":[{"id":1,"file_name":"b.jpg"}]}"#);
        let e = Dataset::load(&[a.clone(), b]).unwrap_err().to_string();
        assert!(e.contains("appears twice") && e.contains("dup1.json"), "{e}");

        let e = Dataset::load(&[a]).unwrap().with_captions().unwrap_err().to_string();
        assert!(e.contains("no image with a caption"), "{e}");
        assert!(matches!(Dataset::load(&[]), Err(DataError::NoFiles)));
    }

    #[test]
    #[ignore = "needs Flickr8k (../shared/data/flickr8k or IMGPICK_FLICKR8K); scripts/test.sh runs it when present"]
    fn flickr8k_val_loads() {
        let dir = flickr8k_dir().expect(
            "this test needs Flickr8k: set IMGPICK_FLICKR8K to the folder (scripts/test.sh skips the Flickr8k tests when the data is absent)",
        );
        let ds = Dataset::load(&[dir.join("captions_val.json")]).unwrap().with_captions().unwrap();
        assert_eq!(ds.images.len(), 1000);
        assert_eq!(ds.truncate_captions(5).caption_count(), 5000);
    }
}
