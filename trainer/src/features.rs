//! Frozen-backbone feature cache on disk.
//!
//! For every image (and optionally its horizontal flip, a free augmentation for captions) the backbone runs
//! once; we store the pooled features (`pooled`, f32 [n, C]) and the activations at a split point `k`
//! (`act`, f16 [n, C_k, h, w], the input of stage k) so that stages `k..` can later be fine-tuned on the cache.
//! The cache is a folder of part files of `PART` images each, written atomically (temp + rename), so a
//! killed extraction resumes where it stopped. Its key hashes the backbone, weights file, split, view and
//! the ordered list of image files (canonical paths), wasm-model's rule for transparency when one of the files
//! can hold it, and its decode rule when one is a JPEG large enough to be decoded scaled.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use crate::backbone::{self, preprocess, Backbone, BackboneKind, BackboneKindExt};

/// Images per part file.
pub const PART: usize = 256;
/// Images per forward pass.
const BATCH: usize = 32;

/// How an image is shown to the backbone: the usual input, mirrored, or zoomed (the contract's definition).
pub use wasm_model::model_dir::{ImageView as View, Zoom};

/// The view's part of a cache folder name (`orig` / `flip` kept from before zoomed views existed).
fn cache_name(view: View) -> String {
    match (view.zoom, view.flipped) {
        (None, false) => "orig".into(),
        (None, true) => "flip".into(),
        _ => view.name(),
    }
}

/// Network input `[3, S, S]` of `view` of a [`preprocess::network_picture`] (the zoom's region cropped out,
/// resized and centre-cropped; not mirrored): the rule for transparency applies to the whole picture first,
/// so every view of a cut-out is cut from the same grey square, as the page's.
pub fn picture_view_input(prep: &preprocess::Preprocess, view: View, picture: &image::RgbImage) -> Tensor {
    if view.zoom.is_none() {
        return prep.picture_to_input(picture);
    }
    let (x, y, side) = view.crop_rect(picture.width(), picture.height());
    prep.picture_to_input(&image::imageops::crop_imm(picture, x, y, side, side).to_image())
}

/// Network input `[3, S, S]` of one view of the image file at `path`, prepared as `publish` and the page prepare
/// it ([`preprocess::open_network_picture`]: a large JPEG DCT-scaled, a cut-out on a grey square), then the view
/// cut out, preprocessed and mirrored.
pub fn view_input(prep: &preprocess::Preprocess, view: View, path: &Path) -> Result<Tensor, backbone::BackboneError> {
    Ok(mirrored_if_flipped(view, &picture_view_input(prep, view, &preprocess::open_network_picture(path, prep.size)?)))
}

/// `x` (`[3, S, S]`) mirrored left to right when `view` is a flipped one: the one place a view is mirrored
/// (publish prepares unflipped inputs on its producer thread and mirrors at batch time).
pub fn mirrored_if_flipped(view: View, x: &Tensor) -> Tensor {
    if view.flipped {
        x.flip([2])
    } else {
        x.shallow_clone()
    }
}

/// The views a model's gallery vectors average (manifest `retrieval`; without it, the original only).
pub fn views_of(retrieval: Option<&wasm_model::model_dir::Retrieval>) -> Result<Vec<View>> {
    Ok(match retrieval {
        Some(r) => r.views()?,
        None => vec![View::ORIGINAL],
    })
}

/// What to extract.
#[derive(Debug, Clone)]
pub struct CacheSpec {
    pub backbone: BackboneKind,
    pub weights: PathBuf,
    /// Split point for cached activations (`None`: pooled features only).
    pub split: Option<usize>,
}

/// The features of one image set and view, in image order.
pub struct Features {
    /// [N, C] f32
    pub pooled: Tensor,
    /// [N, C_k, h, w] f16 when a split was cached
    pub act: Option<Tensor>,
    /// false for images that could not be decoded (their rows are zero)
    pub ok: Vec<bool>,
}

fn cache_key(spec: &CacheSpec, view: View, files: &[PathBuf]) -> Result<String> {
    let meta = std::fs::metadata(&spec.weights)
        .with_context(|| format!("cannot read backbone weights {} (run scripts/setup.sh or pass --weights)", spec.weights.display()))?;
    let mut h = Sha256::new();
    h.update(format!("{}|{}|{:?}|{}|", spec.backbone.name(), meta.len(), spec.split, cache_name(view)));
    for f in files {
        // canonical, so `../shared/x.jpg` and `/work/shared/x.jpg` share one cache
        let f = std::fs::canonicalize(f).unwrap_or_else(|_| f.clone());
        h.update(f.to_string_lossy().as_bytes());
        h.update(b"\n");
    }
    // A set with images that can hold transparency is keyed by the rule the network sees them by, so a cache
    // made under another rule (cut-outs on white, cropped) is not served; a set without any (Flickr8k's JPEGs)
    // keeps the key it always had. Header reads only.
    if files.iter().any(|f| crate::image_file::may_have_transparency(f)) {
        h.update(format!("|{}", wasm_model::image_encoder::TRANSPARENCY_RULE));
    }
    // Likewise a set with a JPEG large enough to be decoded DCT-scaled (as publish and the page decode it; a cache
    // of full-size decodes is not served), named by wasm-model's decode rule; Flickr8k's 500-px JPEGs are not.
    let input_size = preprocess::Preprocess::for_backbone(spec.backbone).size;
    if files.iter().any(|f| crate::image_file::is_scaled_for_network(f, input_size)) {
        h.update(format!("|{}", wasm_model::image_encoder::decode_rule()));
    }
    Ok(h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// The folder that holds (or will hold) the cache of `files` under `cache_dir`.
pub fn cache_folder(cache_dir: &Path, spec: &CacheSpec, view: View, files: &[PathBuf]) -> Result<PathBuf> {
    let split = spec.split.map(|k| format!("-k{k}")).unwrap_or_default();
    Ok(cache_dir.join(format!("{}{}-{}-{}", spec.backbone.name(), split, cache_name(view), cache_key(spec, view, files)?)))
}

fn part_path(folder: &Path, i: usize) -> PathBuf {
    folder.join(format!("part-{i:05}.safetensors"))
}

/// Loads the backbone (frozen, eval mode) from its weights.
pub fn load_backbone(spec: &CacheSpec, device: tch::Device) -> Result<(tch::nn::VarStore, Box<dyn Backbone>)> {
    let mut vs = tch::nn::VarStore::new(device);
    let net = backbone::load(spec.backbone, &spec.weights, &vs.root())?;
    vs.freeze();
    Ok((vs, net))
}

/// Extracts (or loads from the cache) the features of `files` for `view`. Broken images are zero rows with
/// `ok = false`, reported in the log.
pub fn extract(cache_dir: &Path, spec: &CacheSpec, view: View, files: &[PathBuf], device: tch::Device) -> Result<Features> {
    let folder = cache_folder(cache_dir, spec, view, files)?;
    std::fs::create_dir_all(&folder).with_context(|| format!("cannot create feature cache {}", folder.display()))?;
    let parts = files.len().div_ceil(PART);
    let missing: Vec<usize> = (0..parts).filter(|&i| !part_path(&folder, i).is_file()).collect();
    if !missing.is_empty() {
        let (_vs, net) = load_backbone(spec, device)?;
        let bar = ProgressBar::new((missing.len() * PART).min(files.len()) as u64).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images {per_sec} eta {eta}").unwrap(),
        );
        bar.set_message(format!("features {} {}", spec.backbone.name(), cache_name(view)));
        for &i in &missing {
            let chunk = &files[i * PART..((i + 1) * PART).min(files.len())];
            let tensors = extract_part(net.as_ref(), spec.split, view, chunk, device, &bar)?;
            let path = part_path(&folder, i);
            let tmp = path.with_extension("tmp");
            Tensor::write_safetensors(&tensors, &tmp).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path)?;
        }
        bar.finish();
    }
    load_parts(&folder, parts, files)
}

fn extract_part(
    net: &dyn Backbone,
    split: Option<usize>,
    view: View,
    files: &[PathBuf],
    device: tch::Device,
    bar: &ProgressBar,
) -> Result<Vec<(String, Tensor)>> {
    let prep = preprocess::Preprocess::for_backbone(net.kind());
    let size = prep.size;
    let mut pooled = Vec::new();
    let mut acts = Vec::new();
    let mut ok = Vec::new();
    for chunk in files.chunks(BATCH) {
        let inputs: Vec<Tensor> = chunk
            .iter()
            .map(|p| match view_input(&prep, view, p) {
                Ok(t) => {
                    ok.push(1u8);
                    t
                }
                Err(e) => {
                    // Every view fails on the same files: name them once, for the original view.
                    if view == View::ORIGINAL {
                        tracing::warn!("skipping broken image: {e}");
                    } else {
                        tracing::debug!("skipping broken image ({}): {e}", view.name());
                    }
                    ok.push(0u8);
                    Tensor::zeros([3, size as i64, size as i64], (Kind::Float, tch::Device::Cpu))
                }
            })
            .collect();
        let x = Tensor::stack(&inputs, 0).to_device(device);
        tch::no_grad(|| {
            let k = split.unwrap_or(0);
            let a = net.stem_to(&x, k, false);
            let grid = net.stages_from(&a, k, false);
            pooled.push(backbone::global_avg_pool(&grid).to_kind(Kind::Float).to_device(tch::Device::Cpu));
            if split.is_some() {
                acts.push(a.contiguous().to_kind(Kind::Half).to_device(tch::Device::Cpu));
            }
        });
        bar.inc(chunk.len() as u64);
    }
    let mut out = vec![
        ("pooled".to_string(), Tensor::cat(&pooled, 0)),
        ("ok".to_string(), Tensor::from_slice(&ok)),
    ];
    if !acts.is_empty() {
        out.push(("act".to_string(), Tensor::cat(&acts, 0)));
    }
    Ok(out)
}

fn load_parts(folder: &Path, parts: usize, files: &[PathBuf]) -> Result<Features> {
    let mut pooled = Vec::new();
    let mut acts = Vec::new();
    let mut ok = Vec::new();
    for i in 0..parts {
        let path = part_path(folder, i);
        let tensors = Tensor::read_safetensors(&path)
            .with_context(|| format!("corrupt feature cache part {} (delete it to re-extract)", path.display()))?;
        for (name, t) in tensors {
            match name.as_str() {
                "pooled" => pooled.push(t),
                "act" => acts.push(t),
                "ok" => ok.extend(Vec::<u8>::try_from(&t)?.into_iter().map(|b| b != 0)),
                _ => {}
            }
        }
    }
    let pooled = Tensor::cat(&pooled, 0);
    if pooled.size()[0] as usize != files.len() || ok.len() != files.len() {
        bail!("feature cache {} holds {} rows for {} images (delete the folder to re-extract)", folder.display(), pooled.size()[0], files.len());
    }
    let broken: Vec<&Path> = files.iter().zip(&ok).filter(|(_, &o)| !o).map(|(f, _)| f.as_path()).collect();
    if !broken.is_empty() {
        tracing::warn!("{} unreadable images skipped, e.g. {}", broken.len(), broken[0].display());
    }
    Ok(Features { pooled, act: (!acts.is_empty()).then(|| Tensor::cat(&acts, 0)), ok })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page's preprocessing settings for Lite0 (wasm-model `preprocess`, what `ImageEncoder::embed` feeds
    /// the network).
    fn lite0_page_config(prep: &preprocess::Preprocess) -> wasm_model::model_dir::ImageConfig {
        wasm_model::model_dir::ImageConfig {
            backbone: BackboneKind::EfficientnetLite0,
            feature_dim: 1280,
            image_size: prep.size as usize,
            mean: prep.mean,
            std: prep.std,
            pooling: Default::default(),
            finetuned_from: None,
        }
    }

    /// `publish`'s input for one (unmirrored) view of the file at `path`: `open_for_network` +
    /// `network_picture` + `picture_view_input`, as publish/embed.rs prepares it.
    fn publish_input(prep: &preprocess::Preprocess, view: View, path: &Path) -> Tensor {
        let (opened, _) = crate::image_file::open_for_network(path, prep.size).unwrap();
        picture_view_input(prep, view, &preprocess::network_picture(opened.image))
    }

    /// The trainer's input for a cut-out (PNG and WebP with transparency, wide and tall) — `eval`/`features`
    /// (`view_input`) and `publish` (`open_for_network` + `picture_view_input`) — is the page's value for
    /// value; every view is cut from the same grey square.
    #[test]
    fn a_cut_out_is_prepared_as_the_page_prepares_it() {
        let prep = preprocess::Preprocess::for_backbone(BackboneKind::EfficientnetLite0);
        let cfg = lite0_page_config(&prep);
        let tmp = tempfile::tempdir().unwrap();
        for ((w, h), format) in [((300, 140), image::ImageFormat::Png), ((90, 260), image::ImageFormat::WebP)] {
            let cut_out = image::RgbaImage::from_fn(w, h, |x, y| {
                let alpha = if (x + y) % 7 == 0 { 0 } else if x < w / 3 { 255 } else { (x * 3 % 256) as u8 };
                image::Rgba([(x % 256) as u8, (y % 256) as u8, 40, alpha])
            });
            let path = tmp.path().join(format!("cut-out.{}", format.extensions_str()[0]));
            image::DynamicImage::ImageRgba8(cut_out).save_with_format(&path, format).unwrap();
            let page = wasm_model::image_encoder::preprocess(&std::fs::read(&path).unwrap(), &cfg).unwrap();
            let page = Tensor::from_slice(&page).reshape([3, prep.size as i64, prep.size as i64]);
            let eval = view_input(&prep, View::ORIGINAL, &path).unwrap();
            let (opened, _) = crate::image_file::open_for_network(&path, prep.size).unwrap();
            let picture = preprocess::network_picture(opened.image);
            assert_eq!(picture.dimensions(), (w.max(h), w.max(h)), "{format:?}: padded to a square");
            let publish = picture_view_input(&prep, View::ORIGINAL, &picture);
            assert!(eval.equal(&page) && publish.equal(&page), "{format:?}: the trainer's input is the page's");
            // a zoom of the cut-out is cut from the square (its top-left corner is the padding's grey)
            let zoom = view_input(&prep, View::zoomed(Zoom::TopLeft, false), &path).unwrap();
            let grey = (128.0 / 255.0 - prep.mean[0]) / prep.std[0];
            assert!((zoom.double_value(&[0, 0, 0]) - grey as f64).abs() < 1e-6, "{format:?}: padding at the zoom's corner");
        }
    }

    /// A JPEG large enough to be decoded DCT-scaled (2000×1800 for Lite0: 1800 / 2 ≥ 4 × 224) gets the same input
    /// through `eval`/`features` as through `publish` and the page, value for value, for every view (mirrored:
    /// the mirror of publish's); that input is not the full-size decode's (which eval used before).
    #[test]
    fn a_large_jpeg_is_prepared_as_publish_prepares_it() {
        let prep = preprocess::Preprocess::for_backbone(BackboneKind::EfficientnetLite0);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("large.jpg");
        // fine detail (the scaled decode then differs from the full one) over smooth gradients
        let photo = image::RgbImage::from_fn(2000, 1800, |x, y| {
            let fine = if (x / 3 + y / 2) % 2 == 0 { 30 } else { 0 };
            image::Rgb([((x / 8) % 200) as u8 + fine, ((y / 8) % 256) as u8, ((x + y) / 16 % 200) as u8 + fine])
        });
        image::DynamicImage::ImageRgb8(photo).save_with_format(&path, image::ImageFormat::Jpeg).unwrap();
        assert!(crate::image_file::is_scaled_for_network(&path, prep.size));
        let page = wasm_model::image_encoder::preprocess(&std::fs::read(&path).unwrap(), &lite0_page_config(&prep)).unwrap();
        let page = Tensor::from_slice(&page).reshape([3, prep.size as i64, prep.size as i64]);
        for view in [View::ORIGINAL, View::FLIPPED, View::zoomed(Zoom::TopLeft, false), View::zoomed(Zoom::Centre, true)] {
            let eval = view_input(&prep, view, &path).unwrap();
            let publish = publish_input(&prep, View { flipped: false, ..view }, &path);
            let publish = mirrored_if_flipped(view, &publish);
            assert!(eval.equal(&publish), "{}: eval's input is publish's", view.name());
        }
        let eval = view_input(&prep, View::ORIGINAL, &path).unwrap();
        assert!(eval.equal(&page), "and the page's");
        let full_size = prep.picture_to_input(&preprocess::network_picture(crate::image_file::open(&path).unwrap()));
        let d = (&eval - &full_size).abs().max().double_value(&[]);
        assert!(d > 1e-3, "the full-size decode's input differs (by {d}): the test tells the two decodes apart");
    }

    /// A set whose files cannot hold transparency and hold no JPEG large enough to be decoded scaled keeps the
    /// key of the versions before those rules (so Flickr8k's caches stay valid: features, eval, and fit's
    /// stage-K caches); once one file can hold transparency, or one JPEG is decoded scaled, the key changes (a
    /// cache of cut-outs drawn on white, or of full-size decodes, is not served).
    #[test]
    fn the_key_names_the_rules_only_for_sets_they_change() {
        let tmp = tempfile::tempdir().unwrap();
        let weights = tmp.path().join("weights.safetensors");
        std::fs::write(&weights, b"12345").unwrap();
        let spec = CacheSpec { backbone: BackboneKind::EfficientnetLite0, weights, split: Some(6) };
        let img = image::RgbaImage::from_pixel(8, 4, image::Rgba([200, 10, 10, 255]));
        let save = |name: &str, img: image::DynamicImage| {
            let path = tmp.path().join(name);
            img.save(&path).unwrap();
            path
        };
        let files = vec![save("a.jpg", image::DynamicImage::ImageRgba8(img.clone()).to_rgb8().into()), save("b.png", image::DynamicImage::ImageRgba8(img.clone()).to_rgb8().into())];
        // the key as every earlier version computed it
        let mut h = Sha256::new();
        h.update("efficientnet-lite0|5|Some(6)|orig|");
        for f in &files {
            h.update(std::fs::canonicalize(f).unwrap().to_string_lossy().as_bytes());
            h.update(b"\n");
        }
        let before: String = h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(cache_key(&spec, View::ORIGINAL, &files).unwrap(), before);
        // a.jpg grows: just too small to be scaled for Lite0's 224 px (1790 / 2 < 4 × 224), then large enough
        let grey = |w, h| image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(w, h, image::Rgb([90, 90, 90])));
        save("a.jpg", grey(2400, 1790));
        assert_eq!(cache_key(&spec, View::ORIGINAL, &files).unwrap(), before, "decoded whole, as before");
        save("a.jpg", grey(2400, 1792));
        assert_ne!(cache_key(&spec, View::ORIGINAL, &files).unwrap(), before, "a.jpg is decoded at 1/2 now");
        save("a.jpg", grey(8, 4));
        assert_eq!(cache_key(&spec, View::ORIGINAL, &files).unwrap(), before);
        save("b.png", image::DynamicImage::ImageRgba8(img));
        assert_ne!(cache_key(&spec, View::ORIGINAL, &files).unwrap(), before, "b.png has an alpha channel now");
    }

    /// Extraction on a few real photos: cached == recomputed, broken files flagged, resume after a lost part.
    #[test]
    fn cache_is_resumable_and_flags_broken_images() {
        let assets = backbone::assets_dir();
        let weights = assets.join("efficientnet_lite0.safetensors");
        let photos = assets.join("photos");
        if !weights.is_file() || !photos.is_dir() {
            eprintln!("skipping: Lite0 weights / photos not installed (scripts/setup.sh)");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let broken = dir.join("broken.jpg");
        std::fs::write(&broken, b"not a jpeg").unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&photos).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files.truncate(2);
        files.push(broken);
        let spec = CacheSpec { backbone: BackboneKind::EfficientnetLite0, weights, split: Some(6) };
        let a = extract(dir, &spec, View::ORIGINAL, &files, tch::Device::Cpu).unwrap();
        assert_eq!(a.ok, vec![true, true, false]);
        assert_eq!(a.pooled.size(), vec![3, 1280]);
        assert_eq!(a.act.as_ref().unwrap().size(), vec![3, 192, 7, 7]);
        // pooled == head(stages_from(act)) within f16 rounding of the cached activations
        let (_vs, net) = load_backbone(&spec, tch::Device::Cpu).unwrap();
        let re = tch::no_grad(|| backbone::global_avg_pool(&net.stages_from(&a.act.as_ref().unwrap().to_kind(Kind::Float), 6, false)));
        let d = (&re - &a.pooled).abs().max().double_value(&[]);
        assert!(d < 0.05, "recomputed pooled differs by {d}");
        // losing the part file re-extracts it with the same result
        let folder = cache_folder(dir, &spec, View::ORIGINAL, &files).unwrap();
        std::fs::remove_file(part_path(&folder, 0)).unwrap();
        let b = extract(dir, &spec, View::ORIGINAL, &files, tch::Device::Cpu).unwrap();
        assert!((&a.pooled - &b.pooled).abs().max().double_value(&[]) < 1e-6);
        let flip = extract(dir, &spec, View::FLIPPED, &files, tch::Device::Cpu).unwrap();
        assert!((&a.pooled - &flip.pooled).abs().max().double_value(&[]) > 1e-3, "flipped view differs");
    }
}
