//! Reloading the search engine when the model or gallery is republished, without a restart (issue #16: the API
//! kept answering from the old gallery, whose thumbnails 404, until restart).
//!
//! A [`Reloader`] looks at a few files' size, mtime and inode (`stat` only, cheap enough to do every two
//! seconds); when they change it waits until they stay the same for one more look (a publish writes several
//! files), loads a new engine beside the old one and swaps it in whole. A gallery that does not load (cut short,
//! index and vectors from different publishes, thumbnails missing) is never served: the old engine keeps
//! answering, the reason is logged, and the next change is tried again. SIGHUP (see `main.rs`) reloads at once.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, RwLock};
use std::time::Duration;

use crate::api::Searcher;

/// An engine, or why there is none.
pub type Current = Result<Arc<dyn Searcher>, Arc<str>>;

/// The engine `/api/search` answers from, or why there is none; replaced whole, so a request sees either the
/// old engine or the new one.
#[derive(Clone)]
pub struct SharedSearcher(Arc<RwLock<Current>>);

impl SharedSearcher {
    pub fn new(searcher: Result<Arc<dyn Searcher>, String>) -> Self {
        Self(Arc::new(RwLock::new(searcher.map_err(Arc::from))))
    }

    pub fn get(&self) -> Current {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, searcher: Current) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = searcher;
    }
}

/// Files whose change means "republished", relative to the static folder. `thumbs/` is a folder: its mtime
/// changes when thumbnails are added or removed.
const WATCHED: [&str; 4] = ["model/manifest.json", "gallery/gallery.json", "gallery/gallery.bin", "gallery/thumbs"];

/// What one file looked like: size, modification time and inode (a rename-into-place changes the inode even
/// when size and mtime happen to match). `None`: missing.
type Stamp = Option<(u64, std::time::SystemTime, u64)>;

fn stamps(static_dir: &Path) -> Vec<Stamp> {
    WATCHED
        .iter()
        .map(|f| {
            let m = std::fs::metadata(static_dir.join(f)).ok()?;
            #[cfg(unix)]
            let inode = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let inode = 0;
            Some((m.len(), m.modified().ok()?, inode))
        })
        .collect()
}

/// What one look at the files did.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// Same files as the last load (or the last failed try).
    Unchanged,
    /// The files changed since the last look; they are loaded once they stay the same for one more look.
    Settling,
    /// The new engine answers from now on.
    Reloaded { model_id: String },
    /// The new files did not load; the previous engine keeps answering.
    Kept { why: String },
}

type Loader = Box<dyn Fn(&Path) -> Result<Arc<dyn Searcher>, String> + Send>;

pub struct Reloader {
    static_dir: PathBuf,
    shared: SharedSearcher,
    load: Loader,
    /// The files as they were at the last load or try.
    loaded: Vec<Stamp>,
    /// The files as they were at the last look, when that differed from `loaded`.
    pending: Option<Vec<Stamp>>,
}

impl Reloader {
    /// Watches `static_dir`'s model and gallery, loading them with [`crate::engine::load`] into `shared`. The files
    /// as they are now count as loaded: build it just before the first load so no change falls in between.
    pub fn new(static_dir: &Path, shared: SharedSearcher) -> Self {
        Self::with_loader(static_dir, shared, Box::new(crate::engine::load))
    }

    pub fn with_loader(static_dir: &Path, shared: SharedSearcher, load: Loader) -> Self {
        Self { loaded: stamps(static_dir), static_dir: static_dir.into(), shared, load, pending: None }
    }

    /// One look at the files (a few `stat` calls); loads them when they changed and have settled.
    pub fn check(&mut self) -> Checked {
        let now = stamps(&self.static_dir);
        if now == self.loaded {
            self.pending = None;
            return Checked::Unchanged;
        }
        if self.pending.as_ref() != Some(&now) {
            self.pending = Some(now);
            return Checked::Settling;
        }
        self.reload()
    }

    /// Loads the files now (SIGHUP) and swaps the new engine in if they load.
    pub fn reload(&mut self) -> Checked {
        // Stamps from before the load: a change during the load is seen at the next look.
        self.loaded = stamps(&self.static_dir);
        self.pending = None;
        match (self.load)(&self.static_dir) {
            Ok(searcher) => {
                let model_id = searcher.model_id();
                self.shared.set(Ok(searcher));
                tracing::info!(%model_id, "/api/search answers from the model and gallery now in place");
                Checked::Reloaded { model_id }
            }
            Err(why) => {
                if self.shared.get().is_ok() {
                    tracing::warn!("the changed model or gallery does not load; still serving the previous one: {why}");
                } else {
                    tracing::warn!("/api/search disabled (a publish there is picked up): {why}");
                    self.shared.set(Err(Arc::from(why.as_str())));
                }
                Checked::Kept { why }
            }
        }
    }

    /// Runs on its own thread (loading is blocking work): looks every `every` (`None`: never) and reloads on
    /// [`Watcher::reload`]. Dropping the watcher stops the thread.
    pub fn spawn(mut self, every: Option<Duration>) -> Watcher {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("imgpick-reload".into())
            .spawn(move || loop {
                let signalled = match every {
                    Some(every) => rx.recv_timeout(every),
                    None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                };
                match signalled {
                    Ok(()) => {
                        self.reload();
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.check();
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            })
            .expect("cannot start the reload thread");
        Watcher(tx)
    }
}

/// The handle of a running [`Reloader`].
pub struct Watcher(mpsc::Sender<()>);

impl Watcher {
    /// Asks for a reload now (SIGHUP).
    pub fn reload(&self) {
        let _ = self.0.send(());
    }
}
