//! A model and a gallery, validated together, answering searches (native callers and the wasm wrapper). This
//! file: the errors, [`Engine`] itself and its construction. `search`: ranking (text queries with the
//! hubness correction, similar images, scopes); `photos`: the user's photos (image encoder, added vectors);
//! `explain`: each word's share of a score; `partitioned`: a partitioned gallery's planned, progressive queries;
//! `summary`: the example prompts of a gallery's summary; `refine` and `passage`: the writer's workflow (issue
//! #20: feedback, layout filters, near-duplicates, variety, pasted passages).

use crate::gallery::{Gallery, GalleryError, GalleryIndex};
use crate::image_encoder::{ImageEncoder, ImageEncoderError};
use crate::model_dir::{ModelDir, ModelError};
use crate::partitioned::{PartitionedError, PartitionedGallery};
use crate::query::{query_vector, QueryError, QueryVectorError};
use crate::text_encoder::{EncodeError, TextEncoder};

mod explain;
mod partitioned;
mod passage;
mod photos;
mod refine;
mod search;
mod summary;

pub use explain::{Explanation, WordDelta};
pub use photos::{quantize_i8, standalone_image_encoder, AddedPhotos};
pub use search::{Hit, Scope};
pub use summary::{CANDIDATE_PROMPTS, MAX_EXAMPLES};
pub use passage::{IdeaPlan, PassageAnswer, PassageIdea, PassagePlan};
pub use refine::{nearest_neighbour_cosines, RefinedHit, WorkflowCache};

/// Largest `k` a search returns (the page shows far fewer; bounds allocations for hostile callers).
pub const MAX_K: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Model(#[from] ModelError),
    #[error("{0}")]
    Encode(#[from] EncodeError),
    #[error("{0}")]
    Gallery(#[from] GalleryError),
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("image id {id} is not in the gallery (it has {len} images, ids 0..{len})")]
    UnknownImage { id: usize, len: usize },
    #[error("{0}")]
    Image(#[from] ImageEncoderError),
    #[error("no image encoder loaded: load image_encoder.safetensors first (`trainer export-image-encoder` adds it to the model)")]
    NoImageEncoder,
    #[error("image_head.safetensors is not loaded yet: the engine was built without it; pass it with the image encoder (`load_image_encoder(encoder, head)`) or to `load_image_head`")]
    ImageHeadNotLoaded,
    #[error("vector has {found} values, the model's embed_dim is {expected}")]
    VectorDim { found: usize, expected: usize },
    #[error("vector has a non-finite or zero-length value; it cannot be ranked")]
    VectorNotFinite,
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Partitioned(#[from] PartitionedError),
    #[error("the gallery is flat (gallery.bin): it has no lists to plan; use search / similar")]
    NotPartitioned,
    #[error("{0}")]
    Passage(#[from] crate::workflow::PassageError),
    /// A refinement (marks, filters) that cannot be run: the message says why.
    #[error("{0}")]
    Refine(String),
}

impl From<QueryVectorError> for EngineError {
    fn from(e: QueryVectorError) -> Self {
        match e {
            QueryVectorError::Query(q) => Self::Query(q),
            QueryVectorError::Encode(e) => Self::Encode(e),
        }
    }
}

#[derive(Debug)]
pub struct Engine {
    model: ModelDir,
    encoder: TextEncoder,
    /// The flat gallery's rows and items (empty when the gallery is partitioned).
    gallery: Gallery,
    index: GalleryIndex,
    /// A partitioned gallery (README "Partitioned gallery"); `None` for a flat one.
    partitioned: Option<PartitionedGallery>,
    /// Optional: embeds the user's own photos (see README "Image encoder").
    image_encoder: Option<ImageEncoder>,
    /// The user's added photos: int8 rows (ids `gallery_len()..`), in memory only.
    added: AddedPhotos,
    /// Hubness correction of text queries (manifest `retrieval`): `weight * hubness` per gallery row, and the
    /// gallery's mean for the added photos (whose hubness is not measured: they get the typical value, so they
    /// neither gain nor lose against the gallery on average). All zero without `retrieval`.
    hub_penalty: Vec<f32>,
    added_hub_penalty: f32,
    /// What refined queries compute once (near-duplicate threshold, layouts).
    workflow: WorkflowCache,
}

impl Engine {
    /// Joins a validated model with `gallery.bin` + `gallery.json`, refusing a gallery of another model.
    pub fn new(model: ModelDir, gallery_bin: &[u8], gallery_json: &str) -> Result<Self, EngineError> {
        let gallery = Gallery::from_bytes(gallery_bin)?;
        gallery.check_model(model.model_id(), model.manifest.embed_dim)?;
        let index = GalleryIndex::from_json(gallery_json)?;
        index.check_gallery(&gallery)?;
        let encoder = TextEncoder::new(&model)?;
        let weight = model.manifest.retrieval.as_ref().map_or(0.0, |r| r.hubness_weight);
        let known: Vec<f32> = index.items.iter().filter_map(|it| it.hubness).filter(|h| h.is_finite()).collect();
        let mean = if known.is_empty() { 0.0 } else { known.iter().sum::<f32>() / known.len() as f32 };
        let hub_penalty = index.items.iter().map(|it| weight * it.hubness.filter(|h| h.is_finite()).unwrap_or(mean)).collect();
        let added = AddedPhotos::new(model.manifest.embed_dim);
        Ok(Self { model, encoder, gallery, index, partitioned: None, image_encoder: None, added, hub_penalty, added_hub_penalty: weight * mean, workflow: WorkflowCache::default() })
    }

    /// Everything from the files' contents (what the browser fetched).
    pub fn from_bytes(
        manifest_json: &str,
        vocab_txt: &str,
        text_encoder: &[u8],
        gallery_bin: &[u8],
        gallery_json: &str,
    ) -> Result<Self, EngineError> {
        Self::from_bytes_with_head(manifest_json, vocab_txt, text_encoder, None, gallery_bin, gallery_json)
    }

    /// Like `from_bytes`, with `image_head.safetensors` when the manifest names one. The head is needed only to
    /// embed photos, so it may be `None` (the page downloads it only when photos are added): search, similar,
    /// explain, `add_vector` and `search_in` work without it, and [`Engine::load_image_head`] /
    /// [`Engine::load_image_encoder_with_head`] take it later. `model_id` covers the head's bytes: it is verified
    /// when they are given (here, or later).
    pub fn from_bytes_with_head(
        manifest_json: &str,
        vocab_txt: &str,
        text_encoder: &[u8],
        image_head: Option<&[u8]>,
        gallery_bin: &[u8],
        gallery_json: &str,
    ) -> Result<Self, EngineError> {
        let model = match image_head {
            Some(head) => ModelDir::from_bytes(manifest_json, vocab_txt, text_encoder, Some(head))?,
            None => ModelDir::from_bytes_deferring_image_head(manifest_json, vocab_txt, text_encoder)?,
        };
        Self::new(model, gallery_bin, gallery_json)
    }

    /// Loads `model_dir/` (manifest.json …) and the gallery in `gallery_dir`: flat (`gallery.bin` +
    /// `gallery.json`) or partitioned (`gallery.json` says which; its shards and metadata are then read from the
    /// folder as queries need them).
    #[cfg(feature = "native")]
    pub fn open(model_dir: impl AsRef<std::path::Path>, gallery_dir: impl AsRef<std::path::Path>) -> Result<Self, EngineError> {
        let model = ModelDir::load(model_dir)?;
        let g = gallery_dir.as_ref();
        let io = |p: std::path::PathBuf| move |source| EngineError::Io { path: p.display().to_string(), source };
        let json = std::fs::read_to_string(g.join("gallery.json")).map_err(io(g.join("gallery.json")))?;
        if crate::partitioned::Descriptor::is_partitioned(&json) {
            return Self::open_partitioned(model, g, &json);
        }
        let bin = std::fs::read(g.join("gallery.bin")).map_err(io(g.join("gallery.bin")))?;
        Self::new(model, &bin, &json)
    }

    pub fn model(&self) -> &ModelDir {
        &self.model
    }
    pub fn model_id(&self) -> &str {
        self.model.model_id()
    }
    pub fn encoder(&self) -> &TextEncoder {
        &self.encoder
    }
    /// The flat gallery's rows (no rows when the gallery is partitioned: see [`Engine::partitioned`]).
    pub fn gallery(&self) -> &Gallery {
        &self.gallery
    }
    /// The flat gallery's items (none when the gallery is partitioned: see [`Engine::item`]).
    pub fn index(&self) -> &GalleryIndex {
        &self.index
    }
    /// Images in the gallery (flat or partitioned).
    pub fn gallery_len(&self) -> usize {
        self.partitioned.as_ref().map_or(self.gallery.len(), |p| p.header().count)
    }

    /// Gallery plus added photos.
    pub fn len(&self) -> usize {
        self.gallery_len() + self.added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `id` of the gallery or, past it, of the added photos.
    fn row(&self, id: usize) -> Result<Vec<f32>, EngineError> {
        let n = self.gallery_len();
        if let (Some(p), true) = (&self.partitioned, id < n) {
            return Ok(p.row(id)?);
        }
        if id < n {
            return self.gallery.row(id).ok_or(EngineError::UnknownImage { id, len: self.len() });
        }
        self.added.row(id - n).ok_or(EngineError::UnknownImage { id, len: self.len() })
    }

    /// The L2-normalised vector a query searches with.
    pub fn query_vector(&self, query: &str) -> Result<Vec<f32>, EngineError> {
        Ok(query_vector(&self.encoder, query)?)
    }
}

#[cfg(test)]
pub(super) mod testing {
    use super::*;
    use crate::gallery::{write_gallery_bin, GalleryDtype, GalleryItem};
    use crate::testutil::{random_model, random_rows, small_config};

    pub fn items(n: usize) -> Vec<GalleryItem> {
        (0..n)
            .map(|i| GalleryItem {
                id: i,
                file: format!("img{i}.jpg"),
                thumb: format!("thumbs/{i}.webp"),
                caption: format!("caption {i}"),
                source: "test".into(),
                licence: "CC0".into(),
                url: None,
                hubness: None,
                ..Default::default()
            })
            .collect()
    }

    /// An engine over a random small model and a 30-image gallery stored as `dtype`.
    pub fn engine(dtype: GalleryDtype) -> Engine {
        let model = random_model(small_config(), 6, 9, false);
        let id = model.model_id().to_owned();
        let bin = write_gallery_bin(&id, 6, &random_rows(30, 6, 2), dtype).unwrap();
        Engine::new(model, &bin, &GalleryIndex::new(&id, items(30)).to_json()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::items;
    use super::*;
    use crate::gallery::{write_gallery_bin, GalleryDtype};
    use crate::testutil::{random_model, random_rows, small_config};

    #[test]
    fn refuses_gallery_of_another_model() {
        let model = random_model(small_config(), 6, 9, false);
        let other = random_model(small_config(), 6, 10, false);
        let bin = write_gallery_bin(other.model_id(), 6, &random_rows(3, 6, 2), GalleryDtype::F32).unwrap();
        let json = GalleryIndex::new(other.model_id(), items(3)).to_json();
        let err = Engine::new(model.clone(), &bin, &json).unwrap_err().to_string();
        assert!(err.contains(other.model_id()) && err.contains(model.model_id()), "{err}");
        let bin8 = write_gallery_bin(model.model_id(), 8, &random_rows(3, 8, 2), GalleryDtype::F32).unwrap();
        assert!(Engine::new(model.clone(), &bin8, &json).unwrap_err().to_string().contains("embed_dim 6"));
        let good = write_gallery_bin(model.model_id(), 6, &random_rows(3, 6, 2), GalleryDtype::F32).unwrap();
        assert!(Engine::new(model.clone(), &good, &json).unwrap_err().to_string().contains("gallery.json"));
        assert!(Engine::new(model, &good[..50], &json).unwrap_err().to_string().contains("truncated"));
    }
}
