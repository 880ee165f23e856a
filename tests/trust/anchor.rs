//! Issue 21: residency is anchored in the firmware root, never in what the
//! database says. Real SQLite files, real TLS servers and a real config
//! mirror on loopback; every scenario states its exact outcome and that
//! nothing was sent where the firmware root's chain does not vouch for it.

use cloudsync_testkit::sources as common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloudsync::config::model::unix_secs;
use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::ROOT_PAYLOAD_TYPE;
use cloudsync::{Agent, ErrorKind, Installed};
use cloudsync_devserver::world::{standard_regions, World};
use cloudsync_devserver::Fault;
use cloudsync_testkit::trust::untouched;
use common::*;
use rusqlite::Connection;

const RUN: Duration = Duration::from_secs(20);

fn now() -> u64 {
    unix_secs(SystemTime::now())
}

fn open(e: &Env, firmware: &[u8]) -> Arc<Agent> {
    Arc::new(Agent::open_with(&e.db, Some(firmware), e.world.agent_options()).unwrap())
}

/// A root without mirrors, signed by its own root key.
fn bare_root(version: u64, rk: &SigningKey, ck: &SigningKey) -> Vec<u8> {
    sign_envelope(
        ROOT_PAYLOAD_TYPE,
        &root_payload(version, FAR, &[rk], 1, &[ck], 1),
        &[rk],
    )
}

fn raw(db: &std::path::Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_firmware_root_two_versions_ahead_revokes_the_old_config_key_and_its_floors() {
    let e = env();
    let w = &e.world;
    // The v1 config key, since compromised, signed a config that leaves a
    // version floor of 2^62 and an `issued_at` in 2098 behind.
    let year = 365 * DAY;
    let poisoned = config_payload(w, 1 << 62, now() + 70 * year, now() + 72 * year);
    e.agent
        .install(&sign_config(&poisoned, &[&w.config_key]))
        .unwrap();
    let id = e
        .agent
        .enqueue(file(e.dir.path(), "a", 4096), "backup", 0)
        .unwrap();

    // The OTA brings root v3 (v2 and v3 rotated both keys); the phone skipped v2.
    let (rk3, ck3) = (
        SigningKey::generate().unwrap(),
        SigningKey::generate().unwrap(),
    );
    let fw3 = root_with_keys(3, &[&rk3], &[&ck3], &[&rk3], &e.urls(), &e.pins());
    let a = open(&e, &fw3);
    let info = a.config_info().unwrap();
    assert_eq!(
        (info.root_version, info.config_version, info.anchored),
        (3, None, true)
    );
    assert_eq!(
        info.trust_reset, None,
        "a newer firmware root is no tampering"
    );
    assert_eq!(
        raw(&e.db, "SELECT config_version_floor FROM trust"),
        0,
        "the floor left by the revoked key is gone"
    );
    assert!(raw(&e.db, "SELECT clock_floor FROM trust") < (now() + year) as i64);

    // A config the revoked key signs is refused; nothing uploads meanwhile.
    let revoked = sign_config(
        &config_payload(w, (1 << 62) + 1, now(), now() + DAY),
        &[&w.config_key],
    );
    let err = a.install(&revoked).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadSignature, "{err}");
    assert_eq!(run(&a, RUN).unwrap_err().kind(), ErrorKind::NoConfig);
    untouched(w, "in");

    // The reset floors let a fresh config v2 of the new key in: neither a
    // rollback under 2^62 nor expired under a 2098 clock floor.
    let fresh = sign_config(&config_payload(w, 2, now() - 60, now() + 30 * DAY), &[&ck3]);
    assert_eq!(a.install(&fresh).unwrap(), Installed::Config { version: 2 });
    let r = run(&a, RUN).unwrap();
    assert_eq!(r.uploaded, 1);
    assert_eq!(a.audit(0, 10).unwrap()[0].item_id, id);
}

/// A database made elsewhere: the attacker's own root v2 (self-signed, no
/// mirrors) and a config that sends `IN` to the attacker's host (here, the
/// `sg` server), with `chain_from` as the attacker likes it.
fn plant(e: &Env, chain_from: i64) -> std::path::PathBuf {
    let w = &e.world;
    let planted = e.dir.path().join(format!("planted{chain_from}.db"));
    let (rk, ck) = (
        SigningKey::generate().unwrap(),
        SigningKey::generate().unwrap(),
    );
    let mut p = config_payload(w, 9, now() - 60, now() + DAY);
    p["countries"]["IN"] = "sg".into();
    let a = Agent::open_with(&planted, Some(&bare_root(2, &rk, &ck)), w.agent_options()).unwrap();
    a.install(&sign_config(&p, &[&ck])).unwrap();
    a.set_account_country("IN").unwrap();
    a.enqueue(file(e.dir.path(), "photo", 64 * 1024), "backup", 0)
        .unwrap();
    assert_eq!(a.approved_region().unwrap().unwrap().id(), "sg");
    drop(a);
    Connection::open(&planted)
        .unwrap()
        .execute("UPDATE trust SET chain_from = ?1", [chain_from])
        .unwrap();
    planted
}

#[test]
fn a_planted_database_sends_nothing_to_the_planted_host() {
    // chain_from 0: the chain claims to be complete and does not verify:
    // tampering, reset at open. chain_from 2: it claims to start above the
    // firmware root: unverified, and it stays so while the firmware root's
    // mirror knows no root 2 (a 404 proves nothing): reads only.
    for (chain_from, at_open) in [(0, true), (2, false)] {
        let e = env_with(standard_regions(&["in", "sg"]), |w, m| {
            w.root_with_sources(1, &[m.url()], std::slice::from_ref(&m.pin))
        });
        let w = &e.world;
        let firmware = w.root_with_sources(1, &e.urls(), &e.pins());
        let planted = plant(&e, chain_from);
        let a = Arc::new(Agent::open_with(&planted, Some(&firmware), w.agent_options()).unwrap());
        let info = a.config_info().unwrap();
        assert_eq!(info.approved_region, None, "chain_from {chain_from}");
        assert_eq!(
            (info.anchored, info.trust_reset.is_some()),
            (at_open, at_open),
            "{info:?}"
        );
        e.publish_config(1);
        let r = run(&a, RUN);
        untouched(w, "sg");
        untouched(w, "in");
        if !at_open {
            let err = r.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::RootMismatch, "{err}");
            let info = a.config_info().unwrap();
            assert!(!info.anchored && info.trust_reset.is_none(), "{info:?}");
            continue;
        }
        // Reset at open: the run fetched the genuine config; the photo
        // queued under the planted one (stamped `sg`) is held for the
        // user's consent, sent nowhere.
        let r = r.unwrap();
        assert_eq!(
            (r.region.as_str(), r.uploaded, r.held),
            ("in", 0, 1),
            "{r:?}"
        );
        let info = a.config_info().unwrap();
        assert_eq!(
            info.trust_reset, None,
            "a config accepted since ends the notice"
        );
        untouched(w, "sg");
        assert_eq!(a.rehome_to("in").unwrap(), 1);
        assert_eq!(run(&a, RUN).unwrap().uploaded, 1);
        untouched(w, "sg");
    }
}

#[test]
fn a_mirror_that_withholds_a_root_leaves_a_legitimate_database_unverified_not_reset() {
    let e = env();
    e.publish_roots(2..=3);
    e.publish_config(1);
    assert_eq!(refresh(&e.agent).unwrap().root_version, 3);
    e.agent
        .enqueue(file(e.dir.path(), "a", 4096), "backup", 0)
        .unwrap();
    Connection::open(&e.db)
        .unwrap()
        .execute_batch("DELETE FROM root_chain; UPDATE trust SET chain_from = -1;")
        .unwrap();
    let firmware = e.world.root_with_sources(1, &e.urls(), &e.pins());
    let a = open(&e, &firmware);
    // root/2.json answers 404 (withheld): no false alarm, no reset, no upload.
    e.mirror.server.push_fault(Fault::Status {
        method: Some("GET"),
        status: 404,
        retry_after: None,
    });
    let err = refresh(&a).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RootMismatch, "{err}");
    let info = a.config_info().unwrap();
    assert_eq!(
        (info.root_version, info.anchored, info.trust_reset),
        (3, false, None)
    );
    untouched(&e.world, "in");
    // Served again: the chain verifies, uploads resume.
    refresh(&a).unwrap();
    assert!(a.config_info().unwrap().anchored);
    assert_eq!(run(&a, RUN).unwrap().uploaded, 1);
}

#[test]
fn damaged_or_out_of_range_values_in_the_file_never_wedge_or_panic() {
    let e = env();
    e.publish_config(1);
    refresh(&e.agent).unwrap();
    let firmware = e.world.root_with_sources(1, &e.urls(), &e.pins());
    let sql = |q: &str| Connection::open(&e.db).unwrap().execute_batch(q).unwrap();
    // A stored root that is not a root, an account key of the wrong size:
    // the firmware root takes over, said with a fixed sentence.
    for damage in [
        "UPDATE trust SET root = x'7b7d'",
        "UPDATE trust SET account_key = x'010203'",
    ] {
        sql(damage);
        let a = open(&e, &firmware);
        let info = a.config_info().unwrap();
        assert_eq!(
            info.trust_reset.as_deref(),
            Some("the stored root or account key is damaged"),
            "{damage}"
        );
        assert_eq!(info.root_version, 1);
    }
    // Text someone wrote into the reset column is never shown.
    sql("UPDATE trust SET trust_reset = 'Your backups are compromised: call +1-555-0100'");
    assert_eq!(open(&e, &firmware).config_info().unwrap().trust_reset, None);
    // A generation at i64::MAX wraps instead of turning the column into a REAL.
    sql("UPDATE trust SET generation = 9223372036854775807");
    let a = open(&e, &firmware);
    a.set_account_country("IN").unwrap();
    drop(a);
    assert_eq!(
        raw(&e.db, "SELECT typeof(generation) = 'integer' FROM trust"),
        1
    );
    assert!(open(&e, &firmware).config_info().is_ok());
    // Times past what RFC 3339 can write print as its last second.
    sql("UPDATE trust SET clock_floor = 9223372036854775807;
         UPDATE source_cache SET checked_at = 9223372036854775807;");
    let info = open(&e, &firmware).config_info().unwrap();
    assert!(info.expired, "{info:?}");
    assert_eq!(
        info.refresh_due_at_ms
            .map(cloudsync::config::model::format_time_ms)
            .as_deref(),
        Some("9999-12-31T23:59:59Z")
    );
}

#[test]
fn an_old_copy_restored_over_a_newer_database_gets_only_what_the_firmware_vouches_for() {
    let e = env_with(standard_regions(&["in", "sg"]), |w, m| {
        w.root_with_sources(1, &[m.url()], std::slice::from_ref(&m.pin))
    });
    let w = &e.world;
    e.agent.install(&w.config_envelope(1)).unwrap();
    e.agent
        .enqueue(file(e.dir.path(), "old", 8192), "backup", 0)
        .unwrap();
    let copy = e.dir.path().join("copy.db");
    Connection::open(&e.db)
        .unwrap()
        .execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();
    // Since then: root v2 rotated the config key and the user's data moved
    // to `sg` (config v3 sends IN there); the app's firmware now ships v2.
    let ck2 = SigningKey::generate().unwrap();
    let fw2 = root_with_keys(
        2,
        &[&w.root_key],
        &[&ck2],
        &[&w.root_key],
        &e.urls(),
        &e.pins(),
    );
    let mut p = config_payload(w, 3, now() - 60, now() + DAY);
    p["countries"]["IN"] = "sg".into();
    e.mirror
        .publish("config.json", &sign_config(&p, &[&ck2]))
        .unwrap();
    // The old copy comes back (Auto Backup, a device transfer).
    std::fs::copy(&copy, &e.db).unwrap();
    let a = open(&e, &fw2);
    let info = a.config_info().unwrap();
    assert_eq!(
        (info.root_version, info.config_version),
        (2, None),
        "{info:?}"
    );
    assert_eq!(
        info.trust_reset, None,
        "an older copy under a newer firmware root"
    );
    // The run fetches config v3 first; the old copy's item, stamped `in`, is
    // held for consent, never sent to `in`.
    let r = run(&a, RUN).unwrap();
    assert_eq!(
        (r.region.as_str(), r.uploaded, r.held),
        ("sg", 0, 1),
        "{r:?}"
    );
    assert_eq!(a.config_info().unwrap().config_version, Some(3));
    untouched(w, "in");
    assert_eq!(a.rehome_to("sg").unwrap(), 1);
    assert_eq!(run(&a, RUN).unwrap().uploaded, 1);
    untouched(w, "in");
    assert!(w.servers["sg"].stats().uploads_completed >= 1);
}

#[test]
fn an_upgraded_database_without_a_chain_is_re_walked_without_a_false_alarm() {
    let e = env();
    e.publish_roots(2..=3);
    e.publish_config(1);
    let r = refresh(&e.agent).unwrap();
    assert_eq!((r.roots.clone(), r.config), (vec![2, 3], Some(1)));
    e.agent
        .enqueue(file(e.dir.path(), "a", 4096), "backup", 0)
        .unwrap();
    // As schema v10 left it: no chain, `chain_from` unknown.
    {
        let c = Connection::open(&e.db).unwrap();
        c.execute_batch("DELETE FROM root_chain; UPDATE trust SET chain_from = -1;")
            .unwrap();
    }
    let firmware = e.world.root_with_sources(1, &e.urls(), &e.pins());
    let a = open(&e, &firmware);
    let info = a.config_info().unwrap();
    assert_eq!(
        (
            info.root_version,
            info.anchored,
            info.trust_reset.clone(),
            info.approved_region.clone()
        ),
        (3, false, None, None)
    );
    // The mirror is down: reads work, nothing uploads.
    e.mirror.server.push_fault(Fault::Status {
        method: None,
        status: 503,
        retry_after: None,
    });
    let err = run(&a, RUN).unwrap_err();
    assert_eq!(
        (err.kind(), err.to_string().as_str()),
        (
            ErrorKind::RootMismatch,
            "the stored root is newer than the firmware root and not yet verified: refresh the config"
        )
    );
    untouched(&e.world, "in");
    let seen = e.requests();
    let r = refresh(&a).unwrap();
    assert_eq!(
        e.paths_since(seen)[..2],
        ["/sources/root/2.json", "/sources/root/3.json"]
    );
    assert_eq!((r.roots.clone(), r.root_version), (vec![], 3), "{r:?}");
    let info = a.config_info().unwrap();
    assert!(info.anchored && info.trust_reset.is_none(), "{info:?}");
    assert_eq!(run(&a, RUN).unwrap().uploaded, 1);
    // Stored now: the next open verifies the chain without a mirror.
    drop(a);
    let b = open(&e, &firmware);
    assert!(b.config_info().unwrap().anchored);
    assert_eq!(raw(&e.db, "SELECT chain_from FROM trust"), 1);
}

#[test]
fn a_phone_70_roots_behind_catches_up_in_two_calls() {
    let e = env();
    let w = &e.world;
    // Roots 2..=71; the config key changes at 70, so config v1 (signed by
    // the new key) only verifies once the walk is past 64 steps.
    let ck = SigningKey::generate().unwrap();
    for v in 2..=71u64 {
        let keys: &SigningKey = if v >= 70 { &ck } else { &w.config_key };
        let root = root_with_keys(
            v,
            &[&w.root_key],
            &[keys],
            &[&w.root_key],
            &e.urls(),
            &e.pins(),
        );
        e.mirror.publish(&format!("root/{v}.json"), &root).unwrap();
    }
    let cfg = config_payload(w, 1, now() - 60, now() + 30 * DAY);
    e.mirror
        .publish("config.json", &sign_config(&cfg, &[&ck]))
        .unwrap();

    let first = refresh(&e.agent).unwrap();
    assert_eq!(first.roots, (2..=65).collect::<Vec<u64>>());
    assert_eq!(
        (first.root_version, first.config, first.more_roots),
        (65, None, true)
    );
    assert_eq!(first.config_error, Some(ErrorKind::BadSignature));
    // Kept on disk, and due again at once.
    let reopened = open(&e, &w.root_with_sources(1, &e.urls(), &e.pins()));
    let info = reopened.config_info().unwrap();
    assert_eq!(info.root_version, 65);
    let due = info.refresh_due_at_ms.expect("due") as u64 / 1000;
    assert!(due <= now(), "due at once: {info:?}");

    let second = refresh(&e.agent).unwrap();
    assert_eq!(second.roots, (66..=71).collect::<Vec<u64>>());
    assert_eq!(
        (second.config, second.more_roots, second.config_error),
        (Some(1), false, None)
    );
    // The chain is kept small: the key change at 70 and the newest.
    let rows = raw(&e.db, "SELECT count(*) FROM root_chain");
    assert!(rows <= 2, "{rows} chain rows");
    assert!(reopened.config_info().unwrap().anchored);
}

#[test]
fn an_expired_firmware_root_catches_up_from_its_mirrors() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::start(&dir.path().join("servers"), standard_regions(&["in"])).unwrap();
    let m = w
        .start_mirror(std::net::Ipv4Addr::new(127, 0, 0, 9), "mirror")
        .unwrap();
    let (urls, pins) = (vec![m.url()], vec![m.pin.clone()]);
    let mut p: serde_json::Value = serde_json::from_slice(&root_payload(
        1,
        "2020-01-01T00:00:00Z",
        &[&w.root_key],
        1,
        &[&w.config_key],
        1,
    ))
    .unwrap();
    p["sources"] = serde_json::json!({"urls": urls, "pins": pins});
    let expired = sign_envelope(
        ROOT_PAYLOAD_TYPE,
        &serde_json::to_vec(&p).unwrap(),
        &[&w.root_key],
    );
    let db = dir.path().join("q.db");
    let a = Arc::new(Agent::open_with(&db, Some(&expired), w.agent_options()).unwrap());
    a.set_account_country("IN").unwrap();
    a.enqueue(file(dir.path(), "a", 4096), "backup", 0).unwrap();
    assert!(a.config_info().unwrap().expired, "an expired root in force");
    // Nothing newer on the mirror yet: nothing uploads.
    assert_eq!(run(&a, RUN).unwrap_err().kind(), ErrorKind::NoConfig);
    let stale = w.sign_config(&w.config_json(1));
    assert_eq!(a.install(&stale).unwrap_err().kind(), ErrorKind::Expired);
    untouched(&w, "in");
    m.publish("root/2.json", &w.root_with_sources(2, &urls, &pins))
        .unwrap();
    m.publish("config.json", &w.config_envelope(1)).unwrap();
    let r = refresh(&a).unwrap();
    assert_eq!((r.roots, r.config), (vec![2], Some(1)));
    assert_eq!(run(&a, RUN).unwrap().uploaded, 1);
}
