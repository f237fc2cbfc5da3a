//! ImageNet-1k class names and the `trainer classify IMAGE…` debugging command: it shows what the
//! backbone sees, the quickest check that weights and preprocessing are right.

use std::path::{Path, PathBuf};

use tch::{nn, Kind, Tensor};

use super::{preprocess, Backbone, BackboneError, BackboneKind, BackboneKindExt};

/// The 1000 class names in index order (torchvision's `_IMAGENET_CATEGORIES`).
pub const CLASSES_TXT: &str = include_str!("imagenet_classes.txt");

/// Name of ImageNet class `index` ("?" outside 0..1000).
pub fn class_name(index: usize) -> &'static str {
    CLASSES_TXT.lines().nth(index).unwrap_or("?")
}

/// One predicted class.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Prediction {
    pub class: usize,
    pub label: &'static str,
    pub probability: f32,
}

/// Top-`k` softmax predictions for each row of `logits` `[B, 1000]`.
pub fn top_k(logits: &Tensor, k: usize) -> Vec<Vec<Prediction>> {
    let k = k.min(logits.size()[1] as usize);
    let probs = logits.softmax(-1, Kind::Float);
    let (values, indices) = probs.topk(k as i64, -1, true, true);
    (0..logits.size()[0])
        .map(|row| {
            (0..k as i64)
                .map(|j| {
                    let class = indices.int64_value(&[row, j]) as usize;
                    Prediction {
                        class,
                        label: class_name(class),
                        probability: values.double_value(&[row, j]) as f32,
                    }
                })
                .collect()
        })
        .collect()
}

/// Classifies each file (one at a time, so one broken file does not hide the others' results).
pub fn classify_files(
    backbone: &dyn Backbone,
    paths: &[PathBuf],
    k: usize,
) -> Vec<(PathBuf, Result<Vec<Prediction>, BackboneError>)> {
    let prep = preprocess::Preprocess::for_backbone(backbone.kind());
    paths
        .iter()
        .map(|path| {
            let result = prep.load(path).map(|x| {
                let logits = backbone.classify(&x.unsqueeze(0));
                top_k(&logits, k).remove(0)
            });
            (path.clone(), result)
        })
        .collect()
}

/// Entry point for `trainer classify [--backbone KIND] [--weights FILE] [--top K] [--json] IMAGE…`.
/// `weights = None` uses the installed default (`<assets>/efficientnet_lite0.safetensors`).
/// Prints top-k classes per image (or a JSON array); returns an error if any image failed.
pub fn classify_cli(
    kind: BackboneKind,
    weights: Option<&Path>,
    images: &[PathBuf],
    top: usize,
    json: bool,
) -> anyhow::Result<()> {
    let weights = weights
        .map(Path::to_path_buf)
        .unwrap_or_else(|| kind.installed_weights());
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let backbone = super::load(kind, &weights, &vs.root())?;
    let results = classify_files(backbone.as_ref(), images, top.clamp(1, 1000));
    let mut failed = 0;
    if json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|(path, r)| match r {
                Ok(preds) => serde_json::json!({ "file": path, "top": preds }),
                Err(e) => serde_json::json!({ "file": path, "error": e.to_string() }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        failed = results.iter().filter(|(_, r)| r.is_err()).count();
    } else {
        for (path, result) in &results {
            println!("{}", path.display());
            match result {
                Ok(preds) => {
                    for p in preds {
                        println!(
                            "  {:5.1}%  {:4}  {}",
                            100.0 * p.probability,
                            p.class,
                            p.label
                        );
                    }
                }
                Err(e) => {
                    failed += 1;
                    println!("  error: {e}");
                }
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} images could not be classified",
            images.len()
        );
    }
    Ok(())
}
