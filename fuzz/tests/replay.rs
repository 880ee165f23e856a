//! Replays each fuzz target over its committed seed corpus
//! (`fuzz/corpus/<target>/`) and over deterministic mutations of every seed
//! (truncations, byte flips, splices), on stable Rust without libFuzzer.
//! Not fuzzing: a regression gate that keeps the targets building and
//! every input libFuzzer ever found interesting (add crashers to the corpus)
//! from panicking. Real fuzzing: `scripts/fuzz.sh`.

use std::path::PathBuf;

/// Mutations per seed: enough to reach the error paths next to each seed.
const MUTATIONS: usize = 64;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= 3,
        "corpus {target} has {} seeds",
        seeds.len()
    );
    seeds
}

/// A small deterministic generator (xorshift64), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    match rng.below(4) {
        0 => v.truncate(rng.below(v.len() + 1)),
        1 => {
            for _ in 0..=rng.below(4) {
                if !v.is_empty() {
                    let i = rng.below(v.len());
                    v[i] ^= 1 << rng.below(8);
                }
            }
        }
        2 => {
            let at = rng.below(v.len() + 1);
            let from = rng.below(other.len() + 1);
            v.splice(at.., other[from..].iter().copied());
        }
        _ => {
            let i = rng.below(v.len() + 1);
            let byte = [b'"', b'{', b'}', b'\\', 0, 0xff, b'.', b':', b'\n'][rng.below(9)];
            v.insert(i, byte);
        }
    }
    v
}

/// Runs `f` over every seed and its mutations; returns (seeds for which
/// `f` said it reached its deep checks, inputs run).
fn replay(target: &str, f: fn(&[u8]) -> bool) -> (usize, usize) {
    let seeds = corpus(target);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut deep, mut runs) = (0, 0);
    for (i, seed) in seeds.iter().enumerate() {
        deep += usize::from(f(seed));
        let other = &seeds[(i + 1) % seeds.len()];
        for _ in 0..MUTATIONS {
            f(&mutate(&mut rng, seed, other));
            runs += 1;
        }
    }
    (deep, runs + seeds.len())
}

#[test]
fn envelope_corpus_replays() {
    let (_, runs) = replay("envelope", |d| {
        cloudsync_fuzz::envelope(d);
        true
    });
    assert!(runs > 1000, "{runs}");
}

/// The good golden configs and the fixture are accepted, so the target's
/// checks past the signature really run (a key or fixture that drifted
/// would leave the target fuzzing only the refusal).
#[test]
fn config_payload_corpus_replays_and_reaches_accepted_configs() {
    let (accepted, _) = replay("config_payload", cloudsync_fuzz::config_payload);
    assert!(accepted >= 2, "{accepted} seeds accepted");
}

/// The seeds with a valid rule and a URL it allows build the one-rule
/// region, so the rule-vs-guard check runs.
#[test]
fn host_rules_corpus_replays_and_builds_one_rule_regions() {
    let (built, _) = replay("host_rules", cloudsync_fuzz::host_rules);
    assert!(built >= 2, "{built} seeds built a region");
}

/// The fixtures themselves hold: the fixed region accepts its own service
/// URL and refuses another host, so the host_rules target exercises both
/// sides of the guard.
#[test]
fn the_fixed_region_guards_both_ways() {
    let r = cloudsync_fuzz::region();
    assert!(r.guard("https://backup.in.example.net/files/").is_ok());
    let e = r.guard("https://evil.example.com/files/").unwrap_err();
    assert_eq!(e.kind(), cloudsync::ErrorKind::Residency);
}
