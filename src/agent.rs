//! [`Agent`]: the one object the app talks to. It wires the trust store,
//! region selection, the queue and the uploader, and is safe to share
//! between threads (the UI thread reads stats while a worker runs).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::config::envelope::Envelope;
use crate::config::model::unix_secs;
use crate::config::store::{self, StoredTrust};
use crate::config::{TrustedRoot, VerifiedConfig, CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};
use crate::error::{Error, ErrorKind, Result};
use crate::queue::ops::SourceMeta;
use crate::queue::ops::{self, now_ms};
use crate::queue::{AuditRecord, Db, ItemInfo, QueueStats, RetryPolicy, State};
use crate::region::{self, ApprovedRegion, GuardedUrl};
use crate::upload::http::RegionHttp;
use crate::upload::tus::{Capabilities, Failure, TusResult};
use crate::upload::{Progress, Stop};

/// Seconds-since-epoch clock; replaceable in tests.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Tunables of an [`Agent`].
#[derive(Clone)]
pub struct AgentOptions {
    /// Wall clock in seconds (the freeze-safe floor is applied on top).
    pub clock: Clock,
    /// Retry schedule for failed uploads.
    pub retry: RetryPolicy,
    /// Upload tuning (chunk size, timeouts, extra trust for tests).
    pub upload: crate::upload::UploadOptions,
    /// How long the runner lease lasts without renewal: a killed runner's
    /// items are taken over after this.
    pub lease_ttl: Duration,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            clock: Arc::new(|| unix_secs(SystemTime::now())),
            retry: RetryPolicy::default(),
            upload: crate::upload::UploadOptions::default(),
            lease_ttl: LEASE_TTL,
        }
    }
}

impl std::fmt::Debug for AgentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentOptions")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// A new root version is in force.
    Root {
        /// Its version.
        version: u64,
    },
    /// A new config version is in force.
    Config {
        /// Its version.
        version: u64,
    },
    /// The same document was already installed; nothing changed.
    Unchanged,
}

/// A summary of the config in force (no keys, no URLs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigInfo {
    /// Root version.
    pub root_version: u64,
    /// Config version, if one is installed.
    pub config_version: Option<u64>,
    /// RFC 3339 expiry of the config.
    pub expires_at: Option<String>,
    /// Whether it is expired against the freeze-safe clock.
    pub expired: bool,
    /// Region ids it defines.
    pub regions: Vec<String>,
    /// Account country, if set.
    pub country: Option<String>,
    /// Approved region id, if any.
    pub approved_region: Option<String>,
}

pub(crate) struct Trust {
    pub(crate) root: TrustedRoot,
    pub(crate) config: Option<VerifiedConfig>,
    pub(crate) floor: u64,
    pub(crate) country: Option<String>,
}

impl Trust {
    fn stored(&self) -> StoredTrust {
        StoredTrust {
            root: self.root.envelope().to_vec(),
            config: self.config.as_ref().map(|c| c.envelope().to_vec()),
            clock_floor: self.floor,
            country: self.country.clone(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) trust: Trust,
}

/// The on-device sync agent. `Send + Sync`: share it in an `Arc`.
pub struct Agent {
    pub(crate) inner: Mutex<Inner>,
    pub(crate) cancel: AtomicBool,
    pub(crate) options: AgentOptions,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").finish_non_exhaustive()
    }
}

impl Agent {
    /// Opens (or creates) the database at `path` with `initial_root`, the root
    /// envelope shipped with the firmware. A database that already trusts a
    /// root keeps it; a newer shipped root is installed only if it chains.
    pub fn open(path: impl AsRef<Path>, initial_root: &[u8]) -> Result<Agent> {
        Self::open_with(path, Some(initial_root), AgentOptions::default())
    }

    /// Opens a database that was initialised before (the CLI's `--db`).
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Agent> {
        Self::open_with(path, None, AgentOptions::default())
    }

    /// [`Agent::open`] with options.
    pub fn open_with(
        path: impl AsRef<Path>,
        initial_root: Option<&[u8]>,
        options: AgentOptions,
    ) -> Result<Agent> {
        let db = Db::open(path.as_ref())?;
        Self::from_db(db, initial_root, options)
    }

    /// An agent on an in-memory database (tests and dry runs).
    pub fn open_in_memory(initial_root: &[u8], options: AgentOptions) -> Result<Agent> {
        Self::from_db(Db::open_in_memory()?, Some(initial_root), options)
    }

    fn from_db(mut db: Db, initial_root: Option<&[u8]>, options: AgentOptions) -> Result<Agent> {
        let now = (options.clock)();
        let stored = store::load(db.conn())?;
        let trust = match (stored, initial_root) {
            (None, None) => return Err(Error::NoConfig),
            (None, Some(bytes)) => {
                let root = TrustedRoot::from_initial(bytes, now)?;
                let t = Trust {
                    root,
                    config: None,
                    floor: 0,
                    country: None,
                };
                db.write(|tx| store::save(tx, &t.stored()))?;
                t
            }
            (Some(s), initial) => {
                let mut root = TrustedRoot::reload(&s.root)?;
                // A tampered or now-invalid stored config is dropped (fail closed), not fatal.
                let config = s
                    .config
                    .as_deref()
                    .and_then(|c| VerifiedConfig::verify(&root, c).ok());
                let mut t = Trust {
                    root: root.clone(),
                    config,
                    floor: s.clock_floor,
                    country: s.country,
                };
                if let Some(bytes) = initial {
                    if let Ok(Some(next)) = root.verify_next(bytes, now.max(t.floor)) {
                        root = next;
                        t.root = root;
                        t.config = t
                            .config
                            .filter(|c| VerifiedConfig::verify(&t.root, c.envelope()).is_ok());
                        db.write(|tx| store::save(tx, &t.stored()))?;
                    }
                }
                t
            }
        };
        Ok(Agent {
            inner: Mutex::new(Inner { db, trust }),
            cancel: AtomicBool::new(false),
            options,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock (caught at the FFI edge) must not
        // brick the agent: the DB is transactional, so the state is consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The freeze-safe clock: wall time, but never behind the newest `issued_at` seen.
    pub(crate) fn now_secs(&self, trust: &Trust) -> u64 {
        (self.options.clock)().max(trust.floor)
    }

    /// Installs a root or a config envelope (told apart by `payloadType`).
    /// A rejected envelope changes nothing, in memory or on disk.
    pub fn install(&self, envelope: &[u8]) -> Result<Installed> {
        let env = Envelope::parse(envelope)?;
        match env.payload_type.as_str() {
            ROOT_PAYLOAD_TYPE => self.install_root(envelope),
            CONFIG_PAYLOAD_TYPE => self.install_config(envelope),
            _ => Err(Error::WrongPayloadType {
                expected: "a root or config payload type",
            }),
        }
    }

    /// Installs the next root (rotation).
    pub fn install_root(&self, envelope: &[u8]) -> Result<Installed> {
        let mut g = self.lock();
        let inner = &mut *g;
        let now = self.now_secs(&inner.trust);
        let Some(next) = inner.trust.root.verify_next(envelope, now)? else {
            return Ok(Installed::Unchanged);
        };
        // A rotation may retire the config keys: keep the config only if the new root still vouches for it.
        let config = inner
            .trust
            .config
            .as_ref()
            .and_then(|c| VerifiedConfig::verify(&next, c.envelope()).ok());
        let t = Trust {
            root: next,
            config,
            floor: inner.trust.floor,
            country: inner.trust.country.clone(),
        };
        inner.db.write(|tx| store::save(tx, &t.stored()))?;
        let version = t.root.version();
        inner.trust = t;
        log::info!("root rotated to version {version}");
        Ok(Installed::Root { version })
    }

    /// Installs a config signed under the root in force.
    pub fn install_config(&self, envelope: &[u8]) -> Result<Installed> {
        let mut g = self.lock();
        let inner = &mut *g;
        let now = self.now_secs(&inner.trust);
        if inner.trust.root.expires_at() <= now {
            return Err(Error::Expired { what: "root" });
        }
        let cfg = VerifiedConfig::verify(&inner.trust.root, envelope)?;
        if let Some(cur) = &inner.trust.config {
            if !cfg.check_replaces(cur)? {
                return Ok(Installed::Unchanged);
            }
        }
        cfg.check_fresh(now)?;
        let floor = inner.trust.floor.max(cfg.issued_at());
        let t = Trust {
            root: inner.trust.root.clone(),
            config: Some(cfg),
            floor,
            country: inner.trust.country.clone(),
        };
        inner.db.write(|tx| store::save(tx, &t.stored()))?;
        inner.trust = t;
        let version = inner
            .trust
            .config
            .as_ref()
            .map(|c| c.version())
            .unwrap_or(0);
        log::info!("config version {version} installed");
        Ok(Installed::Config { version })
    }

    /// Sets the account's country (ISO 3166-1 alpha-2, any case).
    pub fn set_account_country(&self, country: &str) -> Result<()> {
        let cc = region::normalize_country(country)?;
        let mut g = self.lock();
        let inner = &mut *g;
        let mut stored = inner.trust.stored();
        stored.country = Some(cc.clone());
        inner.db.write(|tx| store::save(tx, &stored))?;
        inner.trust.country = Some(cc);
        Ok(())
    }

    /// The approved region: `Ok(None)` with no config, no country or no
    /// matching region; `Err(Expired)` when the config or root expired.
    pub fn approved_region(&self) -> Result<Option<ApprovedRegion>> {
        let g = self.lock();
        Self::approved_locked(self, &g.trust)
    }

    pub(crate) fn approved_locked(&self, trust: &Trust) -> Result<Option<ApprovedRegion>> {
        let Some(cfg) = &trust.config else {
            return Ok(None);
        };
        let now = self.now_secs(trust);
        cfg.check_fresh(now)?;
        if trust.root.expires_at() <= now {
            return Err(Error::Expired { what: "root" });
        }
        Ok(trust
            .country
            .as_deref()
            .and_then(|cc| region::select(cfg, cc)))
    }

    /// What is installed (safe to show: versions, expiry, region ids).
    pub fn config_info(&self) -> ConfigInfo {
        let g = self.lock();
        let t = &g.trust;
        let now = self.now_secs(t);
        let approved = self
            .approved_locked(t)
            .ok()
            .flatten()
            .map(|r| r.id().to_string());
        ConfigInfo {
            root_version: t.root.version(),
            config_version: t.config.as_ref().map(|c| c.version()),
            expires_at: t
                .config
                .as_ref()
                .map(|c| crate::config::model::format_time(c.expires_at())),
            expired: t
                .config
                .as_ref()
                .map(|c| c.check_fresh(now).is_err())
                .unwrap_or(false)
                || t.root.expires_at() <= now,
            regions: t
                .config
                .as_ref()
                .map(|c| c.regions().keys().cloned().collect())
                .unwrap_or_default(),
            country: t.country.clone(),
            approved_region: approved,
        }
    }

    /// Enqueues one file for `service`; durable when it returns. Paths must
    /// be absolute. Works without an approved region (the item is stamped at
    /// the first run that has one).
    pub fn enqueue(&self, path: impl AsRef<Path>, service: &str, priority: i32) -> Result<i64> {
        Ok(self.enqueue_all(&[path], service, priority)?[0])
    }

    /// Enqueues many files in one transaction: all or none.
    pub fn enqueue_all<P: AsRef<Path>>(
        &self,
        paths: &[P],
        service: &str,
        priority: i32,
    ) -> Result<Vec<i64>> {
        if service.is_empty() || service.len() > 64 {
            return Err(Error::InvalidArgument("service must be 1..=64 characters"));
        }
        let mut items = Vec::with_capacity(paths.len());
        for p in paths {
            let p = p.as_ref();
            if !p.is_absolute() {
                return Err(Error::InvalidArgument("path must be absolute"));
            }
            let s = p
                .to_str()
                .ok_or(Error::InvalidArgument("path is not valid UTF-8"))?;
            items.push((s.to_string(), ops::stat_source(p)?));
        }
        let mut g = self.lock();
        let inner = &mut *g;
        let region = self.approved_locked(&inner.trust).ok().flatten();
        let now = now_ms();
        inner.db.write(|tx| {
            items
                .iter()
                .map(|(path, meta)| {
                    ops::enqueue(
                        tx,
                        path,
                        service,
                        priority,
                        *meta,
                        region.as_ref().map(|r| r.id()),
                        now,
                    )
                })
                .collect()
        })
    }

    /// Counts per state and bytes left.
    pub fn stats(&self) -> Result<QueueStats> {
        ops::stats(self.lock().db.conn())
    }

    /// Items, optionally of one state (at most `limit`).
    pub fn list(&self, state: Option<State>, limit: u32) -> Result<Vec<ItemInfo>> {
        ops::list(self.lock().db.conn(), state, limit)
    }

    /// Audit rows after `after_id`.
    pub fn audit(&self, after_id: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        ops::audit(self.lock().db.conn(), after_id, limit)
    }

    /// Restamps held items to the approved region. Call only with the user's consent.
    pub fn rehome(&self) -> Result<u64> {
        let mut g = self.lock();
        let inner = &mut *g;
        let region = self.approved_locked(&inner.trust)?.ok_or(Error::NoRegion)?;
        inner.db.write(|tx| ops::rehome(tx, region.id(), now_ms()))
    }

    /// Deletes held items (nothing is sent anywhere).
    pub fn discard_held(&self) -> Result<u64> {
        self.lock().db.write(ops::discard_held)
    }

    /// Removes one item (its server-side upload is terminated at the next run, if possible).
    pub fn remove(&self, id: i64) -> Result<()> {
        self.lock().db.write(|tx| ops::remove(tx, id))
    }

    /// Revives dead items.
    pub fn retry_dead(&self) -> Result<u64> {
        self.lock().db.write(|tx| ops::retry_dead(tx, now_ms()))
    }

    /// Asks a running [`Agent::run_once`] (on another thread) to stop soon.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

/// Why [`Agent::run_once`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// No due item of the approved region is left.
    Drained,
    /// `max_duration` elapsed.
    TimeUp,
    /// [`Agent::cancel`] was called, or the progress callback asked to stop.
    Cancelled,
    /// The approved region changed, or the config expired, during the run.
    RegionChanged,
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
}

/// Default lifetime of a runner's lease without renewal; a killed runner's
/// lease expires after this and the next runner takes over its items.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// The queue side of an upload: confirmed sessions and offsets. (The lease
/// is renewed by the run's keepalive, checked as bytes flow.)
struct QueueLedger<'a> {
    agent: &'a Agent,
    owner: &'a str,
    region: &'a str,
}

impl crate::upload::Ledger for QueueLedger<'_> {
    fn session(
        &mut self,
        id: i64,
        url: Option<&GuardedUrl>,
        meta: SourceMeta,
        sha: &[u8; 32],
        offset: u64,
    ) -> Result<()> {
        let mut g = self.agent.lock();
        let url_s = url.map(|u| u.as_str());
        let written = g.db.write(|tx| {
            ops::check_lease(tx, self.owner)?;
            ops::set_source(tx, id, meta, sha)?;
            ops::set_session(
                tx,
                id,
                url_s.as_deref(),
                url.map(|_| meta.size),
                url.map(|_| meta.mtime_ns),
                url.map(|_| sha),
                offset,
                now_ms(),
            )
        });
        if let (Err(Error::NotFound), Some(u)) = (&written, &url_s) {
            // Removed while its upload was being created: terminate it next run.
            g.db.write(|tx| ops::queue_termination(tx, self.region, u))?;
        }
        written
    }

    fn offset(&mut self, id: i64, offset: u64) -> Result<()> {
        let mut g = self.agent.lock();
        g.db.write(|tx| {
            ops::check_lease(tx, self.owner)?;
            ops::set_offset(tx, id, offset, now_ms())
        })
    }
}

impl Agent {
    /// Uploads due items of the approved region until none is due, `max`
    /// elapsed, or [`Agent::cancel`] is called from another thread.
    /// `progress` runs on this thread; returning `false` cancels the run.
    ///
    /// Fails with `NoConfig`, `Expired` or `NoRegion` when uploads are off
    /// (fail closed), and with `Busy` while another runner holds the lease.
    pub fn run_once(
        &self,
        max: Duration,
        progress: &mut dyn FnMut(Progress) -> bool,
    ) -> Result<RunReport> {
        let deadline = Instant::now() + max;
        let owner = {
            let mut b = [0u8; 16];
            getrandom::fill(&mut b).map_err(|_| Error::Internal("OS RNG unavailable".into()))?;
            hex::encode(b)
        };
        let (region, held) = {
            let mut g = self.lock();
            let inner = &mut *g;
            if inner.trust.config.is_none() {
                return Err(Error::NoConfig);
            }
            let region = self.approved_locked(&inner.trust)?.ok_or(Error::NoRegion)?;
            let now = now_ms();
            let held = inner.db.write(|tx| {
                ops::acquire_lease(tx, &owner, now, self.options.lease_ttl)?;
                ops::reconcile_regions(tx, region.id(), now)
            })?;
            // Cleared only once this run owns the queue: a run that fails
            // with Busy must not swallow a cancel meant for the one running.
            self.cancel.store(false, Ordering::SeqCst);
            (region, held)
        };
        let result = self.run_leased(&region, &owner, held, deadline, progress);
        let mut g = self.lock();
        if let Err(e) = g.db.write(|tx| ops::release_lease(tx, &owner, now_ms())) {
            log::warn!("lease release failed ({}); it expires on its own", e.kind());
        }
        result
    }

    fn run_leased(
        &self,
        region: &ApprovedRegion,
        owner: &str,
        held: u64,
        deadline: Instant,
        progress: &mut dyn FnMut(Progress) -> bool,
    ) -> Result<RunReport> {
        let opts = &self.options.upload;
        let http = RegionHttp::new(region, opts)?;
        let mut caps: std::collections::HashMap<String, (GuardedUrl, Capabilities)> =
            Default::default();
        let mut report = RunReport {
            region: region.id().to_string(),
            uploaded: 0,
            bytes: 0,
            failed: 0,
            dead: 0,
            held,
            remaining: 0,
            stopped: StopReason::Drained,
        };
        let region_id = region.id().to_string();
        let config_version = region.config_version();
        // Same region id is not enough: a newer config may have changed the
        // region's hosts, pins or networks, and this run holds the old ones.
        let still_approved = move || {
            let g = self.lock();
            matches!(self.approved_locked(&g.trust),
                     Ok(Some(r)) if r.id() == region_id && r.config_version() == config_version)
        };
        let last_renew = Mutex::new(Instant::now());
        let ttl = self.options.lease_ttl;
        let keepalive = || -> Result<()> {
            let mut last = last_renew.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() > ttl / 4 {
                self.lock()
                    .db
                    .write(|tx| ops::acquire_lease(tx, owner, now_ms(), ttl))?;
                *last = Instant::now();
            }
            Ok(())
        };
        let stop = Stop {
            cancel: &self.cancel,
            deadline,
            still_approved: &still_approved,
            keepalive: &keepalive,
        };
        let mut attempted: Vec<i64> = Vec::new();
        self.process_terminations(&http, region)?;
        loop {
            if !still_approved() {
                report.stopped = StopReason::RegionChanged;
                break;
            }
            if self.cancel.load(Ordering::SeqCst) {
                report.stopped = StopReason::Cancelled;
                break;
            }
            if Instant::now() >= deadline {
                report.stopped = StopReason::TimeUp;
                break;
            }
            let item = {
                let mut g = self.lock();
                // One attempt per item per run: a failing item never hot-loops.
                let Some(item) =
                    ops::next_due_excluding(g.db.conn(), region.id(), now_ms(), &attempted)?
                else {
                    break;
                };
                attempted.push(item.id);
                g.db.write(|tx| {
                    ops::acquire_lease(tx, owner, now_ms(), self.options.lease_ttl)?;
                    ops::claim(tx, item.id, now_ms())
                })?;
                item
            };
            let attempt = (|| -> TusResult<crate::upload::Finished> {
                if !caps.contains_key(&item.service) {
                    let endpoint = region.endpoint(&item.service)?;
                    let c = http.tus_options(&endpoint)?;
                    if !c.creation {
                        return Err(
                            Error::Protocol("server does not offer tus creation".into()).into()
                        );
                    }
                    caps.insert(item.service.clone(), (endpoint, c));
                }
                let (endpoint, c) = caps.get(&item.service).expect("inserted above");
                let mut ledger = QueueLedger {
                    agent: self,
                    owner,
                    region: region.id(),
                };
                crate::upload::upload_item(
                    &http,
                    c,
                    endpoint,
                    &item,
                    opts,
                    &mut ledger,
                    &stop,
                    progress,
                )
            })();
            let mut g = self.lock();
            match attempt {
                Ok(done) => {
                    let rec = AuditRecord {
                        id: 0,
                        item_id: item.id,
                        service: item.service.clone(),
                        region: region.id().to_string(),
                        host: done.host,
                        peer_ip: done.peer_ip.map(|ip| ip.to_string()),
                        bytes: done.bytes,
                        sha256: hex::encode(done.sha256),
                        finished_at: now_ms(),
                    };
                    // Written only while this run still owns the queue; Busy ends the run.
                    g.db.write(|tx| {
                        ops::check_lease(tx, owner)?;
                        ops::complete(tx, &rec, done.meta)
                    })?;
                    log::info!("item {} uploaded ({} bytes)", item.id, done.bytes);
                    report.uploaded += 1;
                    report.bytes += done.bytes;
                }
                Err(Failure {
                    error: Error::RegionChanged,
                    ..
                }) => {
                    // Not the item's fault: it waits (it will be held) and keeps its session.
                    g.db.write(|tx| ops::unclaim(tx, item.id, now_ms()))?;
                    report.stopped = StopReason::RegionChanged;
                    break;
                }
                Err(Failure {
                    error: Error::Busy, ..
                }) => {
                    // Another runner took the queue over (our lease lapsed): its
                    // items are not ours to write any more.
                    return Err(Error::Busy);
                }
                Err(Failure {
                    error: Error::NotFound,
                    ..
                }) => {
                    // The app removed the item during its upload; any new
                    // session was queued for termination.
                    continue;
                }
                Err(Failure {
                    error: Error::Cancelled,
                    ..
                }) => {
                    g.db.write(|tx| ops::unclaim(tx, item.id, now_ms()))?;
                    report.stopped = if self.cancel.load(Ordering::SeqCst) {
                        StopReason::Cancelled
                    } else {
                        StopReason::TimeUp
                    };
                    break;
                }
                Err(Failure { error, retry_after }) => {
                    let permanent = matches!(
                        error.kind(),
                        ErrorKind::Rejected | ErrorKind::InvalidArgument
                    ) || matches!(error, Error::SourceIo(k) if k == std::io::ErrorKind::NotFound);
                    let (kind, msg) = (error.kind().name(), error.to_string());
                    let reason = if msg.starts_with(kind) {
                        msg
                    } else {
                        format!("{kind}: {msg}")
                    };
                    let st = g.db.write(|tx| {
                        ops::check_lease(tx, owner)?;
                        ops::fail(
                            tx,
                            item.id,
                            &reason,
                            permanent,
                            retry_after,
                            &self.options.retry,
                            now_ms(),
                        )
                    });
                    let st = match st {
                        Err(Error::NotFound) => continue, // removed meanwhile
                        other => other?,
                    };
                    log::warn!("item {} failed ({}), now {}", item.id, error.kind(), st);
                    report.failed += 1;
                    if st == State::Dead {
                        report.dead += 1;
                    }
                }
            }
        }
        let s = ops::stats(self.lock().db.conn())?;
        report.remaining = s.pending + s.failed + s.uploading;
        Ok(report)
    }

    /// Sends queued `DELETE`s for removed items of the approved region, when the server offers termination.
    fn process_terminations(&self, http: &RegionHttp, region: &ApprovedRegion) -> Result<()> {
        let pending = ops::terminations(self.lock().db.conn(), region.id())?;
        for (id, url) in pending {
            // Guarded again: the URL was read back from disk.
            if let Ok(u) = region.guard(&url) {
                if let Err(f) = http.tus_delete(&u) {
                    if f.error.kind() == ErrorKind::Network {
                        continue; // try again next run
                    }
                }
            }
            self.lock().db.write(|tx| ops::drop_termination(tx, id))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sign::{root_payload, sign_envelope, SigningKey};

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed([n; 32]).unwrap()
    }

    fn root(version: u64, signers: &[&SigningKey]) -> Vec<u8> {
        let (r, c) = (key(1), key(2));
        sign_envelope(
            ROOT_PAYLOAD_TYPE,
            &root_payload(version, "2100-01-01T00:00:00Z", &[&r], 1, &[&c], 1),
            signers,
        )
    }

    fn config(version: u64, issued: &str, expires: &str) -> Vec<u8> {
        let p = serde_json::json!({
            "version": version, "issued_at": issued, "expires_at": expires,
            "countries": {"IN": "in", "*": "sg"},
            "regions": {
                "in": {"services": {"backup": {"url": "https://b.in.test/files/", "protocol": "tus"}}, "allowed_hosts": ["b.in.test"]},
                "sg": {"services": {"backup": {"url": "https://b.sg.test/files/", "protocol": "tus"}}, "allowed_hosts": ["b.sg.test"]}
            }
        });
        sign_envelope(
            CONFIG_PAYLOAD_TYPE,
            &serde_json::to_vec(&p).unwrap(),
            &[&key(2)],
        )
    }

    fn agent_at(now: u64) -> Agent {
        let opts = AgentOptions {
            clock: Arc::new(move || now),
            ..Default::default()
        };
        Agent::open_in_memory(&root(1, &[&key(1)]), opts).unwrap()
    }

    const NOW: u64 = 1_795_000_000; // 2026-11

    #[test]
    fn select_region_with_default_and_none() {
        let a = agent_at(NOW);
        assert!(a.approved_region().unwrap().is_none(), "no config yet");
        a.install(&config(1, "2026-11-01T00:00:00Z", "2027-11-01T00:00:00Z"))
            .unwrap();
        assert!(a.approved_region().unwrap().is_none(), "no country yet");
        a.set_account_country("in").unwrap();
        assert_eq!(a.approved_region().unwrap().unwrap().id(), "in");
        a.set_account_country("FR").unwrap();
        assert_eq!(
            a.approved_region().unwrap().unwrap().id(),
            "sg",
            "default region"
        );
        assert_eq!(
            a.set_account_country("FRA").unwrap_err().kind(),
            crate::ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn clock_floor_blocks_a_clock_set_back() {
        let a = agent_at(NOW);
        a.install(&config(1, "2026-11-01T00:00:00Z", "2027-11-01T00:00:00Z"))
            .unwrap();
        // A later config issued in 2028 raises the floor past config 1's expiry...
        a.install(&config(2, "2028-01-01T00:00:00Z", "2028-06-01T00:00:00Z"))
            .unwrap();
        // ...so replaying an older-dated but higher version fails as expired even though the wall clock says 2026.
        let e = a
            .install(&config(3, "2026-11-02T00:00:00Z", "2027-11-01T00:00:00Z"))
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Expired);
        assert_eq!(a.config_info().config_version, Some(2));
    }

    #[test]
    fn a_device_behind_steps_through_an_expired_intermediate_root() {
        let a = agent_at(NOW);
        a.install(&config(1, "2026-11-01T00:00:00Z", "2027-11-01T00:00:00Z"))
            .unwrap();
        a.set_account_country("IN").unwrap();
        let (r, c) = (key(1), key(2));
        let v2 = sign_envelope(
            ROOT_PAYLOAD_TYPE,
            &root_payload(2, "2020-01-01T00:00:00Z", &[&r], 1, &[&c], 1),
            &[&r],
        );
        let v3 = sign_envelope(
            ROOT_PAYLOAD_TYPE,
            &root_payload(3, "2100-01-01T00:00:00Z", &[&r], 1, &[&c], 1),
            &[&r],
        );
        assert_eq!(a.install(&v2).unwrap(), Installed::Root { version: 2 });
        // An expired root in force stops uploads (fail closed)...
        assert_eq!(
            a.approved_region().unwrap_err().kind(),
            crate::ErrorKind::Expired
        );
        // ...until the next step arrives.
        assert_eq!(a.install(&v3).unwrap(), Installed::Root { version: 3 });
        assert_eq!(a.approved_region().unwrap().unwrap().id(), "in");
    }

    #[test]
    fn wrong_type_is_refused() {
        let a = agent_at(NOW);
        let env = sign_envelope("application/json", b"{}", &[&key(2)]);
        assert_eq!(
            a.install(&env).unwrap_err().kind(),
            crate::ErrorKind::WrongPayloadType
        );
    }
}
