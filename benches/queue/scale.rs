//! Issue 16, part 5: costs that must not grow with the size of the queue.
//!
//! * `--only paging`: one page (`--page` rows, 50: a full page of `held` at 1,000 rows too) of `list` (all states,
//!   a sparse state `held` (5%), a dense one `pending` (90%)) and of `audit`,
//!   on a 1,000-row and a `--big`-row (1,000,000) queue and audit trail:
//!   the first page and the deepest full page (the last `--page` rows).
//!   Calls alternate between the two sizes. The state pages are measured
//!   twice: with the schema as it is, then with the `(state, id)` index the
//!   next migration adds (created here with `IF NOT EXISTS`, so after that
//!   migration both rows show the same plan).
//! * `--only enqueue_batches`: `Agent::enqueue_all` of `--paths` (100,000)
//!   files in batches of `--batch-size` (1,000) into one database: the
//!   per-item cost of the first and the last batches.

use std::time::Instant;

use cloudsync::queue::{ops, Db, State};
use cloudsync::Agent;

use super::common::{arg, median, result, Keys};
use super::{fill, make_files};

/// Fills `audit` with `n` rows in one transaction.
fn fill_audit(db: &mut Db, n: usize, now: i64) {
    db.write(|tx| {
        let mut st = tx.prepare(
            "INSERT INTO audit (item_id, service, region, host, peer_ip, bytes, sha256,
                                finished_at, sent_bytes)
             VALUES (?1, 'backup', 'in', 'b.in.test:443', '10.0.0.1', 4096, zeroblob(32), ?2, 4096)",
        )?;
        for i in 0..n {
            st.execute(rusqlite::params![i as i64 + 1, now + i as i64])?;
        }
        Ok(())
    })
    .expect("fill audit");
}

/// One page of a kind, from `after`.
#[derive(Clone, Copy)]
enum Page {
    Items(Option<State>),
    Audit,
}

impl Page {
    fn name(self) -> String {
        match self {
            Page::Items(None) => "list all".into(),
            Page::Items(Some(s)) => format!("list {s}"),
            Page::Audit => "audit".into(),
        }
    }

    fn read(self, db: &Db, after: i64, limit: u32) -> usize {
        match self {
            Page::Items(state) => ops::list(db.conn(), state, after, limit)
                .expect("list")
                .len(),
            Page::Audit => ops::audit(db.conn(), after, limit).expect("audit").len(),
        }
    }

    /// The id the deepest full page starts after: the last `limit` rows
    /// follow it (0 when the table holds no more than a page).
    fn deep_after(self, db: &Db, limit: u32) -> i64 {
        let (table, filter) = match self {
            Page::Items(None) => ("items", String::new()),
            Page::Items(Some(s)) => ("items", format!("WHERE state = '{s}'")),
            Page::Audit => ("audit", String::new()),
        };
        let count: i64 = db
            .conn()
            .query_row(&format!("SELECT count(*) FROM {table} {filter}"), [], |r| {
                r.get(0)
            })
            .expect("count");
        if count <= i64::from(limit) {
            return 0;
        }
        db.conn()
            .query_row(
                &format!("SELECT id FROM {table} {filter} ORDER BY id LIMIT 1 OFFSET ?1"),
                [count - i64::from(limit) - 1],
                |r| r.get(0),
            )
            .expect("deep id")
    }

    fn plan(self, db: &Db) -> String {
        let sql = match self {
            Page::Items(None) => "SELECT * FROM items WHERE id > 1 ORDER BY id LIMIT 100",
            Page::Items(Some(_)) => {
                "SELECT * FROM items WHERE state = 'held' AND id > 1 ORDER BY id LIMIT 100"
            }
            Page::Audit => "SELECT * FROM audit WHERE id > 1 ORDER BY id LIMIT 100",
        };
        let mut st = db
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let rows = st.query_map([], |r| r.get::<_, String>(3)).expect("plan");
        rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("; ")
    }
}

/// Median seconds of one page at each size, calls alternating between sizes;
/// stops after `calls` rounds or `budget_s` seconds (at least 5 rounds).
fn sample(
    dbs: &[Db],
    page: Page,
    afters: &[i64],
    limit: u32,
    calls: usize,
    budget_s: f64,
) -> Vec<f64> {
    let mut lat = vec![Vec::new(); dbs.len()];
    let start = Instant::now();
    for i in 0..calls {
        for k in 0..dbs.len() {
            let k = (k + i) % dbs.len();
            let t = Instant::now();
            let n = page.read(&dbs[k], afters[k], limit);
            lat[k].push(t.elapsed().as_secs_f64());
            assert!(n > 0, "an empty page measures nothing");
        }
        if i >= 4 && start.elapsed().as_secs_f64() > budget_s {
            break;
        }
    }
    lat.iter().map(|l| median(l)).collect()
}

pub fn paging_bench() {
    let big: usize = arg("--big", 1_000_000);
    let calls: usize = arg("--calls", 500);
    let limit: u32 = arg("--page", 50);
    let tmp = tempfile::tempdir().expect("tempdir");
    let now = ops::now_ms();
    let sizes = [1_000usize, big];
    let open = |n: usize| {
        let path = tmp.path().join(format!("paging_{n}.db"));
        let t = Instant::now();
        let mut db = Db::open(&path).expect("Db::open");
        fill(&mut db, n, now);
        fill_audit(&mut db, n, now);
        println!(
            "filled {n} items and {n} audit rows in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        drop(db);
        Db::open(&path).expect("Db::open")
    };
    let dbs: Vec<Db> = sizes.iter().map(|&n| open(n)).collect();
    let pages = [
        Page::Items(None),
        Page::Audit,
        Page::Items(Some(State::Held)),
        Page::Items(Some(State::Pending)),
    ];
    println!("| page ({limit} rows) | index | 1k first | 1M first | 1k deep | 1M deep | 1M/1k first | 1M/1k deep | deep/first at 1M |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for with_index in [false, true] {
        if with_index {
            for db in &dbs {
                let t = Instant::now();
                db.conn()
                    .execute_batch("CREATE INDEX IF NOT EXISTS items_state_id ON items (state, id)")
                    .expect("index");
                println!("(made items_state_id in {:.1}s)", t.elapsed().as_secs_f64());
            }
        }
        for page in pages {
            if with_index && matches!(page, Page::Items(None) | Page::Audit) {
                continue; // rowid ranges: no index involved
            }
            eprintln!("plan of {}: {}", page.name(), page.plan(&dbs[1]));
            let first = sample(&dbs, page, &[0, 0], limit, calls, 10.0);
            let afters: Vec<i64> = dbs.iter().map(|db| page.deep_after(db, limit)).collect();
            let deep = sample(&dbs, page, &afters, limit, calls, 10.0);
            let index = match page {
                Page::Items(Some(_)) if with_index => "(state, id)",
                Page::Items(Some(_)) => "as shipped (v8)",
                _ => "rowid",
            };
            println!(
                "| {} | {index} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.2}x | {:.2}x | {:.2}x |",
                page.name(),
                first[0] * 1e6,
                first[1] * 1e6,
                deep[0] * 1e6,
                deep[1] * 1e6,
                first[1] / first[0],
                deep[1] / deep[0],
                deep[1] / first[1],
            );
            let key = format!(
                "page_{}{}",
                page.name().replace(' ', "_"),
                if with_index { "_indexed" } else { "" }
            );
            result(&format!("{key}_ratio_first"), first[1] / first[0], "x");
            result(&format!("{key}_ratio_deep"), deep[1] / deep[0], "x");
        }
    }
}

pub fn enqueue_batches_bench() {
    let n: usize = arg("--paths", 100_000);
    let batch: usize = arg("--batch-size", 1_000);
    let keys = Keys::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let files = make_files(&tmp.path().join("files"), n);
    println!("made {n} files in {:.1}s", t.elapsed().as_secs_f64());
    let agent = Agent::open(tmp.path().join("q.db"), &keys.root_envelope).expect("Agent::open");
    let mut per_item = Vec::new();
    for chunk in files.chunks(batch) {
        let t = Instant::now();
        let ids = agent.enqueue_all(chunk, "backup", 0).expect("enqueue_all");
        per_item.push(t.elapsed().as_secs_f64() / ids.len() as f64);
    }
    let k = 10.min(per_item.len() / 2).max(1);
    let (first, last) = (
        median(&per_item[..k]),
        median(&per_item[per_item.len() - k..]),
    );
    println!(
        "enqueue_all of {n} paths in batches of {batch}: per item, first batch {:.1} µs, \
         last batch {:.1} µs; median of the first {k} batches {:.1} µs, of the last {k} {:.1} µs: \
         last/first {:.2}x",
        per_item[0] * 1e6,
        per_item[per_item.len() - 1] * 1e6,
        first * 1e6,
        last * 1e6,
        last / first
    );
    result("enqueue_batch_first_us_per_item", first * 1e6, "us");
    result("enqueue_batch_last_us_per_item", last * 1e6, "us");
    result("enqueue_batch_last_over_first", last / first, "x");
    assert_eq!(agent.stats().expect("stats").pending, n as u64);
    drop(agent);
    // The lookup each enqueue makes first (is the file already queued?).
    let db = Db::open(&tmp.path().join("q.db")).expect("Db::open");
    let plan: String = db
        .conn()
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM items WHERE path = ?1 AND service = ?2
               AND ifnull(account, x'') = ifnull(?3, x'')
               AND state IN ('pending','uploading','failed','held')",
            rusqlite::params![
                rusqlite::types::Null,
                rusqlite::types::Null,
                rusqlite::types::Null
            ],
            |r| r.get(3),
        )
        .expect("plan");
    println!("plan of the enqueue lookup: {plan}");
}
