//! The C ABI declared in `include/cloudsync.h` (for native firmware tests).
//!
//! Every function returns a `cs_status`: `CS_OK` (0) or the
//! [`ErrorKind::code`] of the failure, with a message for [`cs_last_error`]
//! kept per thread. Every body is one call to `run`, which traps panics
//! (`run_ffi`) so that nothing unwinds into C. NULL pointers are
//! `CS_INVALID_ARGUMENT`, never a crash (except [`cs_close`], which accepts
//! NULL like `free`).
//!
//! The credential callback is wrapped as a [`CredentialProvider`] that copies
//! the token out of a buffer it zeroes afterwards; the token then lives in a
//! [`Secret`] for one run at most.
//!
//! Installing envelopes, the config refresh and what is installed are in
//! `capi/config.rs`; the queue's items, the audit trail and batch enqueue in
//! `capi/queue.rs`, runs with per-item events in `capi/events.rs`, the audit
//! retention in `capi/retention.rs`.
//!
//! `tests/ffi/c_header.rs` parses this file, the files of `capi/` and the header
//! and fails if their function names, parameter lists, struct fields,
//! constants or status codes drift apart.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::Arc;
use std::time::Duration;

use super::c_support::{
    agent_ref, bytes_arg, copy_str, opt_str_arg, put, report_of, run, stats_of, str_arg,
    CCredentials, UserPtr, LAST_ERROR,
};
use super::{free_handle, into_handle, run_quietly};
use crate::auth::CredentialProvider;
use crate::error::{Error, ErrorKind};
use crate::{Agent, Progress};

mod config;
mod events;
mod queue;
mod retention;
pub use config::*;
pub use events::*;
pub use queue::*;
pub use retention::*;

/// The opaque agent handle (`cs_agent` in C; the Rust [`Agent`]).
pub type cs_agent = Agent;

/// A status code: `CS_OK` (0) or an [`ErrorKind::code`].
pub type cs_status = i32;

/// Success.
pub const CS_OK: cs_status = 0;

/// `cs_run_report.stopped`: no due item of the approved region is left.
pub const CS_STOP_DRAINED: i32 = 0;
/// `cs_run_report.stopped`: `max_ms` elapsed.
pub const CS_STOP_TIME_UP: i32 = 1;
/// `cs_run_report.stopped`: cancelled (`cs_cancel` or the progress callback).
pub const CS_STOP_CANCELLED: i32 = 2;
/// `cs_run_report.stopped`: the approved region changed (or the config expired) mid-run.
pub const CS_STOP_REGION_CHANGED: i32 = 3;
/// The account signed out, or another was signed in, during the run.
pub const CS_STOP_ACCOUNT_CHANGED: i32 = 4;

/// Progress callback of [`cs_run_once`], called on the thread running it.
/// Returns 0 to continue; any other value cancels the run. It must not
/// unwind (C++ exceptions) or `longjmp` out.
pub type cs_progress_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, item_id: i64, sent: u64, total: u64) -> c_int>;

/// Credential callback of [`cs_set_credential_provider`], called on the
/// thread running [`cs_run_once`]: writes the token for `(account, region,
/// service)` into `out` (`out_cap` bytes) and its length into `*out_len`.
/// Returns 0 (token written), 1 (no token: not signed in) or anything else
/// (failure). With `refresh` != 0 the server refused the previous token.
pub type cs_credential_fn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        account: *const c_char,
        region: *const c_char,
        service: *const c_char,
        refresh: c_int,
        out: *mut c_char,
        out_cap: usize,
        out_len: *mut usize,
    ) -> c_int,
>;

/// Queue counters (`cs_queue_stats` in C).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct cs_queue_stats {
    /// Items waiting for a run.
    pub pending: u64,
    /// Items claimed by the current runner.
    pub uploading: u64,
    /// Items waiting for a retry.
    pub failed: u64,
    /// Items given up on.
    pub dead: u64,
    /// Items held for another region.
    pub held: u64,
    /// Items confirmed (audit rows).
    pub done: u64,
    /// Bytes not yet confirmed.
    pub pending_bytes: u64,
    /// When the next pending or failed item is due, ms since the epoch (in
    /// the past: due now); -1 when none waits.
    pub next_due_at_ms: i64,
}

/// What one [`cs_run_once`] did (`cs_run_report` in C).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cs_run_report {
    /// The region id uploaded to, NUL-terminated (truncated to 63 bytes).
    pub region: [c_char; 64],
    /// Items confirmed.
    pub uploaded: u64,
    /// Bytes of those items.
    pub bytes: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Items that went dead in this run.
    pub dead: u64,
    /// Items held for another region.
    pub held: u64,
    /// Items still queued for the approved region.
    pub remaining: u64,
    /// `CS_STOP_DRAINED`, `CS_STOP_TIME_UP`, `CS_STOP_CANCELLED`, `CS_STOP_REGION_CHANGED` or `CS_STOP_ACCOUNT_CHANGED`.
    pub stopped: i32,
    /// When the next queued item is due, ms since the epoch (in the past:
    /// due now); -1 when none waits. Schedule the next run for it.
    pub next_due_at_ms: i64,
}

/// Opens (or creates) the database at `db_path` with the firmware's initial
/// root envelope and stores a new handle in `*out` (NULL on failure). The
/// root anchors every trust decision: stored trust it cannot vouch for is
/// replaced by it (`cs_config_info.trust_reset`), not refused.
///
/// # Safety
/// `db_path` is NULL or NUL-terminated; `root` is NULL or points to
/// `root_len` bytes; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_open(
    db_path: *const c_char,
    root: *const u8,
    root_len: usize,
    out: *mut *mut cs_agent,
) -> cs_status {
    run(|| unsafe {
        put(out, std::ptr::null_mut(), "out is null")?;
        let path = str_arg(db_path, "db_path is null")?;
        if path.is_empty() {
            return Err(Error::InvalidArgument("db_path is empty"));
        }
        let root = bytes_arg(root, root_len, "root is null")?;
        let handle = into_handle(Agent::open(path, root)?);
        put(out, handle, "out is null")
    })
}

/// Sets the signed-in account's country (ISO 3166-1 alpha-2, any case),
/// remembered for that account; `CS_NO_ACCOUNT` while signed out, changing
/// nothing.
///
/// # Safety
/// `agent` is NULL or a live handle; `iso2` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn cs_set_country(agent: *mut cs_agent, iso2: *const c_char) -> cs_status {
    run(|| unsafe { agent_ref(agent)?.set_account_country(str_arg(iso2, "iso2 is null")?) })
}

/// Signs `account` in (NULL: signs out) and, unless `country` is NULL, sets
/// the account's country in the same step. A country belongs to an account:
/// with a NULL `country`, the account signed in already keeps its own,
/// another gets the one remembered for it or none (no region until it gets
/// one; the first account of a queue that never had one adopts its
/// country). A sign-out clears the country in force; a country with a NULL
/// `account` is `CS_INVALID_ARGUMENT`.
///
/// # Safety
/// `agent` is NULL or a live handle; `account` and `country` are NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn cs_set_account(
    agent: *mut cs_agent,
    account: *const c_char,
    country: *const c_char,
) -> cs_status {
    run(|| unsafe { agent_ref(agent)?.set_account(opt_str_arg(account)?, opt_str_arg(country)?) })
}

/// Sets (or, with a NULL `cb`, clears) the credential callback and its `user`.
///
/// # Safety
/// `agent` is NULL or a live handle; `cb` is NULL or a valid callback that
/// may be called with `user` on any thread running `cs_run_once` until it is
/// replaced (and runs that started with it returned) or the agent is freed.
#[no_mangle]
pub unsafe extern "C" fn cs_set_credential_provider(
    agent: *mut cs_agent,
    cb: cs_credential_fn,
    user: *mut c_void,
) -> cs_status {
    run(|| unsafe {
        let provider = cb.map(|f| {
            Arc::new(CCredentials {
                f,
                user: UserPtr(user),
            }) as Arc<dyn CredentialProvider>
        });
        agent_ref(agent)?.set_credential_provider(provider);
        Ok(())
    })
}

/// Writes the approved region id into `buf` (`len` bytes, NUL-terminated);
/// an empty string when no region is approved.
///
/// # Safety
/// `agent` is NULL or a live handle; `buf` is NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cs_approved_region(
    agent: *const cs_agent,
    buf: *mut c_char,
    len: usize,
) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        // Check the buffer before asking the agent, so a bad buffer is always reported.
        copy_str(buf, len, "")?;
        let region = a.approved_region()?;
        copy_str(buf, len, region.as_ref().map(|r| r.id()).unwrap_or(""))
    })
}

/// Enqueues one file (absolute path) for `service`; its id goes to `*out_id`.
///
/// # Safety
/// `agent` is NULL or a live handle; strings are NULL or NUL-terminated;
/// `out_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_enqueue(
    agent: *mut cs_agent,
    path: *const c_char,
    service: *const c_char,
    priority: i32,
    out_id: *mut i64,
) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        let path = str_arg(path, "path is null")?;
        let service = str_arg(service, "service is null")?;
        if out_id.is_null() {
            return Err(Error::InvalidArgument("out_id is null"));
        }
        put(
            out_id,
            a.enqueue(path, service, priority)?,
            "out_id is null",
        )
    })
}

/// Uploads due items of the approved region until none is due, `max_ms`
/// elapsed, or `cs_cancel` is called from another thread. `cb` (may be NULL)
/// is called on this thread with `user`.
///
/// # Safety
/// `agent` is NULL or a live handle; `cb` is NULL or a valid callback;
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_run_once(
    agent: *mut cs_agent,
    max_ms: u64,
    cb: cs_progress_fn,
    user: *mut c_void,
    out: *mut cs_run_report,
) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        if out.is_null() {
            return Err(Error::InvalidArgument("out is null"));
        }
        let mut progress = |p: Progress| -> bool {
            match cb {
                // SAFETY: the caller vouches for the callback and its `user`.
                Some(f) => f(user, p.item_id, p.sent, p.total) == 0,
                None => true,
            }
        };
        let r = a.run_once(Duration::from_millis(max_ms), &mut progress)?;
        put(out, report_of(&r), "out is null")
    })
}

/// Asks a `cs_run_once` running on another thread to stop soon. Does not block.
///
/// # Safety
/// `agent` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn cs_cancel(agent: *const cs_agent) -> cs_status {
    run(|| unsafe {
        agent_ref(agent)?.cancel();
        Ok(())
    })
}

/// Writes the queue counters into `*out`.
///
/// # Safety
/// `agent` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_stats(agent: *const cs_agent, out: *mut cs_queue_stats) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        if out.is_null() {
            return Err(Error::InvalidArgument("out is null"));
        }
        put(out, stats_of(&a.stats()?), "out is null")
    })
}

/// Restamps held items to the approved region (user consent required); the
/// count goes to `*out_count`.
///
/// # Safety
/// `agent` is NULL or a live handle; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_rehome(agent: *mut cs_agent, out_count: *mut u64) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        if out_count.is_null() {
            return Err(Error::InvalidArgument("out_count is null"));
        }
        put(out_count, a.rehome()?, "out_count is null")
    })
}

/// Restamps held items to `region` only if it is still the approved region
/// (the one the user consented to); `CS_RESIDENCY` and nothing changed otherwise.
///
/// # Safety
/// `agent` is NULL or a live handle; `region` is NULL or a NUL-terminated
/// string; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_rehome_to(
    agent: *mut cs_agent,
    region: *const c_char,
    out_count: *mut u64,
) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        let region = str_arg(region, "region is null")?;
        if out_count.is_null() {
            return Err(Error::InvalidArgument("out_count is null"));
        }
        put(out_count, a.rehome_to(region)?, "out_count is null")
    })
}

/// Deletes held items; the count goes to `*out_count`.
///
/// # Safety
/// `agent` is NULL or a live handle; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_discard_held(agent: *mut cs_agent, out_count: *mut u64) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        if out_count.is_null() {
            return Err(Error::InvalidArgument("out_count is null"));
        }
        put(out_count, a.discard_held()?, "out_count is null")
    })
}

/// Frees the handle (closing the database). NULL is a no-op, like `free`.
///
/// # Safety
/// `agent` is NULL or a live handle that no other thread is using; it must
/// not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn cs_close(agent: *mut cs_agent) -> cs_status {
    run(|| {
        // SAFETY: per the contract we hold the only reference.
        unsafe { free_handle(agent) };
        Ok(())
    })
}

/// The message of the last failed call on this thread ("" after a success).
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

/// The library's version (`CARGO_PKG_VERSION`, e.g. `"0.1.0"`). A static
/// string; does not touch the last error.
#[no_mangle]
pub extern "C" fn cs_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => panic!("the version holds a NUL"),
        };
    VERSION.as_ptr()
}

/// Panics inside the runner, to prove the panic arrives as `CS_INTERNAL`.
/// Only in builds with the `ffi-test-hooks` feature.
#[cfg(feature = "ffi-test-hooks")]
#[no_mangle]
pub extern "C" fn cs_test_panic() -> cs_status {
    run(|| panic!("deliberate panic from cs_test_panic"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_are_argument_errors() {
        // SAFETY: every pointer is NULL, which the functions must reject.
        unsafe {
            let st = cs_open(std::ptr::null(), std::ptr::null(), 0, std::ptr::null_mut());
            assert_eq!(st, ErrorKind::InvalidArgument.code());
            let msg = CStr::from_ptr(cs_last_error()).to_str().unwrap();
            assert!(msg.contains("out is null"), "{msg}");
            assert_eq!(
                cs_cancel(std::ptr::null()),
                ErrorKind::InvalidArgument.code()
            );
            let st = cs_set_account(std::ptr::null_mut(), c"a".as_ptr(), std::ptr::null());
            assert_eq!(st, ErrorKind::InvalidArgument.code());
            let st = cs_set_credential_provider(std::ptr::null_mut(), None, std::ptr::null_mut());
            assert_eq!(st, ErrorKind::InvalidArgument.code());
            let st = cs_refresh_config(std::ptr::null_mut(), std::ptr::null_mut());
            assert_eq!(st, ErrorKind::InvalidArgument.code());
            assert_eq!(cs_close(std::ptr::null_mut()), CS_OK);
            assert_eq!(CStr::from_ptr(cs_last_error()).to_bytes(), b"");
        }
        let name = unsafe { CStr::from_ptr(cs_status_name(16)) };
        assert_eq!(name.to_str().unwrap(), "malformed");
        let name = unsafe { CStr::from_ptr(cs_status_name(12345)) };
        assert_eq!(name.to_str().unwrap(), "unknown");
    }
}
