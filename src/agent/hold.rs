//! A run's hold on the queue: the runner lock (`runner_lock`), then the
//! lease, taken under what the lock says about the lease's holder; renewals
//! while bytes flow; and the fenced writes of a run that may have been
//! superseded. `docs/DESIGN.md` §7, "Runner lock".

use std::sync::Mutex;
use std::time::Instant;

use super::account::AccountView;
use super::runner_lock::RunnerLock;
use super::Agent;
use crate::error::{Error, Result};
use crate::queue::ops::{self, now_ms, Takeover};
use crate::region::ApprovedRegion;

/// What `begin_run` fixed: the region, the account, the held count and the
/// trust generation.
pub(super) type Begun = (ApprovedRegion, AccountView, u64, i64);

impl Agent {
    /// Takes the runner lock (without waiting), then the lease under what the
    /// lock says about its holder (`docs/DESIGN.md` §7, "Runner lock").
    pub(super) fn begin_run_leased(&self, owner: &str) -> Result<(Begun, RunnerLock)> {
        let mut lock = RunnerLock::try_take(self.lock_path.as_deref());
        let mut g = self.lock();
        self.refresh(&mut g)?;
        self.note_expiry(&mut g);
        let ttl = self.options.lease_ttl;
        // This run's id goes into the file before its lease is written: a
        // kill right after the lease commit leaves the file naming that
        // lease, so the next run knows its holder is gone.
        let gone = lock.takeover().gone.map(str::to_string);
        let lock_busy = lock.busy();
        lock.record(owner);
        let rule = Takeover {
            gone: gone.as_deref(),
            lock_busy,
        };
        let (begun, taken) = self.update_trust(&mut g, |t, tx, now| {
            if t.config.is_none() {
                return Err(Error::NoConfig);
            }
            // Signed out before the region: a sign-out also clears the country.
            let account = t.account_view();
            if account == AccountView::SignedOut {
                return Err(Error::NoAccount);
            }
            let region = t.approved(now)?.ok_or(Error::NoRegion)?;
            let at = now_ms();
            let taken = ops::acquire_lease_with(tx, owner, at, ttl, rule)?;
            let held = ops::reconcile_regions(tx, region.id(), at)?;
            Ok((((region, account, held, t.generation), taken), false))
        })?;
        drop(g);
        if taken.from_gone {
            log::info!(
                "the previous runner is gone (its lock was free): its lease taken over at once, {} items back to pending",
                taken.reclaimed
            );
        }
        if lock.busy() {
            // Its holder let the lease run out: frozen or stuck. It is fenced
            // off by the lease; this run takes the lock as soon as it lets go.
            log::warn!(
                "the runner lock is held by a process whose lease ran out; taken over by the lease"
            );
            lock.retry(owner);
        }
        Ok((begun, lock))
    }

    /// Renews the lease while bytes flow (a slow chunk may outlast it);
    /// fails with `Busy` once another runner took the queue over. A run that
    /// took the queue over by the lease picks the runner lock up as soon as
    /// the frozen or stuck process that held it lets go.
    pub(super) fn keepalive(
        &self,
        owner: &str,
        last: &Mutex<Instant>,
        lock: &Mutex<RunnerLock>,
    ) -> Result<()> {
        {
            let mut l = lock.lock().unwrap_or_else(|p| p.into_inner());
            if l.busy() && l.retry(owner) {
                log::info!("runner lock taken over from a process that let go");
            }
        }
        let ttl = self.options.lease_ttl;
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() > ttl / 4 {
            // Light: a lease lost to a power cut is a lease nobody holds.
            // Renewed only if still ours: a run superseded while it was
            // frozen finds out here, before one more byte.
            self.lock()
                .db
                .write_light(|tx| ops::renew_lease(tx, owner, now_ms(), ttl))?;
            *last = Instant::now();
        }
        Ok(())
    }
}

/// `uploading → pending` for an item of this run, only while the run still
/// owns the queue (`Busy` otherwise: its new owner already reclaimed it).
pub(super) fn unclaim_fenced(tx: &rusqlite::Transaction<'_>, owner: &str, id: i64) -> Result<()> {
    ops::check_lease(tx, owner)?;
    ops::unclaim(tx, id, now_ms())
}
