//! The FFI shell (JNI and C). Every `unsafe` and `extern` of the crate lives here.
//!
//! Invariant S (the host app survives) is kept in one place: `run_ffi` is
//! the only way an FFI entry point runs crate code. It traps panics (turning
//! them into [`Error::Internal`]) so that no unwind ever crosses the JNI or C
//! boundary; the two shells ([`jni`] and [`capi`]) then map the error to a
//! Java exception or a C status code exactly once, at the edge.
//!
//! The agent handle both shells hand out is an opaque id in a registry of
//! open agents (see `into_handle`, `borrow_handle`, `free_handle`), never an
//! address, starting at a random offset per process and not reused before
//! about 2^31 opens (`next_id`): a handle used after it was closed, closed
//! twice, or made up is `InvalidArgument` ("agent handle is closed"), not
//! undefined behaviour (for a made-up one, best-effort: it may name a live
//! agent by chance), and a close while a call runs on another thread
//! cancels a run in progress and frees the agent when that call returns
//! (each call holds an `Arc`).
//!
//! Every `unsafe` block here carries a `// SAFETY:` comment saying what it
//! relies on; in the C entry points that is the function's `# Safety`
//! contract, which the caller keeps. `clippy::undocumented_unsafe_blocks`
//! is on for this module (and `platform`) in `lib.rs`, so CI's clippy
//! (`-D warnings`) refuses a block without one.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

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

/// The open agents by handle. A handle is an id from [`next_id`], never an
/// address: a handle that was closed (or never issued) finds nothing here
/// and is an error, not a dangling pointer. A call holds an `Arc` for its
/// duration, so a close while another thread runs frees the agent only when
/// that call returns. A plain list: a process holds a handful of agents, so
/// a scan is a few compares, and its code is a fraction of a map's (the
/// phone `.so` has a size budget).
static HANDLES: RwLock<Vec<(u64, Arc<Agent>)>> = RwLock::new(Vec::new());

/// The ids handed out: `FIRST_ID..END_ID`. Never 0 (NULL) nor a small
/// integer, never -1 or another value from `0x7fff0000` up, and below 2^31,
/// so that an id survives a round trip through a 32-bit pointer (armeabi-v7a)
/// and a `jlong` either way.
const FIRST_ID: u64 = 0x1_0000;
const END_ID: u64 = 0x7fff_0000;

/// The next id to hand out, 0 until the first open draws a random start.
/// Only touched with the registry's write lock held.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(0);

/// The next handle id: counts up from a random offset per process (so a
/// made-up handle, or one kept from an earlier process, is unlikely to name
/// a live agent), wrapping from `END_ID - 1` back to `FIRST_ID`. An id comes
/// round again only after `END_ID - FIRST_ID` (about 2^31) opens in one
/// process, and [`into_handle`] then skips the ids still open. Detecting a
/// made-up handle is best-effort: one in range names a live agent with
/// probability (open agents) / 2^31.
fn next_id() -> u64 {
    use std::hash::BuildHasher;
    let mut id = NEXT_HANDLE.load(Ordering::Relaxed);
    if id == 0 {
        // `RandomState` is keyed from the OS's randomness once per process.
        let r = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        id = FIRST_ID + r % (END_ID - FIRST_ID);
    }
    let next = if id + 1 >= END_ID { FIRST_ID } else { id + 1 };
    NEXT_HANDLE.store(next, Ordering::Relaxed);
    id
}

/// The registry, read side. No code panics while holding the lock, but a
/// poisoned lock would still hold a consistent map: recover it.
fn handles() -> RwLockReadGuard<'static, Vec<(u64, Arc<Agent>)>> {
    HANDLES.read().unwrap_or_else(PoisonError::into_inner)
}

fn handles_mut() -> RwLockWriteGuard<'static, Vec<(u64, Arc<Agent>)>> {
    HANDLES.write().unwrap_or_else(PoisonError::into_inner)
}

/// Registers `agent` and returns its handle for Java or C (never 0). The
/// handle must be released with [`free_handle`].
#[inline(never)]
pub(crate) fn into_handle(agent: Agent) -> u64 {
    let agent = Arc::new(agent);
    let mut list = handles_mut();
    let mut id = next_id();
    // After a wrap-around, an id still open is skipped (a handful at most).
    while list.iter().any(|(live, _)| *live == id) {
        id = next_id();
    }
    list.push((id, agent));
    id
}

/// One counted reference to an open agent, held for one FFI call (the
/// agent is not freed while it lives). An `Arc` whose release is out of
/// line: every entry point drops one, on its normal and its unwind path,
/// and an inlined `Arc` drop in each cost ~5 KB of the phone `.so`.
pub(crate) struct AgentRef(std::mem::ManuallyDrop<Arc<Agent>>);

impl std::ops::Deref for AgentRef {
    type Target = Agent;
    fn deref(&self) -> &Agent {
        &self.0
    }
}

impl Drop for AgentRef {
    #[inline(never)]
    fn drop(&mut self) {
        // SAFETY: `self.0` is dropped exactly once, here; `self` is not used after.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.0) }
    }
}

/// The agent behind a handle, kept alive for as long as the caller holds
/// the [`AgentRef`] (one FFI call). 0 is "agent handle is null"; a handle that was
/// closed (or never issued) is "agent handle is closed"; both
/// `InvalidArgument`. Out of line: one copy for the ~60 C and Java entry
/// points instead of a lock and a tree search inlined into each.
#[inline(never)]
pub(crate) fn borrow_handle(handle: u64) -> Result<AgentRef> {
    if handle == 0 {
        return Err(Error::InvalidArgument("agent handle is null"));
    }
    match handles().iter().find(|(id, _)| *id == handle) {
        Some((_, agent)) => Ok(AgentRef(std::mem::ManuallyDrop::new(Arc::clone(agent)))),
        // Built on this path only: an eager `ok_or` builds and drops an
        // `Error` in every entry point that inlines this.
        None => Err(closed()),
    }
}

#[cold]
#[inline(never)]
fn closed() -> Error {
    Error::InvalidArgument("agent handle is closed")
}

/// Unregisters a handle; the agent (and its database) is dropped now, or
/// when the last call still using it returns. If such calls are alive, the
/// agent is cancelled first (as Java's `close()` does), so that a run in
/// progress stops within its usual cancel latency instead of running on for
/// a handle nobody holds. 0 is a no-op; a handle that was already closed is
/// "agent handle is closed".
#[inline(never)]
pub(crate) fn free_handle(handle: u64) -> Result<()> {
    if handle == 0 {
        return Ok(());
    }
    let agent = {
        let mut list = handles_mut();
        let at = list.iter().position(|(id, _)| *id == handle);
        at.map(|i| list.swap_remove(i))
    };
    // Dropped outside the lock: closing the database may take a while.
    match agent {
        Some((_, agent)) => {
            if Arc::strong_count(&agent) > 1 {
                agent.cancel_for_good();
            }
            drop(agent);
            Ok(())
        }
        None => Err(closed()),
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

    /// An agent on an in-memory database (root v1 signed by key 1).
    pub(crate) fn test_agent() -> Agent {
        use crate::config::sign::{root_payload, sign_envelope, SigningKey};
        let key = SigningKey::from_seed([1; 32]).unwrap();
        let payload = root_payload(1, "2100-01-01T00:00:00Z", &[&key], 1, &[&key], 1);
        let root = sign_envelope(crate::config::ROOT_PAYLOAD_TYPE, &payload, &[&key]);
        Agent::open_in_memory(&root, crate::AgentOptions::default()).unwrap()
    }

    #[test]
    fn null_and_closed_handles_are_argument_errors() {
        let e = borrow_handle(0).map(drop).unwrap_err();
        assert_eq!(e.to_string(), "invalid argument: agent handle is null");
        free_handle(0).unwrap();
        let h = into_handle(test_agent());
        let held = borrow_handle(h).unwrap();
        free_handle(h).unwrap();
        // The call that still holds it keeps it alive; new calls are refused.
        assert!(held.stats().is_ok());
        let e = borrow_handle(h).map(drop).unwrap_err();
        assert_eq!(e.to_string(), "invalid argument: agent handle is closed");
        assert_eq!(
            free_handle(h).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            borrow_handle(h + 1_000_000).map(drop).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn ids_are_never_small_and_fit_in_31_bits() {
        let h = into_handle(test_agent());
        assert!((FIRST_ID..END_ID).contains(&h), "{h:#x}");
        for made_up in [1, 2, 3, 0xffff, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(
                borrow_handle(made_up).map(drop).unwrap_err().kind(),
                ErrorKind::InvalidArgument
            );
        }
        free_handle(h).unwrap();
    }

    #[test]
    fn ids_wrap_around_skipping_live_ones() {
        {
            // Under the write lock, as `into_handle` draws them.
            let _list = handles_mut();
            NEXT_HANDLE.store(END_ID - 1, Ordering::Relaxed);
            assert_eq!(next_id(), END_ID - 1);
            assert_eq!(next_id(), FIRST_ID);
        }
        let live = into_handle(test_agent());
        {
            let _list = handles_mut();
            NEXT_HANDLE.store(live, Ordering::Relaxed);
        }
        let other = into_handle(test_agent());
        assert_ne!(other, live);
        free_handle(live).unwrap();
        free_handle(other).unwrap();
    }

    #[test]
    fn closing_a_handle_in_use_cancels_it() {
        let h = into_handle(test_agent());
        let held = borrow_handle(h).unwrap();
        free_handle(h).unwrap();
        assert!(
            held.cancel.load(Ordering::SeqCst),
            "a run in progress stops"
        );
        // A run that had taken the handle but not started yet clears stale
        // cancels on entry: the close must outlive that.
        assert!(
            held.closing.load(Ordering::SeqCst),
            "and so does a later one"
        );
        drop(held);
        // Nobody else holds it: nothing to cancel.
        let h = into_handle(test_agent());
        free_handle(h).unwrap();
    }

    #[cfg(feature = "ffi-test-hooks")]
    #[test]
    fn sample_errors_have_their_kind() {
        for k in ErrorKind::ALL {
            assert_eq!(sample_error(k).kind(), k);
        }
    }
}
