//! An item's life in the queue: enqueue, pick the next due, claim, record
//! its upload session and progress, remove (queueing a termination).

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{item_row, to_i64, ItemRow, SourceMeta, SourcePrint, ITEM_COLS};
use crate::error::{Error, Result};
use crate::queue::BackupRule;

/// Adds (or refreshes) one item of `account` (its stamp; `None`: no account
/// in use). An item with the same path, service and account that is still
/// active keeps its id; its size/mtime are refreshed (the uploader notices a
/// changed source and restarts its upload). Another account's item of the
/// same path is another item. A new item takes the queue's default rule; a
/// refreshed one keeps its own (see [`enqueue_with_rule`]).
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
    let item = NewItem {
        path,
        service,
        priority,
        meta,
        region,
        account,
        rule: None,
    };
    enqueue_with_rule(tx, &item, now)
}

/// What [`enqueue_with_rule`] adds.
#[derive(Debug, Clone, Copy)]
pub struct NewItem<'a> {
    /// Source path.
    pub path: &'a str,
    /// Service name.
    pub service: &'a str,
    /// Higher first.
    pub priority: i32,
    /// Size and mtime seen now.
    pub meta: SourceMeta,
    /// Region stamp (`None`: stamped at the first run with an approved region).
    pub region: Option<&'a str>,
    /// Account stamp (`None`: no account in use).
    pub account: Option<&'a [u8]>,
    /// Its backup rule; `None`: a new item takes the queue's default
    /// (`settings`), a refreshed one keeps the rule it has.
    pub rule: Option<BackupRule>,
}

/// [`enqueue`] with a backup rule: a new item gets `item.rule` (or the
/// queue's default), a refreshed active item gets `item.rule` if one is given
/// and keeps its own otherwise (a rule set later with `set_rule` survives a
/// re-enqueue of the changed file that names none).
pub fn enqueue_with_rule(tx: &Transaction<'_>, item: &NewItem<'_>, now: i64) -> Result<i64> {
    let existing: Option<i64> = tx
        .query_row(
            "SELECT id FROM items WHERE path = ?1 AND service = ?2
               AND ifnull(account, x'') = ifnull(?3, x'')
               AND state IN ('pending','uploading','failed','held')",
            params![item.path, item.service, item.account],
            |r| r.get(0),
        )
        .optional()?;
    let size = to_i64(item.meta.size)?;
    let (network_rule, charging_only) = match item.rule {
        Some(rule) => {
            let (n, c) = rule.to_columns();
            (Some(n), Some(c))
        }
        None => (None, None),
    };
    if let Some(id) = existing {
        tx.execute(
            "UPDATE items SET size = ?2, mtime_ns = ?3, priority = ?4, updated_at = ?5,
                sha256 = CASE WHEN size = ?2 AND mtime_ns = ?3 THEN sha256 END,
                network_rule = coalesce(?6, network_rule),
                charging_only = coalesce(?7, charging_only)
             WHERE id = ?1",
            params![
                id,
                size,
                item.meta.mtime_ns,
                item.priority,
                now,
                network_rule,
                charging_only
            ],
        )?;
        return Ok(id);
    }
    tx.execute(
        "INSERT INTO items (path, service, priority, size, mtime_ns, region, account, state,
                            next_attempt_at, created_at, updated_at, network_rule, charging_only)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8, ?8,
                 coalesce(?9, (SELECT default_network_rule FROM settings WHERE id = 1)),
                 coalesce(?10, (SELECT default_charging_only FROM settings WHERE id = 1)))",
        params![
            item.path,
            item.service,
            item.priority,
            size,
            item.meta.mtime_ns,
            item.region,
            item.account,
            now,
            network_rule,
            charging_only
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
mod tests;
