//! What the fuzz targets share: a fixed root and a fixed config under it
//! (key seed 7, valid until 2100), and the entry point of each target as a
//! plain function, so that `tests/replay.rs` can run the same code over the
//! seed corpus on stable Rust, in CI, without libFuzzer.

use std::sync::OnceLock;

use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::{
    verify_offline, TrustedRoot, VerifiedConfig, CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE,
};
use cloudsync::region::{select, ApprovedRegion, HostRule};

/// "Now" for every check: inside the fixed root's and config's validity.
pub const NOW: u64 = 1_800_000_000;

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_seed([7; 32]).expect("a fixed seed is a key"))
}

/// The fixed root (version 1): key 7 holds the root and config roles.
pub fn root() -> &'static TrustedRoot {
    static ROOT: OnceLock<TrustedRoot> = OnceLock::new();
    ROOT.get_or_init(|| {
        let k = key();
        let payload = root_payload(1, "2100-01-01T00:00:00Z", &[k], 1, &[k], 1);
        let env = sign_envelope(ROOT_PAYLOAD_TYPE, &payload, &[k]);
        TrustedRoot::from_initial(&env, 0).expect("the fixed root verifies")
    })
}

/// The region approved for India under `fixtures/config.json`.
pub fn region() -> &'static ApprovedRegion {
    static REGION: OnceLock<ApprovedRegion> = OnceLock::new();
    REGION.get_or_init(|| {
        let env = sign_envelope(
            CONFIG_PAYLOAD_TYPE,
            include_bytes!("../fixtures/config.json"),
            &[key()],
        );
        let cfg = VerifiedConfig::verify(root(), &env).expect("the fixture config verifies");
        select(&cfg, "IN").expect("the fixture maps IN to a region")
    })
}

/// Target `envelope`: arbitrary bytes as a DSSE envelope, as an initial
/// root, a root rotation and a config under the fixed root.
pub fn envelope(data: &[u8]) {
    let _ = TrustedRoot::from_initial(data, NOW);
    let _ = root().verify_next(data, NOW);
    let _ = VerifiedConfig::verify(root(), data);
    let _ = verify_offline(root(), data, NOW);
    let _ = cloudsync::config::envelope::Envelope::parse(data);
}

/// Target `config_payload`: arbitrary bytes as the payload of a config
/// correctly signed by the fixed root's config key, so parsing and the
/// residency rules run past the signature check. An accepted config must
/// map every country it lists to a region whose endpoints pass its guard.
pub fn config_payload(data: &[u8]) {
    let env = sign_envelope(CONFIG_PAYLOAD_TYPE, data, &[key()]);
    let Ok(cfg) = VerifiedConfig::verify(root(), &env) else {
        return;
    };
    let _ = cfg.check_fresh(NOW);
    for cc in ["IN", "US", "ZZ"] {
        if let Some(region) = select(&cfg, cc) {
            for service in region.region().services().keys() {
                let url = region
                    .endpoint(service)
                    .expect("an accepted config's endpoints pass");
                assert_eq!(url.region_id(), region.id());
            }
        }
    }
}

/// Target `host_rules`: the first line as an `allowed_hosts` rule, the
/// rest as a host to match and as URLs (a service URL, then a `Location`
/// relative to it) for the guard of the fixed region. A URL the guard
/// passes must name a host and port the region allows.
pub fn host_rules(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let rule = lines.next().unwrap_or("");
    let target = lines.next().unwrap_or("");
    let location = lines.next().unwrap_or("");
    if let Ok(r) = HostRule::parse(rule) {
        let port = u16::try_from(target.len()).unwrap_or(443);
        let _ = r.allows(&target.to_ascii_lowercase(), port);
    }
    let region = region();
    if let Ok(url) = region.guard(target) {
        assert!(region.region().allows_host(url.host(), url.port()));
        if let Ok(next) = region.resolve(&url, location) {
            assert!(region.region().allows_host(next.host(), next.port()));
        }
    }
}
