//! Envelope + payload parsing and verification on arbitrary bytes: as an
//! initial root, as a root rotation, and as a config under a fixed root.
//! Nothing may panic; everything must come back as a typed error or a value.
//!
//! Run: `cargo +nightly fuzz run envelope` (from the repository root).
#![no_main]

use std::sync::OnceLock;

use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::{verify_offline, TrustedRoot, VerifiedConfig, ROOT_PAYLOAD_TYPE};
use libfuzzer_sys::fuzz_target;

fn root() -> &'static TrustedRoot {
    static ROOT: OnceLock<TrustedRoot> = OnceLock::new();
    ROOT.get_or_init(|| {
        let k = SigningKey::from_seed([7; 32]).expect("seed");
        let env = sign_envelope(ROOT_PAYLOAD_TYPE, &root_payload(1, "2100-01-01T00:00:00Z", &[&k], 1, &[&k], 1), &[&k]);
        TrustedRoot::from_initial(&env, 0).expect("fixed root verifies")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = TrustedRoot::from_initial(data, 1_800_000_000);
    let _ = root().verify_next(data, 1_800_000_000);
    let _ = VerifiedConfig::verify(root(), data);
    let _ = verify_offline(root(), data, 1_800_000_000);
    let _ = cloudsync::config::envelope::Envelope::parse(data);
});
