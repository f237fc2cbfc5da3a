//! The server under load and abuse, over real sockets on 127.0.0.1: header timeouts, the connection cap, the
//! bounded search pool (excess searches get a fast 503 + Retry-After) and TCP_NODELAY.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
};
use http_body_util::BodyExt;
use tower::ServiceExt;
use web::{Config, Hit, Limits, Searcher};

/// A running server on its own runtime (so the test thread can use blocking sockets).
struct Server {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.take().map(|s| s.send(()));
    }
}

fn start(limits: Limits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>imgpick</title>").unwrap();
    std::fs::write(dir.path().join("small.txt"), "small file\n").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = Config { limits: limits.clone(), ..Config::new(dir.path(), Err("no engine in this test".into())) };
    let app = web::router(config);
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        web::serve(listener, app, &limits, async {
            stopped.await.ok();
        })
        .await
        .unwrap()
    });
    Server { addr, _rt: rt, stop: Some(stop), _dir: dir }
}

/// Reads one HTTP/1.1 response (headers + Content-Length body); `None` when the server closed the connection.
fn read_response(s: &mut TcpStream) -> Option<(u16, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let mut body = vec![0; len];
    s.read_exact(&mut body).ok()?;
    Some((status, head, body))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Waits until the server closes `s` (read returns 0 or an error other than a timeout); the time it took.
fn time_until_closed(s: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue, // a 408 before closing is fine
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("the connection was still open after {:?}", start.elapsed())
            }
            Err(_) => return start.elapsed(), // reset
        }
    }
}

#[test]
fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let server = start(Limits { header_read_timeout: Duration::from_millis(300), ..Limits::default() });
    let mut s = connect(server.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: slow").unwrap();
    let waited = time_until_closed(&mut s);
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_too() {
    let server = start(Limits { header_read_timeout: Duration::from_millis(300), ..Limits::default() });
    let mut s = connect(server.addr);
    s.write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, _, body) = read_response(&mut s).expect("a response");
    assert_eq!((status, body.as_slice()), (200, &b"small file\n"[..]));
    let waited = time_until_closed(&mut s);
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}");
}

#[test]
fn connections_over_the_cap_get_a_fast_503() {
    let server = start(Limits { max_connections: 2, ..Limits::default() });
    // Two connections hold the server's slots (one mid-request, one idle after a request).
    let mut held = connect(server.addr);
    held.write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut idle = connect(server.addr);
    idle.write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut idle).unwrap().0, 200);
    let start = Instant::now();
    let mut third = connect(server.addr);
    third.write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, head, body) = read_response(&mut third).expect("a 503, not a silent close");
    assert_eq!(status, 503, "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("busy"), "{v}");
    assert!(start.elapsed() < Duration::from_secs(1), "the 503 took {:?}", start.elapsed());
    // A freed slot is reused.
    drop((held, idle));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = connect(server.addr);
        s.write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        match read_response(&mut s) {
            Some((200, _, _)) => break,
            other if Instant::now() > deadline => panic!("no slot after the others closed: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[test]
fn small_files_on_a_keep_alive_connection_are_not_delayed() {
    let server = start(Limits::default());
    let mut s = connect(server.addr);
    let get = b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(get).unwrap();
    read_response(&mut s).unwrap();
    let start = Instant::now();
    for _ in 0..10 {
        s.write_all(get).unwrap();
        assert_eq!(read_response(&mut s).unwrap().0, 200);
    }
    // With Nagle's algorithm on the server socket each response waits for the client's delayed ACK (~40 ms).
    let each = start.elapsed() / 10;
    assert!(each < Duration::from_millis(8), "{each:?} per request");
}

/// Sleeps in `search`, recording how many calls ran at once.
#[derive(Default)]
struct SlowSearcher {
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl Searcher for SlowSearcher {
    fn model_id(&self) -> String {
        "slow".into()
    }
    fn search(&self, _query: &str, _k: usize) -> Result<Vec<Hit>, String> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(Vec::new())
    }
    fn similar(&self, _id: usize, _k: usize) -> Result<Vec<Hit>, String> {
        Ok(Vec::new())
    }
}

async fn call(app: &axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, serde_json::Value, Duration) {
    let start = Instant::now();
    let res = app.clone().oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{uri}: {e}: {body:?}"));
    (parts.status, parts.headers, v, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_run_on_a_bounded_pool_and_the_excess_is_shed() {
    let dir = tempfile::tempdir().unwrap();
    let searcher = Arc::new(SlowSearcher::default());
    let limits = Limits { search_workers: 2, max_pending_searches: 6, ..Limits::default() };
    let app = web::router(Config { limits, ..Config::new(dir.path(), Ok(searcher.clone() as Arc<dyn Searcher>)) });
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let app = app.clone();
        tasks.spawn(async move { call(&app, &format!("/api/search?q=dog{i}")).await });
    }
    let (mut ok, mut shed) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (status, h, v, took) = r.unwrap();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                shed += 1;
                assert!(h.contains_key(header::RETRY_AFTER), "{h:?}");
                assert!(v["error"].as_str().unwrap().contains("busy"), "{v}");
                assert!(took < Duration::from_millis(250), "a shed request took {took:?} (a search takes 300 ms)");
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(ok + shed, 16);
    assert!(ok >= 6 && shed >= 8, "{ok} answered, {shed} shed (6 may wait at once)");
    let peak = searcher.peak.load(Ordering::SeqCst);
    assert!(peak <= 2, "{peak} searches ran at once on a pool of 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_that_waits_too_long_gets_a_json_503() {
    let dir = tempfile::tempdir().unwrap();
    let searcher = Arc::new(SlowSearcher::default());
    let limits = Limits { search_workers: 1, request_timeout: Duration::from_millis(150), ..Limits::default() };
    let app = web::router(Config { limits, ..Config::new(dir.path(), Ok(searcher as Arc<dyn Searcher>)) });
    let (a, b) = tokio::join!(call(&app, "/api/search?q=a"), call(&app, "/api/search?q=b"));
    for (status, h, v, took) in [a, b] {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert!(h.contains_key(header::RETRY_AFTER));
        assert!(v["error"].as_str().unwrap().contains("took longer than"), "{v}");
        assert!(took < Duration::from_millis(290), "answered after {took:?}");
    }
}
