//! The runner lease: one runner at a time writes the queue's items.
//!
//! The lease is the correctness mechanism: it has an end (a runner that is
//! alive but stuck or frozen cannot hold the queue forever) and every write
//! of a run checks it is still the owner (a runner superseded while frozen
//! writes nothing when it wakes). The runner lock file (`agent::runner_lock`)
//! only adds a fast answer to "is the holder dead?": see [`Takeover`].

use std::time::Duration;

use rusqlite::{params, OptionalExtension, Transaction};

use crate::error::{Error, Holder, Result};

/// What the runner lock told a run that wants the lease, for a live lease of
/// another owner.
#[derive(Debug, Clone, Copy, Default)]
pub struct Takeover<'a> {
    /// The lease owner named in the lock file this run has just locked: that
    /// runner held the lock while it held the lease, and the lock is free now,
    /// so it is gone (killed, crashed, or returned without releasing). Its
    /// live lease is taken over at once.
    pub gone: Option<&'a str>,
    /// The lock is held by another open file, so its holder is a live
    /// process (maybe frozen): said in the `busy` message.
    pub lock_busy: bool,
}

/// What [`acquire_lease_with`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// A live lease of a runner that is gone was taken over (not waited out).
    pub from_gone: bool,
    /// Items that runner left `uploading`, now `pending` again.
    pub reclaimed: usize,
}

/// Takes the runner lease for `ttl`, knowing nothing of the runner lock:
/// [`acquire_lease_with`] with [`Takeover::default`].
pub fn acquire_lease(tx: &Transaction<'_>, owner: &str, now: i64, ttl: Duration) -> Result<()> {
    acquire_lease_with(tx, owner, now, ttl, Takeover::default()).map(|_| ())
}

/// Takes the runner lease for `ttl`. Fails with `busy`
/// ([`Error::QueueHeld`], saying when the lease ends) while another owner's
/// lease is live, unless `rule.gone` names that owner. Taking over an expired
/// lease, or a gone runner's live one, returns its `uploading` items to
/// `pending`, keeping their upload URL and offset.
pub fn acquire_lease_with(
    tx: &Transaction<'_>,
    owner: &str,
    now: i64,
    ttl: Duration,
    rule: Takeover<'_>,
) -> Result<Taken> {
    let cur: Option<(String, i64)> = tx
        .query_row(
            "SELECT owner, expires_at FROM lease WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let mut from_gone = false;
    if let Some((o, exp)) = &cur {
        if o != owner && *exp > now {
            if rule.gone == Some(o.as_str()) {
                from_gone = true;
            } else {
                let secs = u64::try_from(exp - now).unwrap_or(0).div_ceil(1000);
                return Err(Error::QueueHeld(match rule.lock_busy {
                    true => Holder::LiveProcess {
                        lease_ends_in_secs: secs,
                    },
                    false => Holder::Lease {
                        lease_ends_in_secs: secs,
                    },
                }));
            }
        }
    }
    let mut reclaimed = 0;
    if cur.as_ref().map(|(o, _)| o != owner).unwrap_or(true) {
        reclaimed = tx.execute(
            "UPDATE items SET state = 'pending', updated_at = ?1 WHERE state = 'uploading'",
            [now],
        )?;
    }
    tx.execute(
        "INSERT INTO lease (id, owner, expires_at) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET owner = ?1, expires_at = ?2",
        params![owner, expiry(now, ttl)],
    )?;
    Ok(Taken {
        from_gone,
        reclaimed,
    })
}

/// Extends `owner`'s lease to `now + ttl`. Fails with `busy` ([`Error::Busy`])
/// unless `owner` still holds it, expired or not: a runner that was
/// superseded (or whose successor already finished and let the lease go)
/// never takes the queue back in the middle of its run.
pub fn renew_lease(tx: &Transaction<'_>, owner: &str, now: i64, ttl: Duration) -> Result<()> {
    let n = tx.execute(
        "UPDATE lease SET expires_at = ?2 WHERE id = 1 AND owner = ?1",
        params![owner, expiry(now, ttl)],
    )?;
    match n {
        1 => Ok(()),
        _ => Err(Error::Busy),
    }
}

fn expiry(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
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

/// Fails with `busy` ([`Error::Busy`]) unless `owner` holds the runner
/// lease: a runner whose lease was taken over must not write another
/// runner's items.
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

    #[test]
    fn a_gone_runners_live_lease_is_taken_over_at_once() {
        let mut db = db();
        let id = db
            .write(|tx| enqueue(tx, "/a", "b", 0, META, Some("in"), None, 0))
            .unwrap();
        let ttl = Duration::from_secs(60);
        db.write(|tx| acquire_lease(tx, "A", 0, ttl)).unwrap();
        db.write(|tx| claim(tx, id, "in", None, "A", 0)).unwrap();
        db.write(|tx| set_session(tx, id, Some(("https://h/u", &PRINT)), 50, 0))
            .unwrap();
        // The lock is held elsewhere: a live process, and the message says until when.
        let busy = Takeover {
            gone: None,
            lock_busy: true,
        };
        let e = db
            .write(|tx| acquire_lease_with(tx, "B", 17_500, ttl, busy))
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Busy);
        assert_eq!(
            e.to_string(),
            "another runner holds the queue (a live process; its lease ends in 43 s)"
        );
        // The lock is free but names another runner: not known to be gone.
        let other = Takeover {
            gone: Some("Z"),
            lock_busy: false,
        };
        let e = db
            .write(|tx| acquire_lease_with(tx, "B", 59_001, ttl, other))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "another runner holds the queue (a process not known to be alive; its lease ends in 1 s)"
        );
        assert_eq!(get(db.conn(), id).unwrap().state, State::Uploading);
        // The lock is free and names the holder: it is gone, taken over at once.
        let gone = Takeover {
            gone: Some("A"),
            lock_busy: false,
        };
        let taken = db
            .write(|tx| acquire_lease_with(tx, "B", 1_000, ttl, gone))
            .unwrap();
        assert_eq!(
            taken,
            Taken {
                from_gone: true,
                reclaimed: 1
            }
        );
        let row = get(db.conn(), id).unwrap();
        assert_eq!(row.state, State::Pending);
        assert_eq!(
            (row.upload_url.as_deref(), row.confirmed_offset),
            (Some("https://h/u"), 50)
        );
    }

    #[test]
    fn a_superseded_runner_cannot_renew_or_write() {
        let mut db = db();
        let ttl = Duration::from_secs(2);
        db.write(|tx| acquire_lease(tx, "A", 0, ttl)).unwrap();
        db.write(|tx| renew_lease(tx, "A", 1_000, ttl)).unwrap();
        // A's lease runs out (A frozen); B takes over by the lease.
        db.write(|tx| acquire_lease(tx, "B", 3_001, ttl)).unwrap();
        for e in [
            db.write(|tx| renew_lease(tx, "A", 3_500, ttl)).unwrap_err(),
            db.write(|tx| check_lease(tx, "A")).unwrap_err(),
        ] {
            assert!(matches!(e, Error::Busy), "{e:?}");
            assert_eq!(
                e.to_string(),
                "another runner took the queue over (this run's lease had run out)"
            );
        }
        // B finished and let the lease go: A still may not take it back by renewing.
        db.write(|tx| release_lease(tx, "B", 4_000)).unwrap();
        assert!(db.write(|tx| renew_lease(tx, "A", 4_001, ttl)).is_err());
    }
}
