//! export → publish → search: a model directory made by the trainer, a gallery published for it from real
//! photos (one broken file among them), searched with wasm-model's Engine; re-publishing embeds only changes.

use std::path::PathBuf;

use integration_tests::repo_root;
use tch::{nn, Device};
use trainer::export::{build_model_dir, write_model_dir};
use trainer::model::{JointModel, Pooling, TextConfig};
use trainer::publish::{publish, GalleryFormat, Partitioning, PublishOptions};
use trainer::config::Config;
use trainer::run::RunState;
use wasm_model::{Engine, GalleryDtype};

/// A temp folder (deleted when dropped) with `images/` holding the first `n` asset photos: (root, asset photo
/// dir, images, sorted asset names); None (test skipped) without the installed assets.
fn photo_folder(tag: &str, n: usize) -> Option<(tempfile::TempDir, PathBuf, PathBuf, Vec<String>)> {
    let photos = trainer::backbone::assets_dir().join("photos");
    if !photos.is_dir() || !trainer::backbone::assets_dir().join("efficientnet_lite0.safetensors").is_file() {
        eprintln!("SKIPPED: assets not installed (scripts/setup.sh)");
        return None;
    }
    let root = tempfile::Builder::new().prefix(&format!("imgpick-publish-{tag}-")).tempdir().unwrap();
    let images = root.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&photos).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for name in names.iter().take(n) {
        std::fs::copy(photos.join(name), images.join(name)).unwrap();
    }
    Some((root, photos, images, names))
}

/// A random-init model (enough to test the plumbing) exported to `root/model`: (its variables, vocabulary, model,
/// directory).
fn random_model_dir(root: &std::path::Path, seed: i64, texts: &[&str], f16: bool) -> (nn::VarStore, trainer::text::Vocab, JointModel, PathBuf) {
    tch::manual_seed(seed);
    let vocab = trainer::text::build_vocab(texts.iter().copied(), &[], 1, 100);
    let vs = nn::VarStore::new(Device::Cpu);
    let tc = TextConfig { vocab_size: vocab.len() as i64, word_dim: 50, hidden_dim: 16, layers: 1, bidirectional: true, pooling: Pooling::Mean };
    let model = JointModel::new(&vs, &tc, 1280, 24);
    let state = RunState { config: Config::default(), epochs_done: 0, step: 0, best_epoch: None, best_rsum: 0.0, history: vec![] };
    let md = build_model_dir(&state, &vocab, &vs, &model, None, f16).unwrap();
    let model_dir = root.join("model");
    write_model_dir(&md, &model_dir).unwrap();
    (vs, vocab, model, model_dir)
}

#[test]
fn publish_then_search_and_republish_incrementally() {
    let Some((tmp, photos, images, names)) = photo_folder("flow", 4) else { return };
    let root = tmp.path();
    std::fs::write(images.join("broken.jpg"), b"\xff\xd8 not really a jpeg").unwrap();

    // a random-init model is enough to test the plumbing
    let (_vs, _vocab, _model, model_dir) = random_model_dir(root, 3, &["a cat on a sofa", "a dog on the beach"], true);

    let out = root.join("gallery");
    let opts = PublishOptions {
        model: model_dir.clone(),
        images: images.clone(),
        captions: None,
        source: Some("test".into()),
        licence: Some("CC0".into()),
        url: None,
        out: out.clone(),
        dtype: GalleryDtype::Int8,
        weights: None,
        plain: false,
        format: GalleryFormat::Auto,
        partitioning: Partitioning::default(),
    };
    let r = publish(&opts).unwrap();
    assert_eq!((r.count, r.embedded, r.reused, r.skipped.len()), (4, 4, 0, 1), "{r:?}");
    assert_eq!(r.skipped[0].0, "broken.jpg");
    for f in ["gallery.bin", "gallery.json"] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    let engine = Engine::open(&model_dir, &out).unwrap();
    let hits = engine.search("a cat", 10).unwrap();
    assert_eq!(hits.len(), 4);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score), "best first");
    for h in &hits {
        assert!(out.join(&h.thumb).is_file(), "thumbnail {} exists", h.thumb);
        let t = trainer::image_file::open(&out.join(&h.thumb)).unwrap();
        assert!(t.width().max(t.height()) <= 256);
    }
    assert_eq!(engine.index().items[0].licence, "CC0");

    // nothing changed: nothing re-embedded, same bytes
    let bin = std::fs::read(out.join("gallery.bin")).unwrap();
    let r = publish(&opts).unwrap();
    assert_eq!((r.embedded, r.reused), (0, 4));
    assert_eq!(std::fs::read(out.join("gallery.bin")).unwrap(), bin);
    // one image removed, one added: only the new one is embedded, the stale thumbnail is gone
    std::fs::remove_file(images.join(&names[0])).unwrap();
    std::fs::copy(photos.join(&names[5]), images.join(&names[5])).unwrap();
    let r = publish(&opts).unwrap();
    assert_eq!((r.count, r.embedded, r.reused), (4, 1, 3));
    // thumbnails live in shard folders (thumbs/ab/<hash>.jpg)
    let thumbs: usize = std::fs::read_dir(out.join("thumbs")).unwrap().map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count()).sum();
    assert_eq!(thumbs, 4);

    // the CLI prints JSON hits best first
    let exe = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/trainer");
    if exe.is_file() {
        let o = std::process::Command::new(&exe)
            .args(["search", "--model"])
            .arg(&model_dir)
            .arg("--gallery")
            .arg(&out)
            .args(["-k", "2", "--json", "a dog"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert!(v[0]["file"].is_string() && v[0]["score"].as_f64().unwrap() >= v[1]["score"].as_f64().unwrap());
    }

    // a model whose files were tampered with is refused with a clear error, nothing published
    std::fs::write(model_dir.join("vocab.txt"), "<pad>\n<unk>\nx\n").unwrap();
    let bad = PublishOptions { out: root.join("gallery2"), ..opts };
    let e = format!("{:#}", publish(&bad).unwrap_err());
    assert!(e.contains("vocab.txt") || e.contains("SHA-256"), "{e}");
    assert!(!root.join("gallery2").join("gallery.bin").exists());
    let _ = repo_root();
}

/// A model with `retrieval` (averaged views + hubness bank): publish stores each image's vector as the
/// normalised mean of the embeddings of its views (original, mirrored, zoomed) and its hubness against the bank; the engine's
/// text-query score is `cosine - 0.5 * hubness`; a gallery published before the bank existed is re-embedded.
#[test]
fn publish_with_retrieval_scoring() {
    let Some((tmp, _, images, _)) = photo_folder("retrieval", 3) else { return };
    let root = tmp.path();
    let texts = ["a cat on a sofa", "a dog on the beach", "a red car", "two people walking", "a bowl of fruit"];
    let (_vs, vocab, model, model_dir) = random_model_dir(root, 5, &texts, false);
    let out = root.join("gallery");
    let opts = PublishOptions {
        model: model_dir.clone(),
        images: images.clone(),
        captions: None,
        source: None,
        licence: None,
        url: None,
        out: out.clone(),
        dtype: GalleryDtype::F32,
        weights: None,
        plain: false,
        format: GalleryFormat::Auto,
        partitioning: Partitioning::default(),
    };
    publish(&opts).unwrap();
    let plain = wasm_model::GalleryIndex::from_json(&std::fs::read_to_string(out.join("gallery.json")).unwrap()).unwrap();
    assert!(plain.items.iter().all(|it| it.hubness.is_none()), "no bank, no hubness");

    let captions = root.join("captions.json");
    let anns: Vec<_> = texts.iter().enumerate().map(|(i, t)| serde_json::json!({"image_id": i, "caption": t})).collect();
    let imgs: Vec<_> = (0..texts.len()).map(|i| serde_json::json!({"id": i, "file_name": format!("{i}.jpg")})).collect();
    std::fs::write(&captions, serde_json::to_vec(&serde_json::json!({"images": imgs, "annotations": anns})).unwrap()).unwrap();
    let bank = trainer::export::hubness_bank_bytes(&model, &vocab, &[captions], 4).unwrap();
    let retrieval = wasm_model::model_dir::Retrieval::recommended();
    wasm_model::ModelDir::add_hubness_bank(&model_dir, &bank, retrieval.clone()).unwrap();
    let r = publish(&opts).unwrap();
    assert_eq!((r.embedded, r.reused), (3, 0), "vectors of another view set are not reused");

    let engine = Engine::open(&model_dir, &out).unwrap();
    let loaded = trainer::load::load_model_dir(&model_dir, Device::Cpu).unwrap();
    let bank_rows = loaded.dir.load_hubness_bank(&model_dir).unwrap().unwrap();
    assert_eq!(bank_rows.len(), 4 * 24);
    let bank_t = tch::Tensor::from_slice(&bank_rows).view([4, 24]);
    let stock = trainer::backbone::load(
        trainer::backbone::BackboneKind::EfficientnetLite0,
        &trainer::backbone::assets_dir().join("efficientnet_lite0.safetensors"),
        &nn::VarStore::new(Device::Cpu).root(),
    )
    .unwrap();
    let prep = trainer::backbone::preprocess::Preprocess::for_backbone(trainer::backbone::BackboneKind::EfficientnetLite0);
    let views = retrieval.views().unwrap();
    assert!(views.len() > 2, "the recommended views include zooms");
    for (i, item) in engine.index().items.iter().enumerate() {
        let path = images.join(&item.file);
        let img = trainer::image_file::open(&path).unwrap();
        let inputs: Vec<tch::Tensor> = views.iter().map(|&v| trainer::features::view_input(&prep, v, &path).unwrap()).collect();
        let each = tch::no_grad(|| loaded.model.embed_images(Some(stock.as_ref()), &tch::Tensor::stack(&inputs, 0)));
        let want = trainer::model::l2_normalize(&each.sum_dim_intlist(0, true, tch::Kind::Float));
        let got = tch::Tensor::from_slice(&engine.gallery().row(i).unwrap()).unsqueeze(0);
        let d = (&want - &got).abs().max().double_value(&[]);
        assert!(d < 1e-5, "{}: stored vector is the mean of the {} views (max diff {d})", item.file, views.len());
        let original = tch::no_grad(|| loaded.model.embed_images(Some(stock.as_ref()), &prep.image_to_input(&img).unsqueeze(0)));
        assert!((&original - &got).abs().max().double_value(&[]) > 1e-4, "{}: the views change the vector", item.file);
        let h = trainer::eval::hubness(&got, &bank_t, retrieval.hubness_k)[0];
        assert!((item.hubness.unwrap() - h).abs() < 1e-5, "{}: hubness {:?} vs {h}", item.file, item.hubness);
    }
    let q = engine.query_vector("a cat").unwrap();
    for hit in engine.search("a cat", 3).unwrap() {
        let row = engine.gallery().row(hit.id as usize).unwrap();
        let cos: f32 = q.iter().zip(&row).map(|(a, b)| a * b).sum();
        let hub = engine.index().items[hit.id as usize].hubness.unwrap();
        assert!((hit.score - (cos - 0.5 * hub)).abs() < 1e-5, "score = cosine - 0.5 × hubness");
    }
    // --plain: one view, no hubness (how the page embeds the user's own photos)
    let plain_out = root.join("plain");
    publish(&PublishOptions { out: plain_out.clone(), plain: true, ..opts }).unwrap();
    let plain = Engine::open(&model_dir, &plain_out).unwrap();
    for (i, item) in plain.index().items.iter().enumerate() {
        assert!(item.hubness.is_none(), "{}: no hubness with --plain", item.file);
        let x = prep.load(&images.join(&item.file)).unwrap().unsqueeze(0);
        let want = tch::no_grad(|| loaded.model.embed_images(Some(stock.as_ref()), &x));
        let got = tch::Tensor::from_slice(&plain.gallery().row(i).unwrap()).unsqueeze(0);
        assert!((&want - &got).abs().max().double_value(&[]) < 1e-5, "{}: the original view alone", item.file);
    }
}
