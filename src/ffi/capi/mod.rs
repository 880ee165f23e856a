//! The C ABI declared in `include/cloudsync.h` (for native firmware tests).
//!
//! Every function returns a `cs_status`: `CS_OK` (0) or the
//! [`ErrorKind::code`] of the failure, with a message for [`cs_last_error`]
//! kept per thread. Every body is one call to `run`, which traps panics
//! (`run_ffi`) so that nothing unwinds into C. NULL pointers are
//! `CS_INVALID_ARGUMENT`, never a crash (except [`cs_close`], which accepts
//! NULL like `free`).
//!
//! The credential callback is wrapped as a
//! [`CredentialProvider`](crate::auth::CredentialProvider) that copies the
//! token out of a buffer it zeroes afterwards; the token then lives in a
//! [`Secret`](crate::auth::Secret) for one run at most.
//!
//! Layout, the same files as `jni/` for the same concerns: this file holds
//! the single runner and its per-thread last error (`cs_last_error`,
//! `cs_status_name`) and the pointer-argument helpers; `agent.rs` opens and
//! closes the handle, signs in and out and reports the version; `config.rs`
//! installs envelopes, refreshes the config and reports what is installed and
//! the approved region; `queue.rs` enqueues and reads and changes the queue
//! (items, counters, the audit trail, held items); `runs.rs` runs (with
//! progress or per-item events), `cs_cancel` and the credential callback;
//! `retention.rs` the audit retention; `hooks.rs` the entry points that
//! exist only with `ffi-test-hooks`; `values.rs` the value types and their
//! conversions, a leaf that the other files use.
//!
//! `tests/ffi/c_header.rs` parses the files of this directory and the header
//! and fails if their function names, parameter lists, struct fields,
//! constants or status codes drift apart.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::mem::MaybeUninit;

use super::{borrow_handle, run_ffi, run_quietly};
use crate::error::{Error, ErrorKind, Result};
use crate::Agent;

mod agent;
mod config;
#[cfg(feature = "ffi-test-hooks")]
mod hooks;
mod queue;
mod retention;
mod runs;
mod values;
pub use agent::*;
pub use config::*;
#[cfg(feature = "ffi-test-hooks")]
pub use hooks::*;
pub use queue::*;
pub use retention::*;
pub use runs::*;
pub use values::*;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|cell| *cell.borrow_mut() = c);
}

/// The single C runner: clears the thread's last error, runs `f` with panics
/// trapped, and turns an error into its status code and message. A success
/// clears the last error again: a nested call made by a callback during `f`
/// may have failed and set it, and after `CS_OK` it is always "".
fn run(f: impl FnOnce() -> Result<()>) -> cs_status {
    clear_last_error();
    status_of(run_ffi(f))
}

// The two halves of `run` that do not depend on `f` are kept out of line:
// one copy in the library instead of one per entry point.

#[inline(never)]
fn clear_last_error() {
    run_quietly(|| set_last_error(""));
}

#[inline(never)]
fn status_of(result: Result<()>) -> cs_status {
    match result {
        Ok(()) => {
            clear_last_error();
            CS_OK
        }
        Err(e) => {
            let msg = e.to_string();
            run_quietly(|| set_last_error(&msg));
            e.kind().code()
        }
    }
}

/// Writes `value` through `out`, or fails on NULL.
///
/// # Safety
/// `out` is NULL or valid for writes of `T`.
unsafe fn put<T>(out: *mut T, value: T, what: &'static str) -> Result<()> {
    if out.is_null() {
        return Err(Error::InvalidArgument(what));
    }
    // SAFETY: non-null and, per the contract, valid for writes.
    unsafe { out.write(value) };
    Ok(())
}

/// # Safety
/// `s` is NULL or a NUL-terminated string that stays valid for the call.
unsafe fn str_arg<'a>(s: *const c_char, null_msg: &'static str) -> Result<&'a str> {
    if s.is_null() {
        return Err(Error::InvalidArgument(null_msg));
    }
    // SAFETY: non-null, NUL-terminated per the contract.
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| Error::InvalidArgument("string is not valid UTF-8"))
}

/// [`str_arg`] where NULL means `None`.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string that stays valid for the call.
unsafe fn opt_str_arg<'a>(s: *const c_char) -> Result<Option<&'a str>> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { str_arg(s, "") }.map(Some)
}

/// Fails on a NULL array or one of more than `isize::MAX` bytes.
fn check_array<T>(p: *const T, len: usize, null_msg: &'static str) -> Result<()> {
    if p.is_null() {
        return Err(Error::InvalidArgument(null_msg));
    }
    if len > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(Error::InvalidArgument("length too large"));
    }
    Ok(())
}

/// # Safety
/// `p` is NULL or points to `len` readable values.
unsafe fn slice_arg<'a, T>(p: *const T, len: usize, null_msg: &'static str) -> Result<&'a [T]> {
    check_array(p, len, null_msg)?;
    // SAFETY: non-null, `len` readable values per the contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// # Safety
/// `p` is NULL or points to `len` readable bytes.
unsafe fn bytes_arg<'a>(p: *const u8, len: usize, null_msg: &'static str) -> Result<&'a [u8]> {
    // SAFETY: forwarded contract.
    unsafe { slice_arg(p, len, null_msg) }
}

/// A caller's out-parameter, checked before any work is done (so that a
/// NULL never comes after a side effect), written later with `write`.
///
/// # Safety
/// `out` is NULL or valid for writes of `T` for the call.
unsafe fn out_ptr<'a, T>(out: *mut T, what: &'static str) -> Result<&'a mut MaybeUninit<T>> {
    // SAFETY: NULL or writable per the contract; `MaybeUninit` needs no init.
    match unsafe { out.cast::<MaybeUninit<T>>().as_mut() } {
        Some(slot) => Ok(slot),
        None => Err(Error::InvalidArgument(what)), // not `ok_or`: see `borrow_handle`
    }
}

/// A caller's array of `cap` slots, checked before any work is done.
///
/// # Safety
/// `out` is NULL or valid for writes of `cap` values of `T` for the call.
unsafe fn out_slots<'a, T>(
    out: *mut T,
    cap: usize,
    what: &'static str,
) -> Result<&'a mut [MaybeUninit<T>]> {
    check_array(out, cap, what)?;
    // SAFETY: non-null and writable for `cap` values per the contract; a
    // `MaybeUninit<T>` has the layout of `T` and needs no initialisation.
    Ok(unsafe { std::slice::from_raw_parts_mut(out.cast::<MaybeUninit<T>>(), cap) })
}

/// Writes `values` into `slots` (as many as fit) and returns how many.
fn fill<T>(slots: &mut [MaybeUninit<T>], values: impl Iterator<Item = T>) -> usize {
    slots
        .iter_mut()
        .zip(values)
        .map(|(s, v)| s.write(v))
        .count()
}

/// # Safety
/// `agent` is NULL or a live handle from `cs_open`.
unsafe fn agent_ref<'a>(agent: *const cs_agent) -> Result<&'a Agent> {
    // SAFETY: forwarded contract.
    unsafe { borrow_handle(agent) }
}

/// Copies `s` into a C buffer of `len` bytes, NUL-terminated, or fails if it
/// does not fit (the buffer then holds an empty string).
///
/// # Safety
/// `buf` is NULL or valid for writes of `len` bytes.
unsafe fn copy_str(buf: *mut c_char, len: usize, s: &str) -> Result<()> {
    if buf.is_null() {
        return Err(Error::InvalidArgument("buf is null"));
    }
    if len == 0 {
        return Err(Error::InvalidArgument("buffer length is 0"));
    }
    // SAFETY: `buf` is valid for `len` bytes; `len` > 0.
    let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    if s.len() >= len {
        out[0] = 0;
        return Err(Error::InvalidArgument("buffer too small"));
    }
    out[..s.len()].copy_from_slice(s.as_bytes());
    out[s.len()] = 0;
    Ok(())
}

/// The message of the last failed call on this thread: "" after every call
/// that returned `CS_OK`, even one whose callback made a nested call that failed.
/// Valid until the next `cs_*` call on the same thread; never NULL.
#[no_mangle]
pub extern "C" fn cs_last_error() -> *const c_char {
    static EMPTY: &CStr = c"";
    let mut p = EMPTY.as_ptr();
    run_quietly(|| {
        // The CString lives in the thread-local until the next call replaces it.
        if let Ok(q) = LAST_ERROR.try_with(|cell| cell.borrow().as_ptr()) {
            p = q;
        }
    });
    p
}

/// The stable name of a status code (`"ok"`, `"malformed"`, ...; `"unknown"`
/// for codes this build does not define). A static string.
#[no_mangle]
pub extern "C" fn cs_status_name(status: cs_status) -> *const c_char {
    static NAMES: std::sync::OnceLock<Vec<(cs_status, CString)>> = std::sync::OnceLock::new();
    let mut p = c"unknown".as_ptr();
    run_quietly(|| {
        let names = NAMES.get_or_init(|| {
            let mut v = vec![(CS_OK, c"ok".to_owned())];
            v.extend(
                ErrorKind::ALL
                    .iter()
                    .map(|k| (k.code(), CString::new(k.name()).unwrap_or_default())),
            );
            v
        });
        if let Some((_, name)) = names.iter().find(|(code, _)| *code == status) {
            p = name.as_ptr();
        }
    });
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        // SAFETY: never NULL, valid until the next call on this thread.
        unsafe { CStr::from_ptr(cs_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_nested_failure_inside_a_successful_call_leaves_no_last_error() {
        // As a callback would: a failing cs_* call inside a call that succeeds.
        let st = run(|| {
            // SAFETY: a NULL path is the bad input; `out` is valid.
            let nested = unsafe {
                cs_open(
                    std::ptr::null(),
                    std::ptr::null(),
                    0,
                    &mut std::ptr::null_mut(),
                )
            };
            assert_eq!(nested, ErrorKind::InvalidArgument.code());
            assert!(!last().is_empty());
            Ok(())
        });
        assert_eq!(st, CS_OK);
        assert_eq!(last(), "");
    }
}
