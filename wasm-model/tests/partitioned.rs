//! The partitioned gallery against the flat one it was built from, natively through `Engine::open` (what
//! `trainer search` and `web` run): identical rankings at full probing, order-independent progressive results,
//! deterministic builds, and clear refusals of missing, truncated, stale or foreign files.

use std::fs;
use std::path::{Path, PathBuf};

use wasm_model::engine::{Engine, Scope};
use wasm_model::gallery::{write_gallery_bin, Gallery, GalleryDtype, GalleryIndex, GalleryItem};
use wasm_model::model_dir::{ModelDir, Retrieval};
use wasm_model::partitioned::fs::{open_dir, write_partitioned};
use wasm_model::partitioned::{shard_file, BuildParams, Descriptor};
use wasm_model::testutil::{random_model, random_rows, small_config};

const N: usize = 600;
const D: usize = 16;
const PROMPTS: [&str; 6] = ["w2 w5 w7", "w3", "w4 w8", "w9 -w3", "2:w6 + w10", "w11 w2"];

fn model(seed: u64) -> ModelDir {
    let mut m = random_model(small_config(), D, seed, false);
    m.manifest.retrieval = Some(Retrieval { image_views: vec!["original".into()], hubness_k: 10, hubness_weight: 0.5, strong_match: None });
    m
}

fn items() -> Vec<GalleryItem> {
    (0..N)
        .map(|i| GalleryItem {
            id: i,
            file: format!("img{i}.jpg"),
            thumb: format!("thumbs/{i}.webp"),
            caption: format!("caption {i}"),
            source: "test".into(),
            licence: "CC0".into(),
            url: None,
            // Every seventh image has none: it gets the gallery's mean, in both tiers.
            hubness: (i % 7 != 0).then(|| 0.1 + 0.3 * ((i * 37 % 101) as f32 / 101.0)),
            // Size and licence id: optional (galleries published before them have none), kept in the metadata.
            width: (i % 3 != 0).then_some(100 + i as u32),
            height: (i % 3 != 0).then_some(80 + (i % 50) as u32),
            licence_id: (i % 5 != 0).then(|| "cc0-1.0".to_string()),
        })
        .collect()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    model: PathBuf,
    flat: PathBuf,
    root: PathBuf,
}

/// A model folder, a flat int8 gallery of N random rows, and a scratch root for partitioned builds.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let (model_dir, flat) = (tmp.path().join("model"), tmp.path().join("flat"));
    let m = model(9);
    m.write(&model_dir).unwrap();
    fs::create_dir_all(&flat).unwrap();
    fs::write(flat.join("gallery.bin"), write_gallery_bin(m.model_id(), D, &random_rows(N, D, 4), GalleryDtype::Int8).unwrap()).unwrap();
    fs::write(flat.join("gallery.json"), GalleryIndex::new(m.model_id(), items()).to_json()).unwrap();
    Fixture { root: tmp.path().to_owned(), _tmp: tmp, model: model_dir, flat }
}

fn build(f: &Fixture, name: &str, params: &BuildParams) -> PathBuf {
    let out = f.root.join(name);
    let g = Gallery::from_bytes(&fs::read(f.flat.join("gallery.bin")).unwrap()).unwrap();
    let idx = GalleryIndex::from_json(&fs::read_to_string(f.flat.join("gallery.json")).unwrap()).unwrap();
    write_partitioned(&g, &idx.items, params, &out).unwrap();
    out
}

fn params(lists: usize, probe: usize) -> BuildParams {
    BuildParams { lists: Some(lists), probe: Some(probe), meta_block: 50, ..BuildParams::default() }
}

fn parts(dir: &Path) -> PathBuf {
    let d = Descriptor::from_json(&fs::read_to_string(dir.join("gallery.json")).unwrap()).unwrap();
    dir.join(d.gallery_id)
}

#[test]
fn full_probing_ranks_exactly_like_the_flat_gallery() {
    let f = fixture();
    let part = build(&f, "full", &params(12, 12));
    let (flat, p) = (Engine::open(&f.model, &f.flat).unwrap(), Engine::open(&f.model, &part).unwrap());
    assert_eq!((p.gallery_len(), p.partitioned().unwrap().header().lists()), (N, 12));
    for prompt in PROMPTS {
        // Same ids, same scores to the bit, same metadata (read lazily from the metadata blocks).
        assert_eq!(p.search(prompt, 10).unwrap(), flat.search(prompt, 10).unwrap(), "{prompt}");
        assert_eq!(p.search(prompt, 1000).unwrap(), flat.search(prompt, 1000).unwrap(), "{prompt}: the whole ranking");
    }
    for id in [0, 17, 599] {
        assert_eq!(p.similar(id, 10).unwrap(), flat.similar(id, 10).unwrap(), "like {id}");
        assert_eq!(p.explain("w2 w5", id).unwrap(), flat.explain("w2 w5", id).unwrap());
        assert_eq!(p.item(id), flat.item(id));
    }
    assert!(p.similar(N, 5).unwrap_err().to_string().contains("600"), "an unknown id is refused");
}

/// Read back whole (what the database loader does), a partitioned gallery is the flat one it was built from:
/// the same int8 rows and scales, the same items (sizes, licence ids and missing hubness included); the
/// descriptor carries the summary it was built with; a damaged list or a missing metadata block fails by name.
#[test]
fn a_whole_partitioned_gallery_reads_back_as_the_flat_gallery() {
    let f = fixture();
    let summary = wasm_model::gallery::GallerySummary { themes: vec![wasm_model::gallery::ThemeCount { theme: "animals".into(), count: 7 }], examples: Vec::new() };
    let part = build(&f, "whole", &BuildParams { summary: Some(summary.clone()), ..params(12, 3) });
    let m = model(9);
    let (descriptor, p) = open_dir(&part, m.model_id(), D).unwrap();
    assert_eq!(descriptor.summary, Some(summary));
    let (gallery, items_back) = p.read_whole().unwrap();
    let flat = Gallery::from_bytes(&fs::read(f.flat.join("gallery.bin")).unwrap()).unwrap();
    assert_eq!(gallery.int8_rows(), flat.int8_rows());
    assert_eq!((gallery.model_id(), gallery.dim()), (m.model_id(), D));
    assert_eq!(items_back, items());
    // another model is refused before anything else is read
    let e = open_dir(&part, &"f".repeat(32), D).unwrap_err().to_string();
    assert!(e.contains("index.bin") && e.contains("republish"), "{e}");
    let shard = parts(&part).join(shard_file(5));
    let mut bytes = fs::read(&shard).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    fs::write(&shard, bytes).unwrap();
    assert!(open_dir(&part, m.model_id(), D).unwrap().1.read_whole().unwrap_err().to_string().starts_with("lists/000/000005.bin"));
    let part2 = build(&f, "whole2", &params(12, 3));
    fs::remove_file(parts(&part2).join(wasm_model::partitioned::meta_file(11))).unwrap();
    let e = open_dir(&part2, m.model_id(), D).unwrap().1.read_whole().unwrap_err().to_string();
    assert!(e.contains("meta/000/000011.json") && e.contains("publish it again"), "{e}");
}

#[test]
fn partial_probing_scores_exactly_and_finds_most_of_the_top_10() {
    let f = fixture();
    let part = build(&f, "partial", &params(12, 4));
    let (flat, p) = (Engine::open(&f.model, &f.flat).unwrap(), Engine::open(&f.model, &part).unwrap());
    let mut found = 0;
    for prompt in PROMPTS {
        let exact = flat.search(prompt, N).unwrap();
        let got = p.search(prompt, 10).unwrap();
        assert_eq!(got.len(), 10);
        for h in &got {
            let e = exact.iter().find(|e| e.id == h.id).unwrap();
            assert_eq!(e.score, h.score, "{prompt}: image {} is scored as the flat gallery scores it", h.id);
        }
        found += got.iter().filter(|h| exact[..10].iter().any(|e| e.id == h.id)).count();
        // Deterministic: a second reader of the same files ranks the same.
        assert_eq!(Engine::open(&f.model, &part).unwrap().search(prompt, 10).unwrap(), got);
    }
    // 4 of 12 lists on random (unclustered) 16-d vectors: a weak bound that still fails if probing is broken.
    assert!(found >= 6 * 10 / 3, "recall@10 over {} prompts: {found}/60", PROMPTS.len());
}

#[test]
fn progressive_results_do_not_depend_on_the_order_lists_arrive_in() {
    let f = fixture();
    let part = build(&f, "progressive", &params(12, 5));
    let native = Engine::open(&f.model, &part).unwrap();
    // The page's engine: bytes only, shards handed over one by one.
    let m = ModelDir::load(&f.model).unwrap();
    let paged = Engine::new_partitioned(m, &fs::read_to_string(part.join("gallery.json")).unwrap(), &fs::read(parts(&part).join("index.bin")).unwrap()).unwrap();
    let m = paged.search(PROMPTS[0], 10).unwrap_err().to_string();
    assert!(m.contains("lists/") && m.contains("not loaded"), "no shards yet: an error, not a partial answer: {m}");
    for prompt in PROMPTS {
        let mut s = paged.plan_search(prompt, 10, Scope::All).unwrap();
        assert_eq!(s.lists().len(), 5);
        let mut lists = s.lists().to_vec();
        lists.reverse();
        let mut last = 0;
        for l in lists {
            paged.add_shard(&fs::read(parts(&part).join(shard_file(l))).unwrap()).unwrap();
            let progress = paged.advance(&mut s).unwrap();
            assert!(progress.searched >= last && progress.done <= progress.total);
            last = progress.searched;
        }
        assert!(s.is_complete());
        let header = paged.partitioned().unwrap().header();
        assert_eq!(last, s.lists().iter().map(|&l| header.list_sizes[l as usize] as usize).sum::<usize>());
        let want: Vec<(u32, f32)> = native.search(prompt, 10).unwrap().iter().map(|h| (h.id, h.score)).collect();
        assert_eq!(paged.planned_hits(&s).iter().map(|h| (h.id, h.score)).collect::<Vec<_>>(), want, "{prompt}");
        assert_eq!(paged.search(prompt, 10).unwrap().iter().map(|h| (h.id, h.score)).collect::<Vec<_>>(), want);
    }
    // Added photos join a partitioned gallery's results with ids after it.
    let mut with_photo = paged;
    let q = with_photo.query_vector("w3").unwrap();
    assert_eq!(with_photo.add_vector("mine.jpg", "blob:x", q).unwrap(), N as u32);
    let mut s = with_photo.plan_search("w3", 3, Scope::Added).unwrap();
    assert!(s.lists().is_empty());
    with_photo.advance(&mut s).unwrap();
    assert_eq!(with_photo.planned_hits(&s)[0].file, "mine.jpg");
}

#[test]
fn builds_are_deterministic_and_a_killed_build_leaves_the_old_gallery_readable() {
    let f = fixture();
    let a = build(&f, "a", &params(12, 3));
    let b = build(&f, "b", &params(12, 3));
    assert_eq!(fs::read(a.join("gallery.json")).unwrap(), fs::read(b.join("gallery.json")).unwrap());
    for file in ["index.bin", &shard_file(5), "meta/000/000003.json"] {
        assert_eq!(fs::read(parts(&a).join(file)).unwrap(), fs::read(parts(&b).join(file)).unwrap(), "{file}");
    }
    // A build killed mid-way leaves only its temporary folder; readers still see the old gallery, and the next
    // build removes it. Rebuilding with other settings replaces the parts folder and the flat files.
    fs::create_dir_all(a.join(".partitioned-tmp/lists/000")).unwrap();
    fs::write(a.join(".partitioned-tmp/lists/000/000000.bin"), b"half").unwrap();
    fs::write(a.join("gallery.bin"), b"stale flat file").unwrap();
    let old_parts = parts(&a);
    let before = Engine::open(&f.model, &a).unwrap().search("w3", 5).unwrap();
    assert_eq!(before.len(), 5);
    build(&f, "a", &params(10, 3));
    assert!(!a.join(".partitioned-tmp").exists() && !a.join("gallery.bin").exists() && !old_parts.exists());
    assert_eq!(Engine::open(&f.model, &a).unwrap().partitioned().unwrap().header().lists(), 10);
}

#[test]
fn missing_truncated_stale_and_foreign_files_are_refused_by_name() {
    let f = fixture();
    let part = build(&f, "bad", &params(12, 12));
    let dir = parts(&part);
    let err = |e: &Engine| e.search("w2 w5 w7", 10).unwrap_err().to_string();

    let file = dir.join(shard_file(3));
    let good = fs::read(&file).unwrap();
    fs::remove_file(&file).unwrap();
    let m = err(&Engine::open(&f.model, &part).unwrap());
    assert!(m.contains("lists/000/000003.bin") && m.contains("incomplete"), "{m}");

    fs::write(&file, &good[..good.len() - 100]).unwrap();
    let m = err(&Engine::open(&f.model, &part).unwrap());
    assert!(m.contains("lists/000/000003.bin") && m.contains("truncated"), "{m}");

    // The same list from a build with other settings: valid on its own, but not this gallery's.
    let other = build(&f, "other", &params(12, 6));
    fs::copy(parts(&other).join(shard_file(3)), &file).unwrap();
    let m = err(&Engine::open(&f.model, &part).unwrap());
    assert!(m.contains("lists/000/000003.bin") && m.contains("gallery id"), "{m}");
    fs::write(&file, &good).unwrap();
    assert_eq!(Engine::open(&f.model, &part).unwrap().search("w2 w5 w7", 10).unwrap().len(), 10);

    let meta = dir.join("meta/000/000002.json");
    fs::write(&meta, "{\"format\": \"imgpick-partitioned-meta\"").unwrap();
    assert!(Engine::open(&f.model, &part).unwrap().similar(120, 3).unwrap_err().to_string().contains("meta/000/000002.json"));

    // A header made for another model, and one from another publish than gallery.json.
    let other_model = f.root.join("other-model");
    model(10).write(&other_model).unwrap();
    let m = Engine::open(&other_model, &part).unwrap_err().to_string();
    assert!(m.contains("index.bin") && m.contains("republish"), "{m}");
    let m = Engine::open(&f.model, &other).unwrap().search("w3", 3).map(|_| ()); // other's own files: fine
    assert!(m.is_ok());
    fs::copy(parts(&other).join("index.bin"), dir.join("index.bin")).unwrap();
    let m = Engine::open(&f.model, &part).unwrap_err().to_string();
    assert!(m.contains("index.bin") && m.contains("different publishes"), "{m}");
}
