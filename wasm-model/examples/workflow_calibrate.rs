//! The measurements behind the writer's workflow constants (issue #20; `workflow::duplicates` and
//! `workflow::passage` cite this file):
//!
//! - per gallery: the near-duplicate calibration (`Engine::duplicate_calibration`: nearest-neighbour median, MAD,
//!   threshold) and the 99.9th percentile of the cosines of random pairs of its pictures (what the floor 0.70
//!   keeps apart);
//! - with a COCO captions file: the share of caption pairs of the same picture, and of different pictures, whose
//!   text vectors reach `IDEA_MERGE_COSINE` (when adjacent sentences become one idea).
//!
//! ```sh
//! cargo run --release -p wasm-model --example workflow_calibrate -- --model static/model \
//!     --gallery static/gallery --gallery FLICKR_VAL_GALLERY --captions ../shared/data/flickr8k/captions_val.json
//! ```

use std::collections::HashMap;

use wasm_model::engine::Engine;
use wasm_model::rank::dot_f32;
use wasm_model::testutil::Rng;
use wasm_model::workflow::passage::IDEA_MERGE_COSINE;
use wasm_model::{ModelDir, TextEncoder};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Random pairs drawn for the percentiles.
const PAIRS: usize = 200_000;

fn percentile(mut v: Vec<f32>, p: f64) -> f32 {
    v.sort_by(f32::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |i: usize| args.get(i + 1).cloned().ok_or_else(|| format!("{} needs a value", args[i]));
    let (mut model, mut galleries, mut captions) = (None, Vec::new(), None);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--model" => model = Some(value(i)?),
            "--gallery" => galleries.push(value(i)?),
            "--captions" => captions = Some(value(i)?),
            other => return Err(format!("unknown argument {other} (see the file's first comment)").into()),
        }
        i += 2;
    }
    let model = model.ok_or("--model DIR is needed")?;
    let mut rng = Rng::new(1);
    let mut pick = |n: usize| (rng.next_u64() % n as u64) as usize;

    println!("| gallery | images | nearest-neighbour median | MAD | threshold | random pairs: 99.9th percentile |");
    println!("|---|---|---|---|---|---|");
    for dir in &galleries {
        let engine = Engine::open(&model, dir)?;
        let c = engine.duplicate_calibration()?;
        let n = engine.gallery_len();
        let rows: Vec<Vec<f32>> = (0..n).filter_map(|i| engine.gallery().row(i)).collect();
        if rows.len() != n {
            return Err(format!("{dir}: give a flat gallery (its rows are read)").into());
        }
        let random: Vec<f32> = (0..PAIRS)
            .filter_map(|_| {
                let (a, b) = (pick(n), pick(n));
                (a != b).then(|| dot_f32(&rows[a], &rows[b]))
            })
            .collect();
        println!("| {dir} | {n} | {:.3} | {:.3} | {:.3} | {:.3} |", c.median, c.mad, c.threshold, percentile(random, 0.999));
    }

    if let Some(path) = captions {
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?)?;
        let mut by_image: HashMap<u64, Vec<String>> = HashMap::new();
        for a in json["annotations"].as_array().ok_or_else(|| format!("{path}: no \"annotations\""))? {
            if let (Some(image), Some(caption)) = (a["image_id"].as_u64(), a["caption"].as_str()) {
                by_image.entry(image).or_default().push(caption.to_string());
            }
        }
        let encoder = TextEncoder::new(&ModelDir::load(&model)?)?;
        let mut images: Vec<Vec<Vec<f32>>> = Vec::new();
        for (_, texts) in by_image.into_iter().collect::<std::collections::BTreeMap<_, _>>() {
            images.push(texts.iter().map(|t| encoder.encode(t)).collect::<Result<_, _>>()?);
        }
        let same: Vec<f32> = images
            .iter()
            .flat_map(|v| (0..v.len()).flat_map(move |j| (0..j).map(move |i| dot_f32(&v[i], &v[j]))))
            .collect();
        let different: Vec<f32> = (0..PAIRS)
            .filter_map(|_| {
                let (a, b) = (pick(images.len()), pick(images.len()));
                (a != b).then(|| dot_f32(&images[a][pick(images[a].len())], &images[b][pick(images[b].len())]))
            })
            .collect();
        let share = |v: &[f32]| 100.0 * v.iter().filter(|&&c| c >= IDEA_MERGE_COSINE).count() as f64 / v.len() as f64;
        println!("\n| caption pairs ({path}) | pairs | median cosine | reaching IDEA_MERGE_COSINE = {IDEA_MERGE_COSINE} |");
        println!("|---|---|---|---|");
        println!("| of the same picture | {} | {:.3} | {:.1} % |", same.len(), percentile(same.clone(), 0.5), share(&same));
        println!("| of different pictures (random) | {} | {:.3} | {:.1} % |", different.len(), percentile(different.clone(), 0.5), share(&different));
    }
    Ok(())
}
