//! The signed regional config: DSSE envelopes, the root of trust with
//! rotation, validation, and persistence.

pub mod envelope;
pub mod model;
pub mod sign;
pub mod store;
pub mod verify;

pub use model::{CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};
pub use verify::{TrustedRoot, VerifiedConfig};

use crate::error::Result;

/// What an envelope turned out to be, for offline checks (`cloudsync verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// A root that chains from the given one (or is it).
    Root {
        /// Its version.
        version: u64,
    },
    /// A config signed under the given root.
    Config {
        /// Its version.
        version: u64,
        /// Its expiry (seconds).
        expires_at: u64,
    },
}

/// Offline verification of `envelope` against `root` at `now` (seconds):
/// a root must be the next rotation (or the root itself), a config must be
/// signed by the root's config role, valid and unexpired.
pub fn verify_offline(root: &TrustedRoot, envelope: &[u8], now: u64) -> Result<Verified> {
    let env = envelope::Envelope::parse(envelope)?;
    if env.payload_type == ROOT_PAYLOAD_TYPE {
        let next = root.verify_next(envelope, now)?;
        let version = next.map(|r| r.version()).unwrap_or(root.version());
        Ok(Verified::Root { version })
    } else {
        let cfg = VerifiedConfig::verify(root, envelope)?;
        cfg.check_fresh(now.max(cfg.issued_at()))?;
        Ok(Verified::Config {
            version: cfg.version(),
            expires_at: cfg.expires_at(),
        })
    }
}
