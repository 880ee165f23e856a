//! Java value objects (`ConfigInfo`, `ConfigRefresh`, `QueueStats`,
//! `RunReport`, `AuditRecord`, `ItemInfo`) built from Rust values, kept
//! apart from the entry points so that the class names and constructor
//! signatures live in one place, and the conversions of Rust values to Java
//! ones (`sat`, `time_ms`, `opt_string`). Of the rest of `jni/` it uses only
//! the `jni` crate's error helper (`JniResultExt`, in `mod.rs`); the entry
//! points use it.

use ::jni::objects::{JObject, JObjectArray, JValue};
use ::jni::sys::{jint, jlong, jsize};
use ::jni::JNIEnv;

use super::JniResultExt;
use crate::error::{Error, Result};
use crate::queue::ops::ItemInfo;
use crate::queue::QueueStats;
use crate::{ConfigInfo, Refreshed, RunReport};

pub(super) const STRING_CLASS: &str = "java/lang/String";
const CONFIG_INFO_CLASS: &str = "com/miui/cloudsync/ConfigInfo";
/// rootVersion, configVersion (-1 = none), expired, regions, country,
/// approvedRegion, anchored, trustReset, expiresAtMillis (-1 = none),
/// refreshDueAtMillis (-1 = none). Java formats the deprecated text getters
/// from the ms (the library carries no time formatting: ~1 KB of the .so).
const CONFIG_INFO_CTOR: &str =
    "(JJZ[Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;ZLjava/lang/String;JJ)V";
const CONFIG_REFRESH_CLASS: &str = "com/miui/cloudsync/ConfigRefresh";
/// rootVersions, configVersion (-1 = none), mirror, rootVersion (in force after),
/// configError (kind name, nullable), moreRoots.
const CONFIG_REFRESH_CTOR: &str = "([JJLjava/lang/String;JLjava/lang/String;Z)V";
const QUEUE_STATS_CLASS: &str = "com/miui/cloudsync/QueueStats";
/// pending, uploading, failed, dead, held, done, pendingBytes, nextDueAt (-1 = none).
const QUEUE_STATS_CTOR: &str = "(JJJJJJJJ)V";
const RUN_REPORT_CLASS: &str = "com/miui/cloudsync/RunReport";
/// region, uploaded, bytes, failed, dead, held, remaining, stopped, nextDueAt (-1 = none).
const RUN_REPORT_CTOR: &str = "(Ljava/lang/String;JJJJJJLjava/lang/String;J)V";
const AUDIT_RECORD_CLASS: &str = "com/miui/cloudsync/AuditRecord";
/// id, itemId, service, region, host, peerIp (nullable), bytes, sentBytes (-1 = not
/// counted), sha256, finishedAtMillis.
const AUDIT_RECORD_CTOR: &str = "(JJLjava/lang/String;Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;JJLjava/lang/String;J)V";
const ITEM_INFO_CLASS: &str = "com/miui/cloudsync/ItemInfo";
/// id, path, service, priority, size, region?, state, attempts, confirmedOffset,
/// nextAttemptAt, lastErrorKind?, lastError? ("kind: message"), heldReason?, account?
/// (? = nullable).
const ITEM_INFO_CTOR: &str = "(JLjava/lang/String;Ljava/lang/String;IJLjava/lang/String;Ljava/lang/String;IJJLjava/lang/String;Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;)V";

/// u64 counters become Java longs, saturating (never negative).
pub(super) fn sat(n: u64) -> jlong {
    jlong::try_from(n).unwrap_or(jlong::MAX)
}

/// A Java string, or `null` for `None`.
pub(super) fn opt_string<'local>(
    env: &mut JNIEnv<'local>,
    s: Option<&str>,
) -> Result<JObject<'local>> {
    match s {
        Some(s) => Ok(env.new_string(s).jni()?.into()),
        None => Ok(JObject::null()),
    }
}

/// Every time Java gets (`ConfigInfo`, `QueueStats`, `RunReport`, `ItemInfo`,
/// `RunListener.onItemFailed`): ms since the epoch as stored, `-1` for none.
/// Passed through unchanged, as C passes them (the library never stores a
/// time before the epoch, so `-1` is never ambiguous): one rule, no clamping.
pub(super) fn time_ms(t: Option<i64>) -> jlong {
    t.unwrap_or(-1)
}

pub(super) fn config_info_object<'local>(
    env: &mut JNIEnv<'local>,
    info: &ConfigInfo,
) -> Result<JObject<'local>> {
    let len = jsize::try_from(info.regions.len())
        .map_err(|_| Error::Internal("too many regions".into()))?;
    let regions = env
        .new_object_array(len, STRING_CLASS, JObject::null())
        .jni()?;
    for (i, r) in (0..len).zip(&info.regions) {
        let s = env.auto_local(env.new_string(r).jni()?);
        env.set_object_array_element(&regions, i, &*s).jni()?;
    }
    let country = opt_string(env, info.country.as_deref())?;
    let approved = opt_string(env, info.approved_region.as_deref())?;
    let reset = opt_string(env, info.trust_reset.as_deref())?;
    let config_version = info.config_version.map(sat).unwrap_or(-1);
    env.new_object(
        CONFIG_INFO_CLASS,
        CONFIG_INFO_CTOR,
        &[
            JValue::Long(sat(info.root_version)),
            JValue::Long(config_version),
            JValue::Bool(u8::from(info.expired)),
            JValue::Object(&regions),
            JValue::Object(&country),
            JValue::Object(&approved),
            JValue::Bool(u8::from(info.anchored)),
            JValue::Object(&reset),
            JValue::Long(time_ms(info.expires_at_ms)),
            JValue::Long(time_ms(info.refresh_due_at_ms)),
        ],
    )
    .jni()
}

pub(super) fn config_refresh_object<'local>(
    env: &mut JNIEnv<'local>,
    r: &Refreshed,
) -> Result<JObject<'local>> {
    let roots: Vec<i64> = r.roots.iter().map(|v| sat(*v)).collect();
    let array = env.new_long_array(roots.len() as jsize).jni()?;
    env.set_long_array_region(&array, 0, &roots).jni()?;
    let mirror = env.new_string(&r.mirror).jni()?;
    let config_error = opt_string(env, r.config_error.map(|k| k.name()))?;
    env.new_object(
        CONFIG_REFRESH_CLASS,
        CONFIG_REFRESH_CTOR,
        &[
            JValue::Object(&array),
            JValue::Long(r.config.map_or(-1, sat)),
            JValue::Object(&mirror),
            JValue::Long(sat(r.root_version)),
            JValue::Object(&config_error),
            JValue::Bool(u8::from(r.more_roots)),
        ],
    )
    .jni()
}

pub(super) fn queue_stats_object<'local>(
    env: &mut JNIEnv<'local>,
    s: &QueueStats,
) -> Result<JObject<'local>> {
    env.new_object(
        QUEUE_STATS_CLASS,
        QUEUE_STATS_CTOR,
        &[
            JValue::Long(sat(s.pending)),
            JValue::Long(sat(s.uploading)),
            JValue::Long(sat(s.failed)),
            JValue::Long(sat(s.dead)),
            JValue::Long(sat(s.held)),
            JValue::Long(sat(s.done)),
            JValue::Long(sat(s.pending_bytes)),
            JValue::Long(time_ms(s.next_due_at)),
        ],
    )
    .jni()
}

pub(super) fn run_report_object<'local>(
    env: &mut JNIEnv<'local>,
    r: &RunReport,
) -> Result<JObject<'local>> {
    let region = env.new_string(&r.region).jni()?;
    let stopped = env.new_string(r.stopped.name()).jni()?;
    env.new_object(
        RUN_REPORT_CLASS,
        RUN_REPORT_CTOR,
        &[
            JValue::Object(&region),
            JValue::Long(sat(r.uploaded)),
            JValue::Long(sat(r.bytes)),
            JValue::Long(sat(r.failed)),
            JValue::Long(sat(r.dead)),
            JValue::Long(sat(r.held)),
            JValue::Long(sat(r.remaining)),
            JValue::Object(&stopped),
            JValue::Long(time_ms(r.next_due_at)),
        ],
    )
    .jni()
}

pub(super) fn audit_array<'local>(
    env: &mut JNIEnv<'local>,
    records: &[crate::queue::AuditRecord],
) -> Result<JObjectArray<'local>> {
    let len =
        jsize::try_from(records.len()).map_err(|_| Error::Internal("too many records".into()))?;
    let array = env
        .new_object_array(len, AUDIT_RECORD_CLASS, JObject::null())
        .jni()?;
    for (i, rec) in (0..len).zip(records) {
        // One local frame per record keeps the local reference count flat.
        env.with_local_frame(8, |env| -> ::jni::errors::Result<()> {
            let service = env.new_string(&rec.service)?;
            let region = env.new_string(&rec.region)?;
            let host = env.new_string(&rec.host)?;
            let peer = match &rec.peer_ip {
                Some(ip) => JObject::from(env.new_string(ip)?),
                None => JObject::null(),
            };
            let sha = env.new_string(&rec.sha256)?;
            let obj = env.new_object(
                AUDIT_RECORD_CLASS,
                AUDIT_RECORD_CTOR,
                &[
                    JValue::Long(rec.id),
                    JValue::Long(rec.item_id),
                    JValue::Object(&service),
                    JValue::Object(&region),
                    JValue::Object(&host),
                    JValue::Object(&peer),
                    JValue::Long(sat(rec.bytes)),
                    JValue::Long(rec.sent_bytes.map_or(-1, sat)),
                    JValue::Object(&sha),
                    JValue::Long(rec.finished_at),
                ],
            )?;
            env.set_object_array_element(&array, i, &obj)
        })
        .jni()?;
    }
    Ok(array)
}

fn item_object<'local>(
    env: &mut JNIEnv<'local>,
    it: &ItemInfo,
) -> ::jni::errors::Result<JObject<'local>> {
    let mut s = Vec::with_capacity(8);
    for v in [
        Some(it.path.as_str()),
        Some(&it.service),
        it.region.as_deref(),
        Some(it.state.name()),
        it.last_error_kind.map(|k| k.name()),
        it.last_error.as_deref(),
        it.held_reason.map(|h| h.name()),
        it.account.as_deref(),
    ] {
        s.push(match v {
            Some(v) => JObject::from(env.new_string(v)?),
            None => JObject::null(),
        });
    }
    let priority = it.priority.clamp(jint::MIN.into(), jint::MAX.into()) as jint;
    env.new_object(
        ITEM_INFO_CLASS,
        ITEM_INFO_CTOR,
        &[
            JValue::Long(it.id),
            JValue::Object(&s[0]),
            JValue::Object(&s[1]),
            JValue::Int(priority),
            JValue::Long(sat(it.size)),
            JValue::Object(&s[2]),
            JValue::Object(&s[3]),
            JValue::Int(jint::try_from(it.attempts).unwrap_or(jint::MAX)),
            JValue::Long(sat(it.confirmed_offset)),
            JValue::Long(time_ms(it.next_attempt_at)),
            JValue::Object(&s[4]),
            JValue::Object(&s[5]),
            JValue::Object(&s[6]),
            JValue::Object(&s[7]),
        ],
    )
}

/// `items` as a Java `ItemInfo[]`.
pub(super) fn item_array<'local>(
    env: &mut JNIEnv<'local>,
    items: &[ItemInfo],
) -> Result<JObjectArray<'local>> {
    let len = jsize::try_from(items.len()).map_err(|_| Error::Internal("too many".into()))?;
    let array = env
        .new_object_array(len, ITEM_INFO_CLASS, JObject::null())
        .jni()?;
    for (i, it) in (0..len).zip(items) {
        // One local frame per item keeps the local reference count flat.
        env.with_local_frame(16, |env| -> ::jni::errors::Result<()> {
            let obj = item_object(env, it)?;
            env.set_object_array_element(&array, i, obj)
        })
        .jni()?;
    }
    Ok(array)
}
