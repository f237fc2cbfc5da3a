//! `trainer calibrate`: the score from which a text query's result counts as a strong match, measured on a
//! captioned validation set with the model's shipped scoring, and written into the model directory's manifest
//! (`retrieval.strong_match`; the weights and `model_id` stay as they are).
//!
//! Every caption of the set is a query over all its images, scored as the engine scores text queries (the
//! scoring's image views, `cosine − hubness_weight × hubness`). A query's top result is *right* when it is the
//! caption's own image. Sorted by top score, the queries above a threshold have a top-1 precision; the threshold
//! written is the lowest score at which that precision still reaches `--precision` (over at least
//! `--min-queries` queries, so a handful of lucky top scores cannot set it). Scores are absolute (they do not
//! depend on the gallery's size), so the threshold carries over to any gallery. The precision is a lower bound:
//! another image that fits the caption as well counts as wrong here.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Serialize;
use wasm_model::model_dir::StrongMatch;

use crate::eval::{score_model_dir, EvalSet, Scored};

/// `trainer calibrate`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CalibrateArgs {
    /// Model directory whose manifest gets the threshold (it must have `retrieval` scoring).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub set: EvalSet,
    /// Top-1 precision the strong matches must reach: the share of queries above the threshold whose top
    /// result is their own image.
    /// 0.5 is about twice the shipped model's overall rate on Flickr8k val (t2i R@1 = 0.257); since only the
    /// caption's own image counts as right there, the share of fitting top results is higher. (At 0.4 the
    /// max-pooling model's threshold, 0.2624, marked a strong but wrong top result for 9 of 40 writer prompts on the
    /// default gallery whose top 5 has nothing fitting; at 0.5, 0.3028, for 4 — as many as the model before it.)
    #[arg(long, default_value_t = 0.5, value_parser = crate::bounds::SHARE.parser())]
    pub precision: f64,
    /// Fewest queries above the threshold (a few lucky high scores must not set it).
    #[arg(long, default_value_t = 100, value_parser = crate::bounds::MIN_QUERIES.parser())]
    pub min_queries: usize,
    /// Print the measurements without writing the manifest.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A query's top result: its score and whether it is the query's own image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopResult {
    pub score: f32,
    pub right: bool,
}

/// Each caption's top result over all the images, as the engine ranks a text query (score `cosine − penalty`,
/// ties to the lower index).
pub fn top_results(s: &Scored) -> Vec<TopResult> {
    let n = s.images.size()[0] as usize;
    let sims = s.captions.to_kind(tch::Kind::Float).matmul(&s.images.to_kind(tch::Kind::Float).tr()).contiguous();
    let sims: Vec<f32> = Vec::<f32>::try_from(sims.flatten(0, 1)).expect("f32 similarities");
    let zero = vec![0.0; n];
    let penalty = s.t2i_penalty.as_deref().unwrap_or(&zero);
    sims.chunks(n)
        .zip(&s.caption_image)
        .map(|(row, &own)| {
            let (best, score) = row.iter().zip(penalty).map(|(c, p)| c - p).enumerate().fold((0, f32::NEG_INFINITY), |(bi, bs), (i, x)| {
                if x > bs {
                    (i, x)
                } else {
                    (bi, bs)
                }
            });
            TopResult { score, right: best == own }
        })
        .collect()
}

/// The threshold chosen from the queries' top results, and what it gives on them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub min_score: f32,
    /// Top-1 precision of the queries whose top score is at least `min_score`.
    pub precision: f64,
    /// Their share of all queries.
    pub coverage: f64,
    pub above: usize,
    pub queries: usize,
}

/// Precision and coverage at every distinct top score, highest first: `(score, precision, above)`.
fn curve(tops: &[TopResult]) -> Vec<(f32, f64, usize)> {
    let mut sorted: Vec<TopResult> = tops.iter().copied().filter(|t| t.score.is_finite()).collect();
    sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    let mut right = 0usize;
    for (i, t) in sorted.iter().enumerate() {
        right += usize::from(t.right);
        // the end of a run of equal scores: a threshold includes all of them or none
        if sorted.get(i + 1).is_none_or(|next| next.score < t.score) {
            out.push((t.score, right as f64 / (i + 1) as f64, i + 1));
        }
    }
    out
}

/// The lowest top score at which the precision of the queries at or above it is still `target`, with at least
/// `min_queries` of them; an error naming the best precision reached when none is.
pub fn choose(tops: &[TopResult], target: f64, min_queries: usize) -> Result<Choice> {
    let c = curve(tops);
    let eligible = c.iter().filter(|(_, _, above)| *above >= min_queries);
    match eligible.clone().rfind(|(_, p, _)| *p >= target) {
        Some(&(min_score, precision, above)) => {
            Ok(Choice { min_score, precision, coverage: above as f64 / tops.len() as f64, above, queries: tops.len() })
        }
        None => {
            let best = eligible.map(|(_, p, _)| *p).fold(f64::NAN, f64::max);
            bail!(
                "no threshold reaches a top-1 precision of {target} over at least {min_queries} of the {} queries \
                 (the best is {best:.3}); lower --precision or --min-queries",
                tops.len()
            )
        }
    }
}

/// Precision of the queries whose top score falls in each band of `edges` (descending), for the report:
/// `(low, high, queries, precision)`; the first band has no upper edge, the last no lower one.
pub fn bands(tops: &[TopResult], edges: &[f32]) -> Vec<(Option<f32>, Option<f32>, usize, f64)> {
    let mut out = Vec::new();
    let mut bounds: Vec<Option<f32>> = vec![None];
    bounds.extend(edges.iter().map(|&e| Some(e)));
    bounds.push(None);
    for w in bounds.windows(2) {
        let (high, low) = (w[0], w[1]);
        let inside: Vec<&TopResult> = tops
            .iter()
            .filter(|t| high.is_none_or(|h| t.score < h) && low.is_none_or(|l| t.score >= l))
            .collect();
        let right = inside.iter().filter(|t| t.right).count();
        out.push((low, high, inside.len(), if inside.is_empty() { f64::NAN } else { right as f64 / inside.len() as f64 }));
    }
    out
}

/// What `trainer calibrate` reports (and, unless a dry run, wrote).
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationReport {
    pub choice: Choice,
    pub target_precision: f64,
    pub images: usize,
    /// Top-1 precision of all queries (= t2i R@1).
    pub precision_all: f64,
    /// The threshold for other targets: `(target, min_score, coverage)`, for choosing another one.
    pub alternatives: Vec<(f64, Option<f32>, Option<f64>)>,
    /// Top-1 precision by top-score band around the threshold: `(low, high, queries, precision)`.
    pub bands: Vec<(Option<f32>, Option<f32>, usize, f64)>,
    pub written: bool,
}

/// Runs `trainer calibrate`.
pub fn calibrate(args: &CalibrateArgs) -> Result<CalibrationReport> {
    let set = &args.set;
    let scored = score_model_dir(&args.model, &set.captions, &set.images, &set.cache, set.weights.clone(), false)?;
    let manifest = wasm_model::ModelDir::load(&args.model)?.manifest;
    if manifest.retrieval.is_none() {
        bail!("{} has no `retrieval` scoring in its manifest: the threshold is calibrated for it (export the model with `trainer export`)", args.model.display());
    }
    let tops = top_results(&scored);
    let choice = choose(&tops, args.precision, args.min_queries)?;
    let alternatives = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
        .iter()
        .map(|&p| match choose(&tops, p, args.min_queries) {
            Ok(c) => (p, Some(c.min_score), Some(c.coverage)),
            Err(_) => (p, None, None),
        })
        .collect();
    // bands 0.05 wide, two above the threshold and three below it
    let edges: Vec<f32> = (-2..=3).map(|k| choice.min_score - 0.05 * k as f32).collect();
    let bands = bands(&tops, &edges);
    let report = CalibrationReport {
        bands,
        precision_all: tops.iter().filter(|t| t.right).count() as f64 / tops.len().max(1) as f64,
        images: scored.coverage.images_used,
        target_precision: args.precision,
        alternatives,
        written: !args.dry_run,
        choice,
    };
    if !args.dry_run {
        let c = &report.choice;
        let strong = StrongMatch {
            min_score: c.min_score,
            target_precision: args.precision as f32,
            precision: c.precision as f32,
            coverage: c.coverage as f32,
            queries: c.queries,
            images: report.images,
            captions: file_name(&set.captions),
        };
        wasm_model::ModelDir::set_strong_match(&args.model, Some(strong))?;
    }
    Ok(report)
}

/// The captions file's name only: manifests never hold paths of the machine they were made on.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

impl std::fmt::Display for CalibrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.choice;
        writeln!(f, "{} queries over {} images; top-1 precision of all of them {:.3}", c.queries, self.images, self.precision_all)?;
        writeln!(
            f,
            "strong match from score {:.4}: {} queries ({:.1} %) reach it, top-1 precision {:.3} (asked: {})",
            c.min_score,
            c.above,
            100.0 * c.coverage,
            c.precision,
            self.target_precision
        )?;
        writeln!(f, "top-1 precision by top score:")?;
        for (low, high, n, p) in &self.bands {
            let range = match (low, high) {
                (Some(l), Some(h)) => format!("{l:.3} – {h:.3}"),
                (Some(l), None) => format!("≥ {l:.3}"),
                (None, Some(h)) => format!("< {h:.3}"),
                (None, None) => "all".into(),
            };
            writeln!(f, "  {range:>15}: {n:>5} queries, precision {p:.3}")?;
        }
        writeln!(f, "other targets (precision → threshold, share of queries above):")?;
        for (p, t, cov) in &self.alternatives {
            match (t, cov) {
                (Some(t), Some(cov)) => writeln!(f, "  {p:.1} → {t:.4}, {:.1} %", 100.0 * cov)?,
                _ => writeln!(f, "  {p:.1} → not reached")?,
            }
        }
        write!(f, "{}", if self.written { "written to the manifest (retrieval.strong_match)" } else { "dry run: the manifest is unchanged" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    fn t(score: f32, right: bool) -> TopResult {
        TopResult { score, right }
    }

    /// Precision falls as the threshold falls; the lowest threshold that keeps the target is chosen.
    #[test]
    fn chooses_the_lowest_score_that_keeps_the_precision() {
        // scores 0.9 … 0.0: right, right, wrong, right, wrong, wrong, right, wrong, wrong, wrong
        let rights = [true, true, false, true, false, false, true, false, false, false];
        let tops: Vec<TopResult> = rights.iter().enumerate().map(|(i, &r)| t(0.9 - 0.1 * i as f32, r)).collect();
        // cumulative precision: 1, 1, .67, .75, .6, .5, .57, .5, .44, .4
        let c = choose(&tops, 0.5, 1).unwrap();
        assert!((c.min_score - 0.2).abs() < 1e-6, "{c:?}"); // the 8th query (0.2): 4 of 8
        assert_eq!((c.above, c.queries), (8, 10));
        assert!((c.precision - 0.5).abs() < 1e-9 && (c.coverage - 0.8).abs() < 1e-9);
        let c = choose(&tops, 0.7, 1).unwrap();
        assert!((c.min_score - 0.6).abs() < 1e-6, "{c:?}"); // 3 of 4
        // at least 5 queries above: 0.7 is never reached there
        let e = choose(&tops, 0.7, 5).unwrap_err().to_string();
        assert!(e.contains("no threshold") && e.contains("0.600"), "{e}");
        assert!(choose(&tops, 0.0, 1).unwrap().above == 10, "target 0: everything is strong");
    }

    /// Equal top scores are all above a threshold or all below it.
    #[test]
    fn ties_stay_together() {
        let tops = [t(0.5, true), t(0.4, true), t(0.4, false), t(0.4, false), t(0.1, false)];
        // a cut inside the 0.4 run would give 2 of 2 at 0.4; the whole run gives 2 of 4
        let c = choose(&tops, 0.6, 1).unwrap();
        assert_eq!((c.min_score, c.above), (0.5, 1));
        assert_eq!(choose(&tops, 0.5, 1).unwrap().above, 4);
    }

    #[test]
    fn bands_count_each_query_once() {
        let tops = [t(0.5, true), t(0.35, false), t(0.3, true), t(0.1, false), t(-0.2, false)];
        let b = bands(&tops, &[0.4, 0.2, 0.0]);
        assert_eq!(b.iter().map(|x| x.2).sum::<usize>(), tops.len());
        assert_eq!(b[0], (Some(0.4), None, 1, 1.0));
        assert_eq!((b[1].2, b[1].3), (2, 0.5));
        assert_eq!((b[3].0, b[3].2), (None, 1));
    }

    /// `top_results` ranks as the engine does: cosine less the penalty, ties to the lower index.
    #[test]
    fn top_results_apply_the_penalty_and_break_ties_low() {
        let images = crate::model::l2_normalize(&Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0]).view([3, 2]));
        let captions = crate::model::l2_normalize(&Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0]).view([3, 2]));
        let mut s = Scored { images, captions, caption_image: vec![0, 1, 2], t2i_penalty: None, coverage: Default::default() };
        let tops = top_results(&s);
        assert_eq!(tops.iter().map(|t| t.right).collect::<Vec<_>>(), [true, true, true]);
        assert!((tops[0].score - 1.0).abs() < 1e-6);
        // a penalty of 0.5 on image 2 and 1.0 on image 0: caption 0 now prefers image 2 (0.707 − 0.5 > 1 − 1)
        s.t2i_penalty = Some(vec![1.0, 0.0, 0.5]);
        let tops = top_results(&s);
        assert!(!tops[0].right && (tops[0].score - (0.5f32.sqrt() - 0.5)).abs() < 1e-5, "{tops:?}");
        // equal scores: the lower index wins
        let tie = Scored {
            images: Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0]).view([2, 2]).to_kind(Kind::Float),
            captions: Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0]).view([2, 2]),
            caption_image: vec![0, 1],
            t2i_penalty: None,
            coverage: Default::default(),
        };
        assert_eq!(top_results(&tie).iter().map(|t| t.right).collect::<Vec<_>>(), [true, false]);
    }
}
