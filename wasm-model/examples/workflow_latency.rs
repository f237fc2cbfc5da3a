//! Native latency of the writer's workflow (issue #20; docs/benchmarks.md "Writer's workflow: near-duplicates"):
//! a passage of 10 sentences, a feedback re-rank (2 👍 + 1 👎), MMR over the top 100, near-duplicate collapse
//! (each alone on the top 100's vectors, and as a whole refined query), the plain search they add to, and the
//! one-time calibration. Prints a Markdown table of medians and 90th percentiles per gallery.
//!
//! ```sh
//! RAYON_NUM_THREADS=1 cargo run --release -p wasm-model --example workflow_latency -- --model static/model \
//!     --gallery "default=static/gallery" --gallery "100k=target/h8/g100k" [--runs 40]
//! ```
//! (a 100,000-image gallery: `examples/bench_partitioned.rs synth --count 100000`, real vectors' distribution.)

use std::time::Instant;

use wasm_model::engine::{Engine, Scope};
use wasm_model::workflow::duplicates::collapse;
use wasm_model::workflow::mmr::{mmr, MMR_LAMBDA};
use wasm_model::workflow::{Refinement, CANDIDATES};

type Res<T> = Result<T, Box<dyn std::error::Error>>;
/// A prompt's top 100: ids, scores, vectors.
type Top = (Vec<u32>, Vec<f32>, Vec<Vec<f32>>);

const PROMPTS: &[&str] = &[
    "a dog running on the beach", "a horse in a field", "a bird flying", "a woman smiling", "a city at night",
    "a path through the forest", "snowy mountains", "a bowl of fruit", "a red car", "a boat on the water",
    "a guitar", "flowers in a garden", "storm clouds", "a lonely road", "a peaceful lake at dawn", "children playing",
];

/// Ten sentences in three paragraphs, as a travel piece would have them.
const PASSAGE: &str = "We left the city at dawn. The road climbed through pine forest towards the pass. \
Snow still lay on the highest peaks.\n\nBy noon we reached a lake so still it mirrored the mountains. A family \
was picnicking on the shore while their dog chased sticks into the water. Two kayaks drifted near the far bank.\n\n\
In the evening the village square filled with people. Musicians played by the old church. Children ran between \
the market stalls selling fruit and bread. We ate outside until the stars came out.";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Median and 90th percentile (ms) of `runs` calls of `f(i)`.
fn time<T>(runs: usize, mut f: impl FnMut(usize) -> Res<T>) -> Res<(f64, f64)> {
    std::hint::black_box(f(0)?); // warm (caches, first allocation)
    let mut ms = Vec::with_capacity(runs);
    for i in 0..runs {
        let t = Instant::now();
        std::hint::black_box(f(i)?);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok((percentile(&ms, 0.5), percentile(&ms, 0.9)))
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |i: usize| args.get(i + 1).cloned().ok_or_else(|| format!("{} needs a value", args[i]));
    let (mut model, mut galleries, mut runs) = (None, Vec::new(), 40usize);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--model" => model = Some(value(i)?),
            "--gallery" => galleries.push(value(i)?),
            "--runs" => runs = value(i)?.parse().map_err(|e| format!("--runs: {e}"))?,
            other => return Err(format!("unknown argument {other} (see the file's first comment)").into()),
        }
        i += 2;
    }
    let model = model.ok_or("--model DIR is needed")?;
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut names = Vec::new();
    let mut calibrations = Vec::new();
    for spec in &galleries {
        let (name, dir) = spec.split_once('=').ok_or_else(|| format!("--gallery {spec:?}: expected NAME=DIR"))?;
        let engine = Engine::open(&model, dir)?;
        names.push(format!("{name} ({} images)", engine.gallery_len()));
        let started = Instant::now();
        let threshold = engine.duplicate_calibration()?.threshold;
        let calibration = started.elapsed().as_secs_f64() * 1e3;
        let prompt = |i: usize| PROMPTS[i % PROMPTS.len()];
        // each prompt's top 100 (ids, scores, vectors), for the operations timed alone
        let tops: Vec<Top> = PROMPTS
            .iter()
            .map(|p| {
                let hits = engine.search_refined(p, CANDIDATES, Scope::All, &Refinement::default())?;
                let vectors = hits.iter().map(|h| engine.gallery().row(h.hit.id as usize).ok_or("a flat gallery's row")).collect::<Result<Vec<_>, _>>()?;
                Ok((hits.iter().map(|h| h.hit.id).collect(), hits.iter().map(|h| h.hit.score).collect(), vectors))
            })
            .collect::<Res<_>>()?;
        let marks = |i: usize| {
            let ids = &tops[i % PROMPTS.len()].0;
            Refinement { up: vec![ids[3], ids[7]], down: vec![ids[0]], ..Default::default() }
        };
        let engine = &engine;
        let refined = |r: Refinement| move |i: usize| -> Res<_> { Ok(engine.search_refined(prompt(i), 20, Scope::All, &r)?) };
        let measured: Vec<(&str, (f64, f64))> = vec![
            ("plain search, top 20 (what the rest adds to)", time(runs, |i| Ok(engine.search(prompt(i), 20)?))?),
            ("passage of 10 sentences (ideas + whole, 4 + 20 results)", time(runs, |_| Ok(engine.passage(PASSAGE, 4, 20, Scope::All, &Refinement::default())?))?),
            ("feedback re-rank: query with 2 👍 + 1 👎, top 20", time(runs, |i| Ok(engine.search_refined(prompt(i), 20, Scope::All, &marks(i))?))?),
            ("MMR over the top 100 alone (20 picked)", time(runs, |i| { let t = &tops[i % PROMPTS.len()]; Ok(mmr(&t.1, &t.2, 20, MMR_LAMBDA)) })?),
            ("collapse of the top 100 alone", time(runs, |i| Ok(collapse(&tops[i % PROMPTS.len()].2, threshold)))?),
            ("query with vary=1 (top 100 → MMR → 20)", time(runs, refined(Refinement { vary: true, ..Default::default() }))?),
            ("query with collapse=1 (top 100 → groups → 20)", time(runs, refined(Refinement { collapse: true, ..Default::default() }))?),
            ("query with collapse=1&vary=1", time(runs, refined(Refinement { collapse: true, vary: true, ..Default::default() }))?),
        ];
        for (k, (label, (median, p90))) in measured.into_iter().enumerate() {
            if rows.len() <= k {
                rows.push((label.to_string(), Vec::new()));
            }
            rows[k].1.push(format!("{median:.2} / {p90:.2}"));
        }
        calibrations.push(format!("{calibration:.1} (once)"));
    }
    rows.push(("near-duplicate calibration (once per gallery, cached)".into(), calibrations));
    println!("| operation (ms, median / p90; {runs} runs, 1 thread) | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(names.len()));
    for (label, values) in rows {
        println!("| {label} | {} |", values.join(" | "));
    }
    Ok(())
}
