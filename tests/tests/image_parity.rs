//! Image side, tch (trainer) ↔ candle (wasm-model): the vector the browser computes for a photo must be the
//! one `trainer publish` computes (backbone pooled features → image head → L2 norm) for the shipped model.
//!
//! - `assets/photos` (15 photos, always): cosine ≥ 0.999 per image and the same top-10 for 50 prompts.
//! - Flickr8k val (first 200 images; `#[ignore]`d, scripts/test.sh runs it when Flickr8k is present):
//!   the same checks.
//! - A fine-tuned GPO model of each Lite variant (Lite1/Lite2 skipped without their weights), exported to a model
//!   directory and given its image encoder as `make demo` does: the page's encoder from that directory vs tch.

use std::path::{Path, PathBuf};

use integration_tests::{flickr8k_dir, repo_root};
use tch::{Device, Kind};
use trainer::backbone::{self, preprocess::Preprocess, BackboneKindExt};
use trainer::load::load_model_dir;
use wasm_model::image_encoder::{image_encoder_safetensors, ImageEncoder};
use wasm_model::rank::top_k;
use wasm_model::TextEncoder;

const MIN_COSINE: f32 = 0.999;
const BATCH: usize = 16;

struct Models {
    tch: trainer::load::LoadedModel,
    backbone: Box<dyn backbone::Backbone>,
    _backbone_vs: tch::nn::VarStore,
    candle: ImageEncoder,
    text: TextEncoder,
}

fn models() -> Models {
    let dir = repo_root().join("static/model");
    let tch = load_model_dir(&dir, Device::Cpu).expect("static/model loads in tch");
    let weights = tch.backbone.installed_weights();
    let mut vs = tch::nn::VarStore::new(Device::Cpu);
    let net = backbone::load(tch.backbone, &weights, &vs.root())
        .unwrap_or_else(|e| panic!("{} weights of static/model (scripts/setup.sh installs them): {e}", tch.backbone.name()));
    vs.freeze();
    let reference = std::fs::read(&weights).unwrap();
    let m = &tch.dir.manifest;
    let candle = ImageEncoder::new(
        &m.image,
        m.embed_dim,
        &image_encoder_safetensors(&reference, false).unwrap(),
        tch.dir.image_head.as_deref().expect("static/model has an image head"),
    )
    .expect("candle image encoder builds");
    let text = TextEncoder::new(&tch.dir).unwrap();
    Models { tch, backbone: net, _backbone_vs: vs, candle, text }
}

/// What `trainer publish` computes, batched.
fn tch_vectors(m: &Models, files: &[PathBuf]) -> Vec<Vec<f32>> {
    let prep = Preprocess::for_backbone(m.tch.backbone);
    let mut out = Vec::new();
    for chunk in files.chunks(BATCH) {
        let x = prep.load_batch(chunk).unwrap();
        let v = tch::no_grad(|| m.tch.model.embed_images(Some(m.backbone.as_ref()), &x).to_kind(Kind::Float));
        for i in 0..chunk.len() {
            out.push(Vec::<f32>::try_from(v.get(i as i64)).unwrap());
        }
    }
    out
}

fn candle_vectors(m: &Models, files: &[PathBuf]) -> Vec<Vec<f32>> {
    files
        .iter()
        .map(|f| m.candle.embed(&std::fs::read(f).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn check(m: &Models, what: &str, files: &[PathBuf], prompts: &[String]) {
    let t0 = std::time::Instant::now();
    let want = tch_vectors(m, files);
    let t_tch = t0.elapsed();
    let t1 = std::time::Instant::now();
    let got = candle_vectors(m, files);
    let t_candle = t1.elapsed();
    let mut worst = (1.0f32, 0);
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let cos = dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt());
        if cos < worst.0 {
            worst = (cos, i);
        }
    }
    eprintln!(
        "{what}: {} images, min cosine {:.7} (1 - cos = {:.1e}, {}); tch {:.1} img/s, candle {:.1} img/s (test profile)",
        files.len(),
        worst.0,
        1.0 - worst.0,
        files[worst.1].display(),
        files.len() as f64 / t_tch.as_secs_f64(),
        files.len() as f64 / t_candle.as_secs_f64()
    );
    assert!(worst.0 >= MIN_COSINE, "{what}: {} has cosine {} < {MIN_COSINE}", files[worst.1].display(), worst.0);
    // Same top-10 for every prompt. Ranks may only differ where two images' tch scores are within 1e-4
    // (float rounding can swap an exact tie; anything else is a real difference).
    let k = 10.min(files.len());
    for p in prompts {
        let q = m.text.encode(p).unwrap();
        let s_want: Vec<f32> = want.iter().map(|v| dot(&q, v)).collect();
        let s_got: Vec<f32> = got.iter().map(|v| dot(&q, v)).collect();
        let (a, b) = (top_k(&s_want, k, None), top_k(&s_got, k, None));
        for (r, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                x.id == y.id || (s_want[x.id as usize] - s_want[y.id as usize]).abs() < 1e-4,
                "{what}: prompt {p:?} rank {r}: tch has image {}, candle {}",
                x.id,
                y.id
            );
        }
    }
}

const PHOTO_PROMPTS: [&str; 10] = [
    "a black cat", "a cat lying down", "a puppy", "a goldfish in water", "a red fish", "a guitar",
    "snow in the mountains", "the sun rising over the sea", "a tent in the woods", "a cup of coffee",
];
const MORE_PROMPTS: [&str; 5] = ["an astronaut", "a rocket launch", "a motorcycle", "stars in the night sky", "a man with a camera"];

fn photo_prompts() -> Vec<String> {
    // 50 prompts: 15 written for the photos, plus variations that change word order and add context.
    let base: Vec<&str> = PHOTO_PROMPTS.iter().chain(&MORE_PROMPTS).copied().collect();
    let mut out: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    out.extend(base.iter().map(|s| format!("{s} outside")));
    out.extend(base.iter().map(|s| format!("a photo of {s} and a dog")));
    out.extend(base.iter().map(|s| format!("{s} at night")));
    out.truncate(50);
    out
}

fn list_images(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn candle_image_vectors_match_tch_on_the_asset_photos() {
    let m = models();
    let files = list_images(&backbone::assets_dir().join("photos"));
    assert_eq!(files.len(), 15, "assets/photos should hold the 15 test photos");
    let prompts = photo_prompts();
    assert_eq!(prompts.len(), 50);
    check(&m, "assets/photos", &files, &prompts);
}

#[test]
#[ignore = "needs Flickr8k (../shared/data/flickr8k or IMGPICK_FLICKR8K); scripts/test.sh runs it when present"]
fn candle_image_vectors_match_tch_on_200_flickr8k_val_photos() {
    let dir = flickr8k_dir();
    let ds = trainer::data::Dataset::load(&[dir.join("captions_val.json")]).unwrap();
    let images: Vec<_> = ds.images.iter().filter(|im| !im.captions.is_empty()).take(200).collect();
    assert_eq!(images.len(), 200, "Flickr8k val should have ≥ 200 captioned images");
    let files: Vec<PathBuf> = images.iter().map(|im| dir.join("images").join(&im.file_name)).collect();
    // 50 prompts: the first caption of every 4th image (real human captions of images in the set).
    let prompts: Vec<String> = images.iter().step_by(4).take(50).map(|im| im.captions[0].clone()).collect();
    assert_eq!(prompts.len(), 50);
    let m = models();
    check(&m, "flickr8k val", &files, &prompts);
}

/// f16 storage (what `trainer export-image-encoder` writes by default) stays within the parity bound.
#[test]
fn f16_image_encoder_keeps_parity_on_the_asset_photos() {
    let m = models();
    let files = list_images(&backbone::assets_dir().join("photos"));
    let reference = std::fs::read(m.tch.backbone.installed_weights()).unwrap();
    let man = &m.tch.dir.manifest;
    let f16 = ImageEncoder::new(
        &man.image,
        man.embed_dim,
        &image_encoder_safetensors(&reference, true).unwrap(),
        m.tch.dir.image_head.as_deref().unwrap(),
    )
    .unwrap();
    let want = tch_vectors(&m, &files);
    let worst = files
        .iter()
        .zip(&want)
        .map(|(f, w)| dot(&f16.embed(&std::fs::read(f).unwrap()).unwrap(), w))
        .fold(1.0f32, f32::min);
    eprintln!("f16 backbone: min cosine {worst:.6} over {} photos", files.len());
    assert!(worst >= MIN_COSINE, "f16 backbone: min cosine {worst}");
}

/// The optional file joins a model directory without changing its id, and a tampered copy is refused.
#[test]
fn image_encoder_file_is_added_without_changing_the_model_id() {
    let src = repo_root().join("static/model");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    let before = wasm_model::ModelDir::load(dir).unwrap();
    let reference = std::fs::read(before.manifest.image.backbone.installed_weights()).unwrap();
    let bytes = image_encoder_safetensors(&reference, true).unwrap();
    wasm_model::ModelDir::add_image_encoder(dir, &bytes).unwrap();
    let after = wasm_model::ModelDir::load(dir).unwrap();
    assert_eq!(after.model_id(), before.model_id());
    assert_eq!(after.load_image_encoder(dir).unwrap().as_deref(), Some(&bytes[..]));
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    std::fs::write(dir.join(wasm_model::image_encoder::IMAGE_ENCODER_FILE), &bad).unwrap();
    let e = after.load_image_encoder(dir).unwrap_err().to_string();
    assert!(e.contains("image_encoder.safetensors") && e.contains("SHA-256"), "{e}");
}

/// A fine-tuned backbone tail (stage 6 + head conv, changed weights and BN parameters) with GPO pooling over the
/// variant's grid (Lite0 7 × 7 at 224 px, Lite1 8 × 8 at 240, Lite2 9 × 9 at 260), exported the way `trainer export`
/// does and given its image encoder by `trainer export-image-encoder` (and by scripts/build-image-encoder.sh, which
/// must write the same file): the candle encoder the page's embedding workers build from that directory (manifest +
/// both weight files, checksums checked) gives tch's vectors for the asset photos, f32 and f16.
fn fine_tuned_tail_with_gpo_keeps_parity_for(kind: backbone::BackboneKind) {
    use trainer::config::Config;
    use trainer::export::{add_image_encoder, build_model_dir, write_model_dir};
    use trainer::model::{grid_cells, ImagePooling, JointModel, Pooling, TextConfig};
    use trainer::run::RunState;
    use wasm_model::image_encoder::{LiteArch, IMAGE_ENCODER_FILE};
    let weights = kind.installed_weights();
    if !weights.is_file() {
        eprintln!("skipped: {} weights not installed at {} (scripts/setup.sh backbones)", kind.name(), weights.display());
        return;
    }
    let files = list_images(&backbone::assets_dir().join("photos"));
    let vocab = trainer::text::build_vocab(["a dog on the grass", "a cat"], &[], 1, 100);
    let tc = TextConfig { vocab_size: vocab.len() as i64, word_dim: 50, hidden_dim: 8, layers: 1, bidirectional: true, pooling: Pooling::Mean };
    let mut cfg = Config::default();
    cfg.image.backbone.backbone = kind;
    cfg.image.finetune_from = Some(6);
    cfg.image.image_pooling = ImagePooling::Gpo;
    let state = RunState { config: cfg, epochs_done: 1, step: 1, best_epoch: Some(1), best_rsum: 0.0, history: vec![] };
    let prep = Preprocess::for_backbone(kind);
    let arch = LiteArch::of(kind).expect("a Lite variant");
    assert_eq!(prep.size as usize, arch.image_size);
    tch::manual_seed(11);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let cells = grid_cells(arch.image_size);
    let model = JointModel::with_image(&vs, &tc, 1280, 24, ImagePooling::Gpo, cells, Some((kind, 6, &weights))).unwrap();
    // What training would do: move every trainable tensor (tail convs, BN affine, GPO, projection).
    tch::no_grad(|| {
        for (name, t) in vs.variables() {
            if t.requires_grad() && name.starts_with("image.") {
                let noise = t.randn_like() * (t.abs().mean(Kind::Float) * 0.3 + 0.05);
                let _ = t.shallow_clone().g_add_(&noise);
            }
        }
    });
    let x = prep.load_batch(&files).unwrap();
    let want = tch::no_grad(|| model.embed_images(None, &x));
    let stage6 = arch.blocks().into_iter().filter(|b| b.stage == 6).map(|b| b.index).collect::<Vec<_>>();
    let trainer_exe = repo_root().join("target/debug/trainer");
    for f16 in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        let md = build_model_dir(&state, &vocab, &vs, &model, None, f16).unwrap();
        write_model_dir(&md, &dir).unwrap();
        let man = &md.manifest;
        assert_eq!((man.image.backbone, man.image.image_size, man.image.finetuned_from), (kind, arch.image_size, Some(6)));
        assert_eq!(man.image.pooling, wasm_model::model_dir::ImagePooling::Gpo);
        let head = md.image_head.as_deref().unwrap();
        let names = safetensors::SafeTensors::deserialize(head).unwrap().names().into_iter().map(String::from).collect::<Vec<_>>();
        for b in &stage6 {
            assert!(names.iter().any(|n| *n == format!("backbone._blocks.{b}._expand_conv.weight")), "{} block {b}: {names:?}", kind.name());
        }
        assert!(names.iter().any(|n| n == "backbone._bn1.running_var"));
        let before_tail = format!("backbone._blocks.{}.", stage6[0] - 1);
        assert!(!names.iter().any(|n| n.starts_with(&before_tail) || n.starts_with("backbone._fc")), "only trained layers ship");
        let gpo = safetensors::SafeTensors::deserialize(head).unwrap().tensor("gpo.logits").unwrap().shape().to_vec();
        assert_eq!(gpo, [cells as usize], "{}: one GPO weight per cell of the grid", kind.name());
        // Before `trainer export-image-encoder` the page cannot embed photos with this directory.
        let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
        let e = wasm_model::engine::standalone_image_encoder(&String::from_utf8(read("manifest.json")).unwrap(), head, head).unwrap_err();
        assert!(e.to_string().contains("files.image_encoder"), "{e}");
        // scripts/build-image-encoder.sh on a copy (f16, its default) writes what export-image-encoder writes.
        let script_copy = (f16 && trainer_exe.is_file()).then(|| {
            let copy = tmp.path().join("script");
            std::fs::create_dir(&copy).unwrap();
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                std::fs::copy(&p, copy.join(p.file_name().unwrap())).unwrap();
            }
            let o = std::process::Command::new(repo_root().join("scripts/build-image-encoder.sh"))
                .arg(&copy)
                .env("TRAINER", &trainer_exe)
                .output()
                .unwrap();
            let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            assert!(o.status.success() && said.contains(kind.default_weights_file()), "{said}");
            copy
        });
        if f16 && script_copy.is_none() {
            eprintln!("skipped: scripts/build-image-encoder.sh check ({} missing: cargo build -p trainer)", trainer_exe.display());
        }
        add_image_encoder(&dir, None, !f16).unwrap();
        let encoder_file = read(IMAGE_ENCODER_FILE);
        let manifest_text = String::from_utf8(read("manifest.json")).unwrap();
        if let Some(copy) = script_copy {
            assert_eq!(std::fs::read(copy.join(IMAGE_ENCODER_FILE)).unwrap(), encoder_file, "the script's file is export-image-encoder's");
            assert_eq!(std::fs::read_to_string(copy.join("manifest.json")).unwrap(), manifest_text);
        }
        // As the page's embedding worker builds it (wasm ImageEmbedder): the manifest's text and the two files.
        let candle = wasm_model::engine::standalone_image_encoder(&manifest_text, &encoder_file, &read("image_head.safetensors")).unwrap();
        assert_eq!((candle.config().backbone, candle.config().image_size), (kind, arch.image_size));
        // and the tch model loaded back from the directory agrees with the in-memory one
        let back = load_model_dir(&dir, Device::Cpu).unwrap();
        let back_v = tch::no_grad(|| back.model.embed_images(None, &x));
        let tol = if f16 { 0.995 } else { MIN_COSINE };
        let mut worst = 1.0f32;
        for (i, f) in files.iter().enumerate() {
            let w = Vec::<f32>::try_from(want.get(i as i64)).unwrap();
            let g = candle.embed(&std::fs::read(f).unwrap()).unwrap();
            let b = Vec::<f32>::try_from(back_v.get(i as i64)).unwrap();
            worst = worst.min(dot(&g, &w));
            assert!(dot(&g, &w) >= tol, "{} f16={f16} {}: candle cosine {}", kind.name(), f.display(), dot(&g, &w));
            assert!(dot(&b, &w) >= tol, "{} f16={f16} {}: reloaded tch cosine {}", kind.name(), f.display(), dot(&b, &w));
        }
        eprintln!("{} fine-tuned tail + GPO, f16={f16}: {} photos, min cosine candle ↔ tch {worst:.6}", kind.name(), files.len());
        // A manifest that does not say so must not silently use the tail (and vice versa).
        let mut lying = man.image.clone();
        lying.finetuned_from = None;
        let e = ImageEncoder::new(&lying, man.embed_dim, &encoder_file, head).expect_err("refused");
        assert!(e.to_string().contains("finetuned_from"), "{e}");
        // Nor read the grid at another size (Lite0's 224 px on a Lite1/Lite2 model: GPO weights for another grid).
        if arch.image_size != 224 {
            let mut wrong = man.image.clone();
            wrong.image_size = 224;
            assert!(ImageEncoder::new(&wrong, man.embed_dim, &encoder_file, head).is_err(), "{}: 224 px refused", kind.name());
        }
    }
}

#[test]
fn fine_tuned_tail_with_gpo_keeps_parity() {
    fine_tuned_tail_with_gpo_keeps_parity_for(backbone::BackboneKind::EfficientnetLite0);
}

#[test]
fn lite1_fine_tuned_tail_with_gpo_keeps_parity_through_the_model_directory() {
    fine_tuned_tail_with_gpo_keeps_parity_for(backbone::BackboneKind::EfficientnetLite1);
}

#[test]
fn lite2_fine_tuned_tail_with_gpo_keeps_parity_through_the_model_directory() {
    fine_tuned_tail_with_gpo_keeps_parity_for(backbone::BackboneKind::EfficientnetLite2);
}
