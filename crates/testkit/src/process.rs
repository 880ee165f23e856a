//! Helpers for tests that drive the `cloudsync` CLI as child processes
//! (`trust_processes.rs`): every child has its own deadline (polled with
//! `try_wait`, killed on timeout, the test fails), and its output goes to
//! files, so no pipe can fill up and stall it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use crate::cloudsync_exe;
/// Deadline of a short CLI command (init, install, status, ...).
pub const SHORT: Duration = Duration::from_secs(30);
/// Deadline of a `run` child.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What a finished child printed.
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A spawned child whose stdout/stderr go to files.
pub struct Proc {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    what: String,
}

impl Proc {
    pub fn spawn(mut cmd: Command, dir: &Path, what: &str) -> Proc {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let out = dir.join(format!("child{n}.out"));
        let err = dir.join(format!("child{n}.err"));
        let child = cmd
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Proc {
            child,
            out,
            err,
            what: what.to_string(),
        }
    }

    pub fn read(&self, status: ExitStatus) -> Out {
        Out {
            status,
            stdout: std::fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.err).unwrap_or_default(),
        }
    }

    /// The child's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(output)` if it has exited.
    pub fn poll(&mut self) -> Option<Out> {
        let st = self.child.try_wait().unwrap()?;
        Some(self.read(st))
    }

    /// Waits up to `limit`; kills the child and fails the test on timeout.
    pub fn wait(mut self, limit: Duration) -> Out {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(o) = self.poll() {
                return o;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let st = self.child.wait().unwrap();
                let o = self.read(st);
                panic!(
                    "{} did not finish within {limit:?}; killed\n{o:?}",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A failing assertion must not leave a runner behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `cloudsync --db DB args...`, run to completion under [`SHORT`].
///
/// Anchored in `root.json` beside the database when that file exists
/// (`CLOUDSYNC_ROOT`, as an emulator harness exports the firmware root).
pub fn cli(dir: &Path, db: &Path, args: &[&str]) -> Out {
    let mut c = Command::new(cloudsync_exe());
    anchor(&mut c, db);
    c.args(["--db", s(db)]).args(args);
    Proc::spawn(c, dir, &format!("cloudsync {}", args.join(" "))).wait(SHORT)
}

/// Sets `CLOUDSYNC_ROOT` to `root.json` beside `db`, if there is one.
pub fn anchor(c: &mut Command, db: &Path) {
    let root = db.with_file_name("root.json");
    if root.exists() {
        c.env("CLOUDSYNC_ROOT", root);
    }
}

/// `cloudsync args...` without `--db`.
pub fn cli_nodb(dir: &Path, args: &[&str]) -> Out {
    let mut c = Command::new(cloudsync_exe());
    c.args(args);
    Proc::spawn(c, dir, &format!("cloudsync {}", args.join(" "))).wait(SHORT)
}

pub fn ok(o: Out) -> Out {
    assert_eq!(o.code(), Some(0), "{o:?}");
    o
}

/// Exit 1 with `error: <kind>: ` on stderr.
pub fn fails_with(o: &Out, kind: &str) {
    assert_eq!(o.code(), Some(1), "expected {kind}: {o:?}");
    assert!(
        o.stderr.starts_with(&format!("error: {kind}: ")),
        "expected {kind}: {o:?}"
    );
}

pub fn json(o: &Out) -> serde_json::Value {
    assert_eq!(o.code(), Some(0), "{o:?}");
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {o:?}"))
}

pub fn status(dir: &Path, db: &Path) -> serde_json::Value {
    json(&cli(dir, db, &["status", "--json"]))
}

pub fn list(dir: &Path, db: &Path, state: &str) -> Vec<serde_json::Value> {
    json(&cli(dir, db, &["list", "--json", "--state", state]))
        .as_array()
        .expect("list --json is an array")
        .clone()
}

pub fn count(v: &serde_json::Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}
