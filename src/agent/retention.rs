//! Audit retention and the upkeep of the file: how long finished uploads stay
//! in the audit trail (a setting in the database, so every handle and process
//! agrees), pruning what is older a short transaction at a time, and the WAL
//! checkpoint after large batches.

use std::time::{Duration, Instant};

use super::{Agent, RunReport};
use crate::error::Result;
use crate::queue::ops::{self, PRUNE_BATCH};
use crate::queue::schema;
use crate::queue::wait::Scope;

/// The most pruning transactions of one call: 20 × [`PRUNE_BATCH`] = 10,000
/// rows, far more than a day of uploads, so calls at the end of each run keep
/// up, and one call never keeps the file busy for long.
pub const PRUNE_BATCHES_PER_CALL: u32 = 20;

/// Between two pruning transactions the write lock is free this long, so a
/// writer waiting in its busy handler (another handle, process or thread)
/// gets in.
const PRUNE_PAUSE: Duration = Duration::from_millis(10);

/// How long the checkpoint after a large batch waits for other connections'
/// readers and writers before leaving the WAL to the next one.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(100);

impl Agent {
    /// How many days a finished upload stays in the audit trail (default
    /// [`ops::DEFAULT_AUDIT_RETENTION_DAYS`]).
    pub fn audit_retention_days(&self) -> Result<u32> {
        ops::audit_retention_days(self.lock().db.conn())
    }

    /// Sets the audit retention for every handle and process on this
    /// database, 1..=36500 days (`invalid_argument` otherwise, changing
    /// nothing), then prunes what it makes due, as [`Agent::prune_audit`].
    /// Returns how many rows that pruned.
    pub fn set_audit_retention_days(&self, days: u32) -> Result<u64> {
        self.lock()
            .db
            .write(|tx| ops::set_audit_retention_days(tx, days))?;
        self.prune_audit()
    }

    /// Deletes audit rows older than the retention, at most
    /// [`PRUNE_BATCHES_PER_CALL`] transactions of [`PRUNE_BATCH`] rows, each
    /// short, the lock released between them; returns how many rows went (at
    /// the maximum, more may be due: call again). Every run prunes this way
    /// at its end; call it to prune without a run. A row goes only when it is
    /// older than the retention both by this agent's clock and counted back
    /// from the newest row, so a clock set far ahead cannot empty the audit.
    pub fn prune_audit(&self) -> Result<u64> {
        self.prune_until(None)
    }

    fn prune_until(&self, deadline: Option<Instant>) -> Result<u64> {
        let now_ms = i64::try_from((self.options.clock)())
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        if !ops::audit_prunable(self.lock().db.conn(), now_ms)? {
            return Ok(0);
        }
        let mut total = 0;
        for batch in 0..PRUNE_BATCHES_PER_CALL {
            if batch > 0 {
                std::thread::sleep(PRUNE_PAUSE);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            // Light: a prune a power cut rolls back is done again next time
            // (the checkpoint after the last batch makes them durable anyway).
            let n = self
                .lock()
                .db
                .write_light(|tx| ops::prune_audit_batch(tx, now_ms, PRUNE_BATCH))?;
            total += n;
            if n < u64::from(PRUNE_BATCH) {
                break;
            }
        }
        if total > 0 {
            self.checkpoint();
        }
        Ok(total)
    }

    /// Upkeep after a run that did not stop early: prune the audit, and
    /// checkpoint when the run changed rows (the WAL goes back to zero bytes
    /// instead of staying at its high-water mark while the agent lives).
    /// Failures are logged: the run's own result stands.
    pub(super) fn after_run(&self, report: Option<&RunReport>, deadline: Instant) {
        if self.cancel.load(std::sync::atomic::Ordering::SeqCst) || Instant::now() >= deadline {
            return;
        }
        let pruned = match self.prune_until(Some(deadline)) {
            Ok(n) => n,
            Err(e) => {
                log::warn!(
                    "audit pruning failed ({}); tried after the next run",
                    e.kind()
                );
                0
            }
        };
        let changed = report.is_some_and(|r| r.uploaded + r.failed + r.held > 0);
        if changed && pruned == 0 {
            self.checkpoint();
        }
    }

    /// `wal_checkpoint(TRUNCATE)`, waiting at most [`CHECKPOINT_WAIT`] for
    /// other connections; best effort (`journal_size_limit` bounds the WAL
    /// when it cannot finish).
    fn checkpoint(&self) {
        let g = self.lock();
        let _brief = Scope::within(CHECKPOINT_WAIT);
        match schema::checkpoint_truncate(g.db.conn()) {
            Ok(true) => {}
            Ok(false) => log::debug!("checkpoint left for later: the WAL is in use"),
            Err(e) => log::warn!("checkpoint failed ({})", e.kind()),
        }
    }
}
