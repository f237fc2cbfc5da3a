//! Guards of the output folder: it may not overlap the image folder (publish would read its own thumbnails
//! as photos and delete the user's files), and one `publish` at a time writes it (an advisory lock on
//! `.publish.lock`, held until the process ends, so a killed run frees it).

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The lock file in the output folder (its content: the holder's process id).
pub const LOCK_FILE: &str = ".publish.lock";

/// `path` made absolute with links resolved, also when its last components do not exist yet (`--out` is often
/// new): the longest existing prefix is canonicalised and the rest appended.
fn resolved(path: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        match std::fs::canonicalize(existing) {
            Ok(real) => return Ok(rest.iter().rev().fold(real, |p, c| p.join(c))),
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => return Ok(absolute),
            },
        }
    }
}

/// Refuses an output folder that is the image folder, inside it or around it (after resolving links).
pub fn refuse_overlap(images: &Path, out: &Path) -> Result<()> {
    let (im, o) = (resolved(images)?, resolved(out)?);
    let inside = |a: &Path, b: &Path| a.starts_with(b);
    if inside(&o, &im) || inside(&im, &o) {
        let how = if im == o {
            "they are the same folder".to_string()
        } else if inside(&o, &im) {
            format!("{} is inside {}", o.display(), im.display())
        } else {
            format!("{} is inside {}", im.display(), o.display())
        };
        bail!(
            "--images {} and --out {} overlap ({how}): publishing would read its own thumbnails as photos and \
             could delete files of the image folder. Choose an --out outside the image folder (e.g. static/gallery)",
            images.display(),
            out.display()
        );
    }
    Ok(())
}

/// The held lock of an output folder; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct OutputLock {
    _file: std::fs::File,
}

impl OutputLock {
    /// Takes the lock of `out` (which must exist) without waiting: another holder is an error naming the lock
    /// file and the process that holds it.
    pub fn take(out: &Path) -> Result<OutputLock> {
        let path = out.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false) // the holder's pid stays readable for the one refused
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() { "an unknown process".to_string() } else { holder.to_string() };
                bail!(
                    "another `trainer publish` ({holder}) is writing {} (it holds the lock {}): wait for it to \
                     finish; two publishes into one folder would delete each other's thumbnails",
                    out.display(),
                    path.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
        let write_pid = |file: &mut std::fs::File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "pid {}", std::process::id())
        };
        write_pid(&mut file).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(OutputLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_found_through_links_and_missing_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let images = tmp.path().join("images");
        std::fs::create_dir(&images).unwrap();
        std::os::unix::fs::symlink(&images, tmp.path().join("link")).unwrap();
        for out in [images.clone(), images.join("new/gallery"), tmp.path().join("link/g"), tmp.path().to_path_buf()] {
            assert!(refuse_overlap(&images, &out).unwrap_err().to_string().contains("overlap"), "{}", out.display());
        }
        refuse_overlap(&images, &tmp.path().join("gallery")).unwrap();
        refuse_overlap(&images, &tmp.path().join("images2")).unwrap(); // a common prefix is not overlap
    }

    #[test]
    fn one_holder_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let first = OutputLock::take(tmp.path()).unwrap();
        let e = OutputLock::take(tmp.path()).unwrap_err().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())) && e.contains(LOCK_FILE), "{e}");
        drop(first);
        OutputLock::take(tmp.path()).unwrap();
    }
}
