//! Finished uploads (the audit trail) and what the app and the CLI read back:
//! item listings, audit rows (statistics are in `stats`).

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;

use super::{to_i64, SourceMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::queue::{BackupRule, HeldReason, State};

/// What the audit trail records for a finished upload.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditRecord {
    /// Audit row id (monotonic; page with `after_id`).
    pub id: i64,
    /// The queue item.
    pub item_id: i64,
    /// Service name.
    pub service: String,
    /// Region the bytes went to.
    pub region: String,
    /// `host:port` of the endpoint.
    pub host: String,
    /// Peer IP the bytes were written to.
    pub peer_ip: Option<String>,
    /// Bytes the server confirmed (the whole file).
    pub bytes: u64,
    /// Body bytes this client sent for the upload: bytes re-sent after a cut
    /// count again, 0 when the server already held the content. `None` on
    /// rows written before schema v4, whose clients did not count.
    pub sent_bytes: Option<u64>,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// Milliseconds since the epoch.
    pub finished_at: i64,
}

/// Records a finished upload in the audit table and settles its item, in one
/// transaction. The audit row is written whatever happened to the item
/// meanwhile (the bytes did leave the device). The item leaves the queue only
/// if it still describes what was uploaded (`uploaded`: size and mtime); if
/// the app re-enqueued a changed file in the meantime, it stays `pending`
/// with no session, so the new version is uploaded too; if the app removed
/// it, there is nothing to settle.
pub fn complete(tx: &Transaction<'_>, rec: &AuditRecord, uploaded: SourceMeta) -> Result<i64> {
    tx.execute(
        "INSERT INTO audit (item_id, service, region, host, peer_ip, bytes, sha256, finished_at,
                            sent_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            rec.item_id,
            rec.service,
            rec.region,
            rec.host,
            rec.peer_ip,
            to_i64(rec.bytes)?,
            hex::decode(&rec.sha256)
                .map_err(|_| Error::Internal("audit hash is not hex".into()))?,
            rec.finished_at,
            rec.sent_bytes.map(to_i64).transpose()?
        ],
    )?;
    let audit_id = tx.last_insert_rowid();
    let n = tx.execute(
        "DELETE FROM items WHERE id = ?1 AND size = ?2 AND mtime_ns = ?3",
        params![rec.item_id, to_i64(uploaded.size)?, uploaded.mtime_ns],
    )?;
    if n == 0 {
        tx.execute(
            "UPDATE items SET state = CASE state WHEN 'held' THEN 'held' ELSE 'pending' END,
                    upload_url = NULL, upload_len = NULL, upload_mtime_ns = NULL,
                    upload_sha256 = NULL, upload_key = NULL, upload_print = NULL,
                    confirmed_offset = 0, upload_sent = 0,
                    updated_at = ?2
             WHERE id = ?1",
            params![rec.item_id, rec.finished_at],
        )?;
    }
    Ok(audit_id)
}

/// When item `id` is due again (ms since the epoch), if it is still queued.
pub fn next_attempt_of(conn: &Connection, id: i64) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT next_attempt_at FROM items WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?)
}

/// An item as shown to the app and the CLI.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ItemInfo {
    /// Item id.
    pub id: i64,
    /// Source path.
    pub path: String,
    /// Service.
    pub service: String,
    /// Priority.
    pub priority: i64,
    /// Size in bytes.
    pub size: u64,
    /// Region stamp (`None` until the first run with an approved region).
    pub region: Option<String>,
    /// State.
    pub state: State,
    /// Attempts.
    pub attempts: u32,
    /// Confirmed bytes.
    pub confirmed_offset: u64,
    /// When it is due next, ms since the epoch (in the past: due now);
    /// `None` for an item no run will attempt (`dead` or `held`), as in
    /// its `Failed` event.
    pub next_attempt_at: Option<i64>,
    /// Last error (kind: message), if any.
    pub last_error: Option<String>,
    /// The kind of the last error, if any.
    pub last_error_kind: Option<ErrorKind>,
    /// Why a `held` item waits; `None` otherwise.
    pub held_reason: Option<HeldReason>,
    /// The first 8 bytes of the item's account stamp, in hex (`None`: no
    /// account). The same for all items of one account on this device, and
    /// never the account id.
    pub account: Option<String>,
    /// When it may be uploaded (its backup rule).
    pub rule: BackupRule,
}

const INFO_COLS: &str = "id, path, service, priority, size, region, state, attempts,
    confirmed_offset, next_attempt_at, last_error, held_reason, account, network_rule, charging_only";

/// Refuses a negative paging cursor: ids start at 1, so `after_id` is 0 for
/// the first page or an id a previous page returned.
fn check_cursor(after_id: i64) -> Result<()> {
    if after_id < 0 {
        return Err(Error::InvalidArgument("after_id is negative"));
    }
    Ok(())
}

/// One page of items: those with an id above `after_id` (0: from the
/// start), optionally of one state, by id, at most `limit`. Pass the last
/// id of a page to get the next. Keyed, not offset: a page reads only its
/// own rows, so it costs the same at the start and deep in a queue of a
/// million items (an unfiltered page is a rowid range; a state's page walks
/// an index on `(state, id)` where the schema has one, see `docs/DESIGN.md`
/// §7).
pub fn list(
    conn: &Connection,
    state: Option<State>,
    after_id: i64,
    limit: u32,
) -> Result<Vec<ItemInfo>> {
    check_cursor(after_id)?;
    // Two statements, not `?1 IS NULL OR state = ?1`: an OR on a parameter
    // hides the state from the planner, which can then use no index for it.
    let rows = match state {
        None => conn
            .prepare_cached(&format!(
                "SELECT {INFO_COLS} FROM items WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?
            .query_map(params![after_id, limit], item_info)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        Some(s) => conn
            .prepare_cached(&format!(
                "SELECT {INFO_COLS} FROM items WHERE state = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
            ))?
            .query_map(params![s.as_str(), after_id, limit], item_info)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    Ok(rows)
}

/// One item, by id (`NotFound` once it left the queue).
pub fn item(conn: &Connection, id: i64) -> Result<ItemInfo> {
    conn.query_row(
        &format!("SELECT {INFO_COLS} FROM items WHERE id = ?1"),
        [id],
        item_info,
    )
    .optional()?
    .ok_or(Error::NotFound)
}

fn item_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<ItemInfo> {
    let last_error: Option<String> = r.get(10)?;
    let state = named(r, 6, State::from_name)?;
    let held_reason = match r.get_ref(11)? {
        rusqlite::types::ValueRef::Null => None,
        _ => Some(named(r, 11, HeldReason::from_name)?),
    };
    Ok(ItemInfo {
        id: r.get(0)?,
        path: r.get(1)?,
        service: r.get(2)?,
        priority: r.get(3)?,
        size: r.get::<_, i64>(4)?.max(0) as u64,
        region: r.get(5)?,
        state,
        attempts: r.get::<_, i64>(7)?.clamp(0, i64::from(u32::MAX)) as u32,
        confirmed_offset: r.get::<_, i64>(8)?.max(0) as u64,
        next_attempt_at: match state {
            State::Dead | State::Held => None,
            _ => Some(r.get(9)?),
        },
        last_error_kind: last_error
            .as_deref()
            .and_then(|e| e.split_once(':'))
            .and_then(|(k, _)| ErrorKind::from_name(k)),
        last_error,
        held_reason,
        account: r
            .get::<_, Option<Vec<u8>>>(12)?
            .map(|a| hex::encode(&a[..a.len().min(8)])),
        rule: super::rules::rule_at(r, 13)?,
    })
}

/// Column `i` read as one of a table's names; a name this build does not
/// know (a newer schema's, or an edit) is a conversion error, not a guess.
fn named<T>(
    r: &rusqlite::Row<'_>,
    i: usize,
    from_name: fn(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let s: String = r.get(i)?;
    from_name(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            "unknown name".into(),
        )
    })
}

/// Audit rows with `id > after_id` (0: from the start), oldest first, at
/// most `limit`: a rowid range, so a page costs the same however long the
/// trail is.
pub fn audit(conn: &Connection, after_id: i64, limit: u32) -> Result<Vec<AuditRecord>> {
    check_cursor(after_id)?;
    let mut st = conn.prepare_cached(
        "SELECT id, item_id, service, region, host, peer_ip, bytes, sha256, finished_at,
                sent_bytes
         FROM audit WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = st.query_map(params![after_id, limit], |r| {
        Ok(AuditRecord {
            id: r.get(0)?,
            item_id: r.get(1)?,
            service: r.get(2)?,
            region: r.get(3)?,
            host: r.get(4)?,
            peer_ip: r.get(5)?,
            bytes: r.get::<_, i64>(6)?.max(0) as u64,
            sent_bytes: r.get::<_, Option<i64>>(9)?.map(|v| v.max(0) as u64),
            sha256: hex::encode(r.get::<_, Vec<u8>>(7)?),
            finished_at: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ops::testutil::{db, META, PRINT};
    use crate::queue::ops::{enqueue, get, remove, set_offset, set_session, terminations};
    use crate::queue::State;

    /// What `EXPLAIN QUERY PLAN` says for `sql` (its detail lines, joined).
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = st.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn list_pages_by_key_through_every_item_once() {
        let mut db = db();
        let ids: Vec<i64> = (0..7)
            .map(|i| {
                let path = format!("/f{i}");
                db.write(|tx| enqueue(tx, &path, "b", 0, META, Some("in"), None, i))
                    .unwrap()
            })
            .collect();
        // Every other item dead: a state's pages skip the others.
        db.write(|tx| {
            for id in ids.iter().step_by(2) {
                tx.execute("UPDATE items SET state = 'dead' WHERE id = ?1", [id])?;
            }
            Ok(())
        })
        .unwrap();
        let pages = |state: Option<State>, limit: u32| {
            let (mut after, mut seen, mut pages) = (0, Vec::new(), 0);
            loop {
                let page = list(db.conn(), state, after, limit).unwrap();
                pages += 1;
                seen.extend(page.iter().map(|i| i.id));
                match page.last() {
                    Some(last) if page.len() == limit as usize => after = last.id,
                    _ => return (seen, pages),
                }
            }
        };
        assert_eq!(pages(None, 3), (ids.clone(), 3));
        let dead: Vec<i64> = ids.iter().copied().step_by(2).collect();
        assert_eq!(pages(Some(State::Dead), 3), (dead, 2));
        let pending: Vec<i64> = ids.iter().copied().skip(1).step_by(2).collect();
        assert_eq!(pages(Some(State::Pending), 2), (pending, 2));
        assert!(list(db.conn(), Some(State::Done), 0, 10)
            .unwrap()
            .is_empty());
        assert!(list(db.conn(), None, ids[6], 10).unwrap().is_empty());
        assert!(list(db.conn(), None, 0, 0).unwrap().is_empty());
        // A cursor past every id, or of a removed item, is just a place in the order.
        db.write(|tx| remove(tx, ids[3])).unwrap();
        let after_removed = list(db.conn(), None, ids[3], 10).unwrap();
        assert_eq!(after_removed[0].id, ids[4]);
        assert!(list(db.conn(), None, i64::MAX, 10).unwrap().is_empty());
    }

    #[test]
    fn a_negative_cursor_is_refused() {
        let db = db();
        for e in [
            list(db.conn(), None, -1, 10).unwrap_err(),
            list(db.conn(), Some(State::Held), i64::MIN, 10).unwrap_err(),
            audit(db.conn(), -1, 10).map(|_| ()).unwrap_err(),
        ] {
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
            assert_eq!(e.to_string(), "invalid argument: after_id is negative");
        }
    }

    /// The index a state's pages need (`(state, id)`; `items_state` is
    /// `(state, region)`, whose ids are in order only within a region). Not a
    /// schema step of this branch: the next migration adds it, and until then
    /// this test makes it itself (`IF NOT EXISTS`: a no-op once it ships).
    const STATE_ID_INDEX: &str = "CREATE INDEX IF NOT EXISTS items_state_id ON items (state, id)"; // schema v10 has it; kept so the plan check states its premise

    #[test]
    fn pages_are_range_scans_without_a_sort() {
        let db = db();
        let page = |sql: &str| {
            plan(
                db.conn(),
                &format!("SELECT * FROM {sql} ORDER BY id LIMIT 10"),
            )
        };
        for p in [page("items WHERE id > 5"), page("audit WHERE id > 5")] {
            assert!(p.contains("USING INTEGER PRIMARY KEY (rowid>?)"), "{p}");
            assert!(!p.contains("TEMP B-TREE"), "{p}");
        }
        db.conn().execute_batch(STATE_ID_INDEX).unwrap();
        let p = page("items WHERE state = 'dead' AND id > 5");
        assert!(
            p.contains("USING INDEX items_state_id (state=? AND id>?)"),
            "{p}"
        );
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }

    #[test]
    fn complete_keeps_an_item_reenqueued_with_new_content() {
        let mut db = db();
        let id = db
            .write(|tx| enqueue(tx, "/a", "b", 0, META, Some("in"), None, 0))
            .unwrap();
        db.write(|tx| set_session(tx, id, Some(("https://h/u", &PRINT)), 100, 0))
            .unwrap();
        // The app rewrites the file and enqueues it again while the upload finishes.
        let newer = SourceMeta {
            size: 120,
            mtime_ns: 6,
        };
        assert_eq!(
            db.write(|tx| enqueue(tx, "/a", "b", 0, newer, Some("in"), None, 1))
                .unwrap(),
            id
        );
        let rec = AuditRecord {
            id: 0,
            item_id: id,
            service: "b".into(),
            region: "in".into(),
            host: "h:443".into(),
            peer_ip: None,
            bytes: 100,
            sent_bytes: Some(100),
            sha256: hex::encode([1u8; 32]),
            finished_at: 2,
        };
        db.write(|tx| complete(tx, &rec, META)).unwrap();
        assert_eq!(
            audit(db.conn(), 0, 10).unwrap().len(),
            1,
            "the old bytes did leave"
        );
        let row = get(db.conn(), id).unwrap();
        assert_eq!(
            (row.state, row.upload_url, row.size),
            (State::Pending, None, 120),
            "the new version still goes"
        );
        // Removed during its upload: the audit row is still written, nothing else.
        db.write(|tx| remove(tx, id)).unwrap();
        db.write(|tx| complete(tx, &rec, newer)).unwrap();
        assert_eq!(audit(db.conn(), 0, 10).unwrap().len(), 2);
        assert_eq!(
            db.write(|tx| set_offset(tx, id, 5, 3)).unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
    }

    #[test]
    fn complete_moves_to_audit_and_remove_queues_termination() {
        let mut db = db();
        let id = db
            .write(|tx| enqueue(tx, "/a", "b", 0, META, Some("in"), None, 0))
            .unwrap();
        let rec = AuditRecord {
            id: 0,
            item_id: id,
            service: "b".into(),
            region: "in".into(),
            host: "h:443".into(),
            peer_ip: Some("127.0.0.1".into()),
            bytes: 100,
            sent_bytes: Some(0),
            sha256: hex::encode([7u8; 32]),
            finished_at: 9,
        };
        db.write(|tx| complete(tx, &rec, META)).unwrap();
        let got = audit(db.conn(), 0, 10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].sha256, rec.sha256);
        assert_eq!(got[0].sent_bytes, Some(0), "a server that already held it");
        assert_eq!(crate::queue::ops::stats(db.conn()).unwrap().done, 1);
        assert_eq!(
            get(db.conn(), id).unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
        let id2 = db
            .write(|tx| enqueue(tx, "/b", "b", 0, META, Some("in"), None, 0))
            .unwrap();
        db.write(|tx| set_session(tx, id2, Some(("https://h/u2", &PRINT)), 0, 0))
            .unwrap();
        db.write(|tx| remove(tx, id2)).unwrap();
        assert_eq!(terminations(db.conn(), "in", None).unwrap().len(), 1);
        assert_eq!(
            db.write(|tx| remove(tx, id2)).unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
    }
}
