//! C entry points that exist only with `ffi-test-hooks` (never in the phone
//! build; same conventions as [`super`]; the generated header declares
//! them under `#if defined(CLOUDSYNC_TEST_HOOKS)`).

use super::values::cs_status;

/// Panics inside the runner, to prove the panic arrives as `CS_INTERNAL`.
/// Only in builds with the `ffi-test-hooks` feature.
#[no_mangle]
pub extern "C" fn cs_test_panic() -> cs_status {
    c_body!(=> panic!("deliberate panic from cs_test_panic"))
}
