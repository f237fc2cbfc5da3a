//! The engine over a partitioned gallery: construction (from the descriptor and header bytes, or natively from
//! the folder), and queries in steps — plan the lists, add shards as they arrive, advance, read the running
//! top-k — which the page drives list by list and native callers run to completion in one call.

use super::search::{Hit, Scope};
use super::{Engine, EngineError, MAX_K};
use crate::gallery::{write_gallery_bin, Gallery, GalleryDtype, GalleryIndex, GalleryItem};
use crate::model_dir::ModelDir;
use crate::partitioned::{PartitionedGallery, PlannedSearch, Progress};
use crate::text_encoder::TextEncoder;

impl Engine {
    /// Joins a validated model with a partitioned gallery's `gallery.json` (descriptor) and `index.bin`; shards
    /// come later (`add_shard`, or natively from the folder).
    pub fn new_partitioned(model: ModelDir, descriptor_json: &str, header: &[u8]) -> Result<Self, EngineError> {
        let gallery = PartitionedGallery::new(descriptor_json, header, model.model_id(), model.manifest.embed_dim)?;
        let weight = model.manifest.retrieval.as_ref().map_or(0.0, |r| r.hubness_weight);
        let mean = gallery.header().hubness_mean;
        let id = model.model_id().to_owned();
        let empty = Gallery::from_bytes(&write_gallery_bin(&id, model.manifest.embed_dim, &[], GalleryDtype::Int8)?)?;
        let encoder = TextEncoder::new(&model)?;
        let added = super::AddedPhotos::new(model.manifest.embed_dim);
        Ok(Self {
            model,
            encoder,
            gallery: empty,
            index: GalleryIndex::new(&id, Vec::new()),
            partitioned: Some(gallery),
            image_encoder: None,
            added,
            hub_penalty: Vec::new(),
            added_hub_penalty: weight * mean,
            workflow: super::WorkflowCache::default(),
        })
    }

    /// Like [`Engine::from_bytes_with_head`], for a partitioned gallery.
    pub fn from_bytes_partitioned(
        manifest_json: &str,
        vocab_txt: &str,
        text_encoder: &[u8],
        image_head: Option<&[u8]>,
        descriptor_json: &str,
        header: &[u8],
    ) -> Result<Self, EngineError> {
        let model = match image_head {
            Some(head) => ModelDir::from_bytes(manifest_json, vocab_txt, text_encoder, Some(head))?,
            None => ModelDir::from_bytes_deferring_image_head(manifest_json, vocab_txt, text_encoder)?,
        };
        Self::new_partitioned(model, descriptor_json, header)
    }

    /// A partitioned gallery in `dir` whose descriptor is `descriptor_json`: the header now, shards and metadata
    /// from the folder as queries need them.
    #[cfg(feature = "native")]
    pub(super) fn open_partitioned(model: ModelDir, dir: &std::path::Path, descriptor_json: &str) -> Result<Self, EngineError> {
        use crate::partitioned::{fs::DirSource, Descriptor, ShardSource};
        let d = Descriptor::from_json(descriptor_json)?;
        let source = DirSource::new(dir, &d.gallery_id);
        let header = source.read(&d.header)?;
        let mut engine = Self::new_partitioned(model, descriptor_json, &header)?;
        if let Some(p) = engine.partitioned.take() {
            engine.partitioned = Some(p.with_source(Box::new(source)));
        }
        Ok(engine)
    }

    /// The partitioned gallery, when the gallery is one.
    pub fn partitioned(&self) -> Option<&PartitionedGallery> {
        self.partitioned.as_ref()
    }

    /// Caps the shard bytes a partitioned gallery keeps in memory (the page: its memory after many queries).
    pub fn set_shard_memory(&mut self, bytes: usize) {
        if let Some(p) = self.partitioned.as_mut() {
            p.set_shard_memory(bytes);
        }
    }

    fn partitioned_gallery(&self) -> Result<&PartitionedGallery, EngineError> {
        self.partitioned.as_ref().ok_or(EngineError::NotPartitioned)
    }

    /// Checks a shard file (against the header: model, gallery, list, CRC) and keeps it; returns its list.
    pub fn add_shard(&self, bytes: &[u8]) -> Result<u32, EngineError> {
        Ok(self.partitioned_gallery()?.add_shard(bytes)?)
    }

    /// Plans a text query: the lists to scan (best first) and, in scope, the added photos already ranked.
    pub fn plan_search(&self, query: &str, k: usize, scope: Scope) -> Result<PlannedSearch, EngineError> {
        let q = self.query_vector(query)?;
        self.plan_vector(q, k, None, scope, true)
    }

    /// Plans "more like image `id`" (plain cosine, `id` left out). A gallery image's row must be in memory
    /// (its list's shard added) unless the engine reads from a folder.
    pub fn plan_similar(&self, id: usize, k: usize) -> Result<PlannedSearch, EngineError> {
        let row = self.row(id)?;
        self.plan_vector(row, k, Some(id as u32), Scope::All, false)
    }

    /// Plans a query by vector; `text_query` applies the hubness correction (as `search` does).
    pub fn plan_vector(&self, query: Vec<f32>, k: usize, exclude: Option<u32>, scope: Scope, text_query: bool) -> Result<PlannedSearch, EngineError> {
        let p = self.partitioned_gallery()?;
        let weight = if text_query { self.model.manifest.retrieval.as_ref().map_or(0.0, |r| r.hubness_weight) } else { 0.0 };
        let mut s = p.plan(query, weight, k.min(MAX_K), exclude, None, scope != Scope::Added);
        if scope != Scope::Gallery {
            let n = self.gallery_len();
            let penalty = if text_query { self.added_hub_penalty } else { 0.0 };
            let mut scores = Vec::with_capacity(self.added.len());
            self.added.scores_into(s.query(), penalty, &mut scores);
            for (i, score) in scores.into_iter().enumerate() {
                s.offer((n + i) as u32, score);
            }
        }
        Ok(s)
    }

    /// Scans the planned lists that are in memory and not yet scanned.
    pub fn advance(&self, s: &mut PlannedSearch) -> Result<Progress, EngineError> {
        Ok(self.partitioned_gallery()?.advance(s))
    }

    /// The results so far, best first. File, thumbnail and caption are filled for added photos and, when the
    /// engine reads from a folder, for gallery images (the page has the metadata blocks itself).
    pub fn planned_hits(&self, s: &PlannedSearch) -> Vec<Hit> {
        let n = self.gallery_len();
        s.results()
            .into_iter()
            .map(|r| {
                let id = r.id as usize;
                let (file, thumb, caption) = match (id < n, self.partitioned.as_ref()) {
                    (true, Some(p)) if p.has_source() => match p.item(id) {
                        Ok(it) => (it.item.file, it.item.thumb, it.item.caption),
                        Err(_) => Default::default(),
                    },
                    (true, _) => Default::default(),
                    (false, _) => self.added.names(id - n).map(|(f, t)| (f.to_owned(), t.to_owned(), String::new())).unwrap_or_default(),
                };
                Hit { id: r.id, file, thumb, caption, score: r.score, strong: None }
            })
            .collect()
    }

    /// Gallery image `id`'s metadata: from gallery.json (flat), or its metadata block (partitioned, read from
    /// the folder). `None` for an unknown id or a block that cannot be read.
    pub fn item(&self, id: usize) -> Option<GalleryItem> {
        match &self.partitioned {
            Some(p) if id < p.header().count => p.item(id).ok().map(|it| it.item),
            Some(_) => None,
            None => self.index.items.get(id).cloned(),
        }
    }

    /// A whole query over a partitioned gallery (reading missing shards from the folder): what `search_in` and
    /// `similar` run for one.
    pub(super) fn search_partitioned(&self, query: Vec<f32>, k: usize, exclude: Option<u32>, scope: Scope, text_query: bool) -> Result<Vec<Hit>, EngineError> {
        let mut s = self.plan_vector(query, k, exclude, scope, text_query)?;
        self.partitioned_gallery()?.complete(&mut s)?;
        let mut hits = self.planned_hits(&s);
        if text_query {
            self.mark_strength(&mut hits);
        }
        Ok(hits)
    }
}
