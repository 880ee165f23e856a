//! The C ABI of the trust state: installing envelopes, the config refresh,
//! what is installed and the approved region (same conventions as
//! [`super`]; `tests/ffi/c_header.rs` parses this file too). Trust is
//! anchored in the root passed to `cs_open` (see `src/agent/anchor.rs`):
//! `cs_config_info.anchored` and `trust_reset` say how the stored trust
//! stands against it.

use std::ffi::c_char;

use super::values::{
    config_info_of, cs_agent, cs_config_info, cs_refresh_report, cs_status, refresh_report_of,
};
use super::{agent_ref, bytes_arg, copy_str, out_ptr, put, run};
use crate::error::Error;

/// Installs a root or config envelope (told apart by its payload type).
///
/// # Safety
/// `agent` is NULL or a live handle; `envelope` is NULL or points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cs_install(
    agent: *mut cs_agent,
    envelope: *const u8,
    len: usize,
) -> cs_status {
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `envelope` NULL or `len` readable bytes (`bytes_arg`).
    run(|| unsafe {
        let a = agent_ref(agent)?;
        a.install(bytes_arg(envelope, len, "envelope is null")?)
            .map(drop)
    })
}

/// Fetches the next roots and the current config from the mirrors the root
/// lists (`sources`) and installs them; what changed goes to `*out`.
/// Verified roots are kept even when the config then fails
/// (`config_error`). Blocks on the network for up to 30 s.
///
/// # Safety
/// `agent` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_refresh_config(
    agent: *mut cs_agent,
    out: *mut cs_refresh_report,
) -> cs_status {
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `out` NULL or writable (`put`).
    run(|| unsafe {
        let a = agent_ref(agent)?;
        if out.is_null() {
            return Err(Error::InvalidArgument("out is null"));
        }
        let r = a.refresh_config()?;
        put(out, refresh_report_of(&r), "out is null")
    })
}

/// Writes what is installed (versions, expiry, country, approved region,
/// whether the trust is anchored and why it was last reset) into `*out`.
///
/// # Safety
/// `agent` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_get_config_info(
    agent: *const cs_agent,
    out: *mut cs_config_info,
) -> cs_status {
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `out` NULL or writable (`out_ptr`).
    run(|| unsafe {
        let a = agent_ref(agent)?;
        let out = out_ptr(out, "out is null")?;
        out.write(config_info_of(&a.config_info()?));
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
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `buf` NULL or writable for `len` bytes (`copy_str`).
    run(|| unsafe {
        let a = agent_ref(agent)?;
        // Check the buffer before asking the agent, so a bad buffer is always reported.
        copy_str(buf, len, "")?;
        let region = a.approved_region()?;
        copy_str(buf, len, region.as_ref().map(|r| r.id()).unwrap_or(""))
    })
}
