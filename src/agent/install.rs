//! Installing a root or a config by bytes (the app's or the CLI's
//! `install`): through the same trust transaction and checks as a refresh.

use super::anchor::Standing;
use super::{Agent, Installed};
use crate::config::envelope::Envelope;
use crate::config::store;
use crate::config::{VerifiedConfig, CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};
use crate::error::{Error, Result};

impl Agent {
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

    /// Installs the next root (rotation), chained from the root stored in
    /// the database (not this handle's memory).
    pub fn install_root(&self, envelope: &[u8]) -> Result<Installed> {
        let mut g = self.lock();
        let anchor = self.anchor.clone();
        let installed = self.update_trust(&mut g, |t, tx, now| {
            t.require_anchor()?;
            if t.standing == Standing::Unverified {
                // Roots installed by bytes re-establish the chain like a refresh.
                let fw = anchor.as_ref().expect("an unverified trust has an anchor");
                let rows = store::chain(tx)?;
                let put = t.absorb_walk(fw, &rows, &[envelope])?;
                let installed = match put.last() {
                    Some(&version) => Installed::Root { version },
                    None => Installed::Unchanged,
                };
                // Written even when nothing is in force yet: the chain grew.
                return Ok((installed, true));
            }
            let Some(next) = t.root.verify_next(envelope, now)? else {
                return Ok((Installed::Unchanged, false));
            };
            t.rotate_root(next);
            Ok((
                Installed::Root {
                    version: t.root.version(),
                },
                true,
            ))
        })?;
        if let Installed::Root { version } = installed {
            log::info!("root rotated to version {version}");
        }
        Ok(installed)
    }

    /// Installs a config signed under the root stored in the database.
    pub fn install_config(&self, envelope: &[u8]) -> Result<Installed> {
        let mut g = self.lock();
        let installed = self.update_trust(&mut g, |t, _, now| {
            t.require_anchored()?;
            let cfg = VerifiedConfig::verify(&t.root, envelope)?;
            let version = cfg.version();
            Ok(match t.accept_config(cfg, now)? {
                true => {
                    // A config accepted under the anchor ends the reset notice.
                    t.trust_reset = None;
                    (Installed::Config { version }, true)
                }
                false => (Installed::Unchanged, false),
            })
        })?;
        if let Installed::Config { version } = installed {
            log::info!("config version {version} installed");
        }
        Ok(installed)
    }
}
