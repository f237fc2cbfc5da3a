//! `trainer db-load` against a real PostgreSQL + pgvector (an instance of the test's own, started by
//! scripts/pg.sh on a free port in a scratch folder, removed afterwards; "skipped" when the engine is not
//! installed): a load in slices continues where it stopped, a rerun changes nothing, another model's gallery is
//! refused until --replace, and the search afterwards ranks as `trainer search` does on the flat gallery.

use std::path::{Path, PathBuf};
use std::process::Command;

use db::local::LocalInstance;
use wasm_model::{testutil, write_gallery_bin, Engine, GalleryDtype, GalleryIndex, GalleryItem};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm-model/tests/fixtures/tiny")
}

/// `trainer db-load --model M --gallery G` + `extra`, the URL passed in IMGPICK_DB_URL: (success, stdout, stderr).
fn db_load(url: &str, model: &Path, gallery: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["db-load", "--model"])
        .arg(model)
        .arg("--gallery")
        .arg(gallery)
        .args(extra)
        .env("IMGPICK_DB_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(!stderr.contains("panicked"), "{stderr}");
    let password = url.rsplit_once('@').and_then(|(cred, _)| cred.rsplit_once(':')).map(|(_, pw)| pw.to_string()).unwrap();
    assert!(!stdout.contains(&password) && !stderr.contains(&password), "the password is never printed");
    (out.status.success(), stdout, stderr)
}

/// Another model (same tiny config, other weights) and a 12-image gallery published for it.
fn other_model_gallery(dir: &Path) -> (PathBuf, PathBuf) {
    let model = testutil::random_model(testutil::small_config(), 16, 99, false);
    let (model_dir, gallery_dir) = (dir.join("other-model"), dir.join("other-gallery"));
    model.write(&model_dir).unwrap();
    std::fs::create_dir_all(&gallery_dir).unwrap();
    let bin = write_gallery_bin(model.model_id(), 16, &testutil::random_rows(12, 16, 5), GalleryDtype::F16).unwrap();
    let items = (0..12)
        .map(|i| GalleryItem {
            id: i,
            file: format!("other/{i}.jpg"),
            thumb: format!("thumbs/other-{i}.jpg"),
            caption: format!("other {i}"),
            source: "test".into(),
            licence: "CC0-1.0".into(),
            url: None,
            hubness: None,
            ..Default::default()
        })
        .collect();
    std::fs::write(gallery_dir.join("gallery.bin"), bin).unwrap();
    std::fs::write(gallery_dir.join("gallery.json"), GalleryIndex::new(model.model_id(), items).to_json()).unwrap();
    (model_dir, gallery_dir)
}

#[test]
fn loads_in_slices_reruns_idempotently_and_refuses_another_model_until_replace() {
    let Some(db) = LocalInstance::for_test("loads_in_slices_reruns_idempotently_and_refuses_another_model_until_replace") else { return };
    let url = db.pg.url().to_string();
    let tiny = fixture();

    // A load cut short after 2 batches of 10 (what a kill between batches leaves), then finished by a rerun.
    let (ok, out, err) = db_load(&url, &tiny, &tiny, &["--batch-rows", "10", "--stop-after-batches", "2"]);
    assert!(ok, "{err}");
    assert!(out.contains("20 of 40 images copied"), "{out}");
    let (ok, out, err) = db_load(&url, &tiny, &tiny, &["--batch-rows", "10"]);
    assert!(ok, "{err}");
    assert!(out.contains("loaded 40 images") && out.contains("20 copied") && out.contains("20 already there"), "{out}");
    let (ok, out, err) = db_load(&url, &tiny, &tiny, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("nothing to do"), "a rerun changes nothing: {out}");

    // The database now ranks as the engine does on the flat files (a 40-row table: the planner scans it exactly).
    let model = wasm_model::ModelDir::load(&tiny).unwrap();
    let engine = Engine::open(&tiny, &tiny).unwrap();
    let searcher = db::DbSearcher::new(&model, db::DbConfig::from_url(&url).unwrap()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for prompt in ["a dog on the beach", "red car -street", "2:man + woman with a bike"] {
        let want: Vec<u32> = engine.search(prompt, 10).unwrap().iter().map(|h| h.id).collect();
        let got = runtime.block_on(searcher.search(prompt, 10, 0)).unwrap();
        let got: Vec<u32> = got.iter().map(|h| h.hit.id).collect();
        assert_eq!(got, want, "{prompt}");
    }

    // Another model's gallery: refused, naming both models and --replace; the old gallery stays live.
    let scratch = tempfile::tempdir().unwrap();
    let (other_model, other_gallery) = other_model_gallery(scratch.path());
    let (ok, _, err) = db_load(&url, &other_model, &other_gallery, &[]);
    assert!(!ok);
    assert!(err.contains("--replace") && err.contains(model.model_id()), "{err}");
    assert_eq!(runtime.block_on(searcher.health()).unwrap().rows_total, 40, "still the first gallery");
    let (ok, out, err) = db_load(&url, &other_model, &other_gallery, &["--replace", "--vector-type", "vector"]);
    assert!(ok, "{err}");
    assert!(out.contains("loaded 12 images") && out.contains(&format!("replaced model {}", model.model_id())), "{out}");
    let health = runtime.block_on(searcher.health()).unwrap_err();
    assert!(health.is_unavailable() && health.to_string().contains("this model is"), "{health}");
}

#[test]
fn an_unreachable_database_fails_fast_with_the_reason() {
    let free_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://imgpick:pw@127.0.0.1:{free_port}/imgpick");
    let started = std::time::Instant::now();
    let (ok, _, err) = db_load(&url, &fixture(), &fixture(), &[]);
    assert!(!ok);
    assert!(err.contains("unavailable") && err.contains(&format!("127.0.0.1:{free_port}")), "{err}");
    assert!(started.elapsed().as_secs() < 20, "took {:?}", started.elapsed());
}
