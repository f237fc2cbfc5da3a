//! The tiny fixture (tests/fixtures/tiny, written by examples/make_fixture.rs) and checks shared by the
//! native and the wasm tests, so both targets are held to the same stored reference.
#![allow(dead_code)]

use wasm_model::Engine;

pub const MANIFEST: &str = include_str!("../fixtures/tiny/manifest.json");
pub const VOCAB: &str = include_str!("../fixtures/tiny/vocab.txt");
pub const TEXT_ENCODER: &[u8] = include_bytes!("../fixtures/tiny/text_encoder.safetensors");
pub const GALLERY_BIN: &[u8] = include_bytes!("../fixtures/tiny/gallery.bin");
pub const GALLERY_INT8_BIN: &[u8] = include_bytes!("../fixtures/tiny/gallery_int8.bin");
pub const GALLERY_JSON: &str = include_str!("../fixtures/tiny/gallery.json");
pub const REFERENCE: &str = include_str!("../fixtures/tiny/reference.json");

/// Tolerance between the stored (native) vectors and a fresh run on either target.
pub const MAX_ABS_DIFF: f32 = 1e-5;

pub fn engine(gallery_bin: &[u8]) -> Engine {
    Engine::from_bytes(MANIFEST, VOCAB, TEXT_ENCODER, gallery_bin, GALLERY_JSON).expect("fixture loads")
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Every stored prompt: text vector, query vector and top-10 ids equal the reference; errors stay errors.
/// Returns the largest |diff| seen.
pub fn check_reference(engine: &Engine) -> f32 {
    let reference: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
    assert_eq!(reference["model_id"].as_str(), Some(engine.model_id()));
    let mut worst = 0f32;
    let prompts = reference["prompts"].as_array().unwrap();
    assert!(prompts.len() >= 8);
    for p in prompts {
        let prompt = p["prompt"].as_str().unwrap();
        let text = engine.encoder().encode(prompt).unwrap();
        let d = max_diff(&text, &floats(&p["text_vector"]));
        assert!(d <= MAX_ABS_DIFF, "{prompt:?}: text vector differs by {d}");
        worst = worst.max(d);
        if let Some(err) = p["error"].as_str() {
            assert_eq!(engine.search(prompt, 10).unwrap_err().to_string(), err, "{prompt:?}");
            continue;
        }
        let q = engine.query_vector(prompt).unwrap();
        let d = max_diff(&q, &floats(&p["query_vector"]));
        assert!(d <= MAX_ABS_DIFF, "{prompt:?}: query vector differs by {d}");
        worst = worst.max(d);
        let top: Vec<u32> = engine.search(prompt, 10).unwrap().iter().map(|h| h.id).collect();
        let want: Vec<u32> = p["top10"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        assert_eq!(top, want, "{prompt:?}: top-10 differs");
    }
    worst
}

/// The int8 gallery ranks like the f32 one (top-10 overlap ≥ 9 of 10 for every stored prompt).
pub fn check_int8_overlap(f32_engine: &Engine, int8_engine: &Engine) {
    for p in ["a dog on the beach", "red car", "cat", "two people playing in the snow", "white ball -grass"] {
        let a: Vec<u32> = f32_engine.search(p, 10).unwrap().iter().map(|h| h.id).collect();
        let b: Vec<u32> = int8_engine.search(p, 10).unwrap().iter().map(|h| h.id).collect();
        let overlap = a.iter().filter(|x| b.contains(x)).count();
        assert!(overlap >= 9, "{p:?}: int8 top-10 overlap {overlap}/10");
    }
}

/// Truncated, random and mismatched bytes give errors that name the problem (never a panic).
pub fn check_hostile_files() {
    let err = |m: &str, v: &str, t: &[u8], g: &[u8], j: &str| Engine::from_bytes(m, v, t, g, j).unwrap_err().to_string();
    let half = &TEXT_ENCODER[..TEXT_ENCODER.len() / 2];
    assert!(err(MANIFEST, VOCAB, half, GALLERY_BIN, GALLERY_JSON).contains("SHA-256"));
    assert!(err("not json", VOCAB, TEXT_ENCODER, GALLERY_BIN, GALLERY_JSON).contains("manifest.json"));
    assert!(err(MANIFEST, "", TEXT_ENCODER, GALLERY_BIN, GALLERY_JSON).contains("vocab.txt"));
    let random: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    assert!(err(MANIFEST, VOCAB, TEXT_ENCODER, &random, GALLERY_JSON).contains("gallery.bin"));
    assert!(err(MANIFEST, VOCAB, TEXT_ENCODER, &GALLERY_BIN[..GALLERY_BIN.len() - 7], GALLERY_JSON).contains("truncated"));
    let mut flipped = GALLERY_BIN.to_vec();
    flipped[200] ^= 0x10;
    assert!(err(MANIFEST, VOCAB, TEXT_ENCODER, &flipped, GALLERY_JSON).contains("CRC-32"));
    assert!(err(MANIFEST, VOCAB, TEXT_ENCODER, GALLERY_BIN, "{}").contains("gallery.json"));
}

/// Hostile prompts: each gives results or a clear error.
pub fn check_hostile_prompts(engine: &Engine) {
    let long = "dog ".repeat(2500);
    for q in [long.as_str(), "🐶🏖️ dog", "<script>alert(1)</script> cat", "‏كلب على الشاطئ‏ beach", "a\u{0}b"] {
        assert!(!engine.search(q, 5).unwrap().is_empty(), "{q:?}");
    }
    for q in ["", " \n\t ", "🐶🐶🐶"] {
        assert!(engine.search(q, 5).unwrap_err().to_string().contains("no words"), "{q:?}");
    }
    assert!(engine.similar(40, 3).is_err());
    let e = engine.explain("dog on the beach", 3).unwrap();
    assert_eq!(e.words.len(), 4);
}

/// The shipped model (static/model) and the trainer's tch vectors for it
/// (tests/fixtures/static_model_reference.json, written by tests/tests/parity.rs).
pub mod shipped {
    pub const MANIFEST: &str = include_str!("../../../static/model/manifest.json");
    pub const VOCAB: &str = include_str!("../../../static/model/vocab.txt");
    pub const TEXT_ENCODER: &[u8] = include_bytes!("../../../static/model/text_encoder.safetensors");
    pub const IMAGE_HEAD: &[u8] = include_bytes!("../../../static/model/image_head.safetensors");
    pub const TCH_REFERENCE: &str = include_str!("../fixtures/static_model_reference.json");
    /// The bound for f32 candle vs tch.
    pub const MAX_ABS_DIFF: f32 = 1e-4;

    /// candle's text vectors of the shipped model vs tch's; returns the largest |diff|.
    pub fn check_tch_parity() -> f32 {
        let model = wasm_model::ModelDir::from_bytes(MANIFEST, VOCAB, TEXT_ENCODER, Some(IMAGE_HEAD)).expect("static/model loads");
        let reference: serde_json::Value = serde_json::from_str(TCH_REFERENCE).unwrap();
        assert_eq!(
            reference["model_id"].as_str(),
            Some(model.model_id()),
            "static/model changed since its tch reference was written: rerun \
             `cargo test -p integration-tests --test parity -- --ignored write_static_model_reference`"
        );
        let encoder = wasm_model::TextEncoder::new(&model).unwrap();
        let mut worst = 0f32;
        let prompts = reference["prompts"].as_array().unwrap();
        assert!(!prompts.is_empty());
        for p in prompts {
            let prompt = p["prompt"].as_str().unwrap();
            let want = super::floats(&p["text_vector"]);
            let got = encoder.encode(prompt).unwrap();
            let d = super::max_diff(&got, &want);
            assert!(d <= MAX_ABS_DIFF, "{prompt:?}: candle vs tch differ by {d}");
            worst = worst.max(d);
        }
        worst
    }
}
