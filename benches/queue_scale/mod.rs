//! Issue 16, status counters and audit retention (`--only stats`, `--only prune`).
//!
//! 4. `stats`: `ops::stats` (counters kept by triggers, schema v9) against
//!    `ops::stats_by_scan` (the count and GROUP BY every call made before) at
//!    1,000 and at `--big` (1,000,000) items plus as many audit rows, calls
//!    alternating between the two files.
//! 5. `prune`: `--old` (200,000) audit rows past the retention pruned in
//!    durable batches of `PRUNE_BATCH` rows (the time each batch holds the
//!    write lock), against one `DELETE` of the same rows in one transaction
//!    (how long the lock would be held without batches); file pages before
//!    and after.

use std::path::Path;
use std::time::Instant;

use cloudsync::queue::ops::{self, PRUNE_BATCH};
use cloudsync::queue::Db;

use crate::common::{arg, median, quantile, result, timed};

const DAY_MS: i64 = 86_400_000;

/// `n` audit rows finished at `at`, in one transaction.
fn fill_audit(db: &mut Db, n: usize, at: i64) {
    db.write(|tx| {
        let mut st = tx.prepare(
            "INSERT INTO audit (item_id, service, region, host, peer_ip, bytes, sha256,
                                finished_at, sent_bytes)
             VALUES (?1, 'backup', 'in', 'backup.in.example.net:443', '10.0.0.1', 4096,
                     randomblob(32), ?2, 4096)",
        )?;
        for i in 0..n {
            st.execute(rusqlite::params![i as i64, at])?;
        }
        Ok(())
    })
    .expect("fill audit");
}

pub fn stats_bench() {
    let calls: usize = arg("--calls", 2000);
    let big: usize = arg("--big", 1_000_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let now = ops::now_ms();
    let sizes = [1_000usize, big];
    let dbs: Vec<Db> = sizes
        .iter()
        .map(|&n| {
            let path = tmp.path().join(format!("stats_{n}.db"));
            let mut db = Db::open(&path).expect("Db::open");
            let (_, t) = timed(|| {
                crate::fill(&mut db, n, now);
                fill_audit(&mut db, n, now);
            });
            println!(
                "filled {n} items + {n} audit rows in {:.1}s",
                t.as_secs_f64()
            );
            drop(db);
            let db = Db::open(&path).expect("Db::open");
            let counted = ops::stats_by_scan(db.conn()).expect("scan");
            assert_eq!(ops::stats(db.conn()).expect("stats"), counted);
            db
        })
        .collect();
    type StatsFn = fn(&rusqlite::Connection) -> cloudsync::Result<ops::QueueStats>;
    let ways: [(&str, StatsFn, usize); 2] = [
        ("stats (counters)", ops::stats, calls),
        (
            "stats_by_scan (before)",
            ops::stats_by_scan,
            (calls / 20).max(20),
        ),
    ];
    for (name, f, n_calls) in ways {
        for db in &dbs {
            for _ in 0..5 {
                f(db.conn()).expect("warm-up");
            }
        }
        let mut lat = vec![Vec::with_capacity(n_calls); sizes.len()];
        for i in 0..n_calls {
            for k in 0..sizes.len() {
                let k = (k + i) % sizes.len();
                let t = Instant::now();
                f(dbs[k].conn()).expect("stats");
                lat[k].push(t.elapsed().as_secs_f64());
            }
        }
        let (small, large) = (median(&lat[0]), median(&lat[1]));
        println!(
            "{name}: 1000 -> median {:.1} us (p99 {:.1}); {big} -> median {:.1} us (p99 {:.1}); ratio {:.2}x",
            small * 1e6,
            quantile(&lat[0], 0.99) * 1e6,
            large * 1e6,
            quantile(&lat[1], 0.99) * 1e6,
            large / small
        );
        let key = if name.starts_with("stats (") {
            "stats"
        } else {
            "stats_scan"
        };
        result(&format!("{key}_1000_median_us"), small * 1e6, "us");
        result(&format!("{key}_{big}_median_us"), large * 1e6, "us");
        result(&format!("{key}_ratio"), large / small, "x");
    }
}

fn pages(db: &Db) -> (i64, i64) {
    let q = |p: &str| -> i64 {
        db.conn()
            .query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
            .expect("pragma")
    };
    (q("page_count"), q("freelist_count"))
}

fn file_mib(p: &Path) -> f64 {
    std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0))
}

pub fn prune_bench() {
    let old: usize = arg("--old", 200_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let now = ops::now_ms();
    let setup = |name: &str| {
        let path = tmp.path().join(name);
        let mut db = Db::open(&path).expect("Db::open");
        fill_audit(&mut db, old, now - 500 * DAY_MS);
        fill_audit(&mut db, 10_000, now - DAY_MS);
        cloudsync::queue::schema::checkpoint_truncate(db.conn()).expect("checkpoint");
        (path, db)
    };
    let (path, mut db) = setup("batched.db");
    let (before, _) = pages(&db);
    let before_mib = file_mib(&path);
    let mut holds = Vec::new();
    let t = Instant::now();
    loop {
        let (n, d) = timed(|| db.write(|tx| ops::prune_audit_batch(tx, now, PRUNE_BATCH)));
        holds.push(d.as_secs_f64());
        if n.expect("prune") < u64::from(PRUNE_BATCH) {
            break;
        }
    }
    let total = t.elapsed().as_secs_f64();
    cloudsync::queue::schema::checkpoint_truncate(db.conn()).expect("checkpoint");
    let (after, free) = pages(&db);
    println!(
        "prune {old} rows in {} batches of {PRUNE_BATCH}: {:.0} rows/s; lock held per batch median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        holds.len(),
        old as f64 / total,
        median(&holds) * 1e3,
        quantile(&holds, 0.99) * 1e3,
        quantile(&holds, 1.0) * 1e3
    );
    println!(
        "file: {before} -> {after} pages ({before_mib:.1} -> {:.1} MiB), {free} free pages left",
        file_mib(&path)
    );
    result("prune_rows_per_s", old as f64 / total, "rows/s");
    result("prune_batch_median_ms", median(&holds) * 1e3, "ms");
    result("prune_batch_max_ms", quantile(&holds, 1.0) * 1e3, "ms");
    result(
        "prune_pages_after_over_before",
        after as f64 / before as f64,
        "x",
    );
    drop(db);
    // The same rows in one transaction: how long the lock would be held.
    let (_, mut one) = setup("one_tx.db");
    let (_, d) = timed(|| {
        one.write(|tx| {
            tx.execute(
                "DELETE FROM audit WHERE finished_at < ?1",
                [now - 400 * DAY_MS],
            )?;
            Ok(())
        })
        .expect("delete")
    });
    println!(
        "one transaction: lock held {:.1} ms ({:.0}x the longest batch)",
        d.as_secs_f64() * 1e3,
        d.as_secs_f64() / quantile(&holds, 1.0)
    );
    result("prune_one_tx_ms", d.as_secs_f64() * 1e3, "ms");
}
