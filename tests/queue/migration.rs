//! Schema migrations, black-box, on real SQLite files.
//!
//! `tests/fixtures/schema_v1.db` is a database exactly as schema version 1
//! left it (only the `trust` table, one row), written by the `sqlite3` CLI
//! from `tests/fixtures/make_schema_v1.sh`, not by the crate. Opening it must
//! migrate it to the current schema (identical to a freshly created one) and
//! keep the trust row. A database from a newer build must be refused with
//! `SchemaTooNew` and left byte-for-byte untouched.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cloudsync::queue::schema::{CURRENT_VERSION, MIGRATIONS};
use cloudsync::{Agent, AgentOptions, ErrorKind};
use cloudsync_testkit::schema::{database_at, fixture, golden, root_v1, user_version};
use rusqlite::Connection;

/// 2026-12-01T00:00:00Z: inside the golden root's and config v7's validity.
pub(super) const NOW: u64 = 1_796_083_200;

pub(super) fn fixed_clock() -> AgentOptions {
    AgentOptions {
        clock: Arc::new(|| NOW),
        ..Default::default()
    }
}

pub(super) fn normalise(sql: Option<String>) -> Option<String> {
    sql.map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `(type, name, tbl_name, sql)` of every schema object, sorted; `sql` with
/// whitespace normalised. `rootpage` is left out: it depends on history.
pub(super) fn schema_of(path: &Path) -> Vec<(String, String, String, Option<String>)> {
    let c = Connection::open(path).unwrap();
    let mut st = c
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, normalise(r.get(3)?)))
        })
        .unwrap();
    rows.collect::<rusqlite::Result<Vec<_>>>().unwrap()
}

pub(super) fn integrity(path: &Path) -> String {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

pub(super) fn fixture_copy(dir: &Path) -> PathBuf {
    let dst = dir.join("queue.db");
    std::fs::copy(fixture("schema_v1.db"), &dst).unwrap();
    dst
}

pub(super) fn assert_no_path_in(msg: &str, path: &Path) {
    let p = path.to_string_lossy();
    assert!(
        !msg.contains(p.as_ref()),
        "error text leaks the path: {msg}"
    );
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(
        !msg.contains(name.as_ref()),
        "error text leaks the file name: {msg}"
    );
    let dir = path.parent().unwrap().to_string_lossy();
    assert!(
        !msg.contains(dir.as_ref()),
        "error text leaks the directory: {msg}"
    );
}

#[test]
fn fixture_is_schema_v1_as_shipped() {
    // Guards the fixture itself: if MIGRATIONS[0] were edited (never allowed,
    // see schema.rs), this fails rather than silently testing something else.
    let path = fixture("schema_v1.db");
    assert_eq!(user_version(&path), 1);
    assert_eq!(integrity(&path), "ok");
    let schema = schema_of(&path);
    assert_eq!(
        schema,
        vec![(
            "table".to_string(),
            "trust".to_string(),
            "trust".to_string(),
            normalise(Some(
                MIGRATIONS[0].trim_end().trim_end_matches(';').to_string()
            )),
        )],
        "fixture schema differs from MIGRATIONS[0]"
    );
    let c = Connection::open(&path).unwrap();
    let (root, config, floor, country): (Vec<u8>, Option<Vec<u8>>, i64, String) = c
        .query_row(
            "SELECT root, config, clock_floor, country FROM trust",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(root, root_v1());
    assert_eq!((config, floor, country.as_str()), (None, 123, "IN"));
}

#[test]
// Long: builds the old database, migrates it, then checks every table the step touches.
fn v1_database_migrates_to_current_and_keeps_trust() {
    let dir = tempfile::tempdir().unwrap();
    let old = fixture_copy(dir.path());
    let fresh = dir.path().join("fresh.db");

    {
        let agent = Agent::open_with(&old, None, Default::default())
            .expect("v1 database opens and migrates");
        let info = agent.config_info().unwrap();
        assert_eq!(info.root_version, 1);
        assert_eq!(info.country.as_deref(), Some("IN"));
        assert_eq!(info.config_version, None, "v1 row had no config");
        assert_eq!(info.approved_region, None, "no config, so no region yet");
        // The new tables work.
        let s = agent.stats().unwrap();
        assert_eq!(s, Default::default());
        assert!(agent.list(None, 0, 10).unwrap().is_empty());
    }
    {
        let _fresh = Agent::open_with(&fresh, Some(&root_v1()), Default::default()).unwrap();
    }

    assert_eq!(user_version(&old), CURRENT_VERSION);
    assert_eq!(user_version(&fresh), CURRENT_VERSION);
    assert_eq!(integrity(&old), "ok");
    let migrated = schema_of(&old);
    let created = schema_of(&fresh);
    assert_eq!(
        migrated, created,
        "migrated schema differs from a fresh one"
    );
    // Sanity: the comparison covered the queue tables, not just `trust`.
    let names: Vec<&str> = migrated.iter().map(|r| r.1.as_str()).collect();
    for t in [
        "trust",
        "items",
        "audit",
        "lease",
        "terminations",
        "items_due",
        "items_active_path",
    ] {
        assert!(names.contains(&t), "{t} missing from {names:?}");
    }

    // The trust row survived byte for byte (nothing rewrote it on open without a root).
    {
        let c = Connection::open(&old).unwrap();
        let (root, floor, country): (Vec<u8>, i64, String) = c
            .query_row(
                "SELECT root, clock_floor, country FROM trust WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(root, root_v1());
        assert_eq!((floor, country.as_str()), (123, "IN"));
    }

    // Reopen (idempotent migration) and prove the kept country is really used:
    // install config v7 and the region for IN is approved; enqueue stamps it.
    let src = dir.path().join("photo.jpg");
    std::fs::write(&src, b"bytes").unwrap();
    let id = {
        let agent = Agent::open_with(&old, Some(&root_v1()), fixed_clock()).unwrap();
        let cfg = std::fs::read(golden("config_v7.json")).unwrap();
        agent.install_config(&cfg).unwrap();
        let info = agent.config_info().unwrap();
        assert_eq!(info.country.as_deref(), Some("IN"));
        assert_eq!(info.approved_region.as_deref(), Some("in"));
        assert_eq!(info.config_version, Some(7));
        assert!(!info.expired);
        agent.enqueue(&src, "backup", 0).unwrap()
    };
    assert_eq!(user_version(&old), CURRENT_VERSION);
    assert_eq!(schema_of(&old), created, "a second open changed the schema");
    let agent = Agent::open_with(&old, Some(&root_v1()), fixed_clock()).unwrap();
    let items = agent.list(None, 0, 10).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!((items[0].id, items[0].region.as_deref()), (id, Some("in")));
    assert_eq!(
        agent.config_info().unwrap().approved_region.as_deref(),
        Some("in")
    );
}

#[test]
fn every_intermediate_version_migrates_to_the_same_schema() {
    // Apply the first k steps by hand (as build k would have), then open.
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.db");
    drop(Agent::open_with(&fresh, Some(&root_v1()), Default::default()).unwrap());
    let want = schema_of(&fresh);
    for k in 0..=MIGRATIONS.len() {
        let p = dir.path().join(format!("v{k}.db"));
        drop(database_at(k, &p));
        drop(Agent::open_with(&p, Some(&root_v1()), Default::default()).unwrap());
        assert_eq!(user_version(&p), CURRENT_VERSION, "from v{k}");
        assert_eq!(schema_of(&p), want, "from v{k}");
        assert_eq!(integrity(&p), "ok");
    }
}

/// Creates a current database with one item, then marks it as written by a
/// newer build. Returns the file's bytes.
pub(super) fn newer_db(path: &Path, wal: bool) -> Vec<u8> {
    let src = path.with_extension("src");
    std::fs::write(&src, b"data").unwrap();
    {
        let a = Agent::open_with(path, Some(&root_v1()), Default::default()).unwrap();
        a.enqueue(&src, "backup", 0).unwrap();
    }
    {
        let c = Connection::open(path).unwrap();
        if !wal {
            let _: String = c
                .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
                .unwrap();
        }
        c.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
    }
    for ext in ["db-wal", "db-shm", "db-journal"] {
        assert!(
            !path.with_extension(ext).exists(),
            "{ext} left behind by setup"
        );
    }
    std::fs::read(path).unwrap()
}

pub(super) fn assert_too_new_and_untouched(path: &Path, before: &[u8]) {
    for attempt in 0..2 {
        let e = Agent::open_with(path, None, Default::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SchemaTooNew, "attempt {attempt}: {e}");
        assert_no_path_in(&e.to_string(), path);
        assert_no_path_in(&format!("{e:?}"), path);
        let e = Agent::open_with(path, Some(&root_v1()), Default::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SchemaTooNew, "attempt {attempt}: {e}");
        let e = cloudsync::queue::Db::open(path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SchemaTooNew);
        assert!(
            std::fs::read(path).unwrap() == before,
            "attempt {attempt}: the database file changed"
        );
    }
    assert_eq!(user_version(path), CURRENT_VERSION + 1);
    assert_eq!(integrity(path), "ok");
    let n: i64 = Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "the stored item is still there");
}

#[test]
fn newer_schema_is_refused_and_the_file_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    let before = newer_db(&p, true);
    assert_too_new_and_untouched(&p, &before);
}

#[test]
fn newer_schema_in_rollback_journal_mode_is_untouched_too() {
    // A newer build might have switched journal mode: refusing it must not
    // switch it back to WAL (that rewrites the header) before the check.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    let before = newer_db(&p, false);
    assert_too_new_and_untouched(&p, &before);
}
