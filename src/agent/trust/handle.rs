//! The handle's side of the trust row: reading it at open, keeping the
//! cached [`Trust`] honest ([`Agent::refresh`]) and every compare-and-swap
//! write of it ([`Agent::update_trust`]); see `super`'s module docs.

use rusqlite::Transaction;

use super::{refresh_due_at, Trust};
use crate::agent::anchor::Standing;
use crate::agent::{Agent, ConfigInfo, Inner};
use crate::config::model::secs_to_ms;
use crate::config::store;
use crate::error::{Error, ErrorKind, Result};
use crate::queue::wait::{Scope, SHORT_WAIT};
use crate::region::ApprovedRegion;

impl Agent {
    /// The freeze-safe clock: wall time, but never behind the newest `issued_at` seen.
    pub(crate) fn now_secs(&self, trust: &Trust) -> u64 {
        (self.options.clock)().max(trust.clock_floor)
    }

    /// Brings the cached trust up to the database's (see the module docs).
    pub(crate) fn refresh(&self, inner: &mut Inner) -> Result<()> {
        let conn = inner.db.conn();
        let dv = store::data_version(conn)?;
        if dv == inner.data_version {
            return Ok(());
        }
        match store::generation(conn)? {
            Some(g) if g == inner.trust.generation => {}
            Some(_) => {
                // The row and the chain from one snapshot: a rotation
                // committed in between must not look like a broken chain.
                let tx = conn.unchecked_transaction()?;
                let s = store::load(&tx)?.ok_or_else(trust_row_missing)?;
                // What the anchor would change is written by the next trust
                // write; until then it holds in memory.
                inner.trust = Trust::load_anchored(&tx, &s, self.anchor.as_ref())?.0;
                drop(tx);
            }
            None => return Err(trust_row_missing()),
        }
        // Read before the generation: a commit in between shows up next time.
        inner.data_version = dv;
        Ok(())
    }

    /// Runs `f` on the stored trust inside one IMMEDIATE transaction; when it
    /// reports a change, the row is written by compare-and-swap and the queue
    /// re-stamped in the same transaction. `f` gets the freeze-safe `now`.
    pub(crate) fn update_trust<T>(
        &self,
        inner: &mut Inner,
        f: impl FnOnce(&mut Trust, &Transaction<'_>, u64) -> Result<(T, bool)>,
    ) -> Result<T> {
        self.update_trust_with(inner, false, f)
    }

    /// [`Self::update_trust`] in a light commit (a run's claim: one per item).
    /// A trust change made in it is flushed at once: trust is never light.
    pub(crate) fn update_trust_light<T>(
        &self,
        inner: &mut Inner,
        f: impl FnOnce(&mut Trust, &Transaction<'_>, u64) -> Result<(T, bool)>,
    ) -> Result<T> {
        self.update_trust_with(inner, true, f)
    }

    fn update_trust_with<T>(
        &self,
        inner: &mut Inner,
        light: bool,
        f: impl FnOnce(&mut Trust, &Transaction<'_>, u64) -> Result<(T, bool)>,
    ) -> Result<T> {
        let clock = &self.options.clock;
        let anchor = self.anchor.as_ref();
        let Inner { db, trust, .. } = inner;
        let body = |tx: &Transaction<'_>| {
            let stored = store::load(tx)?.ok_or_else(trust_row_missing)?;
            let (mut t, anchored) = if stored.generation == trust.generation {
                (trust.clone(), false)
            } else {
                Trust::load_anchored(tx, &stored, anchor)?
            };
            let now = clock().max(t.clock_floor);
            let (out, changed) = f(&mut t, tx, now)?;
            let changed = changed || anchored;
            if changed {
                t.generation = store::save(tx, &t.stored(), Some(stored.generation))?;
                t.chain_ops.flush(tx)?;
                t.reconcile_items(tx, now)?;
            }
            Ok((out, t, changed))
        };
        let (out, next, changed) = if light {
            db.write_light(body)?
        } else {
            db.write(body)?
        };
        if light && changed {
            db.sync()?;
        }
        *trust = next;
        Ok(out)
    }

    /// The approved region under the database's trust; an expiry seen for
    /// the first time is persisted (sticky), whatever the clock says later.
    pub(crate) fn approved_fresh(&self, inner: &mut Inner) -> Result<Option<ApprovedRegion>> {
        self.refresh(inner)?;
        self.note_expiry(inner);
        let now = self.now_secs(&inner.trust);
        inner.trust.approved(now)
    }

    /// Persists a newly observed expiry. A failed write (another
    /// connection's lock held longer than [`SHORT_WAIT`], a full or
    /// read-only disk) is only logged: the caller still sees the expiry from
    /// memory (fail closed), and the next call tries again.
    pub(crate) fn note_expiry(&self, inner: &mut Inner) {
        // Only anchored trust is written; unanchored trust uploads nothing anyway.
        if inner.trust.standing != Standing::Anchored
            || inner.db.read_only()
            || !inner.trust.newly_expired(self.now_secs(&inner.trust))
        {
            return;
        }
        // Best effort (the next call tries again): a read that notes an
        // expiry never waits long for another connection's write lock.
        let _brief = Scope::within(SHORT_WAIT);
        let noted = self.update_trust(inner, |t, _, now| Ok(((), t.record_expiry(now))));
        match noted {
            Ok(()) => log::info!("expiry recorded; it stays until a newer version arrives"),
            Err(e) => log::warn!("could not record an expiry ({})", e.kind()),
        }
    }

    /// The approved region: `Ok(None)` with no config, no country or no
    /// matching region; `Err(Expired)` when the config or root expired.
    /// Reads the database's trust, so another handle's change shows at once.
    pub fn approved_region(&self) -> Result<Option<ApprovedRegion>> {
        let mut g = self.lock();
        self.approved_fresh(&mut g)
    }

    /// What is installed (safe to show: versions, expiry, region ids), as
    /// stored in the database now.
    pub fn config_info(&self) -> Result<ConfigInfo> {
        let mut g = self.lock();
        let approved = match self.approved_fresh(&mut g) {
            Ok(r) => r.map(|r| r.id().to_string()),
            Err(e) if matches!(e.kind(), ErrorKind::Expired | ErrorKind::RootMismatch) => None,
            Err(e) => return Err(e),
        };
        let last_check = store::last_source_check(g.db.conn())?;
        let t = &g.trust;
        let now = self.now_secs(t);
        let cfg = t.config.as_ref();
        let refresh_due_at_ms = refresh_due_at(t, last_check, now).map(secs_to_ms);
        Ok(ConfigInfo {
            root_version: t.root.version(),
            config_version: cfg.map(|c| c.version()),
            expires_at_ms: cfg.map(|c| secs_to_ms(c.expires_at())),
            expired: cfg.is_some_and(|c| t.config_expired(c, now)) || t.root_expired(now),
            regions: cfg
                .map(|c| c.regions().keys().cloned().collect())
                .unwrap_or_default(),
            country: t.country.clone(),
            approved_region: approved,
            refresh_due_at_ms,
            anchored: t.standing == Standing::Anchored,
            trust_reset: t.trust_reset.map(|r| r.sentence().to_string()),
        })
    }
}

fn trust_row_missing() -> Error {
    Error::Storage {
        kind: ErrorKind::StorageCorrupt,
        reason: "the trust row is missing".into(),
    }
}
