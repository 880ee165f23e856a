//! Country → region selection: the one way from a [`VerifiedConfig`] to an
//! [`ApprovedRegion`]. Apart from the region types (`region/mod.rs`), which
//! `config/verify.rs` builds into the verified config: the two files do not
//! use each other.

use super::ApprovedRegion;
use crate::config::VerifiedConfig;

/// Picks the approved region for an account country: exact upper-case ISO
/// code first, then the `"*"` default; `None` when neither matches. The
/// config must be unexpired at `now` (the caller's freeze-safe clock).
pub fn select(config: &VerifiedConfig, country: &str) -> Option<ApprovedRegion> {
    let id = config
        .countries()
        .get(country)
        .or_else(|| config.countries().get("*"))?;
    let region = config.regions().get(id)?.clone();
    Some(ApprovedRegion {
        region,
        config_version: config.version(),
    })
}
