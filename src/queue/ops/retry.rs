//! Failed attempts: the retry schedule, backoff and dead items.

use std::time::Duration;

use rusqlite::{params, OptionalExtension, Transaction};

use crate::error::{Error, Result};
use crate::queue::State;

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

/// Which dead items [`retry_dead`] revives (`items` unaliased). The subqueries
/// see the table as it was before the UPDATE, so two dead items of one path
/// would both pass NOT EXISTS; the max(id) test keeps it to one (else the
/// unique index fails the whole call).
const REVIVABLE: &str = "state = 'dead'
    AND id = (SELECT max(d.id) FROM items AS d WHERE d.path = items.path
              AND d.service = items.service AND d.state = 'dead')
    AND NOT EXISTS (SELECT 1 FROM items AS o WHERE o.path = items.path
                    AND o.service = items.service
                    AND o.state IN ('pending','uploading','failed','held'))";

/// Revives dead items: `pending`, attempts reset, upload session dropped. Only
/// the newest dead item of a (path, service) comes back, and none whose path is
/// active again: at most one active item per (path, service), as
/// `items_active_path` demands.
///
/// The stored upload URL is what may have killed the item (a server that
/// refuses it), so the revived item starts a fresh upload; the old session is
/// queued for termination in its region.
pub fn retry_dead(tx: &Transaction<'_>, now: i64) -> Result<u64> {
    tx.execute(
        &format!(
            "INSERT INTO terminations (region, upload_url)
             SELECT region, upload_url FROM items
             WHERE upload_url IS NOT NULL AND region IS NOT NULL AND {REVIVABLE}"
        ),
        [],
    )?;
    Ok(tx.execute(
        &format!(
            "UPDATE items SET state = 'pending', attempts = 0, next_attempt_at = ?1,
                    upload_url = NULL, upload_len = NULL, upload_mtime_ns = NULL,
                    upload_sha256 = NULL, upload_key = NULL, upload_print = NULL,
                    confirmed_offset = 0,
                    updated_at = ?1
             WHERE {REVIVABLE}"
        ),
        [now],
    )? as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ops::testutil::{db, META, PRINT};
    use crate::queue::ops::{enqueue, get, list};

    #[test]
    fn fail_backs_off_then_dies() {
        let mut db = db();
        let id = db
            .write(|tx| enqueue(tx, "/a", "b", 0, META, Some("in"), None, 0))
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
        let r = list(db.conn(), Some(State::Dead), 0, 10).unwrap();
        assert_eq!(r[0].last_error.as_deref(), Some("network: x"));
        assert_eq!(db.write(|tx| retry_dead(tx, 0)).unwrap(), 1);
        assert_eq!(get(db.conn(), id).unwrap().state, State::Pending);
        let st = db
            .write(|tx| fail(tx, id, "rejected", true, None, &p, 0))
            .unwrap();
        assert_eq!(st, State::Dead, "permanent errors die at once");
    }

    #[test]
    fn retry_dead_drops_the_session_and_queues_its_termination() {
        let mut db = db();
        let p = RetryPolicy::default();
        let id = db
            .write(|tx| enqueue(tx, "/a", "b", 0, META, Some("in"), None, 0))
            .unwrap();
        db.write(|tx| {
            crate::queue::ops::set_key(tx, id, "k1", &PRINT, 0)?;
            crate::queue::ops::set_session(tx, id, Some(("https://h/u", &PRINT)), 40, 0)?;
            crate::queue::ops::set_sent(tx, id, 55, 0)
        })
        .unwrap();
        let row = get(db.conn(), id).unwrap();
        assert_eq!(
            (row.upload_key.as_deref(), row.upload_print),
            (Some("k1"), Some(PRINT))
        );
        db.write(|tx| fail(tx, id, "rejected", true, None, &p, 0))
            .unwrap();
        assert_eq!(db.write(|tx| retry_dead(tx, 1)).unwrap(), 1);
        let row = get(db.conn(), id).unwrap();
        assert_eq!(
            (row.state, row.upload_url, row.upload_key, row.upload_print),
            (State::Pending, None, None, None)
        );
        assert_eq!(
            (row.confirmed_offset, row.upload_sent),
            (0, 55),
            "the bytes already sent stay counted"
        );
        let queued = crate::queue::ops::terminations(db.conn(), "in", None).unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].url, "https://h/u");
    }

    #[test]
    fn retry_dead_revives_one_item_per_path() {
        // Two items of one path died in turn (the second enqueued after the
        // first went dead): reviving both would break the unique active index.
        let mut db = db();
        let p = RetryPolicy::default();
        let a = db
            .write(|tx| enqueue(tx, "/a", "b", 0, META, None, None, 0))
            .unwrap();
        db.write(|tx| fail(tx, a, "x", true, None, &p, 0)).unwrap();
        let b = db
            .write(|tx| enqueue(tx, "/a", "b", 0, META, None, None, 1))
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
}
