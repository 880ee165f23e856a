//! The child process of the crash tests: it opens the queue and writes to it
//! (enqueue, claim, complete, fail) in a seeded random order, saying each
//! committed step on stdout, until the parent kills it.

use cloudsync_testkit::schema::root_v1;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cloudsync::queue::ops::{self, now_ms, AuditRecord};
use cloudsync::queue::{Db, RetryPolicy};
use cloudsync::Agent;

use super::*;

/// A small LCG (PCG constants): reproducible from a printed seed, no dependency.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        let mut r = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
        r.next();
        r
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(super) fn seed() -> u64 {
    if let Some(s) = std::env::var("CLOUDSYNC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b) >> 1
}

pub(super) fn file_path(files: &Path, i: usize) -> PathBuf {
    files.join(format!("IMG_{i:03}.jpg"))
}

pub(super) fn make_files(files: &Path) {
    std::fs::create_dir_all(files).unwrap();
    for i in 0..FILES {
        std::fs::write(file_path(files, i), vec![i as u8; 100 + i * 37]).unwrap();
    }
}

// ------------------------------------------------------------------ child

/// One line, one `write` call, flushed: a SIGKILL can cut at most the line
/// being written, and the parent drops an unterminated last line.
pub(super) fn say(s: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes()).unwrap();
    out.flush().unwrap();
}

// Long: the child's whole life: one loop of seeded steps, each said on stdout once committed.
pub(super) fn child_main(db: &Path, files: &Path, seed: u64) {
    // libtest may have printed "test crash_child ... " without a newline.
    say("\n@@start\n");
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let agent = Agent::open(db, &root_v1()).expect("child: Agent::open");
    let mut q = Db::open(db).expect("child: Db::open");
    say("@@ready\n");
    let owner = format!("child-{}", std::process::id());
    let policy = RetryPolicy {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(10),
        max_attempts: 3,
    };
    let services = ["backup", "photos"];
    let random_id = |q: &Db, states: &str| -> Option<i64> {
        q.conn()
            .query_row(
                &format!(
                    "SELECT id FROM items WHERE state IN ({states}) ORDER BY random() LIMIT 1"
                ),
                [],
                |r| r.get(0),
            )
            .ok()
    };
    while started.elapsed() < CHILD_MAX_LIFE {
        let svc = services[rng.below(2) as usize];
        match rng.below(100) {
            // A batch of 1..=20 files (repeats allowed: they dedupe to one id).
            0..=29 => {
                let n = 1 + rng.below(20) as usize;
                let paths: Vec<PathBuf> = (0..n)
                    .map(|_| file_path(files, rng.below(FILES as u64) as usize))
                    .collect();
                let ids = agent
                    .enqueue_all(&paths, svc, rng.below(3) as i32)
                    .expect("child: enqueue_all");
                assert_eq!(ids.len(), paths.len());
                let mut lines = String::new();
                for (id, p) in ids.iter().zip(&paths) {
                    lines.push_str(&format!("@@ok {id} {svc} {}\n", p.display()));
                }
                say(&lines);
            }
            30..=49 => {
                let p = file_path(files, rng.below(FILES as u64) as usize);
                let id = agent
                    .enqueue(&p, svc, rng.below(3) as i32)
                    .expect("child: enqueue");
                say(&format!("@@ok {id} {svc} {}\n", p.display()));
            }
            50..=57 => {
                if let Some(id) = random_id(&q, "'pending','uploading','failed','dead','held'") {
                    say(&format!("@@removing {id}\n"));
                    agent.remove(id).expect("child: remove");
                    say(&format!("@@removed {id}\n"));
                }
            }
            58..=61 => {
                agent.retry_dead().expect("child: retry_dead");
            }
            62..=64 => {
                // The source changes (size and mtime): the next enqueue refreshes the item.
                let i = rng.below(FILES as u64) as usize;
                let len = 50 + rng.below(5000) as usize;
                std::fs::write(file_path(files, i), vec![rng.below(256) as u8; len]).unwrap();
            }
            // Runner side, on the second connection, one transaction per step.
            _ => {
                q.write(|tx| ops::acquire_lease(tx, &owner, now_ms(), CHILD_LEASE))
                    .expect("child: acquire_lease (the parent released the last one)");
                let Some(id) = random_id(&q, "'pending','failed'") else {
                    continue;
                };
                // As a run does: stamp unstamped items for its region, then claim.
                q.write(|tx| {
                    ops::reconcile_regions(tx, "in", now_ms())?;
                    ops::claim(tx, id, "in", None, "r", now_ms())
                })
                .expect("child: claim");
                let offset = rng.below(10_000);
                q.write(|tx| ops::set_offset(tx, id, offset, now_ms()))
                    .expect("child: set_offset");
                match rng.below(6) {
                    0 => {
                        let permanent = rng.below(3) == 0;
                        q.write(|tx| {
                            ops::fail(tx, id, "network: test", permanent, None, &policy, now_ms())
                        })
                        .expect("child: fail");
                    }
                    1 => {
                        let row = ops::get(q.conn(), id).expect("child: get");
                        let rec = AuditRecord {
                            id: 0,
                            item_id: id,
                            service: row.service,
                            region: "in".into(),
                            host: "backup.in.example.net:443".into(),
                            peer_ip: Some("127.0.0.1".into()),
                            bytes: row.size,
                            sent_bytes: Some(row.size),
                            sha256: "ab".repeat(32),
                            finished_at: now_ms(),
                        };
                        say(&format!("@@completing {id}\n"));
                        let uploaded = ops::SourceMeta {
                            size: row.size,
                            mtime_ns: row.mtime_ns,
                        };
                        q.write(|tx| ops::complete(tx, &rec, uploaded))
                            .expect("child: complete");
                        say(&format!("@@completed {id}\n"));
                    }
                    2 => q
                        .write(|tx| ops::unclaim(tx, id, now_ms()))
                        .expect("child: unclaim"),
                    3 => q
                        .write(|tx| ops::release_lease(tx, &owner, now_ms()))
                        .expect("child: release"),
                    // Otherwise leave it `uploading`, as a runner killed mid-upload would.
                    _ => {}
                }
            }
        }
    }
    panic!("child: nobody killed me within {CHILD_MAX_LIFE:?}");
}

// ------------------------------------------------------------------ parent
