//! Native candle image-encoder time per photo for each EfficientNet-Lite variant (docs/runs.md, "Stronger
//! backbone"): decode + preprocess and the backbone forward + a 512-d head, timed separately, single-threaded by
//! default.
//!   RAYON_NUM_THREADS=1 cargo run --release -p wasm-model --example bench_lite [photos_dir] [rounds]
//! (defaults: assets/photos, 3). Uses the installed weights (`assets/efficientnet_lite{0,1,2}.safetensors`;
//! Lite1/2 from `scripts/setup.sh backbones`) and random ones of the same layout where they are missing (the time
//! does not depend on the values). Prints a table, then one JSON line.

use std::path::PathBuf;
use std::time::Instant;

use wasm_model::image_encoder::{image_encoder_safetensors, preprocess, ImageEncoder, LiteArch};
use wasm_model::model_dir::{Backbone, ImageConfig, ImagePooling};
use wasm_model::tensors::{to_safetensors, FloatDtype};

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Deterministic values in ±0.05 (a stand-in for weights that are not installed; timing only).
fn filler(n: usize, seed: &mut u32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((*seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.1
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let photos = args.next().map(PathBuf::from).unwrap_or_else(|| root.join("assets/photos"));
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3);
    let mut files: Vec<_> = std::fs::read_dir(&photos)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    files.sort();
    let images: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let mut seed = 1u32;
    let embed_dim = 512;
    let head = to_safetensors(
        &[("proj.weight", vec![embed_dim, 1280], filler(embed_dim * 1280, &mut seed)), ("proj.bias", vec![embed_dim], vec![0.0; embed_dim])],
        FloatDtype::F32,
    )?;
    println!(
        "\nnative candle image encoder per variant: {} photos × {rounds} rounds from {}, {} thread(s)\n",
        images.len(),
        photos.display(),
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into())
    );
    println!("| backbone | input | weights | decode + preprocess ms | forward + head ms (median) | images/s |\n|---|---|---|---|---|---|");
    let mut json = serde_json::Map::new();
    for (backbone, file) in [
        (Backbone::EfficientnetLite0, "efficientnet_lite0.safetensors"),
        (Backbone::EfficientnetLite1, "efficientnet_lite1.safetensors"),
        (Backbone::EfficientnetLite2, "efficientnet_lite2.safetensors"),
    ] {
        let arch = LiteArch::of(backbone).expect("a Lite variant");
        let (reference, source) = match std::fs::read(root.join("assets").join(file)) {
            Ok(bytes) => (bytes, "installed"),
            Err(_) => {
                let shapes = arch.tensor_shapes();
                let tensors: Vec<_> = shapes.into_iter().map(|(n, s)| { let len = s.iter().product(); (n, s, filler(len, &mut seed)) }).collect();
                (to_safetensors(&tensors, FloatDtype::F32)?, "random")
            }
        };
        let cfg = ImageConfig {
            backbone,
            feature_dim: 1280,
            image_size: arch.image_size,
            mean: [127.0 / 255.0; 3],
            std: [128.0 / 255.0; 3],
            pooling: ImagePooling::Avg,
            finetuned_from: None,
        };
        let enc = ImageEncoder::new(&cfg, embed_dim, &image_encoder_safetensors(&reference, true)?, &head)?;
        let (mut pre, mut fwd) = (Vec::new(), Vec::new());
        for round in 0..=rounds {
            for bytes in &images {
                let t = Instant::now();
                let input = preprocess(bytes, &cfg)?;
                let t1 = Instant::now();
                let v = enc.embed_input(&input)?;
                let t2 = Instant::now();
                assert_eq!(v.len(), embed_dim);
                if round > 0 {
                    pre.push((t1 - t).as_secs_f64() * 1e3);
                    fwd.push((t2 - t1).as_secs_f64() * 1e3);
                }
            }
        }
        let n = pre.len() as f64;
        let (pre_mean, fwd_mean) = (pre.iter().sum::<f64>() / n, fwd.iter().sum::<f64>() / n);
        let ips = 1e3 / (pre_mean + fwd_mean);
        println!(
            "| {backbone:?} | {} px | {source} | {pre_mean:.1} | {:.1} | {ips:.1} |",
            arch.image_size,
            median(fwd.clone())
        );
        json.insert(format!("{backbone:?}"), serde_json::json!({ "forward_ms_median": median(fwd), "forward_ms_mean": fwd_mean, "preprocess_ms": pre_mean, "images_per_s": ips }));
    }
    println!("{}", serde_json::Value::Object(json));
    Ok(())
}
