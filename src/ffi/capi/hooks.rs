//! C entry points that exist only with `ffi-test-hooks` (never in the phone
//! build; same conventions as [`super`], and `tests/ffi/c_header.rs`
//! parses this file too).

use super::run;
use super::values::cs_status;

/// Panics inside the runner, to prove the panic arrives as `CS_INTERNAL`.
/// Only in builds with the `ffi-test-hooks` feature.
#[cfg(feature = "ffi-test-hooks")]
#[no_mangle]
pub extern "C" fn cs_test_panic() -> cs_status {
    run(|| panic!("deliberate panic from cs_test_panic"))
}
