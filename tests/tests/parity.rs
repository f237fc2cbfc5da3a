//! tch (trainer) ↔ candle (wasm-model) parity: the browser must compute the vectors the trainer learned.
//!
//! (a) random-init models of several shapes, exported by `trainer::export`, on ≥ 1,000 captions;
//! (b) the shipped `static/model` on Flickr8k val captions, top-10 on the val gallery, and int8/f16 galleries
//!     against f32; (c) the stored tch reference for `static/model` (wasm-model/tests/fixtures) is current.

use std::path::{Path, PathBuf};

use integration_tests::{flickr8k_dir, flickr8k_location, repo_root};
use tch::{nn, Device, Kind, Tensor};
use trainer::config::Config;
use trainer::backbone::BackboneKindExt;
use trainer::export::{build_model_dir, write_model_dir};
use trainer::load::{self, load_model_dir};
use trainer::model::{encode_texts, JointModel, Pooling, TextConfig};
use trainer::run::RunState;
use wasm_model::{write_gallery_bin, Engine, GalleryDtype, GalleryIndex, GalleryItem, ModelDir, TextEncoder};

const TOL: f32 = 1e-4;
pub const REFERENCE_FILE: &str = "wasm-model/tests/fixtures/static_model_reference.json";

/// Flickr8k val captions when present, else generated sentences (with unknown words and punctuation).
fn captions(n: usize) -> Vec<String> {
    // Without the data the generated sentences stand in, so this test is not one of the Flickr8k-only ones.
    if let Ok(ds) = trainer::data::Dataset::load(&[flickr8k_location().join("captions_val.json")]) {
        let caps: Vec<String> = ds.images.into_iter().flat_map(|im| im.captions.into_iter().take(5)).take(n).collect();
        if caps.len() >= n {
            return caps;
        }
    }
    let words = ["a", "dog", "runs", "on", "the", "beach", "two", "children", "play", "in", "snow", "red", "car",
        "zyxwv", "man's", "jumping", "over", "grass", ",", ".", "!", "QUICKLY", "black-and-white", "ÉTÉ"];
    let mut s = 12345u64;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = 1 + (s >> 59) as usize;
            (0..len)
                .map(|i| words[((s >> (i * 5 % 50)) as usize + i * 7) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn row(t: &Tensor, i: usize) -> Vec<f32> {
    Vec::<f32>::try_from(t.get(i as i64).to_kind(Kind::Float)).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Text vectors of `caps` from tch (model loaded back from `dir`) and from candle; returns the worst diff.
fn compare_text(dir: &Path, caps: &[String]) -> f32 {
    let loaded = load_model_dir(dir, Device::Cpu).unwrap();
    let ids: Vec<Vec<i64>> = caps.iter().map(|c| trainer::text::encode(&loaded.vocab, c)).collect();
    let tch_vecs = encode_texts(&loaded.model.text, &ids, 128, Device::Cpu);
    let enc = TextEncoder::new(&ModelDir::load(dir).unwrap()).unwrap();
    let mut worst = 0f32;
    for (i, c) in caps.iter().enumerate() {
        let candle = enc.encode(c).unwrap();
        let d = max_diff(&candle, &row(&tch_vecs, i));
        assert!(d <= TOL, "caption {i} {c:?}: candle and tch differ by {d}");
        worst = worst.max(d);
    }
    worst
}

#[test]
fn random_models_candle_matches_tch() {
    let caps = captions(1000);
    let vocab = trainer::text::build_vocab(caps.iter().map(String::as_str).take(600), &[], 1, 5000);
    let shapes = [
        (false, Pooling::Last, 1, false),
        (true, Pooling::Last, 1, true),
        (true, Pooling::Mean, 1, true),
        (true, Pooling::Max, 2, false),
        (true, Pooling::Max, 1, true), // the shipped text encoder's shape since session 11
    ];
    for (k, (bi, pooling, layers, f16)) in shapes.into_iter().enumerate() {
        tch::manual_seed(k as i64);
        let vs = nn::VarStore::new(Device::Cpu);
        let tc = TextConfig { vocab_size: vocab.len() as i64, word_dim: 50, hidden_dim: 48, layers, bidirectional: bi, pooling };
        let model = JointModel::new(&vs, &tc, 64, 32);
        // GloVe-like scale for the embeddings, so the LSTM works in its non-linear range
        tch::no_grad(|| {
            let _ = model.text.embedding.shallow_clone().normal_(0.0, 0.5);
        });
        let state = RunState { config: Config::default(), epochs_done: 0, step: 0, best_epoch: None, best_rsum: 0.0, history: vec![] };
        let md = build_model_dir(&state, &vocab, &vs, &model, None, f16).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        write_model_dir(&md, &dir).unwrap();
        let worst = compare_text(&dir, &caps);
        println!("shape {k} (bi={bi}, {pooling:?}, layers={layers}, f16={f16}): max |diff| {worst:e} over {} captions", caps.len());
    }
}

fn shipped_model() -> Option<PathBuf> {
    let dir = repo_root().join("static/model");
    if dir.join("manifest.json").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: static/model has no manifest.json (export a model with `trainer export`)");
        None
    }
}

/// Val gallery rows (tch image head on cached or freshly extracted backbone features), captions and owners.
fn val_gallery(model_dir: &Path, f8k: &Path) -> (Tensor, Vec<String>, Vec<String>) {
    let loaded = load_model_dir(model_dir, Device::Cpu).unwrap();
    let ds = trainer::data::Dataset::load(&[f8k.join("captions_val.json")]).unwrap().with_captions().unwrap().truncate_captions(5);
    let files = ds.image_paths(&f8k.join("images"));
    let spec = trainer::features::CacheSpec {
        backbone: loaded.backbone,
        weights: loaded.backbone.installed_weights(),
        // a fine-tuned model starts from the cached input of its first fine-tuned stage
        split: loaded.model.tail.as_ref().map(|t| t.from),
    };
    let feats = trainer::features::extract(&repo_root().join("data-cache/features"), &spec, trainer::features::View::ORIGINAL, &files, Device::Cpu).unwrap();
    let input = feats.act.as_ref().filter(|_| loaded.model.tail.is_some()).unwrap_or(&feats.pooled);
    let imgs = tch::no_grad(|| loaded.model.embed_cached(input));
    let caps: Vec<String> = ds.images.iter().flat_map(|im| im.captions.clone()).collect();
    let names = ds.images.iter().map(|im| im.file_name.clone()).collect();
    (imgs, caps, names)
}

fn engine_for(model_dir: &Path, rows: &Tensor, names: &[String], dtype: GalleryDtype) -> Engine {
    let md = ModelDir::load(model_dir).unwrap();
    let flat: Vec<f32> = Vec::<f32>::try_from(rows.flatten(0, -1)).unwrap();
    let dim = rows.size()[1] as usize;
    let bin = write_gallery_bin(md.model_id(), dim, &flat, dtype).unwrap();
    let items = names
        .iter()
        .map(|n| GalleryItem { id: 0, file: n.clone(), thumb: String::new(), caption: String::new(), source: String::new(), licence: String::new(), url: None, hubness: None, ..Default::default() })
        .collect();
    let json = GalleryIndex::new(md.model_id(), items).to_json();
    Engine::new(md, &bin, &json).unwrap()
}

#[test]
#[ignore = "needs Flickr8k (../shared/data/flickr8k or IMGPICK_FLICKR8K); scripts/test.sh runs it when present"]
fn shipped_model_matches_tch_on_flickr8k_val() {
    let Some(model_dir) = shipped_model() else { return };
    let f8k = flickr8k_dir();
    let (imgs, caps, names) = val_gallery(&model_dir, &f8k);
    let caps = &caps[..1000];
    let worst = compare_text(&model_dir, caps);
    println!("static/model: max |diff| candle vs tch over {} val captions: {worst:e}", caps.len());

    // identical top-10 on the val gallery (ties within 1e-6 may swap)
    let loaded = load_model_dir(&model_dir, Device::Cpu).unwrap();
    let ids: Vec<Vec<i64>> = caps.iter().map(|c| trainer::text::encode(&loaded.vocab, c)).collect();
    let tch_txt = encode_texts(&loaded.model.text, &ids, 128, Device::Cpu);
    let tch_scores = tch_txt.matmul(&imgs.tr());
    let f32_engine = engine_for(&model_dir, &imgs, &names, GalleryDtype::F32);
    let f16_engine = engine_for(&model_dir, &imgs, &names, GalleryDtype::F16);
    let int8_engine = engine_for(&model_dir, &imgs, &names, GalleryDtype::Int8);
    let (mut overlap_f16, mut overlap_int8) = (0usize, 0usize);
    for (i, c) in caps.iter().enumerate() {
        let q = f32_engine.encoder().encode(c).unwrap();
        let hits = f32_engine.rank(&q, 10, None);
        let scores = row(&tch_scores, i);
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        for (pos, h) in hits.iter().enumerate() {
            let want = order[pos];
            assert!(
                h.id as usize == want || (scores[h.id as usize] - scores[want]).abs() <= 1e-6,
                "caption {i} {c:?}: rank {pos} is image {} in candle, {want} in tch",
                h.id
            );
        }
        let top: Vec<u32> = hits.iter().map(|h| h.id).collect();
        let count = |e: &Engine| e.rank(&q, 10, None).iter().filter(|h| top.contains(&h.id)).count();
        overlap_f16 += count(&f16_engine);
        overlap_int8 += count(&int8_engine);
    }
    let total = (caps.len() * 10) as f64;
    let (f16_pct, int8_pct) = (100.0 * overlap_f16 as f64 / total, 100.0 * overlap_int8 as f64 / total);
    println!("top-10 overlap vs f32: f16 {f16_pct:.2}%, int8 {int8_pct:.2}%");
    assert!(f16_pct >= 99.0 && int8_pct >= 99.0, "f16 {f16_pct:.2}% / int8 {int8_pct:.2}% top-10 overlap");
}

/// Prompts of the stored reference: everyday, unseen-in-captions, empty, hostile, long.
pub const REFERENCE_PROMPTS: [&str; 12] = [
    "a dog running on the beach",
    "two children playing in the snow",
    "a man riding a bike down a hill",
    "puppy",
    "a kitten asleep on a sofa",
    "red car",
    "",
    "!!! ???",
    "<script>alert(1)</script> surfer",
    "ÉTÉ à la plage",
    "a very long prompt about a brown dog and a black dog and a white dog and a girl and a boy and a ball and a frisbee and a stick on green grass near a lake in the park on a sunny day",
    "zyxwvut qqq",
];

fn reference_json(model_dir: &Path) -> serde_json::Value {
    let loaded = load_model_dir(model_dir, Device::Cpu).unwrap();
    let ids: Vec<Vec<i64>> = REFERENCE_PROMPTS.iter().map(|c| trainer::text::encode(&loaded.vocab, c)).collect();
    let v = encode_texts(&loaded.model.text, &ids, 16, Device::Cpu);
    serde_json::json!({
        "about": "tch (trainer) text vectors of static/model for fixed prompts; written by tests/tests/parity.rs \
                  (cargo test -p integration-tests --test parity -- --ignored write_static_model_reference)",
        "model_id": loaded.dir.model_id(),
        "prompts": REFERENCE_PROMPTS.iter().enumerate().map(|(i, p)| serde_json::json!({"prompt": p, "text_vector": row(&v, i)})).collect::<Vec<_>>(),
    })
}

/// Regenerates the stored reference after a new model is shipped.
#[test]
#[ignore]
fn write_static_model_reference() {
    let Some(model_dir) = shipped_model() else { return };
    let json = reference_json(&model_dir);
    std::fs::write(repo_root().join(REFERENCE_FILE), serde_json::to_string_pretty(&json).unwrap() + "\n").unwrap();
}

/// The stored reference belongs to the shipped model, tch still produces it, and candle matches it.
#[test]
fn stored_reference_is_current_and_candle_matches_it() {
    let Some(model_dir) = shipped_model() else { return };
    let path = repo_root().join(REFERENCE_FILE);
    let stored: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (run the ignored write_static_model_reference test)", path.display())),
    )
    .unwrap();
    let fresh = reference_json(&model_dir);
    assert_eq!(stored["model_id"], fresh["model_id"], "{} is for another model: regenerate it", path.display());
    let enc = TextEncoder::new(&ModelDir::load(&model_dir).unwrap()).unwrap();
    for (s, f) in stored["prompts"].as_array().unwrap().iter().zip(fresh["prompts"].as_array().unwrap()) {
        let sv: Vec<f32> = s["text_vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let fv: Vec<f32> = f["text_vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let prompt = s["prompt"].as_str().unwrap();
        assert!(max_diff(&sv, &fv) <= 1e-6, "{prompt:?}: tch no longer gives the stored vector");
        let candle = enc.encode(prompt).unwrap();
        assert!(max_diff(&sv, &candle) <= TOL, "{prompt:?}: candle differs from the stored tch vector");
    }
    let _ = load::static_model_dir();
}
