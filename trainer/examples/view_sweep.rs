//! How the shipped image views (manifest `retrieval.image_views`) were chosen: VSE metrics on Flickr8k val of a
//! run (or several, as an ensemble of mean cosines) with different sets of averaged test-time views, plain and
//! with the hubness correction (bank 2,048, k 10, weight 0.5). Features of each view are cached.
//! Flickr8k is read from `$IMGPICK_FLICKR8K`, else `../shared/data/flickr8k`.
//!   cargo run --release -p trainer --example view_sweep -- RUN [RUN…]
use std::path::PathBuf;
use tch::{Kind, Tensor};
use trainer::eval::{evaluate, evaluate_scored, hubness};
use trainer::features::{extract, CacheSpec, View, Zoom};

fn main() -> anyhow::Result<()> {
    let runs: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    anyhow::ensure!(!runs.is_empty(), "usage: view_sweep RUN [RUN…]");
    let f8k = trainer::data::flickr8k_location();
    let device = trainer::default_device();
    let cache = PathBuf::from("data-cache/features");
    let ds = trainer::data::Dataset::load(&[f8k.join("captions_val.json")])?.with_captions()?.truncate_captions(5);
    let files = ds.image_paths(&f8k.join("images"));
    let train = [f8k.join("captions_train.json"), f8k.join("captions_train_extra.json")];
    let train = trainer::data::Dataset::load(&train)?.with_captions()?;
    let pairs = train.pairs();
    let views = View::all();
    // per run: one [N, D] embedding per view, captions, caption bank
    let mut per_run = Vec::new();
    let mut owner = Vec::new();
    for run in &runs {
        let (state, vocab, _vs, model) = trainer::run::load_run(run, trainer::run::Checkpoint::Best)?;
        let image = &state.config.image;
        let spec = CacheSpec { backbone: image.backbone.backbone, weights: image.backbone.weights(), split: image.finetune_from };
        let mut embs = Vec::new();
        for &view in &views {
            let f = extract(&cache, &spec, view, &files, device)?;
            let input = match (&model.tail, &f.act) { (Some(_), Some(a)) => a, _ => &f.pooled };
            embs.push(tch::no_grad(|| model.embed_cached(&input.to_kind(Kind::Float).to_device(device))));
        }
        let mut seqs = Vec::new();
        owner.clear();
        for (i, im) in ds.images.iter().enumerate() {
            for c in &im.captions {
                seqs.push(trainer::text::encode(&vocab, c));
                owner.push(i);
            }
        }
        let caps = trainer::model::encode_texts(&model.text, &seqs, 256, device);
        let step = pairs.len() as f64 / 2048.0;
        let bank: Vec<Vec<i64>> = (0..2048).map(|i| trainer::text::encode(&vocab, pairs[(i as f64 * step) as usize].0)).collect();
        let bank = trainer::model::encode_texts(&model.text, &bank, 256, device);
        per_run.push((embs, caps, bank));
    }
    let idx = |view: &View| views.iter().position(|v| v == view).unwrap();
    let zooms: Vec<View> = Zoom::ALL.iter().map(|&z| View::zoomed(z, false)).collect();
    let corners: Vec<View> = zooms[..4].to_vec();
    let mirrored = |vs: &[View]| vs.iter().map(|&v| View { flipped: true, ..v }).collect::<Vec<_>>();
    let base = vec![View::ORIGINAL, View::FLIPPED];
    let sets: Vec<(&str, Vec<View>)> = vec![
        ("original", vec![View::ORIGINAL]),
        ("original + flipped (session 3)", base.clone()),
        ("+ zoom tl, br", [base.clone(), vec![View::zoomed(Zoom::TopLeft, false), View::zoomed(Zoom::BottomRight, false)]].concat()),
        ("+ 4 corner zooms", [base.clone(), corners.clone()].concat()),
        ("+ 5 zooms", [base.clone(), zooms.clone()].concat()),
        ("+ 4 corner zooms, both mirrors", [base.clone(), corners.clone(), mirrored(&corners)].concat()),
        ("+ 5 zooms, both mirrors", [base.clone(), zooms.clone(), mirrored(&zooms)].concat()),
        ("5 zooms, both mirrors, no full view", [zooms.clone(), mirrored(&zooms)].concat()),
    ];
    for (label, names) in sets {
        let s = (runs.len() as f64).sqrt();
        let mut imgs = Vec::new();
        let (mut caps, mut banks) = (Vec::new(), Vec::new());
        for (embs, c, b) in &per_run {
            let sum = names.iter().map(|v| embs[idx(v)].shallow_clone()).reduce(|a, b| a + b).unwrap();
            imgs.push(trainer::model::l2_normalize(&sum) / s);
            caps.push(c / s);
            banks.push(b / s);
        }
        let (imgs, caps, bank) = (Tensor::cat(&imgs, 1), Tensor::cat(&caps, 1), Tensor::cat(&banks, 1));
        let penalty: Vec<f32> = hubness(&imgs, &bank, 10).iter().map(|h| 0.5 * h).collect();
        println!("{:<38} {:>2} views  cosine  {}", label, names.len(), evaluate(&imgs, &caps, &owner));
        println!("{:<38} {:>2} views  scored  {}", label, names.len(), evaluate_scored(&imgs, &caps, &owner, Some(&penalty)));
    }
    Ok(())
}
