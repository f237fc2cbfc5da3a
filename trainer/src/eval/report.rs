//! `trainer eval`: its flags, what it used and skipped ([`Coverage`]; `--strict` refuses any skip) and its
//! report (metrics, bootstrap intervals, a paired comparison with another model), as text or JSON.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Serialize;

use super::groups::{field_values, group_reports, GroupReport};
use super::{rank_ensemble, rank_model_dir};
use crate::data::Dataset;
use crate::metrics::{Interval, Metrics};

/// The captioned images a model is scored on and how their backbone features are made: the flags `trainer eval`
/// and `trainer calibrate` share.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalSet {
    /// COCO captions JSON of the evaluation set (e.g. Flickr8k val: 1,000 images × 5 captions).
    #[arg(long)]
    pub captions: PathBuf,
    /// Folder with its images.
    #[arg(long)]
    pub images: PathBuf,
    /// Feature cache folder.
    #[arg(long, default_value = "data-cache/features")]
    pub cache: PathBuf,
    /// Backbone weights; default: the installed ones for the model's backbone.
    #[arg(long)]
    pub weights: Option<PathBuf>,
}

/// `trainer eval`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Model directory (manifest.json, weights, vocab.txt).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub set: EvalSet,
    /// Print one JSON object (t2i_r1 … rsum) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Plain cosine of single-view image vectors, ignoring the manifest's `retrieval` scoring (averaged
    /// original + mirrored views, hubness correction of text queries).
    #[arg(long)]
    pub plain: bool,
    /// Also give a 95 % interval for every metric: the evaluation images are resampled with replacement
    /// N times (default 1000), with their captions. It says how far the numbers could move on another
    /// evaluation set of this size.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "1000", value_parser = crate::bounds::BOOTSTRAP.parser(), allow_negative_numbers = true)]
    pub bootstrap: Option<usize>,
    /// Score this model together with another one (repeatable): each image-caption score is the mean of the
    /// models' scores, as if their vectors were concatenated. Measures what an ensemble of independently
    /// trained models (e.g. seeds) would gain; the other flags treat the ensemble as the model.
    #[arg(long, value_name = "DIR")]
    pub ensemble_with: Vec<PathBuf>,
    /// Another model directory to compare with on the same queries: prints its metrics and the difference
    /// (this model − that one) with a paired 95 % bootstrap interval; an interval that excludes 0 is
    /// unlikely to be luck of this evaluation set.
    #[arg(long, value_name = "DIR")]
    pub compare: Option<PathBuf>,
    /// With --compare: rank the other model on this image folder instead (the same images prepared another
    /// way, e.g. a copy whose cut-outs are redrawn; `--model` and `--compare` may then be the same model).
    /// It must hold the same images in the same order with the same captions.
    #[arg(long, value_name = "DIR", requires = "compare")]
    pub compare_images: Option<PathBuf>,
    /// With --compare-images: the captions file of that folder (default: --captions).
    #[arg(long, value_name = "FILE", requires = "compare_images")]
    pub compare_captions: Option<PathBuf>,
    /// Seed of the bootstrap resampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fail when any image or caption had to be skipped (unreadable or missing image, caption without words)
    /// instead of reporting the count.
    #[arg(long)]
    pub strict: bool,
    /// Also report the metrics per value of this field of the captions file's image records (e.g. `kind` in
    /// the demo gallery: photo, cutout, clipart, painting). A group's queries are the captions of its images
    /// (t2i) and its images (i2t), each still ranked against the WHOLE gallery, not only its own group. With
    /// --bootstrap / --compare each group gets its interval, resampling its own images (a small group: a
    /// wide interval).
    #[arg(long, value_name = "FIELD")]
    pub group_by: Option<String>,
}

/// What an evaluation used and what it left out, and why: an image that cannot be read (missing, broken) takes
/// its captions with it; a caption without a word is no query. Counts go into the report and its JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Coverage {
    /// Images in the ranked gallery.
    pub images_used: usize,
    pub images_skipped: usize,
    /// Captions that ranked the images (text-to-image queries).
    pub queries_used: usize,
    pub queries_skipped: usize,
    /// Each skip: (the image file, or the caption and its image), why; in file order.
    #[serde(skip)]
    pub skipped: Vec<(String, String)>,
    /// The captions file's ids of the images used, in file order (the ranked gallery's rows).
    #[serde(skip)]
    pub image_ids: Vec<u64>,
}

impl Coverage {
    /// The coverage of `ds` when `readable[i]` says whether image `i` could be read.
    pub fn of(ds: &Dataset, readable: &[bool]) -> Coverage {
        let mut c = Coverage::default();
        for (im, &ok) in ds.images.iter().zip(readable) {
            if !ok {
                c.images_skipped += 1;
                c.queries_skipped += im.captions.len();
                c.skipped.push((im.file_name.clone(), format!("missing or unreadable (see the log), its {} captions with it", im.captions.len())));
                continue;
            }
            c.images_used += 1;
            c.image_ids.push(im.id);
            for caption in &im.captions {
                if super::has_words(caption) {
                    c.queries_used += 1;
                } else {
                    c.queries_skipped += 1;
                    c.skipped.push((format!("caption {caption:?} of {}", im.file_name), "it has no words".into()));
                }
            }
        }
        c
    }

    /// One line: what was used, what was skipped, and the first few skips.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "evaluated on {} images ({} skipped) and {} captions ({} skipped)",
            self.images_used, self.images_skipped, self.queries_used, self.queries_skipped
        );
        const SHOWN: usize = 10;
        for (what, why) in self.skipped.iter().take(SHOWN) {
            s.push_str(&format!("\n  skipped {what}: {why}"));
        }
        if self.skipped.len() > SHOWN {
            s.push_str(&format!("\n  … and {} more", self.skipped.len() - SHOWN));
        }
        s
    }
}

/// What `trainer eval` prints: the model's metrics and what they were measured on, with `--bootstrap` their
/// interval, with `--compare` the other model's metrics and the paired difference.
#[derive(Debug, Clone)]
pub struct EvalReport {
    pub metrics: Metrics,
    pub coverage: Coverage,
    pub interval: Option<Interval>,
    pub comparison: Option<Comparison>,
    /// `--group-by FIELD`: the field and each of its values' report, largest group first.
    pub groups: Option<(String, Vec<GroupReport>)>,
}

/// The `--compare` part of an [`EvalReport`].
#[derive(Debug, Clone)]
pub struct Comparison {
    pub model: PathBuf,
    /// `--compare-images`: the folder the other model ranked (default: the same as this one).
    pub images: Option<PathBuf>,
    pub metrics: Metrics,
    /// 95 % paired bootstrap interval of (this model − that one).
    pub difference: Interval,
}

/// Runs `trainer eval`.
pub fn eval_report(args: &EvalArgs) -> Result<EvalReport> {
    if args.bootstrap == Some(0) {
        bail!("--bootstrap 0: give at least 1 resample (1000 is usual)");
    }
    let set = &args.set;
    // read before the (slow) embedding, so a misspelt field fails at once
    let values = args.group_by.as_deref().map(|field| field_values(&set.captions, field)).transpose()?;
    let rank_on = |model: &Path, captions: &Path, images: &Path| {
        rank_model_dir(model, captions, images, &set.cache, set.weights.clone(), args.plain)
    };
    let models: Vec<&Path> = std::iter::once(args.model.as_path()).chain(args.ensemble_with.iter().map(PathBuf::as_path)).collect();
    let ranked = rank_ensemble(&models, &set.captions, &set.images, &set.cache, set.weights.clone(), args.plain)?;
    let (ranks, coverage) = (&ranked.ranks, &ranked.coverage);
    if args.strict && !coverage.skipped.is_empty() {
        bail!("--strict: not everything could be evaluated; {}", coverage.summary());
    }
    let other_captions = args.compare_captions.as_deref().unwrap_or(&set.captions);
    let other_images = args.compare_images.as_deref().unwrap_or(&set.images);
    let other = args.compare.as_deref().map(|dir| rank_on(dir, other_captions, other_images)).transpose()?;
    let comparison = match (&args.compare, &other) {
        (Some(dir), Some(other)) => {
            let difference = ranks.paired_bootstrap(&other.ranks, args.bootstrap.unwrap_or(1000), args.seed)?;
            Some(Comparison { model: dir.clone(), images: args.compare_images.clone(), metrics: other.ranks.metrics(), difference })
        }
        _ => None,
    };
    let groups = match (&args.group_by, &values) {
        (Some(field), Some(values)) => {
            let other = other.as_ref().map(|o| (&o.ranks, o.image_ids.as_slice()));
            Some((field.clone(), group_reports(ranks, &ranked.image_ids, values, args.bootstrap, other, args.seed)?))
        }
        _ => None,
    };
    Ok(EvalReport {
        metrics: ranks.metrics(),
        coverage: coverage.clone(),
        interval: args.bootstrap.map(|n| ranks.bootstrap(n, args.seed)),
        comparison,
        groups,
    })
}

impl EvalReport {
    /// `--json`: the metrics' keys, the [`Coverage`] counts (`images_used`, `images_skipped`, `queries_used`,
    /// `queries_skipped`), plus `ci95`, `compare` {model, images (null unless --compare-images), metrics,
    /// difference, difference_ci95} and with
    /// `--group-by` `group_by` (the field) and `groups` (one object per value: [`GroupReport::to_json`]).
    pub fn to_json(&self) -> Result<serde_json::Value> {
        let mut out = serde_json::to_value(self.metrics)?;
        if let (Some(out), serde_json::Value::Object(counts)) = (out.as_object_mut(), serde_json::to_value(&self.coverage)?) {
            out.extend(counts);
        }
        if let Some(i) = &self.interval {
            out["ci95"] = serde_json::to_value(i)?;
        }
        if let Some(c) = &self.comparison {
            out["compare"] = serde_json::json!({
                "model": c.model, "images": c.images, "metrics": c.metrics, "difference": self.metrics.minus(&c.metrics), "difference_ci95": c.difference,
            });
        }
        if let Some((field, groups)) = &self.groups {
            out["group_by"] = field.as_str().into();
            out["groups"] = groups.iter().map(GroupReport::to_json).collect::<Result<Vec<_>>>()?.into();
        }
        Ok(out)
    }
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n{}", self.metrics, self.coverage.summary())?;
        if let Some(i) = &self.interval {
            write!(f, "\n  {i}")?;
        }
        if let Some(c) = &self.comparison {
            let on = c.images.as_ref().map(|i| format!(" on {}", i.display())).unwrap_or_default();
            write!(f, "\ncompared with {}{on}:\n{}", c.model.display(), c.metrics)?;
            write!(f, "\ndifference (this − that): {}\n  its {}", self.metrics.minus(&c.metrics), c.difference)?;
        }
        if let Some((field, groups)) = &self.groups {
            write!(
                f,
                "\nby {field} (each group's captions and images ranked against the whole gallery of {} images and {} captions):",
                self.coverage.images_used, self.coverage.queries_used
            )?;
            for g in groups {
                write!(f, "\n{g}")?;
            }
        }
        Ok(())
    }
}

