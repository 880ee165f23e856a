//! Turning envelope bytes into trusted objects: [`TrustedRoot`] (root of
//! trust, with rotation) and [`VerifiedConfig`] (regions and countries).
//!
//! The rules are TUF's, reduced to two roles: a root is trusted only when a
//! threshold of the *previous* root's root keys and a threshold of its *own*
//! root keys signed it, versions step by one, and expiry is checked against a
//! clock that never runs behind the newest `issued_at` seen.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::envelope::{keyid, Envelope};
use super::model::{
    parse_time, ConfigPayload, Role, RootPayload, CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE,
};
use crate::error::{Error, Result};
use crate::region::{Region, Sources};

/// A root document whose signatures and structure were verified.
#[derive(Clone)]
pub struct TrustedRoot {
    version: u64,
    expires_at: u64,
    keys: BTreeMap<String, [u8; 32]>,
    root_role: Role,
    config_role: Role,
    envelope: Arc<[u8]>,
    payload: Arc<[u8]>,
    sources: Option<Sources>,
}

impl fmt::Debug for TrustedRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedRoot")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn expect_type(env: &Envelope, expected: &'static str) -> Result<()> {
    if env.payload_type == expected {
        Ok(())
    } else {
        Err(Error::WrongPayloadType { expected })
    }
}

fn check_role(role: &Role, keys: &BTreeMap<String, [u8; 32]>) -> Result<()> {
    if role.threshold == 0 {
        return Err(Error::malformed(
            "root",
            "role threshold must be at least 1",
        ));
    }
    let mut distinct: Vec<&String> = role.keyids.iter().collect();
    distinct.sort();
    distinct.dedup();
    if distinct.iter().any(|k| !keys.contains_key(*k)) {
        return Err(Error::malformed(
            "root",
            "role lists a key that is not in keys",
        ));
    }
    if (distinct.len() as u64) < role.threshold {
        return Err(Error::malformed("root", "role threshold is unreachable"));
    }
    Ok(())
}

/// Same distinct key ids (a key id is the SHA-256 of its key) and threshold.
fn same_role(a: &Role, b: &Role) -> bool {
    let ids = |r: &Role| {
        let mut v: Vec<String> = r.keyids.clone();
        v.sort();
        v.dedup();
        v
    };
    a.threshold == b.threshold && ids(a) == ids(b)
}

impl TrustedRoot {
    /// Parses a root envelope and checks its structure, without any trust decision.
    fn parse(bytes: &[u8]) -> Result<(Envelope, TrustedRoot)> {
        let env = Envelope::parse(bytes)?;
        expect_type(&env, ROOT_PAYLOAD_TYPE)?;
        let p: RootPayload =
            serde_json::from_slice(&env.payload).map_err(|e| Error::from_json("root", &e))?;
        let mut keys = BTreeMap::new();
        for (id, k) in &p.keys {
            if k.key_type != "ed25519" {
                return Err(Error::malformed("root", "unsupported key type"));
            }
            let raw = hex::decode(&k.public)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or_else(|| Error::malformed("root", "public key is not 64 hex characters"))?;
            if keyid(&raw) != *id {
                return Err(Error::malformed(
                    "root",
                    "keyid is not the SHA-256 of its key",
                ));
            }
            keys.insert(id.clone(), raw);
        }
        check_role(&p.roles.root, &keys)?;
        check_role(&p.roles.config, &keys)?;
        let root = TrustedRoot {
            version: p.version,
            expires_at: parse_time("expires_at", &p.expires_at)?,
            keys,
            root_role: p.roles.root,
            config_role: p.roles.config,
            envelope: Arc::from(bytes),
            payload: Arc::from(env.payload.as_slice()),
            sources: p.sources.as_ref().map(Sources::from_spec).transpose()?,
        };
        Ok((env, root))
    }

    fn require_self_signed(&self, env: &Envelope) -> Result<()> {
        env.require_threshold(
            "root",
            &self.root_role.keyids,
            self.root_role.threshold,
            &self.keys,
        )
    }

    /// Trusts an initial root shipped with the firmware: it must be signed by
    /// a threshold of its own root keys and unexpired at `now` (seconds).
    pub fn from_initial(bytes: &[u8], now: u64) -> Result<TrustedRoot> {
        let (env, root) = Self::parse(bytes)?;
        root.require_self_signed(&env)?;
        if root.expires_at <= now {
            return Err(Error::Expired { what: "root" });
        }
        Ok(root)
    }

    /// Re-loads a root this device already accepted (from its own database).
    /// Signatures are re-checked so a tampered file cannot inject keys; expiry is not.
    pub(crate) fn reload(bytes: &[u8]) -> Result<TrustedRoot> {
        let (env, root) = Self::parse(bytes)?;
        root.require_self_signed(&env)?;
        Ok(root)
    }

    /// Verifies the next root (rotation). Returns `Ok(None)` if `bytes` is the
    /// root already in force (an idempotent re-install).
    pub fn verify_next(&self, bytes: &[u8], now: u64) -> Result<Option<TrustedRoot>> {
        let (env, next) = Self::parse(bytes)?;
        if next.version <= self.version {
            if next.version == self.version {
                if next.payload == self.payload {
                    return Ok(None);
                }
                return Err(Error::SameVersionDifferent {
                    what: "root",
                    version: next.version,
                });
            }
            return Err(Error::Rollback {
                what: "root",
                offered: next.version,
                installed: self.version,
            });
        }
        if next.version != self.version + 1 {
            return Err(Error::VersionGap {
                offered: next.version,
                installed: self.version,
            });
        }
        // The old root vouches for the new one, and the new keys prove possession.
        env.require_threshold(
            "root",
            &self.root_role.keyids,
            self.root_role.threshold,
            &self.keys,
        )?;
        next.require_self_signed(&env).map_err(|e| match e {
            Error::BadSignature { .. } => Error::BadSignature { role: "new root" },
            Error::ThresholdNotMet {
                valid, threshold, ..
            } => Error::ThresholdNotMet {
                role: "new root",
                valid,
                threshold,
            },
            other => other,
        })?;
        // No expiry check here (TUF): a device several versions behind must be
        // able to step through roots that have since expired. The root in
        // force is checked for expiry wherever it is used (fail closed).
        let _ = now;
        Ok(Some(next))
    }

    /// Verifies a later root `bytes` of the chain this root is part of,
    /// across versions whose root keys did not change (the stored chain keeps
    /// only the roots where they did, see `root_chain`): a threshold of this
    /// root's root keys and of the new root's own. For the next version this
    /// is [`TrustedRoot::verify_next`].
    pub(crate) fn verify_descendant(&self, bytes: &[u8]) -> Result<TrustedRoot> {
        let (env, next) = Self::parse(bytes)?;
        if next.version <= self.version {
            return Err(Error::Rollback {
                what: "root",
                offered: next.version,
                installed: self.version,
            });
        }
        env.require_threshold(
            "root",
            &self.root_role.keyids,
            self.root_role.threshold,
            &self.keys,
        )?;
        next.require_self_signed(&env)?;
        Ok(next)
    }

    /// Whether `other` has the same root keys and threshold (a root chain
    /// may skip the versions between two such roots).
    pub(crate) fn same_root_role(&self, other: &TrustedRoot) -> bool {
        same_role(&self.root_role, &other.root_role)
    }

    /// Whether `other` has the same config keys and threshold: the configs
    /// and floors one accepted, the other vouches for too.
    pub(crate) fn same_config_role(&self, other: &TrustedRoot) -> bool {
        same_role(&self.config_role, &other.config_role)
    }

    /// The mirrors this root names for fetching its successors and the
    /// config (`None`: install by bytes only).
    pub fn sources(&self) -> Option<&Sources> {
        self.sources.as_ref()
    }

    /// Root version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Expiry, seconds since the epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The envelope bytes as installed (persisted verbatim).
    pub fn envelope(&self) -> &[u8] {
        &self.envelope
    }

    /// Whether `other` is the same signed document (payload bytes), whatever
    /// signatures either envelope carries.
    pub fn same_payload(&self, other: &TrustedRoot) -> bool {
        self.payload == other.payload
    }
}

/// A config whose signatures, structure and endpoints were verified under a
/// [`TrustedRoot`]. Only [`VerifiedConfig::verify`] makes one.
#[derive(Clone)]
pub struct VerifiedConfig {
    version: u64,
    issued_at: u64,
    expires_at: u64,
    countries: BTreeMap<String, String>,
    regions: BTreeMap<String, Arc<Region>>,
    envelope: Arc<[u8]>,
    payload: Arc<[u8]>,
}

impl fmt::Debug for VerifiedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedConfig")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl VerifiedConfig {
    /// Verifies signatures (threshold of the root's `config` role), parses and
    /// validates the payload. Expiry is *not* checked here: callers check it
    /// against their freeze-safe clock (see [`VerifiedConfig::check_fresh`]).
    pub fn verify(root: &TrustedRoot, bytes: &[u8]) -> Result<VerifiedConfig> {
        let env = Envelope::parse(bytes)?;
        expect_type(&env, CONFIG_PAYLOAD_TYPE)?;
        env.require_threshold(
            "config",
            &root.config_role.keyids,
            root.config_role.threshold,
            &root.keys,
        )?;
        let p: ConfigPayload =
            serde_json::from_slice(&env.payload).map_err(|e| Error::from_json("config", &e))?;
        let issued_at = parse_time("issued_at", &p.issued_at)?;
        let expires_at = parse_time("expires_at", &p.expires_at)?;
        if expires_at <= issued_at {
            return Err(Error::malformed(
                "config",
                "expires_at is not after issued_at",
            ));
        }
        let mut regions = BTreeMap::new();
        for (id, spec) in &p.regions {
            regions.insert(id.clone(), Arc::new(Region::from_spec(id, spec)?));
        }
        for (cc, region) in &p.countries {
            let valid_cc =
                cc == "*" || (cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase()));
            if !valid_cc {
                return Err(Error::malformed(
                    "config",
                    "country keys must be upper-case ISO 3166-1 alpha-2 or *",
                ));
            }
            if !regions.contains_key(region) {
                return Err(Error::malformed(
                    "config",
                    "a country names a region that does not exist",
                ));
            }
        }
        Ok(VerifiedConfig {
            version: p.version,
            issued_at,
            expires_at,
            countries: p.countries,
            regions,
            envelope: Arc::from(bytes),
            payload: Arc::from(env.payload.as_slice()),
        })
    }

    /// Fails with `Expired` unless the config is valid at `now` (seconds).
    pub fn check_fresh(&self, now: u64) -> Result<()> {
        if self.expires_at <= now {
            Err(Error::Expired { what: "config" })
        } else {
            Ok(())
        }
    }

    /// Checks that `self` may replace `current`: versions never go down and an
    /// equal version must carry a byte-identical payload. `Ok(false)` means
    /// "identical, nothing to do".
    pub fn check_replaces(&self, current: &VerifiedConfig) -> Result<bool> {
        if self.version < current.version {
            return Err(Error::Rollback {
                what: "config",
                offered: self.version,
                installed: current.version,
            });
        }
        if self.version == current.version {
            if self.payload == current.payload {
                return Ok(false);
            }
            return Err(Error::SameVersionDifferent {
                what: "config",
                version: self.version,
            });
        }
        Ok(true)
    }

    /// Config version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// `issued_at`, seconds since the epoch.
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }

    /// `expires_at`, seconds since the epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Country → region id.
    pub fn countries(&self) -> &BTreeMap<String, String> {
        &self.countries
    }

    /// Region id → validated region.
    pub fn regions(&self) -> &BTreeMap<String, Arc<Region>> {
        &self.regions
    }

    /// The envelope bytes as installed.
    pub fn envelope(&self) -> &[u8] {
        &self.envelope
    }

    /// SHA-256 of the signed payload: what "the same config" means across
    /// envelopes (a re-signing after a key rotation keeps the payload).
    pub fn payload_sha256(&self) -> [u8; 32] {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.payload);
        d.as_ref().try_into().expect("SHA-256 is 32 bytes")
    }
}
