//! The `trainer` binary on bad input: one clear error line (what, where, how to fix), exit code 1, no panic,
//! no partial output.

use std::process::Command;

fn trainer(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_trainer")).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (o.status.success(), err)
}

#[test]
fn help_explains_every_command() {
    let o = Command::new(env!("CARGO_BIN_EXE_trainer")).arg("--help").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in ["fit", "eval", "export", "publish", "search", "features", "classify"] {
        assert!(out.contains(cmd), "--help lists {cmd}");
    }
}

#[test]
fn missing_model_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (ok, err) = trainer(&["eval", "--model", d.join("nope").to_str().unwrap(), "--captions", "x.json", "--images", "."]);
    assert!(!ok);
    assert!(err.contains("cannot load model directory") && err.contains("manifest.json"), "{err}");
}

#[test]
fn captions_with_wrong_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let caps = d.join("caps.json");
    std::fs::write(&caps, r#"{"images": [{"id": 1}], "annotations": []}"#).unwrap();
    let out = d.join("run");
    let (ok, err) = trainer(&[
        "fit", "--train-captions", caps.to_str().unwrap(), "--val-captions", caps.to_str().unwrap(),
        "--images", d.to_str().unwrap(), "--out", out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("caps.json") && err.contains("file_name"), "{err}");
    assert!(!out.join("state.json").exists(), "no run state left behind");
}

#[test]
fn missing_glove_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let caps = d.join("caps.json");
    std::fs::write(&caps, r#"{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "caption": "a dog"}]}"#).unwrap();
    let (ok, err) = trainer(&[
        "fit", "--train-captions", caps.to_str().unwrap(), "--val-captions", caps.to_str().unwrap(),
        "--images", d.to_str().unwrap(), "--out", d.join("run").to_str().unwrap(), "--glove", "/nonexistent/glove.safetensors",
    ]);
    assert!(!ok);
    assert!(err.contains("cannot read GloVe vectors") && err.contains("setup.sh"), "{err}");
}

#[test]
fn export_of_a_folder_that_is_not_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (ok, err) = trainer(&["export", "--run", d.to_str().unwrap(), "--out", d.join("model").to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("not a run folder"), "{err}");
    assert!(!d.join("model").exists(), "no partial model directory");
}
