//! How a run's lock waits end (`crate::queue::wait`): none outlasts the
//! run's deadline or `cancel()`, and what a run could not write because of
//! another connection's lock (or a full or read-only disk) is left for the
//! next run instead of being assumed done.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::run::StopReason;
use super::{Agent, Inner};
use crate::error::{Error, ErrorKind, Result};

use crate::queue::wait::{Bound, Scope, LATE_WAIT};

impl Agent {
    /// The waits of a run on this thread, for as long as the scope lives.
    pub(super) fn run_waits(&self, deadline: Instant) -> Scope {
        Scope::run(deadline, self.cancel.clone())
    }

    /// While the lease is held (`Some(deadline)`; `None` when it is given
    /// up), other threads' writes on this handle end with the run's waits
    /// too: the run waits for the handle behind them.
    pub(super) fn bind_waits(&self, g: &mut Inner, deadline: Option<Instant>) {
        g.db.bind_to_run(deadline.map(|deadline| Bound {
            deadline,
            cancel: self.cancel.clone(),
        }));
    }

    /// A write that found the database locked by another connection until
    /// the run stopped ends the run as stopped (`TimeUp`, `Cancelled`), not
    /// failed. What it could not write stays as it was: an item claimed
    /// `uploading` is taken over by the next run.
    pub(super) fn stopped_by_lock(&self, e: Error, deadline: Instant) -> Result<StopReason> {
        let why = if self.cancel.load(Ordering::SeqCst) {
            StopReason::Cancelled
        } else if Instant::now() >= deadline {
            StopReason::TimeUp
        } else {
            return Err(e);
        };
        match e {
            Error::Storage {
                kind: ErrorKind::Busy,
                ..
            } => {
                log::warn!("the database stayed locked until the run stopped");
                Ok(why)
            }
            e => Err(e),
        }
    }

    /// The run's own database failed during an attempt (locked past the
    /// run's time, full, read-only): not the item's fault, no attempt is
    /// charged. Back to `pending` if that can be written (tried briefly);
    /// else it stays `uploading` and the next run takes it over.
    pub(super) fn storage_failed(
        &self,
        g: &mut Inner,
        owner: &str,
        item_id: i64,
        e: Error,
    ) -> Error {
        let _brief = Scope::within(LATE_WAIT);
        // Fenced: a run superseded meanwhile must not touch its successor's item.
        let unclaim =
            |tx: &rusqlite::Transaction<'_>| super::hold::unclaim_fenced(tx, owner, item_id);
        if let Err(u) = g.db.write(unclaim) {
            log::warn!("item {item_id}: left to the next run ({})", u.kind());
        }
        e
    }
}
