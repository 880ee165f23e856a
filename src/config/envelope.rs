//! DSSE v1 envelopes: parsing, the pre-authentication encoding (PAE), and
//! counting distinct trusted signers.
//!
//! Spec: <https://github.com/secure-systems-lab/dsse/blob/master/protocol.md>.
//! The signature covers `PAE(payloadType, payload)`, never the JSON envelope,
//! so re-serialising an envelope cannot change what was signed.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<RawSignature>,
}

#[derive(Deserialize)]
struct RawSignature {
    keyid: String,
    sig: String,
}

/// A parsed (not yet verified) envelope.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The declared payload type.
    pub payload_type: String,
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
    /// `(keyid, signature bytes)` in envelope order.
    pub signatures: Vec<(String, Vec<u8>)>,
}

/// DSSE decoders must accept standard and URL-safe base64, padded or not.
fn b64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

impl Envelope {
    /// Parses envelope JSON bytes.
    pub fn parse(bytes: &[u8]) -> Result<Envelope> {
        if bytes.is_empty() {
            return Err(Error::malformed("envelope", "empty input"));
        }
        let raw: RawEnvelope =
            serde_json::from_slice(bytes).map_err(|e| Error::from_json("envelope", &e))?;
        let payload = b64(&raw.payload)
            .ok_or_else(|| Error::malformed("envelope", "payload is not base64"))?;
        let signatures = raw
            .signatures
            .into_iter()
            .map(|s| {
                let sig = b64(&s.sig)
                    .ok_or_else(|| Error::malformed("envelope", "signature is not base64"))?;
                Ok((s.keyid, sig))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Envelope {
            payload_type: raw.payload_type,
            payload,
            signatures,
        })
    }

    /// The bytes every signature covers.
    pub fn pae(&self) -> Vec<u8> {
        pae(self.payload_type.as_bytes(), &self.payload)
    }

    /// Number of *distinct* keys among `role_keyids` (resolved through `keys`)
    /// with a valid signature. Unknown keyids and keys outside the role count
    /// zero; a key that signs twice counts once.
    pub fn count_valid(&self, role_keyids: &[String], keys: &BTreeMap<String, [u8; 32]>) -> usize {
        let msg = self.pae();
        let role: BTreeSet<&str> = role_keyids.iter().map(String::as_str).collect();
        let mut valid: BTreeSet<&str> = BTreeSet::new();
        for (keyid, sig) in &self.signatures {
            if !role.contains(keyid.as_str()) || valid.contains(keyid.as_str()) {
                continue;
            }
            let Some(public) = keys.get(keyid) else {
                continue;
            };
            let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public);
            if key.verify(&msg, sig).is_ok() {
                valid.insert(keyid.as_str());
            }
        }
        valid.len()
    }

    /// Fails unless at least `threshold` distinct trusted keys of the role signed.
    pub fn require_threshold(
        &self,
        role: &'static str,
        role_keyids: &[String],
        threshold: u64,
        keys: &BTreeMap<String, [u8; 32]>,
    ) -> Result<()> {
        let valid = self.count_valid(role_keyids, keys);
        let threshold = usize::try_from(threshold).unwrap_or(usize::MAX);
        if valid >= threshold {
            Ok(())
        } else if valid == 0 {
            Err(Error::BadSignature { role })
        } else {
            Err(Error::ThresholdNotMet {
                role,
                valid,
                threshold,
            })
        }
    }
}

/// `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`,
/// lengths as ASCII decimal byte counts.
pub fn pae(payload_type: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type);
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Lowercase hex SHA-256 of a raw 32-byte public key.
pub fn keyid(public: &[u8; 32]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, public))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn key(seed: u8) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
    }

    fn signed(pt: &str, payload: &[u8], signers: &[&Ed25519KeyPair]) -> Envelope {
        let msg = pae(pt.as_bytes(), payload);
        Envelope {
            payload_type: pt.into(),
            payload: payload.to_vec(),
            signatures: signers
                .iter()
                .map(|k| {
                    let pk: [u8; 32] = k.public_key().as_ref().try_into().unwrap();
                    (keyid(&pk), k.sign(&msg).as_ref().to_vec())
                })
                .collect(),
        }
    }

    fn keymap(ks: &[&Ed25519KeyPair]) -> (Vec<String>, BTreeMap<String, [u8; 32]>) {
        let mut m = BTreeMap::new();
        let mut ids = vec![];
        for k in ks {
            let pk: [u8; 32] = k.public_key().as_ref().try_into().unwrap();
            ids.push(keyid(&pk));
            m.insert(keyid(&pk), pk);
        }
        (ids, m)
    }

    #[test]
    fn pae_matches_spec_example() {
        // The DSSE spec's own test vector.
        assert_eq!(
            pae(b"http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn duplicate_signer_counts_once_and_outsiders_count_zero() {
        let (a, b, c) = (key(1), key(2), key(3));
        let (ids, keys) = keymap(&[&a, &b]);
        let env = signed("t", b"x", &[&a, &a, &c]);
        assert_eq!(env.count_valid(&ids, &keys), 1);
        assert_eq!(
            env.require_threshold("config", &ids, 2, &keys)
                .unwrap_err()
                .to_string(),
            "config threshold not met: 1 of 2 distinct trusted keys signed"
        );
        let env = signed("t", b"x", &[&a, &b]);
        assert!(env.require_threshold("config", &ids, 2, &keys).is_ok());
        // Same keys but outside the role list: zero.
        assert_eq!(env.count_valid(&ids[..1], &keys), 1);
        assert_eq!(env.count_valid(&[], &keys), 0);
    }

    #[test]
    fn tampered_payload_or_type_fails() {
        let a = key(1);
        let (ids, keys) = keymap(&[&a]);
        let mut env = signed("t", b"payload", &[&a]);
        env.payload[0] ^= 1;
        assert_eq!(
            env.require_threshold("root", &ids, 1, &keys)
                .unwrap_err()
                .kind(),
            crate::ErrorKind::BadSignature
        );
        let mut env = signed("t", b"payload", &[&a]);
        env.payload_type = "u".into();
        assert_eq!(env.count_valid(&ids, &keys), 0);
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            &b""[..],
            b"{}",
            b"null",
            b"\x00\xff",
            br#"{"payloadType":"t","payload":"***","signatures":[]}"#,
        ] {
            assert_eq!(
                Envelope::parse(bad).unwrap_err().kind(),
                crate::ErrorKind::Malformed
            );
        }
    }
}
