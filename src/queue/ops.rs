//! Queue operations. Writers take a `Transaction` from [`super::Db::write`],
//! so each operation commits whole or not at all.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use serde::Serialize;

use super::State;
use crate::error::{Error, Result};

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Size and modification time of a source file, as recorded at enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceMeta {
    /// Bytes (u64: files over 4 GiB work on 32-bit phones too).
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
}

/// Reads size and mtime; only regular files are accepted.
pub fn stat_source(path: &Path) -> Result<SourceMeta> {
    let md = std::fs::metadata(path).map_err(|e| Error::SourceIo(e.kind()))?;
    if !md.is_file() {
        return Err(Error::InvalidArgument("path is not a regular file"));
    }
    let mtime_ns = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Ok(SourceMeta {
        size: md.len(),
        mtime_ns,
    })
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidArgument("value exceeds 2^63"))
}

/// Retry schedule: exponential backoff with full jitter, capped; a server's
/// `Retry-After` wins when it is longer.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First delay.
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
    /// Attempts before an item goes `dead`.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(3600),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt number `attempts + 1`: uniform in `[0, min(cap, base·2^attempts)]`.
    pub fn delay(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempts.min(31)).unwrap_or(u32::MAX));
        let ceiling = exp.min(self.cap);
        let mut buf = [0u8; 8];
        // If the OS RNG fails, no jitter is still a correct (if less kind) schedule.
        let r = getrandom::fill(&mut buf)
            .map(|_| u64::from_le_bytes(buf))
            .unwrap_or(u64::MAX);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let jittered = Duration::from_millis(if ms == 0 { 0 } else { r % (ms + 1) });
        match retry_after {
            Some(ra) => jittered.max(ra.min(Duration::from_secs(24 * 3600))),
            None => jittered,
        }
    }
}

/// One queue row, as the uploader needs it.
#[derive(Debug, Clone)]
pub struct ItemRow {
    /// Item id.
    pub id: i64,
    /// Source path.
    pub path: String,
    /// Service name.
    pub service: String,
    /// Higher first.
    pub priority: i64,
    /// Size at enqueue (or last refresh).
    pub size: u64,
    /// mtime at enqueue.
    pub mtime_ns: i64,
    /// Region stamp.
    pub region: Option<String>,
    /// Current state.
    pub state: State,
    /// Attempts so far.
    pub attempts: u32,
    /// Upload URL of the session in progress.
    pub upload_url: Option<String>,
    /// Length declared when the session was created.
    pub upload_len: Option<u64>,
    /// Source mtime when the session was created.
    pub upload_mtime_ns: Option<i64>,
    /// Content hash the session was created for.
    pub upload_sha256: Option<[u8; 32]>,
    /// Bytes the server confirmed.
    pub confirmed_offset: u64,
}

const ITEM_COLS: &str = "id, path, service, priority, size, mtime_ns, region, state, attempts,
    upload_url, upload_len, upload_mtime_ns, upload_sha256, confirmed_offset";

fn hash32(v: Option<Vec<u8>>) -> Option<[u8; 32]> {
    v.and_then(|v| <[u8; 32]>::try_from(v).ok())
}

fn state_of(s: String) -> rusqlite::Result<State> {
    s.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            7,
            rusqlite::types::Type::Text,
            "bad state".into(),
        )
    })
}

fn item_row(r: &Row<'_>) -> rusqlite::Result<ItemRow> {
    Ok(ItemRow {
        id: r.get(0)?,
        path: r.get(1)?,
        service: r.get(2)?,
        priority: r.get(3)?,
        size: r.get::<_, i64>(4)?.max(0) as u64,
        mtime_ns: r.get(5)?,
        region: r.get(6)?,
        state: state_of(r.get(7)?)?,
        attempts: r.get::<_, i64>(8)?.clamp(0, i64::from(u32::MAX)) as u32,
        upload_url: r.get(9)?,
        upload_len: r.get::<_, Option<i64>>(10)?.map(|v| v.max(0) as u64),
        upload_mtime_ns: r.get(11)?,
        upload_sha256: hash32(r.get(12)?),
        confirmed_offset: r.get::<_, i64>(13)?.max(0) as u64,
    })
}

/// Adds (or refreshes) one item. An item with the same path and service that
/// is still active keeps its id; its size/mtime are refreshed (the uploader
/// notices a changed source and restarts its upload).
pub fn enqueue(
    tx: &Transaction<'_>,
    path: &str,
    service: &str,
    priority: i32,
    meta: SourceMeta,
    region: Option<&str>,
    now: i64,
) -> Result<i64> {
    let existing: Option<i64> = tx
        .query_row(
            "SELECT id FROM items WHERE path = ?1 AND service = ?2
               AND state IN ('pending','uploading','failed','held')",
            params![path, service],
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
        "INSERT INTO items (path, service, priority, size, mtime_ns, region, state,
                            next_attempt_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7, ?7)",
        params![path, service, priority, size, meta.mtime_ns, region, now],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Makes the queue agree with the approved region: unstamped items get its
/// stamp, items of other regions become `held`, and held items of this region
/// (the account moved back) become `pending` again. Returns the held count.
pub fn reconcile_regions(tx: &Transaction<'_>, approved: &str, now: i64) -> Result<u64> {
    tx.execute(
        "UPDATE items SET region = ?1, updated_at = ?2 WHERE region IS NULL",
        params![approved, now],
    )?;
    tx.execute(
        "UPDATE items SET state = 'held', updated_at = ?2
         WHERE region != ?1 AND state IN ('pending','failed','uploading')",
        params![approved, now],
    )?;
    tx.execute(
        "UPDATE items SET state = 'pending', updated_at = ?2 WHERE region = ?1 AND state = 'held'",
        params![approved, now],
    )?;
    Ok(
        tx.query_row("SELECT count(*) FROM items WHERE state = 'held'", [], |r| {
            r.get::<_, i64>(0)
        })? as u64,
    )
}

/// Holds every stamped item that could still be sent: the account's country
/// maps to no region, so no stamp is approved. Moving to a country that maps
/// to an item's region makes it pending again ([`reconcile_regions`]).
pub fn hold_all(tx: &Transaction<'_>, now: i64) -> Result<u64> {
    Ok(tx.execute(
        "UPDATE items SET state = 'held', updated_at = ?1
         WHERE region IS NOT NULL AND state IN ('pending','failed','uploading')",
        [now],
    )? as u64)
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

/// [`next_due`], skipping the ids in `exclude` (items already tried in this run).
pub fn next_due_excluding(
    conn: &Connection,
    region: &str,
    now: i64,
    exclude: &[i64],
) -> Result<Option<ItemRow>> {
    if exclude.is_empty() {
        return next_due(conn, region, now);
    }
    let ids = serde_json::to_string(exclude).expect("integers serialise");
    Ok(conn
        .query_row(
            &format!(
                "SELECT {ITEM_COLS} FROM items INDEXED BY items_due
                 WHERE state IN ('pending', 'failed') AND region = ?1 AND next_attempt_at <= ?2
                   AND id NOT IN (SELECT value FROM json_each(?3))
                 ORDER BY priority DESC, next_attempt_at, id LIMIT 1"
            ),
            params![region, now, ids],
            item_row,
        )
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

/// `pending|failed → uploading` for the lease holder.
pub fn claim(tx: &Transaction<'_>, id: i64, now: i64) -> Result<()> {
    let n = tx.execute(
        "UPDATE items SET state = 'uploading', updated_at = ?2
         WHERE id = ?1 AND state IN ('pending','failed')",
        params![id, now],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

/// Records (or clears) the upload session of an item.
#[allow(clippy::too_many_arguments)]
pub fn set_session(
    tx: &Transaction<'_>,
    id: i64,
    url: Option<&str>,
    len: Option<u64>,
    mtime_ns: Option<i64>,
    sha256: Option<&[u8; 32]>,
    offset: u64,
    now: i64,
) -> Result<()> {
    let len = len.map(to_i64).transpose()?;
    let n = tx.execute(
        "UPDATE items SET upload_url = ?2, upload_len = ?3, upload_mtime_ns = ?4,
                upload_sha256 = ?5, confirmed_offset = ?6, updated_at = ?7
         WHERE id = ?1",
        params![
            id,
            url,
            len,
            mtime_ns,
            sha256.map(|h| h.to_vec()),
            to_i64(offset)?,
            now
        ],
    )?;
    if n == 0 {
        // The app removed the item during its upload: a new session must
        // still be terminated, so report it and let the caller queue that.
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Records the refreshed source metadata the uploader saw.
pub fn set_source(
    tx: &Transaction<'_>,
    id: i64,
    meta: SourceMeta,
    sha256: &[u8; 32],
) -> Result<()> {
    tx.execute(
        "UPDATE items SET size = ?2, mtime_ns = ?3, sha256 = ?4 WHERE id = ?1",
        params![id, to_i64(meta.size)?, meta.mtime_ns, sha256.to_vec()],
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
    /// Bytes uploaded.
    pub bytes: u64,
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
        "INSERT INTO audit (item_id, service, region, host, peer_ip, bytes, sha256, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            rec.item_id,
            rec.service,
            rec.region,
            rec.host,
            rec.peer_ip,
            to_i64(rec.bytes)?,
            hex::decode(&rec.sha256)
                .map_err(|_| Error::Internal("audit hash is not hex".into()))?,
            rec.finished_at
        ],
    )?;
    let audit_id = tx.last_insert_rowid();
    let n = tx.execute(
        "DELETE FROM items WHERE id = ?1 AND size = ?2 AND mtime_ns = ?3",
        params![rec.item_id, to_i64(uploaded.size)?, uploaded.mtime_ns],
    )?;
    if n == 0 {
        tx.execute(
            "UPDATE items SET state = 'pending', upload_url = NULL, upload_len = NULL,
                    upload_mtime_ns = NULL, upload_sha256 = NULL, confirmed_offset = 0,
                    updated_at = ?2
             WHERE id = ?1",
            params![rec.item_id, rec.finished_at],
        )?;
    }
    Ok(audit_id)
}

/// Fails with `Busy` unless `owner` holds the runner lease: a runner whose
/// lease was taken over must not write another runner's items.
pub fn check_lease(tx: &Transaction<'_>, owner: &str) -> Result<()> {
    let cur: Option<String> = tx
        .query_row("SELECT owner FROM lease WHERE id = 1", [], |r| r.get(0))
        .optional()?;
    if cur.as_deref() == Some(owner) {
        Ok(())
    } else {
        Err(Error::Busy)
    }
}

/// Records a failed attempt: `failed` with a backoff, or `dead` when the
/// error is permanent or attempts ran out. Returns the new state.
pub fn fail(
    tx: &Transaction<'_>,
    id: i64,
    reason: &str,
    permanent: bool,
    retry_after: Option<Duration>,
    policy: &RetryPolicy,
    now: i64,
) -> Result<State> {
    let attempts: i64 = tx
        .query_row("SELECT attempts FROM items WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or(Error::NotFound)?;
    let attempts = attempts.saturating_add(1);
    let state = if permanent || attempts >= i64::from(policy.max_attempts) {
        State::Dead
    } else {
        State::Failed
    };
    let delay = policy.delay(attempts.clamp(0, 31) as u32, retry_after);
    let next = now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
    // An item held meanwhile (another handle moved the account) stays held:
    // the attempt counts, but only consent may send it anywhere.
    tx.execute(
        "UPDATE items SET state = CASE state WHEN 'held' THEN 'held' ELSE ?2 END,
                attempts = ?3, last_error = ?4, next_attempt_at = ?5, updated_at = ?6
         WHERE id = ?1",
        params![id, state.as_str(), attempts, reason, next, now],
    )?;
    let stored: String =
        tx.query_row("SELECT state FROM items WHERE id = ?1", [id], |r| r.get(0))?;
    stored.parse()
}

/// Puts an `uploading` item back to `pending` (cancel, time up), keeping its session.
pub fn unclaim(tx: &Transaction<'_>, id: i64, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE items SET state = 'pending', updated_at = ?2 WHERE id = ?1 AND state = 'uploading'",
        params![id, now],
    )?;
    Ok(())
}

/// Restamps held items to the approved region (the user consented). Their old
/// upload sessions belong to the old region's servers and are dropped.
pub fn rehome(tx: &Transaction<'_>, approved: &str, now: i64) -> Result<u64> {
    Ok(tx.execute(
        "UPDATE items SET region = ?1, state = 'pending', upload_url = NULL, upload_len = NULL,
                upload_mtime_ns = NULL, upload_sha256 = NULL, confirmed_offset = 0,
                attempts = 0, next_attempt_at = ?2, updated_at = ?2
         WHERE state = 'held'",
        params![approved, now],
    )? as u64)
}

/// Deletes held items. No request goes to their region: the approved region
/// differs, and an orphaned upload expires server-side.
pub fn discard_held(tx: &Transaction<'_>) -> Result<u64> {
    Ok(tx.execute("DELETE FROM items WHERE state = 'held'", [])? as u64)
}

/// Removes one item. If it had an upload session in `approved`'s region, a
/// termination (`DELETE`) is queued for the next run.
pub fn remove(tx: &Transaction<'_>, id: i64) -> Result<()> {
    let row: Option<(Option<String>, Option<String>)> = tx
        .query_row(
            "SELECT region, upload_url FROM items WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (region, url) = row.ok_or(Error::NotFound)?;
    if let (Some(region), Some(url)) = (region, url) {
        queue_termination(tx, &region, &url)?;
    }
    tx.execute("DELETE FROM items WHERE id = ?1", [id])?;
    Ok(())
}

/// Queues a `DELETE` of an upload session for the next run in `region`.
pub fn queue_termination(tx: &Transaction<'_>, region: &str, url: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO terminations (region, upload_url) VALUES (?1, ?2)",
        params![region, url],
    )?;
    Ok(())
}

/// Pending terminations for a region: `(id, url)`.
pub fn terminations(conn: &Connection, region: &str) -> Result<Vec<(i64, String)>> {
    let mut st =
        conn.prepare("SELECT id, upload_url FROM terminations WHERE region = ?1 ORDER BY id")?;
    let rows = st.query_map([region], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Drops a processed termination.
pub fn drop_termination(tx: &Transaction<'_>, id: i64) -> Result<()> {
    tx.execute("DELETE FROM terminations WHERE id = ?1", [id])?;
    Ok(())
}

/// Revives dead items: `pending`, attempts reset. Only the newest dead item
/// of a (path, service) comes back, and none whose path is active again: at
/// most one active item per (path, service), as `items_active_path` demands.
pub fn retry_dead(tx: &Transaction<'_>, now: i64) -> Result<u64> {
    // The subqueries see the table as it was before the UPDATE, so two dead
    // items of one path would both pass NOT EXISTS; the max(id) test keeps
    // it to one (else the unique index fails the whole call).
    Ok(tx.execute(
        "UPDATE items SET state = 'pending', attempts = 0, next_attempt_at = ?1, updated_at = ?1
         WHERE state = 'dead'
           AND id = (SELECT max(d.id) FROM items AS d WHERE d.path = items.path
                     AND d.service = items.service AND d.state = 'dead')
           AND NOT EXISTS (SELECT 1 FROM items AS o WHERE o.path = items.path
                           AND o.service = items.service
                           AND o.state IN ('pending','uploading','failed','held'))",
        [now],
    )? as u64)
}

/// Counts per state and bytes still to send.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    /// Waiting items.
    pub pending: u64,
    /// Items claimed by a runner.
    pub uploading: u64,
    /// Items waiting for a retry.
    pub failed: u64,
    /// Items that gave up.
    pub dead: u64,
    /// Items of another region.
    pub held: u64,
    /// Finished uploads (audit rows).
    pub done: u64,
    /// Bytes of pending/uploading/failed items not yet confirmed.
    pub pending_bytes: u64,
}

/// Queue statistics.
pub fn stats(conn: &Connection) -> Result<QueueStats> {
    let mut s = QueueStats::default();
    let mut st = conn.prepare("SELECT state, count(*) FROM items GROUP BY state")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (state, n) = row?;
        let n = n.max(0) as u64;
        match state.as_str() {
            "pending" => s.pending = n,
            "uploading" => s.uploading = n,
            "failed" => s.failed = n,
            "dead" => s.dead = n,
            "held" => s.held = n,
            _ => {}
        }
    }
    s.done = conn
        .query_row("SELECT count(*) FROM audit", [], |r| r.get::<_, i64>(0))?
        .max(0) as u64;
    s.pending_bytes = conn
        .query_row(
            "SELECT coalesce(sum(max(size - confirmed_offset, 0)), 0) FROM items
             WHERE state IN ('pending','uploading','failed')",
            [],
            |r| r.get::<_, i64>(0),
        )?
        .max(0) as u64;
    Ok(s)
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
    /// State name.
    pub state: String,
    /// Attempts.
    pub attempts: u32,
    /// Confirmed bytes.
    pub confirmed_offset: u64,
    /// Next attempt, ms since the epoch.
    pub next_attempt_at: i64,
    /// Last error (kind: message), if any.
    pub last_error: Option<String>,
}

/// Lists items, optionally of one state, by id.
pub fn list(conn: &Connection, state: Option<State>, limit: u32) -> Result<Vec<ItemInfo>> {
    let mut st = conn.prepare(
        "SELECT id, path, service, priority, size, region, state, attempts, confirmed_offset,
                next_attempt_at, last_error
         FROM items WHERE (?1 IS NULL OR state = ?1) ORDER BY id LIMIT ?2",
    )?;
    let rows = st.query_map(params![state.map(|s| s.as_str()), limit], |r| {
        Ok(ItemInfo {
            id: r.get(0)?,
            path: r.get(1)?,
            service: r.get(2)?,
            priority: r.get(3)?,
            size: r.get::<_, i64>(4)?.max(0) as u64,
            region: r.get(5)?,
            state: r.get(6)?,
            attempts: r.get::<_, i64>(7)?.clamp(0, i64::from(u32::MAX)) as u32,
            confirmed_offset: r.get::<_, i64>(8)?.max(0) as u64,
            next_attempt_at: r.get(9)?,
            last_error: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Audit rows with `id > after_id`, oldest first.
pub fn audit(conn: &Connection, after_id: i64, limit: u32) -> Result<Vec<AuditRecord>> {
    let mut st = conn.prepare(
        "SELECT id, item_id, service, region, host, peer_ip, bytes, sha256, finished_at
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
            sha256: hex::encode(r.get::<_, Vec<u8>>(7)?),
            finished_at: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Takes the runner lease for `ttl`. Fails with `Busy` while another owner's
/// lease is live. Taking over an expired lease returns its `uploading` items
/// to `pending`, keeping their upload URL and offset.
pub fn acquire_lease(tx: &Transaction<'_>, owner: &str, now: i64, ttl: Duration) -> Result<()> {
    let cur: Option<(String, i64)> = tx
        .query_row(
            "SELECT owner, expires_at FROM lease WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((o, exp)) = &cur {
        if o != owner && *exp > now {
            return Err(Error::Busy);
        }
    }
    if cur.as_ref().map(|(o, _)| o != owner).unwrap_or(true) {
        tx.execute(
            "UPDATE items SET state = 'pending', updated_at = ?1 WHERE state = 'uploading'",
            [now],
        )?;
    }
    let exp = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    tx.execute(
        "INSERT INTO lease (id, owner, expires_at) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET owner = ?1, expires_at = ?2",
        params![owner, exp],
    )?;
    Ok(())
}

/// Gives the lease up (only if still ours) and returns claimed items to `pending`.
pub fn release_lease(tx: &Transaction<'_>, owner: &str, now: i64) -> Result<()> {
    let n = tx.execute("DELETE FROM lease WHERE id = 1 AND owner = ?1", [owner])?;
    if n == 1 {
        tx.execute(
            "UPDATE items SET state = 'pending', updated_at = ?1 WHERE state = 'uploading'",
            [now],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Db;

    const META: SourceMeta = SourceMeta {
        size: 100,
        mtime_ns: 5,
    };

    fn db() -> Db {
        Db::open_in_memory().unwrap()
    }

    #[test]
    fn enqueue_dedupes_active_path_and_refreshes() {
        let mut db = db();
        let a = db
            .write(|tx| enqueue(tx, "/a", "backup", 0, META, Some("in"), 1))
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
                    2,
                )
            })
            .unwrap();
        assert_eq!(a, b);
        let row = get(db.conn(), a).unwrap();
        assert_eq!((row.size, row.mtime_ns, row.priority), (7, 9, 3));
        let c = db
            .write(|tx| enqueue(tx, "/a", "photos", 0, META, Some("in"), 3))
            .unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn next_due_orders_by_priority_then_age_and_skips_other_regions() {
        let mut db = db();
        let old = db
            .write(|tx| enqueue(tx, "/old", "b", 0, META, Some("in"), 10))
            .unwrap();
        let _new = db
            .write(|tx| enqueue(tx, "/new", "b", 0, META, Some("in"), 20))
            .unwrap();
        let _sg = db
            .write(|tx| enqueue(tx, "/sg", "b", 9, META, Some("sg"), 5))
            .unwrap();
        assert_eq!(next_due(db.conn(), "in", 100).unwrap().unwrap().id, old);
        let hi = db
            .write(|tx| enqueue(tx, "/hi", "b", 5, META, Some("in"), 30))
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

    #[test]
    fn fail_backs_off_then_dies() {
        let mut db = db();
        let id = db
            .write(|tx| enqueue(tx, "/a", "b", 0, META, Some("in"), 0))
            .unwrap();
        let p = RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(4),
            max_attempts: 3,
        };
        for expect in [State::Failed, State::Failed, State::Dead] {
            let st = db
                .write(|tx| fail(tx, id, "network: x", false, None, &p, 1000))
                .unwrap();
            assert_eq!(st, expect);
        }
        let r = list(db.conn(), Some(State::Dead), 10).unwrap();
        assert_eq!(r[0].last_error.as_deref(), Some("network: x"));
        assert_eq!(db.write(|tx| retry_dead(tx, 0)).unwrap(), 1);
        assert_eq!(get(db.conn(), id).unwrap().state, State::Pending);
        let st = db
            .write(|tx| fail(tx, id, "rejected", true, None, &p, 0))
            .unwrap();
        assert_eq!(st, State::Dead, "permanent errors die at once");
    }

    #[test]
    fn retry_dead_revives_one_item_per_path() {
        // Two items of one path died in turn (the second enqueued after the
        // first went dead): reviving both would break the unique active index.
        let mut db = db();
        let p = RetryPolicy::default();
        let a = db
            .write(|tx| enqueue(tx, "/a", "b", 0, META, None, 0))
            .unwrap();
        db.write(|tx| fail(tx, a, "x", true, None, &p, 0)).unwrap();
        let b = db
            .write(|tx| enqueue(tx, "/a", "b", 0, META, None, 1))
            .unwrap();
        assert_ne!(a, b);
        db.write(|tx| fail(tx, b, "x", true, None, &p, 1)).unwrap();
        assert_eq!(db.write(|tx| retry_dead(tx, 2)).unwrap(), 1);
        assert_eq!(
            get(db.conn(), b).unwrap().state,
            State::Pending,
            "the newest comes back"
        );
        assert_eq!(get(db.conn(), a).unwrap().state, State::Dead);
        assert_eq!(
            db.write(|tx| retry_dead(tx, 3)).unwrap(),
            0,
            "its path is active again"
        );
    }

    #[test]
    fn retry_after_is_honoured_and_jitter_is_bounded() {
        let p = RetryPolicy::default();
        for _ in 0..100 {
            assert!(p.delay(0, None) <= Duration::from_secs(2));
            assert!(p.delay(30, None) <= Duration::from_secs(3600));
            assert!(p.delay(0, Some(Duration::from_secs(120))) >= Duration::from_secs(120));
        }
    }

    #[test]
    fn regions_stamp_hold_and_rehome() {
        let mut db = db();
        let none = db
            .write(|tx| enqueue(tx, "/n", "b", 0, META, None, 0))
            .unwrap();
        let sg = db
            .write(|tx| enqueue(tx, "/s", "b", 0, META, Some("sg"), 0))
            .unwrap();
        db.write(|tx| set_session(tx, sg, Some("https://x/1"), Some(100), Some(5), None, 40, 0))
            .unwrap();
        assert_eq!(db.write(|tx| reconcile_regions(tx, "in", 1)).unwrap(), 1);
        assert_eq!(get(db.conn(), none).unwrap().region.as_deref(), Some("in"));
        assert_eq!(get(db.conn(), sg).unwrap().state, State::Held);
        assert!(
            next_due(db.conn(), "sg", i64::MAX).unwrap().is_none(),
            "held is never due"
        );
        assert_eq!(db.write(|tx| rehome(tx, "in", 2)).unwrap(), 1);
        let row = get(db.conn(), sg).unwrap();
        assert_eq!(
            (
                row.region.as_deref(),
                row.state,
                row.upload_url,
                row.confirmed_offset
            ),
            (Some("in"), State::Pending, None, 0)
        );
    }

    #[test]
    fn lease_is_exclusive_and_expires() {
        let mut db = db();
        let id = db
            .write(|tx| enqueue(tx, "/a", "b", 0, META, Some("in"), 0))
            .unwrap();
        db.write(|tx| acquire_lease(tx, "A", 0, Duration::from_secs(10)))
            .unwrap();
        db.write(|tx| claim(tx, id, 0)).unwrap();
        db.write(|tx| set_session(tx, id, Some("https://h/u"), Some(100), Some(5), None, 50, 0))
            .unwrap();
        let e = db
            .write(|tx| acquire_lease(tx, "B", 5_000, Duration::from_secs(10)))
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Busy);
        assert_eq!(
            get(db.conn(), id).unwrap().state,
            State::Uploading,
            "a refused lease changes nothing"
        );
        db.write(|tx| acquire_lease(tx, "B", 10_001, Duration::from_secs(10)))
            .unwrap();
        let row = get(db.conn(), id).unwrap();
        assert_eq!(row.state, State::Pending);
        assert_eq!(
            (row.upload_url.as_deref(), row.confirmed_offset),
            (Some("https://h/u"), 50)
        );
    }

    #[test]
    fn complete_keeps_an_item_reenqueued_with_new_content() {
        let mut db = db();
        let id = db
            .write(|tx| enqueue(tx, "/a", "b", 0, META, Some("in"), 0))
            .unwrap();
        db.write(|tx| {
            set_session(
                tx,
                id,
                Some("https://h/u"),
                Some(100),
                Some(5),
                None,
                100,
                0,
            )
        })
        .unwrap();
        // The app rewrites the file and enqueues it again while the upload finishes.
        let newer = SourceMeta {
            size: 120,
            mtime_ns: 6,
        };
        assert_eq!(
            db.write(|tx| enqueue(tx, "/a", "b", 0, newer, Some("in"), 1))
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
            .write(|tx| enqueue(tx, "/a", "b", 0, META, Some("in"), 0))
            .unwrap();
        let rec = AuditRecord {
            id: 0,
            item_id: id,
            service: "b".into(),
            region: "in".into(),
            host: "h:443".into(),
            peer_ip: Some("127.0.0.1".into()),
            bytes: 100,
            sha256: hex::encode([7u8; 32]),
            finished_at: 9,
        };
        db.write(|tx| complete(tx, &rec, META)).unwrap();
        let got = audit(db.conn(), 0, 10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].sha256, rec.sha256);
        assert_eq!(stats(db.conn()).unwrap().done, 1);
        assert_eq!(
            get(db.conn(), id).unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
        let id2 = db
            .write(|tx| enqueue(tx, "/b", "b", 0, META, Some("in"), 0))
            .unwrap();
        db.write(|tx| {
            set_session(
                tx,
                id2,
                Some("https://h/u2"),
                Some(100),
                Some(5),
                None,
                0,
                0,
            )
        })
        .unwrap();
        db.write(|tx| remove(tx, id2)).unwrap();
        assert_eq!(terminations(db.conn(), "in").unwrap().len(), 1);
        assert_eq!(
            db.write(|tx| remove(tx, id2)).unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
    }
}
