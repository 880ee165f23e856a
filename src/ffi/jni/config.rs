//! The trust state: installing envelopes, the config refresh, what is
//! installed (`ConfigInfo`, `ConfigRefresh`) and the approved region.

use ::jni::objects::{JByteArray, JClass, JObject};
use ::jni::sys::jlong;
use ::jni::JNIEnv;

use super::values::{config_info_object, config_refresh_object, opt_string};
use super::{agent_ref, bytes_arg, run};

/// `static native void install(long handle, byte[] envelope)`: installs a
/// root or config envelope.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_install<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    envelope: JByteArray<'local>,
) {
    run(&mut env, |env| {
        let bytes = bytes_arg(env, &envelope, "envelope is null")?;
        agent_ref(handle)?.install(&bytes).map(drop)
    })
}

/// `static native ConfigInfo configInfo(long handle)`.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_configInfo<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> JObject<'local> {
    run(&mut env, |env| {
        let info = agent_ref(handle)?.config_info()?;
        config_info_object(env, &info)
    })
}

/// `static native ConfigRefresh refreshConfig(long handle)`: fetches the next
/// roots and the config from the root's mirrors (blocks, 30 s at most).
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_refreshConfig<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> JObject<'local> {
    run(&mut env, |env| {
        let r = agent_ref(handle)?.refresh_config()?;
        config_refresh_object(env, &r)
    })
}

/// `static native String approvedRegion(long handle)`: the region id, or `null`.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_approvedRegion<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> JObject<'local> {
    run(&mut env, |env| {
        let region = agent_ref(handle)?.approved_region()?;
        opt_string(env, region.as_ref().map(|r| r.id()))
    })
}
