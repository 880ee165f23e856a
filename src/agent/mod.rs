//! [`Agent`]: the one object the app talks to. It wires the trust store,
//! region selection, the queue and the uploader, and is safe to share
//! between threads (the UI thread reads stats while a worker runs).
//!
//! Several handles, in one process or many, may share one database file:
//! the trust state lives in the file, not in a handle (`agent::trust`, private), and one
//! runner at a time holds the queue: its runner lock and lease (`agent::hold`).

mod account;
mod anchor;
mod events;
mod hold;
mod install;
mod ledger;
mod refresh;
mod retention;
mod rules;
mod run;
mod run_waits;
mod runner_lock;
mod trust;

pub use account::AccountState;
pub use events::{EventKind, RunEvent};
pub use refresh::{Refreshed, MAX_ROOT_STEPS, REFRESH_DEADLINE};
pub use retention::PRUNE_BATCHES_PER_CALL;
pub use run::{RunReport, StopReason, LEASE_TTL};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::config::model::unix_secs;
use crate::config::store;
use crate::config::TrustedRoot;
use crate::error::{Error, Result};
use crate::queue::ops::{self, now_ms};
use crate::queue::{AuditRecord, BackupRule, Db, ItemInfo, QueueStats, RetryPolicy, State};
use trust::Trust;

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
    pub upload: crate::net::UploadOptions,
    /// How long the runner lease lasts without renewal. A runner that is
    /// alive but frozen or stuck is superseded after this; a killed one is
    /// taken over at once (its runner lock died with it).
    pub lease_ttl: Duration,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            clock: Arc::new(|| unix_secs(SystemTime::now())),
            retry: RetryPolicy::default(),
            upload: crate::net::UploadOptions::default(),
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
    /// When the config expires, ms since the epoch.
    pub expires_at_ms: Option<i64>,
    /// Whether it is expired against the freeze-safe clock.
    pub expired: bool,
    /// Region ids it defines.
    pub regions: Vec<String>,
    /// Account country, if set.
    pub country: Option<String>,
    /// Approved region id, if any.
    pub approved_region: Option<String>,
    /// When the next [`Agent::refresh_config`] is due (ms since the epoch), when the
    /// root lists `sources` (see `refresh_due_at`: at once without a valid
    /// config; else the earlier of a day after the last answer and the
    /// middle of the config's validity, at least an hour after the last answer).
    pub refresh_due_at_ms: Option<i64>,
    /// Whether the trust is vouched for by the firmware root this handle was
    /// opened with. `false`: opened without one (reads only), or the stored
    /// root is newer and its chain not verified yet (a refresh re-walks it);
    /// nothing uploads and `approved_region` is `None` meanwhile.
    pub anchored: bool,
    /// Why the firmware root last replaced the trust the file held (a
    /// tampered, planted or restored database), until a config is accepted
    /// again. Safe to show: a fixed sentence, no contents.
    pub trust_reset: Option<String>,
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    /// This handle's cache of the trust row (see [`trust`]).
    pub(crate) trust: Trust,
    /// `PRAGMA data_version` when the cache was last checked.
    pub(crate) data_version: i64,
}

/// The on-device sync agent. `Send + Sync`: share it in an `Arc`. Any
/// number of handles and processes may open the same file.
pub struct Agent {
    pub(crate) inner: Mutex<Inner>,
    /// Shared with the sockets of a run, which give up within ~0.2 s of it.
    pub(crate) cancel: Arc<AtomicBool>,
    /// Set once the FFI handle was closed while calls still hold the agent:
    /// every run from then on is cancelled, also one that had taken the
    /// handle but not yet cleared its stale cancel (see `begin_run`).
    pub(crate) closing: AtomicBool,
    pub(crate) options: AgentOptions,
    /// The firmware root this handle was opened with: the anchor of every
    /// trust decision (`None`: reads only).
    pub(crate) anchor: Option<TrustedRoot>,
    /// The app's credential provider (this handle's, in memory only).
    pub(crate) credentials: Mutex<Option<Arc<dyn crate::auth::CredentialProvider>>>,
    /// `<database>.lock`, the runner lock (`None` in memory: lease only).
    pub(crate) lock_path: Option<PathBuf>,
    /// Set while a run of this handle is going (the per-handle guard).
    pub(crate) running: AtomicBool,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").finish_non_exhaustive()
    }
}

impl Agent {
    /// Opens (or creates) the database at `path` with `initial_root`, the root
    /// envelope shipped with the firmware: the anchor of every trust
    /// decision. It must be a valid self-signed root even when the database
    /// exists (`malformed`, `bad_signature`, ...). A firmware root newer than
    /// the stored one is put in force at any gap; an older one keeps the
    /// stored root only if the stored chain verifies from it; a stored trust
    /// that cannot have come from it is replaced by it (`ConfigInfo::trust_reset`).
    pub fn open(path: impl AsRef<Path>, initial_root: &[u8]) -> Result<Agent> {
        Self::open_with(path, Some(initial_root), AgentOptions::default())
    }

    /// Opens a database that was initialised before, without a firmware root:
    /// reads work; uploads, installs and account changes fail with
    /// `root_mismatch` (the CLI without `--root`).
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
        // Absolute: a later change of the working directory must not split
        // the lock of one database in two.
        let lock_path =
            runner_lock::lock_path(path.as_ref()).map(|p| std::path::absolute(&p).unwrap_or(p));
        Self::from_db(db, initial_root, options, lock_path)
    }

    /// An agent on an in-memory database (tests and dry runs).
    pub fn open_in_memory(initial_root: &[u8], options: AgentOptions) -> Result<Agent> {
        Self::from_db(Db::open_in_memory()?, Some(initial_root), options, None)
    }

    fn from_db(
        mut db: Db,
        initial_root: Option<&[u8]>,
        options: AgentOptions,
        lock_path: Option<PathBuf>,
    ) -> Result<Agent> {
        if options.upload.chunk_size == 0 {
            // A zero-byte PATCH makes no progress: the run would spin to its deadline.
            return Err(Error::InvalidArgument("chunk_size must be at least 1 byte"));
        }
        // Checked before any trust decision: junk is junk, new file or not.
        let firmware = initial_root.map(TrustedRoot::reload).transpose()?;
        let wall = (options.clock)();
        // Read before the open's own transactions: a trust write another
        // connection commits in between must show up as a change.
        let data_version = store::data_version(db.conn())?;
        // Read first, without the write lock: opening waits for no writer
        // unless the anchor changes what is stored (or there is no trust row).
        let read = db.read(|c| trust::read_trust(c, firmware.as_ref()))?;
        let trust = match read {
            Some((t, false)) => t,
            Some((t, true)) if db.read_only() => {
                // Held in memory, as a refresh holds it: nothing uploads
                // from a read-only file anyway.
                log::warn!(
                    "the anchored trust differs from the file's; held in memory (read-only)"
                );
                t
            }
            // Decided again under the write lock: another process may have
            // written it meanwhile.
            _ => db.write(|tx| trust::open_trust(tx, firmware.as_ref(), wall))?,
        };
        Ok(Agent {
            inner: Mutex::new(Inner {
                db,
                trust,
                data_version,
            }),
            cancel: Arc::new(AtomicBool::new(false)),
            closing: AtomicBool::new(false),
            options,
            anchor: firmware,
            credentials: Mutex::new(None),
            lock_path,
            running: AtomicBool::new(false),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock (caught at the FFI edge) must not
        // brick the agent: the DB is transactional, so the state is consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enqueues one file for `service`; durable when it returns. Paths must
    /// be absolute. Works without an approved region (the item is stamped at
    /// the first run that has one). The item belongs to the signed-in
    /// account; after a sign-out it fails with `no_account`, storing nothing.
    /// A symbolic link at the path is refused (`invalid_argument`), never
    /// followed, and so is anything but a regular file. A new item takes the
    /// queue's default rule ([`Agent::default_rule`]); a file already queued
    /// keeps its rule.
    pub fn enqueue(&self, path: impl AsRef<Path>, service: &str, priority: i32) -> Result<i64> {
        self.enqueue_with_rule(path, service, priority, None)
    }

    /// Enqueues many files in one transaction: all or none.
    pub fn enqueue_all<P: AsRef<Path>>(
        &self,
        paths: &[P],
        service: &str,
        priority: i32,
    ) -> Result<Vec<i64>> {
        self.enqueue_all_with_rule(paths, service, priority, None)
    }

    /// [`Agent::enqueue`] with the item's backup rule: `Some` sets it (also
    /// on a file already queued), `None` is [`Agent::enqueue`] (a new item
    /// takes the queue's default, a queued one keeps its rule).
    pub fn enqueue_with_rule(
        &self,
        path: impl AsRef<Path>,
        service: &str,
        priority: i32,
        rule: Option<BackupRule>,
    ) -> Result<i64> {
        Ok(self.enqueue_all_with_rule(&[path], service, priority, rule)?[0])
    }

    /// [`Agent::enqueue_all`] with one backup rule for every file, as
    /// [`Agent::enqueue_with_rule`].
    pub fn enqueue_all_with_rule<P: AsRef<Path>>(
        &self,
        paths: &[P],
        service: &str,
        priority: i32,
        rule: Option<BackupRule>,
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
            // The first creation request's idempotency key goes into the
            // enqueue's durable commit, bound to the version seen now: the
            // upload needs no commit of its own before its `POST`.
            let key = crate::upload::new_key()?;
            items.push((s.to_string(), ops::print_source(p)?, key));
        }
        let mut g = self.lock();
        // Stamped under the trust stored now, in the same transaction: an
        // item can never carry a region another handle just moved away from.
        self.update_trust(&mut g, |t, tx, now| {
            let region = t.approved(now).ok().flatten();
            let account = t.account_view();
            if account == account::AccountView::SignedOut {
                return Err(Error::NoAccount);
            }
            // Refused now rather than `dead` at run time. Without a config
            // nothing is known yet: accepted, as before.
            if let Some(cfg) = &t.config {
                let offered = match &region {
                    Some(r) => r.region().services().contains_key(service),
                    None => cfg
                        .regions()
                        .values()
                        .any(|r| r.services().contains_key(service)),
                };
                if !offered {
                    return Err(Error::InvalidArgument(
                        "service not offered by the installed config",
                    ));
                }
            }
            let at = now_ms();
            let ids = items
                .iter()
                .map(|(path, print, key)| {
                    let item = ops::NewItem {
                        path,
                        service,
                        priority,
                        meta: print.meta,
                        region: region.as_ref().map(|r| r.id()),
                        account: account.stamp().map(|s| &s[..]),
                        rule,
                    };
                    let id = ops::enqueue_with_rule(tx, &item, at)?;
                    ops::preset_key(tx, id, key, print)?;
                    Ok(id)
                })
                .collect::<Result<Vec<i64>>>()?;
            Ok((ids, false))
        })
    }

    /// Counts per state and bytes left, from counters kept with the rows:
    /// the same cost for any size of queue and audit trail.
    pub fn stats(&self) -> Result<QueueStats> {
        // One read transaction: the state and rule counters of one snapshot,
        // even while another process commits.
        self.lock().db.read(ops::stats)
    }

    /// One queued item (`NotFound` once it left the queue: see the audit).
    pub fn item(&self, id: i64) -> Result<ItemInfo> {
        ops::item(self.lock().db.conn(), id)
    }

    /// One page of queued items by id: those with an id above `after_id`
    /// (0 for the first page), optionally of one state, at most `limit`. To
    /// page, pass the last id of a page until a page comes back shorter than
    /// `limit`. Paged by key, so every page costs the same however deep it
    /// is; a negative `after_id` is `invalid_argument`. Finished items are in
    /// [`Agent::audit`] (`State::Done` lists nothing).
    pub fn list(&self, state: Option<State>, after_id: i64, limit: u32) -> Result<Vec<ItemInfo>> {
        ops::list(self.lock().db.conn(), state, after_id, limit)
    }

    /// One page of the audit trail (finished uploads): rows with an id above
    /// `after_id` (0 for the first page), oldest first, at most `limit`;
    /// page as with [`Agent::list`].
    pub fn audit(&self, after_id: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        ops::audit(self.lock().db.conn(), after_id, limit)
    }

    /// Restamps held items to the approved region. Call only with the user's consent.
    pub fn rehome(&self) -> Result<u64> {
        let mut g = self.lock();
        self.update_trust(&mut g, |t, tx, now| {
            let region = t.approved(now)?.ok_or(Error::NoRegion)?;
            Ok((ops::rehome(tx, region.id(), now_ms())?, false))
        })
    }

    /// [`Agent::rehome`] bound to the user's consent: restamps held items only
    /// if `expected_region` is still the approved region when it runs (in the
    /// same transaction), and fails with `RegionChanged` (kind `residency`)
    /// otherwise, changing nothing. Use it when the question was "move these
    /// backups to `expected_region`?": another handle or process may have
    /// moved the account since it was asked.
    pub fn rehome_to(&self, expected_region: &str) -> Result<u64> {
        let mut g = self.lock();
        self.update_trust(&mut g, |t, tx, now| {
            let region = t.approved(now)?.ok_or(Error::NoRegion)?;
            if region.id() != expected_region {
                return Err(Error::RegionChanged);
            }
            Ok((ops::rehome(tx, region.id(), now_ms())?, false))
        })
    }

    /// Deletes held items (nothing is sent anywhere).
    pub fn discard_held(&self) -> Result<u64> {
        self.lock().db.write(ops::discard_held)
    }

    /// Removes one item (its server-side upload is terminated at the next run, if possible).
    pub fn remove(&self, id: i64) -> Result<()> {
        self.lock().db.write(|tx| ops::remove(tx, id))
    }

    /// Revives dead items; those stamped for a region that is no longer
    /// approved come back `held`, not `pending`.
    pub fn retry_dead(&self) -> Result<u64> {
        let mut g = self.lock();
        self.update_trust(&mut g, |t, tx, now| {
            let n = ops::retry_dead(tx, now_ms())?;
            t.reconcile_items(tx, now)?;
            Ok((n, false))
        })
    }

    /// Asks a running [`Agent::run_once`] (on another thread) to stop soon.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Cancels the run in progress and every later one: the FFI handle was
    /// closed while calls still hold this agent (`ffi::free_handle`).
    pub(crate) fn cancel_for_good(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sign::{root_payload, sign_envelope, SigningKey};
    use crate::config::{CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};

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
        assert_eq!(a.config_info().unwrap().config_version, Some(2));
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
