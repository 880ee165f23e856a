//! Start-up costs (`cargo bench --bench startup`, harness = false).
//!
//! 1. `VerifiedConfig::verify` of a signed 50-region config under a
//!    `TrustedRoot::from_initial` root (with and without one `ca_certs` PEM
//!    per region).
//! 2. Cold `Agent::open` on an existing DB file: open, pragmas, migration
//!    check, trust-store load and re-verification of the stored 50-region
//!    config (the DB also holds queued items).
//! 3. The same open when the stored root is 3 versions above the firmware
//!    root, each step rotating the root key (3 chain rows to verify from the
//!    firmware root: issue 21), interleaved with 2 so both see the same load.
//!
//! Options (after `--`): `--regions N` (50), `--verify-iters N` (500),
//! `--open-iters N` (100), `--items N` (10000).

use cloudsync_testkit::bench as common;

use std::time::Instant;

use cloudsync::config::model::unix_secs;
use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::{TrustedRoot, VerifiedConfig, CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};
use cloudsync::Agent;
use common::{arg, median, quantile, result, Keys};

fn ca_pem(i: usize) -> String {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, format!("Region {i} CA"));
    let key = rcgen::KeyPair::generate().expect("key");
    p.self_signed(&key).expect("self-signed").pem()
}

/// A config with `n` regions, each with a service, two host rules, two pins,
/// two networks and (optionally) one CA certificate; ~250 countries.
fn config_payload(n: usize, with_ca: bool) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut regions = serde_json::Map::new();
    for i in 0..n {
        let id = format!("r{i:02}");
        let mut r = serde_json::json!({
            "services": {
                "backup": {"url": format!("https://backup.{id}.example.net/files/"), "protocol": "tus"},
                "photos": {"url": format!("https://photos.storage.{id}.example.net:8443/tus/"), "protocol": "tus"},
            },
            "allowed_hosts": [format!("backup.{id}.example.net"), format!("*.storage.{id}.example.net:8443")],
            "pins": [b64.encode([i as u8; 32]), b64.encode([(i + 100) as u8; 32])],
            "networks": [format!("203.0.{}.0/24", i % 256), format!("2001:db8:{i:x}::/48")],
        });
        if with_ca {
            r["ca_certs"] = serde_json::json!([ca_pem(i)]);
        }
        regions.insert(id, r);
    }
    let mut countries = serde_json::Map::new();
    let mut k = 0;
    'outer: for a in b'A'..=b'Z' {
        for b in b'A'..=b'Z' {
            if k == 250 {
                break 'outer;
            }
            let cc = String::from_utf8(vec![a, b]).expect("ascii");
            countries.insert(cc, serde_json::Value::String(format!("r{:02}", k % n)));
            k += 1;
        }
    }
    countries.insert("*".into(), serde_json::Value::String("r00".into()));
    serde_json::to_vec(&serde_json::json!({
        "version": 1,
        "issued_at": "2020-01-01T00:00:00Z",
        "expires_at": "2099-01-01T00:00:00Z",
        "countries": countries,
        "regions": regions,
    }))
    .expect("JSON")
}

// Long: one bench from set-up to its result lines, read top to bottom.
fn main() {
    let n_regions: usize = arg("--regions", 50);
    let verify_iters: usize = arg("--verify-iters", 500);
    let open_iters: usize = arg("--open-iters", 100);
    let n_items: usize = arg("--items", 10_000);
    let keys = Keys::new();
    let now = unix_secs(std::time::SystemTime::now());

    // Root verification (done at every open too).
    let mut lat = Vec::new();
    for _ in 0..verify_iters {
        let t = Instant::now();
        let r = TrustedRoot::from_initial(&keys.root_envelope, now).expect("root");
        lat.push(t.elapsed().as_secs_f64());
        drop(r);
    }
    println!(
        "TrustedRoot::from_initial: median {:.1} us",
        median(&lat) * 1e6
    );
    result("root_verify_median_us", median(&lat) * 1e6, "us");
    let root = TrustedRoot::from_initial(&keys.root_envelope, now).expect("root");

    // Both configs, verified alternately so both see the same machine load.
    let variants: Vec<(&str, bool, Vec<u8>)> = [("plain", false), ("ca", true)]
        .into_iter()
        .map(|(label, with_ca)| {
            let env = sign_envelope(
                CONFIG_PAYLOAD_TYPE,
                &config_payload(n_regions, with_ca),
                &[&keys.config_key],
            );
            let cfg = VerifiedConfig::verify(&root, &env).expect("config verifies");
            assert_eq!(cfg.regions().len(), n_regions);
            (label, with_ca, env)
        })
        .collect();
    let mut lat = vec![Vec::with_capacity(verify_iters); variants.len()];
    for i in 0..verify_iters {
        for k in 0..variants.len() {
            let k = (k + i) % variants.len();
            let t = Instant::now();
            let c = VerifiedConfig::verify(&root, &variants[k].2).expect("verify");
            lat[k].push(t.elapsed().as_secs_f64());
            drop(c);
        }
    }
    for (k, (label, with_ca, env)) in variants.iter().enumerate() {
        println!(
            "VerifiedConfig::verify, {n_regions} regions ({}; envelope {} KiB): median {:.1} us, p99 {:.1} us",
            if *with_ca { "1 ca_certs PEM per region" } else { "no ca_certs" },
            env.len() / 1024,
            median(&lat[k]) * 1e6,
            quantile(&lat[k], 0.99) * 1e6
        );
        result(
            &format!("config_verify_{label}_median_us"),
            median(&lat[k]) * 1e6,
            "us",
        );
        result(
            &format!("config_{label}_envelope_kib"),
            env.len() as f64 / 1024.0,
            "KiB",
        );
    }
    let with_ca_env = variants[1].2.clone();

    // Cold Agent::open on an existing DB holding the 50-region config (with CAs) and queued items.
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("cloudsync.db");
    let files_dir = tmp.path().join("files");
    std::fs::create_dir_all(&files_dir).expect("mkdir");
    let files: Vec<_> = (0..n_items)
        .map(|i| {
            let p = files_dir.join(format!("f{i:06}"));
            std::fs::write(&p, b"x").expect("write");
            p
        })
        .collect();
    {
        let agent = Agent::open(&db, &keys.root_envelope).expect("open");
        agent.install(&with_ca_env).expect("install config");
        agent.set_account_country("AB").expect("country");
        agent.enqueue_all(&files, "backup", 0).expect("enqueue");
        assert!(agent.approved_region().expect("fresh").is_some());
    }
    // The same database with roots v2..=v4 installed, each rotating the root key.
    let chained = tmp.path().join("chained.db");
    std::fs::copy(&db, &chained).expect("copy");
    {
        let agent = Agent::open(&chained, &keys.root_envelope).expect("open");
        let mut signer = SigningKey::from_seed([1u8; 32]).expect("seed");
        for v in 2..=4u8 {
            let next = SigningKey::from_seed([10 + v; 32]).expect("seed");
            let payload = root_payload(
                u64::from(v),
                "2099-01-01T00:00:00Z",
                &[&next],
                1,
                &[&keys.config_key],
                1,
            );
            let env = sign_envelope(ROOT_PAYLOAD_TYPE, &payload, &[&signer, &next]);
            agent.install(&env).expect("rotation");
            signer = next;
        }
    }
    let mut lat = Vec::with_capacity(open_iters);
    let mut lat_chain = Vec::with_capacity(open_iters);
    for i in 0..open_iters {
        let t = Instant::now();
        let agent = Agent::open(&db, &keys.root_envelope).expect("open");
        let d = t.elapsed().as_secs_f64();
        if i == 0 {
            println!("Agent::open, first in process: {:.2} ms", d * 1e3);
            result("agent_open_first_ms", d * 1e3, "ms");
            assert!(agent.approved_region().expect("fresh").is_some());
        }
        lat.push(d);
        drop(agent);
        let t = Instant::now();
        let agent = Agent::open(&chained, &keys.root_envelope).expect("open chained");
        lat_chain.push(t.elapsed().as_secs_f64());
        if i == 0 {
            let info = agent.config_info().expect("info");
            assert!(info.anchored && info.root_version == 4, "{info:?}");
        }
        drop(agent);
    }
    println!(
        "Agent::open on existing DB ({n_regions}-region config with CAs, {n_items} queued): median {:.2} ms, p99 {:.2} ms",
        median(&lat) * 1e3,
        quantile(&lat, 0.99) * 1e3
    );
    println!(
        "Agent::open, stored root 3 rotations above the firmware root: median {:.2} ms (+{:.3} ms), p99 {:.2} ms",
        median(&lat_chain) * 1e3,
        (median(&lat_chain) - median(&lat)) * 1e3,
        quantile(&lat_chain, 0.99) * 1e3
    );
    result("agent_open_median_ms", median(&lat) * 1e3, "ms");
    result("agent_open_p99_ms", quantile(&lat, 0.99) * 1e3, "ms");
    result(
        "agent_open_chain3_median_ms",
        median(&lat_chain) * 1e3,
        "ms",
    );
}
