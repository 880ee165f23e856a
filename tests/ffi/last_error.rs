//! Issue 24: `cs_last_error()` is "" after every `CS_OK`.

use std::ffi::CStr;
use std::ptr;

use cloudsync::ffi::capi::{cs_close, cs_last_error, cs_open, CS_OK};
use cloudsync::ErrorKind;

fn last_error() -> String {
    // SAFETY: never NULL, valid until the next cs_* call on this thread.
    unsafe { CStr::from_ptr(cs_last_error()) }
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_success_after_a_failure_leaves_the_last_error_empty() {
    let mut out = ptr::null_mut();
    // SAFETY: a NULL path is the bad input under test; `out` is valid.
    let st = unsafe { cs_open(ptr::null(), ptr::null(), 0, &mut out) };
    assert_eq!(st, ErrorKind::InvalidArgument.code());
    assert!(!last_error().is_empty(), "a failure sets the message");
    // cs_close(NULL) is a documented no-op.
    assert_eq!(cs_close(ptr::null_mut()), CS_OK);
    assert_eq!(last_error(), "");
}
