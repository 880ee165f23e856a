//! libFuzzer entry of the `config_payload` target; the body is
//! [`cloudsync_fuzz::config_payload`] (also replayed over the corpus by `tests/replay.rs`).
//!
//! Run: `scripts/fuzz.sh config_payload [seconds]`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cloudsync_fuzz::config_payload(data);
});
