//! scripts/pg.sh: start is idempotent and keeps its port, status tells running from stopped, bad arguments are
//! refused, and the foreground mode shuts the server down cleanly on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use db::local::{source_tree_script, test_scratch_dir, LocalInstance};

fn pg(args: &[&str]) -> std::process::Output {
    Command::new(source_tree_script()).args(args).output().expect("run scripts/pg.sh")
}

#[test]
fn start_status_stop() {
    let Some(db) = LocalInstance::for_test("start_status_stop") else { return };
    let dir = db.pg.dir().to_str().unwrap();
    let again = pg(&["start", "--dir", dir]);
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), db.pg.url(), "a second start prints the same URL");
    let status = pg(&["status", "--dir", dir]);
    assert!(status.status.success() && String::from_utf8_lossy(&status.stdout).contains(db.pg.url()));
    let other_port = pg(&["start", "--dir", dir, "--port", &(db.pg.port() + 1).to_string()]);
    assert!(!other_port.status.success() && String::from_utf8_lossy(&other_port.stderr).contains("already running"));

    db.pg.stop().unwrap();
    assert_eq!(pg(&["status", "--dir", dir]).status.code(), Some(3));
    assert_eq!(pg(&["url", "--dir", dir]).status.code(), Some(3));
    db.pg.start_again().unwrap();
    assert_eq!(String::from_utf8_lossy(&pg(&["url", "--dir", dir]).stdout).trim(), db.pg.url(), "same port after a restart");
}

#[test]
fn bad_arguments_are_refused() {
    let bad_port = pg(&["start", "--port", "http"]);
    assert_eq!(bad_port.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_port.stderr).contains("--port must be a TCP port"));
    let unknown = pg(&["frobnicate"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown command frobnicate"));
}

/// `start --foreground` prints the URL, serves, and on Ctrl-C (SIGINT to its process group, as a terminal
/// sends it) stops the server and exits 0.
#[test]
fn foreground_mode_stops_cleanly_on_ctrl_c() {
    let scratch = test_scratch_dir();
    let dir = scratch.path().join("pg");
    let mut command = Command::new(source_tree_script());
    command
        .args(["start", "--foreground", "--dir", dir.to_str().unwrap()])
        .env("IMGPICK_PG_FAST", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // A shell keeps ignoring a signal that was ignored when it started (its trap is silently not set): a test run
    // started in the background without job control (as CI may) ignores SIGINT, and pg.sh never saw the Ctrl-C.
    // A terminal's Ctrl-C reaches a shell with the default action, so the child gets that.
    // SAFETY: only async-signal-safe calls (signal(2)) between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    // Its stderr (the server's log while attached) is drained all along, so a full pipe can never block it, and
    // shown if it does not stop.
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut err = String::new();
        std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut err).ok();
        err
    });
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut url).unwrap();
    if url.is_empty() {
        let status = child.wait().unwrap();
        let err = log.join().unwrap();
        if status.code() == Some(4) {
            println!("foreground_mode_stops_cleanly_on_ctrl_c: skipped: {}", err.trim());
            return;
        }
        panic!("pg.sh start --foreground printed no URL ({status}): {err}");
    }
    assert!(url.starts_with("postgres://imgpick:"), "{url}");
    let status = pg(&["status", "--dir", dir.to_str().unwrap()]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));

    // SAFETY: kill(2) on the child's own process group.
    assert_eq!(unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) }, 0);
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(180) {
            // SAFETY: kill(2) on the child's own process group.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = pg(&["stop", "--dir", dir.to_str().unwrap()]);
            panic!("pg.sh did not stop within 180 s of SIGINT; its stderr:\n{}", log.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "{exit}");
    assert_eq!(pg(&["status", "--dir", dir.to_str().unwrap()]).status.code(), Some(3), "the server is stopped");
}
