//! Helpers for the tests that drive the `cloudsync` binary (`cli.rs`,
//! `cli_qa.rs`): every invocation runs under a time limit (killed, and the
//! test failed, after it), and `cloudsync dev-server` children are killed
//! when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one `cloudsync` invocation may take.
pub const STEP_LIMIT: Duration = Duration::from_secs(60);

pub fn bin() -> Command {
    let mut c = Command::new(crate::cloudsync_exe());
    c.env_remove("RUST_LOG");
    c
}

/// The firmware root each database was created with (`init --root`), as an
/// emulator harness would export it once in `CLOUDSYNC_ROOT`: every later
/// invocation on that `--db` runs anchored in it, unless the test passes a
/// `--root` of its own or uses [`run_unanchored`].
static ROOTS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

fn arg_after<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1).copied())
}

/// A `cloudsync` command for `args`, anchored as described at [`ROOTS`].
pub fn anchored(args: &[&str]) -> Command {
    let mut c = bin();
    let mut roots = ROOTS.lock().unwrap_or_else(|p| p.into_inner());
    if let (Some(db), Some(root)) = (arg_after(args, "--db"), arg_after(args, "--root")) {
        if args.contains(&"init") {
            roots.retain(|(d, _)| d != db);
            roots.push((db.to_string(), root.to_string()));
        }
    } else if let Some(db) = arg_after(args, "--db") {
        if let Some((_, root)) = roots.iter().find(|(d, _)| d == db) {
            c.env("CLOUDSYNC_ROOT", root);
        }
    }
    c.args(args);
    c
}

/// `cloudsync ARGS` without any firmware root (reads only).
pub fn run_unanchored(args: &[&str]) -> Output {
    spawn_within(bin_args(args), STEP_LIMIT)
}

fn bin_args(args: &[&str]) -> Command {
    let mut c = bin();
    c.args(args);
    c
}

/// `cloudsync ARGS` under [`STEP_LIMIT`].
pub fn run(args: &[&str]) -> Output {
    run_within(args, STEP_LIMIT)
}

pub fn golden(name: &str) -> PathBuf {
    crate::repo().join("tests/golden").join(name)
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `cloudsync ARGS`, killed (and the test failed) after `limit`.
/// Output goes to files, so a chatty child cannot fill a pipe and stall.
pub fn run_within(args: &[&str], limit: Duration) -> Output {
    spawn_within(anchored(args), limit)
}

/// Runs `cmd`, killed (and the test failed) after `limit`.
pub fn spawn_within(mut cmd: Command, limit: Duration) -> Output {
    let tmp = tempfile::tempdir().expect("temp dir for output");
    let (o, e) = (tmp.path().join("out"), tmp.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .expect("spawn cloudsync");
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran longer than {limit:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&o).unwrap(),
        stderr: std::fs::read(&e).unwrap(),
    }
}

/// `cloudsync sign --type TYPE --key KEY PAYLOAD` into `dir/rel`, the way
/// the dev server's docs say to publish: written aside, then renamed.
pub fn publish_signed(
    dir: &Path,
    rel: &str,
    doc_type: &str,
    key: &str,
    payload: &serde_json::Value,
) {
    let tmp = tempfile::tempdir().unwrap();
    let payload_path = tmp.path().join("payload.json");
    std::fs::write(&payload_path, serde_json::to_vec(payload).unwrap()).unwrap();
    let o = run_within(
        &["sign", "--type", doc_type, "--key", key, s(&payload_path)],
        STEP_LIMIT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let target = dir.join(rel);
    let aside = target.with_extension("tmp~");
    std::fs::write(&aside, &o.stdout).unwrap();
    std::fs::rename(&aside, &target).unwrap();
}

/// A `cloudsync dev-server` child, killed when dropped.
pub struct DevServer {
    child: Child,
    pub ready: serde_json::Value,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DevServer {
    /// Starts `cloudsync dev-server --dir DIR/data --ready-file DIR/ready.json ARGS`
    /// and waits (at most 30 s) for its ready file.
    pub fn start(dir: &Path, args: &[&str]) -> DevServer {
        DevServer::start_with_stderr(dir, args, Stdio::null())
    }

    /// [`DevServer::start`] with its stderr (the request log) going to `stderr`.
    pub fn start_with_stderr(dir: &Path, args: &[&str], stderr: impl Into<Stdio>) -> DevServer {
        let ready = dir.join("ready.json");
        let child = bin()
            .args(["dev-server", "--dir", s(&dir.join("data"))])
            .args(["--ready-file", s(&ready)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn dev-server");
        let mut server = DevServer {
            child,
            ready: serde_json::Value::Null,
        };
        let started = Instant::now();
        while !ready.exists() {
            if let Some(st) = server.child.try_wait().expect("wait") {
                panic!("dev-server exited before it was ready: {st:?}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "dev-server not ready after 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server.ready = serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
        server
    }

    /// A path the ready file names at its top level.
    pub fn path(&self, field: &str) -> String {
        self.ready[field]
            .as_str()
            .unwrap_or_else(|| panic!("no {field} in the ready file: {}", self.ready))
            .to_string()
    }

    /// Kills the servers (the next connection is refused).
    pub fn stop(self) {}
}

/// Writes a file only its owner can read (`--token-file` refuses any other).
pub fn write_private(path: &Path, content: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `cloudsync --db DB ARGS` → (exit code, stdout, stderr).
pub fn cli(db: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["--db", s(db)];
    all.extend_from_slice(args);
    let o = run(&all);
    (o.status.code(), out(&o), err(&o))
}

/// [`cli`] that must exit 0 (the test fails showing its output); its stdout.
pub fn ok(db: &Path, args: &[&str]) -> String {
    let (code, text, e) = cli(db, args);
    assert_eq!(code, Some(0), "{args:?}: {text}{e}");
    text
}
