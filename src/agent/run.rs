//! [`Agent::run_once`]: one upload run under the runner lease. The region is
//! fixed at the start; the database's trust is re-checked before each claim
//! (in the claim's transaction) and before each buffer of bytes, so another
//! handle or process that moves the account, installs a config or sees it
//! expire stops the run at once.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::account::AccountView;
use super::events::{ProgressRelay, RunEvent};
use super::hold::Begun;
use super::ledger::QueueLedger;
use super::runner_lock::{RunGuard, RunnerLock};
use super::trust::Trust;
use super::Agent;
use crate::auth::RunAuth;
use crate::error::{Error, Result};
use crate::net::http::{IoControl, RegionHttp, TusResult};
use crate::queue::ops::{self, now_ms, ItemRow};
use crate::region::{ApprovedRegion, GuardedUrl};
use crate::upload::tus::Capabilities;
use crate::upload::{Finished, Progress, Stop};

crate::codes::coded_enum! {
    /// Why [`Agent::run_once`] returned.
    pub enum StopReason, c_prefix "CS_STOP_" {
        /// No due item of the approved region is left.
        Drained = 0, "drained";
        /// `max_duration` elapsed.
        TimeUp = 1, "time_up";
        /// [`Agent::cancel`] was called, or the progress callback asked to stop.
        Cancelled = 2, "cancelled";
        /// The approved region changed, or the config expired, during the run
        /// (through this handle or any other on the same database).
        RegionChanged = 3, "region_changed";
        /// Another account was signed in, or the account signed out, during the
        /// run (through this handle or any other on the same database).
        AccountChanged = 4, "account_changed";
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunReport {
    /// The region uploaded to.
    pub region: String,
    /// Items confirmed and moved to the audit trail.
    pub uploaded: u64,
    /// Bytes of those items.
    pub bytes: u64,
    /// Attempts that failed (items now `failed` or `dead`).
    pub failed: u64,
    /// Items that went `dead` in this run.
    pub dead: u64,
    /// Items held for another region.
    pub held: u64,
    /// Items still queued for the approved region (pending, failed, uploading).
    pub remaining: u64,
    /// Why the run ended.
    pub stopped: StopReason,
    /// When the next queued item is due, ms since the epoch (in the past:
    /// due now); `None` when nothing is waiting. Schedule the next run for it.
    pub next_due_at: Option<i64>,
}

/// Default lifetime of a runner's lease without renewal. A runner that is
/// alive but frozen or stuck is superseded once it ends; a killed runner's
/// lease is taken over at once, because its runner lock died with it (see
/// `agent::runner_lock`).
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// What a run is allowed to do: upload this account's items to this region
/// as defined by this config version. Anything else in the database ends the
/// run.
struct Mandate<'a> {
    region: &'a ApprovedRegion,
    account: &'a AccountView,
    owner: &'a str,
    deadline: Instant,
}

impl Mandate<'_> {
    /// `RegionChanged` or `AccountChanged` unless `t` still grants it.
    fn check(&self, t: &Trust, now: u64) -> Result<()> {
        // Same region id is not enough: a newer config may have changed the
        // region's hosts, pins or networks, and this run holds the old ones.
        let same_region = matches!(t.approved(now), Ok(Some(r)) if r.id() == self.region.id()
                 && r.config_version() == self.region.config_version());
        // The account first: a new account (or a sign-out) takes the country too.
        if t.account_view() != *self.account {
            Err(Error::AccountChanged)
        } else if !same_region {
            Err(Error::RegionChanged)
        } else {
            Ok(())
        }
    }

    /// The account stamp of the items this run may claim.
    fn stamp(&self) -> Option<&[u8]> {
        self.account.stamp().map(|s| &s[..])
    }
}

fn stop_reason_of(e: &Error) -> StopReason {
    match e {
        Error::AccountChanged => StopReason::AccountChanged,
        _ => StopReason::RegionChanged,
    }
}

impl Agent {
    /// Uploads due items of the approved region until none is due, `max`
    /// elapsed, or [`Agent::cancel`] is called from another thread.
    /// `progress` runs on this thread; returning `false` cancels the run.
    /// It sees each item's bytes (the completion once); for per-item
    /// started/done/failed/held events use [`Agent::run_with_events`].
    ///
    /// **Callbacks must return quickly.** `progress` (and the listener of
    /// [`Agent::run_with_events`], and the [`CredentialProvider`](crate::auth::CredentialProvider))
    /// run on this thread between buffers: while one blocks, nothing
    /// checks `max` or [`Agent::cancel`], so a blocking callback holds the
    /// run past its deadline, and the run returns only once the callback
    /// does (then at once: both are checked again). The run's sockets stay
    /// open meanwhile. The same rule holds on the C and Java surfaces.
    ///
    /// When the root lists `sources` and a config refresh is due (see
    /// [`ConfigInfo::refresh_due_at_ms`](super::ConfigInfo)), the run first calls
    /// [`Agent::refresh_config`] (once; a failure is logged and the run goes
    /// on under the config in force, if it is still valid).
    ///
    /// Fails with `NoConfig`, `Expired`, `NoRegion` or `NoAccount` (signed
    /// out) when uploads are off (fail closed), with `Busy` while another
    /// runner holds the queue (the message says which and when its lease
    /// ends; a runner whose process died is taken over at once, one that is
    /// alive but frozen or stuck when its lease ends) or when this run was
    /// superseded that way itself, and with `Unauthorized` when the
    /// credentials are refused after a refresh or the provider gives none
    /// (the item is left as it was).
    pub fn run_once(
        &self,
        max: Duration,
        progress: &mut dyn FnMut(Progress) -> bool,
    ) -> Result<RunReport> {
        self.run_with_events(max, &mut |e| match e {
            RunEvent::Progress(p) => progress(*p),
            _ => true,
        })
    }

    /// [`Agent::run_once`] with one listener for progress and the per-item
    /// events ([`RunEvent`]): started, progress, done, failed (with its kind
    /// and next attempt), held. Each runs on this thread with no lock of the
    /// agent held (it may call back into it); returning `false` cancels the run.
    pub fn run_with_events(
        &self,
        max: Duration,
        listener: &mut dyn FnMut(&RunEvent) -> bool,
    ) -> Result<RunReport> {
        // One run per handle, before anything else (a nested run from a
        // listener must not touch the cancel flag of the run it is inside).
        let _guard = RunGuard::enter(&self.running)?;
        // A century at most: `Instant` + a huge duration would overflow.
        let deadline = Instant::now() + max.min(Duration::from_secs(100 * 365 * 24 * 3600));
        // No lock wait outlasts the deadline or a cancel (`super::run_waits`).
        let _waits = self.run_waits(deadline);
        let mut relay = ProgressRelay::new(listener);
        let owner = {
            let mut b = [0u8; 16];
            getrandom::fill(&mut b).map_err(|_| Error::Internal("OS RNG unavailable".into()))?;
            hex::encode(b)
        };
        let ((region, account, held, generation), lock) = self.begin_run(&owner, deadline)?;
        let mandate = Mandate {
            region: &region,
            account: &account,
            owner: &owner,
            deadline,
        };
        let lock = Mutex::new(lock);
        self.bind_waits(&mut self.lock(), Some(deadline));
        let result = self.run_leased(&mandate, held, generation, &lock, &mut relay);
        crate::upload::release_spares();
        let mut g = self.lock();
        if let Err(e) = g.db.write(|tx| ops::release_lease(tx, &owner, now_ms())) {
            log::warn!("lease release failed ({}); it expires on its own", e.kind());
        }
        self.bind_waits(&mut g, None);
        drop(g);
        // The lock goes only after the lease: while it is held, a successor
        // takes the lease over only once it ends.
        drop(lock);
        // A superseded run leaves the upkeep to the runner that holds the queue.
        if !matches!(result, Err(Error::Busy)) {
            self.after_run(result.as_ref().ok(), mandate.deadline);
        }
        result
    }

    /// Refreshes the config first when one is due (the root lists
    /// `sources`), then takes the lease and fixes the run's region and
    /// account, from the stored trust; returns the trust generation it was
    /// decided under.
    fn begin_run(&self, owner: &str, deadline: Instant) -> Result<(Begun, RunnerLock)> {
        // Nothing can be recorded: no config fetch, no byte sent.
        if self.lock().db.read_only() {
            return Err(crate::queue::db::read_only_error());
        }
        // A cancel from before this run is stale: cleared on entry, so one
        // that arrives while the run starts (e.g. WorkManager's onStopped
        // right after doWork began) is honoured. Put back if this run does
        // not start: it may have been meant for a run already going.
        let stale = self.cancel.swap(false, Ordering::SeqCst);
        if self.closing.load(Ordering::SeqCst) {
            // The handle was closed: this run stops at its first check.
            self.cancel.store(true, Ordering::SeqCst);
        }
        // Before the region is fixed: a refresh that changes the config
        // would otherwise stop this very run at its first buffer.
        self.refresh_if_due(deadline);
        let started = self.begin_run_leased(owner);
        if started.is_err() && stale {
            self.cancel.store(true, Ordering::SeqCst);
        }
        started
    }

    /// The per-buffer check: one `PRAGMA data_version` while nobody else
    /// writes; a full comparison only when the trust row changed.
    fn still_approved(&self, m: &Mandate<'_>, generation: &Mutex<i64>) -> Result<()> {
        let mut g = self.lock();
        if let Err(e) = self.refresh(&mut g) {
            log::warn!("trust re-check failed ({}); stopping", e.kind());
            return Err(Error::RegionChanged);
        }
        self.note_expiry(&mut g);
        let now = self.now_secs(&g.trust);
        let mut seen = generation.lock().unwrap_or_else(|p| p.into_inner());
        if g.trust.generation == *seen {
            return match g.trust.live(now) {
                true => Ok(()),
                false => Err(Error::RegionChanged),
            };
        }
        m.check(&g.trust, now)?;
        *seen = g.trust.generation;
        Ok(())
    }

    /// The check a run makes before every buffer of bytes, exposed for
    /// `benches/trust.rs` only: whether `region`, approved when the run
    /// started, is still approved by the database's trust.
    #[doc(hidden)]
    pub fn bench_buffer_check(&self, region: &ApprovedRegion) -> bool {
        let (generation, account) = {
            let g = self.lock();
            (Mutex::new(g.trust.generation), g.trust.account_view())
        };
        let m = Mandate {
            region,
            account: &account,
            owner: "",
            deadline: Instant::now() + Duration::from_secs(3600),
        };
        self.still_approved(&m, &generation).is_ok()
    }

    fn run_leased(
        &self,
        m: &Mandate<'_>,
        held: u64,
        generation: i64,
        lock: &Mutex<RunnerLock>,
        relay: &mut ProgressRelay<'_>,
    ) -> Result<RunReport> {
        let deadline = m.deadline;
        // The generation begin_run decided under, not the cache now: another
        // thread on this handle may have moved the cache since.
        let generation = Mutex::new(generation);
        let still_approved = || self.still_approved(m, &generation);
        let opts = &self.options.upload;
        let ctl = IoControl::new(self.cancel.clone(), deadline);
        let account = match m.account {
            AccountView::SignedIn { id, .. } => Some(id.clone()),
            _ => None,
        };
        let provider = self.credential_provider();
        let auth = RunAuth::new(provider, account, m.region.id(), &still_approved);
        let http = RegionHttp::new(m.region, opts, ctl, auth)?;
        let mut report = RunReport {
            region: m.region.id().to_string(),
            uploaded: 0,
            bytes: 0,
            failed: 0,
            dead: 0,
            held,
            remaining: 0,
            stopped: StopReason::Drained,
            next_due_at: None,
        };
        let last_renew = Mutex::new(Instant::now());
        let keepalive = || self.keepalive(m.owner, &last_renew, lock);
        let stop = Stop {
            cancel: &self.cancel,
            deadline,
            still_approved: &still_approved,
            keepalive: &keepalive,
        };
        if let Err(e) = self.process_terminations(&http, m, &stop)? {
            report.stopped = stop_reason_of(&e);
            return Ok(report);
        }
        self.drain(&http, m, &stop, relay, &mut report)?;
        let s = ops::stats(self.lock().db.conn())?;
        report.remaining = s.pending + s.failed + s.uploading;
        report.next_due_at = s.next_due_at;
        Ok(report)
    }

    /// Claims, uploads and settles the due items one at a time until the
    /// queue is drained or the run must stop (`report.stopped` says why).
    fn drain(
        &self,
        http: &RegionHttp,
        m: &Mandate<'_>,
        stop: &Stop<'_>,
        relay: &mut ProgressRelay<'_>,
        report: &mut RunReport,
    ) -> Result<()> {
        let mut caps: HashMap<String, (GuardedUrl, Capabilities)> = HashMap::new();
        loop {
            if let Some(why) = self.stop_reason(stop) {
                report.stopped = why;
                break;
            }
            // A claim that met another process's lock until the run stopped
            // ends it as stopped.
            let claim = self
                .claim_next(m)
                .or_else(|e| self.stopped_by_lock(e, m.deadline).map(Claim::Changed))?;
            let item = match claim {
                Claim::Item(item) => item,
                Claim::Drained | Claim::Gone => break,
                Claim::Changed(why) => {
                    report.stopped = why;
                    break;
                }
            };
            self.emit(
                relay,
                RunEvent::Started {
                    item_id: item.id,
                    size: item.size,
                },
            );
            let progress = &mut |p| relay.progress(p);
            let attempt = self.attempt(http, &mut caps, m, &item, stop, progress);
            let (settled, event) = match self.settle(m, &item, attempt, report) {
                Ok(s) => s,
                Err(e) => (Settled::Stop(self.stopped_by_lock(e, m.deadline)?), None),
            };
            // Delivered with no lock held: the listener may call the agent.
            if let Some(e) = event {
                self.emit(relay, e);
            }
            if let Settled::Stop(why) = settled {
                report.stopped = why;
                break;
            }
        }
        Ok(())
    }

    /// Delivers an event; a listener that returns `false` cancels the run.
    fn emit(&self, relay: &mut ProgressRelay<'_>, e: RunEvent) {
        if !relay.event(e) {
            self.cancel.store(true, Ordering::SeqCst);
        }
    }

    fn stop_reason(&self, stop: &Stop<'_>) -> Option<StopReason> {
        if let Err(e) = (stop.still_approved)() {
            Some(stop_reason_of(&e))
        } else if self.cancel.load(Ordering::SeqCst) {
            Some(StopReason::Cancelled)
        } else if Instant::now() >= stop.deadline {
            Some(StopReason::TimeUp)
        } else {
            None
        }
    }

    /// Picks and claims the next due item, under the stored trust in the
    /// claim's own transaction: a change committed by another process just
    /// before cannot slip one more item through.
    fn claim_next(&self, m: &Mandate<'_>) -> Result<Claim> {
        let mut g = self.lock();
        let ttl = self.options.lease_ttl;
        loop {
            // One attempt per item per run (the row records the run that
            // claimed it): a failing item never hot-loops.
            let conn = g.db.conn();
            let next = ops::next_for_run(conn, m.region.id(), m.stamp(), m.owner, now_ms())?;
            let Some(item) = next else {
                return Ok(Claim::Drained);
            };
            let claim = self.update_trust_light(&mut g, |t, tx, now| {
                if let Err(e) = m.check(t, now) {
                    return Ok((Claim::Changed(stop_reason_of(&e)), false));
                }
                ops::renew_lease(tx, m.owner, now_ms(), ttl)?;
                match ops::claim(tx, item.id, m.region.id(), m.stamp(), m.owner, now_ms()) {
                    Ok(()) => Ok((Claim::Item(Box::new(item)), false)),
                    // Held or removed since it was picked: the next one.
                    Err(Error::NotFound) => {
                        ops::mark_seen(tx, item.id, m.owner)?;
                        Ok((Claim::Gone, false))
                    }
                    Err(e) => Err(e),
                }
            })?;
            if !matches!(claim, Claim::Gone) {
                return Ok(claim);
            }
        }
    }

    /// One upload attempt of `item` (capabilities are asked once per service).
    fn attempt(
        &self,
        http: &RegionHttp<'_>,
        caps: &mut HashMap<String, (GuardedUrl, Capabilities)>,
        m: &Mandate<'_>,
        item: &ItemRow,
        stop: &Stop<'_>,
        progress: &mut dyn FnMut(Progress) -> bool,
    ) -> TusResult<Finished> {
        let client = http.service(&item.service);
        if !caps.contains_key(&item.service) {
            let endpoint = m.region.endpoint(&item.service)?;
            let c = client.tus_options(&endpoint)?;
            if !c.creation {
                return Err(Error::Protocol("server does not offer tus creation".into()).into());
            }
            caps.insert(item.service.clone(), (endpoint, c));
        }
        let (endpoint, c) = caps.get(&item.service).expect("inserted above");
        let mut ledger = QueueLedger {
            agent: self,
            owner: m.owner,
            region: m.region.id(),
            termination_owner: ops::Owner {
                service: &item.service,
                account: m.stamp(),
            },
        };
        let opts = &self.options.upload;
        crate::upload::upload_item(
            &client,
            c,
            endpoint,
            item,
            opts,
            &mut ledger,
            stop,
            progress,
        )
    }
}

mod settle;
mod terminations;

enum Claim {
    Item(Box<ItemRow>),
    /// Picked but no longer claimable (held or removed meanwhile).
    Gone,
    Drained,
    Changed(StopReason),
}

/// What the run does after an item is settled.
enum Settled {
    Next,
    Stop(StopReason),
}
