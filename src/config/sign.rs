//! Producing keys and envelopes (for the `cloudsync` CLI, the demo and
//! tests). The phone never signs; this is the publisher's side.

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::Serialize;

use super::envelope::{keyid, pae};
use crate::error::{Error, Result};

/// An Ed25519 signing key, stored as its 32-byte seed.
pub struct SigningKey {
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.keyid())
    }
}

impl SigningKey {
    /// A fresh key from the OS RNG.
    pub fn generate() -> Result<SigningKey> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| Error::Internal("OS RNG unavailable".into()))?;
        Self::from_seed(seed)
    }

    /// The key for a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Result<SigningKey> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| Error::malformed("key", "bad Ed25519 seed"))?;
        Ok(SigningKey { seed, pair })
    }

    /// Parses the key file format: `ed25519-seed:<64 hex>` (whitespace trimmed).
    pub fn from_file_text(text: &str) -> Result<SigningKey> {
        let hexs = text
            .trim()
            .strip_prefix("ed25519-seed:")
            .ok_or_else(|| Error::malformed("key", "not a cloudsync key file"))?;
        let seed = hex::decode(hexs)
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| Error::malformed("key", "seed is not 64 hex characters"))?;
        Self::from_seed(seed)
    }

    /// The key file text (secret!).
    pub fn to_file_text(&self) -> String {
        format!("ed25519-seed:{}\n", hex::encode(self.seed))
    }

    /// Raw public key.
    pub fn public(&self) -> [u8; 32] {
        self.pair
            .public_key()
            .as_ref()
            .try_into()
            .expect("ed25519 public keys are 32 bytes")
    }

    /// Lowercase hex public key.
    pub fn public_hex(&self) -> String {
        hex::encode(self.public())
    }

    /// keyid: hex SHA-256 of the public key.
    pub fn keyid(&self) -> String {
        keyid(&self.public())
    }
}

#[derive(Serialize)]
struct OutSig<'a> {
    keyid: String,
    sig: &'a str,
}

/// Signs `payload` as a DSSE envelope of `payload_type` with every key given.
pub fn sign_envelope(payload_type: &str, payload: &[u8], keys: &[&SigningKey]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let msg = pae(payload_type.as_bytes(), payload);
    let sigs: Vec<(String, String)> = keys
        .iter()
        .map(|k| (k.keyid(), b64.encode(k.pair.sign(&msg))))
        .collect();
    let env = serde_json::json!({
        "payloadType": payload_type,
        "payload": b64.encode(payload),
        "signatures": sigs.iter().map(|(k, s)| OutSig { keyid: k.clone(), sig: s }).collect::<Vec<_>>(),
    });
    serde_json::to_vec_pretty(&env).expect("JSON values always serialise")
}

/// A root payload listing `root_keys` and `config_keys` with their thresholds.
pub fn root_payload(
    version: u64,
    expires_at: &str,
    root_keys: &[&SigningKey],
    root_threshold: u64,
    config_keys: &[&SigningKey],
    config_threshold: u64,
) -> Vec<u8> {
    let mut keys = serde_json::Map::new();
    for k in root_keys.iter().chain(config_keys) {
        keys.insert(
            k.keyid(),
            serde_json::json!({"type": "ed25519", "public": k.public_hex()}),
        );
    }
    let ids = |ks: &[&SigningKey]| ks.iter().map(|k| k.keyid()).collect::<Vec<_>>();
    serde_json::to_vec(&serde_json::json!({
        "version": version,
        "expires_at": expires_at,
        "keys": keys,
        "roles": {
            "root": {"keyids": ids(root_keys), "threshold": root_threshold},
            "config": {"keyids": ids(config_keys), "threshold": config_threshold},
        }
    }))
    .expect("JSON values always serialise")
}
