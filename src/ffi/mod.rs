//! The FFI shell (JNI and C). Every `unsafe` and `extern` of the crate lives here.
//!
//! Invariant S (the host app survives) is kept in one place: `run_ffi` is
//! the only way an FFI entry point runs crate code. It traps panics (turning
//! them into [`Error::Internal`]) so that no unwind ever crosses the JNI or C
//! boundary; the two shells ([`jni`] and [`capi`]) then map the error to a
//! Java exception or a C status code exactly once, at the edge.
//!
//! The agent handle both shells hand out is a leaked `Box<Agent>` (see
//! `into_handle`, `borrow_handle`, `free_handle`). Who guarantees that a
//! handle is not used after it is freed differs: the Java wrapper does it with
//! a read/write lock around every call, C callers must do it themselves (the
//! header says so).
//!
//! Every `unsafe` block here carries a `// SAFETY:` comment saying what it
//! relies on; in the C entry points that is the function's `# Safety`
//! contract, which the caller keeps. `clippy::undocumented_unsafe_blocks`
//! is on for this module (and `platform`) in `lib.rs`, so CI's clippy
//! (`-D warnings`) refuses a block without one.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{Error, Result};
use crate::Agent;

pub mod capi;
pub mod jni;

/// Runs `f`, trapping any panic as `Error::Internal("panic: <message>")`.
///
/// This is the one panic-trapping runner of the crate: every `extern` entry
/// point calls it (through `jni::run` or `capi::run`) and maps the error it
/// returns to the caller's convention. The closure is asserted unwind-safe:
/// the shared state it can touch is the agent, whose mutex recovers from
/// poisoning and whose database writes are transactional.
pub(crate) fn run_ffi<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(trapped(payload)),
    }
}

/// The error a trapped panic becomes, logged. Out of line: one copy for all
/// entry points instead of one inlined into each (about 200 bytes apiece).
#[cold]
#[inline(never)]
fn trapped(payload: Box<dyn Any + Send>) -> Error {
    let msg = panic_message(payload.as_ref());
    // Even a logger that panics must not unwind past this point.
    let _ = catch_unwind(|| log::error!("panic trapped at the FFI edge: {msg}"));
    Error::Internal(format!("panic: {msg}"))
}

/// Runs an error-reporting step (throwing a Java exception, storing a C
/// error message) so that even a panic there cannot unwind across the edge.
/// Returns whether `f` completed.
pub(crate) fn run_quietly(f: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            let _ = catch_unwind(|| log::error!("panic while reporting an FFI error: {msg}"));
            false
        }
    }
}

/// The text of a panic payload (`panic!` with a literal or a format string).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Moves `agent` to the heap and returns the raw handle given to Java or C.
/// The handle must be released exactly once with [`free_handle`].
pub(crate) fn into_handle(agent: Agent) -> *mut Agent {
    Box::into_raw(Box::new(agent))
}

/// Borrows the agent behind a handle; a null handle is `InvalidArgument`.
///
/// # Safety
/// `handle` is null or was returned by [`into_handle`] and has not been passed
/// to [`free_handle`]; it stays valid for the lifetime `'a` chosen by the caller
/// (the duration of one FFI call).
pub(crate) unsafe fn borrow_handle<'a>(handle: *const Agent) -> Result<&'a Agent> {
    // SAFETY: per this function's contract the pointer is null or live.
    match unsafe { handle.as_ref() } {
        Some(agent) => Ok(agent),
        // Built on this path only: an eager `ok_or` builds and drops an
        // `Error` in every entry point that inlines this.
        None => Err(Error::InvalidArgument("agent handle is null")),
    }
}

/// Frees the agent behind a handle (closing its database). Null is a no-op.
///
/// # Safety
/// `handle` is null or was returned by [`into_handle`], has not been freed
/// yet, and no other thread is using it.
pub(crate) unsafe fn free_handle(handle: *mut Agent) {
    if !handle.is_null() {
        // SAFETY: per this function's contract we own the box now.
        drop(unsafe { Box::from_raw(handle) });
    }
}

/// An error of each [`ErrorKind`](crate::ErrorKind), so that FFI tests can
/// prove every kind reaches Java and C with the right class and code.
#[cfg(feature = "ffi-test-hooks")]
pub(crate) fn sample_error(kind: crate::ErrorKind) -> Error {
    use crate::ErrorKind as K;
    match kind {
        K::BadSignature => Error::BadSignature { role: "config" },
        K::ThresholdNotMet => Error::ThresholdNotMet {
            role: "config",
            valid: 1,
            threshold: 2,
        },
        K::Rollback => Error::Rollback {
            what: "config",
            offered: 1,
            installed: 2,
        },
        K::VersionGap => Error::VersionGap {
            offered: 3,
            installed: 1,
        },
        K::Expired => Error::Expired { what: "config" },
        K::WrongPayloadType => Error::WrongPayloadType { expected: "test" },
        K::Malformed => Error::malformed("test", "sample"),
        K::InvalidEndpoint => Error::InvalidEndpoint("sample"),
        K::NoConfig => Error::NoConfig,
        K::RootMismatch => Error::RootMismatch { version: 1 },
        K::NoRegion => Error::NoRegion,
        K::Residency => Error::Residency("sample"),
        K::Busy => Error::Busy,
        K::SchemaTooNew => Error::SchemaTooNew {
            found: 99,
            supported: 1,
        },
        K::StorageCorrupt
        | K::NotADatabase
        | K::StorageUnavailable
        | K::StorageFull
        | K::Storage => Error::Storage {
            kind,
            reason: "sample".into(),
        },
        K::SourceIo => Error::SourceIo(std::io::ErrorKind::NotFound),
        K::Network => Error::Network("sample".into()),
        K::Protocol => Error::Protocol("sample".into()),
        K::Rejected => Error::Rejected(413),
        K::SourceChanged => Error::SourceChanged,
        K::Unauthorized => Error::Unauthorized(crate::error::AuthFailure::Status(401)),
        K::NoAccount => Error::NoAccount,
        K::Cancelled => Error::Cancelled,
        K::NotFound => Error::NotFound,
        K::InvalidArgument => Error::InvalidArgument("sample"),
        K::Internal => Error::Internal("sample".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn panics_become_internal_errors() {
        let e = run_ffi::<()>(|| panic!("boom {}", 42)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(e.to_string(), "internal error: panic: boom 42");
        let e = run_ffi::<()>(|| panic!("static")).unwrap_err();
        assert_eq!(e.to_string(), "internal error: panic: static");
        let e = run_ffi::<()>(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "internal error: panic: unknown panic payload"
        );
    }

    #[test]
    fn results_pass_through() {
        assert_eq!(run_ffi(|| Ok(5)).unwrap(), 5);
        assert_eq!(
            run_ffi::<()>(|| Err(Error::Busy)).unwrap_err().kind(),
            ErrorKind::Busy
        );
        assert!(run_quietly(|| {}));
        assert!(!run_quietly(|| panic!("in reporter")));
    }

    #[test]
    fn null_handle_is_an_argument_error() {
        // SAFETY: null is allowed by the contract.
        let e = unsafe { borrow_handle(std::ptr::null()) }.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        // SAFETY: null is a no-op.
        unsafe { free_handle(std::ptr::null_mut()) };
    }

    #[cfg(feature = "ffi-test-hooks")]
    #[test]
    fn sample_errors_have_their_kind() {
        for k in ErrorKind::ALL {
            assert_eq!(sample_error(k).kind(), k);
        }
    }
}
