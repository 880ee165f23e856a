//! The queue: `enqueue` and `enqueueAll`, the items one by one (`item`,
//! `listItems`, `retryDead`, `remove`), the counters, the audit trail and
//! the held items.

use ::jni::objects::{JClass, JLongArray, JObject, JObjectArray, JString};
use ::jni::sys::{jboolean, jint, jlong, jsize};
use ::jni::JNIEnv;

use super::values::{audit_array, item_array, queue_stats_object, sat};
use super::{agent_ref, opt_string_arg, run, string_arg, JniResultExt};
use crate::error::Error;

/// `static native long enqueue(long handle, String path, String service, int priority)`.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_enqueue<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    path: JString<'local>,
    service: JString<'local>,
    priority: jint,
) -> jlong {
    run(&mut env, |env| {
        let path = string_arg(env, &path, "path is null")?;
        let service = string_arg(env, &service, "service is null")?;
        agent_ref(handle)?.enqueue(path, &service, priority)
    })
}

/// `static native long[] enqueueAll(long handle, String[] paths, String service, int priority)`:
/// all or none, in one transaction.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_enqueueAll<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    paths: JObjectArray<'local>,
    service: JString<'local>,
    priority: jint,
) -> JLongArray<'local> {
    run(&mut env, |env| {
        if paths.is_null() {
            return Err(Error::InvalidArgument("paths is null"));
        }
        let n = env.get_array_length(&paths).jni()?;
        let mut list = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        for i in 0..n {
            let element = env.get_object_array_element(&paths, i).jni()?;
            let element = env.auto_local(element);
            let s: &JString<'_> = (&*element).into();
            list.push(string_arg(env, s, "paths contains null")?);
        }
        let service = string_arg(env, &service, "service is null")?;
        let ids = agent_ref(handle)?.enqueue_all(&list, &service, priority)?;
        let len = jsize::try_from(ids.len()).map_err(|_| Error::Internal("too many ids".into()))?;
        let out = env.new_long_array(len).jni()?;
        env.set_long_array_region(&out, 0, &ids).jni()?;
        Ok(out)
    })
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
    run(&mut env, |env| match agent_ref(handle)?.item(id) {
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
        let items = agent_ref(handle)?.list(state, after_id, limit)?;
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
    run(&mut env, |_| Ok(sat(agent_ref(handle)?.retry_dead()?)))
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
    run(&mut env, |_| match agent_ref(handle)?.remove(id) {
        Ok(()) => Ok(1),
        Err(Error::NotFound) => Ok(0),
        Err(e) => Err(e),
    })
}

/// `static native QueueStats stats(long handle)`.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_stats<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> JObject<'local> {
    run(&mut env, |env| {
        let s = agent_ref(handle)?.stats()?;
        queue_stats_object(env, &s)
    })
}

/// `static native AuditRecord[] audit(long handle, long afterId, int limit)`.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_audit<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    after_id: jlong,
    limit: jint,
) -> JObjectArray<'local> {
    run(&mut env, |env| {
        let limit =
            u32::try_from(limit).map_err(|_| Error::InvalidArgument("limit is negative"))?;
        let records = agent_ref(handle)?.audit(after_id, limit)?;
        audit_array(env, &records)
    })
}

/// `static native long rehome(long handle)`: restamps held items to the approved region.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_rehome<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> jlong {
    run(&mut env, |_| Ok(sat(agent_ref(handle)?.rehome()?)))
}

/// `static native long rehomeTo(long handle, String expectedRegion)`:
/// restamps held items only if `expectedRegion` is still the approved region.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_rehomeTo<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    expected_region: JString<'local>,
) -> jlong {
    run(&mut env, |env| {
        let region = string_arg(env, &expected_region, "expectedRegion is null")?;
        Ok(sat(agent_ref(handle)?.rehome_to(&region)?))
    })
}

/// `static native long discardHeld(long handle)`: deletes held items.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_discardHeld<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> jlong {
    run(&mut env, |_| Ok(sat(agent_ref(handle)?.discard_held()?)))
}
