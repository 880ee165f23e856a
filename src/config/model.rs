//! Serde models of the two signed payloads (root and config) exactly as
//! docs/DESIGN.md specifies them. Unknown fields are ignored so that newer servers
//! can add fields; missing required fields fail to parse.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::error::{Error, Result};

/// `payloadType` of a root document.
pub const ROOT_PAYLOAD_TYPE: &str = "application/vnd.miui.cloudsync.root+json";
/// `payloadType` of a regional config.
pub const CONFIG_PAYLOAD_TYPE: &str = "application/vnd.miui.cloudsync.config+json";

/// Root of trust: keys and the roles that may sign roots and configs.
#[derive(Debug, Clone, Deserialize)]
pub struct RootPayload {
    /// Monotonic version; rotations step by exactly one.
    pub version: u64,
    /// RFC 3339 UTC.
    pub expires_at: String,
    /// keyid → key.
    pub keys: BTreeMap<String, KeyEntry>,
    /// The `root` and `config` roles.
    pub roles: Roles,
    /// Where the agent fetches the next roots and the current config
    /// (optional: without it, envelopes arrive only by `install`).
    #[serde(default)]
    pub sources: Option<SourcesSpec>,
}

/// A root's `sources`: mirrors tried in order, each serving `root/<N>.json`
/// and `config.json` under its base URL.
#[derive(Debug, Clone, Deserialize)]
pub struct SourcesSpec {
    /// https base URLs ending in `/`.
    pub urls: Vec<String>,
    /// Base64 SHA-256 of a SubjectPublicKeyInfo; if any, a mirror's chain must contain one.
    #[serde(default)]
    pub pins: Vec<String>,
    /// Extra trust anchors (PEM) for the mirrors only.
    #[serde(default)]
    pub ca_certs: Vec<String>,
}

/// A public key listed in a root.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyEntry {
    /// Only `ed25519` is accepted.
    #[serde(rename = "type")]
    pub key_type: String,
    /// 64 lowercase hex characters (the raw 32-byte key).
    pub public: String,
}

/// The two roles a root defines.
#[derive(Debug, Clone, Deserialize)]
pub struct Roles {
    /// Keys that sign the next root.
    pub root: Role,
    /// Keys that sign configs.
    pub config: Role,
}

/// Keys of a role and how many distinct ones must sign.
#[derive(Debug, Clone, Deserialize)]
pub struct Role {
    /// Key ids (must be listed in `keys`).
    pub keyids: Vec<String>,
    /// Distinct keys needed; at least 1 and at most the number of keys.
    pub threshold: u64,
}

/// The regional config: which country goes to which region, and each region's endpoints.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigPayload {
    /// Monotonic version.
    pub version: u64,
    /// RFC 3339 UTC; raises the freeze-safe clock floor.
    pub issued_at: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
    /// Upper-case ISO 3166-1 alpha-2 (or `*`) → region id.
    pub countries: BTreeMap<String, String>,
    /// Region id → region.
    pub regions: BTreeMap<String, RegionSpec>,
}

/// One region as written in the config.
#[derive(Debug, Clone, Deserialize)]
pub struct RegionSpec {
    /// Service name (e.g. `backup`) → endpoint.
    pub services: BTreeMap<String, ServiceSpec>,
    /// Host rules every URL of this region must pass.
    pub allowed_hosts: Vec<String>,
    /// Base64 SHA-256 of a SubjectPublicKeyInfo; if any, the chain must contain one.
    #[serde(default)]
    pub pins: Vec<String>,
    /// CIDRs the resolved peer must fall in; if any.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Extra trust anchors (PEM) for this region only.
    #[serde(default)]
    pub ca_certs: Vec<String>,
}

/// One service endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceSpec {
    /// `https` URL.
    pub url: String,
    /// Only `tus` is known.
    pub protocol: String,
    /// How requests to the service authenticate: `none` (the default, so
    /// configs written before the field keep working) or `bearer`
    /// (`Authorization: Bearer <token>` from the app's credential provider).
    #[serde(default)]
    pub auth: Option<String>,
}

/// Parses an RFC 3339 UTC timestamp (`2027-05-01T00:00:00Z`) to seconds since the epoch.
pub fn parse_time(field: &'static str, s: &str) -> Result<u64> {
    let t = humantime::parse_rfc3339(s)
        .map_err(|_| Error::malformed("timestamp", format!("{field} is not RFC 3339 UTC")))?;
    Ok(unix_secs(t))
}

/// Seconds since the epoch (0 for times before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 rendering of seconds since the epoch.
/// The last second RFC 3339 can write (9999-12-31T23:59:59Z).
pub const MAX_TIME: u64 = 253_402_300_799;

/// RFC 3339 UTC, seconds precision; times past [`MAX_TIME`] print as it
/// (a clock or a stored value that far out must not panic a read).
pub fn format_time(secs: u64) -> String {
    let secs = secs.min(MAX_TIME);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// [`format_time`] of a time of the API (ms since the epoch; before the
/// epoch prints as the epoch).
pub fn format_time_ms(ms: i64) -> String {
    format_time(u64::try_from(ms / 1000).unwrap_or(0))
}

/// Seconds since the epoch as the API's ms since the epoch, saturating at
/// [`MAX_TIME`] like [`format_time`] (no verified time is later: they are
/// parsed from RFC 3339).
pub fn secs_to_ms(secs: u64) -> i64 {
    // MAX_TIME * 1000 is about 2.5e14, far inside i64.
    secs.min(MAX_TIME) as i64 * 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_saturate_like_the_text() {
        assert_eq!(secs_to_ms(1_809_129_600), 1_809_129_600_000);
        assert_eq!(secs_to_ms(u64::MAX), MAX_TIME as i64 * 1000);
    }

    #[test]
    fn times_round_trip() {
        let s = parse_time("t", "2027-05-01T00:00:00Z").unwrap();
        assert_eq!(s, 1_809_129_600);
        assert_eq!(format_time(s), "2027-05-01T00:00:00Z");
        assert!(parse_time("t", "2027-05-01").is_err());
        assert!(parse_time("t", "").is_err());
    }

    #[test]
    fn times_past_9999_print_as_its_last_second() {
        let last = "9999-12-31T23:59:59Z";
        assert_eq!(format_time(MAX_TIME), last);
        assert_eq!(format_time(MAX_TIME + 1), last);
        assert_eq!(format_time(i64::MAX as u64), last);
        assert_eq!(format_time(u64::MAX), last);
    }

    #[test]
    fn unknown_fields_ignored_missing_fail() {
        let ok = r#"{"services":{},"allowed_hosts":[],"future":1}"#;
        assert!(serde_json::from_str::<RegionSpec>(ok).is_ok());
        let missing = r#"{"services":{}}"#;
        assert!(serde_json::from_str::<RegionSpec>(missing).is_err());
    }
}
