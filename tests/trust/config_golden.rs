//! Golden envelopes signed by an independent signer (tests/golden/make_golden.py,
//! Python `cryptography`; cross-checked with securesystemslib) against the
//! crate's verifier and trust store, on real SQLite files. Every rejection is
//! checked for its exact kind and for leaving the store byte-for-byte as it was.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cloudsync::config::model::parse_time;
use cloudsync::{Agent, AgentOptions, ErrorKind, Installed};
use serde::Deserialize;

#[derive(Deserialize)]
struct Entry {
    file: String,
    expect: String,
    install_as: String,
    requires: Vec<String>,
    now: String,
}

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name),
    )
    .expect(name)
}

fn agent_at(db: &Path, root: Option<&[u8]>, now: u64) -> cloudsync::Result<Agent> {
    let opts = AgentOptions {
        clock: Arc::new(move || now),
        ..Default::default()
    };
    Agent::open_with(db, root, opts)
}

/// The trust row exactly as stored.
fn trust_row(db: &Path) -> Vec<u8> {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(
        "SELECT root, coalesce(config, x''), clock_floor, coalesce(country,'') FROM trust",
        [],
        |r| {
            let mut v: Vec<u8> = r.get(0)?;
            v.extend(r.get::<_, Vec<u8>>(1)?);
            v.extend(r.get::<_, i64>(2)?.to_le_bytes());
            v.extend(r.get::<_, String>(3)?.into_bytes());
            Ok(v)
        },
    )
    .unwrap()
}

fn kind_name(k: ErrorKind) -> String {
    k.name().to_string()
}

#[test]
fn every_manifest_entry_has_its_exact_outcome() {
    let manifest: Vec<Entry> = serde_json::from_slice(&golden("manifest.json")).unwrap();
    assert!(manifest.len() >= 35);
    for e in manifest {
        let now = parse_time("now", &e.now).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db: PathBuf = dir.path().join("q.db");
        let bytes = golden(&e.file);
        if e.requires.is_empty() {
            // Bootstrap: the file is the firmware's initial root.
            let got = agent_at(&db, Some(&bytes), now)
                .map(|_| ())
                .map_err(|e| kind_name(e.kind()));
            let want = if e.expect == "ok" {
                Ok(())
            } else {
                Err(e.expect.clone())
            };
            assert_eq!(got, want, "{}", e.file);
            continue;
        }
        let agent = agent_at(&db, Some(&golden(&e.requires[0])), now).unwrap();
        for req in &e.requires[1..] {
            agent
                .install(&golden(req))
                .unwrap_or_else(|err| panic!("{}: prerequisite {req}: {err}", e.file));
        }
        agent.set_account_country("IN").unwrap();
        let before_row = trust_row(&db);
        let before_info = agent.config_info().unwrap();
        let got = match e.install_as.as_str() {
            "root" => agent.install_root(&bytes),
            _ => agent.install_config(&bytes),
        };
        match (&got, e.expect.as_str()) {
            (Ok(Installed::Root { .. } | Installed::Config { .. }), "ok") => {}
            (Err(err), want) => {
                assert_eq!(err.kind().name(), want, "{}: {err}", e.file);
                // The message names the problem without echoing contents.
                let msg = err.to_string();
                for secret in ["example.net", "https://", "ed25519", "BEGIN"] {
                    assert!(
                        !msg.contains(secret),
                        "{}: message leaks {secret:?}: {msg}",
                        e.file
                    );
                }
                // A rejected install changes nothing: not in memory, not on disk.
                assert_eq!(agent.config_info().unwrap(), before_info, "{}", e.file);
                assert_eq!(trust_row(&db), before_row, "{}", e.file);
                drop(agent);
                let reopened = agent_at(&db, Some(&golden("root_v1.json")), now).unwrap();
                assert_eq!(reopened.config_info().unwrap(), before_info, "{}", e.file);
            }
            (other, want) => panic!("{}: expected {want}, got {other:?}", e.file),
        }
    }
}

#[test]
fn install_then_reopen_persists_root_config_and_region() {
    let now = parse_time("now", "2026-12-01T00:00:00Z").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let agent = agent_at(&db, Some(&golden("root_v1.json")), now).unwrap();
    assert_eq!(
        agent.install(&golden("config_v7.json")).unwrap(),
        Installed::Config { version: 7 }
    );
    assert_eq!(
        agent.install(&golden("config_v7.json")).unwrap(),
        Installed::Unchanged,
        "idempotent"
    );
    assert_eq!(
        agent.install(&golden("root_v2_good.json")).unwrap(),
        Installed::Root { version: 2 }
    );
    agent.set_account_country("br").unwrap();
    drop(agent);
    let agent = agent_at(&db, Some(&golden("root_v1.json")), now).unwrap();
    let info = agent.config_info().unwrap();
    assert_eq!((info.root_version, info.config_version), (2, Some(7)));
    assert_eq!(info.regions, vec!["br", "in", "sg", "us"]);
    assert_eq!(agent.approved_region().unwrap().unwrap().id(), "br");
    agent.set_account_country("FR").unwrap();
    assert_eq!(
        agent.approved_region().unwrap().unwrap().id(),
        "sg",
        "the * default"
    );
    // The firmware's (older) root passed again at open does not walk trust back.
    drop(agent);
    let agent = agent_at(&db, Some(&golden("root_v1.json")), now).unwrap();
    assert_eq!(agent.config_info().unwrap().root_version, 2);
    // A root-v1-era rotation to v2 again is a no-op; v1 is a rollback.
    assert_eq!(
        agent.install(&golden("root_v2_good.json")).unwrap(),
        Installed::Unchanged
    );
    assert_eq!(
        agent.install(&golden("root_v1.json")).unwrap_err().kind(),
        ErrorKind::Rollback
    );
}

#[test]
fn expiry_follows_the_clock_and_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let t = |s| parse_time("t", s).unwrap();
    let agent = agent_at(
        &db,
        Some(&golden("root_v1.json")),
        t("2026-12-01T00:00:00Z"),
    )
    .unwrap();
    agent.install(&golden("config_v8.json")).unwrap(); // issued 2026-11-15, expires 2027-06-01
    agent.set_account_country("IN").unwrap();
    drop(agent);
    // Clock set back before issued_at: the floor (issued_at) holds the clock,
    // so the config is judged at 2026-11-15, still valid, not at 2020.
    let back = agent_at(
        &db,
        Some(&golden("root_v1.json")),
        t("2020-01-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(back.approved_region().unwrap().unwrap().id(), "in");
    drop(back);
    // Later than expiry: uploads stop (fail closed).
    let late = agent_at(
        &db,
        Some(&golden("root_v1.json")),
        t("2027-06-02T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(
        late.approved_region().unwrap_err().kind(),
        ErrorKind::Expired
    );
    assert!(late.config_info().unwrap().expired);
    drop(late);
    // Sticky: the expiry was recorded, so setting the clock back (ten
    // minutes, or years) does not revive config v8.
    for when in ["2027-06-01T23:50:00Z", "2020-01-01T00:00:00Z"] {
        let back = agent_at(&db, Some(&golden("root_v1.json")), t(when)).unwrap();
        assert_eq!(
            back.approved_region().unwrap_err().kind(),
            ErrorKind::Expired,
            "{when}"
        );
        assert!(back.config_info().unwrap().expired, "{when}");
    }
    let back = agent_at(
        &db,
        Some(&golden("root_v1.json")),
        t("2020-01-01T00:00:00Z"),
    )
    .unwrap();
    // And the expired config stays refused with the clock set back.
    assert_eq!(
        back.install(&golden("config_expired.json"))
            .unwrap_err()
            .kind(),
        ErrorKind::Expired
    );
    // A config issued in 2099 moves the floor past config v8's expiry and the root's.
    back.install(&golden("config_future_issued.json")).unwrap();
    assert_eq!(
        back.approved_region().unwrap_err().kind(),
        ErrorKind::Expired
    );
}

#[test]
fn garbage_initial_roots_are_refused_with_no_database_trust() {
    let now = parse_time("now", "2026-12-01T00:00:00Z").unwrap();
    for (name, kind) in [
        ("garbage.json", ErrorKind::Malformed),
        ("empty.json", ErrorKind::Malformed),
        ("config_v7.json", ErrorKind::WrongPayloadType),
        ("root_v2_old_only.json", ErrorKind::ThresholdNotMet),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let e = agent_at(&db, Some(&golden(name)), now).unwrap_err();
        assert_eq!(e.kind(), kind, "{name}");
        let e = agent_at(&db, None, now).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoConfig, "{name}: nothing was trusted");
    }
}
