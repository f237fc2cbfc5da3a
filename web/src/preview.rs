//! `/api/preview.jpg?q=…`: the picture a shared link shows in a chat (`share.rs` names it in `og:image`) — the
//! query's top [`TILES`] results' thumbnails in a 4 × 2 grid, 1200 × 630 (the size Open Graph and Twitter's
//! large card ask for), JPEG. It is made on the search pool (decoding and resizing eight thumbnails is ~20 ms of
//! CPU) and kept in a bounded LRU cache keyed by the model and the thumbnails it shows (thumbnail names are
//! content hashes, so a republished gallery never gets a stale picture).

use std::num::NonZeroUsize;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use image::{imageops::FilterType, ImageEncoder, Rgb, RgbImage};
use lru::LruCache;

use crate::api::Hit;

/// Width and height of the preview picture.
pub const SIZE: (u32, u32) = (1200, 630);
/// Results shown: 4 columns × 2 rows.
pub const TILES: usize = 8;
const COLUMNS: u32 = 4;
const GAP: u32 = 6;
const BACKGROUND: Rgb<u8> = Rgb([24, 26, 31]);
/// A tile whose thumbnail is missing or unreadable.
const EMPTY_TILE: Rgb<u8> = Rgb([58, 62, 70]);
/// Previews kept (each ~80–150 kB).
pub const CACHE_ENTRIES: usize = 64;
const JPEG_QUALITY: u8 = 85;

/// Made previews, most recently used kept.
pub struct Previews {
    gallery_dir: PathBuf,
    cache: Mutex<LruCache<String, Vec<u8>>>,
}

impl Previews {
    pub fn new(static_dir: &Path, entries: usize) -> Self {
        let cap = NonZeroUsize::new(entries.max(1)).expect("at least one entry");
        Self { gallery_dir: static_dir.join("gallery"), cache: Mutex::new(LruCache::new(cap)) }
    }

    /// The JPEG for these results (best first), from the cache or made now. Blocking work: run it on the pool.
    pub fn picture(&self, model_id: &str, hits: &[Hit]) -> Vec<u8> {
        let shown = &hits[..hits.len().min(TILES)];
        let key = std::iter::once(model_id).chain(shown.iter().map(|h| h.entry.thumb.as_str())).collect::<Vec<_>>().join("\n");
        if let Some(jpeg) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return jpeg.clone();
        }
        let thumbs: Vec<Option<PathBuf>> = shown.iter().map(|h| self.thumb_path(&h.entry.thumb)).collect();
        let jpeg = collage(&thumbs);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).put(key, jpeg.clone());
        jpeg
    }

    /// Previews in the cache.
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// A thumbnail's file: gallery.json names it relative to the gallery folder; anything that could leave the
    /// folder (absolute, `..`) is not read.
    fn thumb_path(&self, thumb: &str) -> Option<PathBuf> {
        let rel = Path::new(thumb);
        rel.components().all(|c| matches!(c, Component::Normal(_))).then(|| self.gallery_dir.join(rel))
    }
}

/// The grid of `thumbs` (each cropped to fill its tile), as JPEG bytes; a missing or unreadable one is a plain tile.
pub fn collage(thumbs: &[Option<PathBuf>]) -> Vec<u8> {
    let (w, h) = SIZE;
    let rows = TILES as u32 / COLUMNS;
    let (tile_w, tile_h) = ((w - GAP * (COLUMNS + 1)) / COLUMNS, (h - GAP * (rows + 1)) / rows);
    let mut canvas = RgbImage::from_pixel(w, h, BACKGROUND);
    for i in 0..TILES as u32 {
        let (x, y) = (GAP + (i % COLUMNS) * (tile_w + GAP), GAP + (i / COLUMNS) * (tile_h + GAP));
        let tile = thumbs
            .get(i as usize)
            .cloned()
            .flatten()
            .and_then(|p| image::open(p).ok())
            .map(|img| img.resize_to_fill(tile_w, tile_h, FilterType::Triangle).to_rgb8())
            .unwrap_or_else(|| RgbImage::from_pixel(tile_w, tile_h, EMPTY_TILE));
        image::imageops::replace(&mut canvas, &tile, x.into(), y.into());
    }
    let mut jpeg = Vec::with_capacity(150_000);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
        .write_image(canvas.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("encoding an RGB image into memory cannot fail");
    jpeg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid_jpeg(dir: &Path, name: &str, rgb: [u8; 3]) -> PathBuf {
        let p = dir.join(name);
        RgbImage::from_pixel(320, 240, Rgb(rgb)).save(&p).unwrap();
        p
    }

    fn hit(thumb: &str) -> Hit {
        let entry = crate::backend::GalleryEntry { file: "f".into(), thumb: thumb.into(), ..Default::default() };
        Hit { id: 0, score: 0.3, strong: None, entry, similar: Vec::new() }
    }

    /// The tiles show the thumbnails in order, cropped to fill; missing ones are plain tiles; the result is a
    /// 1200 × 630 JPEG.
    #[test]
    fn the_collage_shows_the_thumbnails_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let red = solid_jpeg(tmp.path(), "red.jpg", [220, 20, 20]);
        let blue = solid_jpeg(tmp.path(), "blue.jpg", [20, 20, 220]);
        let jpeg = collage(&[Some(red), None, Some(blue), Some(tmp.path().join("missing.jpg"))]);
        let img = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), SIZE);
        let centre = |i: u32| {
            let (tw, th) = ((SIZE.0 - GAP * 5) / 4, (SIZE.1 - GAP * 3) / 2);
            *img.get_pixel(GAP + (i % 4) * (tw + GAP) + tw / 2, GAP + (i / 4) * (th + GAP) + th / 2)
        };
        let near = |a: Rgb<u8>, b: [u8; 3]| a.0.iter().zip(b).all(|(x, y)| (*x as i32 - y as i32).abs() < 24);
        assert!(near(centre(0), [220, 20, 20]) && near(centre(2), [20, 20, 220]), "{:?} {:?}", centre(0), centre(2));
        for empty in [1, 3, 7] {
            assert!(near(centre(empty), EMPTY_TILE.0), "tile {empty}: {:?}", centre(empty));
        }
    }

    /// Paths that leave the gallery folder are never read; the cache holds at most its bound and answers a
    /// repeated request with the same bytes.
    #[test]
    fn thumbnails_stay_inside_the_gallery_and_the_cache_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("gallery/thumbs")).unwrap();
        solid_jpeg(&tmp.path().join("gallery/thumbs"), "a.jpg", [200, 200, 0]);
        let p = Previews::new(tmp.path(), 2);
        assert!(p.thumb_path("../secret.jpg").is_none() && p.thumb_path("/etc/passwd").is_none());
        assert_eq!(p.thumb_path("thumbs/a.jpg"), Some(tmp.path().join("gallery/thumbs/a.jpg")));
        let first = p.picture("m", &[hit("thumbs/a.jpg")]);
        assert_eq!(p.picture("m", &[hit("thumbs/a.jpg")]), first, "cached");
        p.picture("m", &[hit("thumbs/b.jpg")]);
        p.picture("other-model", &[hit("thumbs/a.jpg")]);
        assert_eq!(p.cached(), 2, "bounded");
    }
}
