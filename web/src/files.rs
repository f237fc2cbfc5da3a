//! Which files may be served, and how `Range` requests are read — checks in front of tower-http's ServeDir.
//!
//! **Symlinks.** ServeDir refuses `..` but follows symlinks, so a link inside the folder could expose any file
//! the server can read. The rule: a request is served only when the file it resolves to (every symlink
//! followed) lies inside a *served root*. The served roots are the static folder itself and the targets of the
//! symlinks directly in it — its top-level entries are how a site is assembled (scripts/test-e2e.sh links
//! `index.html`, `pkg/` and `model/` into its folder, and a second folder links to the first one's links), so
//! the operator chose them. Deeper links must stay inside a root: `gallery/thumbs/x.jpg -> /etc/passwd` or
//! `model/leak -> ~/.ssh` is a 404.
//!
//! **Ranges.** ServeDir answers several ranges, or a malformed `Range` header, with 416. RFC 9110 §14.2 lets a
//! server ignore `Range`, and clients (media players, download managers) expect the whole file then; 416 is
//! for a valid range outside the file. So only one well-formed byte range reaches ServeDir.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use percent_encoding::percent_decode;

/// The folders (and files) requests may resolve into.
pub struct ServedRoots {
    static_dir: PathBuf,
    /// Canonical paths; recomputed when a request resolves outside them (the folder may be re-linked while
    /// the server runs, as test-e2e.sh does between runs).
    roots: RwLock<Vec<PathBuf>>,
}

impl ServedRoots {
    pub fn new(static_dir: &Path) -> Self {
        Self { static_dir: static_dir.into(), roots: RwLock::new(served_roots(static_dir)) }
    }

    fn contains(&self, path: &Path) -> bool {
        let inside = |roots: &[PathBuf]| roots.iter().any(|r| path.starts_with(r));
        if inside(&self.roots.read().unwrap_or_else(|p| p.into_inner())) {
            return true;
        }
        let fresh = served_roots(&self.static_dir);
        let ok = inside(&fresh);
        *self.roots.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        ok
    }
}

/// The static folder and the targets of the symlinks directly in it, canonicalised.
fn served_roots(static_dir: &Path) -> Vec<PathBuf> {
    let Ok(base) = std::fs::canonicalize(static_dir) else { return Vec::new() };
    let mut roots = vec![base];
    if let Ok(entries) = std::fs::read_dir(static_dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                if let Ok(target) = std::fs::canonicalize(entry.path()) {
                    roots.push(target);
                }
            }
        }
    }
    roots
}

/// The file ServeDir would open for `uri_path` (the same decoding and checks), or `None` where ServeDir
/// itself answers 404.
pub(crate) fn file_for(static_dir: &Path, uri_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(uri_path.trim_start_matches('/').as_bytes()).decode_utf8().ok()?;
    let mut path = static_dir.to_path_buf();
    for component in Path::new(&*decoded).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(path)
}

/// Whether the file for `uri_path` resolves inside a served root (a missing file passes: ServeDir answers 404).
fn allowed(roots: &ServedRoots, uri_path: &str) -> bool {
    let Some(path) = file_for(&roots.static_dir, uri_path) else { return true };
    let Ok(real) = std::fs::canonicalize(&path) else { return true };
    if !roots.contains(&real) {
        return false;
    }
    // ServeDir serves `index.html` for a folder: it may be a link too.
    if real.is_dir() {
        if let Ok(index) = std::fs::canonicalize(real.join("index.html")) {
            return roots.contains(&index);
        }
    }
    true
}

/// Answers 404 for a path that resolves outside the served roots (see the module comment).
pub async fn refuse_escaping_symlinks(State(roots): State<Arc<ServedRoots>>, req: Request, next: Next) -> Response {
    let uri_path = req.uri().path().to_owned();
    let roots2 = roots.clone();
    // canonicalize is a few syscalls per path component: blocking work.
    let ok = tokio::task::spawn_blocking(move || allowed(&roots2, &uri_path)).await.unwrap_or(false);
    if !ok {
        tracing::debug!(path = %req.uri().path(), "refused: resolves through a symlink out of the served folders");
        return (StatusCode::NOT_FOUND, "404 not found\n").into_response();
    }
    next.run(req).await
}

/// Drops a `Range` header that is not exactly one well-formed byte range, so ServeDir sends the whole file.
pub async fn ignore_unusable_ranges(mut req: Request, next: Next) -> Response {
    let usable = req.headers().get(header::RANGE).map(|v| v.to_str().is_ok_and(is_single_byte_range));
    if usable == Some(false) {
        req.headers_mut().remove(header::RANGE);
    }
    next.run(req).await
}

/// `bytes=A-B` (A ≤ B), `bytes=A-` or `bytes=-N`, decimal, nothing else (RFC 9110 §14.1.2).
fn is_single_byte_range(value: &str) -> bool {
    let Some(spec) = value.strip_prefix("bytes=") else { return false };
    let Some((first, last)) = spec.split_once('-') else { return false };
    // 19 digits always fit a u64, and no file is larger.
    let number = |s: &str| (1..=19).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit());
    match (first, last) {
        ("", n) => number(n),
        (a, "") => number(a),
        (a, b) => number(a) && number(b) && a.parse::<u64>().ok() <= b.parse::<u64>().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_byte_range_and_nothing_else() {
        for ok in ["bytes=0-0", "bytes=0-99", "bytes=5-", "bytes=-5", "bytes=7-7", "bytes=0-9999999999999999999"] {
            assert!(is_single_byte_range(ok), "{ok}");
        }
        for bad in [
            "bytes=0-1,5-6", "bytes=5-2", "bytes=", "bytes=-", "bytes=--1", "bytes=a-b", "items=0-1", "bytes= 0-1",
            "bytes=0-99999999999999999999", "Bytes=0-1", "bytes=1-2-3", "bytes=+1-2",
        ] {
            assert!(!is_single_byte_range(bad), "{bad}");
        }
    }

    #[test]
    fn decodes_paths_like_serve_dir() {
        let base = Path::new("/srv/static");
        assert_eq!(file_for(base, "/pkg/a%20b.js"), Some(base.join("pkg/a b.js")));
        assert_eq!(file_for(base, "//gallery/./x.jpg"), Some(base.join("gallery/x.jpg")));
        assert_eq!(file_for(base, "/pkg/%2e%2e/x"), None);
        assert_eq!(file_for(base, "/a/../x"), None);
        assert_eq!(file_for(base, "/%ff"), None);
    }
}
