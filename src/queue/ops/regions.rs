//! Region stamps: items follow the approved region; items of another region
//! are held until the user consents (`rehome`) or discards them.

use rusqlite::{params, Transaction};

use crate::error::Result;

/// Makes the queue agree with the approved region: unstamped items get its
/// stamp (not those held for another account: the region is this account's,
/// and theirs is decided when they sign in), items of other regions become
/// `held`, and held items of this region (the account moved back) become
/// `pending` again. Returns the held count.
pub fn reconcile_regions(tx: &Transaction<'_>, approved: &str, now: i64) -> Result<u64> {
    tx.execute(
        "UPDATE items SET region = ?1, updated_at = ?2
         WHERE region IS NULL AND held_reason IS NOT 'account'",
        params![approved, now],
    )?;
    tx.execute(
        "UPDATE items SET state = 'held', held_reason = 'region', updated_at = ?2
         WHERE region != ?1 AND state IN ('pending','failed','uploading')",
        params![approved, now],
    )?;
    // Items held for their account stay held: that is decided by the account alone.
    tx.execute(
        "UPDATE items SET state = 'pending', held_reason = NULL, updated_at = ?2
         WHERE region = ?1 AND state = 'held' AND held_reason IS NOT 'account'",
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
        "UPDATE items SET state = 'held', held_reason = 'region', updated_at = ?1
         WHERE region IS NOT NULL AND state IN ('pending','failed','uploading')",
        [now],
    )? as u64)
}

/// Restamps items held for their region to the approved region (the user
/// consented). Their old upload sessions belong to the old region's servers
/// and are dropped. Items held for another account are not touched.
pub fn rehome(tx: &Transaction<'_>, approved: &str, now: i64) -> Result<u64> {
    Ok(tx.execute(
        "UPDATE items SET region = ?1, state = 'pending', held_reason = NULL, upload_url = NULL,
                upload_len = NULL, upload_mtime_ns = NULL, upload_sha256 = NULL,
                upload_key = NULL, upload_print = NULL, confirmed_offset = 0, attempts = 0, next_attempt_at = ?2, updated_at = ?2
         WHERE state = 'held' AND held_reason IS NOT 'account'",
        params![approved, now],
    )? as u64)
}

/// Deletes held items (of another region or another account). No request
/// goes anywhere: an orphaned upload expires server-side.
pub fn discard_held(tx: &Transaction<'_>) -> Result<u64> {
    Ok(tx.execute("DELETE FROM items WHERE state = 'held'", [])? as u64)
}

/// Makes the queue agree with the signed-in account (`stamp`): items enqueued
/// before accounts were used are adopted, items of other accounts are held
/// (reason `account`), and this account's items held for it are released
/// (the region rules, run next, may hold them again for their region).
pub fn reconcile_accounts(tx: &Transaction<'_>, stamp: &[u8], now: i64) -> Result<()> {
    tx.execute(
        "UPDATE items SET account = ?1, updated_at = ?2 WHERE account IS NULL",
        params![stamp, now],
    )?;
    tx.execute(
        "UPDATE items SET state = 'held', held_reason = 'account', updated_at = ?2
         WHERE account IS NOT ?1 AND state IN ('pending','failed','uploading','held')
           AND held_reason IS NOT 'account'",
        params![stamp, now],
    )?;
    tx.execute(
        "UPDATE items SET state = 'pending', held_reason = NULL, updated_at = ?2
         WHERE account = ?1 AND state = 'held' AND held_reason = 'account'",
        params![stamp, now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ops::testutil::{db, META, PRINT};
    use crate::queue::ops::{enqueue, get, next_due, set_session};
    use crate::queue::State;

    #[test]
    fn regions_stamp_hold_and_rehome() {
        let mut db = db();
        let none = db
            .write(|tx| enqueue(tx, "/n", "b", 0, META, None, None, 0))
            .unwrap();
        let sg = db
            .write(|tx| enqueue(tx, "/s", "b", 0, META, Some("sg"), None, 0))
            .unwrap();
        db.write(|tx| set_session(tx, sg, Some(("https://x/1", &PRINT)), 40, 0))
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
}
