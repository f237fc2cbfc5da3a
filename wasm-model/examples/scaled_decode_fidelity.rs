//! How far the DCT-scaled decode of large JPEGs moves the vectors from the full-size decode the model was
//! trained on (docs/benchmarks.md "My photos at scale"): every distinct JPEG of ≥ 2 MP under a folder, embedded
//! (candle encoder, one view, as the page does) from its full decode and from its decode at the scale that each
//! rule "shorter side ≥ K × the network's input" picks; the shipped rule is `DECODED_SIDE_PER_INPUT`.
//!   cargo run --release -p wasm-model --example scaled_decode_fidelity [model_dir] [photos_dir] [K ...]
//! (defaults: static/model, $IMGPICK_HOME/gallery (`scripts/setup.sh demo`'s wallpaper packages), K = 2 4).
//! Prints one row per photo, then per rule how many it scales, the median cosine (of all, of the scaled ones),
//! the min and how many fall below 0.999.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasm_model::image_encoder::{decode_image, decode_scaled, flatten_onto_white, normalize, probe_image, resize_center_crop, ImageEncoder, DECODED_SIDE_PER_INPUT};

const MIN_PIXELS: u64 = 2_000_000;

fn jpegs_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            jpegs_under(&path, out)?;
        } else if path.extension().is_some_and(|x| matches!(x.to_string_lossy().to_lowercase().as_str(), "jpg" | "jpeg")) {
            out.push(path);
        }
    }
    Ok(())
}

/// The downscale a rule "shorter side ≥ `k` × `input`" picks (`jpeg_downscale` with another factor).
fn downscale_for(short_side: u32, input: u32, k: u32) -> u32 {
    [8, 4, 2].into_iter().find(|&d| short_side.div_ceil(d) >= k * input).unwrap_or(1)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let model_dir = args.next().map(PathBuf::from).unwrap_or_else(|| root.join("static/model"));
    let home = std::env::var_os("IMGPICK_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/imgpick")));
    let photos = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => home.ok_or("no photos folder given and neither IMGPICK_HOME nor HOME is set")?.join("gallery"),
    };
    let mut rules: Vec<u32> = args.map(|k| k.parse()).collect::<Result<_, _>>()?;
    if rules.is_empty() {
        rules = vec![2, 4];
    }
    let read = |f: &str| std::fs::read(model_dir.join(f));
    let manifest = String::from_utf8(read("manifest.json")?)?;
    let m: wasm_model::Manifest = serde_json::from_str(&manifest)?;
    let encoder_file = m.files.image_encoder.clone().ok_or("the model has no image encoder: run scripts/build-image-encoder.sh")?;
    let head_file = m.files.image_head.clone().ok_or("the model has no image head")?;
    let enc: ImageEncoder = wasm_model::engine::standalone_image_encoder(&manifest, &read(&encoder_file)?, &read(&head_file)?)?;
    let cfg = enc.config().clone();
    let input = cfg.image_size as u32;
    let embed = |img: &image::DynamicImage| enc.embed_input(&normalize(&resize_center_crop(&flatten_onto_white(img), input), cfg.mean, cfg.std));

    let mut files = Vec::new();
    jpegs_under(&photos, &mut files).map_err(|e| format!("cannot list {}: {e}", photos.display()))?;
    files.sort();
    let mut seen = HashSet::new();
    // per rule: (cosine, scaled, photo name)
    let mut results: Vec<Vec<(f64, bool, String)>> = vec![Vec::new(); rules.len()];
    println!("| photo | size | {} |", rules.iter().map(|k| format!("{k}×: 1/d, cosine")).collect::<Vec<_>>().join(" | "));
    println!("|---|---|{}", "---|".repeat(rules.len()));
    for path in &files {
        let bytes = std::fs::read(path)?;
        let Ok(info) = probe_image(&bytes) else { continue };
        if u64::from(info.width) * u64::from(info.height) < MIN_PIXELS || !seen.insert(Sha256::digest(&bytes)) {
            continue;
        }
        let full = embed(&decode_image(&bytes)?)?;
        let name = path.strip_prefix(&photos).unwrap_or(path).display().to_string();
        let mut cells = Vec::new();
        for (k, out) in rules.iter().zip(&mut results) {
            let d = downscale_for(info.width.min(info.height), input, *k);
            let scaled = if d > 1 { decode_scaled(&bytes, d)? } else { None };
            let cos = match scaled {
                Some(img) => cosine(&embed(&img)?, &full),
                None => 1.0, // not scaled (or a JPEG the scaled decoder does not take): the full decode itself
            };
            cells.push(format!("1/{d}, {cos:.5}"));
            out.push((cos, d > 1, name.clone()));
        }
        println!("| {name} | {}×{} | {} |", info.width, info.height, cells.join(" | "));
    }
    if results[0].is_empty() {
        return Err(format!("no JPEG of ≥ {MIN_PIXELS} pixels under {}", photos.display()).into());
    }
    println!("\n| rule (shorter side ≥ K × {input}) | photos (scaled) | median cosine (of the scaled) | below 0.999 | min cosine |\n|---|---|---|---|---|");
    for (k, mut r) in rules.iter().zip(results) {
        r.sort_by(|a, b| a.0.total_cmp(&b.0));
        let shipped = if *k == DECODED_SIDE_PER_INPUT { " (shipped)" } else { "" };
        let below = r.iter().filter(|(c, ..)| *c < 0.999).count();
        let scaled: Vec<f64> = r.iter().filter(|(_, s, _)| *s).map(|(c, ..)| *c).collect();
        let scaled_median = scaled.get(scaled.len() / 2).map_or("-".into(), |c| format!("{c:.5}"));
        let (all, min) = (r[r.len() / 2].0, &r[0]);
        println!("| {k}×{shipped} | {} ({}) | {all:.5} ({scaled_median}) | {below} | {:.5} ({}) |", r.len(), scaled.len(), min.0, min.2);
    }
    Ok(())
}
