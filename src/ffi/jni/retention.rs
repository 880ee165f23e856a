//! The audit retention behind `SyncAgent.getAuditRetentionDays`,
//! `setAuditRetentionDays` and `pruneAudit` (one setting in the database,
//! shared by every handle and process on the file).

use ::jni::objects::JClass;
use ::jni::sys::{jint, jlong};
use ::jni::JNIEnv;

use super::values::sat;
use super::{agent_ref, run};

/// `static native int auditRetentionDays(long handle)`: days a finished
/// upload stays in the audit trail.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_auditRetentionDays<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> jint {
    run(&mut env, |_| {
        let days = agent_ref(handle)?.audit_retention_days()?;
        Ok(jint::try_from(days).unwrap_or(jint::MAX))
    })
}

/// `static native long setAuditRetentionDays(long handle, int days)`: sets
/// it (a negative `days` is refused like 0) and prunes; rows pruned.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_setAuditRetentionDays<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    days: jint,
) -> jlong {
    run(&mut env, |_| {
        let days = u32::try_from(days).unwrap_or(0);
        Ok(sat(agent_ref(handle)?.set_audit_retention_days(days)?))
    })
}

/// `static native long pruneAudit(long handle)`: prunes rows past the
/// retention (bounded per call); rows pruned.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_pruneAudit<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> jlong {
    run(&mut env, |_| Ok(sat(agent_ref(handle)?.prune_audit()?)))
}
