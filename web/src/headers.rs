//! Response headers: security policy, caching, ETags, and refusal of hidden paths.

use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// The page runs only its own scripts and wasm, in a worker it loads from the same origin; nothing inline.
/// `'wasm-unsafe-eval'` allows WebAssembly compilation without allowing JS `eval`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
worker-src 'self'; connect-src 'self'; img-src 'self' data: blob:; style-src 'self'; font-src 'self'; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Thumbnails change only when a gallery is republished; a week keeps revisits fast without pinning them forever.
pub const THUMB_CACHE: &str = "public, max-age=604800";
/// Everything else is revalidated on each use (a cheap 304 thanks to ETag / Last-Modified), so a
/// republished model or gallery is picked up at once.
pub const REVALIDATE: &str = "no-cache";

pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Cross-origin isolation: the page loads nothing from other origins anyway, and isolation gives workers
    // fine-grained timers (and SharedArrayBuffer, for threaded wasm later).
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-embedder-policy", HeaderValue::from_static("require-corp"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    res
}

pub async fn cache_control(req: Request, next: Next) -> Response {
    let is_thumb = req.uri().path().starts_with("/gallery/thumbs/");
    let is_api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    if !res.headers().contains_key(header::CACHE_CONTROL) {
        let policy = match (is_api, is_thumb && res.status().is_success()) {
            (true, _) => "no-store",
            (false, true) => THUMB_CACHE,
            (false, false) => REVALIDATE,
        };
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    res
}

/// Dot-files and dot-folders (`.git`, `.env`, editor swap files) are never served.
pub async fn reject_hidden_paths(req: Request, next: Next) -> Response {
    let hidden = req.uri().path().split('/').any(|seg| {
        let seg = seg.to_ascii_lowercase();
        // `%2e` is an encoded dot: refuse it too rather than decode and re-check.
        (seg.starts_with('.') || seg.starts_with("%2e")) && seg != ".well-known"
    });
    if hidden {
        return (StatusCode::NOT_FOUND, "404 not found\n").into_response();
    }
    next.run(req).await
}

/// A weak ETag from the file's size and modification time (ServeDir sends Last-Modified but no ETag),
/// answering `If-None-Match` with 304.
pub async fn etag(req: Request, next: Next) -> Response {
    let conditional = matches!(*req.method(), Method::GET | Method::HEAD)
        .then(|| req.headers().get(header::IF_NONE_MATCH).cloned())
        .flatten();
    let res = next.run(req).await;
    if res.status() != StatusCode::OK {
        return res;
    }
    let Some(tag) = weak_etag(&res) else { return res };
    if let Some(want) = conditional {
        let matches = want
            .to_str()
            .map(|w| w.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
            .unwrap_or(false);
        if matches {
            let mut not_modified = Response::new(Body::empty());
            *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
            let h = not_modified.headers_mut();
            h.insert(header::ETAG, HeaderValue::from_str(&tag).expect("ascii etag"));
            if let Some(lm) = res.headers().get(header::LAST_MODIFIED) {
                h.insert(header::LAST_MODIFIED, lm.clone());
            }
            return not_modified;
        }
    }
    let mut res = res;
    res.headers_mut().insert(header::ETAG, HeaderValue::from_str(&tag).expect("ascii etag"));
    res
}

fn weak_etag(res: &Response) -> Option<String> {
    let len: u64 = res.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()?;
    let modified = httpdate::parse_http_date(res.headers().get(header::LAST_MODIFIED)?.to_str().ok()?).ok()?;
    let secs = modified.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(format!("W/\"{len:x}-{secs:x}\""))
}
