//! DenseNet-121 must reproduce torchvision: weights defined by a formula (no download), saved as a
//! torchvision-keyed safetensors state dict, loaded like a user's file, compared with logits that
//! torchvision computed for the same weights and input (fixture made by scripts/lib/densenet_fixture.py).

use std::collections::BTreeMap;
use std::path::Path;

use tch::{nn, Device, Kind, Tensor};
use trainer::backbone::{self, densenet::DenseNet, Backbone, BackboneError, BackboneKind};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/backbone/densenet121_reference.safetensors"
);

/// Same formula as `formula_tensor` in scripts/lib/densenet_fixture.py (f64 libm sin/cos, then f32).
fn formula_tensor(name: &str, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    let hash = name.bytes().fold(0x811C_9DC5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    let phase = (hash % 10007) as f64 * 0.001;
    let leaf = name.rsplit('.').next().unwrap_or(name);
    let (scale, offset) = if name == "input" {
        (2.0, 0.0)
    } else if leaf == "weight" && shape.len() >= 2 {
        ((6.0 / (n / shape[0]) as f64).sqrt(), 0.0)
    } else if leaf == "weight" {
        (0.25, 1.0)
    } else if leaf == "running_var" {
        (0.5, 1.0)
    } else {
        (0.1, 0.0)
    };
    let values: Vec<f32> = (0..n)
        .map(|i| {
            let u = (0.5 * i as f64 + phase).sin() * (0.0013 * i as f64 + 0.7 * phase).cos();
            (offset + scale * u) as f32
        })
        .collect();
    Tensor::from_slice(&values).reshape(shape)
}

struct Fixture {
    logits: Tensor,
    pooled: Tensor,
    shapes: BTreeMap<String, Vec<i64>>,
}

fn read_fixture() -> Fixture {
    let bytes = std::fs::read(FIXTURE).expect("fixture is committed");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let shapes_json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("shapes"))
        .expect("fixture metadata has shapes")
        .clone();
    let shapes = serde_json::from_str(&shapes_json).unwrap();
    let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(FIXTURE)
        .unwrap()
        .into_iter()
        .collect();
    Fixture {
        logits: tensors["logits"].shallow_clone(),
        pooled: tensors["pooled"].shallow_clone(),
        shapes,
    }
}

/// A scratch file ending in `name`, deleted when dropped (also when the test fails).
fn temp_path(name: &str) -> tempfile::TempPath {
    tempfile::Builder::new().prefix("imgpick-").suffix(name).tempfile().unwrap().into_temp_path()
}

/// Writes the formula weights under the given key names (a torchvision state dict file).
fn write_state_dict(
    shapes: &BTreeMap<String, Vec<i64>>,
    rename: impl Fn(&str) -> String,
    path: &Path,
) {
    let tensors: Vec<(String, Tensor)> = shapes
        .iter()
        .map(|(k, s)| (rename(k), formula_tensor(k, s)))
        .collect();
    backbone::save_safetensors(&tensors, path).unwrap();
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let scale = b.abs().max().double_value(&[]).max(1e-6);
    (a - b).abs().max().double_value(&[]) / scale
}

#[test]
fn densenet121_matches_torchvision_logits() {
    let fixture = read_fixture();
    assert_eq!(
        fixture.shapes.len(),
        606,
        "torchvision densenet121 has 606 float tensors"
    );
    let path = temp_path("densenet121.safetensors");
    write_state_dict(&fixture.shapes, |k| k.to_string(), &path);

    let vs = nn::VarStore::new(Device::Cpu);
    let net = backbone::load(BackboneKind::Densenet121, &path, &vs.root()).unwrap();
    let x = formula_tensor("input", &[2, 3, 64, 64]);
    let logits = net.classify(&x);
    let pooled = tch::no_grad(|| net.pooled(&x, false));

    let (dl, dp) = (
        max_rel_diff(&logits, &fixture.logits),
        max_rel_diff(&pooled, &fixture.pooled),
    );
    println!("max relative difference vs torchvision: logits {dl:.2e}, pooled {dp:.2e}");
    assert!(
        dl < 1e-4,
        "logits differ from torchvision by {dl:.2e} (relative)"
    );
    assert!(
        dp < 1e-4,
        "pooled features differ from torchvision by {dp:.2e} (relative)"
    );
    assert_eq!(net.feature_dim(), 1024);
}

#[test]
fn densenet121_nchw_layout_matches_too() {
    let fixture = read_fixture();
    let path = temp_path("densenet121-nchw.safetensors");
    write_state_dict(&fixture.shapes, |k| k.to_string(), &path);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net = DenseNet::load_121(&vs.root(), &path).unwrap();
    net.set_channels_last(false);
    let logits = net.classify(&formula_tensor("input", &[2, 3, 64, 64]));
    let d = max_rel_diff(&logits, &fixture.logits);
    assert!(d < 1e-4, "NCHW logits differ from torchvision by {d:.2e}");
}

#[test]
fn densenet121_split_points_compose() {
    let fixture = read_fixture();
    let path = temp_path("densenet121-split.safetensors");
    write_state_dict(&fixture.shapes, |k| k.to_string(), &path);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = DenseNet::load_121(&vs.root(), &path).unwrap();
    let x = formula_tensor("input", &[1, 3, 64, 64]);
    let full = tch::no_grad(|| net.features(&x, false));
    assert_eq!(net.num_stages(), 4);
    for k in 0..=net.num_stages() {
        let split = tch::no_grad(|| net.stages_from(&net.stem_to(&x, k, false), k, false));
        assert!(
            max_rel_diff(&split, &full) < 1e-5,
            "split at stage {k} differs"
        );
    }
    let n: i64 = net.params_from(0).iter().map(|t| t.numel() as i64).sum();
    assert_eq!(
        n,
        7_978_856 - 1_025_000,
        "DenseNet-121 has 7.98 M parameters, minus the classifier"
    );
}

#[test]
fn densenet121_accepts_legacy_and_dataparallel_keys() {
    // Pre-0.4 torchvision checkpoints say `denselayer1.norm.1.weight`; DataParallel adds `module.`.
    let fixture = read_fixture();
    let path = temp_path("densenet121-legacy.safetensors");
    let legacy = |k: &str| {
        let k = if k.contains("denselayer") {
            k.replace(".norm1.", ".norm.1.")
                .replace(".norm2.", ".norm.2.")
                .replace(".conv1.", ".conv.1.")
                .replace(".conv2.", ".conv.2.")
        } else {
            k.to_string()
        };
        format!("module.{k}")
    };
    write_state_dict(&fixture.shapes, legacy, &path);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = DenseNet::load_121(&vs.root(), &path).unwrap();
    let logits = net.classify(&formula_tensor("input", &[2, 3, 64, 64]));
    assert!(max_rel_diff(&logits, &fixture.logits) < 1e-4);
}

#[test]
fn lite0_weights_are_rejected_by_densenet_with_a_clear_error() {
    let path = temp_path("not-densenet.safetensors");
    backbone::save_safetensors(
        &[(
            "_conv_stem.weight".into(),
            Tensor::zeros([32, 3, 3, 3], (Kind::Float, Device::Cpu)),
        )],
        &path,
    )
    .unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let err = DenseNet::load_121(&vs.root(), &path)
        .err()
        .expect("must fail");
    assert!(matches!(err, BackboneError::MissingTensor { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("features.conv0.weight") && msg.contains("not-densenet.safetensors"),
        "{msg}"
    );
}
