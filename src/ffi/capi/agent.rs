//! The C ABI of the agent handle: opening and closing it, the account and
//! its country, and the library's version (same conventions as [`super`]).

use std::ffi::{c_char, CStr};

use super::args::{self, to_handle};
use super::values::{cs_agent, cs_status};
use crate::error::Error;
use crate::ffi::{free_handle, into_handle};
use crate::Agent;

/// Opens (or creates) the database at `db_path` with the firmware's initial
/// root envelope and stores a new handle in `*out` (NULL on every failure
/// but a NULL `out`: written before any other argument is checked). The
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
    // `*out` is NULL before any other argument is looked at (the header's
    // promise: NULL on every failure), so those are checked in the body.
    c_body!(out: out => {
        out.set(std::ptr::null_mut())?;
        // SAFETY: the contract: `db_path` is NULL (refused here) or
        // NUL-terminated, valid for the call.
        let db_path = unsafe { args::string(db_path, "db_path is null", "db_path is not valid UTF-8") }?;
        // SAFETY: the contract: `root` is NULL (refused here) or points to
        // `root_len` readable bytes; a length past `isize::MAX` is refused.
        let root = unsafe { args::slice(root, root_len, "root is null", "root is too long") }?;
        if db_path.is_empty() {
            return Err(Error::InvalidArgument("db_path is empty"));
        }
        out.set(to_handle(into_handle(Agent::open(db_path, root)?)))
    })
}

/// Sets the signed-in account's country (ISO 3166-1 alpha-2, any case),
/// remembered for that account; `CS_NO_ACCOUNT` while signed out, changing
/// nothing.
///
/// # Safety
/// `agent` is NULL or a handle; `iso2` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn cs_set_country(agent: *mut cs_agent, iso2: *const c_char) -> cs_status {
    c_body!(agent: agent, iso2: string => agent.set_account_country(iso2))
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
/// `agent` is NULL or a handle; `account` and `country` are NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn cs_set_account(
    agent: *mut cs_agent,
    account: *const c_char,
    country: *const c_char,
) -> cs_status {
    c_body!(agent: agent, account: opt_string, country: opt_string => {
        agent.set_account(account, country)
    })
}

/// Closes the handle. NULL is a no-op, like `free`. Every later call with
/// it (including a second `cs_close`) is `CS_INVALID_ARGUMENT` ("agent handle
/// is closed"; see the preamble on handle ids). A run still in progress on
/// another thread (`cs_run_once`, `cs_run_with_events`) is cancelled, as by
/// `cs_cancel`: it returns within its usual cancel latency with
/// `stopped == CS_STOP_CANCELLED`; any other call still running finishes
/// normally. The database is closed when the last of them returns.
#[no_mangle]
pub extern "C" fn cs_close(agent: *mut cs_agent) -> cs_status {
    c_body!(=> free_handle(agent as usize as u64))
}

/// The account state (`CS_ACCOUNT_NEVER_SET`, `CS_ACCOUNT_SIGNED_OUT` or
/// `CS_ACCOUNT_SIGNED_IN`) into `*out`. Accounts never used leave uploads
/// to services without auth working as they always did; signed out stops
/// every upload.
///
/// # Safety
/// `agent` is NULL or a handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_account_state(agent: *const cs_agent, out: *mut i32) -> cs_status {
    c_body!(agent: agent, out: out => out.set(agent.account_state()?.code()))
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

#[cfg(test)]
mod tests {
    use super::super::{
        cs_cancel, cs_last_error, cs_refresh_config, cs_set_credential_provider, cs_status_name,
        CS_OK,
    };
    use super::*;
    use crate::error::ErrorKind;

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
        // SAFETY: `cs_status_name` returns a static NUL-terminated string, never NULL.
        let name = unsafe { CStr::from_ptr(cs_status_name(16)) };
        assert_eq!(name.to_str().unwrap(), "malformed");
        // SAFETY: as above, for a code this build does not define.
        let name = unsafe { CStr::from_ptr(cs_status_name(12345)) };
        assert_eq!(name.to_str().unwrap(), "unknown");
    }
}
