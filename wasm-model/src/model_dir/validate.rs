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
        for (name, v, min, max) in [
            ("embed_dim", m.embed_dim, 1, 1 << 14),
            ("text.word_dim", t.word_dim, 1, 1 << 14),
            ("text.hidden_dim", t.hidden_dim, 1, 1 << 14),
            ("text.layers", t.layers, 1, 16),
            ("text.vocab_size", t.vocab_size, 1, 1 << 24),
            ("image.feature_dim", m.image.feature_dim, 1, 1 << 14),
            ("image.image_size", m.image.image_size, 32, 1024),
            ("image.finetuned_from", m.image.finetuned_from.unwrap_or(0), 0, 16),
        ] {
            if v < min || v > max {
                return Err(field(name, format!("is {v}, expected {min}..={max}")));
            }
        }
        if !m.image.mean.iter().all(|x| x.is_finite()) {
            return Err(field("image.mean", format!("is {:?}: every channel must be a finite number", m.image.mean)));
        }
        if !m.image.std.iter().all(|x| x.is_finite() && *x > 0.0) {
            return Err(field("image.std", format!("is {:?}: every channel must be a finite number above 0", m.image.std)));
        }
        if let Some(r) = &m.retrieval {
            r.check()?;
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
    // Checksums prove the bytes are the exported ones, not that they are numbers: a diverged run exports NaN.
    let mut names = st.names();
    names.sort();
    for name in names {
        let view = st.tensor(name).map_err(|e| err(name, e.to_string()))?;
        if !matches!(view.dtype(), Dtype::F32 | Dtype::F16) {
            continue; // the image encoder checks the dtypes of `backbone.*` layers
        }
        let values = crate::tensors::view_to_f32(&view).map_err(|e| err(name, e.to_string()))?;
        if let Some(index) = values.iter().position(|x| !x.is_finite()) {
            return Err(ModelError::NotFinite { file: file.into(), name: name.into(), index });
        }
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

    /// Weights with a NaN or an infinity are refused even when their checksums and model id are consistent (a
    /// diverged run exported): the file and tensor are named. The same for the image head and the hubness bank.
    #[test]
    fn non_finite_weights_are_refused() {
        use crate::testutil::{image_config, model_from_tensors, safetensors_bytes};
        let cfg = small_config();
        let shapes = text_tensor_shapes(&cfg, 6);
        let tensors = |poison: f32| -> Vec<(&str, Vec<usize>, Vec<f32>)> {
            shapes
                .iter()
                .map(|(n, s)| {
                    let mut v = vec![0.1f32; s.iter().product()];
                    if n == "proj.bias" {
                        v[2] = poison;
                    }
                    (n.as_str(), s.clone(), v)
                })
                .collect()
        };
        let good = model_from_tensors(cfg.clone(), 6, image_config(), &tensors(0.5));
        for poison in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let bytes = safetensors_bytes(&tensors(poison), false);
            let mut mf = good.manifest.clone();
            mf.files_sha256.insert(TEXT_ENCODER_FILE.into(), sha256_hex(&bytes));
            mf.model_id = compute_model_id(&bytes, None, good.vocab_txt.as_bytes());
            let e = ModelDir::from_bytes(&serde_json::to_string(&mf).unwrap(), &good.vocab_txt, &bytes, None).unwrap_err().to_string();
            assert!(e.contains("text_encoder.safetensors") && e.contains("proj.bias") && e.contains("not finite"), "{poison}: {e}");
        }
        // the image head too
        let head = |poison: f32| safetensors_bytes(&[("proj.weight", vec![6, 1280], vec![0.01; 6 * 1280]), ("proj.bias", vec![6], vec![poison; 6])], false);
        let text = safetensors_bytes(&tensors(0.5), false);
        let e = ModelDir::build(6, cfg.clone(), image_config(), &good.vocab, text.clone(), Some(head(f32::NAN)), serde_json::json!({}), serde_json::json!({}), "x".into())
            .unwrap_err()
            .to_string();
        assert!(e.contains("image_head.safetensors") && e.contains("not finite"), "{e}");
        // and the hubness bank
        let bank = crate::tensors::to_safetensors(&[("captions", vec![2, 6], vec![f32::NAN; 12])], crate::tensors::FloatDtype::F32).unwrap();
        let e = super::super::parse_hubness_bank(&bank, 6).unwrap_err().to_string();
        assert!(e.contains("hubness_bank") && e.contains("not finite"), "{e}");
    }

    /// Sizes a hostile manifest could ask for are bounded by the reader: the number of image views (each one
    /// more CNN pass per published image), repeated views, hubness settings, image size and normalisation.
    #[test]
    fn manifest_sizes_and_settings_are_bounded() {
        use crate::model_dir::Retrieval;
        let m = random_model(small_config(), 6, 1, false);
        let (j, v, t) = parts(&m);
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut x: serde_json::Value = serde_json::from_str(&j).unwrap();
            x["retrieval"] = serde_json::to_value(Retrieval::recommended()).unwrap();
            f(&mut x);
            x.to_string()
        };
        let err = |json: String| ModelDir::from_bytes(&json, &v, &t, None).unwrap_err().to_string();
        assert!(ModelDir::from_bytes(&edit(&|_| ()), &v, &t, None).is_ok(), "the recommended retrieval is fine");
        let views: Vec<String> = (0..1000).map(|_| "original".to_string()).collect();
        let e = err(edit(&|x| x["retrieval"]["image_views"] = serde_json::json!(views)));
        assert!(e.contains("retrieval.image_views") && e.contains("1000"), "{e}");
        let e = err(edit(&|x| x["retrieval"]["image_views"] = serde_json::json!(["original", "flipped", "original"])));
        assert!(e.contains("retrieval.image_views") && e.contains("\"original\" twice"), "{e}");
        assert!(err(edit(&|x| x["retrieval"]["hubness_k"] = 0.into())).contains("retrieval.hubness_k"));
        assert!(err(edit(&|x| x["retrieval"]["hubness_k"] = 1_000_000.into())).contains("retrieval.hubness_k"));
        assert!(err(edit(&|x| x["retrieval"]["hubness_weight"] = serde_json::json!(-1.0))).contains("retrieval.hubness_weight"));
        assert!(err(edit(&|x| x["retrieval"]["hubness_weight"] = serde_json::json!(1e30))).contains("retrieval.hubness_weight"));
        assert!(err(edit(&|x| x["image"]["image_size"] = 100_000.into())).contains("image.image_size"));
        assert!(err(edit(&|x| x["image"]["feature_dim"] = 0.into())).contains("image.feature_dim"));
        assert!(err(edit(&|x| x["image"]["std"] = serde_json::json!([0.5, 0.0, 0.5]))).contains("image.std"));
        assert!(err(edit(&|x| x["image"]["finetuned_from"] = 99.into())).contains("image.finetuned_from"));
    }
}
