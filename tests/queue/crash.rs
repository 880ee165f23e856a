//! Invariant N under real crashes: a process is SIGKILLed at random moments
//! while it writes to the queue, many times over, and after every kill the
//! database must be intact and must hold every item whose enqueue returned.
//!
//! How: this test binary re-executes itself. The `crash_child` test (ignored,
//! and a no-op unless the environment variable [`CHILD_DB`] is set) is the
//! child: it opens an `Agent`, then loops over batch and single enqueues,
//! removals, `retry_dead`, and runner-side queue operations (lease, claim,
//! offset, fail, complete) on a second connection. After every call that
//! *returned* it prints a line (one `write` + flush) on stdout:
//!
//! ```text
//! @@ok <id> <service> <path>      enqueue returned this id
//! @@removing <id>                 remove() is about to be called
//! @@removed <id>                  remove() returned
//! @@completing <id>               ops::complete is about to run
//! @@completed <id>                ops::complete committed
//! ```
//!
//! The parent kills the child with SIGKILL after a random 1–60 ms (counted
//! from spawn, from the child's `@@ready`, or from its first `@@ok`, in
//! turn), reads the lines
//! that were complete, and checks the database (see [`check_after_kill`]).
//! A removal or completion that was announced but not confirmed may have
//! happened or not; the parent accepts either and then pins down which, so
//! later rounds are checked strictly. The same database is used across all
//! rounds, so damage would accumulate and be seen.
//!
//! The seed is printed; `CLOUDSYNC_CRASH_SEED=<n>` replays a run's choices
//! (the kill moments still depend on timing).

use cloudsync_testkit::schema::root_v1;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cloudsync::queue::schema::CURRENT_VERSION;
use cloudsync::Agent;
use rusqlite::Connection;

mod check;
mod child;

use check::*;
use child::*;

/// Set in the child's environment: the database path.
const CHILD_DB: &str = "CLOUDSYNC_CRASH_CHILD_DB";
/// The directory with the source files.
const CHILD_FILES: &str = "CLOUDSYNC_CRASH_CHILD_FILES";
/// The child's RNG seed.
const CHILD_SEED: &str = "CLOUDSYNC_CRASH_CHILD_SEED";
/// Number of source files.
const FILES: usize = 60;
/// The child's runner lease; the parent checks it is honoured until it expires.
const CHILD_LEASE: Duration = Duration::from_secs(30);
/// How long a child may live if nobody kills it (it then fails loudly).
const CHILD_MAX_LIFE: Duration = Duration::from_secs(30);

#[test]
#[ignore = "child process of the crash tests in this file; a no-op unless they start it"]
fn crash_child() {
    let Ok(db) = std::env::var(CHILD_DB) else {
        return;
    };
    let files = PathBuf::from(std::env::var(CHILD_FILES).unwrap());
    let seed: u64 = std::env::var(CHILD_SEED).unwrap().parse().unwrap();
    child_main(Path::new(&db), &files, seed);
}

/// Kills and reaps the child if the parent panics before doing so.
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct ChildRun {
    lines: Vec<String>,
    reached_ready: bool,
}

/// When to start the kill timer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum From {
    /// At spawn: the kill may land in start-up or in the first open.
    Spawn,
    /// When the child has opened the database.
    Ready,
    /// When the child's first enqueue has returned.
    FirstOk,
}

/// Re-executes this test binary as the child. If the binary cannot be
/// executed directly (cross tests under qemu-user without binfmt), the
/// cargo runner from the environment runs it.
fn spawn_child(db: &Path, files: &Path, seed: u64) -> Child {
    let exe = std::env::current_exe().unwrap();
    let build = |runner: Option<&str>| {
        let mut c = match runner {
            Some(r) => {
                let mut parts = r.split_whitespace();
                let mut c = Command::new(parts.next().unwrap());
                c.args(parts).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        // The child test's full name in this grouped binary (`<module>::<fn>`).
        let name = concat!(module_path!(), "::crash_child");
        let name = name.split_once("::").map_or(name, |(_, rest)| rest);
        c.args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, db)
        .env(CHILD_FILES, files)
        .env(CHILD_SEED, seed.to_string())
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        c
    };
    match build(None).spawn() {
        Ok(c) => c,
        Err(e) if e.raw_os_error() == Some(8) => {
            // ENOEXEC: a foreign-architecture binary.
            let runner = std::env::vars()
                .find(|(k, _)| k.starts_with("CARGO_TARGET_") && k.ends_with("_RUNNER"))
                .map(|(_, v)| v)
                .unwrap_or_else(|| {
                    panic!("cannot execute the test binary ({e}) and no cargo runner is set")
                });
            build(Some(&runner))
                .spawn()
                .expect("spawn child via runner")
        }
        Err(e) => panic!("spawn child: {e}"),
    }
}

/// Starts the child, kills it `delay` after the moment `from`, reaps it,
/// and returns its complete `@@` lines.
fn run_child(db: &Path, files: &Path, seed: u64, delay: Duration, from: From) -> ChildRun {
    let child = spawn_child(db, files, seed);
    let mut reaper = Reaper(Some(child));
    let child = reaper.0.as_mut().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let out_thread = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                // An unterminated last line was cut by the kill: ignore it.
                Ok(_) if buf.last() != Some(&b'\n') => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    if let Some(i) = line.find("@@") {
                        if tx.send(line[i + 2..].to_string()).is_err() {
                            break;
                        }
                    }
                }
            }
        }
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let mut lines = Vec::new();
    if from != From::Spawn {
        // Generous: a loaded machine may be slow to start the child.
        let give_up = Instant::now() + Duration::from_secs(30);
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    let reached = match from {
                        From::Ready => l == "ready",
                        _ => l.starts_with("ok "),
                    };
                    lines.push(l);
                    if reached {
                        break;
                    }
                }
                // Exited early (its status is checked below) or hung: stop waiting.
                Err(_) => break,
            }
        }
    }
    std::thread::sleep(delay);
    child.kill().expect("kill child"); // SIGKILL on Unix
    let status = child.wait().expect("reap child");
    reaper.0 = None;
    out_thread.join().unwrap();
    let err = err_thread.join().unwrap();
    lines.extend(rx.try_iter());
    let reached_ready = lines.iter().any(|l| l == "ready");
    assert_eq!(
        status.signal(),
        Some(9),
        "the child must die by SIGKILL, not end by itself ({status}); its stderr:\n{err}"
    );
    ChildRun {
        lines,
        reached_ready,
    }
}

#[test]
fn sigkilled_writer_loses_nothing_and_doubles_nothing() {
    let seed = seed();
    eprintln!("crash test seed {seed} (replay with CLOUDSYNC_CRASH_SEED={seed})");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue.db");
    let files = dir.path().join("files");
    make_files(&files);
    drop(Agent::open(&db, &root_v1()).unwrap());

    let started = Instant::now();
    let mut model = Model::default();
    let (mut rounds, mut ready_rounds) = (0, 0);
    // At least 40 rounds; more while the time budget allows (about 10 s here).
    // No assertion on time: a loaded machine only makes it slower.
    while rounds < 40 || (rounds < 120 && started.elapsed() < Duration::from_secs(20)) {
        let delay = Duration::from_millis(1 + rng.below(60));
        // Mostly count from a point where the child is busy writing; every
        // third round from spawn, so start-up and open are hit too.
        let from = [From::Spawn, From::Ready, From::FirstOk][rounds % 3];
        let run = run_child(&db, &files, rng.next(), delay, from);
        ready_rounds += run.reached_ready as usize;
        model.apply(&run.lines);
        check_after_kill(&db, &mut model, rounds);
        rounds += 1;
    }
    eprintln!(
        "{rounds} kills in {:?} ({ready_rounds} after the child was ready): {} enqueues returned, \
         {} removes, {} completes, {} unconfirmed ops resolved, {} uploading items recovered, \
         {} live leases honoured; {} ids tracked",
        started.elapsed(),
        model.oks,
        model.removed,
        model.completed,
        model.unresolved_resolved,
        model.uploading_recovered,
        model.busy_seen,
        model.ids.len()
    );
    // Sanity: the kills really landed mid-work (both hold by construction
    // unless the child failed, which run_child reports itself).
    assert!(ready_rounds >= rounds * 2 / 3, "the child rarely got going");
    assert!(
        model.oks >= (rounds / 3) as u64,
        "too few enqueues returned before the kills"
    );
}

#[test]
fn sigkill_during_first_open_leaves_a_usable_database() {
    // Fresh database each time: the kill lands in creation, migrations, or
    // the first trust-row write (or before/after them).
    let seed = seed();
    eprintln!("first-open crash seed {seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    make_files(&files);
    let mut outcomes: HashMap<&str, u32> = HashMap::new();
    for round in 0..16 {
        let db = dir.path().join(format!("q{round}.db"));
        // Child start-up to `@@ready` takes a few ms: kill within that window
        // (µs steps), so rounds land before, inside and after the first open.
        let delay = Duration::from_micros(rng.below(12_000));
        let run = run_child(&db, &files, rng.next(), delay, From::Spawn);
        let outcome = if run.reached_ready {
            "after open"
        } else if !db.exists() {
            "before the file existed"
        } else {
            let c = Connection::open(&db).unwrap();
            let v: i64 = c
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            let trust = v >= 1 && count(&c, "SELECT count(*) FROM trust") == 1;
            if v < CURRENT_VERSION {
                "mid-migration"
            } else if !trust {
                "before the trust row"
            } else {
                "open done, not yet ready"
            }
        };
        *outcomes.entry(outcome).or_default() += 1;
        let mut model = Model::default();
        model.apply(&run.lines);
        check_after_kill(&db, &mut model, round);
        // Whatever state the kill left, the next open works and trusts the root.
        let agent = Agent::open(&db, &root_v1()).expect("open after a kill during first open");
        assert_eq!(agent.config_info().unwrap().root_version, 1);
        let c = Connection::open(&db).unwrap();
        assert_eq!(integrity(&c), "ok");
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, CURRENT_VERSION);
    }
    eprintln!("first-open kills landed: {outcomes:?}");
}
