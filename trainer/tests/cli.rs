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
    for cmd in ["fit", "eval", "calibrate", "export", "publish", "db-load", "search", "features", "classify"] {
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

/// `calibrate` names a missing model directory before reading any image, and writes nothing.
#[test]
fn calibrate_without_a_model() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (ok, err) = trainer(&["calibrate", "--model", d.join("nope").to_str().unwrap(), "--captions", "x.json", "--images", "."]);
    assert!(!ok);
    assert!(err.contains("manifest.json"), "{err}");
    assert!(!d.join("nope").exists());
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

/// Every numeric option is checked as it is parsed: a value out of range is a usage error (exit code 2) that
/// names the option, the value and the valid range, before anything is read or written (no panic, no run
/// that trains nothing).
#[test]
fn out_of_range_options_are_refused_naming_the_range() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let fit = ["fit", "--train-captions", "c.json", "--val-captions", "c.json", "--images", d, "--out", d];
    let eval = ["eval", "--model", d, "--captions", "c.json", "--images", d];
    let search = ["search", "--model", d, "--gallery", d];
    let calibrate = ["calibrate", "--model", d, "--captions", "c.json", "--images", d];
    let cases: Vec<(Vec<&str>, &[&str], &str)> = vec![
        (fit.to_vec(), &["--batch-size", "1"], "--batch-size"),
        (fit.to_vec(), &["--batch-size", "0"], "--batch-size"),
        (fit.to_vec(), &["--embed-dim", "0"], "--embed-dim"),
        (fit.to_vec(), &["--hidden-dim", "0"], "--hidden-dim"),
        (fit.to_vec(), &["--layers", "0"], "--layers"),
        (fit.to_vec(), &["--layers", "17"], "--layers"),
        (fit.to_vec(), &["--word-dropout", "2"], "--word-dropout"),
        (fit.to_vec(), &["--word-dropout", "1"], "--word-dropout"),
        (fit.to_vec(), &["--lr", "1e30"], "--lr"),
        (fit.to_vec(), &["--lr", "0"], "--lr"),
        (fit.to_vec(), &["--lr", "nan"], "--lr"),
        (fit.to_vec(), &["--epochs", "0"], "--epochs"),
        (fit.to_vec(), &["--vocab-size", "2"], "--vocab-size"),
        (fit.to_vec(), &["--min-count", "0"], "--min-count"),
        (fit.to_vec(), &["--tau", "0"], "--tau"),
        (fit.to_vec(), &["--margin", "-1"], "--margin"),
        (fit.to_vec(), &["--grad-clip", "inf"], "--grad-clip"),
        (fit.to_vec(), &["--weight-decay", "-0.1"], "--weight-decay"),
        (fit.to_vec(), &["--embedding-lr-scale", "-1"], "--embedding-lr-scale"),
        (fit.to_vec(), &["--backbone-lr-scale", "nan"], "--backbone-lr-scale"),
        (fit.to_vec(), &["--finetune-from", "99"], "--finetune-from"),
        (fit.to_vec(), &["--finetune", "--crop-scale", "0"], "--crop-scale"),
        (fit.to_vec(), &["--stop-after-epoch", "0"], "--stop-after-epoch"),
        (eval.to_vec(), &["--bootstrap", "0"], "--bootstrap"),
        (calibrate.to_vec(), &["--precision", "1.5"], "--precision"),
        (calibrate.to_vec(), &["--precision", "nan"], "--precision"),
        (calibrate.to_vec(), &["--min-queries", "0"], "--min-queries"),
        (search.to_vec(), &["-k", "0", "dog"], "-k"),
        (search.to_vec(), &["-k", "1000000", "dog"], "-k"),
        (vec!["export", "--run", d, "--out", d], &["--which", "foo"], "--which"),
        (vec!["classify", "x.jpg"], &["--top", "0"], "--top"),
        (vec!["features", "--captions", "c.json", "--images", d], &["--split", "99"], "--split"),
        (vec!["--threads", "0", "search", "--model", d, "--gallery", d, "dog"], &[], "--threads"),
    ];
    for (cmd, bad, flag) in cases {
        let args = [cmd.as_slice(), bad].concat();
        let o = Command::new(env!("CARGO_BIN_EXE_trainer")).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?} is a usage error: {err}");
        let value = bad.get(bad.len().saturating_sub(if cmd[0] == "search" { 2 } else { 1 })).copied().unwrap_or("0");
        assert!(err.contains(flag) && err.contains(&format!("'{value}'")) && !err.contains("panicked"), "{args:?}: {err}");
        if flag != "--which" {
            assert!(err.contains("expected"), "{args:?} says what is valid: {err}");
        }
    }
}
