//! Issue 10, "Trust belongs to the database" (continued from
//! `trust_handles.rs`): what two `Agent` handles on one SQLite file see of
//! time and versions. An expiry once observed is sticky across a clock set
//! back and across handles; the config version floor survives a rotation that
//! drops the config; a firmware root given at open never replaces or rolls
//! back the stored one except by its direct, chained successor.
//!
//! Real SQLite files in temp dirs and loopback tus servers, as in
//! `trust_handles.rs`; the shared helpers are in `common/trust.rs`.

use cloudsync_testkit::trust as common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use cloudsync::config::model::{format_time, unix_secs};
use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::ROOT_PAYLOAD_TYPE;
use cloudsync::{Agent, Error, ErrorKind, Installed};
use common::{clocked, env, file, item, region_of, root_env, row, run, untouched, Env, FAR};

// ------------------------------------------- 6. sticky expiry

/// Config `v` issued at `issued`, expiring at `expires` (seconds).
fn timed_config(e: &Env, v: u64, issued: u64, expires: u64) -> Vec<u8> {
    let mut p = e.world.config_json(v);
    p["issued_at"] = format_time(issued).into();
    p["expires_at"] = format_time(expires).into();
    e.world.sign_config(&p)
}

/// Issue 24: a clock past year 9999 (and the clock floor it leaves in the
/// database) must not make `config_info` fail: times print clamped to
/// 9999-12-31T23:59:59Z.
#[test]
fn config_info_works_with_a_clock_past_year_9999() {
    let e = env(&["in", "sg"]);
    let t0 = unix_secs(SystemTime::now());
    let clock = Arc::new(AtomicU64::new(t0));
    let opts = clocked(&e.world, &clock);
    let a = e.open_at(&e.db, opts.clone());
    a.install(&timed_config(&e, 1, t0 - 3600, t0 + 3600))
        .unwrap();
    a.set_account_country("IN").unwrap();
    for far in [253_402_300_800, i64::MAX as u64, u64::MAX] {
        clock.store(far, Ordering::SeqCst);
        let info = a.config_info().unwrap();
        assert!(info.expired, "{info:?}");
        assert_eq!(
            info.expires_at_ms,
            Some(cloudsync::config::model::secs_to_ms(t0 + 3600))
        );
        // The world's root names no mirrors: nothing to refresh from.
        assert_eq!(info.refresh_due_at_ms, None, "{info:?}");
        // A new handle reads the floor the far clock left behind.
        clock.store(t0, Ordering::SeqCst);
        let b = e.open_at(&e.db, opts.clone());
        assert!(b.config_info().unwrap().expired);
    }
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
// Long: one scenario end to end; each step reads the state the previous one left.
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
fn same_version_other_root_at_open_is_put_in_force_and_said() {
    let e = env(&["in"]);
    let w = &e.world;
    seeded(&e);
    let gen0 = row(&e.db).generation;
    // Same version and keys, another expiry, validly self-signed: the file
    // holds a root this firmware never shipped (issue 21: the firmware root
    // is the anchor, never the file).
    let other_v1 = root_env(
        1,
        "2098-01-01T00:00:00Z",
        &[&w.root_key],
        1,
        &[&w.config_key],
        1,
        &[&w.root_key],
    );
    let a = Agent::open_with(&e.db, Some(&other_v1), w.agent_options()).unwrap();
    let info = a.config_info().unwrap();
    assert_eq!(
        (
            info.root_version,
            info.config_version,
            info.approved_region.as_deref(),
            info.trust_reset.as_deref()
        ),
        // Its config keys are the same: config v1 is still vouched for.
        (
            1,
            Some(1),
            Some("in"),
            Some("the stored root differs from the firmware root")
        )
    );
    assert_eq!(
        (row(&e.db).root, row(&e.db).generation),
        (other_v1, gen0 + 1)
    );
    drop(a);
    // The shipped root puts itself back the same way.
    e.open();
    assert_eq!(row(&e.db).root, w.root_envelope);
    // The same payload carrying an extra signature is the same document:
    // nothing changes.
    let before = row(&e.db);
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
fn a_newer_firmware_root_is_the_anchor_whatever_the_stored_keys() {
    let e = env(&["in"]);
    let w = &e.world;
    seeded(&e);
    let before = row(&e.db);
    let other = SigningKey::generate().unwrap();
    // v2 listing the stranger, signed by the old key only: not a valid root
    // at all (it never proved possession of its own key).
    let half = root_env(2, FAR, &[&other], 1, &[&w.config_key], 1, &[&w.root_key]);
    let err = Agent::open_with(&e.db, Some(&half), w.agent_options()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadSignature, "{err}");
    assert_eq!(row(&e.db), before);
    // Several versions ahead, the steps in between never seen: in force at
    // once (the firmware is the anchor); the same config key still vouches
    // for config v1, so nothing else changes.
    let v3 = root_env(3, FAR, &[&other], 1, &[&w.config_key], 1, &[&other]);
    let a = Agent::open_with(&e.db, Some(&v3), w.agent_options()).unwrap();
    let info = a.config_info().unwrap();
    assert_eq!(
        (
            info.root_version,
            info.config_version,
            info.approved_region.as_deref(),
            info.trust_reset
        ),
        (3, Some(1), Some("in"), None)
    );
    assert_eq!(row(&e.db).root, v3);
}
