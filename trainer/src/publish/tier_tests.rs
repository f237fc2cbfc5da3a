//! `publish --format` and `trainer index`: the partitioned tier ranks as the flat one, switching tiers embeds
//! nothing again and leaves no file of the other tier, a kill during the index build resumes; and what each
//! item records of its picture (shown size, licence id), also for caches of older publishes.

use std::path::{Path, PathBuf};

use wasm_model::partitioned::{Descriptor, BuildParams};
use wasm_model::Engine;

use super::tests::{fixture, index, opts, Fixture};
use super::*;

fn with(f: &Fixture, out: &Path, format: GalleryFormat) -> PublishOptions {
    PublishOptions { format, ..opts(f, out) }
}

fn descriptor(out: &Path) -> Descriptor {
    Descriptor::from_json(&std::fs::read_to_string(out.join("gallery.json")).unwrap()).unwrap()
}

/// Every file under `dir` but the publish's own dotfiles, with its bytes, sorted.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && !e.file_name().to_string_lossy().starts_with(".publish"))
        .map(|e| (e.path().strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

const PROMPTS: [&str; 3] = ["a cat on a sofa", "a dog on the beach", "dog -cat"];

/// `--format partitioned` writes the partitioned tier (no gallery.bin) that `search` reads and that ranks as the
/// flat gallery (every list probed at this size); republishing flat, then partitioned again, embeds nothing and
/// removes the other tier's files; `auto` is flat at this size.
#[test]
fn either_tier_ranks_the_same_and_switching_embeds_nothing() {
    let Some(f) = fixture("tiers", 5) else { return };
    let int8 = |out: &Path, format| PublishOptions { dtype: GalleryDtype::Int8, ..with(&f, out, format) };
    let flat = f.root.join("flat");
    publish(&int8(&flat, GalleryFormat::Flat)).unwrap();
    let out = f.root.join("gallery");
    let r = publish(&with(&f, &out, GalleryFormat::Partitioned)).unwrap(); // --dtype f32: partitioned is int8 anyway
    let s = r.partitioned.as_ref().expect("partitioned");
    assert_eq!((r.count, r.embedded, s.count, s.probe), (5, 5, 5, s.lists), "{r:?}");
    let d = descriptor(&out);
    assert!(!out.join("gallery.bin").exists() && out.join(&d.gallery_id).join("index.bin").is_file());
    assert_eq!(d.summary, index(&flat).summary, "the descriptor carries the summary");
    let (a, b) = (Engine::open(&f.model, &flat).unwrap(), Engine::open(&f.model, &out).unwrap());
    for p in PROMPTS {
        assert_eq!(b.search(p, 5).unwrap(), a.search(p, 5).unwrap(), "{p}");
    }
    for id in 0..5 {
        assert_eq!(b.item(id).unwrap(), a.item(id).unwrap(), "item {id}, sizes and licence ids included");
    }

    let r = publish(&int8(&out, GalleryFormat::Auto)).unwrap();
    assert_eq!((r.embedded, r.reused, r.partitioned.is_none()), (0, 5, true), "auto is flat under 2,000 images");
    assert!(out.join("gallery.bin").is_file() && !out.join(&d.gallery_id).exists(), "the partitioned parts are gone");
    assert_eq!(std::fs::read(out.join("gallery.bin")).unwrap(), std::fs::read(flat.join("gallery.bin")).unwrap());
    let r = publish(&with(&f, &out, GalleryFormat::Partitioned)).unwrap();
    assert_eq!((r.embedded, r.partitioned.unwrap().gallery_id), (0, d.gallery_id.clone()), "the same content, the same id");
    let leftovers: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let mut leftovers: Vec<&str> = leftovers.iter().map(String::as_str).filter(|n| !n.starts_with(".publish")).collect();
    leftovers.sort_unstable();
    assert_eq!(leftovers, [d.gallery_id.as_str(), "gallery.json", "thumbs"]);
}

/// A publish killed in the index build (after every image is embedded): the folder keeps the previous gallery,
/// readable; the next publish embeds nothing, clears the half-written build and writes exactly what an
/// uninterrupted publish writes. Kills inside wasm-model's builder are reproduced by running the same builder
/// into the same temporary folder and stopping it after a few files.
#[test]
fn a_publish_killed_during_the_index_build_resumes_without_embedding_again() {
    let Some(f) = fixture("index-kill", 5) else { return };
    let full = f.root.join("full");
    publish(&with(&f, &full, GalleryFormat::Partitioned)).unwrap();
    let out = f.root.join("killed");
    publish(&with(&f, &out, GalleryFormat::Flat)).unwrap(); // the gallery readers see meanwhile
    let before = Engine::open(&f.model, &out).unwrap().search(PROMPTS[0], 5).unwrap();

    crate::crash::arm("publish.index-build", 1);
    let e = publish(&with(&f, &out, GalleryFormat::Partitioned)).unwrap_err();
    crate::crash::disarm();
    assert!(e.is::<crate::crash::SimulatedCrash>(), "{e:#}");
    // where a kill inside the builder stops: some parts in the temporary folder, a descriptor not yet renamed
    let flat_gallery = wasm_model::Gallery::from_bytes(&std::fs::read(out.join("gallery.bin")).unwrap()).unwrap();
    let tmp = out.join(".partitioned-tmp");
    let mut written = 0;
    let cut = wasm_model::partitioned::partition(&flat_gallery, &index(&out).items, &BuildParams::default(), &mut |file, bytes| {
        if written == 2 {
            return Err(std::io::Error::other("killed"));
        }
        written += 1;
        let path = tmp.join(file);
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(path, bytes)
    });
    assert!(cut.is_err() && tmp.is_dir());
    std::fs::write(out.join(".gallery.json.tmp"), b"{\"format\": \"imgpick-partitioned-gallery\", \"form").unwrap();
    assert_eq!(Engine::open(&f.model, &out).unwrap().search(PROMPTS[0], 5).unwrap(), before, "the previous gallery is still served");

    let r = publish(&with(&f, &out, GalleryFormat::Partitioned)).unwrap();
    assert_eq!((r.count, r.embedded, r.reused), (5, 0, 5), "nothing embedded again: {r:?}");
    assert!(!tmp.exists() && !out.join(".gallery.json.tmp").exists() && !out.join("gallery.bin").exists());
    assert_eq!(files(&out), files(&full), "the same files as an uninterrupted publish");
}

/// Each item records its picture's size as shown (a photo stored sideways with EXIF orientation 6 is taller
/// than wide, and so is its thumbnail) and its normalised licence id; licence strings without an id are
/// reported. A cache written before sizes were recorded is completed from the files' headers without
/// embedding again, and the sideways photo's unturned thumbnail is replaced by an upright one.
#[test]
fn items_record_the_shown_size_and_licence_id_also_from_older_caches() {
    let Some(f) = fixture("facts", 3) else { return };
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    let stored = image::image_dimensions(&f.photos[0]).unwrap();
    assert!(stored.0 > stored.1, "the first asset photo is landscape: {stored:?}");
    let sideways = crate::image_file::with_exif_orientation(&std::fs::read(&f.photos[0]).unwrap(), 6);
    std::fs::write(f.images.join("sideways.jpg"), sideways).unwrap();
    let files: Vec<String> = f.photos.iter().take(3).map(|p| name(p)).chain(["sideways.jpg".to_string()]).collect();
    let licences = ["CC-BY-SA-3.0", "Public domain", "see the scikit-image data README", ""];
    let coco = serde_json::json!({
        "images": files.iter().zip(licences).enumerate().map(|(i, (n, l))| serde_json::json!({"id": i, "file_name": n, "licence": l})).collect::<Vec<_>>(),
        "annotations": (0..4).map(|i| serde_json::json!({"id": i, "image_id": i, "caption": "a photo"})).collect::<Vec<_>>(),
    });
    let captions = f.root.join("captions.json");
    std::fs::write(&captions, coco.to_string()).unwrap();
    let out = f.root.join("gallery");
    let o = PublishOptions { captions: Some(captions), ..opts(&f, &out) };
    let r = publish(&o).unwrap();
    assert_eq!((r.unmapped_licences.clone(), r.without_licence), (vec![("see the scikit-image data README".to_string(), 1)], 1));
    let check = |out: &Path| {
        let idx = index(out);
        let ids: Vec<&str> = idx.items.iter().map(|it| it.licence_id.as_deref().unwrap()).collect();
        assert_eq!(ids, ["cc-by-sa-3.0", "pd", "unknown", "unknown"]);
        for (it, photo) in idx.items.iter().zip(f.photos.iter().take(3)) {
            assert_eq!((it.width, it.height), (Some(image::image_dimensions(photo).unwrap().0), Some(image::image_dimensions(photo).unwrap().1)), "{}", it.file);
        }
        let turned = &idx.items[3];
        assert_eq!((turned.width, turned.height), (Some(stored.1), Some(stored.0)), "as shown");
        let thumb = image::image_dimensions(out.join(&turned.thumb)).unwrap();
        assert!(thumb.1 > thumb.0, "an upright thumbnail: {thumb:?}");
        idx
    };
    let first = check(&out);

    // The cache of an older publish: no sizes, and the sideways photo's thumbnail as stored (unturned).
    let cache_path = out.join(CACHE_FILE);
    let unturned = thumbs::write(&out, &thumbs::encode(&crate::image_file::open(&f.images.join("sideways.jpg")).unwrap()).unwrap()).unwrap();
    let old: Vec<String> = std::fs::read_to_string(&cache_path)
        .unwrap()
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(record) = v.as_object_mut().filter(|o| o.contains_key("vector")) {
                record.remove("shown_size");
                if record["file"] == "sideways.jpg" {
                    record.insert("thumb".into(), unturned.clone().into());
                }
            }
            v.to_string()
        })
        .collect();
    std::fs::write(&cache_path, old.join("\n") + "\n").unwrap();
    let r = publish(&o).unwrap();
    assert_eq!((r.embedded, r.reused), (0, 4), "completed, not embedded again: {r:?}");
    assert_eq!(check(&out), first, "the same items as a fresh publish");
    // (the unturned thumbnail is the first photo's own: the same stored pixels)
    assert_eq!(unturned, first.items[0].thumb);
    let r = publish(&o).unwrap();
    assert_eq!((r.embedded, r.reused), (0, 4));
    assert!(std::fs::read_to_string(&cache_path).unwrap().lines().skip(1).all(|l| l.contains("shown_size")), "the cache was completed");
}

/// `trainer index` partitions a published flat gallery into a new folder with the thumbnails its items name;
/// it refuses the gallery's own folder (that would drop gallery.bin: republish instead) and a partitioned input.
#[test]
fn index_partitions_a_flat_gallery_into_a_complete_folder() {
    let Some(f) = fixture("index", 4) else { return };
    let flat = f.root.join("flat");
    publish(&PublishOptions { dtype: GalleryDtype::Int8, ..with(&f, &flat, GalleryFormat::Flat) }).unwrap();
    let out = f.root.join("partitioned");
    let s = partition_gallery(&PartitionOptions { gallery: flat.clone(), out: out.clone(), partitioning: Partitioning { lists: Some(2), probe: Some(2) } }).unwrap();
    assert_eq!((s.count, s.lists, s.probe), (4, 2, 2));
    assert_eq!(descriptor(&out).summary, index(&flat).summary);
    let (a, b) = (Engine::open(&f.model, &flat).unwrap(), Engine::open(&f.model, &out).unwrap());
    for p in PROMPTS {
        assert_eq!(b.search(p, 4).unwrap(), a.search(p, 4).unwrap(), "{p}");
    }
    for it in index(&flat).items {
        assert_eq!(std::fs::read(out.join(&it.thumb)).unwrap(), std::fs::read(flat.join(&it.thumb)).unwrap());
    }
    for (gallery, out_dir, says) in [(&flat, &flat, "--format partitioned"), (&out, &f.root.join("again"), "already a partitioned gallery")] {
        let e = partition_gallery(&PartitionOptions { gallery: gallery.clone(), out: out_dir.clone(), partitioning: Partitioning::default() }).unwrap_err();
        assert!(format!("{e:#}").contains(says), "{e:#}");
    }
    assert!(flat.join("gallery.bin").is_file());
}
