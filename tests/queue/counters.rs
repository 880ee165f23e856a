//! The status counters (schema v9) against a full count, on a real file:
//! thousands of mixed queue operations in a reproducible random order, every
//! write path the queue has (enqueue and refresh, claim, progress, failure and
//! death, completion, removal, holds and rehome, discard, revival, lease
//! takeover, backup rules at enqueue and changed later), a raw statement no
//! helper knows about, and transactions rolled back half way. After each step
//! `stats` (with its counts by rule class, schema v12) must equal
//! `stats_by_scan`.

use std::time::Duration;

use cloudsync::queue::ops::{self, AuditRecord, SourceMeta};
use cloudsync::queue::{BackupRule, Db, NetworkRule, QueueStats, RetryPolicy};
use cloudsync::Error;

/// A small LCG: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn check(db: &Db, step: usize, what: &str) -> QueueStats {
    let kept = ops::stats(db.conn()).unwrap();
    let counted = ops::stats_by_scan(db.conn()).unwrap();
    assert_eq!(kept, counted, "step {step} ({what}): counters differ");
    kept
}

fn meta(size: u64, mtime_ns: i64) -> SourceMeta {
    SourceMeta { size, mtime_ns }
}

fn random_rule(rng: &mut Rng) -> BackupRule {
    BackupRule {
        network: NetworkRule::ALL[rng.below(3) as usize],
        charging_only: rng.below(2) == 0,
    }
}

/// The six rule classes.
fn all_rules() -> impl Iterator<Item = BackupRule> {
    NetworkRule::ALL.into_iter().flat_map(|network| {
        [false, true].map(|charging_only| BackupRule {
            network,
            charging_only,
        })
    })
}

/// One random operation; returns its name (for the message).
// Long: one match arm per queue operation, each checked against the model.
fn step(db: &mut Db, rng: &mut Rng, now: i64) -> &'static str {
    let policy = RetryPolicy::default();
    let path = format!("/sdcard/DCIM/IMG_{:03}.jpg", rng.below(150));
    let size = 1 + rng.below(10_000);
    let region = ["in", "in", "in", "sg"][rng.below(4) as usize];
    // A random existing item, if any.
    let pick = |db: &Db, rng: &mut Rng, state: &str| -> Option<(i64, u64)> {
        let n: i64 = db
            .conn()
            .query_row(
                "SELECT count(*) FROM items WHERE state = ?1",
                [state],
                |r| r.get(0),
            )
            .unwrap();
        (n > 0).then(|| {
            db.conn()
                .query_row(
                    "SELECT id, size FROM items WHERE state = ?1 ORDER BY id LIMIT 1 OFFSET ?2",
                    rusqlite::params![state, rng.below(n as u64) as i64],
                    |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
                )
                .unwrap()
        })
    };
    match rng.below(14) {
        0..=2 => {
            let item = ops::NewItem {
                path: &path,
                service: "backup",
                priority: 0,
                meta: meta(size, rng.below(3) as i64),
                region: Some(region),
                account: None,
                // Half with a rule of their own, half with the queue's default (or kept).
                rule: (rng.below(2) == 0).then(|| random_rule(rng)),
            };
            db.write(|tx| ops::enqueue_with_rule(tx, &item, now))
                .unwrap();
            "enqueue (new or refreshed)"
        }
        3 => {
            if let Some((id, _)) = pick(db, rng, "pending") {
                let claimed = db.write(|tx| ops::claim(tx, id, "in", None, "run-1", now));
                assert!(claimed.is_ok() || matches!(claimed, Err(Error::NotFound)));
            }
            "claim"
        }
        4 => {
            if let Some((id, size)) = pick(db, rng, "uploading") {
                let off = rng.below(size + 1);
                db.write(|tx| ops::set_progress(tx, id, off, off, now))
                    .unwrap();
            }
            "progress"
        }
        5 => {
            if let Some((id, _)) = pick(db, rng, "uploading") {
                let permanent = rng.below(4) == 0;
                db.write(|tx| ops::fail(tx, id, "network: cut", permanent, None, &policy, now))
                    .unwrap();
            }
            "fail"
        }
        6 => {
            if let Some((id, size)) = pick(db, rng, "uploading") {
                let row = ops::get(db.conn(), id).unwrap();
                let rec = AuditRecord {
                    id: 0,
                    item_id: id,
                    service: "backup".into(),
                    region: "in".into(),
                    host: "h:443".into(),
                    peer_ip: None,
                    bytes: size,
                    sent_bytes: Some(size),
                    sha256: "00".repeat(32),
                    finished_at: now,
                };
                // Now and then the file changed meanwhile: the item stays, pending.
                let uploaded = meta(row.size + rng.below(2), row.mtime_ns);
                db.write(|tx| ops::complete(tx, &rec, uploaded)).unwrap();
            }
            "complete"
        }
        7 => {
            let state = ["pending", "failed", "dead"][rng.below(3) as usize];
            if let Some((id, _)) = pick(db, rng, state) {
                db.write(|tx| ops::remove(tx, id)).unwrap();
            }
            "remove"
        }
        8 => {
            let approved = ["in", "sg"][rng.below(2) as usize];
            db.write(|tx| ops::reconcile_regions(tx, approved, now))
                .unwrap();
            "reconcile regions"
        }
        9 => {
            match rng.below(3) {
                0 => drop(db.write(|tx| ops::rehome(tx, "in", now)).unwrap()),
                1 => drop(db.write(ops::discard_held).unwrap()),
                _ => drop(db.write(|tx| ops::retry_dead(tx, now)).unwrap()),
            }
            "rehome / discard / retry dead"
        }
        10 => {
            // A lease taken over from a dead runner returns its uploads to pending.
            let later = now + 10 * 60_000;
            db.write(|tx| ops::acquire_lease(tx, "other", later, Duration::from_secs(1)))
                .unwrap();
            db.write(|tx| ops::release_lease(tx, "other", later))
                .unwrap();
            "lease takeover"
        }
        11 => {
            // A statement no helper knows about (a write path added later).
            db.write(|tx| {
                tx.execute(
                    "UPDATE items SET state = 'dead', confirmed_offset = size / 2
                     WHERE id IN (SELECT id FROM items WHERE state = 'failed' LIMIT 2)",
                    [],
                )?;
                Ok(())
            })
            .unwrap();
            "raw update"
        }
        12 => {
            // A rule changed, in any state; now and then the queue's default too.
            let state = ["pending", "uploading", "failed", "dead", "held"][rng.below(5) as usize];
            if let Some((id, _)) = pick(db, rng, state) {
                let r = random_rule(rng);
                db.write(|tx| ops::set_rule(tx, id, r)).unwrap();
            }
            if rng.below(4) == 0 {
                let r = random_rule(rng);
                db.write(|tx| ops::set_default_rule(tx, r)).unwrap();
            }
            "set rule"
        }
        _ => {
            // Rolled back half way: the counters must not keep the half.
            let m = meta(size, 9);
            let e = db
                .write(|tx| {
                    ops::enqueue(
                        tx,
                        &format!("{path}.tmp"),
                        "backup",
                        0,
                        m,
                        Some(region),
                        None,
                        now,
                    )?;
                    tx.execute("DELETE FROM items WHERE state = 'pending'", [])?;
                    Err::<(), _>(Error::InvalidArgument("rolled back"))
                })
                .unwrap_err();
            assert_eq!(e.kind(), cloudsync::ErrorKind::InvalidArgument);
            "rolled back"
        }
    }
}

#[test]
fn counters_equal_a_full_count_after_thousands_of_mixed_operations() {
    let seed = 0x5eed_c0de_u64;
    eprintln!("counter test seed {seed}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let mut db = Db::open(&path).unwrap();
    let mut rng = Rng(seed);
    let now = ops::now_ms();
    let mut seen = std::collections::HashSet::new();
    let mut classes = std::collections::HashSet::new();
    for i in 0..3000 {
        let what = step(&mut db, &mut rng, now);
        let s = check(&db, i, what);
        seen.insert((
            s.pending > 0,
            s.uploading > 0,
            s.failed > 0,
            s.dead > 0,
            s.held > 0,
        ));
        classes.extend(all_rules().filter(|r| s.rules.class(*r).items > 0));
    }
    let last = check(&db, 3000, "end");
    assert!(last.done > 20, "completions happened: {last:?}");
    assert!(seen.len() > 4, "the states were visited in many mixes");
    assert_eq!(
        classes.len(),
        6,
        "every rule class was counted at some point"
    );
    // A second connection (another handle or process) reads the same numbers.
    drop(db);
    let db = Db::open(&path).unwrap();
    assert_eq!(check(&db, 3001, "reopened"), last);
}
