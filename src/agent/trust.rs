//! Trust belongs to the database: the root, the config, the account country,
//! the clock floor and the version floors are read from the trust row for
//! every decision that lets bytes go out, and written back only by
//! compare-and-swap.
//!
//! Each handle caches one verified snapshot ([`Trust`]) tagged with the
//! generation of the row it came from. [`Agent::refresh`](super::Agent::refresh) keeps the cache
//! honest in two cheap steps: `PRAGMA data_version` (changes only when
//! another connection, in any process, commits to the file; no table read),
//! and only then the row's `generation` (one indexed read). Signatures are
//! re-verified only when the generation moved. The per-buffer check of a run
//! therefore costs one pragma while nobody else writes (BENCHMARKS.md).
//!
//! Every trust write is a read-modify-write inside one IMMEDIATE transaction
//! ([`Agent::update_trust`](super::Agent::update_trust)): the closure sees the stored state, never the
//! handle's memory, so a stale handle re-validates against the newest root,
//! config and country and cannot roll any of them back.

use rusqlite::Transaction;

mod handle;
mod open;
pub(crate) use open::{open_trust, read_trust};

use super::account::{stamp, AccountView};
use super::anchor::{ChainOps, ResetReason, Standing};
use crate::config::store::StoredTrust;
use crate::config::{TrustedRoot, VerifiedConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::queue::ops::{self, now_ms};
use crate::region::{self, ApprovedRegion};

/// One verified generation of the trust row.
#[derive(Clone)]
pub(crate) struct Trust {
    pub(crate) root: TrustedRoot,
    pub(crate) config: Option<VerifiedConfig>,
    /// Newest `issued_at` seen: the clock never runs behind it.
    pub(crate) clock_floor: u64,
    pub(crate) country: Option<String>,
    /// Highest config version ever accepted and the SHA-256 of its payload.
    pub(crate) config_floor: u64,
    pub(crate) config_floor_sha256: Option<[u8; 32]>,
    /// Configs / roots of these versions or older were seen expired: sticky.
    pub(crate) expired_config: u64,
    pub(crate) expired_root: u64,
    /// Generation of the row this snapshot was read from (0: not yet stored).
    pub(crate) generation: i64,
    /// The signed-in account (see [`super::account`]).
    pub(crate) account: Option<String>,
    /// Key of the account stamps; `Some` once accounts are in use.
    pub(crate) account_key: Option<[u8; 32]>,
    /// How this trust stands against the firmware root (`super::anchor`):
    /// only `Anchored` trust approves a region or takes a new document.
    pub(crate) standing: Standing,
    /// The lowest root version from which the stored chain is complete.
    pub(crate) chain_from: u64,
    /// Why the firmware root last replaced the stored trust, until a config
    /// is accepted again.
    pub(crate) trust_reset: Option<ResetReason>,
    /// Changes to the stored chain, written with the row.
    pub(crate) chain_ops: ChainOps,
}

impl Trust {
    fn new(root: TrustedRoot) -> Trust {
        Trust {
            root,
            config: None,
            clock_floor: 0,
            country: None,
            config_floor: 0,
            config_floor_sha256: None,
            expired_config: 0,
            expired_root: 0,
            generation: 0,
            account: None,
            account_key: None,
            standing: Standing::Anchored,
            chain_from: 0,
            trust_reset: None,
            chain_ops: ChainOps::default(),
        }
    }

    /// What can be kept of a stored row whose root or account key is
    /// damaged, under the firmware root `fw` (the caller re-anchors it).
    pub(crate) fn salvage(s: &StoredTrust, fw: &TrustedRoot) -> Trust {
        let mut t = Trust::new(fw.clone());
        t.generation = s.generation;
        t.country = s.country.clone();
        t.account_key = s.account_key.as_deref().and_then(|k| k.try_into().ok());
        t.account = s.account.clone().filter(|_| t.account_key.is_some());
        t
    }

    /// Re-verifies a stored row. A stored config that no longer verifies
    /// (tampered file) is dropped, fail closed; its version floor stays.
    /// The result is not anchored yet (`Standing::NoAnchor`): see
    /// [`Trust::load_anchored`].
    pub(crate) fn from_stored(s: &StoredTrust) -> Result<Trust> {
        let root = TrustedRoot::reload(&s.root)?;
        let config = s
            .config
            .as_deref()
            .and_then(|c| VerifiedConfig::verify(&root, c).ok());
        let mut t = Trust {
            root,
            config: None,
            // No signed time lies past what RFC 3339 can write.
            clock_floor: s.clock_floor.min(crate::config::model::MAX_TIME),
            country: s.country.clone(),
            config_floor: s.config_version_floor,
            config_floor_sha256: s
                .config_floor_sha256
                .as_deref()
                .and_then(|d| d.try_into().ok()),
            expired_config: s.expired_config_version,
            expired_root: s.expired_root_version,
            generation: s.generation,
            account: s.account.clone(),
            account_key: match s.account_key.as_deref() {
                None => None,
                Some(k) => Some(k.try_into().map_err(|_| Error::Storage {
                    kind: ErrorKind::StorageCorrupt,
                    reason: "the account key is damaged".into(),
                })?),
            },
            standing: Standing::NoAnchor,
            chain_from: 0,
            trust_reset: s.trust_reset.as_deref().and_then(ResetReason::from_code),
            chain_ops: ChainOps::default(),
        };
        // A file from before schema v11 has no chain: it starts at the root in force.
        t.chain_from = u64::try_from(s.chain_from).unwrap_or(t.root.version());
        if let Some(c) = config {
            if !t.has_floor() || c.version() > t.config_floor {
                // A row written before schema v3 has no floor yet: the config is it.
                t.config_floor = c.version();
                t.config_floor_sha256 = Some(c.payload_sha256());
                t.config = Some(c);
            } else if t.floor_admits(&c) {
                t.config = Some(c);
            } else {
                // Below the floor (a row rewritten by a process that predates
                // the floor): never in force, fail closed.
                log::warn!("stored config is below the version floor; ignored");
            }
        }
        Ok(t)
    }

    fn has_floor(&self) -> bool {
        self.config_floor > 0 || self.config_floor_sha256.is_some()
    }

    /// Whether `cfg` may be in force under the floor: a newer version, or
    /// the floor's version with the very payload accepted then (a floor
    /// without its hash admits no equal version).
    fn floor_admits(&self, cfg: &VerifiedConfig) -> bool {
        !self.has_floor()
            || cfg.version() > self.config_floor
            || (cfg.version() == self.config_floor
                && self.config_floor_sha256 == Some(cfg.payload_sha256()))
    }

    pub(crate) fn stored(&self) -> StoredTrust {
        StoredTrust {
            root: self.root.envelope().to_vec(),
            config: self.config.as_ref().map(|c| c.envelope().to_vec()),
            clock_floor: self.clock_floor,
            country: self.country.clone(),
            config_version_floor: self.config_floor,
            config_floor_sha256: self.config_floor_sha256.map(|d| d.to_vec()),
            expired_config_version: self.expired_config,
            expired_root_version: self.expired_root,
            generation: self.generation,
            account: self.account.clone(),
            account_key: self.account_key.map(|k| k.to_vec()),
            chain_from: i64::try_from(self.chain_from).unwrap_or(i64::MAX),
            trust_reset: self.trust_reset.map(|r| r.code().to_string()),
        }
    }

    fn root_expired(&self, now: u64) -> bool {
        self.root.version() <= self.expired_root || self.root.expires_at() <= now
    }

    pub(crate) fn config_expired(&self, cfg: &VerifiedConfig, now: u64) -> bool {
        cfg.version() <= self.expired_config || cfg.expires_at() <= now
    }

    /// Whether `now` shows an expiry that is not recorded yet.
    fn newly_expired(&self, now: u64) -> bool {
        let cfg = self
            .config
            .as_ref()
            .is_some_and(|c| c.expires_at() <= now && c.version() > self.expired_config);
        cfg || (self.root.expires_at() <= self.clock_floor
            && self.root.version() > self.expired_root)
    }

    /// Records what `now` shows expired; `true` if anything changed.
    ///
    /// A config's expiry is recorded on any clock reading: a newer config
    /// (issued often) lifts it. A root's expiry is recorded only on signed
    /// time (the `issued_at` floor): only a root rotation (rare, offline
    /// keys) could lift it, so one wrong wall-clock reading must not stop
    /// every upload and install until then. Against the wall clock an
    /// expired root still fails closed, just not stickily.
    fn record_expiry(&mut self, now: u64) -> bool {
        let before = (self.expired_config, self.expired_root);
        if let Some(c) = self.config.as_ref().filter(|c| c.expires_at() <= now) {
            self.expired_config = self.expired_config.max(c.version());
        }
        if self.root.expires_at() <= self.clock_floor {
            self.expired_root = self.expired_root.max(self.root.version());
        }
        before != (self.expired_config, self.expired_root)
    }

    /// Whether the config and root in force are anchored and unexpired (a
    /// run's fast path).
    pub(crate) fn live(&self, now: u64) -> bool {
        self.standing == Standing::Anchored
            && self
                .config
                .as_ref()
                .is_some_and(|c| !self.config_expired(c, now))
            && !self.root_expired(now)
    }

    /// The approved region: `Ok(None)` with no config, no country or no
    /// matching region; `Err(Expired)` when the config or root expired.
    pub(crate) fn approved(&self, now: u64) -> Result<Option<ApprovedRegion>> {
        self.require_anchored()?;
        let Some(cfg) = &self.config else {
            return Ok(None);
        };
        if self.config_expired(cfg, now) {
            return Err(Error::Expired { what: "config" });
        }
        if self.root_expired(now) {
            return Err(Error::Expired { what: "root" });
        }
        Ok(self
            .country
            .as_deref()
            .and_then(|cc| region::select(cfg, cc)))
    }

    /// Takes `cfg` (verified under `self.root`) if it may replace what was
    /// ever accepted: `Ok(false)` for the very document in force.
    pub(crate) fn accept_config(&mut self, cfg: VerifiedConfig, now: u64) -> Result<bool> {
        if self.root_expired(now) {
            return Err(Error::Expired { what: "root" });
        }
        // Judged against the floor, not the config row: a rotation may have
        // dropped the row, never the highest version seen.
        if self.has_floor() && cfg.version() <= self.config_floor {
            if cfg.version() < self.config_floor {
                return Err(Error::Rollback {
                    what: "config",
                    offered: cfg.version(),
                    installed: self.config_floor,
                });
            }
            if self.config_floor_sha256 != Some(cfg.payload_sha256()) {
                return Err(Error::SameVersionDifferent {
                    what: "config",
                    version: cfg.version(),
                });
            }
            // The document in force: unchanged, unless it expired (the app
            // must learn that reinstalling it does not turn uploads back on).
            if self.config.as_ref().map(|c| c.version()) == Some(cfg.version()) {
                if self.config_expired(&cfg, now) {
                    return Err(Error::Expired { what: "config" });
                }
                return Ok(false);
            }
            // The same payload re-signed after a rotation dropped it: welcome back.
        }
        if self.config_expired(&cfg, now) {
            return Err(Error::Expired { what: "config" });
        }
        self.clock_floor = self.clock_floor.max(cfg.issued_at());
        self.config_floor = cfg.version();
        self.config_floor_sha256 = Some(cfg.payload_sha256());
        self.config = Some(cfg);
        Ok(true)
    }

    /// Puts `next` in force; the config stays only if `next` still vouches for it.
    pub(crate) fn rotate_root(&mut self, next: TrustedRoot) {
        self.chain_ops.record(&self.root, &next);
        self.root = next;
        let root = &self.root;
        self.config = self
            .config
            .take()
            .filter(|c| VerifiedConfig::verify(root, c.envelope()).is_ok());
    }

    /// Held at once: re-stamps the queue for the region this trust approves,
    /// in the transaction that changed the trust, so `stats()` shows the
    /// effect before any run. Expired or incomplete trust changes no stamp.
    pub(crate) fn reconcile_items(&self, tx: &Transaction<'_>, now: u64) -> Result<()> {
        if let AccountView::SignedIn { stamp, .. } = self.account_view() {
            ops::reconcile_accounts(tx, &stamp, now_ms())?;
        }
        match self.approved(now) {
            Ok(Some(r)) => {
                ops::reconcile_regions(tx, r.id(), now_ms())?;
            }
            Ok(None) if self.config.is_some() && self.country.is_some() => {
                ops::hold_all(tx, now_ms())?;
            }
            _ => {}
        }
        Ok(())
    }
}

impl Trust {
    /// Who may upload under this trust.
    pub(crate) fn account_view(&self) -> AccountView {
        match (&self.account_key, &self.account) {
            (None, _) => AccountView::Unset,
            (Some(_), None) => AccountView::SignedOut,
            (Some(key), Some(id)) => AccountView::SignedIn {
                id: id.clone(),
                stamp: stamp(key, id),
            },
        }
    }

    /// `Unanchored` unless uploads and trust changes are allowed.
    pub(crate) fn require_anchored(&self) -> Result<()> {
        match self.standing {
            Standing::Anchored => Ok(()),
            Standing::Unverified => Err(Error::Unanchored(
                "the stored root is newer than the firmware root and not yet verified: \
                 refresh the config",
            )),
            Standing::NoAnchor => Err(no_anchor()),
        }
    }

    /// `Unanchored` when the handle has no firmware root at all.
    pub(crate) fn require_anchor(&self) -> Result<()> {
        match self.standing {
            Standing::NoAnchor => Err(no_anchor()),
            _ => Ok(()),
        }
    }
}

fn no_anchor() -> Error {
    Error::Unanchored("opened without the firmware root: reads only")
}

const HOUR: u64 = 3_600;
const DAY: u64 = 24 * HOUR;

/// When the next refresh is due (seconds), or `None` without `sources`.
///
/// At once while the stored root is unverified, when no config is in force or it expired, or when no mirror
/// ever answered. Otherwise at the earlier of a day after the last answer
/// and the middle of the config's validity (so a config is replaced well
/// before it expires), but never sooner than an hour after the last answer
/// (a mirror without anything newer is not asked on every run).
pub(crate) fn refresh_due_at(t: &Trust, last_check: u64, now: u64) -> Option<u64> {
    // Unverified: the firmware root's mirrors must re-walk the chain first.
    if t.standing == Standing::Unverified {
        return Some(now);
    }
    t.root.sources()?;
    let Some(cfg) = t.config.as_ref().filter(|c| !t.config_expired(c, now)) else {
        return Some(now);
    };
    if last_check == 0 {
        return Some(now);
    }
    let midpoint = cfg.issued_at() + cfg.expires_at().saturating_sub(cfg.issued_at()) / 2;
    let after = |d: u64| last_check.saturating_add(d);
    Some(after(DAY).min(midpoint).max(after(HOUR)))
}
