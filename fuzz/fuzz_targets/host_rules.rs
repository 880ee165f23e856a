//! libFuzzer entry of the `host_rules` target; the body is
//! [`cloudsync_fuzz::host_rules`] (also replayed over the corpus by `tests/replay.rs`).
//!
//! Run: `scripts/fuzz.sh host_rules [seconds]`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cloudsync_fuzz::host_rules(data);
});
