//! The queue's items one by one: `item`, `listItems`, `retryDead`, `remove`,
//! and the `ItemInfo` objects they return.

use ::jni::objects::{JClass, JObject, JObjectArray, JString, JValue};
use ::jni::sys::{jboolean, jint, jlong, jsize};
use ::jni::JNIEnv;

use super::{agent, opt_string_arg, run, sat, JniResultExt};
use crate::error::{Error, Result};
use crate::queue::ops::ItemInfo;

const ITEM_INFO_CLASS: &str = "com/miui/cloudsync/ItemInfo";
/// id, path, service, priority, size, region?, state, attempts, confirmedOffset,
/// nextAttemptAt, lastErrorKind?, lastError? ("kind: message"), heldReason?, account?
/// (? = nullable).
const ITEM_INFO_CTOR: &str = "(JLjava/lang/String;Ljava/lang/String;IJLjava/lang/String;Ljava/lang/String;IJJLjava/lang/String;Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;)V";

fn item_object<'local>(
    env: &mut JNIEnv<'local>,
    it: &ItemInfo,
) -> ::jni::errors::Result<JObject<'local>> {
    let mut s = Vec::with_capacity(8);
    for v in [
        Some(it.path.as_str()),
        Some(&it.service),
        it.region.as_deref(),
        Some(&it.state),
        it.last_error_kind.as_deref(),
        it.last_error.as_deref(),
        it.held_reason.as_deref(),
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
            JValue::Long(it.next_attempt_at),
            JValue::Object(&s[4]),
            JValue::Object(&s[5]),
            JValue::Object(&s[6]),
            JValue::Object(&s[7]),
        ],
    )
}

/// `items` as a Java `ItemInfo[]`.
fn item_array<'local>(
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

/// `static native ItemInfo[] item(long handle, long id)`: the item, or an
/// empty array once it left the queue (done: see the audit; or removed).
/// An array so that both entry points share one object builder.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_item<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    id: jlong,
) -> JObjectArray<'local> {
    run(&mut env, |env| match agent(handle)?.item(id) {
        Ok(it) => item_array(env, std::slice::from_ref(&it)),
        Err(Error::NotFound) => item_array(env, &[]),
        Err(e) => Err(e),
    })
}

/// `static native ItemInfo[] listItems(long handle, String state, long afterId, int limit)`:
/// one page of items by id: ids above `afterId`, of one state (`null`: all),
/// at most `limit`.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_listItems<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    state: JString<'local>,
    after_id: jlong,
    limit: jint,
) -> JObjectArray<'local> {
    run(&mut env, |env| {
        let state = opt_string_arg(env, &state)?
            .map(|s| s.parse())
            .transpose()?;
        let limit =
            u32::try_from(limit).map_err(|_| Error::InvalidArgument("limit is negative"))?;
        let items = agent(handle)?.list(state, after_id, limit)?;
        item_array(env, &items)
    })
}

/// `static native long retryDead(long handle)`: revives dead items; how many.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_retryDead<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> jlong {
    run(&mut env, |_| Ok(sat(agent(handle)?.retry_dead()?)))
}

/// `static native boolean remove(long handle, long id)`: `false` when the
/// item is no longer queued.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_remove<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    id: jlong,
) -> jboolean {
    run(&mut env, |_| match agent(handle)?.remove(id) {
        Ok(()) => Ok(1),
        Err(Error::NotFound) => Ok(0),
        Err(e) => Err(e),
    })
}
