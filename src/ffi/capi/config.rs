//! The C ABI of the trust state: installing envelopes, the config refresh
//! and what is installed (same conventions as [`super`]; `tests/ffi/c_header.rs`
//! parses this file too). Trust is anchored in the root passed to `cs_open`
//! (see `src/agent/anchor.rs`): `cs_config_info.anchored` and `trust_reset`
//! say how the stored trust stands against it.

use std::ffi::c_char;

use super::{cs_agent, cs_status};
use crate::error::Error;
use crate::ffi::c_support::{
    agent_ref, bytes_arg, c_field, code_of, config_info_of, out_ptr, put, run,
};
use crate::Refreshed;

/// What is installed (`cs_config_info` in C; strings "" when absent).
/// `anchored` and `trust_reset` were added at the end: code built against an
/// older header passes a smaller struct and must be rebuilt.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cs_config_info {
    /// Root version in force.
    pub root_version: u64,
    /// Config version (0: none installed).
    pub config_version: u64,
    /// Regions the config defines.
    pub region_count: u64,
    /// 1 if the config or the root is expired (against the freeze-safe clock).
    pub expired: i32,
    /// The config's expiry, RFC 3339 UTC.
    pub expires_at: [c_char; 32],
    /// RFC 3339 UTC time the next config refresh is due ("" when the root lists no sources).
    pub refresh_due_at: [c_char; 32],
    /// The approved region id.
    pub approved_region: [c_char; 64],
    /// The account country (ISO 3166-1 alpha-2).
    pub country: [c_char; 3],
    /// 1 if the trust is vouched for by the root passed to `cs_open`; 0 while
    /// the stored root is newer and its chain not verified yet (a refresh
    /// re-walks it): nothing uploads and no region is approved meanwhile.
    pub anchored: i32,
    /// Why the root passed to `cs_open` last replaced the trust the database
    /// held (a planted, tampered or restored file), a fixed sentence; ""
    /// when it did not, or once a config was accepted since.
    pub trust_reset: [c_char; 128],
}

/// What one [`cs_refresh_config`] installed (`cs_refresh_report` in C).
/// `more_roots`, `config_error` and `root_in_force` were added at the end:
/// code built against an older header must be rebuilt.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cs_refresh_report {
    /// Root versions installed, one step each (0: the root did not change).
    pub roots_installed: u64,
    /// The last root version installed, now in force (0: none installed).
    pub root_version: u64,
    /// The config version installed (0: the config did not change).
    pub config_version: u64,
    /// 1 if a root or a config was installed, 0 if nothing changed.
    pub changed: i32,
    /// `host:port` of the mirror that answered, NUL-terminated.
    pub mirror: [c_char; 260],
    /// 1 if the walk stopped at 64 roots with more to come (call again).
    pub more_roots: i32,
    /// The status of the config's failure when roots were installed but the
    /// config was not (`CS_OK` when none); the next refresh is due at once.
    pub config_error: cs_status,
    /// The root version in force after the refresh (whether or not it changed).
    pub root_in_force: u64,
}

/// The C report of a refresh.
#[inline(never)]
fn refresh_report_of(r: &Refreshed) -> cs_refresh_report {
    cs_refresh_report {
        roots_installed: r.roots.len() as u64,
        root_version: r.roots.last().copied().unwrap_or(0),
        config_version: r.config.unwrap_or(0),
        changed: i32::from(!r.unchanged()),
        mirror: c_field(&r.mirror),
        more_roots: i32::from(r.more_roots),
        config_error: code_of(r.config_error.as_deref()),
        root_in_force: r.root_version,
    }
}

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
    run(|| unsafe {
        let a = agent_ref(agent)?;
        let out = out_ptr(out, "out is null")?;
        out.write(config_info_of(&a.config_info()?));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;
    use crate::ffi::capi::CS_OK;
    use crate::ErrorKind;

    #[test]
    fn refresh_reports_convert() {
        let mut r = Refreshed {
            roots: vec![3, 4],
            config: None,
            mirror: "m.example:443".into(),
            root_version: 4,
            config_error: Some(ErrorKind::ThresholdNotMet.name().to_string()),
            more_roots: true,
        };
        let c = refresh_report_of(&r);
        assert_eq!(
            (c.roots_installed, c.root_version, c.config_version),
            (2, 4, 0)
        );
        assert_eq!((c.changed, c.more_roots, c.root_in_force), (1, 1, 4));
        assert_eq!(c.config_error, ErrorKind::ThresholdNotMet.code());
        // SAFETY: `c_field` NUL-terminates.
        let mirror = unsafe { CStr::from_ptr(c.mirror.as_ptr()) };
        assert_eq!(mirror.to_bytes(), b"m.example:443");
        (r.roots, r.config_error, r.more_roots) = (Vec::new(), None, false);
        let c = refresh_report_of(&r);
        assert_eq!((c.roots_installed, c.root_version, c.changed), (0, 0, 0));
        assert_eq!(
            (c.more_roots, c.config_error, c.root_in_force),
            (0, CS_OK, 4)
        );
    }
}
