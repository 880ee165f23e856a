//! The C ABI of `include/cloudsync.h`, which `cargo run -p xtask -- header`
//! generates from this directory (cbindgen reads the signatures, structs
//! and doc comments written here) and from the Rust tables of the enum codes
//! (`crate::codes`: `CS_STATE_*`, `CS_STOP_*`, ...); `-- header --check` in CI
//! fails when the committed header differs.
//!
//! Every function returns a `cs_status`: `CS_OK` (0) or the
//! [`ErrorKind::code`] of the failure, with a message for [`cs_last_error`]
//! kept per thread. Every body is one `c_body!`: the checks of its pointer
//! arguments (NULL is `CS_INVALID_ARGUMENT` with the parameter's name, never
//! a crash; strings strict UTF-8; lengths bounded; the handle looked up in
//! the registry of `ffi`, so a closed handle is an error too) and the call,
//! all inside `run`, which traps panics (`run_ffi`) so that nothing unwinds
//! into C. `cs_close` accepts NULL like `free`.
//!
//! The credential callback is wrapped as a
//! [`CredentialProvider`](crate::auth::CredentialProvider) that copies the
//! token out of a buffer it zeroes afterwards; the token then lives in a
//! [`Secret`](crate::auth::Secret) for one run at most.
//!
//! Layout, the same files as `jni/` for the same concerns: this file holds
//! the single runner, `c_body!`, the per-thread last error (`cs_last_error`)
//! and the name functions (`cs_status_name`, `cs_state_name`, ...);
//! `args.rs` the argument checkers; `agent.rs` opens and closes the handle,
//! signs in and out and reports the version; `config.rs` installs envelopes,
//! refreshes the config and reports what is installed, its regions and the
//! approved region; `queue.rs` enqueues and reads and changes the queue
//! (items, counters, the audit trail, held items); `runs.rs` runs (with
//! progress or per-item events), `cs_cancel` and the credential callback;
//! `retention.rs` the audit retention; `hooks.rs` the entry points that
//! exist only with `ffi-test-hooks`; `values.rs` the value types and their
//! conversions, a leaf that the other files use.

#![warn(unsafe_op_in_unsafe_fn)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

use super::{run_ffi, run_quietly};
use crate::error::{ErrorKind, Result};
use crate::{AccountState, EventKind, HeldReason, State, StopReason};

/// The body of every C entry point that returns a `cs_status`, from its
/// parameters and one expression:
///
/// ```ignore
/// c_body!(agent: agent, envelope: slice(len) => agent.install(envelope).map(drop))
/// ```
///
/// Each `name: kind` or `name: kind(len)` rebinds the parameter `name`
/// through the checker `args::kind` (NULL, UTF-8, length; messages from the
/// parameter's name, e.g. "out_id is null"), in the order listed, before the
/// expression runs; parameters not listed are passed as they are. The whole
/// body runs in [`run`]: panics trapped, the error mapped to its status code
/// and message once. Only the messages a kind can return are built (each is
/// a string in the library).
///
/// Only the checkers run inside `unsafe` (each in its own block, whose
/// SAFETY comment is the entry point's `# Safety` contract); the expression
/// runs outside, so an unsafe operation of its own (calling a C callback,
/// reading a pointer the checkers did not see) needs its own `unsafe {}` and
/// SAFETY comment (`unsafe_op_in_unsafe_fn` is on for this module, and
/// `clippy::undocumented_unsafe_blocks` for `ffi`).
macro_rules! c_body {
    ($($arg:ident: $kind:ident $(($len:ident))?),* => $body:expr) => {
        $crate::ffi::capi::run(|| {
            $(c_body!(@arg $arg $kind $($len)?);)*
            $body
        })
    };
    (@arg $arg:ident agent) => {
        let $arg = $crate::ffi::capi::args::agent($arg)?;
    };
    (@arg $arg:ident string) => {
        // SAFETY: the entry point's contract: NULL (refused here) or a
        // NUL-terminated string valid for the call.
        let $arg = unsafe {
            $crate::ffi::capi::args::string(
                $arg,
                concat!(stringify!($arg), " is null"),
                concat!(stringify!($arg), " is not valid UTF-8"),
            )
        }?;
    };
    (@arg $arg:ident opt_string) => {
        // SAFETY: the entry point's contract: NULL or a NUL-terminated
        // string valid for the call.
        let $arg = unsafe {
            $crate::ffi::capi::args::opt_string(
                $arg,
                concat!(stringify!($arg), " is not valid UTF-8"),
            )
        }?;
    };
    (@arg $arg:ident out) => {
        // SAFETY: the entry point's contract: NULL (refused here) or
        // writable for the call.
        let mut $arg = unsafe {
            $crate::ffi::capi::args::out($arg, concat!(stringify!($arg), " is null"))
        }?;
    };
    (@arg $arg:ident $kind:ident $len:ident) => {
        // SAFETY: the entry point's contract: NULL (refused here) or valid
        // for `$len` values (or bytes) for the call; lengths past
        // `isize::MAX` bytes are refused here too.
        #[allow(unused_mut)]
        let mut $arg = unsafe {
            $crate::ffi::capi::args::$kind(
                $arg,
                $len,
                concat!(stringify!($arg), " is null"),
                concat!(stringify!($arg), " is too long"),
            )
        }?;
    };
}

mod agent;
mod args;
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
pub(crate) fn run(f: impl FnOnce() -> Result<()>) -> cs_status {
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
            // Inside: even a `Display` that panics cannot unwind into C.
            run_quietly(|| set_last_error(&e.to_string()));
            e.kind().code()
        }
    }
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

/// The name of a status code (`"ok"`, `"malformed"`, ... the constant's
/// name without `CS_`, in lower case), or `"unknown"` for a code this build
/// does not define. A static string, never NULL; does not touch the last error.
#[no_mangle]
pub extern "C" fn cs_status_name(status: cs_status) -> *const c_char {
    if status == CS_OK {
        return c"ok".as_ptr();
    }
    name_or_unknown(ErrorKind::from_code(status).map(ErrorKind::c_name))
}

/// The name of a `CS_STATE_*` code (`"pending"`, ...), or `"unknown"`. A
/// static string, never NULL.
#[no_mangle]
pub extern "C" fn cs_state_name(code: i32) -> *const c_char {
    name_or_unknown(State::from_code(code).map(State::c_name))
}

/// The name of a `CS_HELD_*` code (`"region"`, `"account"`), or `"unknown"`
/// (also for -1, no reason). A static string, never NULL.
#[no_mangle]
pub extern "C" fn cs_held_reason_name(code: i32) -> *const c_char {
    name_or_unknown(HeldReason::from_code(code).map(HeldReason::c_name))
}

/// The name of a `CS_STOP_*` code (`"drained"`, ...), or `"unknown"`. A
/// static string, never NULL.
#[no_mangle]
pub extern "C" fn cs_stop_reason_name(code: i32) -> *const c_char {
    name_or_unknown(StopReason::from_code(code).map(StopReason::c_name))
}

/// The name of a `CS_EVENT_*` code (`"started"`, ...), or `"unknown"`. A
/// static string, never NULL.
#[no_mangle]
pub extern "C" fn cs_event_kind_name(code: i32) -> *const c_char {
    name_or_unknown(EventKind::from_code(code).map(EventKind::c_name))
}

/// The name of a `CS_ACCOUNT_*` code (`"never_set"`, ...), or `"unknown"`. A
/// static string, never NULL.
#[no_mangle]
pub extern "C" fn cs_account_state_name(code: i32) -> *const c_char {
    name_or_unknown(AccountState::from_code(code).map(AccountState::c_name))
}

/// The name functions' result: "unknown" (the name Java's enums give a
/// value they do not know) for a code without a name.
fn name_or_unknown(name: Option<&'static CStr>) -> *const c_char {
    name.unwrap_or(c"unknown").as_ptr()
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
