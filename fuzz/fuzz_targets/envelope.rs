//! libFuzzer entry of the `envelope` target; the body is
//! [`cloudsync_fuzz::envelope`] (also replayed over the corpus by `tests/replay.rs`).
//!
//! Run: `scripts/fuzz.sh envelope [seconds]`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloudsync_fuzz::envelope(data));
