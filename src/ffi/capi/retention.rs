//! The C ABI of the audit retention (same conventions as [`super`]). The retention is stored in the
//! database, so every handle and process on the file agrees on it.

use super::values::{cs_agent, cs_status};

/// Writes how many days finished uploads stay in the audit trail into
/// `*out_days` (400 unless set).
///
/// # Safety
/// `agent` is NULL or a handle; `out_days` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_audit_retention_days(
    agent: *const cs_agent,
    out_days: *mut u32,
) -> cs_status {
    c_body!(agent: agent, out_days: out => out_days.set(agent.audit_retention_days()?))
}

/// Sets the audit retention (1..=36500 days; `CS_INVALID_ARGUMENT`
/// otherwise, changing nothing) and prunes what it makes due; how many rows
/// went into `*out_pruned`.
///
/// # Safety
/// `agent` is NULL or a handle; `out_pruned` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_set_audit_retention_days(
    agent: *mut cs_agent,
    days: u32,
    out_pruned: *mut u64,
) -> cs_status {
    c_body!(agent: agent, out_pruned: out => {
        out_pruned.set(agent.set_audit_retention_days(days)?)
    })
}

/// Prunes audit rows past the retention, in short transactions, at most
/// 10,000 rows per call (call again while it prunes that many); runs prune
/// at their end too. How many rows went into `*out_pruned`.
///
/// # Safety
/// `agent` is NULL or a handle; `out_pruned` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_prune_audit(agent: *mut cs_agent, out_pruned: *mut u64) -> cs_status {
    c_body!(agent: agent, out_pruned: out => out_pruned.set(agent.prune_audit()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn nulls_are_argument_errors() {
        let bad = ErrorKind::InvalidArgument.code();
        let (mut days, mut n) = (0u32, 0u64);
        let null = std::ptr::null_mut();
        // SAFETY: every pointer is NULL or valid, and NULLs must be refused.
        unsafe {
            assert_eq!(cs_audit_retention_days(null, &mut days), bad);
            assert_eq!(cs_set_audit_retention_days(null, 30, &mut n), bad);
            assert_eq!(cs_prune_audit(null, &mut n), bad);
        }
    }
}
