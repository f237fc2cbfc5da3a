//! How the shipped scoring (manifest `retrieval`) was chosen: VSE metrics on Flickr8k val of a model directory
//! with plain cosine, with the averaged original + mirrored image views, and with the hubness correction
//! (CSLS: text queries score `cos - weight * hubness`) for several caption-bank sizes, `k` and weights.
//! Banks are evenly spread training captions, as `trainer export` builds them. Val and train image features
//! come from the feature cache (extracted on first use).
//!   cargo run --release -p trainer --example scoring_sweep -- [MODEL_DIR] [FLICKR8K_DIR]
use std::path::PathBuf;

use tch::{Kind, Tensor};
use trainer::eval::{evaluate, evaluate_scored, hubness};
use trainer::backbone::BackboneKindExt;
use trainer::features::{extract, CacheSpec, View};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let model = PathBuf::from(args.get(1).map_or("static/model", String::as_str));
    let f8k = args.get(2).map_or_else(trainer::data::flickr8k_location, PathBuf::from);
    let device = trainer::default_device();
    let loaded = trainer::load::load_model_dir(&model, device)?;
    let spec = CacheSpec {
        backbone: loaded.backbone,
        weights: loaded.backbone.installed_weights(),
        split: loaded.model.tail.as_ref().map(|t| t.from),
    };
    let cache = PathBuf::from("data-cache/features");
    let ds = trainer::data::Dataset::load(&[f8k.join("captions_val.json")])?.with_captions()?.truncate_captions(5);
    let files = ds.image_paths(&f8k.join("images"));
    let embed = |view: View| -> anyhow::Result<Tensor> {
        let f = extract(&cache, &spec, view, &files, device)?;
        let input = f.act.as_ref().unwrap_or(&f.pooled);
        Ok(tch::no_grad(|| loaded.model.embed_cached(&input.to_kind(Kind::Float).to_device(device))).to_device(tch::Device::Cpu))
    };
    let single = embed(View::ORIGINAL)?;
    let views = trainer::model::l2_normalize(&(&single + embed(View::FLIPPED)?));
    let mut seqs = Vec::new();
    let mut owner = Vec::new();
    for (i, im) in ds.images.iter().enumerate() {
        for c in &im.captions {
            seqs.push(trainer::text::encode(&loaded.vocab, c));
            owner.push(i);
        }
    }
    let caps = trainer::model::encode_texts(&loaded.model.text, &seqs, 256, device);
    println!("{:<44} {}", "plain cosine, original view", evaluate(&single, &caps, &owner));
    println!("{:<44} {}", "original + mirrored views", evaluate(&views, &caps, &owner));
    let train = [f8k.join("captions_train.json"), f8k.join("captions_train_extra.json")];
    let train = trainer::data::Dataset::load(&train)?.with_captions()?;
    let pairs = train.pairs();
    for size in [1024usize, 2048, 4096, pairs.len()] {
        let step = pairs.len() as f64 / size as f64;
        let seqs: Vec<Vec<i64>> = (0..size).map(|i| trainer::text::encode(&loaded.vocab, pairs[(i as f64 * step) as usize].0)).collect();
        let bank = trainer::model::encode_texts(&loaded.model.text, &seqs, 256, device);
        for k in [3usize, 10, 50] {
            let hubs = hubness(&views, &bank, k);
            for weight in [0.25f32, 0.5, 0.75] {
                let penalty: Vec<f32> = hubs.iter().map(|h| weight * h).collect();
                let name = format!("views + hubness: bank {size}, k {k}, weight {weight}");
                println!("{name:<44} {}", evaluate_scored(&views, &caps, &owner, Some(&penalty)));
            }
        }
    }
    Ok(())
}
