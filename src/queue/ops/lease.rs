//! The runner lease: one runner at a time writes the queue's items.

use std::time::Duration;

use rusqlite::{params, OptionalExtension, Transaction};

use crate::error::{Error, Result};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ops::testutil::{db, META, PRINT};
    use crate::queue::ops::{claim, enqueue, get, set_session};
    use crate::queue::State;

    #[test]
    fn lease_is_exclusive_and_expires() {
        let mut db = db();
        let id = db
            .write(|tx| enqueue(tx, "/a", "b", 0, META, Some("in"), None, 0))
            .unwrap();
        db.write(|tx| acquire_lease(tx, "A", 0, Duration::from_secs(10)))
            .unwrap();
        db.write(|tx| claim(tx, id, "in", None, "r", 0)).unwrap();
        db.write(|tx| set_session(tx, id, Some(("https://h/u", &PRINT)), 50, 0))
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
}
