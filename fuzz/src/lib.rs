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
/// Returns whether the config was accepted (the replay test checks that the
/// seeds reach that far).
pub fn config_payload(data: &[u8]) -> bool {
    let env = sign_envelope(CONFIG_PAYLOAD_TYPE, data, &[key()]);
    let Ok(cfg) = VerifiedConfig::verify(root(), &env) else {
        return false;
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
    true
}

/// Target `host_rules`: line 1 an `allowed_hosts` rule, line 2 a URL, line
/// 3 a `Location`. Checked against two regions: the fixed one, and one
/// whose only rule is line 1 and whose service URL is line 2 (built through
/// a signed config, so the config's own checks run). Whatever a guard
/// passes, the region allows; and a URL the one-rule region passes, the
/// rule allows on its own. Returns whether the one-rule region was built.
pub fn host_rules(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let rule = lines.next().unwrap_or("");
    let url = lines.next().unwrap_or("");
    let location = lines.next().unwrap_or("");
    check_guard(region(), url, location);
    let Ok(parsed) = HostRule::parse(rule) else {
        return false;
    };
    let Some(own) = region_with(rule, url) else {
        return false;
    };
    check_guard(&own, url, location);
    let guarded = own
        .guard(url)
        .expect("the config accepted this service URL");
    assert!(parsed.allows(guarded.host(), guarded.port()));
    true
}

/// A URL (and a `Location` after it) that `region`'s guard passes names a
/// host and port the region allows.
fn check_guard(region: &ApprovedRegion, url: &str, location: &str) {
    if let Ok(u) = region.guard(url) {
        assert!(region.region().allows_host(u.host(), u.port()));
        if let Ok(next) = region.resolve(&u, location) {
            assert!(region.region().allows_host(next.host(), next.port()));
        }
    }
}

/// The region of a config whose one region allows only `rule` and serves
/// `backup` at `url`, if the config is accepted.
fn region_with(rule: &str, url: &str) -> Option<ApprovedRegion> {
    let payload = serde_json::json!({
        "version": 1,
        "issued_at": "2026-01-01T00:00:00Z",
        "expires_at": "2100-01-01T00:00:00Z",
        "countries": {"IN": "r"},
        "regions": {"r": {
            "allowed_hosts": [rule],
            "services": {"backup": {"protocol": "tus", "url": url}}
        }}
    });
    let bytes = serde_json::to_vec(&payload).expect("JSON values serialise");
    let env = sign_envelope(CONFIG_PAYLOAD_TYPE, &bytes, &[key()]);
    let cfg = VerifiedConfig::verify(root(), &env).ok()?;
    select(&cfg, "IN")
}
