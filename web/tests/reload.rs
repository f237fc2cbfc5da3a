//! A republished gallery is picked up without a restart — by watching the files and on SIGHUP — and a
//! half-written one is never served (the old engine keeps answering).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use axum::{body::Body, http::Request, Router};
use http_body_util::BodyExt;
use support::{publish, thumbs_of, write_atomic, write_model};
use tower::ServiceExt;
use web::reload::{Checked, Reloader, SharedSearcher};
use web::Config;

async fn get(app: &Router, uri: &str) -> (u16, Vec<u8>) {
    let res = app.clone().oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status().as_u16();
    (status, res.into_body().collect().await.unwrap().to_bytes().to_vec())
}

/// The thumbnails `/api/search` answers, after checking that each of them is served.
async fn served_thumbs(app: &Router) -> Vec<String> {
    let (status, body) = get(app, "/api/search?q=w3&k=3").await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{v}");
    let thumbs = thumbs_of(&v);
    assert_eq!(thumbs.len(), 3, "{v}");
    for t in &thumbs {
        assert_eq!(get(app, &format!("/gallery/{t}")).await.0, 200, "{t} is not served");
    }
    thumbs
}

fn all_from(thumbs: &[String], tag: &str) -> bool {
    thumbs.iter().all(|t| t.starts_with(&format!("thumbs/{tag}-")))
}

fn app_for(dir: &Path) -> (Router, Reloader) {
    let shared = SharedSearcher::new(web::engine::load(dir));
    let reloader = Reloader::new(dir, shared.clone());
    (web::router(Config { searcher: shared, ..Config::new(dir, Err(String::new())) }), reloader)
}

#[tokio::test]
async fn a_republished_gallery_is_served_once_its_files_settle() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path());
    publish(dir.path(), &model, "old", 6, 1);
    let (app, mut reloader) = app_for(dir.path());
    assert!(all_from(&served_thumbs(&app).await, "old"));
    assert_eq!(reloader.check(), Checked::Unchanged);

    publish(dir.path(), &model, "new", 9, 2);
    // Std::fs::remove of the old thumbnails is what a republish with new names leaves behind.
    for i in 0..6 {
        std::fs::remove_file(dir.path().join(format!("gallery/thumbs/old-{i}.jpg"))).unwrap();
    }
    // The first look sees the change; the files must stay the same for one more look before they are loaded.
    assert_eq!(reloader.check(), Checked::Settling);
    assert!(matches!(reloader.check(), Checked::Reloaded { .. }));
    assert!(all_from(&served_thumbs(&app).await, "new"));
    assert_eq!(reloader.check(), Checked::Unchanged);
}

#[tokio::test]
async fn a_half_written_gallery_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path());
    publish(dir.path(), &model, "old", 6, 1);
    let (app, mut reloader) = app_for(dir.path());
    let gallery = dir.path().join("gallery");
    let (bin, json) = support::gallery_files(&model, "new", 9, 2);

    // gallery.bin cut short (a copy still running): refused, the old gallery keeps answering.
    std::fs::write(gallery.join("gallery.bin"), &bin[..bin.len() / 2]).unwrap();
    assert_eq!(reloader.check(), Checked::Settling);
    let Checked::Kept { why } = reloader.check() else { panic!("a truncated gallery.bin was loaded") };
    assert!(why.contains("gallery"), "{why}");
    assert!(all_from(&served_thumbs(&app).await, "old"));
    // Looking again without a change does not retry (nor log again).
    assert_eq!(reloader.check(), Checked::Unchanged);

    // The new index and vectors, but thumbnails not written yet: refused, naming the missing file.
    write_atomic(&gallery.join("gallery.bin"), &bin);
    write_atomic(&gallery.join("gallery.json"), json.as_bytes());
    reloader.check();
    let Checked::Kept { why } = reloader.check() else { panic!("a gallery without its thumbnails was loaded") };
    assert!(why.contains("new-0.jpg"), "{why}");
    assert!(all_from(&served_thumbs(&app).await, "old"));

    // Once complete, it is served.
    publish(dir.path(), &model, "new", 9, 2);
    reloader.check();
    assert!(matches!(reloader.check(), Checked::Reloaded { .. }));
    assert!(all_from(&served_thumbs(&app).await, "new"));
}

#[tokio::test]
async fn the_watcher_reloads_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path());
    publish(dir.path(), &model, "old", 6, 1);
    let (app, reloader) = app_for(dir.path());
    let watcher = reloader.spawn(Some(Duration::from_millis(50)));
    publish(dir.path(), &model, "new", 9, 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !all_from(&served_thumbs(&app).await, "new") {
        assert!(Instant::now() < deadline, "the new gallery was not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(watcher);
}

/// One `GET` over a fresh connection; the body.
fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

#[cfg(unix)]
#[test]
fn sighup_reloads_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path());
    publish(dir.path(), &model, "old", 6, 1);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_web"))
        .args(["--port", "0", "--watch-interval-secs", "0", "--static-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Log lines may come first; tools find the address on the "imgpick serving … at http://…/" line.
    let line = lines.by_ref().map(Result::unwrap).find(|l| l.contains(" at http://")).expect("the serving line");
    let addr = line.split(" at http://").nth(1).unwrap().trim_end_matches('/').to_string();
    let search = || -> Vec<String> {
        let body = http_get(&addr, "/api/search?q=w3&k=3");
        thumbs_of(&serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")))
    };
    assert!(all_from(&search(), "old"));
    publish(dir.path(), &model, "new", 9, 2);
    std::thread::sleep(Duration::from_millis(300));
    assert!(all_from(&search(), "old"), "watching was turned off: nothing changes before the signal");
    let status = std::process::Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(child.try_wait().unwrap().is_none(), "SIGHUP stopped the server");
        if all_from(&search(), "new") {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload the gallery");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    child.wait().unwrap();
}
