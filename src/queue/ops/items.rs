//! An item's life in the queue: enqueue, pick the next due, claim, record
//! its upload session and progress, remove (queueing a termination).

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{item_row, to_i64, ItemRow, SourceMeta, SourcePrint, ITEM_COLS};
use crate::error::{Error, Result};

/// Adds (or refreshes) one item of `account` (its stamp; `None`: no account
/// in use). An item with the same path, service and account that is still
/// active keeps its id; its size/mtime are refreshed (the uploader notices a
/// changed source and restarts its upload). Another account's item of the
/// same path is another item.
#[allow(clippy::too_many_arguments)]
pub fn enqueue(
    tx: &Transaction<'_>,
    path: &str,
    service: &str,
    priority: i32,
    meta: SourceMeta,
    region: Option<&str>,
    account: Option<&[u8]>,
    now: i64,
) -> Result<i64> {
    let existing: Option<i64> = tx
        .query_row(
            "SELECT id FROM items WHERE path = ?1 AND service = ?2
               AND ifnull(account, x'') = ifnull(?3, x'')
               AND state IN ('pending','uploading','failed','held')",
            params![path, service, account],
            |r| r.get(0),
        )
        .optional()?;
    let size = to_i64(meta.size)?;
    if let Some(id) = existing {
        tx.execute(
            "UPDATE items SET size = ?2, mtime_ns = ?3, priority = ?4, updated_at = ?5,
                sha256 = CASE WHEN size = ?2 AND mtime_ns = ?3 THEN sha256 END
             WHERE id = ?1",
            params![id, size, meta.mtime_ns, priority, now],
        )?;
        return Ok(id);
    }
    tx.execute(
        "INSERT INTO items (path, service, priority, size, mtime_ns, region, account, state,
                            next_attempt_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8, ?8)",
        params![
            path,
            service,
            priority,
            size,
            meta.mtime_ns,
            region,
            account,
            now
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// The next item to upload for `region`: highest priority, then the oldest
/// due. Served by the partial index `items_due`.
pub fn next_due(conn: &Connection, region: &str, now: i64) -> Result<Option<ItemRow>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {ITEM_COLS} FROM items INDEXED BY items_due
                 WHERE state IN ('pending', 'failed') AND region = ?1 AND next_attempt_at <= ?2
                 ORDER BY priority DESC, next_attempt_at, id LIMIT 1"
            ),
            params![region, now],
            item_row,
        )
        .optional()?)
}

/// The next item run `run` may attempt: due, of its region and account, and
/// not claimed by this run before (one attempt per item per run). Served by
/// `items_due` in its order: the items this run already tried and that are
/// due again sort after the older ones it has not, so a pick costs the same
/// at the first and the 100,000th item of a run.
pub fn next_for_run(
    conn: &Connection,
    region: &str,
    account: Option<&[u8]>,
    run: &str,
    now: i64,
) -> Result<Option<ItemRow>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ITEM_COLS} FROM items INDEXED BY items_due
             WHERE state IN ('pending', 'failed') AND region = ?1 AND next_attempt_at <= ?2
               AND run_id IS NOT ?3 AND account IS ?4
             ORDER BY priority DESC, next_attempt_at, id LIMIT 1"
        ))?
        .query_row(params![region, now, run, account], item_row)
        .optional()?)
}

/// One item by id.
pub fn get(conn: &Connection, id: i64) -> Result<ItemRow> {
    conn.query_row(
        &format!("SELECT {ITEM_COLS} FROM items WHERE id = ?1"),
        [id],
        item_row,
    )
    .optional()?
    .ok_or(Error::NotFound)
}

/// Marks an item as seen by run `run` without claiming it (it was picked
/// but could not be claimed), so the run does not pick it again.
pub fn mark_seen(tx: &Transaction<'_>, id: i64, run: &str) -> Result<()> {
    tx.execute(
        "UPDATE items SET run_id = ?2 WHERE id = ?1",
        params![id, run],
    )?;
    Ok(())
}

/// `pending|failed → uploading` for the lease holder.
pub fn claim(
    tx: &Transaction<'_>,
    id: i64,
    region: &str,
    account: Option<&[u8]>,
    run: &str,
    now: i64,
) -> Result<()> {
    // Region and account are checked again here: only an item stamped for the
    // run's region and account may be claimed, whatever happened since it was
    // picked (a process of an older version may have enqueued it unstamped).
    let n = tx.execute(
        "UPDATE items SET state = 'uploading', run_id = ?5, updated_at = ?2
         WHERE id = ?1 AND state IN ('pending','failed') AND region = ?3 AND account IS ?4",
        params![id, now, region, account, run],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

/// Records the upload session of an item, made for the source version `print`
/// (its idempotency key stays); with `None`, clears the session, its key and
/// its fingerprint. Either way the item's sent-bytes count stays (it counts
/// every body byte sent for the item, whatever session they went to).
pub fn set_session(
    tx: &Transaction<'_>,
    id: i64,
    session: Option<(&str, &SourcePrint)>,
    offset: u64,
    now: i64,
) -> Result<()> {
    let n = match session {
        Some((url, print)) => tx.execute(
            "UPDATE items SET upload_url = ?2, upload_print = ?3, upload_len = ?4,
                    upload_mtime_ns = ?5, upload_sha256 = NULL, confirmed_offset = ?6,
                    updated_at = ?7
             WHERE id = ?1",
            params![
                id,
                url,
                print.to_bytes().to_vec(),
                to_i64(print.meta.size)?,
                print.meta.mtime_ns,
                to_i64(offset)?,
                now
            ],
        )?,
        None => tx.execute(
            "UPDATE items SET upload_url = NULL, upload_print = NULL, upload_key = NULL,
                    upload_len = NULL, upload_mtime_ns = NULL, upload_sha256 = NULL,
                    confirmed_offset = 0, updated_at = ?2
             WHERE id = ?1",
            params![id, now],
        )?,
    };
    if n == 0 {
        // The app removed the item during its upload: a new session must
        // still be terminated, so report it and let the caller queue that.
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Records the idempotency key of a creation request about to be sent for the
/// source version `print`, before it is sent: a crash after the `POST` then
/// retries with the same key and finds the upload it made. Any stored session is
/// dropped (the caller has terminated or forgotten it); the sent-bytes count
/// stays.
pub fn set_key(
    tx: &Transaction<'_>,
    id: i64,
    key: &str,
    print: &SourcePrint,
    now: i64,
) -> Result<()> {
    let n = tx.execute(
        "UPDATE items SET upload_key = ?2, upload_print = ?3, upload_url = NULL,
                upload_len = NULL, upload_mtime_ns = NULL, upload_sha256 = NULL,
                confirmed_offset = 0, updated_at = ?4
         WHERE id = ?1",
        params![id, key, print.to_bytes().to_vec(), now],
    )?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Gives a new item the idempotency key of its first creation request, for
/// the source version `print` seen at enqueue, in the enqueue's own durable
/// commit: the upload then needs no commit of its own before its `POST`
/// (DESIGN.md §7). Does nothing to an item that already has a key or a
/// session (a re-enqueued active item keeps its own).
pub fn preset_key(tx: &Transaction<'_>, id: i64, key: &str, print: &SourcePrint) -> Result<()> {
    tx.execute(
        "UPDATE items SET upload_key = ?2, upload_print = ?3
         WHERE id = ?1 AND upload_key IS NULL AND upload_url IS NULL",
        params![id, key, print.to_bytes().to_vec()],
    )?;
    Ok(())
}

/// Records the body bytes sent for an item so far, across all its sessions
/// and runs (`NotFound` if it was removed meanwhile). Written before a body
/// goes out (with that body counted) and corrected after it.
pub fn set_sent(tx: &Transaction<'_>, id: i64, sent: u64, now: i64) -> Result<()> {
    let n = tx.execute(
        "UPDATE items SET upload_sent = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, to_i64(sent)?, now],
    )?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Records the refreshed source metadata the uploader saw.
pub fn set_source(tx: &Transaction<'_>, id: i64, meta: SourceMeta) -> Result<()> {
    tx.execute(
        "UPDATE items SET size = ?2, mtime_ns = ?3 WHERE id = ?1",
        params![id, to_i64(meta.size)?, meta.mtime_ns],
    )?;
    Ok(())
}

/// Persists a server-confirmed offset (`NotFound` if the item was removed meanwhile).
pub fn set_offset(tx: &Transaction<'_>, id: i64, offset: u64, now: i64) -> Result<()> {
    let n = tx.execute(
        "UPDATE items SET confirmed_offset = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, to_i64(offset)?, now],
    )?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Persists a server-confirmed offset and the body bytes sent so far for the
/// item (`NotFound` if the item was removed meanwhile).
pub fn set_progress(tx: &Transaction<'_>, id: i64, offset: u64, sent: u64, now: i64) -> Result<()> {
    let n = tx.execute(
        "UPDATE items SET confirmed_offset = ?2, upload_sent = ?3, updated_at = ?4 WHERE id = ?1",
        params![id, to_i64(offset)?, to_i64(sent)?, now],
    )?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Puts an `uploading` item back to `pending` (cancel, time up), keeping its
/// session. It goes to the back of its priority class (`next_attempt_at` =
/// now, no attempt charged): an item that stalls every run until its
/// deadline must not be picked first each time and starve the rest.
pub fn unclaim(tx: &Transaction<'_>, id: i64, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE items SET state = 'pending', updated_at = ?2,
                next_attempt_at = max(next_attempt_at, ?2)
         WHERE id = ?1 AND state = 'uploading'",
        params![id, now],
    )?;
    Ok(())
}

/// Removes one item. If it had an upload session in `approved`'s region, a
/// termination (`DELETE`) is queued for the next run.
pub fn remove(tx: &Transaction<'_>, id: i64) -> Result<()> {
    type Row = (Option<String>, Option<String>, String, Option<Vec<u8>>);
    let row: Option<Row> = tx
        .query_row(
            "SELECT region, upload_url, service, account FROM items WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let (region, url, service, account) = row.ok_or(Error::NotFound)?;
    if let (Some(region), Some(url)) = (region, url) {
        let owner = Owner {
            service: &service,
            account: account.as_deref(),
        };
        queue_termination(tx, &region, &url, owner)?;
    }
    tx.execute("DELETE FROM items WHERE id = ?1", [id])?;
    Ok(())
}

/// Queues a `DELETE` of an upload session for the next run in `region`.
pub fn queue_termination(
    tx: &Transaction<'_>,
    region: &str,
    url: &str,
    owner: Owner<'_>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO terminations (region, upload_url, service, account) VALUES (?1, ?2, ?3, ?4)",
        params![region, url, owner.service, owner.account],
    )?;
    Ok(())
}

/// Whose upload a termination ends: the `DELETE` carries that service's
/// credentials of that account, so it waits until the account is current.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The item's service.
    pub service: &'a str,
    /// The item's account stamp (`None`: no account in use).
    pub account: Option<&'a [u8]>,
}

/// A queued termination.
#[derive(Debug, Clone)]
pub struct Termination {
    /// Row id.
    pub id: i64,
    /// The upload URL (may carry a token: never log it).
    pub url: String,
    /// The service it was made for (`None`: queued before schema v5; sent
    /// without credentials).
    pub service: Option<String>,
}

/// Pending terminations of a region and account stamp.
pub fn terminations(
    conn: &Connection,
    region: &str,
    account: Option<&[u8]>,
) -> Result<Vec<Termination>> {
    let mut st = conn.prepare(
        "SELECT id, upload_url, service FROM terminations
         WHERE region = ?1 AND account IS ?2 ORDER BY id",
    )?;
    let rows = st.query_map(params![region, account], |r| {
        Ok(Termination {
            id: r.get(0)?,
            url: r.get(1)?,
            service: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Drops a processed termination.
pub fn drop_termination(tx: &Transaction<'_>, id: i64) -> Result<()> {
    tx.execute("DELETE FROM terminations WHERE id = ?1", [id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
