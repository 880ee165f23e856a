//! The C ABI of the trust state: installing envelopes, the config refresh,
//! what is installed and the approved region (same conventions as
//! [`super`]). Trust is
//! anchored in the root passed to `cs_open` (see `src/agent/anchor.rs`):
//! `cs_config_info.anchored` and `trust_reset` say how the stored trust
//! stands against it.

use std::ffi::c_char;

use super::values::{
    config_info_of, cs_agent, cs_config_info, cs_refresh_report, cs_status, refresh_report_of,
};

/// Installs a root or config envelope (told apart by its payload type).
///
/// # Safety
/// `agent` is NULL or a handle; `envelope` is NULL or points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cs_install(
    agent: *mut cs_agent,
    envelope: *const u8,
    len: usize,
) -> cs_status {
    c_body!(agent: agent, envelope: slice(len) => agent.install(envelope).map(drop))
}

/// Fetches the next roots and the current config from the mirrors the root
/// lists (`sources`) and installs them; what changed goes to `*out`.
/// Verified roots are kept even when the config then fails
/// (`config_error`). Blocks on the network for up to 30 s.
///
/// # Safety
/// `agent` is NULL or a handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_refresh_config(
    agent: *mut cs_agent,
    out: *mut cs_refresh_report,
) -> cs_status {
    c_body!(agent: agent, out: out => out.set(refresh_report_of(&agent.refresh_config()?)))
}

/// Writes what is installed (versions, expiry, country, approved region,
/// whether the trust is anchored and why it was last reset) into `*out`.
///
/// # Safety
/// `agent` is NULL or a handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_get_config_info(
    agent: *const cs_agent,
    out: *mut cs_config_info,
) -> cs_status {
    c_body!(agent: agent, out: out => out.set(config_info_of(&agent.config_info()?)))
}

/// Writes the approved region id into `buf` (`len` bytes, NUL-terminated);
/// an empty string when no region is approved.
///
/// # Safety
/// `agent` is NULL or a handle; `buf` is NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cs_approved_region(
    agent: *const cs_agent,
    buf: *mut c_char,
    len: usize,
) -> cs_status {
    c_body!(agent: agent, buf: buf(len) => {
        buf.put(agent.approved_region()?.as_ref().map_or("", |r| r.id()))
    })
}

/// Writes the id of region `index` of the installed config (0 ..
/// `cs_config_info.region_count`, in the config's order: sorted by id) into
/// `buf` (`len` bytes, NUL-terminated; 64 always fits). `CS_NOT_FOUND` for an
/// index past the last region; `CS_NO_CONFIG` when no config is installed.
///
/// # Safety
/// `agent` is NULL or a handle; `buf` is NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cs_config_region(
    agent: *const cs_agent,
    index: usize,
    buf: *mut c_char,
    len: usize,
) -> cs_status {
    c_body!(agent: agent, buf: buf(len) => {
        let info = agent.config_info()?;
        if info.config_version.is_none() {
            return Err(crate::error::Error::NoConfig);
        }
        buf.put(info.regions.get(index).ok_or(crate::error::Error::NotFound)?)
    })
}
