//! Issue 10, "Trust belongs to the database": two `Agent` handles opened on
//! the same SQLite file in one process must never disagree about where bytes
//! may go, and a stale handle must never roll trust back (docs/DESIGN.md,
//! "Trust state lives in the database").
//!
//! Everything here runs on real SQLite files in temp dirs; the tests that
//! upload use real TLS tus servers on loopback (`devserver::world::World`) and
//! the servers' own byte counters. Every run happens on its own thread behind
//! a `recv_timeout` watchdog: a hang is a failure, not a stuck test binary.
//!
//! Sticky expiry, the version floor across rotation and roots at open are in
//! `trust_clock_roots.rs`; the shared helpers in `common/trust.rs`.

use cloudsync_testkit::trust as common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudsync::config::sign::SigningKey;
use cloudsync::{Agent, Error, ErrorKind, Installed, State, StopReason};
use cloudsync_devserver::Fault;
use common::{env, file, item, region_of, root_env, row, run, spawn_run, untouched, Env, FAR, MIB};

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
// Long: one scenario end to end; each step reads the state the previous one left.
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
// Long: one scenario end to end; each step reads the state the previous one left.
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
                let c = Agent::open_with(&db, Some(&w.root_envelope), w.agent_options()).unwrap();
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
    a.list(Some(State::Held), 0, 100)
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

/// The user was asked "move 3 backups to sg?"; before the answer lands,
/// another handle moves the account to US. The consent-bound rehome refuses
/// (nothing restamped); asked again for `us`, it moves them there.
#[test]
fn consent_bound_rehome_refuses_when_another_handle_moved_the_account_meanwhile() {
    let e = env(&["in", "sg", "us"]);
    let (a, b, ids) = held_setup(&e);
    b.set_account_country("SG").unwrap();
    let asked = a.approved_region().unwrap().unwrap().id().to_string();
    assert_eq!(asked, "sg");
    b.set_account_country("US").unwrap();
    let before = row(&e.db);
    let err = a.rehome_to(&asked).unwrap_err();
    assert!(matches!(err, Error::RegionChanged), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Residency);
    assert_eq!(row(&e.db), before);
    assert_eq!(held_ids(&b), ids, "still held, nothing restamped");
    for id in &ids {
        assert_eq!(item(&a, *id).region.as_deref(), Some("in"));
    }
    assert_eq!(a.rehome_to("us").unwrap(), 3);
    for id in &ids {
        let it = item(&b, *id);
        assert_eq!(
            (it.region.as_deref(), it.state.as_str()),
            (Some("us"), "pending")
        );
    }
    untouched(&e.world, "in");
    untouched(&e.world, "sg");
    untouched(&e.world, "us");
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
    assert!(b.list(None, 0, 100).unwrap().is_empty());
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
