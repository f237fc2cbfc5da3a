//! The model directory as a folder (feature `native`): load, write, and add the optional side files with
//! the manifest written last (atomically), so a reader never sees a manifest naming a missing file.

use std::path::Path;

use super::{Manifest, ModelDir, ModelError, Retrieval, StrongMatch, HUBNESS_BANK_FILE, IMAGE_ENCODER_FILE, MANIFEST_FILE};

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| ModelError::Io { path: path.display().to_string(), source })
}

fn read_text(path: &Path) -> Result<String, ModelError> {
    String::from_utf8(read(path)?).map_err(|e| ModelError::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// File names inside the model directory must be plain names (no path traversal from a hostile manifest).
fn plain_name(name: &str) -> Result<&str, ModelError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(ModelError::Field { field: "files".into(), problem: format!("names `{name}`, not a plain file name") });
    }
    Ok(name)
}

/// Writes `bytes` as `name` into the model directory at `dir` after `set` named it in the manifest, then the
/// manifest (atomically): a reader never sees a manifest naming a file that is not there yet.
fn add_side_file(dir: &Path, name: &str, bytes: &[u8], set: impl FnOnce(&mut ModelDir) -> Result<(), ModelError>) -> Result<ModelDir, ModelError> {
    let mut model = ModelDir::load(dir)?;
    set(&mut model)?;
    let file = dir.join(name);
    std::fs::write(&file, bytes).map_err(|source| ModelError::Io { path: file.display().to_string(), source })?;
    write_manifest(dir, &model)?;
    Ok(model)
}

/// Replaces the manifest of the model directory at `dir` with `model`'s (atomically: temp file + rename).
fn write_manifest(dir: &Path, model: &ModelDir) -> Result<(), ModelError> {
    let path = dir.join(MANIFEST_FILE);
    let tmp = dir.join(".manifest.json.tmp");
    std::fs::write(&tmp, model.manifest_json())
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|source| ModelError::Io { path: path.display().to_string(), source })
}

impl ModelDir {
    /// Loads and validates the model directory at `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, ModelError> {
        let dir = dir.as_ref();
        let manifest_json = read_text(&dir.join(MANIFEST_FILE))?;
        let manifest: Manifest =
            serde_json::from_str(&manifest_json).map_err(|e| ModelError::ManifestJson(e.to_string()))?;
        let vocab = read_text(&dir.join(plain_name(&manifest.files.vocab)?))?;
        let text = read(&dir.join(plain_name(&manifest.files.text_encoder)?))?;
        let head = match &manifest.files.image_head {
            Some(name) => Some(read(&dir.join(plain_name(name)?))?),
            None => None,
        };
        Self::from_bytes(&manifest_json, &vocab, &text, head.as_deref())
    }

    /// `image_encoder.safetensors` of the directory at `dir`, checked against the manifest; `None` when
    /// the manifest names none.
    pub fn load_image_encoder(&self, dir: impl AsRef<Path>) -> Result<Option<Vec<u8>>, ModelError> {
        let Some(name) = &self.manifest.files.image_encoder else { return Ok(None) };
        let bytes = read(&dir.as_ref().join(plain_name(name)?))?;
        self.verify_image_encoder(&bytes)?;
        Ok(Some(bytes))
    }

    /// The hubness bank rows of the directory at `dir`, checked against the manifest; `None` when the
    /// manifest names none.
    pub fn load_hubness_bank(&self, dir: impl AsRef<Path>) -> Result<Option<Vec<f32>>, ModelError> {
        let Some(name) = &self.manifest.files.hubness_bank else { return Ok(None) };
        let bytes = read(&dir.as_ref().join(plain_name(name)?))?;
        Ok(Some(self.verify_hubness_bank(&bytes)?))
    }

    /// Adds the hubness bank to the model directory at `dir` (file first, then the manifest atomically).
    pub fn add_hubness_bank(dir: impl AsRef<Path>, bytes: &[u8], retrieval: Retrieval) -> Result<ModelDir, ModelError> {
        add_side_file(dir.as_ref(), HUBNESS_BANK_FILE, bytes, |m| m.set_hubness_bank(bytes, retrieval))
    }

    /// Adds `image_encoder.safetensors` to the model directory at `dir` and rewrites its manifest
    /// (file first, then the manifest atomically); the other files and `model_id` stay as they are.
    pub fn add_image_encoder(dir: impl AsRef<Path>, bytes: &[u8]) -> Result<ModelDir, ModelError> {
        add_side_file(dir.as_ref(), IMAGE_ENCODER_FILE, bytes, |m| {
            m.set_image_encoder(bytes);
            Ok(())
        })
    }

    /// Sets (or, with `None`, removes) the strong-match threshold of the model directory at `dir` (manifest
    /// `retrieval.strong_match`; `trainer calibrate`) and rewrites its manifest atomically; the weights and
    /// `model_id` stay as they are. A model without `retrieval` scoring is refused: the threshold belongs to it.
    pub fn set_strong_match(dir: impl AsRef<Path>, strong_match: Option<StrongMatch>) -> Result<ModelDir, ModelError> {
        let dir = dir.as_ref();
        let mut model = ModelDir::load(dir)?;
        let Some(retrieval) = model.manifest.retrieval.as_mut() else {
            return Err(ModelError::Field {
                field: "retrieval".into(),
                problem: "is absent: a strong-match threshold is calibrated for the retrieval scoring; export the model with it (`trainer export`)".into(),
            });
        };
        if let Some(s) = &strong_match {
            s.check()?;
        }
        retrieval.strong_match = strong_match;
        write_manifest(dir, &model)?;
        Ok(model)
    }

    /// Writes the directory's files into `dir` (created if missing).
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<(), ModelError> {
        let dir = dir.as_ref();
        fn io(p: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
            move |source| ModelError::Io { path: p.display().to_string(), source }
        }
        if self.image_head_pending() {
            return Err(ModelError::Field {
                field: "files.image_head".into(),
                problem: "names a file this directory was loaded without; attach it before writing".into(),
            });
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let m = &self.manifest;
        let mut files: Vec<(&str, &[u8])> = vec![
            (&m.files.vocab, self.vocab_txt.as_bytes()),
            (&m.files.text_encoder, &self.text_encoder),
        ];
        if let (Some(name), Some(bytes)) = (&m.files.image_head, &self.image_head) {
            files.push((name, bytes));
        }
        let manifest = self.manifest_json();
        // The manifest goes last, so a reader never sees a manifest whose files are not there yet.
        files.push((MANIFEST_FILE, manifest.as_bytes()));
        for (name, bytes) in files {
            let path = dir.join(plain_name(name)?);
            std::fs::write(&path, bytes).map_err(io(&path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_dir::VOCAB_FILE;
    use crate::testutil::{random_model, small_config};

    #[test]
    fn writes_and_loads_a_directory() {
        let m = random_model(small_config(), 6, 4, true);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        m.write(&dir).unwrap();
        let back = ModelDir::load(&dir).unwrap();
        assert_eq!(back.manifest, m.manifest);
        std::fs::remove_file(dir.join(VOCAB_FILE)).unwrap();
        let e = ModelDir::load(&dir).unwrap_err().to_string();
        assert!(e.contains("vocab.txt"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(ModelDir::load(&dir).unwrap_err().to_string().contains("manifest.json"));
    }

    /// `set_strong_match` rewrites only the manifest's `retrieval.strong_match`: same id, same files; a model
    /// without `retrieval` is refused and left as it was.
    #[test]
    fn strong_match_is_set_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        let mut m = random_model(small_config(), 6, 4, true);
        m.write(&dir).unwrap();
        let before = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
        let e = ModelDir::set_strong_match(&dir, None).unwrap_err().to_string();
        assert!(e.contains("retrieval") && e.contains("absent"), "{e}");
        assert_eq!(std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap(), before);

        m.manifest.retrieval = Some(Retrieval::recommended());
        m.write(&dir).unwrap();
        let s = StrongMatch { min_score: 0.2, target_precision: 0.5, precision: 0.55, coverage: 0.3, queries: 50, images: 10, captions: "val.json".into() };
        let set = ModelDir::set_strong_match(&dir, Some(s.clone())).unwrap();
        let back = ModelDir::load(&dir).unwrap();
        assert_eq!((back.manifest.strong_match(), back.model_id()), (Some(&s), m.model_id()));
        assert_eq!(set.manifest, back.manifest);
        assert!(!dir.join(".manifest.json.tmp").exists());
        let bad = StrongMatch { coverage: 7.0, ..s };
        assert!(ModelDir::set_strong_match(&dir, Some(bad)).unwrap_err().to_string().contains("coverage"));
        ModelDir::set_strong_match(&dir, None).unwrap();
        assert_eq!(ModelDir::load(&dir).unwrap().manifest.strong_match(), None);
    }
}
