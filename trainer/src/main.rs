//! `trainer`: learn, evaluate, export and publish imgpick's joint text–image embedding.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use trainer::backbone::{self, BackboneKind};
use trainer::features::{self, CacheSpec, View};
use wasm_model::gallery::GalleryDtype;

#[derive(Parser)]
#[command(name = "trainer", version, about = "Train, evaluate, export and publish imgpick's text-image embedding",
    long_about = "Train, evaluate, export and publish imgpick's text-image embedding.\n\n\
    Typical flow: `trainer fit` (trains on COCO-format captions, caches backbone features) → `trainer eval` \
    (VSE recall@K) → `trainer export` (model directory for the browser) → `trainer publish` (gallery of an \
    image folder) → `trainer search` (rank a gallery from the command line).\n\
    Logs go to stderr (RUST_LOG=debug for more). CUDA is used when libtorch sees a GPU.")]
struct Cli {
    /// CPU threads for libtorch (default: all cores). Two runs side by side on 2 cores: 1 each.
    #[arg(long, global = true)]
    threads: Option<i32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct BackboneArgs {
    /// Image backbone: efficientnet-lite0 or densenet121.
    #[arg(long, default_value = "efficientnet-lite0")]
    backbone: BackboneKind,
    /// Backbone weights (safetensors); default: the installed one under $IMGPICK_ASSETS.
    #[arg(long)]
    weights: Option<PathBuf>,
}

impl BackboneArgs {
    fn weights(&self) -> PathBuf {
        self.weights.clone().unwrap_or_else(|| backbone::assets_dir().join(self.backbone.default_weights_file()))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Train the joint embedding on COCO-format captions (backbone frozen, features cached on disk).
    Fit(Box<FitArgs>),
    /// Evaluate a model directory with the VSE protocol (1 query per caption, up to 5 captions per image).
    Eval {
        /// Model directory (manifest.json, weights, vocab.txt).
        #[arg(long)]
        model: PathBuf,
        /// COCO captions JSON of the evaluation set.
        #[arg(long)]
        captions: PathBuf,
        /// Folder with its images.
        #[arg(long)]
        images: PathBuf,
        /// Feature cache folder.
        #[arg(long, default_value = "data-cache/features")]
        cache: PathBuf,
        /// Backbone weights; default: the installed ones for the model's backbone.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Print one JSON object (t2i_r1 … rsum) instead of a table.
        #[arg(long)]
        json: bool,
        /// Plain cosine of single-view image vectors, ignoring the manifest's `retrieval` scoring (averaged
        /// original + mirrored views, hubness correction of text queries).
        #[arg(long)]
        plain: bool,
        /// Also give a 95 % interval for every metric: the evaluation images are resampled with replacement
        /// N times (default 1000), with their captions. It says how far the numbers could move on another
        /// evaluation set of this size.
        #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "1000")]
        bootstrap: Option<usize>,
        /// Another model directory to compare with on the same queries: prints its metrics and the difference
        /// (this model − that one) with a paired 95 % bootstrap interval; an interval that excludes 0 is
        /// unlikely to be luck of this evaluation set.
        #[arg(long, value_name = "DIR")]
        compare: Option<PathBuf>,
        /// Seed of the bootstrap resampling.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Export a training run as the model directory the browser and `search` load.
    Export {
        /// Run folder written by `trainer fit --out`.
        #[arg(long)]
        run: PathBuf,
        /// Output model directory (replaced atomically), e.g. static/model.
        #[arg(long)]
        out: PathBuf,
        /// Which checkpoint: best (by val rsum) or last.
        #[arg(long, default_value = "best")]
        which: String,
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
        /// Backbone weights (lukemelas-layout Lite0 safetensors); default: the installed ones.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Store f32 instead of f16 (twice the size).
        #[arg(long)]
        f32: bool,
    },
    /// Embed an image folder for a model: gallery.bin + gallery.json + thumbs/ (only changed files re-embedded).
    Publish {
        /// Model directory.
        #[arg(long)]
        model: PathBuf,
        /// Image folder (searched recursively unless --captions lists the files).
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
        /// Output gallery folder.
        #[arg(long)]
        out: PathBuf,
        /// Stored precision of the embeddings: int8 (default; top-10 overlap with f32 ≥ 99%), f16 or f32.
        #[arg(long, default_value = "int8")]
        dtype: String,
        /// Backbone weights; default: the installed ones for the model's backbone.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Ignore the manifest's `retrieval`: one view per image, no hubness (plain cosine, as the page embeds
        /// the user's own photos).
        #[arg(long)]
        plain: bool,
    },
    /// Rank a published gallery for a prompt (the same code the browser runs).
    Search {
        /// Model directory.
        #[arg(long)]
        model: PathBuf,
        /// Gallery folder (gallery.bin + gallery.json).
        #[arg(long)]
        gallery: PathBuf,
        /// Number of results.
        #[arg(short, default_value_t = 10)]
        k: usize,
        /// Print JSON `[{"file", "score"}]`, best first.
        #[arg(long)]
        json: bool,
        /// The prompt (rclip-style arithmetic allowed: `beach -people +dog`).
        prompt: String,
    },
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
        #[arg(long)]
        split: Option<usize>,
        /// Also extract the horizontally flipped view.
        #[arg(long)]
        flip: bool,
        #[command(flatten)]
        backbone: BackboneArgs,
    },
    /// Classify images with the backbone's ImageNet head (checks the weights).
    Classify {
        #[command(flatten)]
        backbone: BackboneArgs,
        /// Classes to show per image.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Image files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct FitArgs {
    /// Training captions (COCO JSON); several files are merged.
    #[arg(long = "train-captions", required = true, num_args = 1..)]
    train_captions: Vec<PathBuf>,
    /// Validation captions (VSE protocol, first 5 captions per image); picks the best epoch.
    #[arg(long = "val-captions")]
    val_captions: PathBuf,
    /// Folder with the images of both files.
    #[arg(long)]
    images: PathBuf,
    /// Run folder: checkpoints, state.json, vocab.txt, curve.svg.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last finished epoch.
    #[arg(long)]
    resume: bool,
    /// Stop after this epoch (continue later with --resume).
    #[arg(long)]
    stop_after_epoch: Option<usize>,
    #[command(flatten)]
    backbone: BackboneArgs,
    /// GloVe vectors (safetensors with a `.words.txt` beside it).
    #[arg(long)]
    glove: Option<PathBuf>,
    /// Feature cache folder.
    #[arg(long, default_value = "data-cache/features")]
    cache: PathBuf,
    /// Also train on horizontally flipped images (cached as a second view).
    #[arg(long)]
    flips: bool,
    /// Caption words kept in the vocabulary need at least this many occurrences.
    #[arg(long, default_value_t = 1)]
    min_count: usize,
    /// Vocabulary size (caption words, then the most frequent GloVe words).
    #[arg(long, default_value_t = 20000)]
    vocab_size: usize,
    /// Joint space dimension.
    #[arg(long, default_value_t = 512)]
    embed_dim: i64,
    /// LSTM hidden size.
    #[arg(long, default_value_t = 512)]
    hidden_dim: i64,
    #[arg(long, default_value_t = 1)]
    layers: i64,
    /// Bidirectional LSTM.
    #[arg(long)]
    bidirectional: bool,
    /// Pooling over LSTM outputs.
    #[arg(long, value_enum, default_value = "last")]
    pooling: trainer::model::Pooling,
    /// Probability of replacing a caption word by <unk> in training.
    #[arg(long, default_value_t = 0.0)]
    word_dropout: f64,
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Peak learning rate (Adam; linear warm-up, then cosine decay).
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// Learning-rate multiplier for the GloVe-initialised word embeddings (0 = frozen).
    #[arg(long, default_value_t = 0.1)]
    embedding_lr_scale: f64,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    #[arg(long, default_value_t = 200)]
    lr_warmup_steps: usize,
    /// Clip the global gradient norm (0 = off).
    #[arg(long, default_value_t = 2.0)]
    grad_clip: f64,
    /// vse (VSE++ hinge: sum of negatives for --warmup-epochs, then hardest) or infonce.
    #[arg(long, default_value = "vse")]
    loss: String,
    #[arg(long, default_value_t = 0.2)]
    margin: f64,
    /// InfoNCE temperature.
    #[arg(long, default_value_t = 0.05)]
    tau: f64,
    /// Epochs on the sum over negatives before switching to the hardest negative.
    #[arg(long, default_value_t = 2)]
    warmup_epochs: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fine-tune the backbone from stage K on (Lite0: 0..=7, 6 = its last MBConv stage, 7 = only the 1×1 head
    /// conv), trained on cached stage-K activations: affordable on a CPU. Without it the backbone is frozen.
    #[arg(long, value_name = "K", conflicts_with = "finetune")]
    finetune_from: Option<usize>,
    /// Fine-tune the whole CNN end to end (= --finetune-from 0): batches are decoded from the image files
    /// (with --flips, mirrored at random). Meant for a GPU; on a CPU prefer --finetune-from 6.
    #[arg(long)]
    finetune: bool,
    /// Learning-rate multiplier for the fine-tuned backbone stages.
    #[arg(long, default_value_t = 0.1)]
    backbone_lr_scale: f64,
    /// Pooling of the backbone's feature grid: avg, or gpo (learned, needs --finetune-from).
    #[arg(long, value_enum, default_value = "avg")]
    image_pooling: trainer::model::ImagePooling,
    /// With --finetune: train on random square crops whose side is at least this fraction of the shorter
    /// image side (e.g. 0.7), anywhere in the image; 1 = centre crops only.
    #[arg(long, default_value_t = 1.0, requires = "finetune")]
    crop_scale: f64,
    /// Train on these cached views of each image, one drawn at random per pair and step (comma-separated:
    /// original, flipped, zoom-tl, zoom-tr, zoom-bl, zoom-br, zoom-c, each zoom optionally -flipped; a zoom is
    /// 80 % of the picture, scaled up). Replaces --flips; each view is one more feature extraction.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["flips", "finetune"])]
    train_views: Vec<String>,
}

impl FitArgs {
    fn config(&self) -> trainer::train::Config {
        trainer::train::Config {
            train_captions: self.train_captions.clone(),
            val_captions: self.val_captions.clone(),
            images: self.images.clone(),
            backbone: self.backbone.backbone,
            backbone_weights: self.backbone.weights(),
            glove: self.glove.clone().unwrap_or_else(trainer::text::Glove::default_path),
            cache_dir: self.cache.clone(),
            use_flips: self.flips,
            min_count: self.min_count,
            vocab_size: self.vocab_size,
            embed_dim: self.embed_dim,
            hidden_dim: self.hidden_dim,
            layers: self.layers,
            bidirectional: self.bidirectional,
            pooling: self.pooling,
            word_dropout: self.word_dropout,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            embedding_lr_scale: self.embedding_lr_scale,
            weight_decay: self.weight_decay,
            lr_warmup_steps: self.lr_warmup_steps,
            grad_clip: self.grad_clip,
            loss: self.loss.clone(),
            margin: self.margin,
            tau: self.tau,
            warmup_epochs: self.warmup_epochs,
            seed: self.seed,
            finetune_from: if self.finetune { Some(0) } else { self.finetune_from },
            backbone_lr_scale: self.backbone_lr_scale,
            image_pooling: self.image_pooling,
            crop_scale: self.crop_scale,
            train_views: self.train_views.clone(),
        }
    }
}

fn parse_dtype(s: &str) -> Result<GalleryDtype> {
    Ok(match s {
        "int8" => GalleryDtype::Int8,
        "f16" => GalleryDtype::F16,
        "f32" => GalleryDtype::F32,
        other => anyhow::bail!("unknown --dtype {other:?}: use int8, f16 or f32"),
    })
}

fn main() {
    trainer::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
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
        tch::set_num_threads(n.max(1));
    }
    match cli.command {
        Command::Fit(args) => {
            let cfg = args.config();
            if !["vse", "infonce"].contains(&cfg.loss.as_str()) {
                anyhow::bail!("unknown --loss {:?}: use vse or infonce", cfg.loss);
            }
            let state = trainer::train::fit(cfg, &args.out, args.resume, args.stop_after_epoch)?;
            match state.best_epoch.and_then(|e| state.history.iter().find(|h| h.epoch == e)) {
                Some(best) => println!("best epoch {}: {}", best.epoch, best.val),
                None => println!("no epoch finished"),
            }
            Ok(())
        }
        Command::Eval { model, captions, images, cache, weights, json, plain, bootstrap, compare, seed } => {
            if bootstrap == Some(0) {
                anyhow::bail!("--bootstrap 0: give at least 1 resample (1000 is usual)");
            }
            let ranks = trainer::eval::rank_model_dir(&model, &captions, &images, &cache, weights.clone(), plain)?;
            let m = ranks.metrics();
            let interval = bootstrap.map(|n| ranks.bootstrap(n, seed));
            let other = match &compare {
                Some(dir) => {
                    let other = trainer::eval::rank_model_dir(dir, &captions, &images, &cache, weights, plain)?;
                    let diff = ranks.paired_bootstrap(&other, bootstrap.unwrap_or(1000), seed)?;
                    Some((dir, other.metrics(), diff))
                }
                None => None,
            };
            if json {
                let mut out = serde_json::to_value(m)?;
                if let Some(i) = interval {
                    out["ci95"] = serde_json::to_value(i)?;
                }
                if let Some((dir, o, diff)) = &other {
                    out["compare"] = serde_json::json!({
                        "model": dir, "metrics": o, "difference": m.minus(o), "difference_ci95": diff,
                    });
                }
                println!("{out}");
            } else {
                println!("{m}");
                if let Some(i) = interval {
                    println!("  {i}");
                }
                if let Some((dir, o, diff)) = &other {
                    println!("compared with {}:\n{o}", dir.display());
                    println!("difference (this − that): {}\n  its {diff}", m.minus(o));
                }
            }
            Ok(())
        }
        Command::Export { run, out, which, f32, no_eval } => {
            let opts = trainer::export::ExportOptions { f16: !f32, evaluate: !no_eval };
            let (dir, metrics) = trainer::export::export_run(&run, &which, &out, &opts)?;
            println!("exported model {} to {}", dir.model_id(), out.display());
            if let Some(m) = metrics {
                println!("val: {m}");
            }
            Ok(())
        }
        Command::ExportImageEncoder { model, weights, f32 } => {
            let dir = wasm_model::ModelDir::load(&model).map_err(|e| anyhow::anyhow!("{e}"))?;
            if dir.manifest.image.backbone != wasm_model::model_dir::Backbone::EfficientnetLite0 {
                anyhow::bail!("{}: the browser image encoder supports efficientnet_lite0 only", model.display());
            }
            let weights = weights.unwrap_or_else(|| {
                trainer::backbone::assets_dir().join(trainer::backbone::BackboneKind::EfficientnetLite0.default_weights_file())
            });
            let reference = std::fs::read(&weights)
                .map_err(|e| anyhow::anyhow!("cannot read backbone weights {}: {e} (scripts/setup.sh installs them)", weights.display()))?;
            let bytes = wasm_model::image_encoder::image_encoder_safetensors(&reference, !f32)?;
            // Build it once to prove the file and the model's image head work together before writing.
            let head = dir.image_head.as_deref().ok_or_else(|| anyhow::anyhow!("the model has no image_head.safetensors"))?;
            wasm_model::ImageEncoder::new(&dir.manifest.image, dir.manifest.embed_dim, &bytes, head)?;
            wasm_model::ModelDir::add_image_encoder(&model, &bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("wrote {} ({} bytes) to {}", wasm_model::image_encoder::IMAGE_ENCODER_FILE, bytes.len(), model.display());
            Ok(())
        }
        Command::Publish { model, images, captions, source, licence, url, out, dtype, weights, plain } => {
            let opts = trainer::publish::PublishOptions {
                model,
                images,
                captions,
                source,
                licence,
                url,
                out: out.clone(),
                dtype: parse_dtype(&dtype)?,
                weights,
                plain,
            };
            let r = trainer::publish::publish(&opts)?;
            println!(
                "published {} images to {} ({} embedded, {} unchanged, {} broken skipped) for model {}",
                r.count, out.display(), r.embedded, r.reused, r.broken.len(), r.model_id
            );
            for (f, why) in &r.broken {
                println!("  skipped {f}: {why}");
            }
            Ok(())
        }
        Command::Search { model, gallery, k, json, prompt } => {
            let engine = wasm_model::engine::Engine::open(&model, &gallery)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let hits = engine.search(&prompt, k).map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                let rows: Vec<serde_json::Value> =
                    hits.iter().map(|h| serde_json::json!({"file": h.file, "score": h.score})).collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                for h in hits {
                    println!("{:.4}  {}  {}", h.score, h.file, h.caption);
                }
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
