//! `trainer publish`: an image folder → a gallery (flat `gallery.bin` + `gallery.json`, or partitioned; and
//! `thumbs/`) for a model.
//!
//! The flow: check the folders (`output`: no overlap, one publish at a time), list the images (`scan`, or the
//! captions file), then embed each readable image with the model's backbone and image head (`embed`: decoded
//! on a thread running ahead of the network), writing its thumbnail (`thumbs`, turned upright by its EXIF
//! orientation) and appending its vector and shown size to the cache (`cache`) as it goes, in listing order,
//! so a killed run resumes where it stopped and a re-run embeds only what changed.
//! The gallery is written at the end in the tier `--format` picks (`tier`: atomically, the previous gallery
//! readable until the new one is in place), and only then are stale thumbnails removed. Every file that is not
//! published is listed with its reason. Each item gets its shown size and normalised licence id
//! (`wasm_model::gallery::normalise_licence`; unrecognised licence strings are reported); `gallery.json` (or the
//! descriptor) also gets the gallery's summary (themes and example prompts) for the page's empty state.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tch::Tensor;
use wasm_model::gallery::{normalise_licence, write_gallery_bin, GalleryDtype, GalleryIndex, GalleryItem, UNKNOWN_LICENCE};
use wasm_model::partitioned::BuildSummary;

use crate::backbone::{self, preprocess::Preprocess, BackboneKindExt};
use crate::data::Dataset;

mod cache;
mod embed;
mod output;
mod partition;
mod scan;
mod thumbs;
mod tier;

pub use cache::CACHE_FILE;
pub use embed::EmbedSettings;
pub use output::LOCK_FILE;
pub use partition::{partition_gallery, PartitionOptions};
pub use scan::IMAGE_EXTENSIONS;
pub use tier::{GalleryFormat, Partitioning};

/// A file left out of the gallery: (its path relative to the image folder, why).
pub type Skip = (String, String);

pub struct PublishOptions {
    pub model: PathBuf,
    pub images: PathBuf,
    pub captions: Option<PathBuf>,
    pub source: Option<String>,
    pub licence: Option<String>,
    pub url: Option<String>,
    pub out: PathBuf,
    pub dtype: GalleryDtype,
    /// Backbone weights; default: the installed ones for the model's backbone.
    pub weights: Option<PathBuf>,
    /// Ignore the manifest's `retrieval` (single original view, no hubness).
    pub plain: bool,
    /// Flat, partitioned, or partitioned above 2,000 images.
    pub format: GalleryFormat,
    /// How a partitioned gallery is cut.
    pub partitioning: Partitioning,
}

/// What a publish did.
#[derive(Debug)]
pub struct PublishReport {
    /// Images in the gallery.
    pub count: usize,
    /// Of those, embedded now / taken from the cache.
    pub embedded: usize,
    pub reused: usize,
    /// (file relative to the image folder, why it is not in the gallery), in listing order.
    pub skipped: Vec<Skip>,
    pub model_id: String,
    /// What the partitioned build wrote (`None`: the gallery is flat).
    pub partitioned: Option<BuildSummary>,
    /// Licence strings with no normalised id (their images get `unknown`), with how many images have each.
    pub unmapped_licences: Vec<(String, usize)>,
    /// Images published without any licence string (`unknown` too).
    pub without_licence: usize,
}

struct Entry {
    rel: String,
    caption: String,
    source: String,
    licence: String,
    url: Option<String>,
}

/// The images to publish (the captions file's, or the folder's) and what listing the folder skipped.
fn entries(opts: &PublishOptions) -> Result<(Vec<Entry>, Vec<Skip>)> {
    let source = opts.source.clone().unwrap_or_default();
    let licence = opts.licence.clone().unwrap_or_default();
    Ok(match &opts.captions {
        Some(c) => {
            let images = Dataset::load(std::slice::from_ref(c))?.images;
            let entries = images
                .into_iter()
                .map(|im| Entry {
                    caption: im.title.clone().or_else(|| im.captions.first().cloned()).unwrap_or_default(),
                    source: im.source.unwrap_or_else(|| source.clone()),
                    licence: im.licence.unwrap_or_else(|| licence.clone()),
                    url: im.url.or_else(|| opts.url.clone()),
                    rel: im.file_name,
                })
                .collect();
            (entries, Vec::new())
        }
        None => {
            let listing = scan::list_images(&opts.images)?;
            let entries = listing
                .files
                .into_iter()
                .map(|rel| Entry { rel, caption: String::new(), source: source.clone(), licence: licence.clone(), url: opts.url.clone() })
                .collect();
            (entries, listing.skipped)
        }
    })
}

/// Size and modification time (ns) of `path`: what says a cached vector is still this file's.
fn file_stamp(path: &Path) -> Option<(u64, u128)> {
    let m = std::fs::metadata(path).ok()?;
    let mtime = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
    Some((m.len(), mtime))
}

/// What publishing one listed image takes, decided before anything is embedded (so the images to embed can be
/// prepared ahead of the network).
enum Plan {
    Skip(String),
    /// Its cached record, complete.
    Cached(cache::Record),
    /// A cached record of an older publish, to complete (`complete_record`).
    Complete(PathBuf, cache::Record),
    /// Not cached: to embed.
    Embed { path: PathBuf, size: u64, mtime_ns: u128 },
    /// Listed before (a captions file may name a file twice): the earlier listing's record.
    Again { size: u64, mtime_ns: u128 },
}

fn plan(opts: &PublishOptions, cache: &cache::EmbedCache, list: &[Entry]) -> Vec<Plan> {
    let mut to_embed = HashSet::new();
    list.iter()
        .map(|e| {
            // a captions file may name anything: only what lies inside the image folder is read
            let path = match opts.captions {
                Some(_) => match scan::resolve_inside(&opts.images, &e.rel) {
                    Ok(p) => p,
                    Err(why) => return Plan::Skip(why),
                },
                None => opts.images.join(&e.rel),
            };
            let Some((size, mtime_ns)) = file_stamp(&path) else {
                return Plan::Skip("cannot read its size and modification time".into());
            };
            match cache.get(&e.rel, size, mtime_ns).filter(|r| opts.out.join(&r.thumb).is_file()) {
                Some(r) if r.shown_size.is_some() => Plan::Cached(r.clone()),
                Some(old) => Plan::Complete(path, old.clone()),
                None if !to_embed.insert(e.rel.as_str()) => Plan::Again { size, mtime_ns },
                None => Plan::Embed { path, size, mtime_ns },
            }
        })
        .collect()
}

pub fn publish(opts: &PublishOptions) -> Result<PublishReport> {
    publish_with(opts, EmbedSettings::default())
}

/// [`publish`] embedding as `embedding` says. No setting changes a vector beyond float rounding (the network
/// is in eval mode: an image's vector does not depend on what else is in its batch).
pub fn publish_with(opts: &PublishOptions, embedding: EmbedSettings) -> Result<PublishReport> {
    // The folders first: refused before anything is loaded or written.
    if !opts.images.is_dir() {
        bail!("--images {} is not a folder", opts.images.display());
    }
    output::refuse_overlap(&opts.images, &opts.out)?;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create --out {}", opts.out.display()))?;
    let _lock = output::OutputLock::take(&opts.out)?;

    let device = crate::default_device();
    let weights = opts.weights.clone();
    let loaded = crate::load::load_model_dir_with_backbone_weights(&opts.model, weights.as_deref(), device)?;
    if loaded.dir.image_head.is_none() {
        bail!("model {} has no image_head.safetensors: it cannot embed images (export it with `trainer export`)", opts.model.display());
    }
    let model_id = loaded.dir.model_id().to_string();
    let retrieval = if opts.plain { None } else { loaded.dir.manifest.retrieval.clone() };
    let views: Vec<String> = retrieval.as_ref().map(|r| r.image_views.clone()).unwrap_or_default();
    let image_views = crate::features::views_of(retrieval.as_ref())?;
    let bank = match &retrieval {
        Some(_) => loaded.dir.load_hubness_bank(&opts.model)?, // not read with --plain
        None => None,
    };
    let (list, mut skipped) = entries(opts)?;
    if list.is_empty() {
        bail!("no images found in {} (extensions: {})", opts.images.display(), IMAGE_EXTENSIONS.join(", "));
    }
    let mut cache = cache::EmbedCache::open(&opts.out, &model_id, &views, &wasm_model::image_encoder::decode_rule())?;

    let weights = weights.unwrap_or_else(|| loaded.backbone.installed_weights());
    // the stock backbone, only when an image needs embedding and the model has no fine-tuned tail of its own
    let load_backbone = || -> Result<embed::StockBackbone> {
        if loaded.model.tail.is_some() {
            return Ok(None);
        }
        let mut vs = tch::nn::VarStore::new(device);
        let b = backbone::load(loaded.backbone, &weights, &vs.root())?;
        vs.freeze();
        Ok(Some((vs, b)))
    };
    let prep = Preprocess::for_backbone(loaded.backbone);
    let per_pass = embedding.images_per_pass();
    let plans = plan(opts, &cache, &list);
    let jobs: Vec<PathBuf> = plans.iter().filter_map(|p| if let Plan::Embed { path, .. } = p { Some(path.clone()) } else { None }).collect();
    let bar = ProgressBar::new(list.len() as u64).with_style(
        ProgressStyle::with_template("publish [{bar:30}] {pos}/{len} images, {per_sec}, {eta} left").expect("a valid template"),
    );
    let started = Instant::now();
    let (mut rows, mut items) = (Vec::new(), Vec::new());
    let (mut embedded, mut reused) = (0, 0);
    let (mut unmapped, mut without_licence) = (BTreeMap::<String, usize>::new(), 0);
    std::thread::scope(|scope| -> Result<()> {
        let views = &image_views;
        let source = if embedding.inline {
            embed::Source::Inline { jobs: jobs.into_iter(), prep }
        } else {
            // decoding, views and thumbnails on their own thread, ahead of the network (see `embed`)
            let (tx, rx) = embed::channel(per_pass);
            std::thread::Builder::new()
                .name("publish-prepare".into())
                .spawn_scoped(scope, move || embed::produce(jobs, prep, views, tx))
                .context("cannot start publish's image thread")?;
            embed::Source::Ahead(rx)
        };
        let mut embedder = embed::Embedder::new(source, per_pass, views, &loaded.model, &load_backbone, device);
        for (e, plan) in list.iter().zip(plans) {
            bar.inc(1);
            // Logs (nohup, CI) get no progress bar: a line every 100 images instead.
            if bar.is_hidden() && bar.position().is_multiple_of(100) {
                let rate = bar.position() as f64 / started.elapsed().as_secs_f64().max(1e-9);
                let left = (list.len() as u64 - bar.position()) as f64 / rate;
                tracing::info!("publish: {}/{} images, {rate:.1} images/s, {left:.0} s left", bar.position(), list.len());
            }
            let record = match plan {
                Plan::Skip(why) => {
                    skipped.push((e.rel.clone(), why));
                    continue;
                }
                Plan::Cached(r) => {
                    reused += 1;
                    r
                }
                // a file the captions file lists again: the earlier listing's record, when it got one
                Plan::Again { size, mtime_ns } => match cache.get(&e.rel, size, mtime_ns) {
                    Some(r) => {
                        reused += 1;
                        r.clone()
                    }
                    None => {
                        skipped.push((e.rel.clone(), "listed again, and its earlier listing could not be published".into()));
                        continue;
                    }
                },
                Plan::Complete(path, old) => match complete_record(&opts.out, &path, old)? {
                    Ok(record) => {
                        cache.append(record.clone())?;
                        reused += 1;
                        record
                    }
                    Err(why) => {
                        skipped.push((e.rel.clone(), why));
                        continue;
                    }
                },
                Plan::Embed { path, size, mtime_ns } => match embedder.next()? {
                    Err(why) => {
                        skipped.push((e.rel.clone(), why));
                        continue;
                    }
                    Ok(done) => {
                        if let Some(i) = done.vector.iter().position(|x| !x.is_finite()) {
                            bail!("{}: its vector is not finite (value {i}): the model's weights are broken", path.display());
                        }
                        let thumb = thumbs::write(&opts.out, &done.thumb)?;
                        let record = cache::Record { file: e.rel.clone(), size, mtime_ns, thumb, vector: done.vector, shown_size: Some(done.shown_size) };
                        cache.append(record.clone())?;
                        embedded += 1;
                        record
                    }
                },
            };
            crate::crash::point("publish.image-recorded")?;
            rows.extend_from_slice(&record.vector);
            let licence_id = match normalise_licence(&e.licence) {
                Some(id) => id,
                None if e.licence.trim().is_empty() => {
                    without_licence += 1;
                    UNKNOWN_LICENCE
                }
                None => {
                    *unmapped.entry(e.licence.trim().to_string()).or_default() += 1;
                    UNKNOWN_LICENCE
                }
            };
            items.push(GalleryItem {
                id: 0,
                file: e.rel.clone(),
                thumb: record.thumb,
                caption: e.caption.clone(),
                source: e.source.clone(),
                licence: e.licence.clone(),
                url: e.url.clone(),
                hubness: None,
                width: record.shown_size.map(|(w, _)| w),
                height: record.shown_size.map(|(_, h)| h),
                licence_id: Some(licence_id.to_string()),
            });
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    if !skipped.is_empty() {
        tracing::warn!("{} files skipped (the report lists each with its reason)", skipped.len());
    }
    if items.is_empty() {
        bail!("none of the {} images in {} could be read ({} skipped)", list.len(), opts.images.display(), skipped.len());
    }
    let dim = loaded.model.embed_dim as usize;
    if let (Some(r), Some(bank)) = (&retrieval, &bank) {
        // each image's hubness against the model's caption bank (the engine subtracts weight × it); a mean of
        // cosines, clamped against rounding into the [-1, 1] the gallery reader demands
        let bank = Tensor::from_slice(bank).view([-1, dim as i64]);
        let hubs = crate::eval::hubness(&Tensor::from_slice(&rows).view([-1, dim as i64]), &bank, r.hubness_k);
        items.iter_mut().zip(hubs).for_each(|(it, h)| it.hubness = Some(h.clamp(-1.0, 1.0)));
    }
    let partitioned = opts.format.partitioned_for(items.len());
    // a partitioned gallery holds int8 rows (whatever --dtype says): quantised once, here
    let dtype = if partitioned { GalleryDtype::Int8 } else { opts.dtype };
    let bin = write_gallery_bin(&model_id, dim, &rows, dtype)?;
    drop(rows);
    let mut index = GalleryIndex::new(&model_id, items);
    // What the page's empty state shows: theme counts and example prompts that work, searched here with the
    // engine every reader uses (a few dozen prompts: well under a second; at 1 M images a few seconds).
    let engine = wasm_model::Engine::new(loaded.dir.clone(), &bin, &index.to_json()).context("loading the new gallery to summarise it")?;
    index.summary = Some(engine.gallery_summary());
    let partitioned = if partitioned {
        crate::crash::point("publish.index-build")?;
        Some(tier::write_partitioned_tier(&opts.out, engine.gallery(), &index, opts.partitioning)?)
    } else {
        tier::write_flat(&opts.out, &bin, &index)?;
        None
    };
    // Only now that the new gallery is in place: what it no longer names goes.
    cache.compact(index.items.iter().map(|it| it.file.as_str()))?;
    let keep: HashSet<&str> = index.items.iter().map(|it| it.thumb.as_str()).collect();
    thumbs::remove_stale(&opts.out, &keep)?;
    let old_cache = opts.out.join(cache::OLD_CACHE_FILE);
    if old_cache.exists() {
        std::fs::remove_file(&old_cache).with_context(|| format!("cannot remove the old cache {}", old_cache.display()))?;
    }
    Ok(PublishReport { count: index.count, embedded, reused, skipped, model_id, partitioned, unmapped_licences: unmapped.into_iter().collect(), without_licence })
}

/// Completes a cached record of an older publish, which lacks the picture's shown size: read from the file's
/// header, and for a picture with an EXIF orientation (whose old thumbnail was not turned) an upright
/// thumbnail. The vector is kept: it is computed from the stored pixels either way. `Ok(Err(why))`: the file
/// cannot be read now.
fn complete_record(out: &Path, path: &Path, mut record: cache::Record) -> Result<Result<cache::Record, String>> {
    let bytes = match crate::image_file::read(path) {
        Ok(b) => b,
        Err(why) => return Ok(Err(why)),
    };
    let (shown, orientation) = match crate::image_file::probe(&bytes) {
        Ok(p) => p,
        Err(why) => return Ok(Err(why)),
    };
    if orientation != image::metadata::Orientation::NoTransforms {
        let image = match crate::image_file::decode(&bytes) {
            Ok(image) => image,
            Err(why) => return Ok(Err(why)),
        };
        let upright = crate::image_file::Opened { image, orientation }.upright();
        record.thumb = thumbs::write(out, &thumbs::encode(&upright)?)?;
    }
    record.shown_size = Some(shown);
    Ok(Ok(record))
}

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tier_tests;
