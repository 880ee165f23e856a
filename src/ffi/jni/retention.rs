//! The audit retention behind `SyncAgent.getAuditRetentionDays`,
//! `setAuditRetentionDays` and `pruneAudit` (one setting in the database,
//! shared by every handle and process on the file).

use ::jni::sys::jint;

use super::entry::{native, Handle};

native! {
    /// `static native int auditRetentionDays(long handle)`: days a finished
    /// upload stays in the audit trail.
    fn auditRetentionDays(handle: Handle) -> jint |_| {
        Ok(jint::try_from(handle.audit_retention_days()?).unwrap_or(jint::MAX))
    }

    /// `static native long setAuditRetentionDays(long handle, int days)`: sets
    /// it (a negative `days` is refused like 0) and prunes; rows pruned.
    fn setAuditRetentionDays(handle: Handle, days: jint) -> u64 |_| {
        handle.set_audit_retention_days(u32::try_from(days).unwrap_or(0))
    }

    /// `static native long pruneAudit(long handle)`: prunes rows past the
    /// retention (bounded per call); rows pruned.
    fn pruneAudit(handle: Handle) -> u64 |_| {
        handle.prune_audit()
    }
}
