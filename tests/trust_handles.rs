//! Issue 10, "Trust belongs to the database": two `Agent` handles opened on
//! the same SQLite file in one process must never disagree about where bytes
//! may go, and a stale handle must never roll trust back (docs/DESIGN.md,
//! "Trust state lives in the database").
//!
//! Everything here runs on real SQLite files in temp dirs; the tests that
//! upload use real TLS tus servers on loopback (`devserver::world::World`) and
//! the servers' own byte counters. Every run happens on its own thread behind
//! a `recv_timeout` watchdog: a hang is a failure, not a stuck test binary.

#![cfg(feature = "devserver")]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use cloudsync::config::model::{format_time, unix_secs};
use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::{CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};
use cloudsync::devserver::world::{standard_regions, World};
use cloudsync::devserver::Fault;
use cloudsync::queue::ItemInfo;
use cloudsync::{
    Agent, AgentOptions, ConfigInfo, Error, ErrorKind, Installed, RunReport, State, StopReason,
};
use rusqlite::Connection;

const MIB: u64 = 1024 * 1024;
const FAR: &str = "2099-01-01T00:00:00Z";
/// Upper bound for any one run (the watchdog); runs here take well under 10 s.
const RUN_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- helpers

struct Env {
    dir: tempfile::TempDir,
    world: World,
    db: PathBuf,
}

fn env(regions: &[&str]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(&dir.path().join("servers"), standard_regions(regions)).unwrap();
    let db = dir.path().join("q.db");
    Env { dir, world, db }
}

impl Env {
    /// A handle as the app opens it (with the firmware root).
    fn open(&self) -> Agent {
        self.open_at(&self.db, self.world.agent_options())
    }

    fn open_at(&self, db: &Path, opts: AgentOptions) -> Agent {
        Agent::open_with(db, Some(&self.world.root_envelope), opts).unwrap()
    }

    /// A brand-new handle that has never seen anything but the file.
    fn fresh(&self) -> Agent {
        Agent::open_with(&self.db, None, self.world.agent_options()).unwrap()
    }

    fn fresh_info(&self) -> ConfigInfo {
        self.fresh().config_info().unwrap()
    }

    /// The world's config payload, version `v`, signed by `keys`.
    fn config(&self, payload: &serde_json::Value, keys: &[&SigningKey]) -> Vec<u8> {
        sign_envelope(
            CONFIG_PAYLOAD_TYPE,
            &serde_json::to_vec(payload).unwrap(),
            keys,
        )
    }
}

/// A root envelope: `root_keys`/`config_keys` with thresholds, signed by `signers`.
fn root_env(
    version: u64,
    expires: &str,
    root_keys: &[&SigningKey],
    root_threshold: u64,
    config_keys: &[&SigningKey],
    config_threshold: u64,
    signers: &[&SigningKey],
) -> Vec<u8> {
    sign_envelope(
        ROOT_PAYLOAD_TYPE,
        &root_payload(
            version,
            expires,
            root_keys,
            root_threshold,
            config_keys,
            config_threshold,
        ),
        signers,
    )
}

/// The raw trust row, read with a separate SQLite connection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    root: Vec<u8>,
    config: Option<Vec<u8>>,
    country: Option<String>,
    generation: i64,
    config_version_floor: i64,
    expired_config_version: i64,
}

fn row(db: &Path) -> Row {
    let c = Connection::open(db).unwrap();
    c.query_row(
        "SELECT root, config, country, generation, config_version_floor, expired_config_version
         FROM trust WHERE id = 1",
        [],
        |r| {
            Ok(Row {
                root: r.get(0)?,
                config: r.get(1)?,
                country: r.get(2)?,
                generation: r.get(3)?,
                config_version_floor: r.get(4)?,
                expired_config_version: r.get(5)?,
            })
        },
    )
    .unwrap()
}

fn file(dir: &Path, name: &str, size: u64, seed: u8) -> PathBuf {
    let p = dir.join(name);
    let mut x = 0x9e37_79b9u32 ^ u32::from(seed);
    let data: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(&p, data).unwrap();
    p
}

fn region_of(a: &Agent) -> Option<String> {
    a.approved_region().unwrap().map(|r| r.id().to_string())
}

fn item(a: &Agent, id: i64) -> ItemInfo {
    a.list(None, 1000)
        .unwrap()
        .into_iter()
        .find(|i| i.id == id)
        .expect("item still queued")
}

/// `run_once` on its own thread with a watchdog.
fn spawn_run(a: &Arc<Agent>) -> mpsc::Receiver<cloudsync::Result<RunReport>> {
    let (tx, rx) = mpsc::channel();
    let a = a.clone();
    std::thread::spawn(move || {
        let _ = tx.send(a.run_once(RUN_LIMIT, &mut |_| true));
    });
    rx
}

fn run(a: &Arc<Agent>) -> cloudsync::Result<RunReport> {
    spawn_run(a)
        .recv_timeout(RUN_LIMIT + Duration::from_secs(15))
        .expect("run_once hung (watchdog)")
}

fn untouched(world: &World, region: &str) {
    let st = world.servers[region].stats();
    assert_eq!(
        (st.connections, st.requests, st.app_bytes_received),
        (0, 0, 0),
        "region {region} was contacted: {st:?}"
    );
}

fn clocked(world: &World, clock: &Arc<AtomicU64>) -> AgentOptions {
    let c = clock.clone();
    AgentOptions {
        clock: Arc::new(move || c.load(Ordering::SeqCst)),
        ..world.agent_options()
    }
}

// ------------------------------------------- 1. a stale handle follows

#[test]
fn stale_handle_sees_the_other_handles_country_move_and_uploads_there_only() {
    let e = env(&["in", "sg"]);
    let a = Arc::new(e.open());
    a.install(&e.world.config_envelope(1)).unwrap();
    a.set_account_country("IN").unwrap();
    let b = e.open();
    // A's cache is now at IN / in.
    assert_eq!(region_of(&a).as_deref(), Some("in"));
    assert_eq!(a.config_info().unwrap().country.as_deref(), Some("IN"));

    b.set_account_country("SG").unwrap();

    assert_eq!(region_of(&a).as_deref(), Some("sg"));
    let info = a.config_info().unwrap();
    assert_eq!(info.country.as_deref(), Some("SG"));
    assert_eq!(info.approved_region.as_deref(), Some("sg"));
    assert_eq!(info, b.config_info().unwrap(), "both handles agree");

    let p = file(e.dir.path(), "photo", MIB + 3, 1);
    let id = a.enqueue(&p, "backup", 0).unwrap();
    let it = item(&a, id);
    assert_eq!(
        (it.region.as_deref(), it.state.as_str()),
        (Some("sg"), "pending"),
        "stamped under the stored trust, not A's stale cache"
    );

    let r = run(&a).unwrap();
    assert_eq!(
        (r.region.as_str(), r.uploaded, r.held, r.stopped),
        ("sg", 1, 0, StopReason::Drained),
        "{r:?}"
    );
    let bytes = e.world.bytes_by_region();
    assert_eq!(bytes["in"], 0, "in received nothing: {bytes:?}");
    assert!(bytes["sg"] >= MIB + 3, "{bytes:?}");
    untouched(&e.world, "in");
    let audit = a.audit(0, 10).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!((audit[0].item_id, audit[0].region.as_str()), (id, "sg"));
}

// ------------------------------------------- 2. no roll back from a stale handle

#[test]
fn stale_handle_cannot_roll_back_a_rotation_or_its_config() {
    let e = env(&["in", "sg"]);
    let w = &e.world;
    let a = e.open();
    let cfg1 = w.config_envelope(1);
    a.install(&cfg1).unwrap();
    a.set_account_country("SG").unwrap();
    let _ = a.config_info().unwrap(); // A caches root v1, config v1, SG

    // B rotates to a root whose config role is a brand-new key: config v1 no longer verifies.
    let b = e.open();
    let new_cfg_key = SigningKey::generate().unwrap();
    let root2 = root_env(
        2,
        FAR,
        &[&w.root_key],
        1,
        &[&new_cfg_key],
        1,
        &[&w.root_key],
    );
    assert_eq!(b.install(&root2).unwrap(), Installed::Root { version: 2 });
    let mid = b.config_info().unwrap();
    assert_eq!(
        (mid.root_version, mid.config_version),
        (2, None),
        "config v1 (old key) dropped"
    );
    let cfg2 = e.config(&w.config_json(2), &[&new_cfg_key]);
    assert_eq!(b.install(&cfg2).unwrap(), Installed::Config { version: 2 });

    // A, stale, moves the account: the move lands on top of B's trust.
    a.set_account_country("IN").unwrap();
    let c = e.fresh();
    let info = c.config_info().unwrap();
    assert_eq!(
        (
            info.root_version,
            info.config_version,
            info.country.as_deref(),
            info.approved_region.as_deref()
        ),
        (2, Some(2), Some("IN"), Some("in")),
        "{info:?}"
    );
    assert_eq!(a.config_info().unwrap(), info, "A sees the same trust");
    let before = row(&e.db);
    assert_eq!(before.root, root2);
    assert_eq!(before.config.as_deref(), Some(&cfg2[..]));

    // A config signed by the revoked (old) config key: no trusted signer at all.
    let cfg3_old = e.config(&w.config_json(3), &[&w.config_key]);
    let err = a.install(&cfg3_old).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadSignature, "{err}");
    assert!(
        matches!(err, Error::BadSignature { role: "config" }),
        "{err:?}"
    );
    assert_eq!(c.config_info().unwrap(), info, "nothing changed");
    assert_eq!(row(&e.db), before, "nothing written");

    // The old config v1 itself is refused the same way.
    let err = a.install(&cfg1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadSignature, "{err}");
    assert_eq!(row(&e.db), before);

    // The old root: rollback.
    let err = a.install(&w.root_envelope).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rollback, "{err}");
    assert!(
        matches!(
            err,
            Error::Rollback {
                what: "root",
                offered: 1,
                installed: 2
            }
        ),
        "{err:?}"
    );
    let err = a.install_root(&w.root_envelope).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rollback, "{err}");
    assert_eq!(c.config_info().unwrap(), info, "nothing changed");
    assert_eq!(a.config_info().unwrap(), info);
    assert_eq!(row(&e.db), before, "nothing written");
}

// ------------------------------------------- 3. every pair of trust writes

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    Config,
    Country,
    Root,
}

struct Docs {
    /// Config v2, v3 (signed by the world's config key).
    configs: [Vec<u8>; 2],
    /// Root v2, v3 (same config key, so the config in force survives).
    roots: [Vec<u8>; 2],
}

const COUNTRIES: [&str; 3] = ["IN", "SG", "US"];

fn apply(h: &Agent, w: Write, step: usize, docs: &Docs) {
    match w {
        Write::Config => assert_eq!(
            h.install(&docs.configs[step]).unwrap(),
            Installed::Config {
                version: 2 + step as u64
            }
        ),
        Write::Root => assert_eq!(
            h.install(&docs.roots[step]).unwrap(),
            Installed::Root {
                version: 2 + step as u64
            }
        ),
        Write::Country => h.set_account_country(COUNTRIES[1 + step]).unwrap(),
    }
}

#[test]
fn every_pair_of_trust_writes_from_two_stale_handles_keeps_both_effects() {
    let e = env(&["in", "sg", "us"]);
    let w = &e.world;
    let cfg1 = w.config_envelope(1);
    let docs = Docs {
        configs: [w.config_envelope(2), w.config_envelope(3)],
        roots: [
            root_env(
                2,
                "2098-06-01T00:00:00Z",
                &[&w.root_key],
                1,
                &[&w.config_key],
                1,
                &[&w.root_key],
            ),
            root_env(
                3,
                "2098-07-01T00:00:00Z",
                &[&w.root_key],
                1,
                &[&w.config_key],
                1,
                &[&w.root_key],
            ),
        ],
    };
    let kinds = [Write::Config, Write::Country, Write::Root];
    let mut case = 0;
    for w1 in kinds {
        for w2 in kinds {
            for a_first in [true, false] {
                case += 1;
                let db = e.dir.path().join(format!("pair{case}.db"));
                let label = format!(
                    "case {case}: {} {w1:?} then {} {w2:?}",
                    if a_first { "A" } else { "B" },
                    if a_first { "B" } else { "A" }
                );
                {
                    let s = e.open_at(&db, w.agent_options());
                    s.install(&cfg1).unwrap();
                    s.set_account_country("IN").unwrap();
                }
                let a = e.open_at(&db, w.agent_options());
                let b = e.open_at(&db, w.agent_options());
                // Both cache the same generation: whichever writes second is stale.
                let start = a.config_info().unwrap();
                assert_eq!(b.config_info().unwrap(), start, "{label}");
                let gen0 = row(&db).generation;
                let (first, second) = if a_first { (&a, &b) } else { (&b, &a) };
                apply(first, w1, 0, &docs);
                apply(second, w2, usize::from(w1 == w2), &docs);

                let n = |k: Write| [w1, w2].iter().filter(|x| **x == k).count();
                let c = Agent::open_with(&db, None, w.agent_options()).unwrap();
                let got = c.config_info().unwrap();
                let country = COUNTRIES[n(Write::Country)];
                assert_eq!(
                    (
                        got.root_version,
                        got.config_version,
                        got.country.as_deref(),
                        got.approved_region.clone(),
                        got.expired
                    ),
                    (
                        1 + n(Write::Root) as u64,
                        Some(1 + n(Write::Config) as u64),
                        Some(country),
                        Some(country.to_ascii_lowercase()),
                        false
                    ),
                    "{label}: {got:?}"
                );
                assert_eq!(a.config_info().unwrap(), got, "{label}: A agrees");
                assert_eq!(b.config_info().unwrap(), got, "{label}: B agrees");
                assert_eq!(row(&db).generation, gen0 + 2, "{label}: two CAS writes");
            }
        }
    }
    assert_eq!(case, 18);
}

// ------------------------------------------- 4. same version, other payload

#[test]
fn stale_handle_same_version_different_config_is_rollback_and_changes_nothing() {
    let e = env(&["in", "sg"]);
    let w = &e.world;
    let a = e.open();
    a.install(&w.config_envelope(1)).unwrap();
    a.set_account_country("IN").unwrap();
    let b = e.open();
    assert_eq!(b.config_info().unwrap().config_version, Some(1)); // B caches v1

    let p2 = w.config_json(2);
    let cfg2 = w.sign_config(&p2);
    assert_eq!(a.install(&cfg2).unwrap(), Installed::Config { version: 2 });
    let info = e.fresh_info();
    let before = row(&e.db);

    let mut other = p2.clone();
    other["countries"]["IN"] = "sg".into();
    let cfg2_other = w.sign_config(&other);
    let err = b.install(&cfg2_other).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rollback, "{err}");
    assert!(
        matches!(
            err,
            Error::SameVersionDifferent {
                what: "config",
                version: 2
            }
        ),
        "{err:?}"
    );
    assert_eq!(e.fresh_info(), info, "nothing changed");
    assert_eq!(row(&e.db), before, "nothing written");
    assert_eq!(region_of(&b).as_deref(), Some("in"));

    // The very document in force, from the stale handle: unchanged, no write.
    assert_eq!(b.install(&cfg2).unwrap(), Installed::Unchanged);
    assert_eq!(row(&e.db), before);
    // And an older one is a plain rollback.
    let err = b.install(&w.config_envelope(1)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rollback {
                what: "config",
                offered: 1,
                installed: 2
            }
        ),
        "{err:?}"
    );
    assert_eq!(row(&e.db), before);
}

// ------------------------------------------- 5. held at once

/// Config v1, country IN, three files enqueued by A (stamped `in`).
fn held_setup(e: &Env) -> (Arc<Agent>, Agent, Vec<i64>) {
    let a = Arc::new(e.open());
    a.install(&e.world.config_envelope(1)).unwrap();
    a.set_account_country("IN").unwrap();
    let b = e.open();
    let _ = b.config_info().unwrap();
    let paths: Vec<PathBuf> = (0..3)
        .map(|i| file(e.dir.path(), &format!("h{i}"), 1000 + i, i as u8))
        .collect();
    let ids = a.enqueue_all(&paths, "backup", 0).unwrap();
    for id in &ids {
        let it = item(&a, *id);
        assert_eq!(
            (it.region.as_deref(), it.state.as_str()),
            (Some("in"), "pending")
        );
    }
    (a, b, ids)
}

fn held_ids(a: &Agent) -> Vec<i64> {
    a.list(Some(State::Held), 100)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

#[test]
fn country_move_holds_items_at_once_in_both_handles_then_rehome_sends_them_to_the_new_region() {
    let e = env(&["in", "sg"]);
    let (a, b, ids) = held_setup(&e);
    b.set_account_country("SG").unwrap();
    // Before any run: held, seen through both handles.
    for h in [&*a, &b] {
        let s = h.stats().unwrap();
        assert_eq!(
            (s.held, s.pending, s.failed, s.uploading),
            (3, 0, 0, 0),
            "{s:?}"
        );
        assert_eq!(held_ids(h), ids);
    }
    untouched(&e.world, "in");
    untouched(&e.world, "sg");

    // A (whose cache still says IN) rehomes: to the region the file approves.
    assert_eq!(a.rehome().unwrap(), 3);
    for id in &ids {
        let it = item(&a, *id);
        assert_eq!(
            (it.region.as_deref(), it.state.as_str()),
            (Some("sg"), "pending")
        );
    }
    let r = run(&a).unwrap();
    assert_eq!(
        (r.region.as_str(), r.uploaded, r.held, r.stopped),
        ("sg", 3, 0, StopReason::Drained),
        "{r:?}"
    );
    untouched(&e.world, "in");
    assert!(e.world.bytes_by_region()["sg"] >= 3000);
}

#[test]
fn held_items_can_be_discarded_from_either_handle_and_nothing_is_sent() {
    let e = env(&["in", "sg"]);
    let (a, b, ids) = held_setup(&e);
    b.set_account_country("SG").unwrap();
    assert_eq!(a.stats().unwrap().held, 3);
    assert_eq!(held_ids(&a), ids);
    assert_eq!(a.discard_held().unwrap(), 3);
    let s = b.stats().unwrap();
    assert_eq!((s.held, s.pending, s.done), (0, 0, 0), "{s:?}");
    assert!(b.list(None, 100).unwrap().is_empty());
    let r = run(&a).unwrap();
    assert_eq!((r.region.as_str(), r.uploaded), ("sg", 0), "{r:?}");
    untouched(&e.world, "in");
    untouched(&e.world, "sg");
}

#[test]
fn moving_back_before_rehome_makes_held_items_pending_again() {
    let e = env(&["in", "sg"]);
    let (a, b, ids) = held_setup(&e);
    b.set_account_country("SG").unwrap();
    assert_eq!(a.stats().unwrap().held, 3);
    a.set_account_country("IN").unwrap();
    for h in [&*a, &b] {
        let s = h.stats().unwrap();
        assert_eq!((s.held, s.pending), (0, 3), "{s:?}");
        assert!(held_ids(h).is_empty());
    }
    for id in &ids {
        let it = item(&b, *id);
        assert_eq!(
            (it.region.as_deref(), it.state.as_str()),
            (Some("in"), "pending")
        );
    }
    untouched(&e.world, "in");
    untouched(&e.world, "sg");
}

#[test]
fn a_config_that_maps_the_country_elsewhere_holds_items_at_once() {
    let e = env(&["in", "sg"]);
    let (a, b, ids) = held_setup(&e);
    let mut p = e.world.config_json(2);
    p["countries"]["IN"] = "sg".into();
    assert_eq!(
        b.install(&e.world.sign_config(&p)).unwrap(),
        Installed::Config { version: 2 }
    );
    for h in [&*a, &b] {
        let s = h.stats().unwrap();
        assert_eq!((s.held, s.pending), (3, 0), "{s:?}");
        assert_eq!(held_ids(h), ids);
    }
    assert_eq!(region_of(&a).as_deref(), Some("sg"));
    untouched(&e.world, "in");
    untouched(&e.world, "sg");
}

// ------------------------------------------- 6. sticky expiry

/// Config `v` issued at `issued`, expiring at `expires` (seconds).
fn timed_config(e: &Env, v: u64, issued: u64, expires: u64) -> Vec<u8> {
    let mut p = e.world.config_json(v);
    p["issued_at"] = format_time(issued).into();
    p["expires_at"] = format_time(expires).into();
    e.world.sign_config(&p)
}

#[test]
fn an_observed_expiry_is_sticky_across_clock_set_back_and_handles_until_a_newer_config() {
    let e = env(&["in", "sg"]);
    let t0 = unix_secs(SystemTime::now());
    let clock = Arc::new(AtomicU64::new(t0));
    let opts = clocked(&e.world, &clock);
    let a = Arc::new(e.open_at(&e.db, opts.clone()));
    let cfg1 = timed_config(&e, 1, t0 - 3600, t0 + 3600);
    a.install(&cfg1).unwrap();
    a.set_account_country("IN").unwrap();
    // B has cached an unexpired v1 and never looks while the clock is ahead.
    let b = e.open_at(&e.db, opts.clone());
    assert_eq!(region_of(&b).as_deref(), Some("in"));
    assert_eq!(region_of(&a).as_deref(), Some("in"));

    clock.store(t0 + 3601, Ordering::SeqCst); // past expires_at
    assert_eq!(a.approved_region().unwrap_err().kind(), ErrorKind::Expired);
    assert!(a.config_info().unwrap().expired);
    assert_eq!(row(&e.db).expired_config_version, 1, "persisted");

    clock.store(t0 + 3601 - 600, Ordering::SeqCst); // set back 10 minutes: before expires_at again
    assert_eq!(
        a.approved_region().unwrap_err().kind(),
        ErrorKind::Expired,
        "sticky"
    );
    assert_eq!(
        b.approved_region().unwrap_err().kind(),
        ErrorKind::Expired,
        "B never saw the clock ahead, but the file did"
    );
    let d = e.open_at(&e.db, opts.clone());
    assert_eq!(
        d.approved_region().unwrap_err().kind(),
        ErrorKind::Expired,
        "fresh handle"
    );
    let info = d.config_info().unwrap();
    assert_eq!(
        (
            info.expired,
            info.approved_region.clone(),
            info.config_version
        ),
        (true, None, Some(1)),
        "{info:?}"
    );
    // Uploads stay off, enqueue keeps working (unstamped).
    let p = file(e.dir.path(), "x", 10, 1);
    let id = a.enqueue(&p, "backup", 0).unwrap();
    assert_eq!(item(&a, id).region, None);
    assert_eq!(run(&a).unwrap_err().kind(), ErrorKind::Expired);
    untouched(&e.world, "in");

    // A newer config, issued now and expiring later, restores the region.
    let now = t0 + 3601 - 600;
    let cfg2 = timed_config(&e, 2, now - 60, now + 24 * 3600);
    assert_eq!(b.install(&cfg2).unwrap(), Installed::Config { version: 2 });
    for h in [&*a, &b, &d] {
        assert_eq!(region_of(h).as_deref(), Some("in"));
        assert!(!h.config_info().unwrap().expired);
    }
    // The expired version is gone for good (the floor is v2 now).
    let before = row(&e.db);
    let err = a.install(&cfg1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rollback {
                what: "config",
                offered: 1,
                installed: 2
            }
        ),
        "{err:?}"
    );
    assert_eq!(row(&e.db), before);
    assert_eq!(region_of(&d).as_deref(), Some("in"));
}

#[test]
fn reinstalling_the_expired_config_in_force_is_refused_as_expired() {
    let e = env(&["in", "sg"]);
    let t0 = unix_secs(SystemTime::now());
    let clock = Arc::new(AtomicU64::new(t0));
    let opts = clocked(&e.world, &clock);
    let a = e.open_at(&e.db, opts.clone());
    let cfg1 = timed_config(&e, 1, t0 - 3600, t0 + 3600);
    a.install(&cfg1).unwrap();
    a.set_account_country("IN").unwrap();
    clock.store(t0 + 3601, Ordering::SeqCst);
    assert_eq!(a.approved_region().unwrap_err().kind(), ErrorKind::Expired);
    clock.store(t0 + 3001, Ordering::SeqCst);
    let b = e.open_at(&e.db, opts);
    let before = row(&e.db);
    // Reinstalling the very envelope that was observed expired.
    let got = b.install(&cfg1);
    assert_eq!(
        got.as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::Expired),
        "an observed-expired config must not be accepted again: {got:?}"
    );
    assert_eq!(row(&e.db), before);
    assert_eq!(b.approved_region().unwrap_err().kind(), ErrorKind::Expired);
}

#[test]
fn an_expired_config_dropped_by_a_rotation_and_re_signed_stays_expired() {
    let e = env(&["in", "sg"]);
    let w = &e.world;
    let t0 = unix_secs(SystemTime::now());
    let clock = Arc::new(AtomicU64::new(t0));
    let opts = clocked(w, &clock);
    let a = e.open_at(&e.db, opts.clone());
    let mut p1 = w.config_json(1);
    p1["issued_at"] = format_time(t0 - 3600).into();
    p1["expires_at"] = format_time(t0 + 3600).into();
    a.install(&e.config(&p1, &[&w.config_key])).unwrap();
    a.set_account_country("IN").unwrap();
    clock.store(t0 + 3601, Ordering::SeqCst);
    assert_eq!(a.approved_region().unwrap_err().kind(), ErrorKind::Expired);
    clock.store(t0 + 3001, Ordering::SeqCst);
    // B rotates to a new config key: v1 is dropped; the same payload re-signed comes back.
    let b = e.open_at(&e.db, opts);
    let k2 = SigningKey::generate().unwrap();
    let root2 = root_env(2, FAR, &[&w.root_key], 1, &[&k2], 1, &[&w.root_key]);
    assert_eq!(b.install(&root2).unwrap(), Installed::Root { version: 2 });
    assert_eq!(b.config_info().unwrap().config_version, None);
    let before = row(&e.db);
    let err = b.install(&e.config(&p1, &[&k2])).unwrap_err();
    assert!(matches!(err, Error::Expired { what: "config" }), "{err:?}");
    assert_eq!(row(&e.db), before, "nothing written");
    assert_eq!(a.config_info().unwrap().config_version, None);
}

// ------------------------------------------- 7. version floor across rotation

#[test]
fn the_version_floor_survives_a_rotation_that_drops_the_config() {
    let e = env(&["in", "sg"]);
    let w = &e.world;
    let a = e.open();
    let p5 = w.config_json(5);
    a.install(&e.config(&p5, &[&w.config_key])).unwrap();
    a.set_account_country("IN").unwrap();
    let b = e.open();
    let _ = b.config_info().unwrap();

    // Root v2 raises the config threshold to 2 (old key + a new one).
    let k2 = SigningKey::generate().unwrap();
    let root2 = root_env(
        2,
        FAR,
        &[&w.root_key],
        1,
        &[&w.config_key, &k2],
        2,
        &[&w.root_key],
    );
    assert_eq!(b.install(&root2).unwrap(), Installed::Root { version: 2 });
    let info = a.config_info().unwrap();
    assert_eq!(
        (info.root_version, info.config_version),
        (2, None),
        "v5 dropped"
    );
    assert_eq!(row(&e.db).config_version_floor, 5, "the floor stays");

    let both: [&SigningKey; 2] = [&w.config_key, &k2];
    // An older version, properly signed under root v2: rollback against the floor.
    let before = row(&e.db);
    let err = a.install(&e.config(&w.config_json(3), &both)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rollback, "{err}");
    assert!(
        matches!(
            err,
            Error::Rollback {
                what: "config",
                offered: 3,
                installed: 5
            }
        ),
        "{err:?}"
    );
    assert_eq!(row(&e.db), before);
    // v5 with another payload, while no config is in force: rollback too.
    let mut p5x = p5.clone();
    p5x["countries"]["IN"] = "sg".into();
    let err = b.install(&e.config(&p5x, &both)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rollback, "{err}");
    assert!(
        matches!(
            err,
            Error::SameVersionDifferent {
                what: "config",
                version: 5
            }
        ),
        "{err:?}"
    );
    assert_eq!(row(&e.db), before);
    assert_eq!(e.fresh_info().config_version, None);

    // v5, the SAME payload re-signed under the new threshold: welcome back.
    assert_eq!(
        a.install(&e.config(&p5, &both)).unwrap(),
        Installed::Config { version: 5 }
    );
    assert_eq!(region_of(&b).as_deref(), Some("in"));
    // v5 with another payload, now that v5 is in force: rollback.
    let before = row(&e.db);
    let err = b.install(&e.config(&p5x, &both)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rollback, "{err}");
    assert_eq!(row(&e.db), before);
    // v6: fine.
    assert_eq!(
        b.install(&e.config(&w.config_json(6), &both)).unwrap(),
        Installed::Config { version: 6 }
    );
    let info = e.fresh_info();
    assert_eq!(
        (
            info.root_version,
            info.config_version,
            info.approved_region.as_deref()
        ),
        (2, Some(6), Some("in"))
    );
}

// ------------------------------------------- 8. roots at open

/// A database holding root v1, config v1 and country IN (closed again).
fn seeded(e: &Env) {
    let s = e.open();
    s.install(&e.world.config_envelope(1)).unwrap();
    s.set_account_country("IN").unwrap();
}

#[test]
fn junk_firmware_root_is_malformed_even_when_the_database_has_a_root() {
    let e = env(&["in"]);
    seeded(&e);
    let before = row(&e.db);
    let err = Agent::open_with(&e.db, Some(b"junk"), e.world.agent_options()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed, "{err}");
    let err = Agent::open_with(&e.db, Some(b""), e.world.agent_options()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed, "{err}");
    assert_eq!(row(&e.db), before);
    assert_eq!(e.fresh_info().root_version, 1);
}

#[test]
fn same_version_other_root_at_open_is_root_mismatch_and_the_old_root_stays() {
    let e = env(&["in"]);
    let w = &e.world;
    seeded(&e);
    let before = row(&e.db);
    // Same version and keys, another expiry, validly self-signed.
    let other_v1 = root_env(
        1,
        "2098-01-01T00:00:00Z",
        &[&w.root_key],
        1,
        &[&w.config_key],
        1,
        &[&w.root_key],
    );
    let err = Agent::open_with(&e.db, Some(&other_v1), w.agent_options()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RootMismatch, "{err}");
    assert!(matches!(err, Error::RootMismatch { version: 1 }), "{err:?}");
    assert_eq!(row(&e.db), before);
    assert_eq!(row(&e.db).root, w.root_envelope);
    let info = e.fresh_info();
    assert_eq!(
        (
            info.root_version,
            info.config_version,
            info.approved_region.as_deref()
        ),
        (1, Some(1), Some("in"))
    );
    // The shipped root itself still opens, and so does the same payload
    // carrying an extra signature (same document, other envelope).
    e.open();
    let payload = root_payload(1, FAR, &[&w.root_key], 1, &[&w.config_key], 1);
    let resigned = sign_envelope(ROOT_PAYLOAD_TYPE, &payload, &[&w.root_key, &w.config_key]);
    assert_ne!(resigned, w.root_envelope);
    let a = Agent::open_with(&e.db, Some(&resigned), w.agent_options()).unwrap();
    assert_eq!(a.config_info().unwrap().root_version, 1);
    assert_eq!(row(&e.db), before);
}

#[test]
fn an_older_firmware_root_opens_and_the_stored_newer_root_is_kept() {
    let e = env(&["in"]);
    let w = &e.world;
    seeded(&e);
    let root2 = root_env(
        2,
        FAR,
        &[&w.root_key],
        1,
        &[&w.config_key],
        1,
        &[&w.root_key],
    );
    e.fresh().install(&root2).unwrap();
    let before = row(&e.db);
    let a = e.open(); // firmware root v1
    let info = a.config_info().unwrap();
    assert_eq!(
        (
            info.root_version,
            info.config_version,
            info.approved_region.as_deref()
        ),
        (2, Some(1), Some("in"))
    );
    assert_eq!(row(&e.db), before);
    assert_eq!(row(&e.db).root, root2);
}

#[test]
fn the_direct_successor_firmware_root_is_installed_at_open() {
    let e = env(&["in"]);
    let w = &e.world;
    seeded(&e);
    let gen0 = row(&e.db).generation;
    let root2 = root_env(
        2,
        FAR,
        &[&w.root_key],
        1,
        &[&w.config_key],
        1,
        &[&w.root_key],
    );
    let a = Agent::open_with(&e.db, Some(&root2), w.agent_options()).unwrap();
    let info = a.config_info().unwrap();
    assert_eq!(
        (
            info.root_version,
            info.config_version,
            info.approved_region.as_deref()
        ),
        (2, Some(1), Some("in"))
    );
    let r = row(&e.db);
    assert_eq!((r.root, r.generation), (root2.clone(), gen0 + 1));
    assert_eq!(e.fresh_info().root_version, 2);
    // Re-opening with the same firmware is a no-op.
    drop(Agent::open_with(&e.db, Some(&root2), w.agent_options()).unwrap());
    assert_eq!(row(&e.db).generation, gen0 + 1);
}

#[test]
fn a_successor_firmware_root_that_does_not_chain_is_refused_at_open() {
    let e = env(&["in"]);
    let w = &e.world;
    seeded(&e);
    let before = row(&e.db);
    let other = SigningKey::generate().unwrap();
    // v2 self-signed by a stranger only: the stored root's keys never vouched for it.
    let rogue = root_env(2, FAR, &[&other], 1, &[&w.config_key], 1, &[&other]);
    let err = Agent::open_with(&e.db, Some(&rogue), w.agent_options()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadSignature, "{err}");
    assert!(
        matches!(err, Error::BadSignature { role: "root" }),
        "{err:?}"
    );
    assert_eq!(row(&e.db), before);
    // v2 listing the stranger, signed by the old key only: the new key never proved possession.
    let half = root_env(2, FAR, &[&other], 1, &[&w.config_key], 1, &[&w.root_key]);
    let err = Agent::open_with(&e.db, Some(&half), w.agent_options()).unwrap_err();
    // TrustedRoot::reload checks self-signature first (before any chain check).
    assert_eq!(err.kind(), ErrorKind::BadSignature, "{err}");
    assert_eq!(row(&e.db), before);
    // Several versions ahead: the stored root is kept (the steps come by install).
    let v3 = root_env(
        3,
        FAR,
        &[&w.root_key],
        1,
        &[&w.config_key],
        1,
        &[&w.root_key],
    );
    let a = Agent::open_with(&e.db, Some(&v3), w.agent_options()).unwrap();
    assert_eq!(a.config_info().unwrap().root_version, 1);
    assert_eq!(row(&e.db), before);
}

// ------------------------------------------- 9. a run stops when another handle moves

const CHUNK: u64 = 64 * 1024;
const BIG: u64 = 4 * MIB;

/// A runs a slow upload of a multi-MiB file to `in` on a thread; once bytes
/// flow, `change` (through handle B) moves trust elsewhere. The run must
/// stop with `RegionChanged`, the item must be `held`, and the `in` server
/// may see at most the one request that was in flight.
fn run_then_change(change: impl FnOnce(&Env, &Agent)) {
    let e = env(&["in", "sg"]);
    let mut opts = e.world.agent_options();
    opts.upload.chunk_size = CHUNK;
    let a = Arc::new(e.open_at(&e.db, opts));
    a.install(&e.world.config_envelope(1)).unwrap();
    a.set_account_country("IN").unwrap();
    let b = e.open();
    let _ = b.config_info().unwrap();
    let p = file(e.dir.path(), "big", BIG, 7);
    let id = a.enqueue(&p, "backup", 0).unwrap();
    let s_in = &e.world.servers["in"];
    for _ in 0..200 {
        s_in.push_fault(Fault::Delay(Duration::from_millis(100)));
    }
    let rx = spawn_run(&a);
    // Wait until a few chunks have arrived (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    while s_in.stats().body_bytes_received < 3 * CHUNK {
        assert!(Instant::now() < deadline, "the upload never started");
        if let Ok(r) = rx.try_recv() {
            panic!("run ended before the change: {r:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    change(&e, &b);
    let requests_at_change = s_in.stats().requests;
    assert_eq!(region_of(&b).as_deref(), Some("sg"));
    let r = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("run did not stop (watchdog)")
        .unwrap();
    assert_eq!(
        (r.region.as_str(), r.uploaded, r.stopped),
        ("in", 0, StopReason::RegionChanged),
        "{r:?}"
    );
    let after = s_in.stats();
    eprintln!(
        "in: {} requests after the change, {} of {BIG} body bytes",
        after.requests - requests_at_change,
        after.body_bytes_received
    );
    assert!(
        after.requests - requests_at_change <= 1,
        "at most the request in flight: {} more",
        after.requests - requests_at_change
    );
    assert!(after.body_bytes_received < BIG, "{after:?}");
    assert_eq!(s_in.stats().uploads_completed, 0);
    let it = item(&b, id);
    assert_eq!(
        (it.region.as_deref(), it.state.as_str()),
        (Some("in"), "held"),
        "{it:?}"
    );
    assert_eq!(a.stats().unwrap().held, 1);
    untouched(&e.world, "sg");
    // Nothing more reaches `in`, not even from a new run.
    let r = run(&a).unwrap();
    assert_eq!(
        (r.region.as_str(), r.uploaded, r.held),
        ("sg", 0, 1),
        "{r:?}"
    );
    assert_eq!(s_in.stats().requests, after.requests);
    untouched(&e.world, "sg");
}

#[test]
fn a_run_stops_when_another_handle_moves_the_country_mid_upload() {
    run_then_change(|_, b| b.set_account_country("SG").unwrap());
}

#[test]
fn a_run_stops_when_another_handle_installs_a_config_without_the_region_mid_upload() {
    run_then_change(|e, b| {
        let mut p = e.world.config_json(2);
        p["regions"].as_object_mut().unwrap().remove("in");
        p["countries"].as_object_mut().unwrap().remove("IN");
        p["countries"]["*"] = "sg".into();
        assert_eq!(
            b.install(&e.world.sign_config(&p)).unwrap(),
            Installed::Config { version: 2 }
        );
    });
}
