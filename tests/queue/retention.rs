//! Audit retention and the file's upkeep (schema v9), on real files: rows
//! past the retention go in short transactions with the write lock free
//! between them, an enqueue from another handle goes through meanwhile, the
//! file gives its pages back, the WAL stays bounded after a big batch, the
//! retention is one setting for every handle, and the one-time VACUUM that
//! turns on incremental auto-vacuum is retried a bounded number of times.
//! Every test with threads or servers has a watchdog.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use cloudsync::agent::PRUNE_BATCHES_PER_CALL;
use cloudsync::queue::db::JOURNAL_SIZE_LIMIT;
use cloudsync::queue::ops::{self, SourceMeta, PRUNE_BATCH};
use cloudsync::queue::schema::CURRENT_VERSION;
use cloudsync::queue::Db;
use cloudsync::{Agent, AgentOptions, ErrorKind};
use cloudsync_devserver::world::{standard_regions, World};
use cloudsync_testkit::schema::{root_v1, wal_database_at};
use rusqlite::Connection;

const WATCHDOG: Duration = Duration::from_secs(120);
const DAY_MS: i64 = 86_400_000;
/// The agents' clock: 2026-12-01T00:00:00Z.
const NOW_S: u64 = 1_796_083_200;
const NOW_MS: i64 = NOW_S as i64 * 1000;

fn options() -> AgentOptions {
    AgentOptions {
        clock: std::sync::Arc::new(|| NOW_S),
        ..Default::default()
    }
}

/// Appends `n` audit rows finished at `at` (ms), `host` padded to `pad`
/// bytes (bigger rows: more pages), in one transaction.
fn audit_rows(db: &mut Db, n: usize, at: i64, pad: usize) {
    db.write(|tx| {
        let mut st = tx.prepare(
            "INSERT INTO audit (item_id, service, region, host, bytes, sha256, finished_at,
                                sent_bytes)
             VALUES (?1, 'backup', 'in', ?2, 1, zeroblob(32), ?3, 1)",
        )?;
        for i in 0..n {
            st.execute(rusqlite::params![i as i64, format!("{i:0pad$}"), at])?;
        }
        Ok(())
    })
    .unwrap();
}

fn pragma(c: &Connection, name: &str) -> i64 {
    c.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .unwrap()
}

fn assert_counters(db: &Db) -> ops::QueueStats {
    let kept = ops::stats(db.conn()).unwrap();
    assert_eq!(kept, ops::stats_by_scan(db.conn()).unwrap());
    kept
}

#[test]
fn pruning_takes_short_transactions_with_the_lock_free_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    let mut db = Db::open(&p).unwrap();
    audit_rows(&mut db, 2_600, NOW_MS - 500 * DAY_MS, 0);
    audit_rows(&mut db, 10, NOW_MS - 10 * DAY_MS, 0);
    // Another connection that never waits for a lock: it must get in between batches.
    let mut other = Db::open(&p).unwrap();
    other.set_busy_wait(Duration::ZERO).unwrap();
    let src = dir.path().join("photo.jpg");
    std::fs::write(&src, b"x").unwrap();
    let mut batches = Vec::new();
    loop {
        let n = db
            .write(|tx| ops::prune_audit_batch(tx, NOW_MS, PRUNE_BATCH))
            .unwrap();
        batches.push(n);
        let path = format!("/sdcard/{}.jpg", batches.len());
        let meta = SourceMeta {
            size: 1,
            mtime_ns: 0,
        };
        other
            .write(|tx| ops::enqueue(tx, &path, "backup", 0, meta, None, None, NOW_MS))
            .expect("the write lock is free between two batches");
        if n < u64::from(PRUNE_BATCH) {
            break;
        }
    }
    assert_eq!(batches, [500, 500, 500, 500, 500, 100]);
    let s = assert_counters(&db);
    assert_eq!(
        (s.done, s.pending),
        (10, 6),
        "the recent rows and every enqueue kept"
    );
}

#[test]
fn an_enqueue_from_another_handle_goes_through_while_a_big_backlog_is_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    let old = (PRUNE_BATCHES_PER_CALL * PRUNE_BATCH) as usize + 700;
    {
        let mut db = Db::open(&p).unwrap();
        audit_rows(&mut db, old, NOW_MS - 450 * DAY_MS, 0);
        audit_rows(&mut db, 5, NOW_MS - DAY_MS, 0);
    }
    let files: Vec<_> = (0..30)
        .map(|i| {
            let f = dir.path().join(format!("f{i}.jpg"));
            std::fs::write(&f, b"x").unwrap();
            f
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    let pruner = {
        let (p, tx) = (p.clone(), tx.clone());
        std::thread::spawn(move || {
            let a = Agent::open_with(&p, Some(&root_v1()), options()).unwrap();
            let first = a.prune_audit();
            let second = a.prune_audit();
            tx.send((
                "pruned",
                first.and_then(|f| Ok((f, second?))).map_err(|e| e.kind()),
            ))
            .unwrap();
        })
    };
    let writer = {
        let p = p.clone();
        std::thread::spawn(move || {
            let a = Agent::open_with(&p, Some(&root_v1()), options()).unwrap();
            for f in &files {
                // Each returns (never `busy`): pruning holds the lock one batch at a time.
                if let Err(e) = a.enqueue(f, "backup", 0) {
                    tx.send(("enqueued", Err(e.kind()))).unwrap();
                    return;
                }
            }
            tx.send(("enqueued", Ok((30, 0)))).unwrap();
        })
    };
    let mut got = std::collections::HashMap::new();
    for _ in 0..2 {
        let (what, r) = rx.recv_timeout(WATCHDOG).expect("pruning or enqueue hung");
        got.insert(what, r);
    }
    pruner.join().unwrap();
    writer.join().unwrap();
    let max_per_call = u64::from(PRUNE_BATCHES_PER_CALL * PRUNE_BATCH);
    assert_eq!(got["pruned"], Ok((max_per_call, 700)), "bounded per call");
    assert_eq!(got["enqueued"], Ok((30, 0)));
    let db = Db::open(&p).unwrap();
    let s = assert_counters(&db);
    assert_eq!((s.done, s.pending), (5, 30));
}

#[test]
fn the_file_gives_pages_back_and_the_wal_is_truncated_after_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    let wal = dir.path().join("q.db-wal");
    let a = Agent::open_with(&p, Some(&root_v1()), options()).unwrap();
    {
        let mut db = Db::open(&p).unwrap();
        audit_rows(&mut db, 8_000, NOW_MS - 900 * DAY_MS, 200);
        audit_rows(&mut db, 100, NOW_MS - DAY_MS, 200);
        assert!(cloudsync::queue::schema::checkpoint_truncate(db.conn()).unwrap());
    }
    let c = Connection::open(&p).unwrap();
    let before = pragma(&c, "page_count");
    assert_eq!(pragma(&c, "auto_vacuum"), 2, "a new file gives pages back");
    assert_eq!(a.prune_audit().unwrap(), 8_000);
    let after = pragma(&c, "page_count");
    assert_eq!(
        pragma(&c, "freelist_count"),
        0,
        "every freed page went back"
    );
    assert!(
        after * 10 < before,
        "the file shrank: {before} -> {after} pages"
    );
    assert_eq!(
        std::fs::metadata(&wal).unwrap().len(),
        0,
        "the big prune ended with a TRUNCATE checkpoint"
    );
    let db_len = std::fs::metadata(&p).unwrap().len() as i64;
    assert_eq!(db_len, after * pragma(&c, "page_size"));
    assert_eq!(a.stats().unwrap().done, 100);
}

#[test]
fn the_wal_is_cut_back_to_its_limit_after_a_big_batch() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    let wal = dir.path().join("q.db-wal");
    let mut db = Db::open(&p).unwrap();
    assert_eq!(pragma(db.conn(), "journal_size_limit"), JOURNAL_SIZE_LIMIT);
    // One big batch: far more than the limit goes through the WAL.
    audit_rows(&mut db, 40_000, NOW_MS, 200);
    let big = std::fs::metadata(&wal).unwrap().len();
    assert!(
        big > 2 * JOURNAL_SIZE_LIMIT as u64,
        "the batch grew the WAL: {big}"
    );
    // A checkpoint that others' readers do not block (PASSIVE, as the automatic one),
    // then the next write starts the WAL over and cuts the file back to the limit.
    let _: (i64, i64, i64) = db
        .conn()
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    audit_rows(&mut db, 1, NOW_MS, 0);
    let after = std::fs::metadata(&wal).unwrap().len();
    assert!(
        after <= JOURNAL_SIZE_LIMIT as u64,
        "the WAL kept {after} bytes after a reset"
    );
    // Opening another handle writes nothing (no pragma rewrites the header).
    assert!(cloudsync::queue::schema::checkpoint_truncate(db.conn()).unwrap());
    drop(Db::open(&p).unwrap());
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0, "an open wrote");
}

#[test]
fn the_retention_is_one_setting_for_every_handle_and_bad_values_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    let a = Agent::open_with(&p, Some(&root_v1()), options()).unwrap();
    let b = Agent::open_with(&p, None, options()).unwrap();
    {
        let mut db = Db::open(&p).unwrap();
        audit_rows(&mut db, 3, NOW_MS - 45 * DAY_MS, 0);
        audit_rows(&mut db, 2, NOW_MS - 5 * DAY_MS, 0);
    }
    assert_eq!(b.audit_retention_days().unwrap(), 400);
    assert_eq!(a.prune_audit().unwrap(), 0, "nothing is 400 days old");
    for bad in [0, 36_501, u32::MAX] {
        let e = a.set_audit_retention_days(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            "invalid argument: audit retention must be 1..=36500 days"
        );
        assert_eq!(b.audit_retention_days().unwrap(), 400);
        assert_eq!(b.stats().unwrap().done, 5, "nothing lost");
    }
    // Shortened by one handle: the other sees it, and what it made due is gone.
    assert_eq!(a.set_audit_retention_days(30).unwrap(), 3);
    assert_eq!(b.audit_retention_days().unwrap(), 30);
    assert_eq!(b.stats().unwrap().done, 2);
    assert_eq!(b.audit(0, 10).unwrap().len(), 2);
}

/// A file at the current schema made without auto-vacuum (as if migrated by
/// an open whose VACUUM could not run).
fn v9_without_auto_vacuum(p: &Path) {
    drop(wal_database_at(CURRENT_VERSION as usize, p));
}

#[test]
fn the_one_time_vacuum_waits_for_a_free_lock_and_gives_up_after_three_tries() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("locked.db");
    v9_without_auto_vacuum(&p);
    let lock = Connection::open(&p).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Opens anyway (after its busy wait): the switch is best effort, not counted.
    drop(Db::open(&p).expect("opens while another connection writes"));
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    // Read with a new connection each time: an open one may show the mode it cached.
    let mode_and_tries = |p: &Path| -> (i64, i64) {
        let c = Connection::open(p).unwrap();
        let tries = c
            .query_row("SELECT vacuum_attempts FROM settings", [], |r| r.get(0))
            .unwrap();
        (pragma(&c, "auto_vacuum"), tries)
    };
    assert_eq!(mode_and_tries(&p), (0, 0));
    drop(Db::open(&p).unwrap());
    assert_eq!(mode_and_tries(&p), (2, 1));
    assert_eq!(
        Connection::open(&p)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );
    // A file whose VACUUM failed three times is left alone.
    let q = dir.path().join("given_up.db");
    v9_without_auto_vacuum(&q);
    Connection::open(&q)
        .unwrap()
        .execute("UPDATE settings SET vacuum_attempts = 3", [])
        .unwrap();
    drop(Db::open(&q).unwrap());
    assert_eq!(mode_and_tries(&q), (0, 3));
}

#[test]
fn a_run_prunes_the_audit_and_truncates_the_wal_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(&dir.path().join("servers"), standard_regions(&["in"])).unwrap();
    let p = dir.path().join("q.db");
    let agent = Agent::open_with(&p, Some(&world.root_envelope), world.agent_options()).unwrap();
    agent.install(&world.config_envelope(1)).unwrap();
    agent.set_account_country("IN").unwrap();
    {
        let mut db = Db::open(&p).unwrap();
        audit_rows(&mut db, 1_200, ops::now_ms() - 800 * DAY_MS, 0);
    }
    for i in 0..3 {
        let f = dir.path().join(format!("f{i}"));
        std::fs::write(&f, vec![i as u8; 1000]).unwrap();
        agent.enqueue(&f, "backup", 0).unwrap();
    }
    let (tx, rx) = mpsc::channel();
    let a = std::sync::Arc::new(agent);
    let runner = a.clone();
    std::thread::spawn(move || {
        tx.send(runner.run_once(Duration::from_secs(60), &mut |_| true))
            .unwrap()
    });
    let report = rx.recv_timeout(WATCHDOG).expect("run hung").unwrap();
    assert_eq!(report.uploaded, 3);
    let s = a.stats().unwrap();
    assert_eq!(s.done, 3, "the old rows went at the end of the run");
    let db = Db::open(&p).unwrap();
    assert_eq!(assert_counters(&db), s);
    drop(db);
    assert_eq!(
        std::fs::metadata(dir.path().join("q.db-wal"))
            .unwrap()
            .len(),
        0
    );
}
