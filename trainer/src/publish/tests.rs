//! `publish` against what a real photo folder and a careless afternoon hold: overlapping folders, a second
//! publish at once, a kill half-way, changed photos, symlink loops, FIFOs, huge and truncated files.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tch::nn;
use wasm_model::gallery::{GalleryDtype, GalleryIndex};

use super::*;
use crate::model::{JointModel, TextConfig};
use crate::run::RunState;

/// A scratch folder with `images/` (the first `n` asset photos) and `model/` (a random-weight model without
/// `retrieval`: one view per image); `None`, with a message, without the installed assets.
pub(super) struct Fixture {
    /// Held for the whole test: loading a model draws libtorch's global generator (the layers' random init
    /// before the weights are read), which broke the training tests' exact replays when a publish ran beside them.
    _serial: std::sync::MutexGuard<'static, ()>,
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub model: PathBuf,
    pub images: PathBuf,
    /// The asset photos, sorted.
    pub photos: Vec<PathBuf>,
}

pub(super) fn fixture(tag: &str, n: usize) -> Option<Fixture> {
    let assets = crate::backbone::assets_dir();
    if !assets.join("photos").is_dir() || !assets.join("efficientnet_lite0.safetensors").is_file() {
        eprintln!("skipped: assets not installed (scripts/setup.sh)");
        return None;
    }
    let serial = crate::train::tests::training_lock();
    let tmp = tempfile::Builder::new().prefix(&format!("imgpick-publish-{tag}-")).tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let images = root.join("images");
    std::fs::create_dir(&images).unwrap();
    let mut photos: Vec<PathBuf> = std::fs::read_dir(assets.join("photos")).unwrap().map(|e| e.unwrap().path()).collect();
    photos.sort();
    for p in photos.iter().take(n) {
        std::fs::copy(p, images.join(p.file_name().unwrap())).unwrap();
    }
    tch::manual_seed(3);
    let vocab = crate::text::build_vocab(["a cat on a sofa", "a dog on the beach"], &[], 1, 100);
    let tc = TextConfig { vocab_size: vocab.len() as i64, word_dim: 50, hidden_dim: 8, layers: 1, bidirectional: true, pooling: wasm_model::model_dir::Pooling::Mean };
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let model = JointModel::new(&vs, &tc, 1280, 16);
    let state = RunState::new(crate::train::tests::tiny_config());
    let md = crate::export::build_model_dir(&state, &vocab, &vs, &model, None, false).unwrap();
    crate::export::write_model_dir(&md, &root.join("model")).unwrap();
    Some(Fixture { _serial: serial, _tmp: tmp, model: root.join("model"), images, photos, root })
}

pub(super) fn opts(f: &Fixture, out: &Path) -> PublishOptions {
    PublishOptions {
        model: f.model.clone(),
        images: f.images.clone(),
        captions: None,
        source: None,
        licence: None,
        url: None,
        out: out.to_path_buf(),
        dtype: GalleryDtype::F32,
        weights: None,
        plain: false,
        format: GalleryFormat::Auto,
        partitioning: Partitioning::default(),
    }
}

pub(super) fn index(out: &Path) -> GalleryIndex {
    GalleryIndex::from_json(&std::fs::read_to_string(out.join("gallery.json")).unwrap()).unwrap()
}

/// `--out` inside `--images` (or the same folder, or the reverse, also through a symlink) is refused before
/// anything is written: it deleted the user's `thumbs/holiday.jpg` and published its own thumbnails.
#[test]
fn overlapping_image_and_output_folders_are_refused() {
    let Some(f) = fixture("overlap", 2) else { return };
    std::fs::create_dir(f.images.join("thumbs")).unwrap();
    std::fs::copy(&f.photos[0], f.images.join("thumbs/holiday.jpg")).unwrap();
    std::os::unix::fs::symlink(&f.images, f.root.join("link")).unwrap();
    let inside = [f.images.clone(), f.images.join("gallery"), f.images.join("thumbs"), f.root.join("link/gallery")];
    for out in inside.iter().chain([&f.root]) {
        let e = format!("{:#}", publish(&opts(&f, out)).unwrap_err());
        assert!(e.contains("overlap") && e.contains("--out") && e.contains("--images"), "{}: {e}", out.display());
    }
    assert!(f.images.join("thumbs/holiday.jpg").is_file(), "the user's photo is untouched");
    assert!(!f.images.join("gallery.json").exists() && !f.root.join("gallery.json").exists());
}

/// Two publishes into one folder: the second fails at once, naming the lock file and the other process,
/// and writes nothing; once the first is done, publishing works again.
#[test]
fn a_second_publish_into_the_same_folder_fails_at_once_naming_the_lock() {
    let Some(f) = fixture("lock", 2) else { return };
    let out = f.root.join("gallery");
    std::fs::create_dir(&out).unwrap();
    let lock_path = out.join(".publish.lock");
    // what another running publish holds
    let held = std::fs::File::create(&lock_path).unwrap();
    held.try_lock().unwrap();
    std::fs::write(&lock_path, "pid 4242\n").unwrap();
    let started = Instant::now();
    let e = format!("{:#}", publish(&opts(&f, &out)).unwrap_err());
    assert!(e.contains(&lock_path.display().to_string()) && e.contains("4242") && e.contains("another"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "fails at once: {:?}", started.elapsed());
    assert!(!out.join("gallery.json").exists());
    drop(held);
    publish(&opts(&f, &out)).unwrap();
    assert_eq!(index(&out).count, 2);
}

/// A publish killed after three of five images keeps them: the next run embeds only the other two and
/// writes exactly what an uninterrupted publish writes.
#[test]
fn a_publish_killed_midway_keeps_its_work() {
    let Some(f) = fixture("resume", 5) else { return };
    let full = f.root.join("full");
    publish(&opts(&f, &full)).unwrap();
    let out = f.root.join("killed");
    crate::crash::arm("publish.image-recorded", 3);
    let e = publish(&opts(&f, &out)).unwrap_err();
    crate::crash::disarm();
    assert!(e.is::<crate::crash::SimulatedCrash>(), "{e:#}");
    let r = publish(&opts(&f, &out)).unwrap();
    assert_eq!((r.count, r.embedded, r.reused), (5, 2, 3), "{r:?}");
    for file in ["gallery.bin", "gallery.json"] {
        assert_eq!(std::fs::read(full.join(file)).unwrap(), std::fs::read(out.join(file)).unwrap(), "{file}");
    }
}

/// A cache written with another decode (here one from before the decode was recorded: its header has none)
/// holds vectors the current decode may not give, so a republish re-embeds every file once, then reuses them.
#[test]
fn a_cache_of_another_decode_is_re_embedded_once() {
    let Some(f) = fixture("decode", 3) else { return };
    let out = f.root.join("gallery");
    publish(&opts(&f, &out)).unwrap();
    let first = std::fs::read(out.join("gallery.bin")).unwrap();
    let cache_path = out.join(CACHE_FILE);
    let text = std::fs::read_to_string(&cache_path).unwrap();
    let (header, records) = text.split_once('\n').unwrap();
    let mut older: serde_json::Value = serde_json::from_str(header).unwrap();
    assert_eq!(older["decode"], wasm_model::image_encoder::decode_rule(), "the header names the decode");
    older.as_object_mut().unwrap().remove("decode");
    std::fs::write(&cache_path, format!("{older}\n{records}")).unwrap();
    let r = publish(&opts(&f, &out)).unwrap();
    assert_eq!((r.count, r.embedded, r.reused), (3, 3, 0), "{r:?}");
    assert_eq!(std::fs::read(out.join("gallery.bin")).unwrap(), first, "small photos: the same vectors again");
    let r = publish(&opts(&f, &out)).unwrap();
    assert_eq!((r.embedded, r.reused), (0, 3), "{r:?}");
}

/// The gallery's rows (f32 galleries), in item order.
pub(super) fn vectors(model: &Path, out: &Path) -> Vec<Vec<f32>> {
    let engine = wasm_model::Engine::open(model, out).unwrap();
    (0..engine.index().items.len()).map(|i| engine.gallery().row(i).unwrap()).collect()
}

/// Thumbnails are `thumbs/<first byte>/<hash of their bytes>.jpg`: a folder holds 1/256 of them, and a
/// changed photo gets a new name (browsers cache thumbnails for a week). Stale ones go; others' files stay.
#[test]
fn thumbnails_are_named_by_content_in_shard_folders() {
    let Some(f) = fixture("thumbs", 3) else { return };
    let out = f.root.join("gallery");
    publish(&opts(&f, &out)).unwrap();
    let name_of = |out: &Path, file: &str| index(out).items.iter().find(|it| it.file == file).unwrap().thumb.clone();
    for it in index(&out).items {
        let parts: Vec<&str> = it.thumb.split('/').collect();
        assert_eq!(parts.len(), 3, "{}", it.thumb);
        let hash = parts[2].strip_suffix(".jpg").unwrap();
        assert!(parts[0] == "thumbs" && hash.len() == 32 && parts[1] == &hash[..2], "{}", it.thumb);
        let bytes = std::fs::read(out.join(&it.thumb)).unwrap();
        assert_eq!(&wasm_model::model_dir::sha256_hex(&bytes)[..32], hash, "named by its bytes");
    }
    let first = f.photos[0].file_name().unwrap().to_string_lossy().into_owned();
    let before = name_of(&out, &first);
    std::fs::write(out.join("thumbs/mine.txt"), "keep me").unwrap();
    // the same file name, another picture
    std::thread::sleep(Duration::from_millis(20));
    std::fs::copy(&f.photos[4], f.images.join(&first)).unwrap();
    let r = publish(&opts(&f, &out)).unwrap();
    assert_eq!((r.embedded, r.reused), (1, 2));
    let after = name_of(&out, &first);
    assert_ne!(before, after, "a changed photo gets a new thumbnail name");
    assert!(!out.join(&before).exists() && out.join(&after).is_file());
    assert_eq!(std::fs::read_to_string(out.join("thumbs/mine.txt")).unwrap(), "keep me");
}

/// `gallery.json` carries the gallery's summary: themes counted from the captions (file names say nothing)
/// and example prompts from the engine's list, each with its top score as `search` gives it.
#[test]
fn the_gallery_json_summarises_the_gallery() {
    let Some(f) = fixture("summary", 3) else { return };
    let out = f.root.join("gallery");
    let captions = f.root.join("captions.json");
    let names: Vec<String> = f.photos.iter().take(3).map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    let said = ["a dog running on a beach", "a red car", "two cats"];
    let coco = serde_json::json!({
        "images": names.iter().enumerate().map(|(i, n)| serde_json::json!({"id": i, "file_name": n})).collect::<Vec<_>>(),
        "annotations": said.iter().enumerate().map(|(i, c)| serde_json::json!({"id": i, "image_id": i, "caption": c})).collect::<Vec<_>>(),
    });
    std::fs::write(&captions, coco.to_string()).unwrap();
    publish(&PublishOptions { captions: Some(captions), ..opts(&f, &out) }).unwrap();
    let summary = index(&out).summary.expect("a summary");
    let themes: Vec<(&str, usize)> = summary.themes.iter().map(|t| (t.theme.as_str(), t.count)).collect();
    assert_eq!(themes, [("animals", 2), ("nature and landscapes", 1), ("vehicles", 1)]);
    // the fixture's model is not calibrated: examples ranked by top score, no strength
    assert!(!summary.examples.is_empty() && summary.examples.len() <= wasm_model::engine::MAX_EXAMPLES);
    let engine = wasm_model::Engine::open(&f.model, &out).unwrap();
    for x in &summary.examples {
        assert!(wasm_model::engine::CANDIDATE_PROMPTS.contains(&x.prompt.as_str()) && x.strong.is_none());
        let top = &engine.search(&x.prompt, 1).unwrap()[0];
        assert!((top.score - x.score).abs() < 1e-6, "{x:?}");
        // its top picture's caption shows the prompt's kind of subject
        let (ours, theirs) = (wasm_model::gallery::themes_of(&x.prompt), wasm_model::gallery::themes_of(&top.caption));
        assert!(ours.iter().any(|t| theirs.contains(t)), "{x:?}: {}", top.caption);
    }
}

/// An I/O error names the file: here `gallery.bin` is a folder.
#[test]
fn io_errors_name_the_path() {
    let Some(f) = fixture("io", 1) else { return };
    let out = f.root.join("gallery");
    std::fs::create_dir_all(out.join("gallery.bin")).unwrap();
    let e = format!("{:#}", publish(&opts(&f, &out)).unwrap_err());
    assert!(e.contains(&out.join("gallery.bin").display().to_string()), "{e}");
}

/// A 1×1 PNG whose header claims `w`×`h` pixels (valid CRC, no pixel data): what a 420 KB 12000×12000 PNG
/// looks like to a header check.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::DynamicImage::new_rgb8(1, 1).write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes[16..20].copy_from_slice(&w.to_be_bytes());
    bytes[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// What a real photo folder holds besides photos: each is skipped with its reason, nothing hangs or eats
/// memory, and the two photos are published.
#[test]
fn hostile_folder_contents_are_skipped_with_reasons_and_nothing_hangs() {
    use std::os::unix::fs::symlink;
    let Some(f) = fixture("hostile", 2) else { return };
    let im = &f.images;
    symlink("..", im.join("up")).unwrap(); // out of the folder, and a loop through its parent
    symlink(".", im.join("loop")).unwrap();
    symlink("/dev/zero", im.join("zero.jpg")).unwrap();
    let fifo = std::ffi::CString::new(im.join("fifo.jpg").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    std::fs::File::create(im.join("big.jpg")).unwrap().set_len(2 << 30).unwrap(); // sparse: no disk used
    std::fs::write(im.join("huge.png"), png_claiming(12000, 12000)).unwrap();
    let jpeg = std::fs::read(&f.photos[0]).unwrap();
    std::fs::write(im.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    std::fs::copy(&f.photos[2], f.root.join("outside.jpg")).unwrap();
    symlink(f.root.join("outside.jpg"), im.join("outside-link.jpg")).unwrap();
    symlink(f.photos[0].file_name().unwrap(), im.join("alias.jpg")).unwrap();
    // an unreadable subfolder (root reads it anyway: then that part is skipped, with a message)
    use std::os::unix::fs::PermissionsExt;
    let locked = im.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::copy(&f.photos[3], locked.join("x.jpg")).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let unreadable = std::fs::read_dir(&locked).is_err();
    if !unreadable {
        eprintln!("unreadable-folder check skipped (running as root): chmod 000 does not stop root from reading");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::remove_dir_all(&locked).unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let o = opts(&f, &f.root.join("gallery"));
    std::thread::spawn(move || {
        let _ = tx.send(publish(&o).map_err(|e| format!("{e:#}")));
    });
    let r = rx.recv_timeout(Duration::from_secs(90)).expect("publish hung (a FIFO, a symlink loop or /dev/zero?)").unwrap();
    if unreadable {
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap(); // so the scratch folder can go
    }
    assert_eq!(r.count, 2, "only the two photos: {r:?}");
    let why = |name: &str| r.skipped.iter().find(|(f, _)| f == name).map(|(_, w)| w.clone()).unwrap_or_default();
    for (name, reason) in [
        ("up", "outside the image folder"),
        ("loop", "loop"),
        ("zero.jpg", "outside the image folder"),
        ("fifo.jpg", "not a regular file"),
        ("big.jpg", "larger than"),
        ("huge.png", "megapixels"),
        ("truncated.jpg", "end-of-image"),
        ("outside-link.jpg", "outside the image folder"),
        ("alias.jpg", "same file as"),
    ] {
        assert!(why(name).contains(reason), "{name}: expected {reason:?}, skipped: {:?}", r.skipped);
    }
    if unreadable {
        assert!(why("locked").contains("cannot read") && why("locked").contains("ermission"), "{:?}", r.skipped);
    }
}
