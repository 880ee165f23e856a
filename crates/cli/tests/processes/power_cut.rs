//! Issue 22, point 3: progress survives a power cut. A real `cloudsync run`
//! child uploads three files (one, two and three chunks) to a loopback tus
//! server while an `LD_PRELOAD` recorder (`tests/c/powercut_shim.c`) keeps
//! a copy of the database and of its WAL as each was at its last
//! `fsync`: what storage holds after a power cut that loses every write since.
//! The power is cut just before each sync of the run in turn (the latest
//! moment that leaves a given durable state, so the server has got the most
//! it can for it), and at spread-out moments by a SIGKILL from outside,
//! with the server dropping its connections at once (what was in socket
//! buffers is lost, as with a real cut; mid-body too, the server reading at
//! 4 MB/s). Each cut's image (database + WAL as synced, no `-shm`) is
//! opened and the run finished by a normal child, then:
//!
//! - the image passes `PRAGMA integrity_check` and holds every item, queued
//!   or settled (zero lost, never torn), and every file ends on the server
//!   byte for byte, audited exactly once;
//! - the bytes the server read for the three files, beyond their sizes, are
//!   at most one chunk (what was in flight when the power went);
//! - the audit's `sent_bytes` of each item differs from what the server read
//!   for it by at most one chunk (one cut);
//! - a server that honours the idempotency key makes exactly one upload per
//!   file; a plain tus server at most one more per cut — an empty orphan,
//!   when the power went between a `POST` and the commit of its URL — and
//!   never a second complete copy.
//!
//! Every child has its own timeout; the whole test is under a watchdog.

#![cfg(target_os = "linux")]

use cloudsync_testkit::cc;
use cloudsync_testkit::timeouts::within;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cloudsync::Agent;
use cloudsync_devserver::world::{standard_regions, World};
use cloudsync_devserver::UploadInfo;

const CHUNK: u64 = 131_072;
/// One, three and two chunks.
const SIZES: [u64; 3] = [100_000, 300_000, 200_000];
/// Moments of the SIGKILL cuts, as fractions of an uncut run.
const TIMED_CUTS: u32 = 12;

/// Waits for a child, killing it after `limit`.
fn wait(child: &mut Child, limit: Duration) -> ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a child run took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Compiles the recorder once per test binary run.
fn shim(dir: &Path) -> PathBuf {
    let out = dir.join("libpowercut.so");
    cc::shared_object("tests/c/powercut_shim.c", &out, &["-ldl", "-lpthread"]);
    out
}

struct Rig {
    dir: tempfile::TempDir,
    world: World,
    shim: PathBuf,
    ca: PathBuf,
    root: PathBuf,
    honours_key: bool,
}

struct Item {
    id: i64,
    path: PathBuf,
    name: String,
    size: u64,
}

/// One cut's queue: its own files, database and durable copies.
struct Case {
    dir: PathBuf,
    db: PathBuf,
    durable: PathBuf,
    items: Vec<Item>,
}

enum Cut {
    /// Just before the n-th sync of the database or its WAL.
    BeforeSync(u64),
    /// SIGKILL from outside after this long.
    After(Duration),
}

/// What one cut left, for the report.
#[derive(Default)]
struct Tally {
    cuts: u32,
    /// Items by where their upload was when the power went.
    windows: BTreeMap<&'static str, u32>,
    /// Extra uploads on the server (orphans), by window.
    orphans: BTreeMap<&'static str, u32>,
    /// Cuts that left a body half received (the server holds an offset
    /// between chunk boundaries).
    mid_body: u32,
    max_resent: u64,
    max_audit_diff: u64,
    syncs_per_run: u64,
}

impl Rig {
    fn start(honours_key: bool) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let mut setups = standard_regions(&["in"]);
        setups[0].dedupe_by_key = honours_key;
        // A slow link (4 MB/s), so that a cut from outside can land mid-body.
        setups[0].body_rate = Some(4_000_000);
        let world = World::start(&dir.path().join("servers"), setups).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, world.ca.cert_pem()).unwrap();
        let root = dir.path().join("root.json");
        std::fs::write(&root, &world.root_envelope).unwrap();
        let shim = shim(dir.path());
        Rig {
            dir,
            world,
            shim,
            ca,
            root,
            honours_key,
        }
    }

    fn case(&self, name: &str) -> Case {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(dir.join("durable")).unwrap();
        let db = dir.join("q.db");
        let agent = Agent::open_with(
            &db,
            Some(&self.world.root_envelope),
            self.world.agent_options(),
        )
        .unwrap();
        agent.install(&self.world.config_envelope(1)).unwrap();
        agent.set_account_country("IN").unwrap();
        let mut items = Vec::new();
        for (i, size) in SIZES.into_iter().enumerate() {
            let file = format!("{name}-{i}.bin");
            let path = dir.join(&file);
            let seed = name.bytes().fold(i as u8, |a, b| a.wrapping_mul(31) ^ b);
            let data: Vec<u8> = (0..size)
                .map(|j| (j as u8).wrapping_mul(7) ^ seed ^ (j >> 9) as u8)
                .collect();
            std::fs::write(&path, data).unwrap();
            let id = agent.enqueue(&path, "backup", 0).unwrap();
            items.push(Item {
                id,
                path,
                name: file,
                size,
            });
        }
        drop(agent);
        // Closed: what is on storage now is durable.
        let db = db.canonicalize().unwrap();
        let durable = dir.join("durable");
        for f in ["q.db", "q.db-wal"] {
            if dir.join(f).exists() {
                std::fs::copy(dir.join(f), durable.join(f)).unwrap();
            }
        }
        Case {
            dir,
            db,
            durable,
            items,
        }
    }

    fn run(&self, db: &Path, recorder: Option<(&Case, Option<u64>)>) -> Child {
        let mut cmd = Command::new(cloudsync_testkit::cloudsync_exe());
        cmd.env("CLOUDSYNC_ROOT", &self.root)
            .args(["--db", db.to_str().unwrap(), "run", "--test-ca"])
            .arg(&self.ca)
            .args(["--chunk-size", &CHUNK.to_string(), "--lease-secs", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((case, cut)) = recorder {
            cmd.env("LD_PRELOAD", &self.shim)
                .env("CS_PC_DB", &case.db)
                .env("CS_PC_DIR", &case.durable);
            if let Some(n) = cut {
                cmd.env("CS_PC_CUT", n.to_string());
            }
        }
        cmd.spawn().unwrap()
    }

    /// The server's uploads for one file (by its name in the metadata).
    fn uploads(&self, item: &Item) -> Vec<UploadInfo> {
        self.world.servers["in"]
            .uploads()
            .into_iter()
            .filter(|u| u.metadata_value("filename") == Some(item.name.as_bytes()))
            .collect()
    }

    /// An uncut run under the recorder: how many syncs and how long.
    fn calibrate(&self) -> (u64, Duration) {
        let case = self.case("calibrate");
        let t = Instant::now();
        let mut child = self.run(&case.db, Some((&case, None)));
        assert!(wait(&mut child, Duration::from_secs(30)).success());
        let took = t.elapsed();
        let log = std::fs::read_to_string(case.durable.join("syncs.log")).unwrap();
        (log.lines().count() as u64, took)
    }

    /// One power cut, its image, the finishing run and every check.
    fn cut(&self, name: &str, cut: Cut, tally: &mut Tally) {
        let case = self.case(name);
        let mut child = match cut {
            Cut::BeforeSync(n) => self.run(&case.db, Some((&case, Some(n)))),
            Cut::After(_) => self.run(&case.db, Some((&case, None))),
        };
        if let Cut::After(d) = cut {
            std::thread::sleep(d);
            let _ = child.kill();
            // What was still in socket buffers dies with the power: the
            // server keeps only what it has read.
            self.world.servers["in"].restart();
        }
        wait(&mut child, Duration::from_secs(30));
        tally.cuts += 1;
        // The server finishes what reached it before the power went.
        std::thread::sleep(Duration::from_millis(100));

        // The image: the database and its WAL as last synced, no -shm.
        let img = case.dir.join("image");
        std::fs::create_dir_all(&img).unwrap();
        for f in ["q.db", "q.db-wal"] {
            if case.durable.join(f).exists() {
                std::fs::copy(case.durable.join(f), img.join(f)).unwrap();
            }
        }
        let db = img.join("q.db");
        let windows = self.check_image(&db, &case);
        let held: Vec<usize> = case.items.iter().map(|i| self.uploads(i).len()).collect();
        let torn_body = case.items.iter().any(|i| {
            self.uploads(i)
                .iter()
                .any(|u| u.offset % CHUNK != 0 && u.offset != i.size)
        });
        tally.mid_body += u32::from(torn_body);

        // A reboot takes longer than the lease: the dead runner's has lapsed.
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute("UPDATE lease SET expires_at = 0", []).unwrap();
        drop(c);
        let mut finished = false;
        for _ in 0..4 {
            let mut child = self.run(&db, None);
            if wait(&mut child, Duration::from_secs(30)).success() {
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(finished, "{name}: the finishing run never succeeded");
        self.check_done(name, &db, &case, &windows, &held, tally);
    }

    /// Zero lost items, never a torn file; where each upload was at the cut.
    fn check_image(&self, db: &Path, case: &Case) -> Vec<&'static str> {
        let c = rusqlite::Connection::open(db).unwrap();
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "{}: the image is torn", case.dir.display());
        case.items
            .iter()
            .map(|it| {
                let settled: i64 = c
                    .query_row(
                        "SELECT count(*) FROM audit WHERE item_id = ?1",
                        [it.id],
                        |r| r.get(0),
                    )
                    .unwrap();
                let row: Option<(Option<String>, Option<String>)> = c
                    .query_row(
                        "SELECT upload_key, upload_url FROM items WHERE id = ?1",
                        [it.id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .ok();
                let on_server = !self.uploads(it).is_empty();
                match (settled, row) {
                    (1, None) => "settled",
                    (0, Some((_, Some(_)))) => "URL on storage",
                    (0, Some((Some(_), None))) if on_server => "POST sent, URL not on storage",
                    (0, Some((Some(_), None))) => "not started",
                    (s, r) => panic!(
                        "{}: item {} lost or doubled in the image: {s} audit rows, row {r:?}",
                        case.dir.display(),
                        it.id
                    ),
                }
            })
            .collect()
    }

    fn check_done(
        &self,
        name: &str,
        db: &Path,
        case: &Case,
        windows: &[&'static str],
        held_at_cut: &[usize],
        tally: &mut Tally,
    ) {
        let c = rusqlite::Connection::open(db).unwrap();
        let left: i64 = c
            .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "{name}: items left after the finishing run");
        let (mut resent, mut extra) = (0u64, 0usize);
        for ((it, window), held) in case.items.iter().zip(windows).zip(held_at_cut) {
            *tally.windows.entry(window).or_default() += 1;
            let audit: Vec<Option<i64>> = c
                .prepare("SELECT sent_bytes FROM audit WHERE item_id = ?1")
                .unwrap()
                .query_map([it.id], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(audit.len(), 1, "{name}: item {} audited once", it.id);
            let ups = self.uploads(it);
            let done: Vec<_> = ups.iter().filter(|u| u.complete).collect();
            assert_eq!(
                done.len(),
                1,
                "{name} ({window}): one complete copy of {}: {ups:?}",
                it.name
            );
            let copy = self.world.servers["in"].upload_bytes(&done[0].id).unwrap();
            assert!(
                copy == std::fs::read(&it.path).unwrap(),
                "{name}: {} torn",
                it.name
            );
            if self.honours_key {
                assert_eq!(ups.len(), 1, "{name} ({window}): {} duplicated", it.name);
            }
            if ups.len() > 1 {
                *tally.orphans.entry(window).or_default() += (ups.len() - 1) as u32;
                assert!(
                    ups.iter().filter(|u| !u.complete).all(|u| u.offset == 0),
                    "{name} ({window}, {held} upload(s) at the cut): an orphan holds bytes: {ups:?}"
                );
            }
            extra += ups.len() - 1;
            let received: u64 = ups.iter().map(|u| u.body_bytes_received).sum();
            resent += received - it.size;
            let sent = audit[0].expect("sent_bytes recorded") as u64;
            let diff = sent.abs_diff(received);
            assert!(
                diff <= CHUNK,
                "{name} ({window}): audit says {sent} bytes sent, the server read {received}"
            );
            tally.max_audit_diff = tally.max_audit_diff.max(diff);
        }
        assert!(
            extra <= 1,
            "{name}: {extra} extra uploads for one cut (windows {windows:?})"
        );
        assert!(
            resent <= CHUNK,
            "{name}: {resent} bytes sent again after one cut (windows {windows:?})"
        );
        tally.max_resent = tally.max_resent.max(resent);
    }
}

fn power_cuts(honours_key: bool) {
    let rig = Rig::start(honours_key);
    let (syncs, took) = rig.calibrate();
    assert!(syncs >= 6, "the recorder saw only {syncs} syncs");
    let mut tally = Tally {
        syncs_per_run: syncs,
        ..Tally::default()
    };
    // One more than seen: a run that happens to need one more sync is cut too.
    for n in 1..=syncs + 1 {
        rig.cut(&format!("s{n}"), Cut::BeforeSync(n), &mut tally);
    }
    for k in 0..TIMED_CUTS {
        let d = took.mul_f64((f64::from(k) + 0.5) / f64::from(TIMED_CUTS));
        rig.cut(&format!("t{k}"), Cut::After(d), &mut tally);
    }
    eprintln!(
        "power cuts, {} server: {} cuts ({} syncs per uncut run of {:?}; {} cuts mid-body); items by window at the cut: {:?}; \
         extra uploads by window: {:?}; most bytes re-sent after one cut: {}; largest |audit - server|: {}",
        if honours_key { "key-honouring" } else { "plain tus" },
        tally.cuts,
        tally.syncs_per_run,
        took,
        tally.mid_body,
        tally.windows,
        tally.orphans,
        tally.max_resent,
        tally.max_audit_diff
    );
    if honours_key {
        assert!(tally.orphans.is_empty());
    }
}

#[test]
fn power_cuts_against_a_server_that_honours_the_key() {
    within(Duration::from_secs(120), || power_cuts(true));
}

#[test]
fn power_cuts_against_a_plain_tus_server() {
    within(Duration::from_secs(120), || power_cuts(false));
}
