//! A model and a gallery, validated together, answering searches (native callers and the wasm wrapper).

use serde::Serialize;

use crate::gallery::{Gallery, GalleryError, GalleryIndex};
use crate::image_encoder::{ImageEncoder, ImageEncoderError};
use crate::model_dir::{Manifest, ModelDir, ModelError};
use crate::query::{combine_terms, parse_query, query_vector, QueryError, QueryVectorError};
use crate::rank::{dot_f32, top_k};
use crate::text_encoder::{EncodeError, TextEncoder};

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
}

impl From<QueryVectorError> for EngineError {
    fn from(e: QueryVectorError) -> Self {
        match e {
            QueryVectorError::Query(q) => Self::Query(q),
            QueryVectorError::Encode(e) => Self::Encode(e),
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: u32,
    pub file: String,
    pub thumb: String,
    pub caption: String,
    pub score: f32,
}

/// How much one prompt word contributed to an image's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordDelta {
    /// Index of the query term the word belongs to.
    pub term: usize,
    pub token: String,
    /// Whether the model knows the word (unknown words are read as `<unk>`).
    pub known: bool,
    /// score(full query) − score(query without this word): positive = the word pushed the image up.
    pub delta: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub id: u32,
    pub score: f32,
    pub words: Vec<WordDelta>,
}

#[derive(Debug)]
pub struct Engine {
    model: ModelDir,
    encoder: TextEncoder,
    gallery: Gallery,
    index: GalleryIndex,
    /// Optional: embeds the user's own photos (see README "Image encoder").
    image_encoder: Option<ImageEncoder>,
    /// The user's added photos: L2-normalised rows (ids `gallery_len()..`), in memory only.
    added: Vec<AddedImage>,
    /// Hubness correction of text queries (manifest `retrieval`): `weight * hubness` per gallery row, and the
    /// gallery's mean for the added photos (whose hubness is not measured: they get the typical value, so they
    /// neither gain nor lose against the gallery on average). All zero without `retrieval`.
    hub_penalty: Vec<f32>,
    added_hub_penalty: f32,
}

/// One of the user's photos joined to the searchable set.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct AddedImage {
    pub file: String,
    /// What the page shows (e.g. a blob: URL of a thumbnail it made); opaque to the engine.
    pub thumb: String,
    pub vector: Vec<f32>,
}

/// Which images a search ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// The gallery and the added photos together.
    #[default]
    All,
    /// Only the shipped gallery.
    Gallery,
    /// Only the added photos.
    Added,
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" | "" => Ok(Scope::All),
            "gallery" => Ok(Scope::Gallery),
            "mine" | "added" => Ok(Scope::Added),
            _ => Err(format!("unknown scope {s:?}: expected all, gallery or mine")),
        }
    }
}

impl std::fmt::Debug for ImageEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ImageEncoder(D = {})", self.embed_dim())
    }
}

/// The one place an [`ImageEncoder`] is built from a manifest and its two weight files (checksums are the
/// caller's job: [`Engine::load_image_encoder`], [`standalone_image_encoder`]).
fn build_image_encoder(m: &Manifest, image_encoder: &[u8], image_head: &[u8]) -> Result<ImageEncoder, EngineError> {
    Ok(ImageEncoder::new(&m.image, m.embed_dim, image_encoder, image_head)?)
}

/// An image encoder without a text encoder or a gallery: what the page's embedding Web Workers run. Both
/// weight files are checked against the manifest's `files_sha256` (the image head is also covered by
/// `model_id`, which the search worker's [`Engine`] verifies).
pub fn standalone_image_encoder(
    manifest_json: &str,
    image_encoder: &[u8],
    image_head: &[u8],
) -> Result<ImageEncoder, EngineError> {
    let m: Manifest = serde_json::from_str(manifest_json).map_err(|e| ModelError::ManifestJson(e.to_string()))?;
    let missing = "is not set: this model cannot embed photos (`trainer export-image-encoder` adds the encoder)";
    let check = |field: &str, name: Option<&String>, bytes: &[u8]| crate::model_dir::verify_side_file(&m, field, name, missing, bytes);
    check("image_encoder", m.files.image_encoder.as_ref(), image_encoder)?;
    check("image_head", m.files.image_head.as_ref(), image_head)?;
    build_image_encoder(&m, image_encoder, image_head)
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
        Ok(Self { model, encoder, gallery, index, image_encoder: None, added: Vec::new(), hub_penalty, added_hub_penalty: weight * mean })
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

    /// Loads `model_dir/` (manifest.json …) and `gallery_dir/gallery.{bin,json}`.
    #[cfg(feature = "native")]
    pub fn open(model_dir: impl AsRef<std::path::Path>, gallery_dir: impl AsRef<std::path::Path>) -> Result<Self, EngineError> {
        let model = ModelDir::load(model_dir)?;
        let g = gallery_dir.as_ref();
        let io = |p: std::path::PathBuf| move |source| EngineError::Io { path: p.display().to_string(), source };
        let bin = std::fs::read(g.join("gallery.bin")).map_err(io(g.join("gallery.bin")))?;
        let json = std::fs::read_to_string(g.join("gallery.json")).map_err(io(g.join("gallery.json")))?;
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
    pub fn gallery(&self) -> &Gallery {
        &self.gallery
    }
    pub fn index(&self) -> &GalleryIndex {
        &self.index
    }
    pub fn gallery_len(&self) -> usize {
        self.gallery.len()
    }

    /// Loads `image_encoder.safetensors` (checked against the manifest's `files_sha256`) together with the
    /// model's image head, so [`Engine::embed_image`] and [`Engine::add_image`] work. The head must have been
    /// given already (at construction or by [`Engine::load_image_head`]); else see
    /// [`Engine::load_image_encoder_with_head`].
    pub fn load_image_encoder(&mut self, bytes: &[u8]) -> Result<(), EngineError> {
        self.model.verify_image_encoder(bytes)?;
        if self.model.image_head_pending() {
            return Err(EngineError::ImageHeadNotLoaded);
        }
        let head = self.model.image_head.as_deref().ok_or(ImageEncoderError::NoImageHead)?;
        self.image_encoder = Some(build_image_encoder(&self.model.manifest, bytes, head)?);
        Ok(())
    }

    /// [`Engine::load_image_head`] (when `image_head` is given), then [`Engine::load_image_encoder`]: both
    /// files are checked before anything changes.
    pub fn load_image_encoder_with_head(&mut self, encoder: &[u8], image_head: Option<&[u8]>) -> Result<(), EngineError> {
        self.model.verify_image_encoder(encoder)?;
        if let Some(head) = image_head {
            self.load_image_head(head)?;
        }
        self.load_image_encoder(encoder)
    }

    /// Gives the engine `image_head.safetensors` when it was built without it: checked against the manifest's
    /// `files_sha256` and `model_id` (wrong bytes are an error naming the file; nothing changes then).
    pub fn load_image_head(&mut self, bytes: &[u8]) -> Result<(), EngineError> {
        Ok(self.model.attach_image_head(bytes)?)
    }

    /// Whether the image head's bytes are held (given at construction or by [`Engine::load_image_head`]).
    pub fn has_image_head(&self) -> bool {
        self.model.image_head.is_some()
    }

    pub fn has_image_encoder(&self) -> bool {
        self.image_encoder.is_some()
    }

    /// An encoded photo (JPEG/PNG/WebP) → its L2-normalised vector (the one `trainer publish` computes).
    pub fn embed_image(&self, bytes: &[u8]) -> Result<Vec<f32>, EngineError> {
        let enc = self.image_encoder.as_ref().ok_or(EngineError::NoImageEncoder)?;
        Ok(enc.embed(bytes)?)
    }

    /// Embeds a photo and adds it to the searchable set; returns its id.
    pub fn add_image(&mut self, file: &str, thumb: &str, bytes: &[u8]) -> Result<u32, EngineError> {
        let v = self.embed_image(bytes)?;
        self.add_vector(file, thumb, v)
    }

    /// Adds a precomputed vector (e.g. restored from the page's local storage); returns its id. The
    /// vector is L2-normalised here.
    pub fn add_vector(&mut self, file: &str, thumb: &str, mut vector: Vec<f32>) -> Result<u32, EngineError> {
        let dim = self.model.manifest.embed_dim;
        if vector.len() != dim {
            return Err(EngineError::VectorDim { found: vector.len(), expected: dim });
        }
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !norm.is_finite() || norm == 0.0 {
            return Err(EngineError::VectorNotFinite);
        }
        vector.iter_mut().for_each(|x| *x /= norm);
        self.added.push(AddedImage { file: file.into(), thumb: thumb.into(), vector });
        Ok((self.gallery.len() + self.added.len() - 1) as u32)
    }

    /// The added photos, in id order (id = `gallery_len() + index`).
    pub fn added(&self) -> &[AddedImage] {
        &self.added
    }

    /// Forgets every added photo.
    pub fn clear_added(&mut self) {
        self.added.clear();
    }

    /// Gallery plus added photos.
    pub fn len(&self) -> usize {
        self.gallery.len() + self.added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `id` of the gallery or, past it, of the added photos.
    fn row(&self, id: usize) -> Result<Vec<f32>, EngineError> {
        let n = self.gallery.len();
        if id < n {
            return self.gallery.row(id).ok_or(EngineError::UnknownImage { id, len: self.len() });
        }
        self.added.get(id - n).map(|a| a.vector.clone()).ok_or(EngineError::UnknownImage { id, len: self.len() })
    }

    /// Like [`Engine::search`], over `scope`.
    pub fn search_in(&self, query: &str, k: usize, scope: Scope) -> Result<Vec<Hit>, EngineError> {
        let q = self.query_vector(query)?;
        Ok(self.rank_scored(&q, k, None, scope, true))
    }

    /// The L2-normalised vector a query searches with.
    pub fn query_vector(&self, query: &str) -> Result<Vec<f32>, EngineError> {
        Ok(query_vector(&self.encoder, query)?)
    }

    /// The `k` images that best fit `query`, best first (ties → lower id). Scores are cosines, less the
    /// hubness correction when the model has one (manifest `retrieval`).
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, EngineError> {
        self.search_in(query, k, Scope::All)
    }

    /// The `k` images most like gallery image `id` (which is left out).
    pub fn similar(&self, id: usize, k: usize) -> Result<Vec<Hit>, EngineError> {
        let row = self.row(id)?;
        Ok(self.rank(&row, k, Some(id as u32)))
    }

    /// Ranks the gallery and the added photos by `query` (a vector of the model's dimension).
    pub fn rank(&self, query: &[f32], k: usize, exclude: Option<u32>) -> Vec<Hit> {
        self.rank_in(query, k, exclude, Scope::All)
    }

    /// Ranks the images in `scope` by cosine; ids stay global (added photos are `gallery_len()..`).
    pub fn rank_in(&self, query: &[f32], k: usize, exclude: Option<u32>, scope: Scope) -> Vec<Hit> {
        self.rank_scored(query, k, exclude, scope, false)
    }

    /// `rank_in`, with the hubness correction when `text_query` (it is measured against captions, so it
    /// applies to text queries, not to image-to-image similarity).
    fn rank_scored(&self, query: &[f32], k: usize, exclude: Option<u32>, scope: Scope, text_query: bool) -> Vec<Hit> {
        let n = self.gallery.len();
        let mut scores = if scope == Scope::Added { vec![f32::NAN; n] } else { self.gallery.scores(query) };
        if text_query {
            scores.iter_mut().zip(&self.hub_penalty).for_each(|(s, p)| *s -= p);
        }
        if scope != Scope::Gallery {
            let added_penalty = if text_query { self.added_hub_penalty } else { 0.0 };
            scores.extend(self.added.iter().map(|a| {
                if a.vector.len() == query.len() {
                    dot_f32(query, &a.vector) - added_penalty
                } else {
                    f32::NAN
                }
            }));
        }
        // Out-of-scope rows score NaN (they rank last); drop them rather than return them.
        let in_scope = |id: usize| match scope {
            Scope::All => true,
            Scope::Gallery => id < n,
            Scope::Added => id >= n,
        };
        top_k(&scores, k.min(MAX_K), exclude)
            .into_iter()
            .filter(|s| in_scope(s.id as usize))
            .map(|s| {
                let id = s.id as usize;
                let (file, thumb, caption) = match self.index.items.get(id) {
                    Some(item) if id < n => (item.file.clone(), item.thumb.clone(), item.caption.clone()),
                    _ => {
                        let a = &self.added[id - n];
                        (a.file.clone(), a.thumb.clone(), String::new())
                    }
                };
                Hit { id: s.id, file, thumb, caption, score: s.score }
            })
            .collect()
    }

    /// Leave-one-word-out: for each word of `query`, how much image `id`'s score drops without it.
    pub fn explain(&self, query: &str, id: usize) -> Result<Explanation, EngineError> {
        let row = self.row(id)?;
        let terms = parse_query(query)?;
        let full = combine_terms(&self.encoder, &terms, |i| terms[i].tokens.clone())?;
        let score = dot_f32(&full, &row);
        let mut words = Vec::new();
        for (t, term) in terms.iter().enumerate() {
            for (j, token) in term.tokens.iter().enumerate() {
                let without = |i: usize| {
                    let mut toks = terms[i].tokens.clone();
                    if i == t {
                        toks.remove(j);
                    }
                    toks
                };
                // Removing the only word of a one-word query leaves nothing: its score is 0.
                let reduced = match combine_terms(&self.encoder, &terms, without) {
                    Ok(v) => dot_f32(&v, &row),
                    Err(QueryVectorError::Query(_)) => 0.0,
                    Err(e) => return Err(e.into()),
                };
                words.push(WordDelta {
                    term: t,
                    token: token.clone(),
                    known: self.encoder.vocab().contains(token),
                    delta: score - reduced,
                });
            }
        }
        Ok(Explanation { id: id as u32, score, words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::{write_gallery_bin, GalleryDtype, GalleryItem};
    use crate::testutil::{random_model, random_rows, small_config};

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
                hubness: None,
            })
            .collect()
    }

    fn engine(dtype: GalleryDtype) -> Engine {
        let model = random_model(small_config(), 6, 9, false);
        let id = model.model_id().to_owned();
        let bin = write_gallery_bin(&id, 6, &random_rows(30, 6, 2), dtype).unwrap();
        Engine::new(model, &bin, &GalleryIndex::new(&id, items(30)).to_json()).unwrap()
    }

    #[test]
    fn search_is_exhaustive_top_k() {
        for dtype in [GalleryDtype::F32, GalleryDtype::F16, GalleryDtype::Int8] {
            let e = engine(dtype);
            let hits = e.search("w2 w5 w7", 5).unwrap();
            assert_eq!(hits.len(), 5);
            let q = e.query_vector("w2 w5 w7").unwrap();
            let mut all: Vec<(f32, usize)> = (0..30).map(|i| (dot_f32(&q, &e.gallery().row(i).unwrap()), i)).collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            assert_eq!(hits.iter().map(|h| h.id as usize).collect::<Vec<_>>(), all[..5].iter().map(|a| a.1).collect::<Vec<_>>());
            assert_eq!(hits[0].file, format!("img{}.jpg", hits[0].id));
            assert!((hits[0].score - all[0].0).abs() < 1e-3);
        }
    }

    /// With `retrieval` in the manifest, text queries score `cosine - weight * hubness`: a hub loses its lead;
    /// image-to-image similarity stays plain cosine; added photos get the gallery's mean hubness.
    #[test]
    fn hubness_correction_reorders_text_queries_only() {
        let plain = engine(GalleryDtype::F32);
        let q = plain.query_vector("w2 w5 w7").unwrap();
        let top = plain.search("w2 w5 w7", 2).unwrap();
        let (first, second) = (top[0].id as usize, top[1].id as usize);
        let gap = top[0].score - top[1].score;

        let mut model = random_model(small_config(), 6, 9, false);
        model.manifest.retrieval = Some(crate::model_dir::Retrieval { image_views: vec!["original".into()], hubness_k: 10, hubness_weight: 0.5 });
        let id = model.model_id().to_owned();
        let bin = write_gallery_bin(&id, 6, &random_rows(30, 6, 2), GalleryDtype::F32).unwrap();
        let mut its = items(30);
        for it in its.iter_mut() {
            it.hubness = Some(0.2);
        }
        its[first].hubness = Some(0.2 + 4.0 * gap + 0.01); // penalty 0.5 × that: more than the gap
        its[7].hubness = None; // unknown: the mean
        let mut e = Engine::new(model, &bin, &GalleryIndex::new(&id, its.clone()).to_json()).unwrap();
        let hits = e.search("w2 w5 w7", 30).unwrap();
        assert_eq!(hits[0].id as usize, second, "the hub {first} must drop below {second}");
        let mean = its.iter().filter_map(|i| i.hubness).sum::<f32>() / 29.0;
        for h in &hits {
            let cos = dot_f32(&q, &e.gallery().row(h.id as usize).unwrap());
            let hub = its[h.id as usize].hubness.unwrap_or(mean);
            assert!((h.score - (cos - 0.5 * hub)).abs() < 1e-5, "id {}: {} vs {}", h.id, h.score, cos - 0.5 * hub);
        }
        // similar(): plain cosine, unchanged by hubness
        assert_eq!(e.similar(3, 5).unwrap(), plain.similar(3, 5).unwrap());
        // an added photo equal to the query: cosine 1, less the mean penalty
        e.add_vector("mine.jpg", "blob:1", q.clone()).unwrap();
        let mine = e.search_in("w2 w5 w7", 1, Scope::Added).unwrap();
        assert!((mine[0].score - (1.0 - 0.5 * mean)).abs() < 1e-5, "{}", mine[0].score);
    }

    #[test]
    fn added_vectors_join_the_search_and_scopes_filter() {
        let mut e = engine(GalleryDtype::F32);
        let q = e.query_vector("w2 w5").unwrap();
        // An added row equal to the query (scaled: it is normalised on the way in) must rank first.
        let id = e.add_vector("mine.jpg", "blob:1", q.iter().map(|x| x * 3.0).collect()).unwrap();
        assert_eq!(id, 30);
        assert_eq!(e.len(), 31);
        let hits = e.search("w2 w5", 5).unwrap();
        assert_eq!((hits[0].id, hits[0].file.as_str(), hits[0].thumb.as_str()), (30, "mine.jpg", "blob:1"));
        assert!((hits[0].score - 1.0).abs() < 1e-5);
        let mine = e.search_in("w2 w5", 5, Scope::Added).unwrap();
        assert_eq!(mine.iter().map(|h| h.id).collect::<Vec<_>>(), [30]);
        let demo = e.search_in("w2 w5", 5, Scope::Gallery).unwrap();
        assert!(demo.len() == 5 && demo.iter().all(|h| h.id < 30));
        assert!(e.similar(30, 3).unwrap().iter().all(|h| h.id != 30));
        assert!(e.explain("w2", 30).is_ok());
        // bad vectors are refused, nothing is added
        assert!(matches!(e.add_vector("x", "", vec![1.0; 5]), Err(EngineError::VectorDim { found: 5, expected: 6 })));
        assert!(matches!(e.add_vector("x", "", vec![0.0; 6]), Err(EngineError::VectorNotFinite)));
        assert!(matches!(e.add_vector("x", "", vec![f32::NAN; 6]), Err(EngineError::VectorNotFinite)));
        assert!(matches!(e.embed_image(b"\x89PNG"), Err(EngineError::NoImageEncoder)));
        assert_eq!(e.len(), 31);
        e.clear_added();
        assert_eq!(e.len(), 30);
        assert!(e.search("w2 w5", 40).unwrap().iter().all(|h| h.id < 30));
    }

    /// The page builds its engine without `image_head.safetensors` (downloaded only when photos are added):
    /// everything but embedding works, and the head is checked (checksum, model id) when it comes.
    #[test]
    fn works_without_the_image_head_until_it_is_loaded() {
        use crate::testutil::{image_config, random_image_head, random_model_with_head};
        let mut model = random_model_with_head(small_config(), 6, 9, random_image_head(6, 3), image_config());
        let encoder_file = b"stand-in for image_encoder.safetensors".to_vec();
        model.set_image_encoder(&encoder_file);
        let (manifest, head) = (model.manifest_json(), model.image_head.clone().unwrap());
        let id = model.model_id().to_owned();
        let bin = write_gallery_bin(&id, 6, &random_rows(30, 6, 2), GalleryDtype::F32).unwrap();
        let json = GalleryIndex::new(&id, items(30)).to_json();
        let mut e = Engine::from_bytes_with_head(&manifest, &model.vocab_txt, &model.text_encoder, None, &bin, &json).unwrap();
        assert!(!e.has_image_head() && !e.has_image_encoder());
        assert_eq!(e.model_id(), id);
        // Text search, similar, explain, added vectors and scopes: the same answers as with the head.
        let full = Engine::from_bytes_with_head(&manifest, &model.vocab_txt, &model.text_encoder, Some(&head), &bin, &json).unwrap();
        assert!(full.has_image_head());
        assert_eq!(e.search("w2 w5 -w7", 8).unwrap(), full.search("w2 w5 -w7", 8).unwrap());
        assert_eq!(e.similar(3, 5).unwrap(), full.similar(3, 5).unwrap());
        assert_eq!(e.explain("w3 w4", 7).unwrap(), full.explain("w3 w4", 7).unwrap());
        let q = e.query_vector("w6").unwrap();
        assert_eq!(e.add_vector("mine.jpg", "blob:1", q.clone()).unwrap(), 30);
        assert_eq!(e.search_in("w6", 3, Scope::Added).unwrap()[0].file, "mine.jpg");
        assert_eq!(e.search_in("w6", 3, Scope::All).unwrap()[0].id, 30);
        // Embedding needs the head: a clear error until it is loaded.
        assert!(matches!(e.embed_image(b"\xff\xd8"), Err(EngineError::NoImageEncoder)));
        let err = e.load_image_encoder(&encoder_file).unwrap_err();
        assert!(matches!(err, EngineError::ImageHeadNotLoaded), "{err}");
        assert!(err.to_string().contains("image_head.safetensors"), "{err}");
        // Wrong head bytes: refused, naming the file; still no head.
        let mut bad = head.clone();
        *bad.last_mut().unwrap() ^= 1;
        let err = e.load_image_head(&bad).unwrap_err().to_string();
        assert!(err.contains("image_head.safetensors") && err.contains("SHA-256"), "{err}");
        let err = e.load_image_encoder_with_head(&encoder_file, Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("image_head.safetensors"), "{err}");
        // A wrong encoder file is refused before the head is taken.
        let err = e.load_image_encoder_with_head(b"other", Some(&head)).unwrap_err().to_string();
        assert!(err.contains("image_encoder"), "{err}");
        assert!(!e.has_image_head());
        // Another model's head (even with its checksum in the manifest) does not match the model id.
        let other = random_image_head(6, 4);
        let mut mf = model.manifest.clone();
        mf.files_sha256.insert(crate::model_dir::IMAGE_HEAD_FILE.into(), crate::model_dir::sha256_hex(&other));
        let mut tampered = Engine::from_bytes_with_head(&serde_json::to_string(&mf).unwrap(), &model.vocab_txt,
            &model.text_encoder, None, &bin, &json).unwrap();
        let err = tampered.load_image_head(&other).unwrap_err().to_string();
        assert!(err.contains("model_id"), "{err}");
        // The right head.
        e.load_image_head(&head).unwrap();
        assert!(e.has_image_head());
        assert_eq!(e.model().image_head.as_deref(), Some(&head[..]));
        e.load_image_head(&head).unwrap(); // again: fine
        // A model without a head has none to load.
        let mut plain = engine(GalleryDtype::F32);
        assert!(plain.load_image_head(&head).unwrap_err().to_string().contains("no image head"));
    }

    #[test]
    fn arithmetic_similar_and_explain() {
        let e = engine(GalleryDtype::F32);
        // `a -b` is the normalised difference of the two vectors.
        let (a, b) = (e.encoder().encode("w3").unwrap(), e.encoder().encode("w4").unwrap());
        let diff = crate::text_encoder::l2_normalize(a.iter().zip(&b).map(|(x, y)| x - 2.0 * y).collect());
        let got = e.query_vector("w3 -2:w4").unwrap();
        assert!(got.iter().zip(&diff).all(|(x, y)| (x - y).abs() < 1e-6));

        let sim = e.similar(4, 3).unwrap();
        assert_eq!(sim.len(), 3);
        assert!(sim.iter().all(|h| h.id != 4));
        assert!(matches!(e.similar(30, 3), Err(EngineError::UnknownImage { id: 30, len: 30 })));

        let ex = e.explain("w3 zebra", 7).unwrap();
        assert_eq!(ex.words.iter().map(|w| (w.token.as_str(), w.known)).collect::<Vec<_>>(), [("w3", true), ("zebra", false)]);
        let score = dot_f32(&e.query_vector("w3 zebra").unwrap(), &e.gallery().row(7).unwrap());
        let without_w3 = dot_f32(&e.query_vector("zebra").unwrap(), &e.gallery().row(7).unwrap());
        assert!((ex.score - score).abs() < 1e-6 && (ex.words[0].delta - (score - without_w3)).abs() < 1e-6);
        assert_eq!(e.explain("w3", 7).unwrap().words[0].delta, e.explain("w3", 7).unwrap().score);
    }

    #[test]
    fn hostile_queries_give_errors_or_results_never_panics() {
        let e = engine(GalleryDtype::Int8);
        let long = "w2 ".repeat(3400);
        for q in [long.as_str(), "🐶 w3", "<script>w4</script>", "שלום w5", "w6\u{0}"] {
            assert!(!e.search(q, 10).unwrap().is_empty(), "{q:?}");
        }
        for q in ["", "   ", "🐶🐶", "w3 -w3"] {
            let err = e.search(q, 10).unwrap_err().to_string();
            assert!(err.contains("query"), "{q:?}: {err}");
        }
        assert!(e.search("w2", 0).unwrap().is_empty());
        assert_eq!(e.search("w2", usize::MAX).unwrap().len(), 30);
    }

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
