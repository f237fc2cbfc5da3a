//! Shared helpers for imgpick's cross-crate tests (the tests themselves live in tests/tests/).

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where Flickr8k is expected: `IMGPICK_FLICKR8K`, else `../shared/data/flickr8k` beside the repo (the trainer's
/// one definition; scripts/test.sh checks the same place to decide whether the Flickr8k tests run).
pub use trainer::data::flickr8k_location;

/// The Flickr8k folder for a test that needs it. Such tests are `#[ignore = "needs Flickr8k …"]` with
/// `flickr8k` in their name: scripts/test.sh runs them (`--ignored flickr8k`) only when the data is there
/// and prints them as skipped otherwise, so reaching this without the data is a setup error, not a skip.
pub fn flickr8k_dir() -> PathBuf {
    let dir = flickr8k_location();
    assert!(
        dir.join("captions_val.json").is_file(),
        "this test needs Flickr8k, and {} has no captions_val.json: set IMGPICK_FLICKR8K to the folder \
         (scripts/test.sh skips the Flickr8k tests when the data is absent)",
        dir.display()
    );
    dir
}
