//! A published gallery as the database stores it: read only through wasm-model's readers (`ModelDir`, `Gallery`,
//! `GalleryIndex`; a partitioned gallery through `partitioned::fs::open_dir` + `read_whole`), with the hubness
//! correction folded into each vector so that one inner product is the shipped score (docs/scale.md): row
//! `[v, −w·h]`, text query `[q, 1]` → `q·v − w·h`; "more like this" `[v_id, 0]` → `v_id·v`.

use std::path::Path;

use sha2::{Digest, Sha256};
use wasm_model::engine::nearest_neighbour_cosines;
use wasm_model::partitioned::fs::open_dir;
use wasm_model::workflow::duplicates::{calibrate, spread, CALIBRATION_REFERENCE};
use wasm_model::workflow::{DuplicateCalibration, Layout, Orientation};
use wasm_model::partitioned::Descriptor;
use wasm_model::{Gallery, GalleryIndex, GalleryItem, ModelDir};

use crate::DbError;

pub struct PublishedGallery {
    model_id: String,
    embed_dim: usize,
    hubness_weight: f32,
    mean_hubness: f32,
    gallery: Gallery,
    index: GalleryIndex,
    checksum: String,
}

impl std::fmt::Debug for PublishedGallery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedGallery")
            .field("model_id", &self.model_id)
            .field("len", &self.len())
            .field("embed_dim", &self.embed_dim)
            .field("hubness_weight", &self.hubness_weight)
            .finish()
    }
}

impl PublishedGallery {
    /// `model_dir/` (manifest.json …, validated) and the gallery `gallery_dir` as published: flat
    /// (`gallery.{bin,json}`) or partitioned (`gallery.json` a descriptor; every list and metadata block read).
    pub fn open(model_dir: impl AsRef<Path>, gallery_dir: impl AsRef<Path>) -> Result<Self, DbError> {
        let model = ModelDir::load(model_dir)?;
        let dir = gallery_dir.as_ref();
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| {
                DbError::Gallery(format!("{}: {e} (publish a gallery there with `trainer publish`)", dir.join(name).display()))
            })
        };
        let json = String::from_utf8(read("gallery.json")?)
            .map_err(|_| DbError::Gallery(format!("{}: not UTF-8 text", dir.join("gallery.json").display())))?;
        if Descriptor::is_partitioned(&json) {
            return Self::open_partitioned(&model, dir);
        }
        let bin = read("gallery.bin")?;
        Self::from_bytes(&model, &bin, &json)
    }

    /// A partitioned gallery, read whole through wasm-model's reader (every file checked as a query checks it).
    /// Its checksum is derived from the gallery id, itself a hash of every row and item.
    fn open_partitioned(model: &ModelDir, dir: &Path) -> Result<Self, DbError> {
        let in_dir = |e: wasm_model::partitioned::PartitionedError| DbError::Gallery(format!("{}: {e}", dir.display()));
        let (descriptor, partitioned) = open_dir(dir, model.model_id(), model.manifest.embed_dim).map_err(in_dir)?;
        let (gallery, items) = partitioned.read_whole().map_err(in_dir)?;
        let index = GalleryIndex::new(model.model_id(), items);
        index.check_gallery(&gallery)?;
        let mut h = Sha256::new();
        h.update(b"imgpick-partitioned-gallery\0");
        h.update(descriptor.gallery_id.as_bytes());
        Ok(Self::assemble(model, gallery, index, wasm_model::model_dir::hex(&h.finalize())))
    }

    /// The gallery files' contents, checked against `model` (the same checks as `Engine::new`).
    pub fn from_bytes(model: &ModelDir, gallery_bin: &[u8], gallery_json: &str) -> Result<Self, DbError> {
        let gallery = Gallery::from_bytes(gallery_bin)?;
        gallery.check_model(model.model_id(), model.manifest.embed_dim)?;
        let index = GalleryIndex::from_json(gallery_json)?;
        index.check_gallery(&gallery)?;
        let mut h = Sha256::new();
        h.update(gallery_bin);
        h.update(gallery_json.as_bytes());
        Ok(Self::assemble(model, gallery, index, wasm_model::model_dir::hex(&h.finalize())))
    }

    fn assemble(model: &ModelDir, gallery: Gallery, index: GalleryIndex, checksum: String) -> Self {
        let hubness_weight = model.manifest.retrieval.as_ref().map_or(0.0, |r| r.hubness_weight);
        Self {
            model_id: model.model_id().to_string(),
            embed_dim: gallery.dim(),
            hubness_weight,
            mean_hubness: mean_known_hubness(&index.items),
            gallery,
            index,
            checksum,
        }
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }
    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }
    pub fn len(&self) -> usize {
        self.gallery.len()
    }
    pub fn is_empty(&self) -> bool {
        self.gallery.is_empty()
    }
    pub fn hubness_weight(&self) -> f32 {
        self.hubness_weight
    }
    pub fn mean_hubness(&self) -> f32 {
        self.mean_hubness
    }
    /// SHA-256 (hex) of `gallery.bin` followed by `gallery.json`; of a partitioned gallery, of its gallery id.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }
    pub fn items(&self) -> &[GalleryItem] {
        &self.index.items
    }

    /// What a text query loses on image `id`: `hubness_weight × hubness`, the gallery's mean hubness for an image
    /// without a (finite) one — exactly `Engine`'s correction.
    pub fn penalty(&self, id: usize) -> f32 {
        let h = self.index.items[id].hubness.filter(|h| h.is_finite()).unwrap_or(self.mean_hubness);
        self.hubness_weight * h
    }

    /// The gallery's rows as wasm-model reads them.
    pub fn gallery(&self) -> &Gallery {
        &self.gallery
    }

    /// Every image's score for the text-query vector `q` (L2-normalised, `embed_dim` values), computed as
    /// `Engine::search` does: the exact ranking the database's index approximates.
    pub fn text_scores(&self, q: &[f32]) -> Vec<f32> {
        let mut scores = self.gallery.scores(q);
        scores.iter_mut().enumerate().for_each(|(id, s)| *s -= self.penalty(id));
        scores
    }

    /// The gallery's near-duplicate threshold, computed as `Engine::duplicate_calibration` computes it for the
    /// same flat gallery (the same spread rows, the same int8 nearest-neighbour cosines): stored at load, so a
    /// database collapses exactly the pairs the engine collapses.
    pub fn duplicate_calibration(&self) -> DuplicateCalibration {
        let rows: Vec<Vec<f32>> = spread(self.len(), CALIBRATION_REFERENCE).into_iter().filter_map(|i| self.gallery.row(i)).collect();
        calibrate(&nearest_neighbour_cosines(&rows, self.embed_dim))
    }

    /// What layout filters read of image `id` (`Layout::of` its item): width, height, orientation (`None`
    /// without a recorded size) and normalised licence id.
    pub fn layout(&self, id: usize) -> StoredLayout {
        let l = Layout::of(&self.index.items[id]);
        StoredLayout {
            width: l.width.map(|w| w as i32),
            height: l.height.map(|h| h as i32),
            orientation: l.width.zip(l.height).map(|(w, h)| orientation_sql(Orientation::of(w, h))),
            licence_id: l.licence_id.unwrap_or(wasm_model::gallery::UNKNOWN_LICENCE),
        }
    }

    /// The stored vector of image `id`: its gallery row (as `Gallery::row` reads it) and `−penalty`.
    pub fn folded_row(&self, id: usize) -> Vec<f32> {
        let mut v = self.gallery.row(id).expect("id < len");
        v.push(-self.penalty(id));
        v
    }
}

/// An image's layout columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredLayout {
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub orientation: Option<&'static str>,
    pub licence_id: &'static str,
}

/// The `orientation` column's value (the name the refinement parameter `orient` uses).
pub fn orientation_sql(o: Orientation) -> &'static str {
    match o {
        Orientation::Landscape => "landscape",
        Orientation::Portrait => "portrait",
        Orientation::Square => "square",
    }
}

/// The text-query vector the database is searched with: `[q, 1]`.
pub fn text_query_vector(q: &[f32]) -> Vec<f32> {
    let mut v = q.to_vec();
    v.push(1.0);
    v
}

/// The "more like this" vector for a stored row `[v, −p]`: `[v, 0]` (plain cosine, as `Engine::similar`).
pub fn similar_query_vector(stored: &[f32]) -> Vec<f32> {
    let mut v = stored.to_vec();
    if let Some(last) = v.last_mut() {
        *last = 0.0;
    }
    v
}

/// The mean of the finite hubness values (0 when there are none), as `Engine::new` computes it.
fn mean_known_hubness(items: &[GalleryItem]) -> f32 {
    let known: Vec<f32> = items.iter().filter_map(|it| it.hubness).filter(|h| h.is_finite()).collect();
    if known.is_empty() {
        0.0
    } else {
        known.iter().sum::<f32>() / known.len() as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_model::model_dir::Retrieval;
    use wasm_model::testutil::{random_model, random_rows, small_config};
    use wasm_model::{write_gallery_bin, Engine, GalleryDtype};

    fn items(n: usize) -> Vec<GalleryItem> {
        (0..n)
            .map(|i| GalleryItem {
                id: i,
                file: format!("img{i}.jpg"),
                thumb: format!("thumbs/{i}.webp"),
                caption: format!("caption {i}"),
                source: "test".into(),
                licence: "CC0".into(),
                url: None,
                // Unknown (None) and non-finite hubness both get the mean, as in Engine.
                hubness: match i % 7 {
                    3 => None,
                    5 => Some(f32::NAN),
                    _ => Some(0.1 + 0.02 * (i % 11) as f32),
                },
                ..Default::default()
            })
            .collect()
    }

    /// The inner product of the folded row and `[q, 1]` is the engine's score of every image, for every dtype.
    #[test]
    fn folded_inner_product_is_the_engine_score() {
        for dtype in [GalleryDtype::F32, GalleryDtype::F16, GalleryDtype::Int8] {
            let mut model = random_model(small_config(), 6, 9, false);
            model.manifest.retrieval = Some(Retrieval { image_views: vec!["original".into()], hubness_k: 10, hubness_weight: 0.5, strong_match: None });
            let id = model.model_id().to_string();
            let bin = write_gallery_bin(&id, 6, &random_rows(40, 6, 3), dtype).unwrap();
            let json = GalleryIndex::new(&id, items(40)).to_json();
            let published = PublishedGallery::from_bytes(&model, &bin, &json).unwrap();
            let engine = Engine::new(model, &bin, &json).unwrap();
            let q = engine.query_vector("w2 w5 -w3").unwrap();
            let hits = engine.search("w2 w5 -w3", 40).unwrap();
            assert_eq!(hits.len(), 40);
            let query = text_query_vector(&q);
            let scores = published.text_scores(&q);
            for h in &hits {
                let row = published.folded_row(h.id as usize);
                let ip = wasm_model::rank::dot_f32(&row, &query);
                assert!((ip - h.score).abs() < 1e-5, "{dtype:?} id {}: {ip} vs engine {}", h.id, h.score);
                assert!((scores[h.id as usize] - h.score).abs() < 1e-6, "{dtype:?} id {}: text_scores", h.id);
            }
            // "more like this": [v, 0] against [v', −p'] is the plain cosine Engine::similar ranks by.
            let like = similar_query_vector(&published.folded_row(4));
            for h in engine.similar(4, 10).unwrap() {
                let ip = wasm_model::rank::dot_f32(&published.folded_row(h.id as usize), &like);
                assert!((ip - h.score).abs() < 1e-5, "{dtype:?} similar id {}: {ip} vs {}", h.id, h.score);
            }
        }
    }

    /// A partitioned gallery opens as the flat gallery it was built from: the same stored rows, items and
    /// penalties (so the same database rows); its checksum follows its gallery id. A damaged list is refused
    /// naming the folder and the file.
    #[test]
    fn a_partitioned_gallery_reads_as_its_flat_source() {
        use wasm_model::partitioned::{fs::write_partitioned, BuildParams};
        let tmp = tempfile::tempdir().unwrap();
        let mut model = random_model(small_config(), 6, 9, false);
        model.manifest.retrieval = Some(Retrieval { image_views: vec!["original".into()], hubness_k: 10, hubness_weight: 0.5, strong_match: None });
        let model_dir = tmp.path().join("model");
        model.write(&model_dir).unwrap();
        let model = ModelDir::load(&model_dir).unwrap();
        let id = model.model_id().to_string();
        let (flat_dir, part_dir) = (tmp.path().join("flat"), tmp.path().join("partitioned"));
        std::fs::create_dir_all(&flat_dir).unwrap();
        let mut listed = items(300);
        listed[4].width = Some(640);
        listed[4].licence_id = Some("cc0-1.0".into());
        let bin = write_gallery_bin(&id, 6, &random_rows(300, 6, 3), GalleryDtype::Int8).unwrap();
        std::fs::write(flat_dir.join("gallery.bin"), &bin).unwrap();
        std::fs::write(flat_dir.join("gallery.json"), GalleryIndex::new(&id, listed.clone()).to_json()).unwrap();
        let params = BuildParams { lists: Some(8), meta_block: 64, ..BuildParams::default() };
        write_partitioned(&Gallery::from_bytes(&bin).unwrap(), &listed, &params, &part_dir).unwrap();

        let flat = PublishedGallery::open(&model_dir, &flat_dir).unwrap();
        let part = PublishedGallery::open(&model_dir, &part_dir).unwrap();
        assert_eq!((part.len(), part.embed_dim(), part.model_id()), (300, 6, id.as_str()));
        assert_eq!(part.items(), flat.items());
        assert_eq!(part.mean_hubness(), flat.mean_hubness());
        for i in 0..300 {
            assert_eq!(part.folded_row(i), flat.folded_row(i), "row {i}");
        }
        assert_eq!(part.checksum(), PublishedGallery::open(&model_dir, &part_dir).unwrap().checksum(), "stable");
        assert_ne!(part.checksum(), flat.checksum());

        let descriptor = wasm_model::partitioned::Descriptor::from_json(&std::fs::read_to_string(part_dir.join("gallery.json")).unwrap()).unwrap();
        let shard = part_dir.join(&descriptor.gallery_id).join(wasm_model::partitioned::shard_file(3));
        let mut damaged = std::fs::read(&shard).unwrap();
        damaged[100] ^= 0xFF;
        std::fs::write(&shard, damaged).unwrap();
        let e = PublishedGallery::open(&model_dir, &part_dir).unwrap_err().to_string();
        assert!(e.contains(&part_dir.display().to_string()) && e.contains("lists/000/000003.bin") && e.contains("CRC"), "{e}");
    }

    /// The stored calibration is the engine's for the same flat gallery; the layout columns are `Layout::of`.
    #[test]
    fn calibration_and_layout_are_the_engines() {
        for dtype in [GalleryDtype::F32, GalleryDtype::Int8] {
            let model = random_model(small_config(), 6, 9, false);
            let id = model.model_id().to_string();
            let mut listed = items(200);
            listed[1].width = Some(1600);
            listed[1].height = Some(900);
            listed[1].licence = "CC BY-SA 3.0".into();
            listed[2].width = Some(900);
            listed[2].height = Some(1000);
            listed[2].licence_id = Some("pd".into());
            let bin = write_gallery_bin(&id, 6, &random_rows(200, 6, 5), dtype).unwrap();
            let json = GalleryIndex::new(&id, listed).to_json();
            let published = PublishedGallery::from_bytes(&model, &bin, &json).unwrap();
            let engine = Engine::new(model, &bin, &json).unwrap();
            assert_eq!(published.duplicate_calibration(), engine.duplicate_calibration().unwrap(), "{dtype:?}");
            let l = published.layout(1);
            assert_eq!((l.width, l.height, l.orientation, l.licence_id), (Some(1600), Some(900), Some("landscape"), "cc-by-sa-3.0"));
            assert_eq!((published.layout(2).orientation, published.layout(2).licence_id), (Some("square"), "pd"));
            assert_eq!((published.layout(0).orientation, published.layout(0).licence_id), (None, "cc0-1.0"));
        }
    }

    #[test]
    fn refuses_a_gallery_of_another_model_and_checksums_both_files() {
        let model = random_model(small_config(), 6, 9, false);
        let other = random_model(small_config(), 6, 10, false);
        let bin = write_gallery_bin(other.model_id(), 6, &random_rows(3, 6, 2), GalleryDtype::F32).unwrap();
        let json = GalleryIndex::new(other.model_id(), items(3)).to_json();
        let err = PublishedGallery::from_bytes(&model, &bin, &json).unwrap_err().to_string();
        assert!(err.contains(other.model_id()) && err.contains(model.model_id()), "{err}");
        let a = PublishedGallery::from_bytes(&other, &bin, &json).unwrap();
        let b = PublishedGallery::from_bytes(&other, &bin, &json.replace("caption 1", "caption one")).unwrap();
        assert_ne!(a.checksum(), b.checksum());
        assert_eq!(a.checksum().len(), 64);
        assert_eq!((a.hubness_weight(), a.penalty(0)), (0.0, 0.0), "no retrieval in the manifest: no correction");
        let missing = PublishedGallery::open(std::path::Path::new("/nonexistent-model"), "/nonexistent").unwrap_err();
        assert!(missing.to_string().contains("nonexistent-model"), "{missing}");
    }
}
