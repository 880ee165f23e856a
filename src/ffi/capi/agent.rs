//! The C ABI of the agent handle: opening and closing it, the account and
//! its country, and the library's version (same conventions as [`super`];
//! `tests/ffi/c_header.rs` parses this file too).

use std::ffi::{c_char, CStr};

use super::values::{cs_agent, cs_status};
use super::{agent_ref, bytes_arg, opt_str_arg, put, run, str_arg};
use crate::error::Error;
use crate::ffi::{free_handle, into_handle};
use crate::Agent;

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
    // SAFETY: the caller keeps this function's contract (# Safety above): `db_path` is NULL or
    // NUL-terminated (`str_arg`), `root` NULL or `root_len` readable bytes (`bytes_arg`), `out`
    // NULL or writable (`put`).
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
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `iso2` NULL or NUL-terminated (`str_arg`).
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
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `account` and `country` NULL or NUL-terminated (`opt_str_arg`).
    run(|| unsafe { agent_ref(agent)?.set_account(opt_str_arg(account)?, opt_str_arg(country)?) })
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
