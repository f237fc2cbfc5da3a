//! Each static text file (page, scripts, the 1.6 MB wasm, gallery.json) is compressed once and the bytes are
//! kept in memory, instead of compressing on every request: brotli of the wasm took ~70 ms a request and held
//! the server to ~62 wasm requests/s (issue #16).
//!
//! The cache is keyed by the file and its size, modification time and inode, read before and after ServeDir
//! reads the file: a changed file is compressed again, and one that changes while it is read is not stored.
//! So a stale compressed copy is never served (unlike `.br` files beside the originals, which a rebuild can
//! leave behind). Everything not stored here (API answers, files over the size limits, a file whose copy is
//! still being compressed) is compressed on the fly by the outer `CompressionLayer`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::Response,
};
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use crate::files::file_for;

/// Files larger than this are compressed on the fly instead (none of imgpick's text files comes close).
const MAX_FILE_BYTES: u64 = 32 << 20;
/// Memory for compressed copies; past it, new files are compressed on the fly.
const MAX_CACHED_BYTES: usize = 64 << 20;
/// Smaller files are sent as they are (compression would not pay for its header).
const MIN_FILE_BYTES: u64 = 256;
/// Brotli quality and window: paid once per file version, in the background, so the best there is. On the
/// 1.6 MB wasm: quality 11 gives 404 kB in 2.4 s, 9 gives 457 kB in 0.33 s, and 4 (what on-the-fly compression
/// used) 505 kB in 65 ms, paid on every request.
const BROTLI_QUALITY: u32 = 11;
const BROTLI_WINDOW: u32 = 22;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Encoding {
    Brotli,
    Gzip,
}

impl Encoding {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        })
    }

    fn compress(self, raw: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Encoding::Brotli => {
                let mut out = Vec::with_capacity(raw.len() / 3);
                let params = brotli::enc::BrotliEncoderParams {
                    quality: BROTLI_QUALITY as i32,
                    lgwin: BROTLI_WINDOW as i32,
                    ..Default::default()
                };
                brotli::BrotliCompress(&mut &raw[..], &mut out, &params)?;
                Ok(out)
            }
            Encoding::Gzip => {
                let out = Vec::with_capacity(raw.len() / 3);
                let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::best());
                gz.write_all(raw)?;
                gz.finish()
            }
        }
    }
}

/// The encoding to send for `Accept-Encoding`: brotli when accepted, else gzip, else none. An encoding with
/// `q=0` is refused; other weights are not compared (brotli is smaller at the same cost here).
fn preferred(headers: &HeaderMap) -> Option<Encoding> {
    let accepted = |name: &str| {
        headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
            |item| {
                let mut parts = item.split(';');
                let token = parts.next().unwrap_or("").trim();
                let refused = parts.any(|p| {
                    p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q <= 0.0)
                });
                (token.eq_ignore_ascii_case(name) || token == "*") && !refused
            },
        )
    };
    [(Encoding::Brotli, "br"), (Encoding::Gzip, "gzip")].into_iter().find(|(_, name)| accepted(name)).map(|(e, _)| e)
}

fn compressible(content_type: Option<&HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else { return false };
    let ct = ct.split(';').next().unwrap_or("").trim();
    ct.starts_with("text/")
        || matches!(
            ct,
            "application/javascript" | "application/json" | "application/wasm" | "application/manifest+json"
                | "application/xml" | "image/svg+xml"
        )
}

/// Size, modification time and inode of the file behind a response.
type Stamp = (u64, std::time::SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some((m.len(), m.modified().ok()?, inode))
}

/// One compressed copy: what the file looked like, and its bytes once compressed.
struct Slot {
    stamp: Stamp,
    /// Set by the request that starts the compression (in the background).
    started: AtomicBool,
    bytes: OnceLock<Bytes>,
}

/// The compressed copies of the static folder's files.
pub struct CompressedFiles {
    static_dir: PathBuf,
    slots: Mutex<HashMap<(PathBuf, Encoding), Arc<Slot>>>,
    /// One file is compressed at a time: at startup every text file is queued at once (see [`prewarm`]).
    compressing: Arc<Semaphore>,
}

impl CompressedFiles {
    pub fn new(static_dir: &Path) -> Self {
        Self {
            static_dir: static_dir.into(),
            slots: Mutex::new(HashMap::new()),
            compressing: Arc::new(Semaphore::new(1)),
        }
    }

    /// The slot for `file` as it is now (a new one when the file changed), or `None` when memory is full.
    fn slot(&self, file: &Path, encoding: Encoding, stamp: Stamp) -> Option<Arc<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let key = (file.to_path_buf(), encoding);
        if let Some(slot) = slots.get(&key).filter(|s| s.stamp == stamp) {
            return Some(slot.clone());
        }
        slots.remove(&key);
        let used: usize = slots.values().filter_map(|s| s.bytes.get()).map(Bytes::len).sum();
        if used >= MAX_CACHED_BYTES {
            return None;
        }
        let slot = Arc::new(Slot { stamp, started: AtomicBool::new(false), bytes: OnceLock::new() });
        slots.insert(key, slot.clone());
        Some(slot)
    }
}

/// Extensions of the files worth compressing (ServeDir gives them a text, JSON, wasm or SVG content type).
const TEXT_EXTENSIONS: [&str; 11] =
    ["html", "htm", "js", "mjs", "css", "json", "wasm", "svg", "txt", "webmanifest", "xml"];

/// Whether a URL path may name a text file (a folder serves its index.html); others skip the cache's `stat`.
fn may_be_text(uri_path: &str) -> bool {
    let last = uri_path.rsplit('/').next().unwrap_or("");
    match last.rsplit_once('.') {
        Some((_, ext)) => TEXT_EXTENSIONS.iter().any(|t| ext.eq_ignore_ascii_case(t)),
        None => true,
    }
}

/// Sends the stored compressed copy of a text file when the client accepts one (see the module comment). The
/// first request for a file version starts compressing it in the background; until the copy is stored, the
/// outer `CompressionLayer` compresses on the fly, so no request waits for the slow, once-only compression.
pub async fn serve_compressed(State(cache): State<Arc<CompressedFiles>>, req: Request, next: Next) -> Response {
    let encoding = preferred(req.headers());
    let eligible = req.method() == Method::GET && !req.headers().contains_key(header::RANGE);
    let file = file_for(&cache.static_dir, req.uri().path()).filter(|_| may_be_text(req.uri().path()));
    let (Some(encoding), true, Some(mut file)) = (encoding, eligible, file) else {
        return with_vary(next.run(req).await);
    };
    let before = tokio::task::spawn_blocking(move || {
        // ServeDir serves a folder's index.html.
        if file.is_dir() {
            file.push("index.html");
        }
        stamp(&file).map(|s| (file, s))
    })
    .await
    .ok()
    .flatten();
    let res = next.run(req).await;
    let Some((file, before)) = before else { return with_vary(res) };
    let length = res.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let wanted = res.status() == StatusCode::OK
        && !res.headers().contains_key(header::CONTENT_ENCODING)
        && compressible(res.headers().get(header::CONTENT_TYPE))
        && length == Some(before.0)
        && (MIN_FILE_BYTES..=MAX_FILE_BYTES).contains(&before.0);
    let slot = if wanted { cache.slot(&file, encoding, before) } else { None };
    let Some(slot) = slot else { return with_vary(res) };

    let (mut parts, body) = res.into_parts();
    if let Some(stored) = slot.bytes.get() {
        let h = &mut parts.headers;
        h.insert(header::CONTENT_ENCODING, encoding.header());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(stored.len()));
        // Byte ranges would refer to the compressed bytes; ranged requests get the plain file instead.
        h.remove(header::ACCEPT_RANGES);
        return with_vary(Response::from_parts(parts, Body::from(stored.clone())));
    }
    if slot.started.swap(true, Ordering::AcqRel) {
        return with_vary(Response::from_parts(parts, body));
    }
    // This request starts the compression; its body is the file as ServeDir read it.
    let Ok(raw) = body.collect().await.map(|b| b.to_bytes()) else {
        slot.started.store(false, Ordering::Release);
        return error_response(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let unchanged = tokio::task::spawn_blocking(move || stamp(&file) == Some(before)).await.unwrap_or(false);
    // A file that changed while it was read is sent as read and not stored (its next version gets a new slot).
    if unchanged && raw.len() as u64 == before.0 {
        let (raw, compressing) = (raw.clone(), cache.compressing.clone());
        tokio::spawn(async move {
            let Ok(_turn) = compressing.acquire_owned().await else { return };
            let job = tokio::task::spawn_blocking(move || {
                let out = encoding.compress(&raw);
                release_freed_memory();
                out
            });
            match job.await {
                Ok(Ok(bytes)) => {
                    let _ = slot.bytes.set(Bytes::from(bytes));
                }
                _ => slot.started.store(false, Ordering::Release),
            }
        });
    }
    with_vary(Response::from_parts(parts, Body::from(raw)))
}

/// Brotli 11 works in ~40 MB that glibc keeps in the thread's arena after it is freed: the server idled at
/// 97 MB instead of 27 MB after compressing its files at startup. Hand it back to the system.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's heaps to the kernel, under glibc's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Caches must keep the compressed and plain copies apart.
fn with_vary(mut res: Response) -> Response {
    if compressible(res.headers().get(header::CONTENT_TYPE)) {
        res.headers_mut().insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    res
}

fn error_response(status: StatusCode) -> Response {
    let mut res = Response::new(Body::from("500 the file could not be read\n"));
    *res.status_mut() = status;
    res
}

/// Starts compressing the static folder's text files at startup, so the first visitors get stored copies too:
/// sends `app` one GET per file and encoding, as a browser would (the copies are made one at a time).
pub async fn prewarm(app: axum::Router, static_dir: PathBuf) {
    use tower::ServiceExt;
    let files = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        collect_text_files(&static_dir, &static_dir, 0, &mut found);
        found
    })
    .await
    .unwrap_or_default();
    for uri in files {
        for encoding in ["br", "gzip"] {
            let req = Request::builder().uri(&uri).header(header::ACCEPT_ENCODING, encoding);
            let Ok(req) = req.body(Body::empty()) else { continue };
            let Ok(res) = app.clone().oneshot(req).await;
            let _ = res.into_body().collect().await;
        }
    }
}

/// URL paths of the text files under `dir` (four levels deep at most; dot-entries and thumbnails skipped).
fn collect_text_files(root: &Path, dir: &Path, depth: usize, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "thumbs" {
            continue;
        }
        if path.is_dir() && depth < 4 {
            collect_text_files(root, &path, depth + 1, out);
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| TEXT_EXTENSIONS.contains(&e)) {
            if let Ok(rel) = path.strip_prefix(root) {
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .map(|c| percent_encoding::utf8_percent_encode(&c, URL_PATH).to_string())
                    .collect();
                out.push(format!("/{}", parts.join("/")));
            }
        }
    }
}

/// Characters escaped in a path segment.
const URL_PATH: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b' ').add(b'"').add(b'#').add(b'%').add(b'?').add(b'/').add(b'<').add(b'>');

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Option<Encoding> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        preferred(&h)
    }

    #[test]
    fn picks_brotli_then_gzip_and_respects_q_zero() {
        assert_eq!(accept("gzip, deflate, br, zstd"), Some(Encoding::Brotli));
        assert_eq!(accept("gzip"), Some(Encoding::Gzip));
        assert_eq!(accept("br;q=0, gzip;q=0.5"), Some(Encoding::Gzip));
        assert_eq!(accept("identity"), None);
        assert_eq!(accept("*"), Some(Encoding::Brotli));
        assert_eq!(accept("br;q=0, gzip;q=0"), None);
        assert_eq!(preferred(&HeaderMap::new()), None);
    }

    #[test]
    fn round_trips_both_encodings() {
        let raw = b"function f() { return 1; }\n".repeat(500);
        for e in [Encoding::Brotli, Encoding::Gzip] {
            let packed = e.compress(&raw).unwrap();
            assert!(packed.len() < raw.len() / 10, "{e:?}");
            let mut out = Vec::new();
            match e {
                Encoding::Brotli => {
                    brotli::BrotliDecompress(&mut &packed[..], &mut out).unwrap();
                }
                Encoding::Gzip => {
                    use std::io::Read;
                    flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut out).unwrap();
                }
            }
            assert_eq!(out, raw, "{e:?}");
        }
    }
}
