//! One migration step at a time (v3 -> v4 ... v11 -> v12): each old schema,
//! built by the kit from the library's own migration list, upgraded with its
//! rows kept and the new columns, tables or indexes as the step defines them.

use cloudsync::queue::schema::CURRENT_VERSION;
use cloudsync::{Agent, ErrorKind, HeldReason, State};
use cloudsync_testkit::schema::{
    columns, database_at, golden, root_v1, user_version, wal_database_at,
};
use rusqlite::Connection;
use std::path::Path;

use super::migration::*;

#[test]
fn v3_database_migrates_to_v4_keeping_sessions_and_audit_rows() {
    // A database as build 3 left it: an item mid-upload and one audit row.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v3.db");
    {
        let c = database_at(3, &p);
        c.execute_batch(
            "INSERT INTO items (path, service, size, mtime_ns, region, state, next_attempt_at,
                                upload_url, upload_len, upload_mtime_ns, upload_sha256,
                                confirmed_offset, created_at, updated_at)
             VALUES ('/sdcard/a.jpg', 'backup', 100, 5, 'in', 'pending', 0,
                     'https://backup.in.example.net/files/u1', 100, 5, zeroblob(32), 40, 0, 0);
             INSERT INTO audit (item_id, service, region, host, peer_ip, bytes, sha256, finished_at)
             VALUES (7, 'backup', 'in', 'backup.in.example.net:443', NULL, 3145728, zeroblob(32), 9);",
        )
        .unwrap();
    }
    let agent = Agent::open_with(&p, Some(&root_v1()), Default::default()).unwrap();
    assert_eq!(user_version(&p), CURRENT_VERSION);
    assert_eq!(integrity(&p), "ok");
    // The audit row keeps its confirmed length; what it sent is unknown (NULL),
    // not a number the old client never counted.
    let rows = agent.audit(0, 10).unwrap();
    assert_eq!((rows.len(), rows[0].bytes), (1, 3_145_728));
    assert_eq!(rows[0].sent_bytes, None);
    // The session in progress survives, its sent count starting at 0.
    let db = cloudsync::queue::Db::open(&p).unwrap();
    let row = cloudsync::queue::ops::get(db.conn(), 1).unwrap();
    assert_eq!(
        row.upload_url.as_deref(),
        Some("https://backup.in.example.net/files/u1")
    );
    assert_eq!((row.confirmed_offset, row.upload_sent), (40, 0));
    let items = agent.list(None, 0, 10).unwrap();
    assert_eq!((items.len(), items[0].confirmed_offset), (1, 40));
}

#[test]
fn v4_database_migrates_to_v5_with_accounts_unset_and_reasons_kept() {
    // A database as build 4 left it: a pending item, an item held for another
    // region, a queued termination and a trust row with a country.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v4.db");
    {
        let c = database_at(4, &p);
        c.execute_batch(
            "INSERT INTO items (path, service, size, mtime_ns, region, state, next_attempt_at,
                                created_at, updated_at)
             VALUES ('/sdcard/a.jpg', 'backup', 100, 5, 'in', 'pending', 0, 0, 0),
                    ('/sdcard/b.jpg', 'backup', 100, 5, 'sg', 'held', 0, 0, 0);
             INSERT INTO terminations (region, upload_url)
             VALUES ('in', 'https://backup.in.example.net/files/old');",
        )
        .unwrap();
    }
    let agent = Agent::open_with(&p, Some(&root_v1()), fixed_clock()).unwrap();
    assert_eq!(user_version(&p), CURRENT_VERSION);
    assert_eq!(integrity(&p), "ok");
    assert_eq!(
        agent.signed_in().unwrap(),
        None,
        "accounts are not in use yet"
    );
    let items = agent.list(None, 0, 10).unwrap();
    let shape: Vec<_> = items
        .iter()
        .map(|i| {
            (
                i.state.as_str(),
                i.held_reason.map(|h| h.name()),
                i.account.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [("pending", None, None), ("held", Some("region"), None)],
        "the held item keeps waiting for its region"
    );
    let db = cloudsync::queue::Db::open(&p).unwrap();
    let t = cloudsync::queue::ops::terminations(db.conn(), "in", None).unwrap();
    assert_eq!(
        (t.len(), t[0].service.as_deref()),
        (1, None),
        "an old termination goes anonymous, as it was made"
    );
    // The first account signed in adopts the queue; the held reason stays.
    agent.set_account(Some("dana"), None).unwrap();
    let items = agent.list(None, 0, 10).unwrap();
    assert!(items.iter().all(|i| i.account.is_some()));
    assert_eq!(items[1].held_reason.map(|h| h.name()), Some("region"));
    assert_eq!(
        agent.rehome().unwrap_err().kind(),
        ErrorKind::NoRegion,
        "no config here: nothing to move to, nothing changed"
    );
    assert_eq!(agent.list(None, 0, 10).unwrap()[1].state.name(), "held");
}

#[test]
// Long: builds the old database, migrates it, then checks every table the step touches.
fn v5_database_migrates_to_v6_with_an_empty_source_cache_and_all_else_kept() {
    // A database as build 5 left it: a trust row with the golden root, config
    // v7 and a country, a pending and a held item, an audit row and a queued
    // termination.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v5.db");
    let cfg = std::fs::read(golden("config_v7.json")).unwrap();
    let payload = cloudsync::config::envelope::Envelope::parse(&cfg)
        .unwrap()
        .payload;
    let floor_sha = ring::digest::digest(&ring::digest::SHA256, &payload);
    {
        let c = database_at(5, &p);
        c.execute(
            "INSERT INTO trust (id, root, config, clock_floor, country, generation,
                                config_version_floor, config_floor_sha256)
             VALUES (1, ?1, ?2, 123, 'IN', 4, 7, ?3)",
            rusqlite::params![root_v1(), cfg, floor_sha.as_ref()],
        )
        .unwrap();
        c.execute_batch(
            "INSERT INTO items (path, service, size, mtime_ns, region, state, next_attempt_at,
                                held_reason, created_at, updated_at)
             VALUES ('/sdcard/a.jpg', 'backup', 100, 5, 'in', 'pending', 0, NULL, 0, 0),
                    ('/sdcard/b.jpg', 'backup', 100, 5, 'sg', 'held', 0, 'region', 0, 0);
             INSERT INTO audit (item_id, service, region, host, peer_ip, bytes, sha256,
                                finished_at, sent_bytes)
             VALUES (7, 'backup', 'in', 'backup.in.example.net:443', NULL, 42, zeroblob(32), 9, 42);
             INSERT INTO terminations (region, upload_url, service)
             VALUES ('in', 'https://backup.in.example.net/files/old', 'backup');",
        )
        .unwrap();
    }
    let dump = |sql: &str| -> Vec<Vec<rusqlite::types::Value>> {
        let c = Connection::open(&p).unwrap();
        let mut st = c.prepare(sql).unwrap();
        let n = st.column_count();
        st.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let tables = ["trust", "items", "audit", "terminations", "lease"];
    let before: Vec<_> = tables
        .iter()
        .map(|t| dump(&format!("SELECT * FROM {t} ORDER BY rowid")))
        .collect();

    let agent = Agent::open_with(&p, Some(&root_v1()), fixed_clock()).unwrap();
    assert_eq!(user_version(&p), CURRENT_VERSION);
    assert_eq!(integrity(&p), "ok");
    let columns = columns(&p, "source_cache");
    assert_eq!(
        columns,
        ["url", "etag", "last_modified", "body_sha256", "checked_at"]
    );
    assert!(dump("SELECT * FROM source_cache").is_empty());
    // Everything else is as build 5 left it, row for row (v7's `items.run_id` and
    // v8's `upload_key`, `upload_print` are new and empty: the rows are compared without them).
    let info = agent.config_info().unwrap();
    assert!(dump("SELECT run_id FROM items WHERE run_id IS NOT NULL").is_empty());
    let after: Vec<_> = tables
        .iter()
        .map(|t| {
            let cols = match *t {
                "items" => items_v5_columns(&p),
                // v11's `chain_from` and `trust_reset` are new (checked below).
                "trust" => "id, root, config, clock_floor, country, generation, \
                            config_version_floor, config_floor_sha256, expired_config_version, \
                            expired_root_version, account, account_key"
                    .to_string(),
                _ => "*".to_string(),
            };
            dump(&format!("SELECT {cols} FROM {t} ORDER BY rowid"))
        })
        .collect();
    assert_eq!(before, after);
    // A file from before v11 has no root chain: it starts at the root in force (-1).
    assert_eq!(
        dump("SELECT chain_from, trust_reset FROM trust"),
        [[
            rusqlite::types::Value::Integer(-1),
            rusqlite::types::Value::Null
        ]]
    );
    assert!(dump("SELECT * FROM root_chain").is_empty());
    assert!(info.anchored && info.trust_reset.is_none());
    assert_eq!(
        (
            info.root_version,
            info.config_version,
            info.country.as_deref()
        ),
        (1, Some(7), Some("IN"))
    );
    assert_eq!(info.approved_region.as_deref(), Some("in"));
    assert_eq!(
        info.refresh_due_at_ms, None,
        "the golden root lists no sources"
    );
    let shape: Vec<_> = agent
        .list(None, 0, 10)
        .unwrap()
        .iter()
        .map(|i| (i.state, i.held_reason))
        .collect();
    assert_eq!(
        shape,
        [
            (State::Pending, None),
            (State::Held, Some(HeldReason::Region))
        ]
    );
    assert_eq!(agent.audit(0, 10).unwrap()[0].sent_bytes, Some(42));
}

/// The columns `items` had at schema v5/v6 (all but v7's `run_id`, v8's session columns
/// and v12's rule).
fn items_v5_columns(p: &Path) -> String {
    let later = [
        "run_id",
        "upload_key",
        "upload_print",
        "network_rule",
        "charging_only",
    ];
    let names: Vec<String> = columns(p, "items")
        .into_iter()
        .filter(|n| !later.contains(&n.as_str()))
        .collect();
    names.join(", ")
}

/// The columns `items` had before schema v12 (all but its rule).
fn items_before_v12_columns(p: &Path) -> String {
    let names: Vec<String> = columns(p, "items")
        .into_iter()
        .filter(|n| n != "network_rule" && n != "charging_only")
        .collect();
    names.join(", ")
}

#[test]
fn v6_database_migrates_to_v7_with_no_run_marks() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v6.db");
    {
        let c = database_at(6, &p);
        c.execute_batch(
            "INSERT INTO items (path, service, size, mtime_ns, region, state, next_attempt_at,
                                created_at, updated_at)
             VALUES ('/sdcard/a.jpg', 'backup', 100, 5, 'in', 'pending', 0, 0, 0);",
        )
        .unwrap();
    }
    let agent = Agent::open_with(&p, Some(&root_v1()), fixed_clock()).unwrap();
    assert_eq!(user_version(&p), CURRENT_VERSION);
    assert_eq!(integrity(&p), "ok");
    let c = Connection::open(&p).unwrap();
    let marks: i64 = c
        .query_row(
            "SELECT count(*) FROM items WHERE run_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(marks, 0, "no run has tried anything yet");
    assert_eq!(agent.list(None, 0, 10).unwrap()[0].state.name(), "pending");
}

#[test]
fn v7_database_migrates_to_v8_with_no_keys_and_sessions_kept_for_the_restart_rule() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v7.db");
    {
        let c = database_at(7, &p);
        c.execute_batch(
            "INSERT INTO items (path, service, size, mtime_ns, region, state, next_attempt_at,
                                upload_url, upload_len, upload_mtime_ns, upload_sha256,
                                confirmed_offset, created_at, updated_at)
             VALUES ('/sdcard/a.jpg', 'backup', 100, 5, 'in', 'pending', 0,
                     'https://in.example/files/1', 100, 5, zeroblob(32), 40, 0, 0);",
        )
        .unwrap();
    }
    let agent = Agent::open_with(&p, Some(&root_v1()), fixed_clock()).unwrap();
    assert_eq!(user_version(&p), CURRENT_VERSION);
    assert_eq!(integrity(&p), "ok");
    let c = Connection::open(&p).unwrap();
    let (url, offset, key, print): (Option<String>, i64, Option<String>, Option<Vec<u8>>) = c
        .query_row(
            "SELECT upload_url, confirmed_offset, upload_key, upload_print FROM items",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    // Kept, so the next attempt can terminate it; with no fingerprint it never resumes.
    assert_eq!(url.as_deref(), Some("https://in.example/files/1"));
    assert_eq!(offset, 40);
    assert_eq!((key, print), (None, None));
    assert_eq!(agent.list(None, 0, 10).unwrap()[0].state.name(), "pending");
}

#[test]
// Long: builds the old database, migrates it, then checks every table the step touches.
fn v8_database_migrates_to_v9_with_counters_from_its_rows_and_space_given_back() {
    // A database as build 8 left it (no auto-vacuum): items in every state, with
    // sessions part-way, and audit rows.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v8.db");
    {
        let c = wal_database_at(8, &p);
        let states = ["pending", "uploading", "failed", "dead", "held", "pending"];
        for i in 0..600i64 {
            c.execute(
                "INSERT INTO items (path, service, size, mtime_ns, region, state, next_attempt_at,
                                    confirmed_offset, held_reason, created_at, updated_at)
                 VALUES (?1, 'backup', ?2, 5, 'in', ?3, ?4, ?5, ?6, 0, 0)",
                rusqlite::params![
                    format!("/sdcard/{i}.jpg"),
                    1000 + i,
                    states[i as usize % 6],
                    50_000 - i,
                    // Offsets past the size (a refreshed, shrunk file) count as 0 left.
                    if i % 7 == 0 { 5000 } else { i },
                    (states[i as usize % 6] == "held").then_some("region"),
                ],
            )
            .unwrap();
        }
        for i in 0..300i64 {
            c.execute(
                "INSERT INTO audit (item_id, service, region, host, bytes, sha256, finished_at,
                                    sent_bytes)
                 VALUES (?1, 'backup', 'in', 'h:443', 10, zeroblob(32), ?2, 10)",
                rusqlite::params![10_000 + i, 1_700_000_000_000 + i],
            )
            .unwrap();
        }
        let mode: i64 = c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, 0, "build 8 made files without auto-vacuum");
    }
    let dump = |sql: &str| -> Vec<Vec<rusqlite::types::Value>> {
        let c = Connection::open(&p).unwrap();
        let mut st = c.prepare(sql).unwrap();
        let n = st.column_count();
        st.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let tables = ["items", "audit", "terminations", "lease"];
    let before: Vec<_> = tables
        .iter()
        .map(|t| dump(&format!("SELECT * FROM {t} ORDER BY rowid")))
        .collect();

    let agent = Agent::open_with(&p, Some(&root_v1()), fixed_clock()).unwrap();
    assert_eq!(user_version(&p), CURRENT_VERSION);
    assert_eq!(integrity(&p), "ok");
    // Every row kept, as it was (v9 adds no column to them; v12's rule columns are left out).
    let after: Vec<_> = tables
        .iter()
        .map(|t| {
            let cols = match *t {
                "items" => items_before_v12_columns(&p),
                _ => "*".to_string(),
            };
            dump(&format!("SELECT {cols} FROM {t} ORDER BY rowid"))
        })
        .collect();
    assert_eq!(before, after);
    // The counters start from the rows that exist.
    let db = cloudsync::queue::Db::open(&p).unwrap();
    let kept = cloudsync::queue::ops::stats(db.conn()).unwrap();
    assert_eq!(
        kept,
        cloudsync::queue::ops::stats_by_scan(db.conn()).unwrap()
    );
    assert_eq!(
        (
            kept.pending,
            kept.uploading,
            kept.failed,
            kept.dead,
            kept.held,
            kept.done
        ),
        (200, 100, 100, 100, 100, 300)
    );
    assert_eq!(kept.next_due_at, Some(50_000 - 599));
    assert_eq!(agent.stats().unwrap(), kept);
    // The file switched to incremental auto-vacuum by its one VACUUM, tried once.
    let c = Connection::open(&p).unwrap();
    let mode: i64 = c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
    let tries: i64 = c
        .query_row("SELECT vacuum_attempts FROM settings", [], |r| r.get(0))
        .unwrap();
    assert_eq!((mode, tries), (2, 1));
    assert_eq!(agent.audit_retention_days().unwrap(), 400, "the default");
    drop((agent, db));
    // Later opens do not VACUUM again.
    drop(Agent::open_with(&p, None, fixed_clock()).unwrap());
    let tries: i64 = c
        .query_row("SELECT vacuum_attempts FROM settings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tries, 1);
}

#[test]
fn v9_database_migrates_to_v10_with_the_state_page_index_and_all_rows_kept() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v9.db");
    {
        let c = database_at(9, &p);
        c.execute_batch(
            "INSERT INTO items (path, service, size, mtime_ns, region, state, next_attempt_at,
                                created_at, updated_at)
             VALUES ('/sdcard/a.jpg', 'backup', 100, 5, 'in', 'pending', 0, 0, 0),
                    ('/sdcard/b.jpg', 'backup', 100, 5, 'sg', 'held', 0, 0, 0);",
        )
        .unwrap();
    }
    let agent = Agent::open_with(&p, Some(&root_v1()), fixed_clock()).unwrap();
    assert_eq!(user_version(&p), CURRENT_VERSION);
    assert_eq!(integrity(&p), "ok");
    let c = Connection::open(&p).unwrap();
    let plan: String = c
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM items WHERE state = 'held' AND id > 0 ORDER BY id",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("items_state_id"), "{plan}");
    let held = agent
        .list(Some(cloudsync::queue::State::Held), 0, 10)
        .unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(agent.stats().unwrap().pending, 1);
}

#[test]
// Long: builds the old database, migrates it, then checks every table and trigger the step adds.
fn v11_database_migrates_to_v12_with_every_item_any_network_and_counters_by_rule() {
    // A database as build 11 left it: items in every state, some part-sent
    // (one past its size: a shrunk file counts 0 left), a changed retention.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v11.db");
    {
        let c = database_at(11, &p);
        let states = ["pending", "uploading", "failed", "dead", "held"];
        for i in 0..50i64 {
            let state = states[i as usize % 5];
            c.execute(
                "INSERT INTO items (path, service, size, mtime_ns, region, state, next_attempt_at,
                                    confirmed_offset, held_reason, created_at, updated_at)
                 VALUES (?1, 'backup', ?2, 5, 'in', ?3, 0, ?4, ?5, 0, 0)",
                rusqlite::params![
                    format!("/sdcard/{i}.jpg"),
                    1000 + i,
                    state,
                    if i == 7 { 5000 } else { i },
                    (state == "held").then_some("region"),
                ],
            )
            .unwrap();
        }
        c.execute_batch("UPDATE settings SET audit_retention_days = 30")
            .unwrap();
    }
    let agent = Agent::open_with(&p, Some(&root_v1()), fixed_clock()).unwrap();
    assert_eq!(user_version(&p), CURRENT_VERSION);
    assert_eq!(integrity(&p), "ok");
    let items = columns(&p, "items");
    assert!(items.ends_with(&["network_rule".into(), "charging_only".into()]));
    let settings = columns(&p, "settings");
    assert!(settings.ends_with(&[
        "default_network_rule".into(),
        "default_charging_only".into()
    ]));
    assert_eq!(
        columns(&p, "rule_counters"),
        ["network_rule", "charging_only", "n", "bytes_left"]
    );
    // Every item keeps today's behaviour: any network, charging or not.
    let any = cloudsync::BackupRule::default();
    let listed = agent.list(None, 0, 100).unwrap();
    assert_eq!(listed.len(), 50);
    assert!(listed.iter().all(|i| i.rule == any));
    assert_eq!(agent.default_rule().unwrap(), any);
    assert_eq!(agent.audit_retention_days().unwrap(), 30, "settings kept");
    // The counters start from the rows: the active items, all in class (any, no).
    let db = cloudsync::queue::Db::open(&p).unwrap();
    let kept = cloudsync::queue::ops::stats(db.conn()).unwrap();
    assert_eq!(
        kept,
        cloudsync::queue::ops::stats_by_scan(db.conn()).unwrap()
    );
    let active = kept.pending + kept.uploading + kept.failed;
    assert_eq!(active, 30);
    assert_eq!(
        kept.rules.class(any),
        cloudsync::queue::Backlog {
            items: active,
            bytes: kept.pending_bytes
        }
    );
    assert_eq!(kept.rules.unmetered.items + kept.rules.charging.items, 0);
    // The columns refuse what no build writes.
    let c = Connection::open(&p).unwrap();
    for bad in [
        "UPDATE items SET network_rule = 3 WHERE id = 1",
        "UPDATE items SET charging_only = 2 WHERE id = 1",
        "UPDATE settings SET default_network_rule = -1",
        "UPDATE settings SET default_charging_only = 5",
    ] {
        let e = c.execute(bad, []).unwrap_err();
        assert!(
            e.to_string().contains("CHECK constraint failed"),
            "{bad}: {e}"
        );
    }
    // The triggers keep them from here on, whatever statement writes.
    c.execute_batch(
        "UPDATE items SET network_rule = 2, charging_only = 1 WHERE id % 2 = 0;
         UPDATE items SET state = 'failed' WHERE state = 'held';
         DELETE FROM items WHERE id % 3 = 0;",
    )
    .unwrap();
    let kept = cloudsync::queue::ops::stats(db.conn()).unwrap();
    assert_eq!(
        kept,
        cloudsync::queue::ops::stats_by_scan(db.conn()).unwrap()
    );
    assert!(kept.rules.unmetered.items > 0 && kept.rules.unmetered == kept.rules.charging);
}
