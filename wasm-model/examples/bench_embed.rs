//! Native candle image-encoder throughput (the "native candle" column of scripts/bench/embed.sh):
//! decode + preprocess and the backbone's forward (the manifest's Lite variant, at its input size) timed
//! separately, per photo, single-threaded by default; beside them the previous preprocessing (every JPEG
//! decoded at full size, then resized) for comparison. (Natively jpeg-decoder, which scales large JPEGs, runs
//! its IDCT on a few threads of its own; wasm has one.)
//!   RAYON_NUM_THREADS=1 cargo run --release -p wasm-model --example bench_embed [model_dir] [photos_dir] [rounds]
//! (defaults: static/model, assets/photos, 3). The model needs image_encoder.safetensors
//! (scripts/build-image-encoder.sh). Prints a table, then one JSON line for scripts.

use std::path::PathBuf;
use std::time::Instant;

use wasm_model::image_encoder::{decode_image, flatten_onto_white, normalize, preprocess, resize_center_crop};

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let model_dir = args.next().map(PathBuf::from).unwrap_or_else(|| root.join("static/model"));
    let photos = args.next().map(PathBuf::from).unwrap_or_else(|| root.join("assets/photos"));
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3);
    let read = |f: &str| std::fs::read(model_dir.join(f));
    let manifest = String::from_utf8(read("manifest.json")?)?;
    let m: wasm_model::Manifest = serde_json::from_str(&manifest)?;
    let encoder_file = m.files.image_encoder.clone().ok_or("the model has no image encoder: run scripts/build-image-encoder.sh")?;
    let head_file = m.files.image_head.clone().ok_or("the model has no image head")?;
    let t = Instant::now();
    let enc = wasm_model::engine::standalone_image_encoder(&manifest, &read(&encoder_file)?, &read(&head_file)?)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut files: Vec<_> = std::fs::read_dir(&photos)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| ["jpg", "jpeg", "png", "webp"].contains(&x.to_string_lossy().to_lowercase().as_str())))
        .collect();
    files.sort();
    let images: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let cfg = &m.image;
    // One warm-up pass, then `rounds` timed passes over every photo.
    let (mut pre, mut fwd, mut full) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=rounds {
        for bytes in &images {
            let t = Instant::now();
            let whole = decode_image(bytes)?;
            let old_input = normalize(&resize_center_crop(&flatten_onto_white(&whole), cfg.image_size as u32), cfg.mean, cfg.std);
            drop(whole);
            let t_full = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(old_input.len(), 3 * cfg.image_size * cfg.image_size);
            let t = Instant::now();
            let input = preprocess(bytes, cfg)?;
            let t1 = Instant::now();
            let v = enc.embed_input(&input)?;
            let t2 = Instant::now();
            assert_eq!(v.len(), m.embed_dim);
            if round > 0 {
                pre.push((t1 - t).as_secs_f64() * 1e3);
                full.push(t_full);
                fwd.push((t2 - t1).as_secs_f64() * 1e3);
            }
        }
    }
    let n = pre.len() as f64;
    let (pre_sum, fwd_sum) = (pre.iter().sum::<f64>(), fwd.iter().sum::<f64>());
    let ips = n / ((pre_sum + fwd_sum) / 1e3);
    println!(
        "\nnative candle image encoder: {} photos × {rounds} rounds from {}, {} thread(s), load {load_ms:.0} ms\n",
        images.len(),
        photos.display(),
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into())
    );
    println!("| step | median ms | mean ms |\n|---|---|---|");
    println!("| decode + preprocess | {:.1} | {:.1} |", median(pre.clone()), pre_sum / n);
    let full_sum = full.iter().sum::<f64>();
    println!("| (before: full-size decode + preprocess) | {:.1} | {:.1} |", median(full.clone()), full_sum / n);
    println!("| {:?} forward at {} px + head | {:.1} | {:.1} |", cfg.backbone, cfg.image_size, median(fwd.clone()), fwd_sum / n);
    println!("| **images/s** | | **{ips:.1}** |");
    println!(
        "{}",
        serde_json::json!({ "native_candle": { "images_per_s": ips, "preprocess_ms": pre_sum / n, "preprocess_full_decode_ms": full_sum / n, "forward_ms": fwd_sum / n, "photos": images.len() } })
    );
    Ok(())
}
