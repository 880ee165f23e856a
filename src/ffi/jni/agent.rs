//! The agent handle: `open` and `close`, the account and its country, and
//! the library's version.

use ::jni::objects::{JByteArray, JClass, JObject, JString};
use ::jni::sys::jlong;
use ::jni::JNIEnv;

use super::{
    agent_ref, bytes_arg, db_path_arg, opt_string_arg, run, string_arg, to_jlong, JniResultExt,
};
use crate::ffi::{free_handle, into_handle};
use crate::Agent;

/// `static native long open(String dbPath, byte[] initialRoot)`: opens or
/// creates the database; returns the handle.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_open<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    db_path: JString<'local>,
    initial_root: JByteArray<'local>,
) -> jlong {
    run(&mut env, |env| {
        let path = db_path_arg(env, &db_path)?;
        let root = bytes_arg(env, &initial_root, "initialRoot is null")?;
        Ok(to_jlong(into_handle(Agent::open(path, &root)?)))
    })
}

/// `static native String version()`: the library's version (`cloudsync::VERSION`).
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_version<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
) -> JObject<'local> {
    run(&mut env, |env| {
        Ok(env.new_string(crate::VERSION).jni()?.into())
    })
}

/// `static native void setAccountCountry(long handle, String iso2)`.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_setAccountCountry<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    iso2: JString<'local>,
) {
    run(&mut env, |env| {
        let cc = string_arg(env, &iso2, "iso2 is null")?;
        agent_ref(handle)?.set_account_country(&cc)
    })
}

/// `static native void setAccount(long handle, String accountId, String iso2)`:
/// a `null` account signs out, a `null` country keeps the account's own (see
/// [`crate::Agent::set_account`]).
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_setAccount<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    account: JString<'local>,
    iso2: JString<'local>,
) {
    run(&mut env, |env| {
        let account = opt_string_arg(env, &account)?;
        let cc = opt_string_arg(env, &iso2)?;
        agent_ref(handle)?.set_account(account.as_deref(), cc.as_deref())
    })
}

/// `static native void close(long handle)`: frees the agent; `0` is a no-op.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_close<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) {
    // A handle closed already is an `invalid_argument` error (the registry in `ffi`).
    run(&mut env, |_| free_handle(handle as u64))
}
