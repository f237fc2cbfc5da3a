//! How many near-duplicates a query's default top 20 shows, and how many are left after collapsing them, with
//! "more varied" (MMR) and with both (issue #20's "Variety"; docs/benchmarks.md "Writer's workflow:
//! near-duplicates"). Prints a Markdown table.
//!
//! ```sh
//! cargo run --release -p wasm-model --example workflow_duplicates -- --model static/model \
//!     --gallery "demo=static/gallery=writer" \
//!     --gallery "Flickr8k val=FLICKR_VAL_GALLERY=../shared/data/flickr8k/captions_val.json"
//! ```
//! `--gallery NAME=DIR=PROMPTS`: a flat published gallery and its prompt set — `writer` (docs/gallery.md's 40
//! writer prompts), a COCO captions file (every caption is a prompt) or a text file (one prompt a line).
//! A result counts as a near-duplicate when its cosine with a better-ranked result of the same list reaches the
//! gallery's calibrated threshold (`Engine::duplicate_calibration`, the one collapse uses).
//! `--lambdas 0.4,0.6,0.8` adds a table of MMR (over the plain top 100, no collapse) at other trade-offs λ.

use std::path::Path;

use wasm_model::engine::{Engine, RefinedHit, Scope};
use wasm_model::rank::dot_f32;
use wasm_model::workflow::duplicates::{duplicate_pairs, duplicates_in};
use wasm_model::workflow::mmr::mmr;
use wasm_model::workflow::{Refinement, CANDIDATES};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const TOP: usize = 20;

/// docs/gallery.md "A writer's prompts".
const WRITER_PROMPTS: &[&str] = &[
    "a dog running on the beach", "a cat sleeping", "a horse in a field", "a bird flying", "fish swimming in the sea",
    "a monkey in a tree", "a bear in the woods", "a lion", "a woman smiling", "a man in a suit", "a girl dancing",
    "people dancing", "a couple in a bar", "a football player", "a castle on a hill", "a city at night",
    "an empty beach", "a path through the forest", "snowy mountains", "an old church", "a desert", "a bowl of fruit",
    "a cup of coffee", "vegetables", "a red car", "a train on the tracks", "a boat on the water",
    "an airplane in the sky", "a bicycle", "a bus", "a guitar", "tools on a workbench", "a clock",
    "a sunset over the sea", "flowers in a garden", "storm clouds", "a waterfall", "a lonely road",
    "a peaceful lake at dawn", "a windmill",
];

fn prompts(spec: &str) -> Res<(String, Vec<String>)> {
    if spec == "writer" {
        return Ok(("docs/gallery.md's 40 writer prompts".into(), WRITER_PROMPTS.iter().map(|s| s.to_string()).collect()));
    }
    let text = std::fs::read_to_string(spec).map_err(|e| format!("{spec}: {e}"))?;
    let name = Path::new(spec).file_name().map_or(spec.to_string(), |n| n.to_string_lossy().into_owned());
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
        let captions: Vec<String> = json["annotations"]
            .as_array()
            .ok_or_else(|| format!("{spec}: a COCO captions file has \"annotations\""))?
            .iter()
            .filter_map(|a| a["caption"].as_str().map(|c| c.trim().to_string()))
            .collect();
        return Ok((format!("the {} captions of {name}", captions.len()), captions));
    }
    let lines: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    Ok((format!("{} prompts of {name}", lines.len()), lines))
}

/// Per configuration: near-duplicate results, prompts with any, results shared with the plain top 20, and the
/// pictures folded into the results' "+N similar".
#[derive(Default)]
struct Tally {
    duplicates: usize,
    pairs: usize,
    prompts_with: usize,
    kept: usize,
    folded: usize,
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |i: usize| args.get(i + 1).cloned().ok_or_else(|| format!("{} needs a value", args[i]));
    let (mut model, mut galleries, mut lambdas) = (None, Vec::new(), Vec::<f32>::new());
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--model" => model = Some(value(i)?),
            "--gallery" => galleries.push(value(i)?),
            "--lambdas" => lambdas = value(i)?.split(',').map(|l| l.trim().parse()).collect::<Result<_, _>>().map_err(|e| format!("--lambdas: {e}"))?,
            other => return Err(format!("unknown argument {other} (see the file's first comment)").into()),
        }
        i += 2;
    }
    let model = model.ok_or("--model DIR is needed")?;
    if galleries.is_empty() {
        return Err("give at least one --gallery NAME=DIR=PROMPTS".into());
    }
    let configs: [(&str, Refinement); 4] = [
        ("plain top 20", Refinement::default()),
        ("collapsed", Refinement { collapse: true, ..Default::default() }),
        ("more varied (MMR)", Refinement { vary: true, ..Default::default() }),
        ("collapsed + more varied", Refinement { collapse: true, vary: true, ..Default::default() }),
    ];
    let mut sweeps = Vec::new();
    println!("| gallery (images, near-duplicate pairs in it; prompts) | threshold (NN median, MAD) | top 20 | near-duplicate results per prompt | near-duplicate pairs per prompt | prompts with any | of the plain top 20 kept | pictures folded into \"+N similar\" per prompt |");
    println!("|---|---|---|---|---|---|---|---|");
    for spec in &galleries {
        let mut parts = spec.splitn(3, '=');
        let (Some(name), Some(dir), Some(prompt_spec)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("--gallery {spec:?}: expected NAME=DIR=PROMPTS").into());
        };
        let engine = Engine::open(&model, dir)?;
        if engine.partitioned().is_some() {
            return Err(format!("{dir}: give a flat gallery (the counts read its rows)").into());
        }
        let (described, prompts) = prompts(prompt_spec)?;
        let c = engine.duplicate_calibration()?;
        let vectors = |hits: &[RefinedHit]| hits.iter().map(|h| engine.gallery().row(h.hit.id as usize).expect("a ranked row")).collect::<Vec<_>>();
        let mut tallies: Vec<Tally> = configs.iter().map(|_| Tally::default()).collect();
        let mut sweep: Vec<Tally> = lambdas.iter().map(|_| Tally::default()).collect();
        // near-duplicate pairs anywhere in the gallery: what collapse could ever find
        let rows: Vec<Vec<f32>> = (0..engine.gallery_len()).filter_map(|i| engine.gallery().row(i)).collect();
        let in_gallery: usize = (0..rows.len()).map(|j| (0..j).filter(|&i| dot_f32(&rows[i], &rows[j]) >= c.threshold).count()).sum();
        let mut searched = 0;
        for prompt in &prompts {
            let Ok(plain) = engine.search_refined(prompt, TOP, Scope::All, &Refinement::default()) else { continue };
            searched += 1;
            let plain_ids: Vec<u32> = plain.iter().map(|h| h.hit.id).collect();
            for ((_, r), t) in configs.iter().zip(&mut tallies) {
                let hits = if r.is_plain() { plain.clone() } else { engine.search_refined(prompt, TOP, Scope::All, r)? };
                let v = vectors(&hits);
                let d = duplicates_in(&v, c.threshold);
                t.duplicates += d;
                t.pairs += duplicate_pairs(&v, c.threshold);
                t.prompts_with += usize::from(d > 0);
                t.kept += hits.iter().filter(|h| plain_ids.contains(&h.hit.id)).count();
                t.folded += hits.iter().map(|h| h.similar.len()).sum::<usize>();
            }
            if !lambdas.is_empty() {
                let top = engine.search_refined(prompt, CANDIDATES, Scope::All, &Refinement::default())?;
                let (scores, v): (Vec<f32>, Vec<Vec<f32>>) = top.iter().map(|h| (h.hit.score, engine.gallery().row(h.hit.id as usize).expect("a ranked row"))).unzip();
                for (&lambda, t) in lambdas.iter().zip(&mut sweep) {
                    let order = mmr(&scores, &v, TOP, lambda);
                    let picked: Vec<Vec<f32>> = order.iter().map(|&i| v[i].clone()).collect();
                    let d = duplicates_in(&picked, c.threshold);
                    t.duplicates += d;
                    t.pairs += duplicate_pairs(&picked, c.threshold);
                    t.prompts_with += usize::from(d > 0);
                    t.kept += order.iter().filter(|&&i| i < TOP).count();
                }
            }
        }
        sweeps.push((name.to_string(), searched, sweep));
        let n = searched.max(1) as f64;
        for (k, ((label, _), t)) in configs.iter().zip(&tallies).enumerate() {
            let first = if k == 0 {
                format!(
                    "{name} ({} images, {in_gallery} near-duplicate pairs; {described}, {searched} searched) | {:.3} ({:.3}, {:.3}) |",
                    engine.gallery_len(),
                    c.threshold,
                    c.median,
                    c.mad
                )
            } else {
                " | |".to_string()
            };
            println!(
                "| {first} {label} | {:.2} | {:.2} | {:.1} % | {:.1} / {TOP} | {:.2} |",
                t.duplicates as f64 / n,
                t.pairs as f64 / n,
                100.0 * t.prompts_with as f64 / n,
                t.kept as f64 / n,
                t.folded as f64 / n
            );
        }
    }
    if !lambdas.is_empty() {
        println!("\n| gallery | MMR λ over the plain top {CANDIDATES} | near-duplicate results per prompt | prompts with any | of the plain top 20 kept |");
        println!("|---|---|---|---|---|");
        for (name, searched, sweep) in &sweeps {
            let n = (*searched).max(1) as f64;
            for (&lambda, t) in lambdas.iter().zip(sweep) {
                println!("| {name} | {lambda} | {:.2} | {:.1} % | {:.1} / {TOP} |", t.duplicates as f64 / n, 100.0 * t.prompts_with as f64 / n, t.kept as f64 / n);
            }
        }
    }
    Ok(())
}
