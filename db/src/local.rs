//! A local PostgreSQL + pgvector instance run through `scripts/pg.sh` (the one place that knows how to install,
//! start and stop the engine, including as root): for tests, benchmarks and a "start one for me" CLI switch.
//! [`LocalInstance::for_test`] is the one throwaway instance every crate's database tests start.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The engine is not installed (pg.sh exit code 4): `scripts/setup.sh` installs it.
    #[error("{0}")]
    NotInstalled(String),
    #[error("{0}")]
    Failed(String),
}

/// A running instance; stopped when dropped (its folder is the caller's to remove).
#[derive(Debug)]
pub struct LocalInstance {
    script: PathBuf,
    dir: PathBuf,
    url: String,
    port: u16,
    fast: bool,
}

impl LocalInstance {
    /// `pg.sh start --dir DIR [--port PORT]`. `fast` turns fsync off (throwaway test instances). As root, the
    /// server runs as `imgpick-pg`, which must be able to enter `dir`'s parent folders.
    pub fn start(script: &Path, dir: &Path, port: Option<u16>, fast: bool) -> Result<Self, LocalError> {
        let url = run_start(script, dir, port, fast)?;
        let port = port_of(&url).ok_or_else(|| LocalError::Failed(format!("pg.sh printed {url:?}, not a postgres:// URL")))?;
        Ok(Self { script: script.to_path_buf(), dir: dir.to_path_buf(), url, port, fast })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the server (fast shutdown: open connections are closed).
    pub fn stop(&self) -> Result<(), LocalError> {
        let out = Command::new(&self.script)
            .args(["stop", "--dir"])
            .arg(&self.dir)
            .output()
            .map_err(|e| LocalError::Failed(format!("cannot run {}: {e}", self.script.display())))?;
        if !out.status.success() {
            return Err(LocalError::Failed(format!("pg.sh stop failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        Ok(())
    }

    /// Starts the stopped server again, on the same port (same URL).
    pub fn start_again(&self) -> Result<(), LocalError> {
        run_start(&self.script, &self.dir, Some(self.port), self.fast).map(|_| ())
    }
}

/// A throwaway instance of a test's own, in a scratch folder; fields drop in order: the server stops before its
/// folder is removed.
#[derive(Debug)]
pub struct TestInstance {
    pub pg: LocalInstance,
    _scratch: TempDir,
}

impl LocalInstance {
    /// A fresh instance for `test` (fsync off, free port, scratch folder removed on drop), started with this source
    /// tree's `scripts/pg.sh`; or `None`, after printing "`test`: skipped: why", when the engine is not installed
    /// (`scripts/setup.sh` installs it). Any other failure panics: a test must not pass without its database.
    pub fn for_test(test: &str) -> Option<TestInstance> {
        let scratch = test_scratch_dir();
        match Self::start(&source_tree_script(), &scratch.path().join("pg"), None, true) {
            Ok(pg) => Some(TestInstance { pg, _scratch: scratch }),
            Err(LocalError::NotInstalled(why)) => {
                println!("{test}: skipped: {why}");
                None
            }
            Err(e) => panic!("{test}: cannot start a local PostgreSQL: {e}"),
        }
    }
}

/// `scripts/pg.sh` of the source tree this crate was built from (tests only: an installed binary has no tree).
pub fn source_tree_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg.sh")
}

/// A scratch folder (removed on drop) for a test's instance: as root the server runs as `imgpick-pg`, which must
/// be able to enter it, and tempfile creates it 0700, so it is opened to 0755.
pub fn test_scratch_dir() -> TempDir {
    let scratch = tempfile::Builder::new().prefix("imgpick-db-test-").tempdir().expect("a scratch folder for a test database");
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod 755 the test database's scratch folder");
    scratch
}

impl Drop for LocalInstance {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("{e}");
        }
    }
}

fn run_start(script: &Path, dir: &Path, port: Option<u16>, fast: bool) -> Result<String, LocalError> {
    let mut cmd = Command::new(script);
    cmd.args(["start", "--dir"]).arg(dir);
    if let Some(p) = port {
        cmd.args(["--port", &p.to_string()]);
    }
    if fast {
        cmd.env("IMGPICK_PG_FAST", "1");
    }
    let out = cmd.output().map_err(|e| LocalError::Failed(format!("cannot run {}: {e}", script.display())))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match out.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Some(4) => Err(LocalError::NotInstalled(stderr)),
        _ => Err(LocalError::Failed(format!("pg.sh start failed: {stderr}"))),
    }
}

/// The port of `postgres://user:pw@host:PORT/db`.
fn port_of(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("postgres://")?;
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, hp)| hp).split('/').next()?;
    host_port.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_port_of_a_url() {
        assert_eq!(super::port_of("postgres://imgpick:pw@127.0.0.1:43387/imgpick"), Some(43387));
        assert_eq!(super::port_of("postgres://127.0.0.1:5/x"), Some(5));
        assert_eq!(super::port_of("mysql://x"), None);
    }
}
