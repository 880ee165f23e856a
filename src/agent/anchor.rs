//! The firmware root is the anchor of every trust decision; the root stored
//! in the database is only a chain above it (python-tuf's client starts the
//! same way: from the shipped root, with cached roots as a chain on top).
//!
//! A handle is opened with the app's firmware root F and judges the stored
//! root S against it ([`judge`]) whenever it (re)reads the trust row:
//!
//! - F newer than S, at any gap: F is in force. What F no longer vouches for
//!   is reset, as in TUF's fast-forward recovery (spec 5.3.11): a config that
//!   F's config keys do not sign is dropped, and when the config keys
//!   changed the version floor, the sticky-expiry marks and the clock floor
//!   are re-derived from what is left (so a revoked key cannot leave a floor
//!   of 2^63 or an `issued_at` in 2100 behind).
//! - F older than S: S stays only if the stored chain F → … → S verifies
//!   (`root_chain`: the roots where root keys or thresholds changed, plus the
//!   newest). A file from before that chain existed is `Unverified` until a
//!   refresh re-walks F → S on F's mirrors: reads work, nothing uploads.
//! - Tampering (a chain that fails, S at F's own version with other bytes):
//!   F is in force, written to the file so every handle and process agrees,
//!   and `trust_reset` says why. The queue stays reachable.
//!
//! A handle opened without a firmware root (the CLI without `--root`) is
//! `NoAnchor`: it serves reads and refuses uploads and trust changes.

use rusqlite::Connection;

pub(crate) use reason::ResetReason;
pub(crate) use standing::{ChainOps, Standing};

use super::trust::Trust;
use crate::config::store::{self, ChainRow, StoredTrust};
use crate::config::{TrustedRoot, VerifiedConfig};
use crate::error::Result;

/// What the firmware root says of the stored root.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The same document.
    Same,
    /// F is older and the stored chain verifies from it to S; `prune`: rows
    /// at or below F can go.
    Chained { prune: bool },
    /// F is newer: F is in force.
    Behind,
    /// F is older and the chain is not complete from F.
    Unverified,
    /// The file's trust cannot have come from F.
    Tampered(ResetReason),
}

/// The furthest root the stored chain reaches from `fw`, verified step by
/// step, and the rows of that path.
pub(crate) fn chain_tip(fw: &TrustedRoot, rows: &[ChainRow]) -> (TrustedRoot, Vec<ChainRow>) {
    let mut cur = fw.clone();
    let mut path = Vec::new();
    for row in rows.iter().filter(|r| r.version > fw.version()) {
        match cur.verify_descendant(&row.envelope) {
            Ok(next) => {
                cur = next;
                path.push(row.clone());
            }
            Err(_) => break,
        }
    }
    (cur, path)
}

fn judge(fw: &TrustedRoot, s: &TrustedRoot, rows: &[ChainRow], chain_from: u64) -> Verdict {
    use std::cmp::Ordering::*;
    let (fv, sv) = (fw.version(), s.version());
    match fv.cmp(&sv) {
        Greater => return Verdict::Behind,
        Equal if fw.same_payload(s) => return Verdict::Same,
        Equal => return Verdict::Tampered(ResetReason::RootDiffers),
        Less => {}
    }
    // The chain is complete from F when F is at or above where it starts.
    let complete = fv >= chain_from;
    let above: Vec<&ChainRow> = rows.iter().filter(|r| r.version > fv).collect();
    let (tip, path) = chain_tip(fw, rows);
    if path.len() < above.len() {
        return match complete {
            true => Verdict::Tampered(ResetReason::ChainFails),
            false => Verdict::Unverified,
        };
    }
    let prune = rows.len() > above.len();
    match tip.version().cmp(&sv) {
        Equal if tip.same_payload(s) => Verdict::Chained { prune },
        Equal => Verdict::Tampered(ResetReason::ChainReachesOther),
        Greater => Verdict::Tampered(ResetReason::ChainPastRoot),
        // S is not in the stored rows: a chain that claims to be complete
        // must still reach it.
        Less if complete => match tip.verify_descendant(s.envelope()) {
            Ok(_) => Verdict::Chained { prune },
            Err(_) => Verdict::Tampered(ResetReason::ChainFails),
        },
        Less => Verdict::Unverified,
    }
}

impl Trust {
    /// The trust row `s` read from the file, judged against the firmware
    /// root. `true`: the anchor changed it and the row must be written.
    pub(crate) fn load_anchored(
        conn: &Connection,
        s: &StoredTrust,
        fw: Option<&TrustedRoot>,
    ) -> Result<(Trust, bool)> {
        let mut t = match (Trust::from_stored(s), fw) {
            (Ok(t), _) => t,
            (Err(e), None) => return Err(e),
            // A stored root or key that does not even parse or verify: the
            // firmware root takes over; the queue, account and country stay.
            (Err(_), Some(fw)) => {
                log::warn!("trust reset: {}", ResetReason::StoredInvalid.sentence());
                let mut t = Trust::salvage(s, fw);
                t.reanchor(fw.clone(), fw.version(), Some(ResetReason::StoredInvalid));
                return Ok((t, true));
            }
        };
        let Some(fw) = fw else {
            return Ok((t, false));
        };
        let rows = match fw.version() < t.root.version() {
            true => store::chain(conn)?,
            false => Vec::new(),
        };
        let dirty = match judge(fw, &t.root, &rows, t.chain_from) {
            Verdict::Same => {
                t.standing = Standing::Anchored;
                false
            }
            Verdict::Chained { prune } => {
                t.standing = Standing::Anchored;
                if prune {
                    t.chain_ops.prune_to = Some(fw.version());
                    t.chain_from = t.chain_from.max(fw.version());
                }
                prune
            }
            Verdict::Behind => {
                log::info!(
                    "firmware root version {} is newer than the stored root version {}: in force",
                    fw.version(),
                    t.root.version()
                );
                t.reanchor(fw.clone(), fw.version(), None);
                true
            }
            Verdict::Unverified => {
                log::warn!(
                    "the stored root is newer than the firmware root and its chain is not \
                     verified yet: no uploads until a config refresh re-walks it"
                );
                t.standing = Standing::Unverified;
                false
            }
            Verdict::Tampered(why) => {
                log::warn!("trust reset to the firmware root: {}", why.sentence());
                t.reanchor(fw.clone(), fw.version(), Some(why));
                true
            }
        };
        Ok((t, dirty))
    }

    /// Puts `root` (the firmware root, or a root verified from it, whose
    /// chain from version `from` is in `chain_ops`) in force over whatever
    /// the file held. The config stays only if `root` vouches for it; when
    /// the file was tampered with or the config keys changed, every floor is
    /// re-derived from that config alone (TUF's fast-forward recovery).
    pub(crate) fn reanchor(&mut self, root: TrustedRoot, from: u64, reset: Option<ResetReason>) {
        let keep_floors = reset.is_none() && self.root.same_config_role(&root);
        self.root = root;
        let config = self
            .config
            .take()
            .filter(|c| VerifiedConfig::verify(&self.root, c.envelope()).is_ok());
        if !keep_floors {
            self.config_floor = config.as_ref().map_or(0, |c| c.version());
            self.config_floor_sha256 = config.as_ref().map(|c| c.payload_sha256());
            self.clock_floor = config.as_ref().map_or(0, |c| c.issued_at());
            self.expired_config = 0;
        }
        // Marks at or above a root now in force came from documents it does
        // not vouch for.
        self.expired_root = 0;
        self.config = config;
        self.chain_from = from;
        self.chain_ops.clear = true;
        self.standing = Standing::Anchored;
        if let Some(why) = reset {
            self.trust_reset = Some(why);
        }
    }

    /// Takes root envelopes verified from the anchor while the stored root is
    /// `Unverified` (a refresh's re-walk on the firmware root's mirrors, or
    /// roots the app installs), in version order: they extend the chain from
    /// the firmware root. Reaching the stored root's version anchors it (the
    /// same document) or shows the file did not get it from this chain
    /// (another document: the chain's root is put in force, `trust_reset`
    /// says why); later roots are then installed as usual. Returns the root
    /// versions put in force; progress short of the stored root is kept, so
    /// the next call goes on from there.
    pub(crate) fn absorb_walk(
        &mut self,
        fw: &TrustedRoot,
        rows: &[ChainRow],
        envelopes: &[&[u8]],
    ) -> Result<Vec<u64>> {
        let (mut cur, mut path) = chain_tip(fw, rows);
        let known = path.len();
        let stored_version = self.root.version();
        let mut installed = Vec::new();
        for env in envelopes {
            if self.standing == Standing::Anchored {
                if let Some(next) = self.root.verify_next(env, 0)? {
                    self.rotate_root(next);
                    installed.push(self.root.version());
                }
                continue;
            }
            let next = cur.verify_descendant(env)?;
            path.push(ChainRow {
                version: next.version(),
                envelope: env.to_vec(),
                changed: !cur.same_root_role(&next),
            });
            cur = next;
            if cur.version() < stored_version {
                continue;
            }
            if cur.version() == stored_version && cur.same_payload(&self.root) {
                self.standing = Standing::Anchored;
                self.chain_from = fw.version();
                self.chain_ops.push.extend(path.drain(known..));
                log::info!("the stored root's chain is verified from the firmware root");
            } else {
                // Past the stored root: a newer root of the anchor's chain,
                // in force like a newer firmware root. At its version with
                // other bytes: the file did not get it from this chain.
                let why = (cur.version() == stored_version).then_some(ResetReason::NotOnChain);
                if let Some(why) = why {
                    log::warn!("trust reset: {}", why.sentence());
                }
                self.reanchor(cur.clone(), fw.version(), why);
                self.chain_ops.push = std::mem::take(&mut path);
                installed.push(cur.version());
            }
        }
        if self.standing == Standing::Unverified {
            self.chain_ops.push.extend(path.drain(known..));
        }
        Ok(installed)
    }
}

mod reason;
mod standing;
#[cfg(test)]
mod tests;
