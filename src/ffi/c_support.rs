//! The support half of the C ABI (`super::capi` holds the `extern "C"`
//! functions, which `tests/c_header.rs` parses): the single runner and its
//! per-thread last error, the pointer-argument helpers, and the credential
//! callback as a [`CredentialProvider`].

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

use zeroize::Zeroizing;

use super::capi::{cs_agent, cs_status, CS_OK};
use super::{borrow_handle, run_ffi, run_quietly};
use crate::auth::{CredentialProvider, CredentialRequest, ProviderError, Secret, MAX_TOKEN_LEN};
use crate::error::{Error, Result};
use crate::Agent;

thread_local! {
    pub(super) static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(super) fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|cell| *cell.borrow_mut() = c);
}

/// The single C runner: clears the thread's last error, runs `f` with panics
/// trapped, and turns an error into its status code and message.
pub(super) fn run(f: impl FnOnce() -> Result<()>) -> cs_status {
    clear_last_error();
    status_of(run_ffi(f))
}

// The two halves of `run` that do not depend on `f` are kept out of line:
// one copy in the library instead of one per entry point.

#[inline(never)]
pub(super) fn clear_last_error() {
    run_quietly(|| set_last_error(""));
}

#[inline(never)]
pub(super) fn status_of(result: Result<()>) -> cs_status {
    match result {
        Ok(()) => CS_OK,
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
pub(super) unsafe fn put<T>(out: *mut T, value: T, what: &'static str) -> Result<()> {
    if out.is_null() {
        return Err(Error::InvalidArgument(what));
    }
    // SAFETY: non-null and, per the contract, valid for writes.
    unsafe { out.write(value) };
    Ok(())
}

/// # Safety
/// `s` is NULL or a NUL-terminated string that stays valid for the call.
pub(super) unsafe fn str_arg<'a>(s: *const c_char, null_msg: &'static str) -> Result<&'a str> {
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
pub(super) unsafe fn opt_str_arg<'a>(s: *const c_char) -> Result<Option<&'a str>> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { str_arg(s, "") }.map(Some)
}

/// # Safety
/// `p` is NULL or points to `len` readable bytes.
pub(super) unsafe fn bytes_arg<'a>(
    p: *const u8,
    len: usize,
    null_msg: &'static str,
) -> Result<&'a [u8]> {
    if p.is_null() {
        return Err(Error::InvalidArgument(null_msg));
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArgument("length too large"));
    }
    // SAFETY: non-null, `len` readable bytes per the contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// # Safety
/// `agent` is NULL or a live handle from `cs_open`.
pub(super) unsafe fn agent_ref<'a>(agent: *const cs_agent) -> Result<&'a Agent> {
    // SAFETY: forwarded contract.
    unsafe { borrow_handle(agent) }
}

/// Copies `s` into a C buffer of `len` bytes, NUL-terminated, or fails if it
/// does not fit (the buffer then holds an empty string).
///
/// # Safety
/// `buf` is NULL or valid for writes of `len` bytes.
pub(super) unsafe fn copy_str(buf: *mut c_char, len: usize, s: &str) -> Result<()> {
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

/// `s` as a fixed C string field of `N` bytes, NUL-terminated (truncated to
/// `N - 1` bytes on a character boundary).
pub(super) fn c_field<const N: usize>(s: &str) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    let mut n = s.len().min(N - 1);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    for (o, b) in out.iter_mut().zip(&s.as_bytes()[..n]) {
        *o = *b as c_char;
    }
    out
}

/// The `user` pointer of a credential callback.
pub(super) struct UserPtr(pub(super) *mut c_void);

// SAFETY: the library never dereferences the pointer; it only hands it back
// to the caller's callback, on whichever thread runs `cs_run_once`. The
// header makes the caller responsible for what it points to being usable
// from that thread and alive until the callback is replaced (and runs that
// started with it returned) or the agent is freed.
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
    use std::sync::Arc;

    use super::*;

    #[test]
    fn c_field_truncates_on_a_char_boundary() {
        let f: [c_char; 64] = c_field("in");
        assert_eq!(f[0] as u8, b'i');
        assert_eq!(f[2], 0);
        let long = "é".repeat(40); // 80 bytes
        let f: [c_char; 64] = c_field(&long);
        assert_eq!(f[62], 0, "63rd byte would split a character");
        assert_eq!(f[63], 0);
    }

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
