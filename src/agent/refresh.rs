//! The agent fetches its own trust: [`Agent::refresh_config`] walks the root
//! chain on the root's mirrors (`root/<N+1>.json` until a 404, at most
//! [`MAX_ROOT_STEPS`] per call) and installs the verified roots in one trust
//! transaction (each root a complete step, as TUF's root update: a phone far
//! behind makes progress with every call), then fetches `config.json`
//! (conditionally) and installs it all or nothing, through the same checks as
//! `install`. A mirror that fails before any root was installed hands over
//! to the next and changes nothing on disk. When roots were installed but
//! the config failed (or more roots remain), the report says how far the
//! roots got and why the config failed, and the next refresh is due at once.
//!
//! While the stored root is newer than the firmware root and its chain is not
//! verified (`anchor::Standing::Unverified`), the walk starts from the
//! firmware root (or as far as the stored chain verifies from it) on its own
//! mirrors, and the config waits until the chain reaches the stored root. A
//! mirror whose chain ends (404) below the stored root proves nothing (it may
//! lag, or someone in front of it may withhold a root): the trust stays
//! unverified and the next mirror is asked. Only a root that verifies from
//! the firmware root at the stored root's version with other bytes resets it.
//!
//! Layout under a mirror's base URL (static files; any CDN can serve them):
//! `root/2.json`, `root/3.json`, ... (root envelopes by version) and
//! `config.json` (the config envelope in force).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::anchor::{chain_tip, Standing};
use super::trust::Trust;
use super::Agent;
use crate::config::store::{self, SourceEntry};
use crate::config::{TrustedRoot, VerifiedConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::net::fetch::{Fetched, SourceHttp, Validators};
use crate::net::http::IoControl;
use crate::region::{GuardedUrl, Sources};

/// Root versions one refresh steps through at most (a phone years behind
/// catches up over several calls).
pub const MAX_ROOT_STEPS: usize = 64;

/// A refresh's hard deadline, all mirrors included.
pub const REFRESH_DEADLINE: Duration = Duration::from_secs(30);

/// What a refresh changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refreshed {
    /// Root versions installed, in order (empty: none).
    pub roots: Vec<u64>,
    /// The config version installed, if a new one was.
    pub config: Option<u64>,
    /// `host:port` of the mirror that answered.
    pub mirror: String,
    /// The root version in force after the refresh.
    pub root_version: u64,
    /// Why the config was not installed although roots were (the error
    /// kind, e.g. [`ErrorKind::ThresholdNotMet`] while more roots remain;
    /// serialized as its name): the next refresh is due at once.
    pub config_error: Option<ErrorKind>,
    /// Whether the walk stopped at [`MAX_ROOT_STEPS`] with more roots to come.
    pub more_roots: bool,
}

impl Refreshed {
    /// Whether nothing changed.
    pub fn unchanged(&self) -> bool {
        self.roots.is_empty() && self.config.is_none()
    }

    /// Whether the refresh got everything the mirror had (no config error,
    /// no roots left).
    pub fn complete(&self) -> bool {
        self.config_error.is_none() && !self.more_roots
    }
}

/// A root fetched from a mirror, not yet installed.
struct Step {
    version: u64,
    envelope: Vec<u8>,
}

impl Agent {
    /// Fetches the next roots and the current config from the mirrors the
    /// root in force lists (`sources`), and installs them through the same
    /// verification as [`Agent::install`] (thresholds, one version at a
    /// time, rollback, sticky expiry, version floor). Verified roots are
    /// kept even when the config then fails (the report's `config_error`,
    /// `more_roots`); a mirror that fails before any root was installed
    /// changes nothing on disk and hands over to the next. If all fail, the
    /// first one's error is returned. Takes at most [`REFRESH_DEADLINE`].
    /// Fails with `invalid_argument` when the root lists no sources, and
    /// with `root_mismatch` on a handle opened without a firmware root.
    pub fn refresh_config(&self) -> Result<Refreshed> {
        let deadline = Instant::now() + REFRESH_DEADLINE;
        // Its own cancel flag: a stale `cancel()` meant for a run must not
        // cut it, and it is bounded by its deadline.
        self.refresh_with(IoControl::new(Arc::new(AtomicBool::new(false)), deadline))
    }

    /// The refresh `run_once` makes first when one is due; a failure is
    /// logged and the run goes on under the config in force.
    pub(crate) fn refresh_if_due(&self, run_deadline: Instant) {
        let due = match self.refresh_due() {
            Ok(due) => due,
            Err(e) => {
                log::warn!(
                    "could not tell whether a config refresh is due ({})",
                    e.kind()
                );
                return;
            }
        };
        if !due {
            return;
        }
        let deadline = run_deadline.min(Instant::now() + REFRESH_DEADLINE);
        match self.refresh_with(IoControl::new(self.cancel.clone(), deadline)) {
            Ok(r) if r.unchanged() => log::info!("config refresh: unchanged"),
            Ok(r) => log::info!(
                "config refresh: {} root step(s), config {:?}",
                r.roots.len(),
                r.config
            ),
            Err(e) => log::warn!("config refresh failed ({}); going on", e.kind()),
        }
    }

    /// Whether the root has sources and a refresh is due now.
    fn refresh_due(&self) -> Result<bool> {
        let mut g = self.lock();
        self.refresh(&mut g)?;
        let last = store::last_source_check(g.db.conn())?;
        let now = self.now_secs(&g.trust);
        Ok(super::trust::refresh_due_at(&g.trust, last, now).is_some_and(|due| due <= now))
    }

    fn refresh_with(&self, ctl: IoControl) -> Result<Refreshed> {
        let root = {
            let mut g = self.lock();
            self.refresh(&mut g)?;
            g.trust.require_anchor()?;
            match (g.trust.standing, &self.anchor) {
                // Re-walk from as far as the stored chain verifies from the anchor.
                (Standing::Unverified, Some(fw)) => chain_tip(fw, &store::chain(g.db.conn())?).0,
                _ => g.trust.root.clone(),
            }
        };
        let sources = root
            .sources()
            .ok_or(Error::InvalidArgument("the root lists no sources"))?
            .clone();
        let http = SourceHttp::new(&sources, &self.options.upload, ctl.clone())?;
        let mut first = None;
        for base in sources.bases() {
            match self.refresh_from(&http, &sources, base, &root) {
                Ok(r) => return Ok(r),
                Err(e) => {
                    log::warn!("config mirror failed ({})", e.kind());
                    let stopped = matches!(e, Error::Cancelled);
                    first.get_or_insert(e);
                    if stopped {
                        break;
                    }
                }
            }
        }
        Err(match first.expect("sources list at least one mirror") {
            Error::Cancelled if !ctl.cancelled() => {
                Error::Network("the config refresh's deadline passed".into())
            }
            e => e,
        })
    }

    /// One mirror: the roots (kept as verified), then the config (all or
    /// nothing).
    fn refresh_from(
        &self,
        http: &SourceHttp,
        sources: &Sources,
        base: &GuardedUrl,
        root: &TrustedRoot,
    ) -> Result<Refreshed> {
        let now = {
            let g = self.lock();
            self.now_secs(&g.trust)
        };
        let (steps, more_roots) = fetch_roots(http, sources, base, root, now)?;
        let reset_before = self.lock().trust.trust_reset;
        let roots = match steps.is_empty() {
            true => Vec::new(),
            false => self.install_steps(&steps)?,
        };
        // A reset this very walk made stays said after its config.
        let keep_reset = self.lock().trust.trust_reset != reset_before;
        let mut report = Refreshed {
            roots,
            config: None,
            mirror: base.host_port(),
            root_version: 0,
            config_error: None,
            more_roots,
        };
        let standing = self.lock().trust.standing;
        let config = match standing {
            Standing::Anchored => {
                self.refresh_config_doc(http, sources, base, steps.is_empty(), keep_reset)
            }
            _ => Err(Error::Unanchored(
                "the mirrors do not serve the stored root's chain (yet)",
            )),
        };
        match config {
            Ok(version) => report.config = version,
            // Nothing gained from this mirror: the next one may do better.
            Err(e) if steps.is_empty() => return Err(e),
            Err(e) => report.config_error = Some(e.kind()),
        }
        let mut g = self.lock();
        if !report.complete() {
            // Due again at once: forget when the mirrors last answered.
            g.db.write(store::forget_source_checks)?;
        }
        report.root_version = g.trust.root.version();
        Ok(report)
    }

    /// Verifies and installs fetched roots (a complete step each); returns
    /// the versions put in force.
    fn install_steps(&self, steps: &[Step]) -> Result<Vec<u64>> {
        let anchor = self.anchor.clone();
        let mut g = self.lock();
        self.update_trust(&mut g, |t, tx, now| {
            t.require_anchor()?;
            let installed = match (t.standing, &anchor) {
                (Standing::Unverified, Some(fw)) => {
                    let envs: Vec<&[u8]> = steps.iter().map(|s| &s.envelope[..]).collect();
                    t.absorb_walk(fw, &store::chain(tx)?, &envs)?
                }
                _ => install_roots(t, steps, now)?,
            };
            // Written even when none is in force yet: the chain grew.
            Ok((installed, true))
        })
    }

    /// Fetches `config.json` (conditionally when `validators_ok`) and
    /// installs it: the new version, or `None` when it was unchanged.
    fn refresh_config_doc(
        &self,
        http: &SourceHttp,
        sources: &Sources,
        base: &GuardedUrl,
        validators_ok: bool,
        keep_reset: bool,
    ) -> Result<Option<u64>> {
        let cfg_url = sources.url(base, "config.json")?;
        let cfg_key = cfg_url.as_str();
        let (cached, held) = {
            let g = self.lock();
            let cached = store::source_entry(g.db.conn(), &cfg_key)?;
            (
                cached,
                g.trust.config.as_ref().map(|c| c.payload_sha256().to_vec()),
            )
        };
        // Validators only while the very config they describe is in force
        // and no rotation came (a rotation may drop the config).
        let validators = cached
            .as_ref()
            .filter(|c| validators_ok && held.is_some() && c.body_sha256 == held)
            .map(|c| Validators {
                etag: c.etag.clone(),
                last_modified: c.last_modified.clone(),
            });
        let fetched = http.get(&cfg_url, validators.as_ref())?;
        if matches!(fetched, Fetched::Missing) {
            return Err(Error::Protocol("the source has no config.json".into()));
        }
        let mut g = self.lock();
        self.update_trust(&mut g, |t, tx, now| {
            t.require_anchored()?;
            let mut entry = cached.clone().unwrap_or_default();
            let mut config = None;
            if let Fetched::Document(body, v) = &fetched {
                let cfg = VerifiedConfig::verify(&t.root, body)?;
                let (version, sha) = (cfg.version(), cfg.payload_sha256());
                if t.accept_config(cfg, now)? {
                    config = Some(version);
                    // A config accepted under the anchor ends the reset notice.
                    if !keep_reset {
                        t.trust_reset = None;
                    }
                }
                entry = SourceEntry {
                    etag: v.etag.clone(),
                    last_modified: v.last_modified.clone(),
                    body_sha256: Some(sha.to_vec()),
                    checked_at: now,
                };
            }
            entry.checked_at = now;
            store::save_source_entry(tx, &cfg_key, &entry)?;
            Ok((config, config.is_some()))
        })
    }
}

/// Walks `root/<N+1>.json` from `root` until a 404, verifying each step
/// against the one before (in memory only); `true` when it stopped at
/// [`MAX_ROOT_STEPS`] without a 404.
fn fetch_roots(
    http: &SourceHttp,
    sources: &Sources,
    base: &GuardedUrl,
    root: &TrustedRoot,
    now: u64,
) -> Result<(Vec<Step>, bool)> {
    let mut steps = Vec::new();
    let mut cur = root.clone();
    while steps.len() < MAX_ROOT_STEPS {
        let version = cur.version() + 1;
        let url = sources.url(base, &format!("root/{version}.json"))?;
        match http.get(&url, None)? {
            Fetched::Missing => return Ok((steps, false)),
            Fetched::NotModified => {
                return Err(Error::Protocol("304 to an unconditional request".into()))
            }
            Fetched::Document(envelope, _) => {
                cur = cur.verify_next(&envelope, now)?.ok_or_else(|| {
                    Error::Protocol("the source repeats the root in force".into())
                })?;
                steps.push(Step { version, envelope });
            }
        }
    }
    Ok((steps, true))
}

/// Installs the fetched steps the stored root does not have yet (another
/// process may have stepped meanwhile); returns the versions installed.
fn install_roots(t: &mut Trust, steps: &[Step], now: u64) -> Result<Vec<u64>> {
    let mut installed = Vec::new();
    for s in steps {
        if s.version <= t.root.version() {
            continue;
        }
        if let Some(next) = t.root.verify_next(&s.envelope, now)? {
            t.rotate_root(next);
            installed.push(t.root.version());
        }
    }
    Ok(installed)
}
