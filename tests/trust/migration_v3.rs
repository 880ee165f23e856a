//! Schema v2 → v3 (issue 10): the trust row gains a generation counter, the
//! config version floor (kept apart from the config row), and sticky-expiry
//! marks. A v2 database is built with rusqlite straight from
//! `MIGRATIONS[..2]` (the kit's `schema::wal_database_at`, not through the
//! crate's open path), holding a real root v1, a config v5, country IN and
//! one queued item. Opening it with `Agent`
//! must migrate it, keep config v5 in force and the item intact, and derive
//! the version floor from the v2 row: a rotation that drops the config must
//! not let an older config back in.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, UNIX_EPOCH};

use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::{CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};
use cloudsync::queue::schema::{CURRENT_VERSION, MIGRATIONS};
use cloudsync::{Agent, Error, ErrorKind, Installed, StopReason};
use cloudsync_devserver::world::{standard_regions, World};
use cloudsync_testkit::schema::{user_version, wal_database_at};
use rusqlite::{params, Connection};

const FAR: &str = "2099-01-01T00:00:00Z";

struct V2 {
    dir: tempfile::TempDir,
    world: World,
    db: PathBuf,
    /// Config v5's payload (JSON value) and envelope, as stored in the v2 row.
    p5: serde_json::Value,
    cfg5: Vec<u8>,
    /// The queued item: id, path, size, mtime_ns.
    item: (i64, PathBuf, i64, i64),
}

fn trust_columns(db: &Path) -> Vec<String> {
    cloudsync_testkit::schema::columns(db, "trust")
}

/// `(id, path, service, priority, size, mtime_ns, region, state, attempts)` of every item.
type ItemRow = (
    i64,
    String,
    String,
    i64,
    i64,
    i64,
    Option<String>,
    String,
    i64,
);

fn items(db: &Path) -> Vec<ItemRow> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare(
            "SELECT id, path, service, priority, size, mtime_ns, region, state, attempts
             FROM items ORDER BY id",
        )
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })
        .unwrap();
    rows.collect::<rusqlite::Result<Vec<_>>>().unwrap()
}

/// `(generation, config_version_floor, config_floor_sha256)` of the trust row.
fn floor_cols(db: &Path) -> (i64, i64, Option<Vec<u8>>) {
    Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT generation, config_version_floor, config_floor_sha256 FROM trust WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

/// A schema-v2 database, written without the crate's open path.
fn build_v2() -> V2 {
    assert!(MIGRATIONS.len() >= 3, "this test is about the step to v3");
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(&dir.path().join("servers"), standard_regions(&["in", "sg"])).unwrap();
    let db = dir.path().join("v2.db");
    let p5 = world.config_json(5);
    let cfg5 = world.sign_config(&p5);

    let src = dir.path().join("photo.jpg");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let md = std::fs::metadata(&src).unwrap();
    let mtime_ns = md
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let size = md.len() as i64;

    let c = wal_database_at(2, &db);
    let issued_floor = 1_700_000_000i64; // an old clock floor, well behind every issued_at here
    c.execute(
        "INSERT INTO trust (id, root, config, clock_floor, country) VALUES (1, ?1, ?2, ?3, 'IN')",
        params![world.root_envelope, cfg5, issued_floor],
    )
    .unwrap();
    c.execute(
        "INSERT INTO items (path, service, priority, size, mtime_ns, region, state,
                            next_attempt_at, created_at, updated_at)
         VALUES (?1, 'backup', 3, ?2, ?3, 'in', 'pending', 1000, 1000, 1000)",
        params![src.to_str().unwrap(), size, mtime_ns],
    )
    .unwrap();
    let id = c.last_insert_rowid();
    drop(c);
    assert_eq!(user_version(&db), 2);
    assert!(!trust_columns(&db).contains(&"generation".to_string()));
    V2 {
        dir,
        world,
        db,
        p5,
        cfg5,
        item: (id, src, size, mtime_ns),
    }
}

fn root_env(version: u64, config_keys: &[&SigningKey], threshold: u64, w: &World) -> Vec<u8> {
    sign_envelope(
        ROOT_PAYLOAD_TYPE,
        &root_payload(version, FAR, &[&w.root_key], 1, config_keys, threshold),
        &[&w.root_key],
    )
}

fn signed(p: &serde_json::Value, keys: &[&SigningKey]) -> Vec<u8> {
    sign_envelope(CONFIG_PAYLOAD_TYPE, &serde_json::to_vec(p).unwrap(), keys)
}

fn run(a: &Arc<Agent>) -> cloudsync::Result<cloudsync::RunReport> {
    let (tx, rx) = mpsc::channel();
    let a = a.clone();
    std::thread::spawn(move || {
        let _ = tx.send(a.run_once(Duration::from_secs(60), &mut |_| true));
    });
    rx.recv_timeout(Duration::from_secs(75))
        .expect("run_once hung (watchdog)")
}

#[test]
// Long: builds the old database, migrates it, then checks every table the step touches.
fn a_v2_database_migrates_keeps_config_v5_and_the_item_and_its_floor_survives_a_rotation() {
    let v = build_v2();
    let w = &v.world;
    let items_v2 = items(&v.db);
    assert_eq!(items_v2.len(), 1);

    let a = Arc::new(Agent::open_with(&v.db, Some(&w.root_envelope), w.agent_options()).unwrap());
    assert_eq!(user_version(&v.db), CURRENT_VERSION);
    let cols = trust_columns(&v.db);
    for c in [
        "generation",
        "config_version_floor",
        "config_floor_sha256",
        "expired_config_version",
        "expired_root_version",
    ] {
        assert!(cols.iter().any(|x| x == c), "column {c} missing: {cols:?}");
    }
    let info = a.config_info().unwrap();
    assert_eq!(
        (
            info.root_version,
            info.config_version,
            info.country.as_deref(),
            info.approved_region.as_deref(),
            info.expired
        ),
        (1, Some(5), Some("IN"), Some("in"), false),
        "{info:?}"
    );
    assert_eq!(items(&v.db), items_v2, "the item is intact");
    let listed = a.list(None, 0, 10).unwrap();
    assert_eq!(listed.len(), 1);
    let (id, path, size, _) = &v.item;
    assert_eq!(
        (
            listed[0].id,
            listed[0].path.as_str(),
            listed[0].size as i64,
            listed[0].region.as_deref(),
            listed[0].state.as_str(),
            listed[0].priority
        ),
        (*id, path.to_str().unwrap(), *size, Some("in"), "pending", 3)
    );
    // The very config v5 is recognised as the one in force.
    assert_eq!(a.install(&v.cfg5).unwrap(), Installed::Unchanged);

    // A second handle, then a rotation that retires the config key: v5 is dropped.
    let b = Agent::open_with(&v.db, Some(&w.root_envelope), w.agent_options()).unwrap();
    assert_eq!(b.config_info().unwrap().config_version, Some(5));
    let k2 = SigningKey::generate().unwrap();
    let root2 = root_env(2, &[&k2], 1, w);
    assert_eq!(b.install(&root2).unwrap(), Installed::Root { version: 2 });
    let info = a.config_info().unwrap();
    assert_eq!(
        (info.root_version, info.config_version),
        (2, None),
        "{info:?}"
    );
    let (gen, floor, sha) = floor_cols(&v.db);
    assert_eq!(
        floor, 5,
        "the floor written by the first v3 write came from the v2 row"
    );
    assert!(sha.is_some());

    // Config v3, properly signed under root v2: rollback against the v2 row's v5.
    let cfg3 = signed(&w.config_json(3), &[&k2]);
    for h in [&*a, &b] {
        let err = h.install(&cfg3).unwrap_err();
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
    }
    // v5 with another payload: rollback too.
    let mut p5x = v.p5.clone();
    p5x["countries"]["IN"] = "sg".into();
    let err = a.install(&signed(&p5x, &[&k2])).unwrap_err();
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
    assert_eq!(floor_cols(&v.db).0, gen, "nothing written");
    let fresh = Agent::open_with(&v.db, None, w.agent_options()).unwrap();
    assert_eq!(fresh.config_info().unwrap().config_version, None);

    // v6 under the new key: uploads resume, the migrated item goes to `in` only.
    assert_eq!(
        b.install(&signed(&w.config_json(6), &[&k2])).unwrap(),
        Installed::Config { version: 6 }
    );
    let r = run(&a).unwrap();
    assert_eq!(
        (r.region.as_str(), r.uploaded, r.bytes, r.stopped),
        ("in", 1, *size as u64, StopReason::Drained),
        "{r:?}"
    );
    let bytes = w.bytes_by_region();
    assert_eq!(bytes["sg"], 0, "{bytes:?}");
    let audit = a.audit(0, 10).unwrap();
    assert_eq!((audit.len(), audit[0].item_id), (1, *id));
    let _ = &v.dir;
}

#[test]
fn a_v2_database_opened_with_a_firmware_root_that_rotates_the_config_key_resets_its_floor() {
    let v = build_v2();
    let w = &v.world;
    let k2 = SigningKey::generate().unwrap();
    let root2 = root_env(2, &[&k2], 1, w);
    // The first open of the old file already brings the next root (an OTA)
    // whose config key is new: the v2 floor came from a key it no longer
    // lists, so it goes (TUF's fast-forward recovery, issue 21).
    let a = Agent::open_with(&v.db, Some(&root2), w.agent_options()).unwrap();
    assert_eq!(user_version(&v.db), CURRENT_VERSION);
    let info = a.config_info().unwrap();
    assert_eq!(
        (
            info.root_version,
            info.config_version,
            info.country.as_deref(),
            info.trust_reset
        ),
        (2, None, Some("IN"), None),
    );
    assert_eq!(floor_cols(&v.db).1, 0);
    // A config of the new key installs at any version.
    assert_eq!(
        a.install(&signed(&w.config_json(4), &[&k2])).unwrap(),
        Installed::Config { version: 4 }
    );
    assert_eq!(
        a.approved_region()
            .unwrap()
            .map(|r| r.id().to_string())
            .as_deref(),
        Some("in")
    );
    assert_eq!(items(&v.db).len(), 1);
    assert_eq!(items(&v.db)[0].7, "pending");
}
