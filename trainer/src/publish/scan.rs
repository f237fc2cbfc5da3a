//! Listing an image folder for `publish` without being led anywhere: symbolic links are followed only while
//! they stay inside the folder (`walkdir` refuses loops such as `loop -> .`), a file reached twice (through a
//! link) is published once, a subfolder that cannot be read is skipped, and every skip has its reason. What
//! is listed is only named here; [`crate::image_file`] decides what may be read.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// File name extensions `publish` looks at when it lists a folder (any other file is ignored, not skipped).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif"];

/// What a folder holds for `publish`.
#[derive(Debug, Default)]
pub struct Listing {
    /// Image files, relative to the folder with `/` separators, sorted.
    pub files: Vec<String>,
    /// What is not listed, and why.
    pub skipped: Vec<super::Skip>,
}

fn has_image_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// `path` relative to `root`, `/`-separated (the gallery's `file`).
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).to_string_lossy().replace('\\', "/")
}

/// The image files under `root` (recursively), and what was left out and why.
pub fn list_images(root: &Path) -> Result<Listing> {
    let root_real = std::fs::canonicalize(root).with_context(|| format!("cannot read image folder {}", root.display()))?;
    let skipped = RefCell::new(Vec::new());
    // A link is followed only to a place inside the folder (anything else could be `/`, `/dev` or the parent).
    let stays_inside = |e: &walkdir::DirEntry| {
        if e.depth() == 0 || !e.path_is_symlink() {
            return true;
        }
        match link_leaves(&root_real, e.path()) {
            None => true,
            Some(why) => {
                skipped.borrow_mut().push((relative(root, e.path()), why));
                false
            }
        }
    };
    // (relative path, real path) of every image file reached
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(true).sort_by_file_name().into_iter().filter_entry(stays_inside) {
        match entry {
            Err(e) => {
                let path = e.path().map(|p| relative(root, p)).unwrap_or_default();
                // walkdir reports some links before the filter sees them: say where they lead first
                let why = match (e.path().and_then(|p| link_leaves(&root_real, p)), e.loop_ancestor(), e.io_error()) {
                    (Some(why), _, _) => why,
                    (None, Some(ancestor), _) => {
                        let back_to = relative(root, ancestor);
                        let back_to = if back_to.is_empty() { "the image folder itself".to_string() } else { back_to };
                        format!("symbolic link loop (back to {back_to}): not followed")
                    }
                    (None, None, Some(io)) => format!("cannot read: {io}"),
                    (None, None, None) => e.to_string(),
                };
                skipped.borrow_mut().push((path, why));
            }
            Ok(e) if e.file_type().is_dir() || !has_image_extension(e.path()) => {}
            Ok(e) => {
                let real = std::fs::canonicalize(e.path()).unwrap_or_else(|_| e.path().to_path_buf());
                found.push((relative(root, e.path()), real));
            }
        }
    }
    // A file reached by several paths is published once, under its own path when that is one of them.
    let mut by_real: HashMap<&Path, Vec<&str>> = HashMap::new();
    for (rel, real) in &found {
        by_real.entry(real.as_path()).or_default().push(rel);
    }
    let mut listing = Listing::default();
    for (rel, real) in &found {
        let paths = &by_real[real.as_path()];
        let own = real.strip_prefix(&root_real).ok().map(|p| p.to_string_lossy().replace('\\', "/"));
        let keep = own.as_deref().filter(|o| paths.contains(o)).unwrap_or(paths[0]);
        if keep == rel {
            listing.files.push(rel.clone());
        } else {
            skipped.borrow_mut().push((rel.clone(), format!("same file as {keep} (reached through a symbolic link): published once")));
        }
    }
    listing.files.sort();
    listing.skipped = skipped.into_inner();
    Ok(listing)
}

/// Why the symbolic link `path` is not followed when it leads out of the folder or nowhere (`None`: it is
/// not a link, or it stays inside `root_real`).
fn link_leaves(root_real: &Path, path: &Path) -> Option<String> {
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return None;
    }
    match std::fs::canonicalize(path) {
        Ok(target) if target.starts_with(root_real) => None,
        Ok(target) => Some(format!("symbolic link to {}, outside the image folder: not followed", target.display())),
        Err(err) => Some(format!("broken symbolic link ({err})")),
    }
}

/// `root/rel` if it stays inside `root` once links are resolved (a captions file may name `../x.jpg`).
pub fn resolve_inside(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let root_real = std::fs::canonicalize(root).map_err(|e| format!("cannot read the image folder: {e}"))?;
    let path = root.join(rel);
    let real = std::fs::canonicalize(&path).map_err(|e| format!("cannot open: {e}"))?;
    if !real.starts_with(&root_real) {
        return Err(format!("{} is outside the image folder: not read", real.display()));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn links_stay_inside_and_each_file_is_listed_once() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("photos");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        for f in ["a.jpg", "sub/b.PNG", "sub/deeper/c.webp", "notes.txt"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        std::fs::write(tmp.path().join("outside.jpg"), b"x").unwrap();
        symlink("..", root.join("sub/up")).unwrap(); // back to the folder itself: a loop
        symlink(".", root.join("loop")).unwrap();
        symlink("..", root.join("parent")).unwrap(); // outside
        symlink("sub", root.join("alias")).unwrap(); // inside: its files are the same files
        symlink(tmp.path().join("outside.jpg"), root.join("out.jpg")).unwrap();
        symlink("gone.jpg", root.join("dangling.jpg")).unwrap();
        let l = list_images(&root).unwrap();
        assert_eq!(l.files, ["a.jpg", "sub/b.PNG", "sub/deeper/c.webp"]);
        let why = |p: &str| l.skipped.iter().find(|(f, _)| f == p).map(|(_, w)| w.as_str()).unwrap_or("");
        assert!(why("loop").contains("loop"), "{:?}", l.skipped);
        assert!(why("sub/up").contains("loop"), "{:?}", l.skipped);
        assert!(why("parent").contains("outside the image folder"), "{:?}", l.skipped);
        assert!(why("out.jpg").contains("outside the image folder"), "{:?}", l.skipped);
        assert!(why("dangling.jpg").contains("broken symbolic link"), "{:?}", l.skipped);
        assert!(why("alias/b.PNG").contains("same file as sub/b.PNG"), "{:?}", l.skipped);
        assert!(resolve_inside(&root, "../outside.jpg").unwrap_err().contains("outside the image folder"));
        assert!(resolve_inside(&root, "alias/b.PNG").is_ok());
        assert!(list_images(&tmp.path().join("none")).unwrap_err().to_string().contains("cannot read image folder"));
    }
}
