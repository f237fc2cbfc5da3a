//! `trainer publish`: an image folder → a gallery (`gallery.bin` + `gallery.json` + `thumbs/`) for a model.
//!
//! Every readable image is embedded with the model's backbone and image head; broken images are skipped and
//! listed. Re-running only embeds what changed: `.publish-cache.json` in the output folder remembers each
//! file's size, mtime and embedding for the model id. Files are written atomically, `gallery.json` last.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use wasm_model::gallery::{write_gallery_bin, GalleryDtype, GalleryIndex, GalleryItem};

use crate::backbone::{self, preprocess::Preprocess, BackboneKindExt};
use crate::data::Dataset;

pub const CACHE_FILE: &str = ".publish-cache.json";
const THUMB_SIZE: u32 = 256;
const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif"];

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
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct EmbedCache {
    model_id: String,
    /// The image views averaged into each vector (manifest `retrieval.image_views`; empty = original only).
    #[serde(default)]
    views: Vec<String>,
    /// relative file → (size, mtime ns, embedding)
    entries: BTreeMap<String, (u64, u128, Vec<f32>)>,
}

/// What a publish did.
#[derive(Debug)]
pub struct PublishReport {
    pub count: usize,
    pub embedded: usize,
    pub reused: usize,
    pub broken: Vec<(String, String)>,
    pub model_id: String,
}

struct Entry {
    rel: String,
    caption: String,
    source: String,
    licence: String,
    url: Option<String>,
}

fn list_folder(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).with_context(|| format!("cannot read image folder {}", dir.display()))?;
        for e in rd {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())) {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn entries(opts: &PublishOptions) -> Result<Vec<Entry>> {
    let source = opts.source.clone().unwrap_or_default();
    let licence = opts.licence.clone().unwrap_or_default();
    Ok(match &opts.captions {
        Some(c) => Dataset::load(std::slice::from_ref(c))?
            .images
            .into_iter()
            .map(|im| Entry {
                caption: im.title.clone().or_else(|| im.captions.first().cloned()).unwrap_or_default(),
                source: im.source.unwrap_or_else(|| source.clone()),
                licence: im.licence.unwrap_or_else(|| licence.clone()),
                url: im.url.or_else(|| opts.url.clone()),
                rel: im.file_name,
            })
            .collect(),
        None => list_folder(&opts.images)?
            .into_iter()
            .map(|rel| Entry { rel, caption: String::new(), source: source.clone(), licence: licence.clone(), url: opts.url.clone() })
            .collect(),
    })
}

fn file_stamp(path: &Path) -> Option<(u64, u128)> {
    let m = std::fs::metadata(path).ok()?;
    let mtime = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
    Some((m.len(), mtime))
}

fn thumb_name(rel: &str) -> String {
    // stable, flat and safe: a hash of the relative path
    let h = wasm_model::model_dir::sha256_hex(rel.as_bytes());
    format!("thumbs/{}.jpg", &h[..16])
}

fn write_thumb(img: &image::DynamicImage, path: &Path) -> Result<()> {
    let rgb = backbone::preprocess::flatten_onto_white(img);
    let t = image::DynamicImage::ImageRgb8(rgb).thumbnail(THUMB_SIZE, THUMB_SIZE).to_rgb8();
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 80).encode_image(&t)?;
    crate::write_atomic(path, &bytes)?;
    Ok(())
}

pub fn publish(opts: &PublishOptions) -> Result<PublishReport> {
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
    let list = entries(opts)?;
    if list.is_empty() {
        bail!("no images found in {} (extensions: {})", opts.images.display(), IMAGE_EXTENSIONS.join(", "));
    }
    std::fs::create_dir_all(opts.out.join("thumbs")).with_context(|| format!("cannot create {}", opts.out.display()))?;
    let cache_path = opts.out.join(CACHE_FILE);
    let mut cache: EmbedCache = std::fs::read(&cache_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|c: &EmbedCache| c.model_id == model_id && c.views == views)
        .unwrap_or_else(|| EmbedCache { model_id: model_id.clone(), views: views.clone(), ..Default::default() });

    let weights = weights.unwrap_or_else(|| loaded.backbone.installed_weights());
    let mut net: Option<(tch::nn::VarStore, Box<dyn backbone::Backbone>)> = None;
    let prep = Preprocess::for_backbone(loaded.backbone);
    let bar = ProgressBar::new(list.len() as u64)
        .with_style(ProgressStyle::with_template("publish [{bar:30}] {pos}/{len} images {per_sec} eta {eta}").unwrap());
    let (mut rows, mut items, mut broken) = (Vec::new(), Vec::new(), Vec::new());
    let (mut embedded, mut reused) = (0, 0);
    let mut fresh: BTreeMap<String, (u64, u128, Vec<f32>)> = BTreeMap::new();
    for e in &list {
        bar.inc(1);
        let path = opts.images.join(&e.rel);
        let thumb = thumb_name(&e.rel);
        let thumb_path = opts.out.join(&thumb);
        let stamp = file_stamp(&path);
        let cached = stamp.and_then(|(size, mtime)| {
            cache.entries.get(&e.rel).filter(|(s, m, _)| *s == size && *m == mtime).map(|(_, _, v)| v.clone())
        });
        let vector = match cached {
            Some(v) if thumb_path.is_file() => {
                reused += 1;
                v
            }
            _ => {
                let img = match backbone::preprocess::open_image(&path) {
                    Ok(img) => img,
                    Err(err) => {
                        broken.push((e.rel.clone(), err.to_string()));
                        continue;
                    }
                };
                if net.is_none() && loaded.model.tail.is_none() {
                    let mut vs = tch::nn::VarStore::new(device);
                    let b = backbone::load(loaded.backbone, &weights, &vs.root())?;
                    vs.freeze();
                    net = Some((vs, b));
                }
                let stock = net.as_ref().map(|(_, b)| b.as_ref());
                let x = Tensor::stack(&image_views.iter().map(|&view| crate::features::view_input(&prep, view, img.clone())).collect::<Vec<_>>(), 0);
                let v: Vec<f32> = tch::no_grad(|| {
                    // the views' embeddings averaged, then normalised (test-time augmentation)
                    let v = loaded.model.embed_images(stock, &x.to_device(device)).sum_dim_intlist(0, true, Kind::Float);
                    Vec::<f32>::try_from(crate::model::l2_normalize(&v).to_device(tch::Device::Cpu).flatten(0, -1))
                })?;
                write_thumb(&img, &thumb_path)?;
                embedded += 1;
                v
            }
        };
        if let Some((size, mtime)) = stamp {
            fresh.insert(e.rel.clone(), (size, mtime, vector.clone()));
        }
        rows.extend_from_slice(&vector);
        items.push(GalleryItem {
            id: 0,
            file: e.rel.clone(),
            thumb,
            caption: e.caption.clone(),
            source: e.source.clone(),
            licence: e.licence.clone(),
            url: e.url.clone(),
            hubness: None,
        });
    }
    bar.finish_and_clear();
    for (file, why) in &broken {
        tracing::warn!("skipped broken image {file}: {why}");
    }
    if items.is_empty() {
        bail!("none of the {} images in {} could be read", list.len(), opts.images.display());
    }
    let dim = loaded.model.embed_dim as usize;
    if let (Some(r), Some(bank)) = (&retrieval, &bank) {
        // each image's hubness against the model's caption bank (the engine subtracts weight × it)
        let bank = Tensor::from_slice(bank).view([-1, dim as i64]);
        let hubs = crate::eval::hubness(&Tensor::from_slice(&rows).view([-1, dim as i64]), &bank, r.hubness_k);
        items.iter_mut().zip(hubs).for_each(|(it, h)| it.hubness = Some(h));
    }
    let bin = write_gallery_bin(&model_id, dim, &rows, opts.dtype)?;
    let index = GalleryIndex::new(&model_id, items);
    // remove thumbnails of images no longer published
    let keep: HashMap<&str, ()> = index.items.iter().map(|it| (it.thumb.as_str(), ())).collect();
    if let Ok(rd) = std::fs::read_dir(opts.out.join("thumbs")) {
        for f in rd.flatten() {
            let rel = format!("thumbs/{}", f.file_name().to_string_lossy());
            if !keep.contains_key(rel.as_str()) {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
    crate::write_atomic(&opts.out.join("gallery.bin"), &bin)?;
    crate::write_atomic(&opts.out.join("gallery.json"), index.to_json().as_bytes())?;
    cache.entries = fresh;
    crate::write_atomic(&cache_path, &serde_json::to_vec(&cache)?)?;
    Ok(PublishReport { count: index.count, embedded, reused, broken, model_id })
}
