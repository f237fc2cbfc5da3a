//! `trainer db-load`: a published gallery into PostgreSQL + pgvector (the database tier, `db/README.md`), so that
//! `web --db URL` can serve it. The work is `db::load` (idempotent, resumable, refuses another model's vectors
//! unless told to replace them); this module is the command line around it: the options, a progress bar and a
//! report of what the run did.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use db::{DbConfig, LoadOptions, LoadOutcome, LoadProgress, LoadReport, PublishedGallery, VectorType};
use indicatif::{ProgressBar, ProgressStyle};

use crate::bounds::Bound;

/// Rows per batch: one statement and one commit each, so a killed load loses at most one batch.
pub static BATCH_ROWS: Bound<usize> = Bound { min: 1, max: 100_000, min_open: false, max_open: false, rule: "1..=100000 rows" };
pub static STOP_AFTER_BATCHES: Bound<usize> = Bound { min: 1, max: usize::MAX, min_open: false, max_open: false, rule: "at least 1 batch" };
pub static HNSW_M: Bound<i32> = Bound { min: 2, max: 100, min_open: false, max_open: false, rule: "2..=100 (pgvector's range)" };
pub static HNSW_EF_CONSTRUCTION: Bound<i32> =
    Bound { min: 4, max: 1000, min_open: false, max_open: false, rule: "4..=1000 (pgvector's range; at least 2 × --hnsw-m)" };

/// How the vectors are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Storage {
    /// f16: half the size; recall equal to f32 at every ef_search measured (docs/scale.md).
    Halfvec,
    /// f32.
    Vector,
}

#[derive(Debug, Clone, Args)]
pub struct DbLoadArgs {
    /// Model directory the gallery was published with (e.g. static/model).
    #[arg(long)]
    pub model: PathBuf,
    /// Published gallery folder (gallery.bin + gallery.json, from `trainer publish`). Its thumbs/ stay where
    /// they are: `web --db` serves them from its --static-dir's gallery/ folder.
    #[arg(long)]
    pub gallery: PathBuf,
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE (what `scripts/pg.sh start` prints). Also read from
    /// IMGPICK_DB_URL, which keeps the password out of the process list.
    #[arg(long, env = "IMGPICK_DB_URL", hide_env_values = true)]
    pub db: String,
    /// Replace the gallery of another model (otherwise refused). The old one stays live until the new one is
    /// indexed.
    #[arg(long)]
    pub replace: bool,
    /// How the vectors are stored.
    #[arg(long, value_enum, default_value = "halfvec")]
    pub vector_type: Storage,
    /// Rows per batch (one statement and one commit each).
    #[arg(long, default_value_t = 1000, value_parser = BATCH_ROWS.parser())]
    pub batch_rows: usize,
    /// HNSW graph degree (m).
    #[arg(long, default_value_t = LoadOptions::default().hnsw_m, value_parser = HNSW_M.parser(), allow_negative_numbers = true)]
    pub hnsw_m: i32,
    /// HNSW build breadth (ef_construction).
    #[arg(long, default_value_t = LoadOptions::default().hnsw_ef_construction, value_parser = HNSW_EF_CONSTRUCTION.parser(), allow_negative_numbers = true)]
    pub hnsw_ef_construction: i32,
    /// Copy this many batches, then stop; a rerun continues where this one stopped (loading in slices).
    #[arg(long, value_parser = STOP_AFTER_BATCHES.parser())]
    pub stop_after_batches: Option<usize>,
}

impl DbLoadArgs {
    fn options(&self) -> Result<LoadOptions> {
        if self.hnsw_ef_construction < 2 * self.hnsw_m {
            anyhow::bail!(
                "--hnsw-ef-construction is {}: pgvector needs at least 2 × --hnsw-m ({})",
                self.hnsw_ef_construction,
                2 * self.hnsw_m
            );
        }
        Ok(LoadOptions {
            vector_type: match self.vector_type {
                Storage::Halfvec => VectorType::Halfvec,
                Storage::Vector => VectorType::Vector,
            },
            batch_rows: self.batch_rows,
            replace: self.replace,
            hnsw_m: self.hnsw_m,
            hnsw_ef_construction: self.hnsw_ef_construction,
            stop_after_batches: self.stop_after_batches,
            ..LoadOptions::default()
        })
    }
}

/// Loads the gallery (see the module docs); the report says what this run did.
pub fn db_load(args: &DbLoadArgs) -> Result<LoadReport> {
    let config = DbConfig::from_url(&args.db)?;
    let opts = args.options()?;
    let gallery = PublishedGallery::open(&args.model, &args.gallery)
        .with_context(|| format!("cannot load the gallery {} for the model {}", args.gallery.display(), args.model.display()))?;
    tracing::info!(
        "loading {} images of model {} into {} ({})",
        gallery.len(),
        gallery.model_id(),
        config.redacted_url(),
        opts.vector_type.sql()
    );
    // One connection, one load: a current-thread runtime is all it needs.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let bar = ProgressBar::new(gallery.len() as u64).with_style(
        ProgressStyle::with_template("db-load [{bar:30}] {pos}/{len} images, {per_sec}, {eta} left {msg}").expect("a valid template"),
    );
    let report = runtime.block_on(db::load(&config, &gallery, &opts, |p| show(&bar, p)));
    bar.finish_and_clear();
    report.with_context(|| format!("loading into {}", config.redacted_url()))
}

fn show(bar: &ProgressBar, progress: LoadProgress) {
    match progress {
        LoadProgress::Copying { done, total } => {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        LoadProgress::Indexing => {
            bar.set_style(ProgressStyle::with_template("db-load {spinner} {msg} ({elapsed})").expect("a valid template"));
            bar.enable_steady_tick(Duration::from_millis(200));
            bar.set_message("building the HNSW index (minutes for a million images)");
            if bar.is_hidden() {
                tracing::info!("rows copied; building the HNSW index");
            }
        }
        LoadProgress::Swapping => bar.set_message("making the new gallery live"),
    }
}

/// The report as the command prints it: what happened, and what to do next.
pub fn describe(report: &LoadReport, args: &DbLoadArgs) -> String {
    let url = DbConfig::from_url(&args.db).map(|c| c.redacted_url()).unwrap_or_default();
    match report.outcome {
        LoadOutcome::AlreadyLive => format!(
            "{url} already serves this gallery ({} images, same files, model and settings): nothing to do",
            report.rows_total
        ),
        LoadOutcome::Stopped => format!(
            "stopped after --stop-after-batches: {} of {} images copied ({} by this run); run the same command again to continue",
            report.rows_resumed + report.rows_written,
            report.rows_total,
            report.rows_written
        ),
        LoadOutcome::Loaded => {
            let resumed = if report.rows_resumed > 0 {
                format!(", {} already there from an interrupted run", report.rows_resumed)
            } else {
                String::new()
            };
            let replaced = report.replaced_model.as_ref().map(|m| format!("; replaced model {m}'s gallery")).unwrap_or_default();
            format!(
                "loaded {} images into {url} ({} copied in {:.1} s{resumed}; index built in {:.1} s{replaced})\n\
                 serve it: web --db URL --static-dir DIR (DIR/gallery/ holds this gallery's thumbs/)",
                report.rows_total,
                report.rows_written,
                report.copy_time.as_secs_f64(),
                report.index_time.as_secs_f64()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: DbLoadArgs,
    }

    fn parse(extra: &[&str]) -> Result<DbLoadArgs, clap::Error> {
        let base = ["x", "--model", "m", "--gallery", "g", "--db", "postgres://u:p@127.0.0.1:1/d"];
        Cli::try_parse_from(base.iter().chain(extra)).map(|c| c.args)
    }

    #[test]
    fn options_are_range_checked_and_mapped() {
        let a = parse(&["--vector-type", "vector", "--batch-rows", "10", "--replace"]).unwrap();
        let o = a.options().unwrap();
        assert_eq!((o.vector_type, o.batch_rows, o.replace), (VectorType::Vector, 10, true));
        assert_eq!((o.hnsw_m, o.hnsw_ef_construction), (24, 96), "the library's defaults");
        for bad in [&["--batch-rows", "0"][..], &["--hnsw-m", "1"], &["--stop-after-batches", "0"], &["--vector-type", "f8"]] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let e = parse(&["--hnsw-m", "40", "--hnsw-ef-construction", "64"]).unwrap().options().unwrap_err().to_string();
        assert!(e.contains("2 × --hnsw-m"), "{e}");
    }

    #[test]
    fn a_bad_url_or_gallery_is_named_before_connecting() {
        let mut a = parse(&[]).unwrap();
        a.db = "http://nope".into();
        let e = format!("{:#}", db_load(&a).unwrap_err());
        assert!(e.contains("postgres://USER:PASSWORD@HOST:PORT/DATABASE"), "{e}");
        let tmp = tempfile::tempdir().unwrap();
        let a = DbLoadArgs { model: tmp.path().join("no-model"), ..parse(&[]).unwrap() };
        let e = format!("{:#}", db_load(&a).unwrap_err());
        assert!(e.contains("no-model") && e.contains("manifest.json"), "{e}");
    }

    #[test]
    fn reports_say_what_happened() {
        let a = parse(&[]).unwrap();
        let mut r = LoadReport {
            outcome: LoadOutcome::Loaded,
            rows_total: 40,
            rows_written: 30,
            rows_resumed: 10,
            copy_time: Duration::from_millis(1500),
            index_time: Duration::from_secs(2),
            replaced_model: Some("abc".into()),
        };
        let text = describe(&r, &a);
        assert!(text.contains("loaded 40 images") && text.contains("10 already there") && text.contains("replaced model abc"), "{text}");
        assert!(!text.contains(":p@"), "the password is not printed: {text}");
        r.outcome = LoadOutcome::Stopped;
        let text = describe(&r, &a);
        assert!(text.contains("40 of 40 images copied (30 by this run)") && text.contains("run the same command again"), "{text}");
        r.outcome = LoadOutcome::AlreadyLive;
        assert!(describe(&r, &a).contains("nothing to do"));
    }
}
