//! Helpers shared by the bench binaries (`harness = false`): timing, medians,
//! and a throwaway root of trust.

use std::time::{Duration, Instant};

use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::ROOT_PAYLOAD_TYPE;

/// Median of a sample (sorted copy).
pub fn median(v: &[f64]) -> f64 {
    assert!(!v.is_empty(), "median of nothing");
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The `q`-quantile (0..=1) of a sample, nearest rank.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let i = ((s.len() as f64 - 1.0) * q).round() as usize;
    s[i.min(s.len() - 1)]
}

/// Runs `f` once and returns its result and elapsed time.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

/// Prints a machine-readable result line (collected by `bench/run.sh`).
pub fn result(key: &str, value: f64, unit: &str) {
    println!("RESULT {key} {value:.6} {unit}");
}

/// A root key, a config key and a root envelope (version 1, far expiry).
pub struct Keys {
    /// Signs roots.
    pub root_key: SigningKey,
    /// Signs configs.
    pub config_key: SigningKey,
    /// The signed root (the "firmware" root).
    pub root_envelope: Vec<u8>,
}

impl Default for Keys {
    fn default() -> Keys {
        Keys::new()
    }
}

impl Keys {
    /// Deterministic keys (fixed seeds) so every run verifies the same bytes.
    pub fn new() -> Keys {
        let root_key = SigningKey::from_seed([1u8; 32]).expect("seed");
        let config_key = SigningKey::from_seed([2u8; 32]).expect("seed");
        let root_envelope = sign_envelope(
            ROOT_PAYLOAD_TYPE,
            &root_payload(
                1,
                "2099-01-01T00:00:00Z",
                &[&root_key],
                1,
                &[&config_key],
                1,
            ),
            &[&root_key],
        );
        Keys {
            root_key,
            config_key,
            root_envelope,
        }
    }
}

/// Arguments after `cargo bench --bench X --`, minus the `--bench` flag cargo adds.
pub fn args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect()
}

/// `--name value` from [`args`], parsed, or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let a = args();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
