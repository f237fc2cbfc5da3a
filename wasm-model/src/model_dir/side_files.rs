//! The optional files outside `model_id` (image encoder, hubness bank): tied to the directory only by their
//! `files_sha256` entries, so each is checked against its checksum when read and named with one when added.

use super::{sha256_hex, Manifest, ModelDir, ModelError, Retrieval, HUBNESS_BANK_FILE, IMAGE_ENCODER_FILE};
use crate::tensors::view_to_f32;

/// Checks an optional file outside `model_id` (`files.<field>` = `name`) against its `files_sha256` entry; the
/// one check the engine's standalone image encoder also uses.
pub fn verify_side_file(m: &Manifest, field: &str, name: Option<&String>, missing: &str, bytes: &[u8]) -> Result<(), ModelError> {
    let name = name.ok_or_else(|| ModelError::Field { field: format!("files.{field}"), problem: missing.into() })?;
    let expected = m
        .files_sha256
        .get(name)
        .ok_or_else(|| ModelError::Field { field: "files_sha256".into(), problem: format!("has no entry for {name}") })?;
    let actual = sha256_hex(bytes);
    if *expected != actual {
        return Err(ModelError::Checksum { file: name.clone(), expected: expected.clone(), actual });
    }
    Ok(())
}

/// Reads a hubness bank (tensor `captions`, `[N, dim]`, f16 or f32) into row-major f32 rows.
pub fn parse_hubness_bank(bytes: &[u8], dim: usize) -> Result<Vec<f32>, ModelError> {
    let bad = |problem: String| ModelError::Field { field: format!("files.hubness_bank ({HUBNESS_BANK_FILE})"), problem };
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(format!("is not a safetensors file: {e}")))?;
    let t = st.tensor("captions").map_err(|_| bad("has no tensor `captions`".into()))?;
    if t.shape().len() != 2 || t.shape()[1] != dim || t.shape()[0] == 0 {
        return Err(bad(format!("`captions` has shape {:?}, expected [N > 0, {dim}]", t.shape())));
    }
    let rows = view_to_f32(&t).map_err(|e| bad(format!("`captions` {e}")))?;
    if let Some(i) = rows.iter().position(|x| !x.is_finite()) {
        return Err(bad(format!("`captions` row {} is not finite (NaN or infinity): re-export the model", i / dim)));
    }
    Ok(rows)
}

impl ModelDir {
    /// Checks `image_encoder.safetensors` bytes against the manifest's `files_sha256` entry (the file is
    /// optional and outside `model_id`, so its checksum is what ties it to this directory).
    pub fn verify_image_encoder(&self, bytes: &[u8]) -> Result<(), ModelError> {
        let missing = "is not set: this model has no image encoder (add it with `trainer export-image-encoder`)";
        verify_side_file(&self.manifest, "image_encoder", self.manifest.files.image_encoder.as_ref(), missing, bytes)
    }

    /// Names `bytes` as this directory's image encoder (sets `files.image_encoder` and its checksum).
    /// `model_id` is unchanged: it covers only the text encoder, the image head and the vocabulary.
    pub fn set_image_encoder(&mut self, bytes: &[u8]) {
        let name = IMAGE_ENCODER_FILE.to_string();
        self.manifest.files_sha256.insert(name.clone(), sha256_hex(bytes));
        self.manifest.files.image_encoder = Some(name);
    }

    /// Checks hubness-bank bytes against the manifest's `files_sha256` entry and returns its rows.
    pub fn verify_hubness_bank(&self, bytes: &[u8]) -> Result<Vec<f32>, ModelError> {
        let m = &self.manifest;
        let missing = "is not set: this model has no hubness bank (re-export it with `trainer export`)";
        verify_side_file(m, "hubness_bank", m.files.hubness_bank.as_ref(), missing, bytes)?;
        parse_hubness_bank(bytes, m.embed_dim)
    }

    /// Names `bytes` as this directory's hubness bank and sets how retrieval uses it; `model_id` is unchanged.
    pub fn set_hubness_bank(&mut self, bytes: &[u8], retrieval: Retrieval) -> Result<(), ModelError> {
        parse_hubness_bank(bytes, self.manifest.embed_dim)?;
        let name = HUBNESS_BANK_FILE.to_string();
        self.manifest.files_sha256.insert(name.clone(), sha256_hex(bytes));
        self.manifest.files.hubness_bank = Some(name);
        retrieval.check()?;
        self.manifest.retrieval = Some(retrieval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{random_model, small_config};

    /// The hubness bank: named with its checksum and the retrieval settings, outside `model_id`; wrong bytes,
    /// shapes or dtypes are named errors; the manifest round-trips.
    #[test]
    fn hubness_bank_is_checked_and_outside_model_id() {
        let mut m = random_model(small_config(), 6, 1, false);
        let id = m.model_id().to_owned();
        let bank = |rows: usize, cols: usize| {
            let values = (0..rows * cols).map(|i| i as f32 / 10.0).collect();
            crate::tensors::to_safetensors(&[("captions", vec![rows, cols], values)], crate::tensors::FloatDtype::F16).unwrap()
        };
        let e = m.set_hubness_bank(&bank(3, 5), Retrieval::recommended()).unwrap_err().to_string();
        assert!(e.contains("[N > 0, 6]"), "{e}");
        let good = bank(3, 6);
        m.set_hubness_bank(&good, Retrieval::recommended()).unwrap();
        assert_eq!(m.model_id(), id, "the bank is not part of model_id");
        let rows = m.verify_hubness_bank(&good).unwrap();
        assert_eq!(rows.len(), 18);
        assert!((rows[7] - 0.7).abs() < 1e-3);
        let mut other = good.clone();
        *other.last_mut().unwrap() ^= 1;
        assert!(matches!(m.verify_hubness_bank(&other), Err(ModelError::Checksum { .. })));
        let back = ModelDir::from_bytes(&m.manifest_json(), &m.vocab_txt, &m.text_encoder, None).unwrap();
        assert_eq!(back.manifest.retrieval, Some(Retrieval::recommended()));
        assert_eq!(back.manifest.files.hubness_bank.as_deref(), Some(HUBNESS_BANK_FILE));
        let unknown = Retrieval { image_views: vec!["original".into(), "zoom-middle".into()], ..Retrieval::recommended() };
        let e = m.set_hubness_bank(&good, unknown).unwrap_err().to_string();
        assert!(e.contains("retrieval.image_views") && e.contains("zoom-middle"), "{e}");
        let none = Retrieval { image_views: vec![], ..Retrieval::recommended() };
        assert!(m.set_hubness_bank(&good, none).unwrap_err().to_string().contains("is empty"));
    }
}
