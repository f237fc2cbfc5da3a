//! `trainer search` refined (issue #20: --up/--down, --orient, --min-side, --licence, --collapse, --vary) and
//! on a passage (--passage FILE or `-`): the JSON is what wasm-model's engine answers on the same files, the
//! text names each idea's sentences, and bad flags are refused naming the problem.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use wasm_model::engine::{Engine, Scope};
use wasm_model::workflow::passage::MAX_PASSAGE_BYTES;
use wasm_model::workflow::Refinement;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../wasm-model/tests/fixtures/tiny")
}

/// Runs `trainer search` on the fixture with `args` (stdin `input`): (success, stdout, stderr).
fn search(args: &[&str], input: Option<&str>) -> (bool, String, String) {
    let f = fixture();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["--threads", "1", "search", "--model"])
        .arg(&f)
        .arg("--gallery")
        .arg(&f)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(text) = input {
        // a refused passage may close stdin before all of it is read
        let _ = stdin.write_all(text.as_bytes());
    }
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned(), err)
}

fn refinement(pairs: &[(&str, &str)]) -> Refinement {
    Refinement::from_params(pairs.iter().copied(), false).unwrap()
}

#[test]
fn refined_json_is_the_engines() {
    let engine = Engine::open(fixture(), fixture()).unwrap();
    // (flags, the same refinement as share-link parameters)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: [Case; 4] = [
        (&["--up", "3,17", "--down", "5"], &[("up", "3,17"), ("down", "5")]),
        (&["--collapse", "--vary"], &[("collapse", "1"), ("vary", "1")]),
        (&["--licence", "commercial", "--up", "9", "--up", "4"], &[("lic", "commercial"), ("up", "9,4")]),
        (&["--orient", "landscape", "--min-side", "10"], &[("orient", "landscape"), ("min", "10")]),
    ];
    for (flags, params) in cases {
        let args = [flags, &["-k", "8", "--json", "a dog on the beach"]].concat();
        let (ok, out, err) = search(&args, None);
        assert!(ok, "{args:?}: {err}");
        let got: serde_json::Value = serde_json::from_str(&out).unwrap();
        let want = engine.search_refined("a dog on the beach", 8, Scope::All, &refinement(params)).unwrap();
        let got = got.as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{args:?}: {out}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g["id"].as_u64(), g["file"].as_str()), (Some(w.hit.id as u64), Some(w.hit.file.as_str())), "{args:?}");
            assert!((g["score"].as_f64().unwrap() - w.hit.score as f64).abs() < 1e-6);
            let similar: Vec<u32> = g.get("similar").map_or(Vec::new(), |s| serde_json::from_value(s.clone()).unwrap());
            assert_eq!(similar, w.similar, "{args:?}");
        }
        // the fixture's pictures have no recorded size: a size or orientation filter keeps none of them
        assert_eq!(got.is_empty(), flags.contains(&"--orient"), "{args:?}");
    }
    // the text lists ids, so the next --up / --down can name them
    let (ok, out, _) = search(&["-k", "3", "--up", "3", "cat"], None);
    assert!(ok);
    let want = engine.search_refined("cat", 3, Scope::All, &refinement(&[("up", "3")])).unwrap();
    for (line, w) in out.lines().zip(&want) {
        assert!(line.contains(&format!("#{}  {}", w.hit.id, w.hit.file)), "{line}");
    }
}

#[test]
fn a_passage_from_stdin_or_a_file_gives_ideas_with_their_sentences() {
    let engine = Engine::open(fixture(), fixture()).unwrap();
    let text = "A dog runs on the beach. The black dog jumps!\n\nA red car on the street. 🎉🎉.";
    let (ok, out, err) = search(&["--passage", "-", "-k", "4", "--k-idea", "2", "--json", "--collapse"], Some(text));
    assert!(ok, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    let want = engine.passage(text, 2, 4, Scope::All, &refinement(&[("collapse", "1")])).unwrap();
    let want_json: serde_json::Value = serde_json::from_str(&serde_json::to_string(&want).unwrap()).unwrap();
    assert_eq!(got, want_json, "exactly PassageAnswer");
    assert_eq!(got["without_words"], 1);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("draft.txt");
    std::fs::write(&file, text).unwrap();
    let (ok, out, err) = search(&["--passage", file.to_str().unwrap(), "-k", "3", "--k-idea", "2"], None);
    assert!(ok, "{err}");
    for idea in &want.ideas {
        let which = if idea.idea.first == idea.idea.last { format!("(sentence {})", idea.idea.first + 1) } else { format!("(sentences {}–{})", idea.idea.first + 1, idea.idea.last + 1) };
        assert!(out.contains(&format!("{which}: {}", idea.idea.text)), "{out}");
    }
    assert!(out.contains("the whole passage:") && out.contains("1 sentence(s) without words left out"), "{out}");

    // too long, no words, not UTF-8, missing: refused, named
    std::fs::write(&file, "word ".repeat(MAX_PASSAGE_BYTES / 5 + 1)).unwrap();
    let (ok, _, err) = search(&["--passage", file.to_str().unwrap()], None);
    assert!(!ok && err.contains("over 100000 bytes"), "{err}");
    let (ok, _, err) = search(&["--passage", "-"], Some("🎉 <br> !!"));
    assert!(!ok && err.contains("no words"), "{err}");
    std::fs::write(&file, b"\xff\xfe dog").unwrap();
    let (ok, _, err) = search(&["--passage", file.to_str().unwrap()], None);
    assert!(!ok && err.contains("not UTF-8"), "{err}");
    let (ok, _, err) = search(&["--passage", dir.path().join("nope.txt").to_str().unwrap()], None);
    assert!(!ok && err.contains("nope.txt"), "{err}");
}

#[test]
fn bad_refinements_are_refused_naming_the_flag() {
    for (args, needle, code) in [
        (&["--orient", "wide", "dog"][..], "orientation must be landscape, portrait or square", 2),
        (&["--licence", "free", "dog"][..], "licence must be pd", 2),
        (&["--up", "x", "dog"][..], "--up", 2),
        (&["--up", "2", "--down", "2", "dog"][..], "both liked (--up) and disliked (--down)", 1),
        (&["--min-side", "0", "dog"][..], "1 to 100000 pixels", 1),
        (&["--up", "40", "dog"][..], "image id 40 is not in the gallery", 1),
        (&["--passage", "-", "dog"][..], "cannot be used with", 2),
        (&["--k-idea", "3", "dog"][..], "give --passage FILE too", 1),
        (&[][..], "PROMPT", 2),
    ] {
        let f = fixture();
        let o = Command::new(env!("CARGO_BIN_EXE_trainer")).args(["search", "--model"]).arg(&f).arg("--gallery").arg(&f).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle) && !err.contains("panicked"), "{args:?}: {err}");
    }
}
