//! The model directory as a folder (feature `native`): load, write, and add the optional side files with
//! the manifest written last (atomically), so a reader never sees a manifest naming a missing file.

use std::path::Path;

use super::{Manifest, ModelDir, ModelError, Retrieval, HUBNESS_BANK_FILE, IMAGE_ENCODER_FILE, MANIFEST_FILE};

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
    let path = dir.join(MANIFEST_FILE);
    let tmp = dir.join(".manifest.json.tmp");
    std::fs::write(&tmp, model.manifest_json())
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|source| ModelError::Io { path: path.display().to_string(), source })?;
    Ok(model)
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
}
