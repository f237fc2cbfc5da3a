//! `trainer`: learn, evaluate, export and publish imgpick's joint text–image embedding. Only the command line
//! lives here: every command's work is a library function.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use trainer::backbone::{self, BackboneChoice};
use trainer::bounds;
use trainer::config::FitArgs;
use trainer::eval::EvalArgs;
use trainer::features::{self, CacheSpec, View};
use trainer::run::Checkpoint;
use trainer::publish::{GalleryFormat, Partitioning};
use wasm_model::gallery::GalleryDtype;

#[derive(Parser)]
#[command(name = "trainer", version, about = "Train, evaluate, export and publish imgpick's text-image embedding",
    long_about = "Train, evaluate, export and publish imgpick's text-image embedding.\n\n\
    Typical flow: `trainer fit` (trains on COCO-format captions, caches backbone features) → `trainer eval` \
    (VSE recall@K) → `trainer export` (model directory for the browser) → `trainer publish` (gallery of an \
    image folder; `trainer index` partitions a published one) → `trainer search` (rank a gallery from the command line); `trainer db-load` puts a gallery \
    into PostgreSQL for `web --db`.\n\
    Logs go to stderr (RUST_LOG=debug for more). CUDA is used when libtorch sees a GPU.")]
struct Cli {
    /// CPU threads for libtorch (default: all cores). Two runs side by side on 2 cores: 1 each.
    #[arg(long, global = true, value_parser = bounds::THREADS.parser(), allow_negative_numbers = true)]
    threads: Option<i32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the joint embedding on COCO-format captions (backbone frozen, features cached on disk).
    Fit(Box<FitArgs>),
    /// Evaluate a model directory with the VSE protocol (1 query per caption, up to 5 captions per image).
    Eval(Box<EvalArgs>),
    /// Measure the score from which a text query's result is a strong match (top-1 precision on a captioned
    /// validation set, with the model's scoring) and write it into the manifest (`retrieval.strong_match`;
    /// weights and model id unchanged). The page, `/api/search` and `search --json` then mark each result.
    Calibrate(Box<trainer::calibrate::CalibrateArgs>),
    /// Export a training run as the model directory the browser and `search` load.
    Export {
        /// Run folder written by `trainer fit --out`.
        #[arg(long)]
        run: PathBuf,
        /// Output model directory, e.g. static/model: replaced atomically. It must be new, empty or a model
        /// directory holding only an export's files (anything else is refused, nothing deleted).
        #[arg(long)]
        out: PathBuf,
        /// Which checkpoint.
        #[arg(long, value_enum, default_value = "best")]
        which: Checkpoint,
        /// Store weights as f32 instead of f16 (twice the size).
        #[arg(long)]
        f32: bool,
        /// Skip measuring val metrics of the exported weights.
        #[arg(long)]
        no_eval: bool,
    },
    /// Add the backbone weights the browser needs to embed the user's own photos (image_encoder.safetensors)
    /// to a model directory; model_id and the other files stay as they are.
    ExportImageEncoder {
        /// Model directory, e.g. static/model.
        #[arg(long)]
        model: PathBuf,
        /// Backbone weights (lukemelas-layout safetensors of the model's Lite variant); default: the installed ones.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Store f32 instead of f16 (twice the size).
        #[arg(long)]
        f32: bool,
    },
    /// Embed an image folder for a model: a gallery (flat gallery.bin + gallery.json, or partitioned above
    /// 2,000 images) + thumbs/ (only changed files re-embedded; a killed run resumes where it stopped). Files that
    /// cannot be published are listed with the reason; licence strings without a normalised id too.
    Publish {
        /// Model directory.
        #[arg(long)]
        model: PathBuf,
        /// Image folder (searched recursively unless --captions lists the files). Symbolic links are followed
        /// only inside it; only regular image files up to 256 MB and 40 megapixels are read.
        #[arg(long)]
        images: PathBuf,
        /// COCO captions JSON: which images, their caption and optional source/licence/url/title.
        #[arg(long)]
        captions: Option<PathBuf>,
        /// Default source for every image.
        #[arg(long)]
        source: Option<String>,
        /// Default licence for every image.
        #[arg(long)]
        licence: Option<String>,
        /// Default attribution URL.
        #[arg(long)]
        url: Option<String>,
        /// Output gallery folder: not inside the image folder (nor around it). One publish at a time writes
        /// it (lock file .publish.lock).
        #[arg(long)]
        out: PathBuf,
        /// Stored precision of a flat gallery's embeddings: int8 (default; top-10 overlap with f32 ≥ 99%), f16 or
        /// f32. A partitioned gallery is always int8.
        #[arg(long, value_enum, default_value = "int8")]
        dtype: GalleryDtype,
        /// flat: gallery.bin + gallery.json, downloaded whole by the page; partitioned: lists fetched per query
        /// (wasm-model README "Partitioned gallery"); auto: partitioned above 2,000 images.
        #[arg(long, value_enum, default_value = "auto")]
        format: GalleryFormat,
        #[command(flatten)]
        partitioning: PartitioningArgs,
        /// Backbone weights; default: the installed ones for the model's backbone.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Ignore the manifest's `retrieval`: one view per image, no hubness (plain cosine, as the page embeds
        /// the user's own photos).
        #[arg(long)]
        plain: bool,
        /// Images per forward pass (default: the fastest measured). For comparisons (scripts/bench/publish.sh):
        /// the vectors are the same either way.
        #[arg(long, hide = true, value_parser = clap::value_parser!(u32).range(1..=1024))]
        batch_images: Option<u32>,
        /// Decode each photo on the network's thread just before its pass, as earlier versions did (for
        /// comparisons: scripts/bench/publish.sh).
        #[arg(long, hide = true)]
        one_at_a_time: bool,
    },
    /// Partition a published flat gallery into another folder (what `publish --format partitioned` writes,
    /// without embedding anything): the same rows, items and summary, plus the thumbnails the items name.
    Index {
        /// A flat gallery folder (gallery.bin + gallery.json, from `trainer publish`).
        #[arg(long)]
        gallery: PathBuf,
        /// Output folder for the partitioned gallery (not the --gallery folder: to partition a gallery in
        /// place, republish it with `publish --format partitioned`).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        partitioning: PartitioningArgs,
    },
    /// Load a published gallery into PostgreSQL + pgvector for `web --db` (the database tier, db/README.md).
    /// Rerunning changes nothing; a killed load continues where it stopped; a database holding another model's
    /// gallery is refused unless --replace. Start a local database with `scripts/pg.sh start`.
    DbLoad(Box<trainer::db_load::DbLoadArgs>),
    /// Rank a published gallery for a prompt or a passage (the same code the browser runs), refined as the
    /// page's share links are: --up/--down marks, --orient, --min-side, --licence, --collapse, --vary.
    Search(Box<trainer::search::SearchArgs>),
    /// Extract (or check) the frozen-backbone feature cache of an image set.
    Features {
        /// COCO captions JSON file(s) listing the images.
        #[arg(long, required = true, num_args = 1..)]
        captions: Vec<PathBuf>,
        /// Folder with the images (`file_name` is relative to it).
        #[arg(long)]
        images: PathBuf,
        /// Cache folder.
        #[arg(long, default_value = "data-cache/features")]
        cache: PathBuf,
        /// Also cache the activations at this backbone split (input of stage K): what `fit --finetune-from K` reads.
        #[arg(long, value_parser = bounds::SPLIT.parser(), allow_negative_numbers = true)]
        split: Option<usize>,
        /// Also extract the horizontally flipped view.
        #[arg(long)]
        flip: bool,
        #[command(flatten)]
        backbone: BackboneChoice,
    },
    /// Classify images with the backbone's ImageNet head (checks the weights).
    Classify {
        #[command(flatten)]
        backbone: BackboneChoice,
        /// Classes to show per image.
        #[arg(long, default_value_t = 5, value_parser = bounds::TOP_CLASSES.parser(), allow_negative_numbers = true)]
        top: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Image files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
}

/// How a partitioned gallery is cut (the defaults are the measured choice: docs/benchmarks.md "Partitioned
/// gallery").
#[derive(clap::Args)]
struct PartitioningArgs {
    /// Lists of a partitioned gallery (default 2√N, at most 4,096).
    #[arg(long, value_parser = bounds::LISTS.parser(), allow_negative_numbers = true)]
    lists: Option<usize>,
    /// Lists a query of a partitioned gallery reads (default 24; all of them when there are fewer).
    #[arg(long, value_parser = bounds::PROBE.parser(), allow_negative_numbers = true)]
    probe: Option<usize>,
}

impl PartitioningArgs {
    fn get(&self) -> Partitioning {
        Partitioning { lists: self.lists, probe: self.probe }
    }
}

fn describe_partitioned(s: &wasm_model::partitioned::BuildSummary) -> String {
    format!(
        "partitioned: {} lists (largest {}), {} probed per query; header {:.2} MB, lists {:.1} MB, metadata {:.1} MB; gallery id {}",
        s.lists, s.largest_list, s.probe, s.header_bytes as f64 / 1e6, s.shard_bytes as f64 / 1e6, s.meta_bytes as f64 / 1e6, s.gallery_id
    )
}

fn main() {
    trainer::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tokio_postgres=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        tch::set_num_threads(n);
    }
    match cli.command {
        Command::Fit(args) => {
            let state = trainer::train::fit(args.config(), &args.out, args.resume, args.stop_after_epoch)?;
            match state.best() {
                Some(best) => println!("best epoch {}: {}", best.epoch, best.val),
                None => println!("no epoch finished"),
            }
            Ok(())
        }
        Command::Eval(args) => {
            let report = trainer::eval::eval_report(&args)?;
            if args.json {
                println!("{}", report.to_json()?);
            } else {
                println!("{report}");
            }
            Ok(())
        }
        Command::Calibrate(args) => {
            let report = trainer::calibrate::calibrate(&args)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            Ok(())
        }
        Command::Export { run, out, which, f32, no_eval } => {
            let opts = trainer::export::ExportOptions { f16: !f32, evaluate: !no_eval };
            let (dir, metrics) = trainer::export::export_run(&run, which, &out, &opts)?;
            println!("exported model {} to {}", dir.model_id(), out.display());
            if let Some(m) = metrics {
                println!("val: {m}");
            }
            Ok(())
        }
        Command::ExportImageEncoder { model, weights, f32 } => {
            let bytes = trainer::export::add_image_encoder(&model, weights.as_deref(), f32)?;
            println!("wrote {} ({bytes} bytes) to {}", wasm_model::image_encoder::IMAGE_ENCODER_FILE, model.display());
            Ok(())
        }
        Command::Publish { model, images, captions, source, licence, url, out, dtype, weights, plain, format, partitioning, batch_images, one_at_a_time } => {
            let opts = trainer::publish::PublishOptions {
                model,
                images,
                captions,
                source,
                licence,
                url,
                out: out.clone(),
                dtype,
                weights,
                plain,
                format,
                partitioning: partitioning.get(),
            };
            let embedding = trainer::publish::EmbedSettings { images_per_pass: batch_images.map(|n| n as usize), inline: one_at_a_time };
            let r = trainer::publish::publish_with(&opts, embedding)?;
            for (f, why) in &r.skipped {
                println!("  skipped {f}: {why}");
            }
            for (text, n) in &r.unmapped_licences {
                println!("  licence {text:?} ({n} images) has no normalised id: published as `unknown` (see wasm-model README, licence ids)");
            }
            if r.without_licence > 0 {
                println!("  {} images have no licence (--licence sets a default): published as `unknown`", r.without_licence);
            }
            println!(
                "published {} images to {} ({} embedded, {} unchanged; {} skipped) for model {}",
                r.count, out.display(), r.embedded, r.reused, r.skipped.len(), r.model_id
            );
            println!("{}", r.partitioned.as_ref().map_or("flat: gallery.bin + gallery.json".to_string(), describe_partitioned));
            Ok(())
        }
        Command::Index { gallery, out, partitioning } => {
            let opts = trainer::publish::PartitionOptions { gallery, out: out.clone(), partitioning: partitioning.get() };
            let started = std::time::Instant::now();
            let s = trainer::publish::partition_gallery(&opts)?;
            println!("partitioned {} images into {} in {:.1} s", s.count, out.display(), started.elapsed().as_secs_f64());
            println!("{}", describe_partitioned(&s));
            Ok(())
        }
        Command::DbLoad(args) => {
            let report = trainer::db_load::db_load(&args)?;
            println!("{}", trainer::db_load::describe(&report, &args));
            Ok(())
        }
        Command::Search(args) => {
            print!("{}", trainer::search::run(&args)?);
            if args.json {
                println!();
            }
            Ok(())
        }
        Command::Features { captions, images, cache, split, flip, backbone } => {
            // the images `fit` trains on (those with a caption), so this fills the very cache `fit` reads
            let ds = trainer::data::Dataset::load(&captions)?.with_captions()?;
            let files = ds.image_paths(&images);
            let spec = CacheSpec { backbone: backbone.backbone, weights: backbone.weights(), split };
            let device = trainer::default_device();
            let mut views = vec![View::ORIGINAL];
            if flip {
                views.push(View::FLIPPED);
            }
            for view in views {
                let f = features::extract(&cache, &spec, view, &files, device)?;
                let ok = f.ok.iter().filter(|&&o| o).count();
                tracing::info!("{} view: {ok}/{} images, features {:?}", view.name(), files.len(), f.pooled.size());
            }
            Ok(())
        }
        Command::Classify { backbone, top, json, images } => {
            backbone::imagenet::classify_cli(backbone.backbone, backbone.weights.as_deref(), &images, top, json)
        }
    }
}
