//! The verdicts of [`judge`] and the re-walk of [`Trust::absorb_walk`] on
//! synthetic chains (real signatures, no database).

use super::*;
use crate::config::sign::{root_payload, sign_envelope, SigningKey};
use crate::config::ROOT_PAYLOAD_TYPE;

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed([n; 32]).expect("seed")
}

/// Root `version` with root key `rk` and config key 50, signed by `signers`.
fn root_env(version: u64, rk: u8, signers: &[u8]) -> Vec<u8> {
    let (r, c) = (key(rk), key(50));
    let keys: Vec<SigningKey> = signers.iter().map(|&s| key(s)).collect();
    let refs: Vec<&SigningKey> = keys.iter().collect();
    sign_envelope(
        ROOT_PAYLOAD_TYPE,
        &root_payload(version, "2100-01-01T00:00:00Z", &[&r], 1, &[&c], 1),
        &refs,
    )
}

fn root(version: u64, rk: u8, signers: &[u8]) -> TrustedRoot {
    TrustedRoot::reload(&root_env(version, rk, signers)).expect("valid root")
}

fn row(version: u64, rk: u8, signers: &[u8], changed: bool) -> ChainRow {
    ChainRow {
        version,
        envelope: root_env(version, rk, signers),
        changed,
    }
}

/// The genuine chain: v1..v3 under root key 1, v4 rotates to key 4 (signed
/// by 1 and 4), v5 under key 4.
fn genuine(version: u64) -> TrustedRoot {
    match version {
        1..=3 => root(version, 1, &[1]),
        4 => root(4, 4, &[1, 4]),
        v => root(v, 4, &[4]),
    }
}

#[test]
fn a_newer_firmware_root_wins_at_any_gap() {
    assert_eq!(judge(&genuine(5), &genuine(1), &[], 1), Verdict::Behind);
}

#[test]
fn the_same_version_must_be_the_same_document() {
    assert_eq!(judge(&genuine(2), &genuine(2), &[], 2), Verdict::Same);
    let other = root(2, 9, &[9]);
    assert!(matches!(
        judge(&genuine(2), &other, &[], 2),
        Verdict::Tampered(_)
    ));
}

#[test]
fn a_compacted_chain_verifies_across_unchanged_keys_and_prunes_below_the_anchor() {
    // Stored as the rotations left it: v4 (keys changed) and v5 (newest).
    let rows = [row(4, 4, &[1, 4], true), row(5, 4, &[4], false)];
    assert_eq!(
        judge(&genuine(1), &genuine(5), &rows, 1),
        Verdict::Chained { prune: false }
    );
    // From firmware v4, the row at v4 is the anchor's own: pruned.
    assert_eq!(
        judge(&genuine(4), &genuine(5), &rows, 1),
        Verdict::Chained { prune: true }
    );
}

#[test]
fn a_planted_root_never_chains_from_the_firmware_root() {
    // An attacker's self-signed root v2, with or without a forged chain row,
    // and whatever `chain_from` it wrote.
    let planted = root(2, 9, &[9]);
    assert!(matches!(
        judge(&genuine(1), &planted, &[], 0),
        Verdict::Tampered(_)
    ));
    let forged = [row(2, 9, &[9], true)];
    assert!(matches!(
        judge(&genuine(1), &planted, &forged, 1),
        Verdict::Tampered(_)
    ));
    // Claiming the chain starts above the firmware root only buys reads.
    assert_eq!(judge(&genuine(1), &planted, &[], 2), Verdict::Unverified);
}

#[test]
fn a_chain_that_reaches_another_root_is_tampering() {
    let rows = [row(4, 4, &[1, 4], true), row(5, 4, &[4], false)];
    let other5 = root(5, 7, &[4, 7]);
    assert!(matches!(
        judge(&genuine(1), &other5, &rows, 1),
        Verdict::Tampered(_)
    ));
}

#[test]
fn a_file_from_before_the_chain_is_unverified_until_re_walked() {
    let s = genuine(5);
    let fw = genuine(1);
    assert_eq!(judge(&fw, &s, &[], 5), Verdict::Unverified);
    let stored = crate::config::store::StoredTrust {
        root: s.envelope().to_vec(),
        chain_from: -1,
        ..Default::default()
    };
    let mut t = Trust::from_stored(&stored).expect("stored trust");
    t.standing = Standing::Unverified;
    // The mirrors' chain, in two calls: progress is kept between them.
    let e2 = root_env(2, 1, &[1]);
    let e3 = root_env(3, 1, &[1]);
    assert_eq!(
        t.absorb_walk(&fw, &[], &[&e2, &e3]).unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(t.standing, Standing::Unverified);
    let rows = std::mem::take(&mut t.chain_ops.push);
    assert_eq!(rows.iter().map(|r| r.version).collect::<Vec<_>>(), [2, 3]);
    let (e4, e5, e6) = (
        root_env(4, 4, &[1, 4]),
        root_env(5, 4, &[4]),
        root_env(6, 4, &[4]),
    );
    let put = t.absorb_walk(&fw, &rows, &[&e4, &e5, &e6]).unwrap();
    assert_eq!(put, [6], "v6 is put in force after the chain reached v5");
    assert_eq!(t.standing, Standing::Anchored);
    assert_eq!((t.root.version(), t.chain_from), (6, 1));
    assert!(t.trust_reset.is_none(), "no false tamper flag");
}

#[test]
fn a_re_walk_that_meets_another_stored_root_resets_to_the_chain() {
    let planted = root(3, 9, &[9]);
    let stored = crate::config::store::StoredTrust {
        root: planted.envelope().to_vec(),
        chain_from: -1,
        ..Default::default()
    };
    let mut t = Trust::from_stored(&stored).expect("stored trust");
    t.standing = Standing::Unverified;
    let (e2, e3) = (root_env(2, 1, &[1]), root_env(3, 1, &[1]));
    let put = t.absorb_walk(&genuine(1), &[], &[&e2, &e3]).unwrap();
    assert_eq!(put, [3]);
    assert_eq!(t.standing, Standing::Anchored);
    assert!(t.root.same_payload(&genuine(3)));
    assert!(t.trust_reset.is_some());
}
