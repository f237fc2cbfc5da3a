//! SHA-256 checksums and the model id (README "manifest.json": `model_id`, `files_sha256`).

use sha2::{Digest, Sha256};

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The model id: first 16 bytes of SHA-256 over text encoder, image head (if any) and vocab bytes, as hex.
pub fn compute_model_id(text_encoder: &[u8], image_head: Option<&[u8]>, vocab_txt: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(text_encoder);
    if let Some(head) = image_head {
        h.update(head);
    }
    h.update(vocab_txt);
    hex(&h.finalize()[..16])
}

/// Whether `s` is 32 lower-case hex characters (a model id).
pub fn is_model_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
