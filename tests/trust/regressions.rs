//! Regression tests from the adversarial review of trust in the database:
//! a queued DELETE (its URL may carry a token) after the region moved, a
//! single wrong clock reading past the root's expiry, and a trust row
//! rewritten by a process that predates the version floor. Real SQLite
//! files, real TLS servers on loopback; each run has its own timeout.
//!
//! Not here: a handle opened while another commits a trust write (the
//! `data_version` baseline is now read before the open's own transaction);
//! the window is a few microseconds wide and needs a timing hook to hit.

use cloudsync_testkit::trust as common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cloudsync::config::model::unix_secs;
use cloudsync_devserver::Fault;

use common::{clocked, env, region_of, row, spawn_run, RUN_LIMIT};
use rusqlite::Connection;

/// A runs in `in` with 4 queued terminations (DELETEs). While the first
/// DELETE is in flight, B moves the account to SG: no further DELETE (its
/// upload URL may carry a token) reaches `in`.
#[test]
fn no_queued_delete_reaches_the_old_region_after_the_account_moved() {
    let e = env(&["in", "sg"]);
    let a = Arc::new(e.open());
    a.install(&e.world.config_envelope(1)).unwrap();
    a.set_account_country("IN").unwrap();
    let c = Connection::open(&e.db).unwrap();
    for i in 0..4 {
        c.execute(
            "INSERT INTO terminations (region, upload_url) VALUES ('in', ?1)",
            [format!("{}secret-upload-token-{i}", e.world.url("in"))],
        )
        .unwrap();
    }
    let srv = &e.world.servers["in"];
    for _ in 0..4 {
        srv.push_fault(Fault::Delay(Duration::from_millis(400)));
    }
    let rx = spawn_run(&a);
    let t = Instant::now();
    while srv.stats().requests < 1 {
        assert!(t.elapsed() < Duration::from_secs(10), "no DELETE seen");
        std::thread::sleep(Duration::from_millis(5));
    }
    let b = e.open();
    b.set_account_country("SG").unwrap();
    assert_eq!(region_of(&b).as_deref(), Some("sg"));
    let at_move = srv.stats().requests;
    let r = rx.recv_timeout(RUN_LIMIT).unwrap().unwrap();
    let after = srv.stats().requests;
    assert_eq!(r.stopped, cloudsync::StopReason::RegionChanged);
    assert_eq!(
        after,
        at_move,
        "{} request(s) carrying upload URLs reached 'in' after the account moved to sg",
        after - at_move
    );
}

/// One wrong clock reading past the root's expiry fails closed at that
/// moment but is not recorded (only signed time makes a root's expiry
/// sticky): once the clock is right, a newer config installs and uploads
/// resume without waiting for a root rotation.
#[test]
fn a_single_clock_reading_past_root_expiry_is_not_sticky() {
    let e = env(&["in", "sg"]);
    let t0 = unix_secs(SystemTime::now());
    let clock = Arc::new(AtomicU64::new(t0));
    let a = e.open_at(&e.db, clocked(&e.world, &clock));
    a.install(&e.world.config_envelope(1)).unwrap();
    a.set_account_country("IN").unwrap();
    assert_eq!(region_of(&a).as_deref(), Some("in"));

    clock.store(4_070_908_800 + 86_400, Ordering::SeqCst); // 2099-01-02: one bad reading
    let err = a.approved_region().unwrap_err();
    assert_eq!(
        err.kind(),
        cloudsync::ErrorKind::Expired,
        "fails closed while the clock says so"
    );
    assert!(a.config_info().unwrap().expired);
    clock.store(t0, Ordering::SeqCst); // corrected at once

    assert_eq!(row(&e.db).expired_root_version, 0, "not recorded");
    // Config v1's expiry was seen at that reading and stays (sticky)...
    assert_eq!(
        a.approved_region().unwrap_err().kind(),
        cloudsync::ErrorKind::Expired
    );
    // ...until a newer config, which the root still vouches for.
    a.install(&e.world.config_envelope(2)).unwrap();
    assert_eq!(region_of(&a).as_deref(), Some("in"));
}

/// A row whose config is older than its own version floor (written by a
/// process that predates the floor, or tampered) is never put in force, and
/// such a write still moves the generation (a trigger), so cached handles
/// notice it too.
#[test]
fn a_stored_config_below_the_floor_is_ignored_on_load() {
    let e = env(&["in", "sg"]);
    let a = e.open();
    let v1 = e.world.config_envelope(1);
    a.install(&v1).unwrap();
    a.set_account_country("IN").unwrap();
    // v2 drops `in`; IN falls to the default, sg.
    let mut p = e.world.config_json(2);
    p["regions"].as_object_mut().unwrap().remove("in");
    p["countries"].as_object_mut().unwrap().remove("IN");
    p["countries"]["*"] = "sg".into();
    a.install(&e.world.sign_config(&p)).unwrap();
    assert_eq!(region_of(&a).as_deref(), Some("sg"));
    let before = row(&e.db);
    // An old (v2-schema) build's UPSERT: root/config/clock_floor/country, no generation bump.
    let c = Connection::open(&e.db).unwrap();
    c.execute("UPDATE trust SET config = ?1 WHERE id = 1", [&v1])
        .unwrap();
    let after = row(&e.db);
    assert_eq!(
        after.generation,
        before.generation + 1,
        "the trigger bumped it"
    );
    assert_eq!(after.config_version_floor, 2);
    let fresh = e.fresh();
    assert_eq!(fresh.config_info().unwrap().config_version, None);
    assert_eq!(region_of(&a).as_deref(), None, "A re-read the row too");
    assert_eq!(
        region_of(&fresh).as_deref(),
        None,
        "config v1 (below the floor v2) must not come back in force"
    );
}

/// Issue 24: `chunk_size = 0` made every PATCH send nothing and the run spin
/// to its deadline; it is refused when the agent is opened.
#[test]
fn a_zero_chunk_size_is_an_invalid_argument_at_open() {
    let e = env(&["in"]);
    let mut opts = e.world.agent_options();
    opts.upload.chunk_size = 0;
    let err = cloudsync::Agent::open_with(&e.db, Some(&e.world.root_envelope), opts)
        .expect_err("chunk_size 0 must be refused");
    assert_eq!(err.kind(), cloudsync::ErrorKind::InvalidArgument);
    assert_eq!(
        err.to_string(),
        "invalid argument: chunk_size must be at least 1 byte"
    );
    let mut one = e.world.agent_options();
    one.upload.chunk_size = 1;
    assert!(cloudsync::Agent::open_with(&e.db, Some(&e.world.root_envelope), one).is_ok());
}
