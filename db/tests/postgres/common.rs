//! Shared by the database tests (each starts an instance of its own with `db::local::LocalInstance::for_test`): the
//! client configuration for it, galleries for the tiny fixture model, and the comparison with `wasm_model::Engine`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use db::local::TestInstance;
use db::{DbConfig, DbSearcher, Hit, PublishedGallery, ScanMode};
use wasm_model::model_dir::Retrieval;
use wasm_model::{write_gallery_bin, Engine, GalleryDtype, GalleryIndex, GalleryItem, ModelDir};

/// The searcher/loader configuration for `db`: short timeouts (a test must not hang), a wide HNSW search.
pub fn config(db: &TestInstance, scan: ScanMode) -> DbConfig {
    let mut c = DbConfig::from_url(db.pg.url()).expect("pg.sh prints a valid URL");
    c.connect_timeout = Duration::from_secs(2);
    c.statement_timeout = Duration::from_secs(10);
    c.scan = scan;
    c.ef_search = 1000;
    c
}

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm-model/tests/fixtures/tiny")
}

/// The tiny fixture model (D = 16, 31 words), optionally with the shipped hubness correction (weight 0.5).
pub fn fixture_model(hubness: bool) -> ModelDir {
    let mut model = ModelDir::load(fixture_dir()).expect("fixture model");
    if hubness {
        model.manifest.retrieval = Some(Retrieval { image_views: vec!["original".into()], hubness_k: 10, hubness_weight: 0.5, strong_match: None });
    }
    model
}

/// A published gallery's two files.
pub struct GalleryFiles {
    pub bin: Vec<u8>,
    pub json: String,
}

impl GalleryFiles {
    /// The fixture's own 40-image gallery.
    pub fn fixture() -> Self {
        let dir = fixture_dir();
        Self {
            bin: std::fs::read(dir.join("gallery.bin")).unwrap(),
            json: std::fs::read_to_string(dir.join("gallery.json")).unwrap(),
        }
    }

    /// `n` random images for `model`, with hubness values (some missing, so the mean is used) and metadata.
    pub fn synthetic(model: &ModelDir, n: usize, seed: u64, dtype: GalleryDtype) -> Self {
        let dim = model.manifest.embed_dim;
        let rows = wasm_model::testutil::random_rows(n, dim, seed);
        let items = (0..n)
            .map(|i| GalleryItem {
                id: i,
                file: format!("images/{i:05}.jpg"),
                thumb: format!("thumbs/{i:05}.webp"),
                caption: format!("synthetic image {i} — it's \"quoted\"; DROP TABLE x; --"),
                source: "test".into(),
                licence: "CC0-1.0".into(),
                url: (i % 3 == 0).then(|| format!("https://example.org/{i}")),
                hubness: (i % 10 != 7).then_some(0.05 + 0.3 * ((i * 37 % 101) as f32 / 101.0)),
                ..Default::default()
            })
            .collect();
        Self {
            bin: write_gallery_bin(model.model_id(), dim, &rows, dtype).unwrap(),
            json: GalleryIndex::new(model.model_id(), items).to_json(),
        }
    }

    pub fn published(&self, model: &ModelDir) -> PublishedGallery {
        PublishedGallery::from_bytes(model, &self.bin, &self.json).expect("a valid gallery")
    }

    pub fn engine(&self, model: &ModelDir) -> Engine {
        Engine::new(model.clone(), &self.bin, &self.json).expect("a valid gallery")
    }
}

/// Prompts over the fixture vocabulary, with prompt arithmetic and unknown words.
pub const PROMPTS: &[&str] = &[
    "a dog on the beach",
    "cat",
    "two young people running in the snow",
    "red car -street",
    "2:man + woman with a bike",
    "child playing with a ball on grass -water",
    "black and white dog jumping",
    "zebra sitting on a field",
];

/// Asserts that the database's ranking is the engine's: the same score at every rank (within `tol`) and an id
/// whose engine score is that score (so ids may differ only between images tied within `tol`). `strict` also
/// requires the same ids.
/// Each hit's metadata must be its gallery.json entry (`items`).
pub fn assert_same_ranking(
    what: &str,
    db: &[Hit],
    engine: &[wasm_model::Hit],
    all: &[wasm_model::Hit],
    items: &[GalleryItem],
    tol: f32,
    strict: bool,
) {
    assert_eq!(db.len(), engine.len(), "{what}: {} results from the database, {} from the engine", db.len(), engine.len());
    let engine_score = |id: u32| all.iter().find(|h| h.id == id).map(|h| h.score);
    for (rank, (d, e)) in db.iter().zip(engine).enumerate() {
        assert!((d.hit.score - e.score).abs() <= tol, "{what}: rank {rank}: score {} vs engine {}", d.hit.score, e.score);
        let own = engine_score(d.hit.id).unwrap_or_else(|| panic!("{what}: rank {rank}: id {} not ranked by the engine", d.hit.id));
        assert!((own - e.score).abs() <= tol, "{what}: rank {rank}: id {} (engine score {own}) instead of {} ({})", d.hit.id, e.id, e.score);
        if strict {
            assert_eq!(d.hit.id, e.id, "{what}: rank {rank}");
        }
        let item = &items[d.hit.id as usize];
        let got = (&d.hit.file, &d.hit.thumb, &d.hit.caption, &d.source, &d.licence, &d.url);
        assert_eq!(got, (&item.file, &item.thumb, &item.caption, &item.source, &item.licence, &item.url), "{what}: rank {rank}");
    }
    let mut ids: Vec<u32> = db.iter().map(|h| h.hit.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), db.len(), "{what}: an image came back twice");
}

/// Checks every prompt against the engine (top `k`).
pub async fn assert_prompts_match(searcher: &DbSearcher, engine: &Engine, k: usize, tol: f32, strict: bool) {
    for prompt in PROMPTS {
        let all = engine.search(prompt, engine.gallery_len()).unwrap();
        let want = &all[..k.min(all.len())];
        let got = searcher.search(prompt, k, 0).await.unwrap_or_else(|e| panic!("{prompt:?}: {e}"));
        assert_same_ranking(prompt, &got, want, &all, &engine.index().items, tol, strict);
    }
}
