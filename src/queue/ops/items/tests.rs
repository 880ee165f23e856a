//! Unit tests of the item operations.

use super::*;
use crate::queue::ops::testutil::{db, META};

#[test]
fn a_key_and_a_session_belong_to_one_fingerprint_and_clear_together() {
    use crate::queue::ops::testutil::PRINT;
    let mut db = db();
    let id = db
        .write(|tx| enqueue(tx, "/a", "b", 0, META, Some("in"), None, 1))
        .unwrap();
    assert_eq!(SourcePrint::from_bytes(&PRINT.to_bytes()), Some(PRINT));
    assert_eq!(SourcePrint::from_bytes(&[0u8; 39]), None);
    db.write(|tx| set_key(tx, id, "k", &PRINT, 2)).unwrap();
    let row = get(db.conn(), id).unwrap();
    assert_eq!(
        (row.upload_key.as_deref(), row.upload_print),
        (Some("k"), Some(PRINT))
    );
    assert_eq!(row.upload_url, None);
    db.write(|tx| set_session(tx, id, Some(("https://h/u", &PRINT)), 7, 3))
        .unwrap();
    let row = get(db.conn(), id).unwrap();
    assert_eq!(
        row.upload_key.as_deref(),
        Some("k"),
        "the key stays with its session"
    );
    assert_eq!(
        (row.upload_url.as_deref(), row.confirmed_offset),
        (Some("https://h/u"), 7)
    );
    db.write(|tx| set_session(tx, id, None, 0, 4)).unwrap();
    let row = get(db.conn(), id).unwrap();
    assert_eq!(
        (row.upload_url, row.upload_key, row.upload_print),
        (None, None, None)
    );
    let e = db
        .write(|tx| set_key(tx, id + 1, "k", &PRINT, 5))
        .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::NotFound);
}

#[test]
fn the_sent_count_outlives_keys_and_sessions_and_a_preset_key_yields() {
    use crate::queue::ops::testutil::PRINT;
    let mut db = db();
    let id = db
        .write(|tx| enqueue(tx, "/a", "b", 0, META, Some("in"), None, 1))
        .unwrap();
    db.write(|tx| preset_key(tx, id, "k0", &PRINT)).unwrap();
    let row = get(db.conn(), id).unwrap();
    assert_eq!(
        (row.upload_key.as_deref(), row.upload_print),
        (Some("k0"), Some(PRINT))
    );
    // An item with a key (or a session) keeps its own.
    db.write(|tx| preset_key(tx, id, "k1", &PRINT)).unwrap();
    assert_eq!(
        get(db.conn(), id).unwrap().upload_key.as_deref(),
        Some("k0")
    );
    db.write(|tx| set_sent(tx, id, 1000, 2)).unwrap();
    db.write(|tx| set_session(tx, id, Some(("https://h/u", &PRINT)), 7, 3))
        .unwrap();
    db.write(|tx| set_session(tx, id, None, 0, 4)).unwrap();
    db.write(|tx| set_key(tx, id, "k2", &PRINT, 5)).unwrap();
    db.write(|tx| set_progress(tx, id, 0, 1500, 6)).unwrap();
    let row = get(db.conn(), id).unwrap();
    assert_eq!(row.upload_sent, 1500, "never reset by a new key or session");
    assert_eq!(
        db.write(|tx| set_sent(tx, id + 1, 1, 7))
            .unwrap_err()
            .kind(),
        crate::ErrorKind::NotFound
    );
}

#[test]
fn a_run_picks_each_item_once_and_new_items_too() {
    let mut db = db();
    let a = db
        .write(|tx| enqueue(tx, "/a", "b", 0, META, Some("in"), None, 1))
        .unwrap();
    let b = db
        .write(|tx| enqueue(tx, "/b", "b", 0, META, Some("in"), None, 2))
        .unwrap();
    let pick = |db: &crate::queue::Db| {
        next_for_run(db.conn(), "in", None, "run-1", 100)
            .unwrap()
            .map(|r| r.id)
    };
    assert_eq!(pick(&db), Some(a));
    db.write(|tx| claim(tx, a, "in", None, "run-1", 10))
        .unwrap();
    // Failed and due again at once: not for this run.
    db.write(|tx| unclaim(tx, a, 11)).unwrap();
    assert_eq!(pick(&db), Some(b));
    // Picked but not claimable (say, another account's): marked, skipped.
    db.write(|tx| mark_seen(tx, b, "run-1")).unwrap();
    assert_eq!(pick(&db), None);
    let c = db
        .write(|tx| enqueue(tx, "/c", "b", 0, META, Some("in"), None, 50))
        .unwrap();
    assert_eq!(pick(&db), Some(c), "enqueued during the run: picked by it");
    // A new run tries them all again (the unclaimed one went behind its class).
    let next_run = next_for_run(db.conn(), "in", None, "run-2", 100).unwrap();
    assert_eq!(next_run.map(|r| r.id), Some(b));
}

#[test]
fn an_unclaimed_item_goes_behind_the_others_of_its_priority() {
    let mut db = db();
    let ids: Vec<i64> = (0..3)
        .map(|i| {
            db.write(|tx| {
                enqueue(
                    tx,
                    &format!("/f{i}"),
                    "backup",
                    0,
                    META,
                    Some("in"),
                    None,
                    10 + i,
                )
            })
            .unwrap()
        })
        .collect();
    let first = next_due(db.conn(), "in", 100).unwrap().unwrap().id;
    assert_eq!(first, ids[0]);
    // Cut by the run's deadline (no attempt charged), then the next run.
    db.write(|tx| claim(tx, first, "in", None, "r", 100))
        .unwrap();
    db.write(|tx| unclaim(tx, first, 100)).unwrap();
    let order: Vec<i64> = (0..3)
        .map(|_| {
            let id = next_due(db.conn(), "in", 200).unwrap().unwrap().id;
            db.write(|tx| claim(tx, id, "in", None, "r", 200)).unwrap();
            id
        })
        .collect();
    assert_eq!(order, vec![ids[1], ids[2], ids[0]]);
    assert_eq!(
        get(db.conn(), first).unwrap().attempts,
        0,
        "no attempt charged"
    );
    // A higher priority still comes first, whatever its history.
    let hi = db
        .write(|tx| enqueue(tx, "/hi", "backup", 5, META, Some("in"), None, 300))
        .unwrap();
    db.write(|tx| claim(tx, hi, "in", None, "r", 300)).unwrap();
    db.write(|tx| unclaim(tx, hi, 400)).unwrap();
    assert_eq!(next_due(db.conn(), "in", 500).unwrap().unwrap().id, hi);
}

#[test]
fn enqueue_dedupes_active_path_and_refreshes() {
    let mut db = db();
    let a = db
        .write(|tx| enqueue(tx, "/a", "backup", 0, META, Some("in"), None, 1))
        .unwrap();
    let b = db
        .write(|tx| {
            enqueue(
                tx,
                "/a",
                "backup",
                3,
                SourceMeta {
                    size: 7,
                    mtime_ns: 9,
                },
                Some("in"),
                None,
                2,
            )
        })
        .unwrap();
    assert_eq!(a, b);
    let row = get(db.conn(), a).unwrap();
    assert_eq!((row.size, row.mtime_ns, row.priority), (7, 9, 3));
    let c = db
        .write(|tx| enqueue(tx, "/a", "photos", 0, META, Some("in"), None, 3))
        .unwrap();
    assert_ne!(a, c);
}

#[test]
fn next_due_orders_by_priority_then_age_and_skips_other_regions() {
    let mut db = db();
    let old = db
        .write(|tx| enqueue(tx, "/old", "b", 0, META, Some("in"), None, 10))
        .unwrap();
    let _new = db
        .write(|tx| enqueue(tx, "/new", "b", 0, META, Some("in"), None, 20))
        .unwrap();
    let _sg = db
        .write(|tx| enqueue(tx, "/sg", "b", 9, META, Some("sg"), None, 5))
        .unwrap();
    assert_eq!(next_due(db.conn(), "in", 100).unwrap().unwrap().id, old);
    let hi = db
        .write(|tx| enqueue(tx, "/hi", "b", 5, META, Some("in"), None, 30))
        .unwrap();
    assert_eq!(next_due(db.conn(), "in", 100).unwrap().unwrap().id, hi);
    assert!(next_due(db.conn(), "in", 15).unwrap().is_some());
    assert!(
        next_due(db.conn(), "in", 5).unwrap().is_none(),
        "nothing due yet"
    );
    let plan: String = db
        .conn()
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM items INDEXED BY items_due
             WHERE state IN ('pending','failed') AND region = 'in' AND next_attempt_at <= 1
             ORDER BY priority DESC, next_attempt_at, id LIMIT 1",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(
        plan.contains("items_due") && !plan.contains("TEMP B-TREE"),
        "{plan}"
    );
}
