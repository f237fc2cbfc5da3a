//! Shared helpers for imgpick's cross-crate tests (the tests themselves live in tests/tests/).

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Flickr8k folder (`IMGPICK_FLICKR8K`, else `../shared/data/flickr8k` beside the repo), or `None`
/// with a message on stderr saying why the calling test is skipped.
pub fn flickr8k_or_skip(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("IMGPICK_FLICKR8K")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/data/flickr8k"));
    if dir.join("captions_val.json").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIPPED {test}: Flickr8k not found at {} (set IMGPICK_FLICKR8K)", dir.display());
        None
    }
}
