//! How long the audit trail keeps a finished upload, and pruning what is
//! older, a short transaction at a time.
//!
//! The retention lives in the database (`settings`, schema v9), so every
//! handle and process on the file prunes by the same rule. A batch deletes at
//! most [`PRUNE_BATCH`] rows, oldest first (the `audit_finished` index finds
//! them without a scan), and hands the pages it freed back to the file system
//! (`incremental_vacuum`) in the same transaction: the write lock is held for
//! one small batch, never for the whole backlog.

use rusqlite::{params, Connection, Transaction};

use crate::error::{Error, Result};

/// The default audit retention: a year of records plus a margin, so an annual
/// residency review (which may be scheduled weeks late) still finds the whole
/// year it covers on the device.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 400;

/// The longest retention accepted (100 years: in effect, keep everything).
pub const MAX_AUDIT_RETENTION_DAYS: u32 = 36_500;

/// The most audit rows one pruning transaction deletes.
pub const PRUNE_BATCH: u32 = 500;

/// The most free pages one batch returns to the file system: more than a
/// batch of audit rows frees, so the file keeps up without a long vacuum.
const VACUUM_PAGES_PER_BATCH: u32 = 512;

const DAY_MS: i64 = 86_400_000;

/// The audit retention in days.
pub fn audit_retention_days(conn: &Connection) -> Result<u32> {
    let days: i64 = conn.query_row(
        "SELECT audit_retention_days FROM settings WHERE id = 1",
        [],
        |r| r.get(0),
    )?;
    u32::try_from(days).map_err(|_| Error::Internal("retention out of range".into()))
}

/// Sets the audit retention (1..=[`MAX_AUDIT_RETENTION_DAYS`] days;
/// `InvalidArgument` otherwise, changing nothing).
pub fn set_audit_retention_days(tx: &Transaction<'_>, days: u32) -> Result<()> {
    if !(1..=MAX_AUDIT_RETENTION_DAYS).contains(&days) {
        return Err(Error::InvalidArgument(
            "audit retention must be 1..=36500 days",
        ));
    }
    tx.execute(
        "UPDATE settings SET audit_retention_days = ?1 WHERE id = 1",
        [days],
    )?;
    Ok(())
}

/// Rows finished before this time (ms) are past the retention; `None` when
/// the audit is empty. Measured from the earlier of `now_ms` and the newest
/// row: a clock set far ahead cannot empty the audit, since nothing goes that
/// is not older than the retention before the newest record too.
fn cutoff(conn: &Connection, now_ms: i64) -> Result<Option<i64>> {
    let days = i64::from(audit_retention_days(conn)?);
    let newest: Option<i64> = conn
        .prepare_cached("SELECT max(finished_at) FROM audit")?
        .query_row([], |r| r.get(0))?;
    Ok(newest.map(|n| n.min(now_ms).saturating_sub(days * DAY_MS)))
}

/// Whether any audit row is past the retention (a read: two index seeks), so
/// callers take the write lock only when there is something to prune.
pub fn audit_prunable(conn: &Connection, now_ms: i64) -> Result<bool> {
    let Some(cut) = cutoff(conn, now_ms)? else {
        return Ok(false);
    };
    let oldest: Option<i64> = conn
        .prepare_cached("SELECT min(finished_at) FROM audit")?
        .query_row([], |r| r.get(0))?;
    Ok(oldest.is_some_and(|o| o < cut))
}

/// Deletes at most `limit` audit rows past the retention, oldest first, and
/// returns their free pages to the file system, in the caller's transaction.
/// Returns how many rows went (fewer than `limit`: nothing more is due).
pub fn prune_audit_batch(tx: &Transaction<'_>, now_ms: i64, limit: u32) -> Result<u64> {
    let Some(cut) = cutoff(tx, now_ms)? else {
        return Ok(0);
    };
    let n = tx.execute(
        "DELETE FROM audit WHERE id IN
             (SELECT id FROM audit WHERE finished_at < ?1 ORDER BY finished_at LIMIT ?2)",
        params![cut, limit],
    )?;
    if n > 0 {
        // Each step of the pragma frees one page: step it to the end.
        let mut st = tx.prepare(&format!(
            "PRAGMA incremental_vacuum({VACUUM_PAGES_PER_BATCH})"
        ))?;
        let mut rows = st.query([])?;
        while rows.next()?.is_some() {}
    }
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ops::{stats, stats_by_scan};
    use crate::queue::Db;

    fn audit_rows(db: &mut Db, finished: &[i64]) {
        db.write(|tx| {
            for (i, f) in finished.iter().enumerate() {
                tx.execute(
                    "INSERT INTO audit (item_id, service, region, host, bytes, sha256, finished_at)
                     VALUES (?1, 'b', 'in', 'h:443', 1, zeroblob(32), ?2)",
                    params![i as i64, f],
                )?;
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn prunes_only_past_the_retention_oldest_first_in_bounded_batches() {
        let mut db = Db::open_in_memory().unwrap();
        let now = 1_000 * DAY_MS;
        assert_eq!(audit_retention_days(db.conn()).unwrap(), 400);
        // Three rows past 400 days, two inside.
        audit_rows(
            &mut db,
            &[
                now - 500 * DAY_MS,
                10,
                now - 401 * DAY_MS,
                now,
                now - 399 * DAY_MS,
            ],
        );
        assert!(audit_prunable(db.conn(), now).unwrap());
        assert_eq!(db.write(|tx| prune_audit_batch(tx, now, 2)).unwrap(), 2);
        let left: Vec<i64> = {
            let mut st = db
                .conn()
                .prepare("SELECT finished_at FROM audit ORDER BY finished_at")
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(
            left,
            [now - 401 * DAY_MS, now - 399 * DAY_MS, now],
            "oldest first"
        );
        assert_eq!(db.write(|tx| prune_audit_batch(tx, now, 2)).unwrap(), 1);
        assert!(!audit_prunable(db.conn(), now).unwrap());
        assert_eq!(db.write(|tx| prune_audit_batch(tx, now, 2)).unwrap(), 0);
        assert_eq!(stats(db.conn()).unwrap(), stats_by_scan(db.conn()).unwrap());
        assert_eq!(stats(db.conn()).unwrap().done, 2);
    }

    #[test]
    fn a_clock_far_ahead_does_not_empty_the_audit() {
        let mut db = Db::open_in_memory().unwrap();
        let now = 1_000 * DAY_MS;
        audit_rows(&mut db, &[now - 10 * DAY_MS, now]);
        let far = now + 10_000 * DAY_MS;
        assert!(!audit_prunable(db.conn(), far).unwrap());
        assert_eq!(db.write(|tx| prune_audit_batch(tx, far, 500)).unwrap(), 0);
    }

    #[test]
    fn retention_out_of_range_is_refused_and_nothing_changes() {
        let mut db = Db::open_in_memory().unwrap();
        for bad in [0, MAX_AUDIT_RETENTION_DAYS + 1, u32::MAX] {
            let e = db
                .write(|tx| set_audit_retention_days(tx, bad))
                .unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
            assert_eq!(
                e.to_string(),
                "invalid argument: audit retention must be 1..=36500 days"
            );
            assert_eq!(audit_retention_days(db.conn()).unwrap(), 400);
        }
        db.write(|tx| set_audit_retention_days(tx, 30)).unwrap();
        assert_eq!(audit_retention_days(db.conn()).unwrap(), 30);
    }
}
