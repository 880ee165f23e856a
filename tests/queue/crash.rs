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
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cloudsync::queue::ops::{self, now_ms, AuditRecord};
use cloudsync::queue::schema::CURRENT_VERSION;
use cloudsync::queue::{Db, RetryPolicy, State};
use cloudsync::{Agent, ErrorKind};
use rusqlite::Connection;

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

/// A small LCG (PCG constants): reproducible from a printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut r = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    if let Some(s) = std::env::var("CLOUDSYNC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b) >> 1
}

fn file_path(files: &Path, i: usize) -> PathBuf {
    files.join(format!("IMG_{i:03}.jpg"))
}

fn make_files(files: &Path) {
    std::fs::create_dir_all(files).unwrap();
    for i in 0..FILES {
        std::fs::write(file_path(files, i), vec![i as u8; 100 + i * 37]).unwrap();
    }
}

// ------------------------------------------------------------------ child

/// One line, one `write` call, flushed: a SIGKILL can cut at most the line
/// being written, and the parent drops an unterminated last line.
fn say(s: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes()).unwrap();
    out.flush().unwrap();
}

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

fn child_main(db: &Path, files: &Path, seed: u64) {
    // libtest may have printed "test crash_child ... " without a newline.
    say("\n@@start\n");
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let agent = Agent::open(db, &root_v1()).expect("child: Agent::open");
    let mut q = Db::open(db).expect("child: Db::open");
    say("@@ready\n");
    let owner = format!("child-{}", std::process::id());
    let policy = RetryPolicy {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(10),
        max_attempts: 3,
    };
    let services = ["backup", "photos"];
    let random_id = |q: &Db, states: &str| -> Option<i64> {
        q.conn()
            .query_row(
                &format!(
                    "SELECT id FROM items WHERE state IN ({states}) ORDER BY random() LIMIT 1"
                ),
                [],
                |r| r.get(0),
            )
            .ok()
    };
    while started.elapsed() < CHILD_MAX_LIFE {
        let svc = services[rng.below(2) as usize];
        match rng.below(100) {
            // A batch of 1..=20 files (repeats allowed: they dedupe to one id).
            0..=29 => {
                let n = 1 + rng.below(20) as usize;
                let paths: Vec<PathBuf> = (0..n)
                    .map(|_| file_path(files, rng.below(FILES as u64) as usize))
                    .collect();
                let ids = agent
                    .enqueue_all(&paths, svc, rng.below(3) as i32)
                    .expect("child: enqueue_all");
                assert_eq!(ids.len(), paths.len());
                let mut lines = String::new();
                for (id, p) in ids.iter().zip(&paths) {
                    lines.push_str(&format!("@@ok {id} {svc} {}\n", p.display()));
                }
                say(&lines);
            }
            30..=49 => {
                let p = file_path(files, rng.below(FILES as u64) as usize);
                let id = agent
                    .enqueue(&p, svc, rng.below(3) as i32)
                    .expect("child: enqueue");
                say(&format!("@@ok {id} {svc} {}\n", p.display()));
            }
            50..=57 => {
                if let Some(id) = random_id(&q, "'pending','uploading','failed','dead','held'") {
                    say(&format!("@@removing {id}\n"));
                    agent.remove(id).expect("child: remove");
                    say(&format!("@@removed {id}\n"));
                }
            }
            58..=61 => {
                agent.retry_dead().expect("child: retry_dead");
            }
            62..=64 => {
                // The source changes (size and mtime): the next enqueue refreshes the item.
                let i = rng.below(FILES as u64) as usize;
                let len = 50 + rng.below(5000) as usize;
                std::fs::write(file_path(files, i), vec![rng.below(256) as u8; len]).unwrap();
            }
            // Runner side, on the second connection, one transaction per step.
            _ => {
                q.write(|tx| ops::acquire_lease(tx, &owner, now_ms(), CHILD_LEASE))
                    .expect("child: acquire_lease (the parent released the last one)");
                let Some(id) = random_id(&q, "'pending','failed'") else {
                    continue;
                };
                // As a run does: stamp unstamped items for its region, then claim.
                q.write(|tx| {
                    ops::reconcile_regions(tx, "in", now_ms())?;
                    ops::claim(tx, id, "in", None, "r", now_ms())
                })
                .expect("child: claim");
                let offset = rng.below(10_000);
                q.write(|tx| ops::set_offset(tx, id, offset, now_ms()))
                    .expect("child: set_offset");
                match rng.below(6) {
                    0 => {
                        let permanent = rng.below(3) == 0;
                        q.write(|tx| {
                            ops::fail(tx, id, "network: test", permanent, None, &policy, now_ms())
                        })
                        .expect("child: fail");
                    }
                    1 => {
                        let row = ops::get(q.conn(), id).expect("child: get");
                        let rec = AuditRecord {
                            id: 0,
                            item_id: id,
                            service: row.service,
                            region: "in".into(),
                            host: "backup.in.example.net:443".into(),
                            peer_ip: Some("127.0.0.1".into()),
                            bytes: row.size,
                            sent_bytes: Some(row.size),
                            sha256: "ab".repeat(32),
                            finished_at: now_ms(),
                        };
                        say(&format!("@@completing {id}\n"));
                        let uploaded = ops::SourceMeta {
                            size: row.size,
                            mtime_ns: row.mtime_ns,
                        };
                        q.write(|tx| ops::complete(tx, &rec, uploaded))
                            .expect("child: complete");
                        say(&format!("@@completed {id}\n"));
                    }
                    2 => q
                        .write(|tx| ops::unclaim(tx, id, now_ms()))
                        .expect("child: unclaim"),
                    3 => q
                        .write(|tx| ops::release_lease(tx, &owner, now_ms()))
                        .expect("child: release"),
                    // Otherwise leave it `uploading`, as a runner killed mid-upload would.
                    _ => {}
                }
            }
        }
    }
    panic!("child: nobody killed me within {CHILD_MAX_LIFE:?}");
}

// ------------------------------------------------------------------ parent

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

/// What the parent knows about an id from the child's reports.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Enqueue returned it: must be in `items` (with this path and service).
    Present { path: String, service: String },
    /// remove() was called but not seen returning: present or gone.
    MaybeRemoved,
    /// remove() returned: gone for good.
    Removed,
    /// complete was called but not seen committing: in `items` or in `audit`.
    MaybeCompleted,
    /// complete committed: in `audit`, once.
    Completed,
}

#[derive(Default)]
struct Model {
    ids: HashMap<i64, Expect>,
    oks: u64,
    removed: u64,
    completed: u64,
    unresolved_resolved: u64,
    uploading_recovered: u64,
    busy_seen: u64,
}

impl Model {
    fn apply(&mut self, lines: &[String]) {
        for l in lines {
            let mut w = l.splitn(4, ' ');
            let verb = w.next().unwrap();
            let id = || -> i64 { l.split(' ').nth(1).unwrap().parse().unwrap() };
            match verb {
                "start" | "ready" => {}
                "ok" => {
                    let id: i64 = w.next().unwrap().parse().unwrap();
                    let service = w.next().unwrap().to_string();
                    let path = w.next().unwrap().to_string();
                    if let Some(prev @ (Expect::Removed | Expect::Completed)) = self.ids.get(&id) {
                        panic!(
                            "id {id} was returned again after it was {prev:?}: an id was reused"
                        );
                    }
                    self.oks += 1;
                    self.ids.insert(id, Expect::Present { path, service });
                }
                "removing" => {
                    self.ids.insert(id(), Expect::MaybeRemoved);
                }
                "removed" => {
                    self.removed += 1;
                    self.ids.insert(id(), Expect::Removed);
                }
                "completing" => {
                    self.ids.insert(id(), Expect::MaybeCompleted);
                }
                "completed" => {
                    self.completed += 1;
                    self.ids.insert(id(), Expect::Completed);
                }
                other => panic!("unexpected child line {other:?} in {l:?}"),
            }
        }
    }
}

fn integrity(c: &Connection) -> String {
    let mut st = c.prepare("PRAGMA integrity_check").unwrap();
    let rows = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
        .join("\n")
}

fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Everything a killed writer must leave behind. `round` is for messages.
fn check_after_kill(db: &Path, model: &mut Model, round: usize) {
    if !db.exists() {
        // Killed before the first open created the file: nothing was promised.
        assert!(model.ids.is_empty(), "round {round}: database file gone");
        return;
    }
    // 1. The file is a sound database (this open also recovers the WAL).
    let c = Connection::open(db).unwrap();
    assert_eq!(integrity(&c), "ok", "round {round}: integrity_check");
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(
        (0..=CURRENT_VERSION).contains(&version),
        "round {round}: user_version {version}"
    );
    if version < CURRENT_VERSION {
        // Killed inside the very first open: migrations commit whole, so the
        // next open finishes them. Nothing can have been enqueued yet.
        assert!(
            model.ids.is_empty(),
            "round {round}: items promised on a half-created database"
        );
        drop(c);
        drop(Agent::open(db, &root_v1()).expect("open finishes an interrupted migration"));
        let c = Connection::open(db).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, CURRENT_VERSION);
        assert_eq!(integrity(&c), "ok");
        return;
    }

    // 2. Every state is a valid queue state (`done` rows live in `audit`).
    let mut st = c.prepare("SELECT DISTINCT state FROM items").unwrap();
    let states: Vec<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for s in &states {
        let parsed: State = s
            .parse()
            .unwrap_or_else(|_| panic!("round {round}: invalid state {s:?}"));
        assert_ne!(
            parsed,
            State::Done,
            "round {round}: a done item stayed in items"
        );
    }
    drop(st);

    // 3. Nothing doubled: one active item per (path, service); one audit row per item.
    let dup_active = count(
        &c,
        "SELECT count(*) FROM (SELECT 1 FROM items
           WHERE state IN ('pending','uploading','failed','held')
           GROUP BY path, service HAVING count(*) > 1)",
    );
    assert_eq!(
        dup_active, 0,
        "round {round}: duplicate active (path, service)"
    );
    let dup_audit = count(
        &c,
        "SELECT count(*) FROM (SELECT 1 FROM audit GROUP BY item_id HAVING count(*) > 1)",
    );
    assert_eq!(dup_audit, 0, "round {round}: an item was audited twice");
    let both = count(
        &c,
        "SELECT count(*) FROM audit WHERE item_id IN (SELECT id FROM items)",
    );
    assert_eq!(both, 0, "round {round}: an item is both queued and audited");

    // 4. Nothing lost: every returned id is where the reports say.
    let mut items: HashMap<i64, (String, String)> = HashMap::new();
    let mut st = c.prepare("SELECT id, path, service FROM items").unwrap();
    for r in st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
    {
        let (id, p, s): (i64, String, String) = r.unwrap();
        items.insert(id, (p, s));
    }
    drop(st);
    let mut audited = std::collections::HashSet::new();
    let mut st = c.prepare("SELECT item_id FROM audit").unwrap();
    for r in st.query_map([], |r| r.get::<_, i64>(0)).unwrap() {
        audited.insert(r.unwrap());
    }
    drop(st);
    for (id, exp) in model.ids.iter_mut() {
        let (in_items, in_audit) = (items.get(id), audited.contains(id));
        match exp.clone() {
            Expect::Present { path, service } => {
                let got = in_items.unwrap_or_else(|| {
                    panic!("round {round}: item {id} ({service} {path}) was returned by enqueue but is lost")
                });
                assert_eq!(
                    got,
                    &(path, service),
                    "round {round}: item {id} changed identity"
                );
                assert!(!in_audit);
            }
            Expect::MaybeRemoved => {
                assert!(
                    !in_audit,
                    "round {round}: removed item {id} appeared in audit"
                );
                model.unresolved_resolved += 1;
                *exp = match in_items {
                    Some((p, s)) => Expect::Present {
                        path: p.clone(),
                        service: s.clone(),
                    },
                    None => Expect::Removed,
                };
            }
            Expect::Removed => {
                assert!(
                    in_items.is_none() && !in_audit,
                    "round {round}: removed item {id} came back"
                );
            }
            Expect::MaybeCompleted => {
                model.unresolved_resolved += 1;
                *exp = match (in_items, in_audit) {
                    (Some((p, s)), false) => Expect::Present {
                        path: p.clone(),
                        service: s.clone(),
                    },
                    (None, true) => Expect::Completed,
                    other => panic!("round {round}: item {id} half completed: {other:?}"),
                };
            }
            Expect::Completed => {
                assert!(
                    in_items.is_none() && in_audit,
                    "round {round}: completed item {id} not audited once"
                );
            }
        }
    }
    drop(c);

    // 5. The dead child's lease: honoured while live, and taking it over
    //    after expiry returns its `uploading` items to `pending` (same upload
    //    URL and offset), so nothing stays stuck.
    let mut q = Db::open(db).expect("Db::open after a kill");
    let snapshot = |q: &Db, state: &str| -> Vec<(i64, Option<String>, i64)> {
        let mut st = q
            .conn()
            .prepare(
                "SELECT id, upload_url, confirmed_offset FROM items WHERE state = ?1 ORDER BY id",
            )
            .unwrap();
        let rows = st
            .query_map([state], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    let uploading = snapshot(&q, "uploading");
    let live_lease: Option<i64> = q
        .conn()
        .query_row("SELECT expires_at FROM lease WHERE id = 1", [], |r| {
            r.get(0)
        })
        .ok()
        .filter(|&exp: &i64| exp > now_ms() + 1_000);
    if live_lease.is_some() {
        let e = q
            .write(|tx| ops::acquire_lease(tx, "checker", now_ms(), Duration::from_secs(1)))
            .unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::Busy,
            "round {round}: a live lease was not honoured"
        );
        assert_eq!(
            snapshot(&q, "uploading"),
            uploading,
            "round {round}: a refused lease changed items"
        );
        model.busy_seen += 1;
    }
    let later = now_ms() + 2 * CHILD_LEASE.as_millis() as i64;
    q.write(|tx| ops::acquire_lease(tx, "checker", later, Duration::from_secs(1)))
        .unwrap();
    assert!(
        snapshot(&q, "uploading").is_empty(),
        "round {round}: items stuck in uploading"
    );
    let pending = snapshot(&q, "pending");
    for u in &uploading {
        assert!(
            pending.contains(u),
            "round {round}: {u:?} lost its session on takeover"
        );
    }
    model.uploading_recovered += uploading.len() as u64;
    q.write(|tx| ops::release_lease(tx, "checker", later))
        .unwrap();
    let lease_rows = count(q.conn(), "SELECT count(*) FROM lease");
    assert_eq!(lease_rows, 0);
    drop(q);

    // 6. The public API agrees after the crash.
    let agent = Agent::open(db, &root_v1()).expect("Agent::open after a kill");
    let s = agent.stats().unwrap();
    let listed = agent.list(None, 0, u32::MAX).unwrap();
    assert_eq!(listed.len(), items.len(), "round {round}");
    assert_eq!(
        (s.pending + s.uploading + s.failed + s.dead + s.held) as usize,
        items.len()
    );
    assert_eq!(s.done as usize, audited.len());
    assert_eq!(s.uploading, 0);

    // 7. The status counters (schema v9) equal a full count: the kill cut no
    //    transaction between a row and its counter.
    let q = Db::open(db).expect("Db::open for the counters");
    assert_eq!(
        ops::stats(q.conn()).unwrap(),
        ops::stats_by_scan(q.conn()).unwrap(),
        "round {round}: counters differ from a full count"
    );
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
