//! What a model directory must hold: format and versions, checksums, `model_id`, the vocabulary size and
//! every tensor's name, shape and dtype.

use super::{compute_model_id, is_model_id, sha256_hex, ImagePooling, ModelDir, ModelError, TextConfig, MODEL_FORMAT, MODEL_FORMAT_VERSION};
use crate::tokenizer::TOKENIZER_VERSION;

/// Tensor names and shapes `text_encoder.safetensors` must hold for `cfg`.
pub fn text_tensor_shapes(cfg: &TextConfig, embed_dim: usize) -> Vec<(String, Vec<usize>)> {
    let h = cfg.hidden_dim;
    let mut out = vec![("embedding.weight".to_string(), vec![cfg.vocab_size, cfg.word_dim])];
    for k in 0..cfg.layers {
        let input = if k == 0 { cfg.word_dim } else { h * cfg.directions() };
        for suffix in ["", "_reverse"].iter().take(cfg.directions()) {
            out.push((format!("lstm.weight_ih_l{k}{suffix}"), vec![4 * h, input]));
            out.push((format!("lstm.weight_hh_l{k}{suffix}"), vec![4 * h, h]));
            out.push((format!("lstm.bias_ih_l{k}{suffix}"), vec![4 * h]));
            out.push((format!("lstm.bias_hh_l{k}{suffix}"), vec![4 * h]));
        }
    }
    out.push(("proj.weight".into(), vec![embed_dim, h * cfg.directions()]));
    out.push(("proj.bias".into(), vec![embed_dim]));
    out
}

impl ModelDir {
    /// Checks format, versions, checksums, model id, vocabulary size and every tensor's shape.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.validate_inner(false)
    }

    /// `validate`; with `allow_pending_head`, a head named by the manifest may be missing (then `model_id`,
    /// which needs its bytes, is not checked).
    pub(super) fn validate_inner(&self, allow_pending_head: bool) -> Result<(), ModelError> {
        let m = &self.manifest;
        let pending_head = allow_pending_head && self.image_head_pending();
        if m.format != MODEL_FORMAT {
            return Err(ModelError::Format { found: m.format.chars().take(40).collect() });
        }
        if m.format_version != MODEL_FORMAT_VERSION {
            return Err(ModelError::Version {
                field: "format_version",
                found: m.format_version,
                expected: MODEL_FORMAT_VERSION,
            });
        }
        if m.tokenizer_version != TOKENIZER_VERSION {
            return Err(ModelError::Version {
                field: "tokenizer_version",
                found: m.tokenizer_version,
                expected: TOKENIZER_VERSION,
            });
        }
        let field = |f: &str, p: String| ModelError::Field { field: f.into(), problem: p };
        if !is_model_id(&m.model_id) {
            return Err(field("model_id", "must be 32 lower-case hex characters".into()));
        }
        let t = &m.text;
        // Bounds keep a hostile manifest from asking for absurd allocations.
        for (name, v, max) in [
            ("embed_dim", m.embed_dim, 1 << 14),
            ("text.word_dim", t.word_dim, 1 << 14),
            ("text.hidden_dim", t.hidden_dim, 1 << 14),
            ("text.layers", t.layers, 16),
            ("text.vocab_size", t.vocab_size, 1 << 24),
        ] {
            if v == 0 || v > max {
                return Err(field(name, format!("is {v}, expected 1..={max}")));
            }
        }
        if t.vocab_size != self.vocab.len() {
            return Err(field(
                "text.vocab_size",
                format!("is {} but {} has {} lines", t.vocab_size, m.files.vocab, self.vocab.len()),
            ));
        }
        if m.files.image_head.is_some() != self.image_head.is_some() && !pending_head {
            return Err(field(
                "files.image_head",
                "does not match the files given (pass image_head.safetensors exactly when the manifest names it)"
                    .into(),
            ));
        }
        let mut checks = vec![(&m.files.vocab, self.vocab_txt.as_bytes()), (&m.files.text_encoder, &self.text_encoder[..])];
        if let (Some(name), Some(bytes)) = (&m.files.image_head, &self.image_head) {
            checks.push((name, &bytes[..]));
        }
        for (name, bytes) in checks {
            let expected = m
                .files_sha256
                .get(name)
                .ok_or_else(|| field("files_sha256", format!("has no entry for {name}")))?;
            let actual = sha256_hex(bytes);
            if *expected != actual {
                return Err(ModelError::Checksum { file: name.clone(), expected: expected.clone(), actual });
            }
        }
        if !pending_head {
            let actual = compute_model_id(&self.text_encoder, self.image_head.as_deref(), self.vocab_txt.as_bytes());
            if actual != m.model_id {
                return Err(ModelError::ModelId { found: m.model_id.clone(), actual });
            }
        }
        check_tensors(&m.files.text_encoder, &self.text_encoder, &text_tensor_shapes(t, m.embed_dim), None)?;
        if let (Some(name), Some(bytes)) = (&m.files.image_head, &self.image_head) {
            let mut shapes = vec![
                ("proj.weight".to_string(), vec![m.embed_dim, m.image.feature_dim]),
                ("proj.bias".to_string(), vec![m.embed_dim]),
            ];
            if m.image.pooling == ImagePooling::Gpo {
                // one weight per cell of the backbone's grid (stride 32)
                shapes.push(("gpo.logits".to_string(), vec![m.image.image_size.div_ceil(32).pow(2)]));
            }
            // Fine-tuned backbone layers (`backbone.*`) are checked against the architecture by the image encoder.
            let extra_prefix = m.image.finetuned_from.map(|_| "backbone.");
            check_tensors(name, bytes, &shapes, extra_prefix)?;
        }
        Ok(())
    }
}

/// Checks that `bytes` is a safetensors file holding exactly `shapes` in f16 or f32 (plus any tensor named
/// `extra_prefix…`).
fn check_tensors(file: &str, bytes: &[u8], shapes: &[(String, Vec<usize>)], extra_prefix: Option<&str>) -> Result<(), ModelError> {
    use safetensors::{Dtype, SafeTensors};
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| ModelError::Safetensors { file: file.into(), reason: e.to_string() })?;
    let err = |name: &str, problem: String| ModelError::Tensor { file: file.into(), name: name.into(), problem };
    for (name, shape) in shapes {
        let view = st.tensor(name).map_err(|_| err(name, "is missing".into()))?;
        if view.shape() != shape.as_slice() {
            return Err(err(name, format!("has shape {:?}, expected {:?}", view.shape(), shape)));
        }
        if !matches!(view.dtype(), Dtype::F32 | Dtype::F16) {
            return Err(err(name, format!("has dtype {:?}, expected F32 or F16", view.dtype())));
        }
    }
    let allowed = |n: &str| shapes.iter().any(|(s, _)| s == n) || extra_prefix.is_some_and(|p| n.starts_with(p));
    if let Some(extra) = st.names().into_iter().find(|n| !allowed(n)) {
        return Err(err(extra, "is not part of this architecture".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_dir::TEXT_ENCODER_FILE;
    use crate::testutil::{random_model, small_config};

    fn parts(m: &ModelDir) -> (String, String, Vec<u8>) {
        (m.manifest_json(), m.vocab_txt.clone(), m.text_encoder.clone())
    }

    #[test]
    fn refuses_broken_directories_naming_the_problem() {
        let m = random_model(small_config(), 6, 1, false);
        let (j, v, t) = parts(&m);
        let err = |j: &str, v: &str, t: &[u8]| ModelDir::from_bytes(j, v, t, None).unwrap_err().to_string();
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut x: serde_json::Value = serde_json::from_str(&j).unwrap();
            f(&mut x);
            x.to_string()
        };
        assert!(err("", &v, &t).contains("manifest.json is not valid"));
        assert!(err("{\"format\": 1}", &v, &t).contains("manifest.json"));
        assert!(err(&edit(&|x| x["format"] = "zip".into()), &v, &t).contains("format"));
        assert!(err(&edit(&|x| x["format_version"] = 2.into()), &v, &t).contains("format_version"));
        assert!(err(&edit(&|x| x["tokenizer_version"] = 7.into()), &v, &t).contains("tokenizer_version` is 7"));
        assert!(err(&edit(&|x| x["text"]["layers"] = 0.into()), &v, &t).contains("text.layers"));
        assert!(err(&edit(&|x| x["text"]["vocab_size"] = 13.into()), &v, &t).contains("vocab.txt has 12 lines"));
        let e = err(&edit(&|x| x["model_id"] = "00000000000000000000000000000000".into()), &v, &t);
        assert!(e.contains("model_id") && e.contains("different exports"), "{e}");
        // Changed bytes: checksum names the file.
        let mut t2 = t.clone();
        let last = t2.len() - 1;
        t2[last] ^= 1;
        assert!(err(&j, &v, &t2).contains("text_encoder.safetensors: SHA-256"));
        assert!(err(&j, &(v.clone() + "extra\n"), &t).contains("vocab.txt"));
        // Consistent checksums but shapes that disagree with the manifest.
        let wrong = random_model(TextConfig { hidden_dim: 5, ..small_config() }, 6, 1, false);
        let mut mf = m.manifest.clone();
        mf.files_sha256.insert(TEXT_ENCODER_FILE.into(), sha256_hex(&wrong.text_encoder));
        mf.model_id = compute_model_id(&wrong.text_encoder, None, v.as_bytes());
        let e = err(&serde_json::to_string(&mf).unwrap(), &v, &wrong.text_encoder);
        assert!(e.contains("has shape") && e.contains("re-export"), "{e}");
        // Random and truncated bytes as weights.
        for bytes in [vec![], vec![0xAB; 100], t[..t.len() / 2].to_vec()] {
            let mut mf = m.manifest.clone();
            mf.files_sha256.insert(TEXT_ENCODER_FILE.into(), sha256_hex(&bytes));
            mf.model_id = compute_model_id(&bytes, None, v.as_bytes());
            let e = err(&serde_json::to_string(&mf).unwrap(), &v, &bytes);
            assert!(e.contains("not a readable safetensors file"), "{e}");
        }
        // image_head named but not given.
        assert!(err(&edit(&|x| x["files"]["image_head"] = "image_head.safetensors".into()), &v, &t).contains("image_head"));
    }
}
