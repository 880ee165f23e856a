//! The agent fetches its own trust: [`Agent::refresh_config`] walks the root
//! chain on the root's mirrors (`root/<N+1>.json` until a 404, at most
//! [`MAX_ROOT_STEPS`] per call), then fetches `config.json` (conditionally),
//! and installs everything in one trust transaction through the same checks
//! as `install`. A refresh that fails changes nothing on disk; a mirror that
//! fails hands over to the next.
//!
//! Layout under a mirror's base URL (static files; any CDN can serve them):
//! `root/2.json`, `root/3.json`, ... (root envelopes by version) and
//! `config.json` (the config envelope in force).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::trust::Trust;
use super::Agent;
use crate::config::store::{self, SourceEntry};
use crate::config::{TrustedRoot, VerifiedConfig};
use crate::error::{Error, Result};
use crate::region::{GuardedUrl, Sources};
use crate::upload::fetch::{Fetched, SourceHttp, Validators};
use crate::upload::http::IoControl;

/// Root versions one refresh steps through at most (a phone years behind
/// catches up over several calls).
pub const MAX_ROOT_STEPS: usize = 64;

/// A refresh's hard deadline, all mirrors included.
pub const REFRESH_DEADLINE: Duration = Duration::from_secs(30);

const HOUR: u64 = 3_600;
const DAY: u64 = 24 * HOUR;

/// What a refresh changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refreshed {
    /// Root versions installed, in order (empty: none).
    pub roots: Vec<u64>,
    /// The config version installed, if a new one was.
    pub config: Option<u64>,
    /// `host:port` of the mirror that answered.
    pub mirror: String,
}

impl Refreshed {
    /// Whether nothing changed.
    pub fn unchanged(&self) -> bool {
        self.roots.is_empty() && self.config.is_none()
    }
}

/// When the next refresh is due (seconds), or `None` without `sources`.
///
/// At once when no config is in force or it expired, or when no mirror
/// ever answered. Otherwise at the earlier of a day after the last answer
/// and the middle of the config's validity (so a config is replaced well
/// before it expires), but never sooner than an hour after the last answer
/// (a mirror without anything newer is not asked on every run).
pub(crate) fn refresh_due_at(t: &Trust, last_check: u64, now: u64) -> Option<u64> {
    t.root.sources()?;
    let Some(cfg) = t.config.as_ref().filter(|c| !t.config_expired(c, now)) else {
        return Some(now);
    };
    if last_check == 0 {
        return Some(now);
    }
    let midpoint = cfg.issued_at() + cfg.expires_at().saturating_sub(cfg.issued_at()) / 2;
    Some((last_check + DAY).min(midpoint).max(last_check + HOUR))
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
    /// time, rollback, sticky expiry, version floor), all in one transaction:
    /// a refresh that fails changes nothing on disk. Mirrors are tried in
    /// order; if all fail, the first one's error is returned. Takes at most
    /// [`REFRESH_DEADLINE`]. Fails with `invalid_argument` when the root
    /// lists no sources.
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
        Ok(refresh_due_at(&g.trust, last, now).is_some_and(|due| due <= now))
    }

    fn refresh_with(&self, ctl: IoControl) -> Result<Refreshed> {
        let root = {
            let mut g = self.lock();
            self.refresh(&mut g)?;
            g.trust.root.clone()
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

    /// One mirror: fetch, then install all of it or nothing.
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
        let steps = fetch_roots(http, sources, base, root, now)?;
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
        // and no rotation is coming (a rotation may drop the config).
        let validators = cached
            .as_ref()
            .filter(|c| steps.is_empty() && held.is_some() && c.body_sha256 == held)
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
            let roots = install_roots(t, &steps, now)?;
            let mut entry = cached.clone().unwrap_or_default();
            let mut config = None;
            if let Fetched::Document(body, v) = &fetched {
                let cfg = VerifiedConfig::verify(&t.root, body)?;
                let (version, sha) = (cfg.version(), cfg.payload_sha256());
                if t.accept_config(cfg, now)? {
                    config = Some(version);
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
            let changed = !roots.is_empty() || config.is_some();
            let report = Refreshed {
                roots,
                config,
                mirror: base.host_port(),
            };
            Ok((report, changed))
        })
    }
}

/// Walks `root/<N+1>.json` from `root` until a 404, verifying each step
/// against the one before (in memory only).
fn fetch_roots(
    http: &SourceHttp,
    sources: &Sources,
    base: &GuardedUrl,
    root: &TrustedRoot,
    now: u64,
) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut cur = root.clone();
    while steps.len() < MAX_ROOT_STEPS {
        let version = cur.version() + 1;
        let url = sources.url(base, &format!("root/{version}.json"))?;
        match http.get(&url, None)? {
            Fetched::Missing => break,
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
    Ok(steps)
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
