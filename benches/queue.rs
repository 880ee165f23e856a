//! Queue benchmarks (`cargo bench --bench queue`, harness = false).
//!
//! 1. Single enqueue: `Agent::enqueue` one file at a time, each call its own
//!    durable (WAL, synchronous=FULL) transaction, on a real file DB.
//! 2. Batch enqueue: `Agent::enqueue_all` of 10,000 paths in one transaction.
//!    Both against the `sqlite3` CLI inserting the same rows into the same
//!    schema (a DB that cloudsync created) with the same pragmas, in the same
//!    run, rounds interleaved.
//! 3. `queue::ops::next_due` latency with 1,000 vs 1,000,000 queued items.
//! 4. `stats` at 1,000 vs 1,000,000 items and audit rows, and 5. audit
//!    pruning in batches (`queue_scale/mod.rs`: `--only stats`, `--only prune`).
//! 6. `--only run_picks`: one run's picks, first vs last (issue 16, part 1).
//! 7. `--only paging`, `--only enqueue_batches` (not in the default run):
//!    page cost at 1,000 vs 1,000,000 rows, and batch enqueue of 100,000
//!    paths (issue 16, part 5; `queue/scale.rs`).
//!
//! Options (after `--`): `--single N` (2000), `--batch N` (10000),
//! `--rounds R` (5), `--block N` (50), `--calls N` (2000), `--big N` (1000000),
//! `--sqlite3 PATH` (sqlite3).

use cloudsync_testkit::bench as common;
mod queue_scale;
#[path = "queue/scale.rs"]
mod scale;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use cloudsync::queue::{ops, Db};
use cloudsync::Agent;
use common::{arg, median, quantile, result, timed, Keys};

/// The columns `ops::enqueue` writes for a new item.
const INSERT_COLS: &str = "path, service, priority, size, mtime_ns, region, state, next_attempt_at, created_at, updated_at";

fn make_files(dir: &Path, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    (0..n)
        .map(|i| {
            let p = dir.join(format!("photo_{i:06}.jpg"));
            std::fs::write(&p, b"x").expect("write file");
            p
        })
        .collect()
}

/// A fresh cloudsync DB (schema via the crate's own migrations) for the sqlite3 CLI.
fn fresh_schema_db(path: &Path) {
    let db = Db::open(path).expect("Db::open");
    drop(db);
}

fn sql_row(p: &Path, now: i64) -> String {
    let path = p.to_str().expect("utf-8").replace('\'', "''");
    format!("INSERT INTO items ({INSERT_COLS}) VALUES ('{path}', 'backup', 0, 1, 0, NULL, 'pending', {now}, {now}, {now});\n")
}

/// A long-running `sqlite3` CLI process fed through a pipe, so blocks of
/// statements can be timed without its start-up and interleaved with
/// cloudsync's calls.
struct Sqlite3 {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Sqlite3 {
    fn start(sqlite3: &str, db: &Path) -> Sqlite3 {
        let mut child = Command::new(sqlite3)
            .arg("-bail")
            .arg("-batch")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sqlite3 (apt-get install sqlite3)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut s = Sqlite3 {
            child,
            stdin,
            stdout,
        };
        s.run(PRAGMAS);
        s
    }

    /// Sends `sql`, then waits until sqlite3 has executed it; returns seconds.
    fn run(&mut self, sql: &str) -> f64 {
        let t = Instant::now();
        self.stdin.write_all(sql.as_bytes()).expect("write sql");
        self.stdin
            .write_all(b"SELECT 'block-done';\n")
            .expect("write marker");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read sqlite3");
            assert!(n > 0, "sqlite3 exited early");
            if line.trim_end() == "block-done" {
                break;
            }
        }
        t.elapsed().as_secs_f64()
    }

    fn finish(self) {
        let Sqlite3 {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        assert!(child.wait().expect("wait").success(), "sqlite3 failed");
    }
}

fn count_items(db: &Path) -> i64 {
    let d = Db::open(db).expect("open");
    d.conn()
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .expect("count")
}

const PRAGMAS: &str = "PRAGMA journal_mode = WAL;\nPRAGMA synchronous = FULL;\n";

// Long: one bench from set-up to its result lines, read top to bottom.
fn enqueue_benches(keys: &Keys) {
    let single_n: usize = arg("--single", 2000);
    let block: usize = arg("--block", 50);
    let batch_n: usize = arg("--batch", 10_000);
    let rounds: usize = arg("--rounds", 5);
    let sqlite3: String = arg("--sqlite3", "sqlite3".to_string());

    let tmp = tempfile::tempdir().expect("tempdir");
    let files = make_files(&tmp.path().join("files"), single_n.max(batch_n));
    let now = ops::now_ms();

    // Single: blocks of `block` one-row transactions, cloudsync and sqlite3
    // alternating block by block (who goes first alternates too), so both see
    // the same disk: fsync latency on this shared VM swings 10x within seconds.
    let cs_db = tmp.path().join("cs_single.db");
    let sq_db = tmp.path().join("sq_single.db");
    fresh_schema_db(&sq_db);
    let agent = Agent::open(&cs_db, &keys.root_envelope).expect("Agent::open");
    let mut sq = Sqlite3::start(&sqlite3, &sq_db);
    let (mut cs_blocks, mut sq_blocks, mut cs_lat) = (Vec::new(), Vec::new(), Vec::new());
    for (k, chunk) in files[..single_n].chunks(block).enumerate() {
        let sql: String = chunk
            .iter()
            .map(|p| format!("BEGIN IMMEDIATE;\n{}COMMIT;\n", sql_row(p, now)))
            .collect();
        let mut cs_block = || {
            let t = Instant::now();
            for p in chunk {
                let (r, d) = timed(|| agent.enqueue(p, "backup", 0));
                r.expect("enqueue");
                cs_lat.push(d.as_secs_f64());
            }
            t.elapsed().as_secs_f64()
        };
        if k % 2 == 0 {
            cs_blocks.push(cs_block());
            sq_blocks.push(sq.run(&sql));
        } else {
            sq_blocks.push(sq.run(&sql));
            cs_blocks.push(cs_block());
        }
    }
    sq.finish();
    drop(agent);
    assert_eq!(count_items(&cs_db), single_n as i64);
    assert_eq!(count_items(&sq_db), single_n as i64);
    let ratio =
        |cs: &[f64], sq: &[f64]| median(&cs.iter().zip(sq).map(|(c, s)| s / c).collect::<Vec<_>>());
    let single_ratio = ratio(&cs_blocks, &sq_blocks);
    let cs1 = single_n as f64 / cs_blocks.iter().sum::<f64>();
    let sq1 = single_n as f64 / sq_blocks.iter().sum::<f64>();
    let (cs1_med, sq1_med) = (
        block as f64 / median(&cs_blocks),
        block as f64 / median(&sq_blocks),
    );
    println!(
        "single enqueue ({single_n} items, blocks of {block} alternating): \
         cloudsync {cs1:.0}/s overall, {cs1_med:.0}/s median block; \
         sqlite3 CLI {sq1:.0}/s overall, {sq1_med:.0}/s median block; \
         speed ratio cloudsync/sqlite3 (median of block pairs) {single_ratio:.2}x; \
         cloudsync per-call p50 {:.2} ms p99 {:.2} ms",
        median(&cs_lat) * 1e3,
        quantile(&cs_lat, 0.99) * 1e3
    );
    result("enqueue_single_cloudsync_per_s", cs1_med, "items/s");
    result("enqueue_single_sqlite3_per_s", sq1_med, "items/s");
    result("enqueue_single_cloudsync_overall_per_s", cs1, "items/s");
    result("enqueue_single_sqlite3_overall_per_s", sq1, "items/s");
    result("enqueue_single_ratio", single_ratio, "x");
    result("enqueue_single_p50_ms", median(&cs_lat) * 1e3, "ms");
    result("enqueue_single_p99_ms", quantile(&cs_lat, 0.99) * 1e3, "ms");

    // Batch: one transaction of `batch_n` rows into a fresh DB, per round.
    let batch_sql: String = {
        let mut s = String::from("BEGIN IMMEDIATE;\n");
        for p in &files[..batch_n] {
            s.push_str(&sql_row(p, now));
        }
        s.push_str("COMMIT;\n");
        s
    };
    let (mut cs_batch, mut sq_batch) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let db = tmp.path().join(format!("cs_batch_{round}.db"));
        let agent = Agent::open(&db, &keys.root_envelope).expect("Agent::open");
        let db2 = tmp.path().join(format!("sq_batch_{round}.db"));
        fresh_schema_db(&db2);
        let mut sq = Sqlite3::start(&sqlite3, &db2);
        let cs_run = || {
            let (r, d) = timed(|| agent.enqueue_all(&files[..batch_n], "backup", 0));
            assert_eq!(r.expect("enqueue_all").len(), batch_n);
            d.as_secs_f64()
        };
        if round % 2 == 0 {
            cs_batch.push(cs_run());
            sq_batch.push(sq.run(&batch_sql));
        } else {
            sq_batch.push(sq.run(&batch_sql));
            cs_batch.push(cs_run());
        }
        sq.finish();
        drop(agent);
        assert_eq!(count_items(&db2), batch_n as i64);
        println!(
            "batch round {round}: cloudsync {:.3}s, sqlite3 {:.3}s",
            cs_batch[round], sq_batch[round]
        );
    }
    let (csb, sqb) = (
        batch_n as f64 / median(&cs_batch),
        batch_n as f64 / median(&sq_batch),
    );
    let batch_ratio = ratio(&cs_batch, &sq_batch);
    println!(
        "batch enqueue ({batch_n} items, {rounds} rounds): cloudsync {csb:.0}/s, sqlite3 CLI {sqb:.0}/s, \
         speed ratio cloudsync/sqlite3 {batch_ratio:.2}x"
    );
    result("enqueue_batch_cloudsync_per_s", csb, "items/s");
    result("enqueue_batch_sqlite3_per_s", sqb, "items/s");
    result("enqueue_batch_ratio", batch_ratio, "x");
}

/// Fills `items` with `n` rows in one transaction: 90% pending and due in
/// region `in` (priorities 0..3), 5% failed with a future retry time, 5% held
/// for region `sg`.
fn fill(db: &mut Db, n: usize, now: i64) {
    db.write(|tx| {
        let mut st = tx.prepare(&format!(
            "INSERT INTO items ({INSERT_COLS}) VALUES (?1, 'backup', ?2, 4096, 0, ?3, ?4, ?5, ?6, ?6)"
        ))?;
        for i in 0..n {
            let (region, state, next) = match i % 20 {
                0 => ("in", "failed", now + 3_600_000),
                1 => ("sg", "held", now - 1000),
                _ => ("in", "pending", now - 1_000_000 + (i as i64 % 1000)),
            };
            st.execute(rusqlite::params![
                format!("/sdcard/DCIM/Camera/IMG_{i:08}.jpg"),
                (i % 4) as i64,
                region,
                state,
                next,
                now - 1_000_000,
            ])?;
        }
        Ok(())
    })
    .expect("fill");
}

fn next_due_bench() {
    let calls: usize = arg("--calls", 2000);
    let big: usize = arg("--big", 1_000_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let now = ops::now_ms();
    let sizes = [1_000usize, big];
    let dbs: Vec<Db> = sizes
        .iter()
        .map(|&n| {
            let path = tmp.path().join(format!("nd_{n}.db"));
            let mut db = Db::open(&path).expect("Db::open");
            let (_, fill_t) = timed(|| fill(&mut db, n, now));
            println!("filled {n} items in {:.1}s", fill_t.as_secs_f64());
            drop(db);
            // Fresh connection: what a new run sees.
            let db = Db::open(&path).expect("Db::open");
            // Warm-up (page cache, schema).
            for _ in 0..50 {
                ops::next_due(db.conn(), "in", now).expect("next_due");
            }
            db
        })
        .collect();
    // Calls alternate between the two DBs, so both sizes see the same machine load.
    let mut lat = vec![Vec::with_capacity(calls); sizes.len()];
    for i in 0..calls {
        for k in 0..sizes.len() {
            let k = (k + i) % sizes.len();
            let t = Instant::now();
            let row = ops::next_due(dbs[k].conn(), "in", now).expect("next_due");
            lat[k].push(t.elapsed().as_secs_f64());
            assert!(row.is_some_and(|r| r.priority == 3));
        }
    }
    let mut medians = Vec::new();
    for (k, &n) in sizes.iter().enumerate() {
        let m = median(&lat[k]);
        let p99 = quantile(&lat[k], 0.99);
        println!(
            "next_due with {n} items: median {:.1} us, p99 {:.1} us",
            m * 1e6,
            p99 * 1e6
        );
        result(&format!("next_due_{n}_median_us"), m * 1e6, "us");
        result(&format!("next_due_{n}_p99_us"), p99 * 1e6, "us");
        medians.push(m);
    }
    let ratio = medians[1] / medians[0];
    println!(
        "next_due ratio {big} / 1000 items: {ratio:.2}x (target <= 2x: {})",
        if ratio <= 2.0 { "met" } else { "NOT met" }
    );
    result("next_due_ratio", ratio, "x");
}

/// The worst case of one long run: every item it tries fails and is due
/// again at once. Per pick, side by side on two copies of the same queue:
/// `next_for_run` (the row records the run that claimed it) against the
/// query this project used before issue 16 (the ids of every item tried so
/// far, passed into each pick). Medians of the first and the last 1,000
/// picks of an `--items`-item run.
// Long: one bench from set-up to its result lines, read top to bottom.
fn run_picks_bench() {
    let n: usize = arg("--items", 20_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let now = ops::now_ms();
    let open = |name: &str| {
        let path = tmp.path().join(name);
        let mut db = Db::open(&path).expect("Db::open");
        db.write(|tx| {
            let mut st = tx.prepare(&format!(
                "INSERT INTO items ({INSERT_COLS}) VALUES (?1, 'backup', 0, 1, 0, 'in', 'pending', ?2, ?2, ?2)"
            ))?;
            for i in 0..n {
                st.execute(rusqlite::params![format!("/p/{i:08}"), now - 1_000_000 + i as i64])?;
            }
            Ok(())
        })
        .expect("fill");
        db
    };
    let (mut new_db, mut old_db) = (open("new.db"), open("old.db"));
    let fail_now = "UPDATE items SET state = 'failed', next_attempt_at = ?2 WHERE id = ?1";
    let mut tried: Vec<i64> = Vec::with_capacity(n);
    let (mut new_lat, mut old_lat) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        let row = ops::next_for_run(new_db.conn(), "in", None, "run-1", now)
            .expect("pick")
            .expect("an item");
        new_lat.push(t.elapsed().as_secs_f64());
        new_db
            .write(|tx| {
                ops::claim(tx, row.id, "in", None, "run-1", now)?;
                tx.execute(fail_now, rusqlite::params![row.id, now - 1])?;
                Ok(())
            })
            .expect("claim");
        // The old pick passed the ids as a JSON array to json_each; the
        // phone's SQLite has no JSON functions now, so the same list goes
        // in as literals (the same NOT IN over the same ids).
        let ids = tried
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let old_pick = format!(
            "SELECT id FROM items INDEXED BY items_due
             WHERE state IN ('pending', 'failed') AND region = 'in' AND next_attempt_at <= ?1
               AND id NOT IN ({ids})
             ORDER BY priority DESC, next_attempt_at, id LIMIT 1"
        );
        let t = Instant::now();
        let id: i64 = old_db
            .conn()
            .query_row(&old_pick, rusqlite::params![now], |r| r.get(0))
            .expect("old pick");
        old_lat.push(t.elapsed().as_secs_f64());
        tried.push(id);
        old_db
            .write(|tx| {
                tx.execute(fail_now, rusqlite::params![id, now - 1])?;
                Ok(())
            })
            .expect("fail");
    }
    let k = 1000.min(n / 2);
    for (name, lat) in [("next_for_run", &new_lat), ("id list (before)", &old_lat)] {
        let (first, last) = (median(&lat[..k]), median(&lat[n - k..]));
        println!(
            "{name}: first {k} picks {:.1} us, last {k} {:.1} us, last/first {:.2}x",
            first * 1e6,
            last * 1e6,
            last / first
        );
        let key = if name == "next_for_run" {
            "run_pick"
        } else {
            "run_pick_before"
        };
        result(&format!("{key}_first_us"), first * 1e6, "us");
        result(&format!("{key}_last_us"), last * 1e6, "us");
    }
}

fn main() {
    let keys = Keys::new();
    let only: String = arg("--only", String::new());
    if only.is_empty() || only == "enqueue" {
        enqueue_benches(&keys);
    }
    if only.is_empty() || only == "next_due" {
        next_due_bench();
    }
    if only.is_empty() || only == "run_picks" {
        run_picks_bench();
    }
    if only.is_empty() || only == "stats" {
        queue_scale::stats_bench();
    }
    if only.is_empty() || only == "prune" {
        queue_scale::prune_bench();
    }
    // Long (a 1,000,000-row fill, 100,000 files): only when asked for.
    if only == "paging" {
        scale::paging_bench();
    }
    if only == "enqueue_batches" {
        scale::enqueue_batches_bench();
    }
}
