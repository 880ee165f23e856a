//! What the parent checks after each kill: the database opens, passes its
//! integrity check, and holds exactly what the child said it committed (the
//! model), nothing lost and nothing doubled.

use cloudsync_testkit::schema::root_v1;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use cloudsync::queue::ops::{self, now_ms};
use cloudsync::queue::schema::CURRENT_VERSION;
use cloudsync::queue::{Db, State};
use cloudsync::{Agent, ErrorKind};
use rusqlite::Connection;

use super::*;

/// What the parent knows about an id from the child's reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expect {
    /// Enqueue returned it: must be in `items` (with this path and service).
    Present { path: String, service: String },
    /// remove() was called but not seen returning: present or gone.
    MaybeRemoved,
    /// remove() returned: gone for good.
    Removed,
    /// complete was called but not seen committing: in `items` or in `audit`.
    MaybeCompleted,
    /// complete committed: in `audit`, once.
    Completed,
}

#[derive(Default)]
pub(super) struct Model {
    pub(super) ids: HashMap<i64, Expect>,
    pub(super) oks: u64,
    pub(super) removed: u64,
    pub(super) completed: u64,
    pub(super) unresolved_resolved: u64,
    pub(super) uploading_recovered: u64,
    pub(super) busy_seen: u64,
}

impl Model {
    pub(super) fn apply(&mut self, lines: &[String]) {
        for l in lines {
            let mut w = l.splitn(4, ' ');
            let verb = w.next().unwrap();
            let id = || -> i64 { l.split(' ').nth(1).unwrap().parse().unwrap() };
            match verb {
                "start" | "ready" => {}
                "ok" => {
                    let id: i64 = w.next().unwrap().parse().unwrap();
                    let service = w.next().unwrap().to_string();
                    let path = w.next().unwrap().to_string();
                    if let Some(prev @ (Expect::Removed | Expect::Completed)) = self.ids.get(&id) {
                        panic!(
                            "id {id} was returned again after it was {prev:?}: an id was reused"
                        );
                    }
                    self.oks += 1;
                    self.ids.insert(id, Expect::Present { path, service });
                }
                "removing" => {
                    self.ids.insert(id(), Expect::MaybeRemoved);
                }
                "removed" => {
                    self.removed += 1;
                    self.ids.insert(id(), Expect::Removed);
                }
                "completing" => {
                    self.ids.insert(id(), Expect::MaybeCompleted);
                }
                "completed" => {
                    self.completed += 1;
                    self.ids.insert(id(), Expect::Completed);
                }
                other => panic!("unexpected child line {other:?} in {l:?}"),
            }
        }
    }
}

pub(super) fn integrity(c: &Connection) -> String {
    let mut st = c.prepare("PRAGMA integrity_check").unwrap();
    let rows = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
        .join("\n")
}

pub(super) fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Everything a killed writer must leave behind. `round` is for messages.
// Long: one pass over every invariant after a kill, each checked against the model in turn.
pub(super) fn check_after_kill(db: &Path, model: &mut Model, round: usize) {
    if !db.exists() {
        // Killed before the first open created the file: nothing was promised.
        assert!(model.ids.is_empty(), "round {round}: database file gone");
        return;
    }
    // 1. The file is a sound database (this open also recovers the WAL).
    let c = Connection::open(db).unwrap();
    assert_eq!(integrity(&c), "ok", "round {round}: integrity_check");
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(
        (0..=CURRENT_VERSION).contains(&version),
        "round {round}: user_version {version}"
    );
    if version < CURRENT_VERSION {
        // Killed inside the very first open: migrations commit whole, so the
        // next open finishes them. Nothing can have been enqueued yet.
        assert!(
            model.ids.is_empty(),
            "round {round}: items promised on a half-created database"
        );
        drop(c);
        drop(Agent::open(db, &root_v1()).expect("open finishes an interrupted migration"));
        let c = Connection::open(db).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, CURRENT_VERSION);
        assert_eq!(integrity(&c), "ok");
        return;
    }

    // 2. Every state is a valid queue state (`done` rows live in `audit`).
    let mut st = c.prepare("SELECT DISTINCT state FROM items").unwrap();
    let states: Vec<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for s in &states {
        let parsed: State = s
            .parse()
            .unwrap_or_else(|_| panic!("round {round}: invalid state {s:?}"));
        assert_ne!(
            parsed,
            State::Done,
            "round {round}: a done item stayed in items"
        );
    }
    drop(st);

    // 3. Nothing doubled: one active item per (path, service); one audit row per item.
    let dup_active = count(
        &c,
        "SELECT count(*) FROM (SELECT 1 FROM items
           WHERE state IN ('pending','uploading','failed','held')
           GROUP BY path, service HAVING count(*) > 1)",
    );
    assert_eq!(
        dup_active, 0,
        "round {round}: duplicate active (path, service)"
    );
    let dup_audit = count(
        &c,
        "SELECT count(*) FROM (SELECT 1 FROM audit GROUP BY item_id HAVING count(*) > 1)",
    );
    assert_eq!(dup_audit, 0, "round {round}: an item was audited twice");
    let both = count(
        &c,
        "SELECT count(*) FROM audit WHERE item_id IN (SELECT id FROM items)",
    );
    assert_eq!(both, 0, "round {round}: an item is both queued and audited");

    // 4. Nothing lost: every returned id is where the reports say.
    let mut items: HashMap<i64, (String, String)> = HashMap::new();
    let mut st = c.prepare("SELECT id, path, service FROM items").unwrap();
    for r in st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
    {
        let (id, p, s): (i64, String, String) = r.unwrap();
        items.insert(id, (p, s));
    }
    drop(st);
    let mut audited = std::collections::HashSet::new();
    let mut st = c.prepare("SELECT item_id FROM audit").unwrap();
    for r in st.query_map([], |r| r.get::<_, i64>(0)).unwrap() {
        audited.insert(r.unwrap());
    }
    drop(st);
    for (id, exp) in model.ids.iter_mut() {
        let (in_items, in_audit) = (items.get(id), audited.contains(id));
        match exp.clone() {
            Expect::Present { path, service } => {
                let got = in_items.unwrap_or_else(|| {
                    panic!("round {round}: item {id} ({service} {path}) was returned by enqueue but is lost")
                });
                assert_eq!(
                    got,
                    &(path, service),
                    "round {round}: item {id} changed identity"
                );
                assert!(!in_audit);
            }
            Expect::MaybeRemoved => {
                assert!(
                    !in_audit,
                    "round {round}: removed item {id} appeared in audit"
                );
                model.unresolved_resolved += 1;
                *exp = match in_items {
                    Some((p, s)) => Expect::Present {
                        path: p.clone(),
                        service: s.clone(),
                    },
                    None => Expect::Removed,
                };
            }
            Expect::Removed => {
                assert!(
                    in_items.is_none() && !in_audit,
                    "round {round}: removed item {id} came back"
                );
            }
            Expect::MaybeCompleted => {
                model.unresolved_resolved += 1;
                *exp = match (in_items, in_audit) {
                    (Some((p, s)), false) => Expect::Present {
                        path: p.clone(),
                        service: s.clone(),
                    },
                    (None, true) => Expect::Completed,
                    other => panic!("round {round}: item {id} half completed: {other:?}"),
                };
            }
            Expect::Completed => {
                assert!(
                    in_items.is_none() && in_audit,
                    "round {round}: completed item {id} not audited once"
                );
            }
        }
    }
    drop(c);

    // 5. The dead child's lease: honoured while live, and taking it over
    //    after expiry returns its `uploading` items to `pending` (same upload
    //    URL and offset), so nothing stays stuck.
    let mut q = Db::open(db).expect("Db::open after a kill");
    let snapshot = |q: &Db, state: &str| -> Vec<(i64, Option<String>, i64)> {
        let mut st = q
            .conn()
            .prepare(
                "SELECT id, upload_url, confirmed_offset FROM items WHERE state = ?1 ORDER BY id",
            )
            .unwrap();
        let rows = st
            .query_map([state], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    let uploading = snapshot(&q, "uploading");
    let live_lease: Option<i64> = q
        .conn()
        .query_row("SELECT expires_at FROM lease WHERE id = 1", [], |r| {
            r.get(0)
        })
        .ok()
        .filter(|&exp: &i64| exp > now_ms() + 1_000);
    if live_lease.is_some() {
        let e = q
            .write(|tx| ops::acquire_lease(tx, "checker", now_ms(), Duration::from_secs(1)))
            .unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::Busy,
            "round {round}: a live lease was not honoured"
        );
        assert_eq!(
            snapshot(&q, "uploading"),
            uploading,
            "round {round}: a refused lease changed items"
        );
        model.busy_seen += 1;
    }
    let later = now_ms() + 2 * CHILD_LEASE.as_millis() as i64;
    q.write(|tx| ops::acquire_lease(tx, "checker", later, Duration::from_secs(1)))
        .unwrap();
    assert!(
        snapshot(&q, "uploading").is_empty(),
        "round {round}: items stuck in uploading"
    );
    let pending = snapshot(&q, "pending");
    for u in &uploading {
        assert!(
            pending.contains(u),
            "round {round}: {u:?} lost its session on takeover"
        );
    }
    model.uploading_recovered += uploading.len() as u64;
    q.write(|tx| ops::release_lease(tx, "checker", later))
        .unwrap();
    let lease_rows = count(q.conn(), "SELECT count(*) FROM lease");
    assert_eq!(lease_rows, 0);
    drop(q);

    // 6. The public API agrees after the crash.
    let agent = Agent::open(db, &root_v1()).expect("Agent::open after a kill");
    let s = agent.stats().unwrap();
    let listed = agent.list(None, 0, u32::MAX).unwrap();
    assert_eq!(listed.len(), items.len(), "round {round}");
    assert_eq!(
        (s.pending + s.uploading + s.failed + s.dead + s.held) as usize,
        items.len()
    );
    assert_eq!(s.done as usize, audited.len());
    assert_eq!(s.uploading, 0);

    // 7. The status counters (schema v9) equal a full count: the kill cut no
    //    transaction between a row and its counter.
    let q = Db::open(db).expect("Db::open for the counters");
    assert_eq!(
        ops::stats(q.conn()).unwrap(),
        ops::stats_by_scan(q.conn()).unwrap(),
        "round {round}: counters differ from a full count"
    );
}
