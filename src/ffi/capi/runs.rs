//! The C ABI of runs: `cs_run_once` with its progress callback,
//! `cs_run_with_events` with per-item events, `cs_cancel`, and the
//! credential callback (`cs_set_credential_provider`) wrapped as a
//! [`CredentialProvider`] (same conventions as [`super`]).

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use super::values::{cs_agent, cs_event, cs_run_report, cs_status, event_of, report_of};
use crate::auth::{CredentialProvider, CredentialRequest, ProviderError, Secret, MAX_TOKEN_LEN};
use crate::{Progress, RunEvent};

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

/// Event callback of [`cs_run_with_events`], called on the thread running it
/// with no lock of the agent held; `e` is valid for the call only. Returns 0
/// to continue; any other value cancels the run.
pub type cs_event_fn = Option<unsafe extern "C" fn(user: *mut c_void, e: *const cs_event) -> c_int>;

/// Sets (or, with a NULL `cb`, clears) the credential callback and its `user`.
///
/// # Safety
/// `agent` is NULL or a handle; `cb` is NULL or a valid callback that may be
/// called with `user` on any thread running `cs_run_once` or
/// `cs_run_with_events`. `cb` and `user` must stay valid until it is
/// replaced and the runs that started with it have returned, or, after
/// `cs_close`, until every call using the handle has returned (a run that
/// `cs_close` cancels may still call it before it returns).
#[no_mangle]
pub unsafe extern "C" fn cs_set_credential_provider(
    agent: *mut cs_agent,
    cb: cs_credential_fn,
    user: *mut c_void,
) -> cs_status {
    c_body!(agent: agent => {
        let provider = cb.map(|f| {
            Arc::new(CCredentials {
                f,
                user: UserPtr(user),
            }) as Arc<dyn CredentialProvider>
        });
        agent.set_credential_provider(provider);
        Ok(())
    })
}

/// Uploads due items of the approved region until none is due, `max_ms`
/// elapsed, or `cs_cancel` is called from another thread. `cb` (may be NULL)
/// is called on this thread with `user`.
///
/// # Safety
/// `agent` is NULL or a handle; `cb` is NULL or a valid callback;
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_run_once(
    agent: *mut cs_agent,
    max_ms: u64,
    cb: cs_progress_fn,
    user: *mut c_void,
    out: *mut cs_run_report,
) -> cs_status {
    c_body!(agent: agent, out: out => {
        let mut progress = |p: Progress| -> bool {
            cb.is_none_or(|f| {
                // SAFETY: the contract: `cb` is a valid callback, callable
                // with `user` on this thread (the one that called us).
                unsafe { f(user, p.item_id, p.sent, p.total) == 0 }
            })
        };
        out.set(report_of(&agent.run_once(Duration::from_millis(max_ms), &mut progress)?))
    })
}

/// [`cs_run_once`] with one callback for progress and the per-item events
/// (`cs_event`): started, progress, done, failed, held; each completion once.
///
/// # Safety
/// `agent` is NULL or a handle; `cb` is NULL or a valid callback;
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_run_with_events(
    agent: *mut cs_agent,
    max_ms: u64,
    cb: cs_event_fn,
    user: *mut c_void,
    out: *mut cs_run_report,
) -> cs_status {
    c_body!(agent: agent, out: out => {
        let mut listener = |e: &RunEvent| {
            cb.is_none_or(|f| {
                let event = event_of(e);
                // SAFETY: the contract: `cb` is a valid callback, callable
                // with `user` on this thread; `event` outlives the call.
                unsafe { f(user, &event) == 0 }
            })
        };
        let r = agent.run_with_events(Duration::from_millis(max_ms), &mut listener)?;
        out.set(report_of(&r))
    })
}

/// Asks a `cs_run_once` or `cs_run_with_events` running on another thread
/// to stop soon. Does not block. It cannot cut a callback short: a callback
/// that blocks holds the run until it returns.
#[no_mangle]
pub extern "C" fn cs_cancel(agent: *const cs_agent) -> cs_status {
    c_body!(agent: agent => {
        agent.cancel();
        Ok(())
    })
}

/// The `user` pointer of a credential callback.
pub(super) struct UserPtr(pub(super) *mut c_void);

// SAFETY: the library never dereferences the pointer; it only hands it back
// to the caller's callback, on whichever thread runs `cs_run_once`. The
// header makes the caller responsible for what it points to being usable
// from that thread and alive until the callback is replaced (and runs that
// started with it returned) or every call using the closed handle returned.
unsafe impl Send for UserPtr {}
// SAFETY: as above; shared access only copies the pointer.
unsafe impl Sync for UserPtr {}

/// A C credential callback as a [`CredentialProvider`].
pub(super) struct CCredentials {
    pub(super) f: unsafe extern "C" fn(
        *mut c_void,
        *const c_char,
        *const c_char,
        *const c_char,
        c_int,
        *mut c_char,
        usize,
        *mut usize,
    ) -> c_int,
    pub(super) user: UserPtr,
}

impl CredentialProvider for CCredentials {
    fn credential(
        &self,
        r: &CredentialRequest<'_>,
    ) -> std::result::Result<Option<Secret>, ProviderError> {
        let c = |s: &str| CString::new(s).map_err(|_| ProviderError::new("NUL in a request"));
        let (account, region, service) = (c(r.account)?, c(r.region)?, c(r.service)?);
        // Wiped on drop, whatever the callback wrote.
        let mut buf = Zeroizing::new(vec![0u8; MAX_TOKEN_LEN]);
        let mut len = 0usize;
        // SAFETY: the caller vouches for the callback and its `user`; the
        // strings live until it returns and `buf` holds `buf.len()` bytes.
        let rc = unsafe {
            (self.f)(
                self.user.0,
                account.as_ptr(),
                region.as_ptr(),
                service.as_ptr(),
                c_int::from(r.refresh),
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut len,
            )
        };
        match rc {
            0 if len <= buf.len() => Secret::from_bytes(&buf[..len])
                .map(Some)
                .map_err(|_| ProviderError::new("callback wrote a token that is not UTF-8")),
            0 => Err(ProviderError::new("callback claimed out_len > out_cap")),
            1 => Ok(None),
            n => Err(ProviderError::new(format!("callback returned {n}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;
    use std::sync::Arc;

    use super::*;

    /// `*user` picks the answer: 0 writes "tok" (or "new" on a refresh), 1
    /// none, 2 claims more than `out_cap`, anything else is returned as is.
    unsafe extern "C" fn callback(
        user: *mut c_void,
        account: *const c_char,
        _region: *const c_char,
        _service: *const c_char,
        refresh: c_int,
        out: *mut c_char,
        out_cap: usize,
        out_len: *mut usize,
    ) -> c_int {
        // SAFETY: called by `CCredentials` only, with `user` pointing to a
        // live `c_int`, NUL-terminated strings, and `out_cap` writable bytes
        // at `out` (asserted below: `MAX_TOKEN_LEN`, more than the 3 written).
        unsafe {
            assert_eq!(CStr::from_ptr(account).to_bytes(), b"acct");
            assert_eq!(out_cap, MAX_TOKEN_LEN);
            let mode = *user.cast::<c_int>();
            let token: &[u8] = if refresh != 0 { b"new" } else { b"tok" };
            std::ptr::copy_nonoverlapping(token.as_ptr(), out.cast::<u8>(), token.len());
            *out_len = if mode == 2 { out_cap + 1 } else { token.len() };
            if mode == 2 {
                0
            } else {
                mode
            }
        }
    }

    #[test]
    fn credential_callback_answers() {
        use crate::auth::RunAuth;
        let ask = |mut mode: c_int, refresh: bool| {
            let p = CCredentials {
                f: callback,
                user: UserPtr((&raw mut mode).cast()),
            };
            let auth = RunAuth::new(Some(Arc::new(p)), Some("acct".into()), "in", &|| Ok(()));
            auth.bearer("backup", refresh)
                .map(|h| h.to_str().unwrap().to_string())
                .map_err(|e| e.to_string())
        };
        assert_eq!(ask(0, false).unwrap(), "Bearer tok");
        assert_eq!(ask(0, true).unwrap(), "Bearer new");
        assert!(ask(1, false).unwrap_err().contains("no credentials"));
        assert!(ask(2, false).unwrap_err().contains("out_len > out_cap"));
        assert_eq!(
            ask(7, false).unwrap_err(),
            "unauthorized: the credential provider failed: callback returned 7"
        );
    }
}
