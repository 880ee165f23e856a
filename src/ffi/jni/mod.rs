//! JNI bindings behind the Java class `com.miui.cloudsync.NativeBridge`
//! (package-private; the public API is `com.miui.cloudsync.SyncAgent`).
//!
//! Every `extern "system"` function body is one call to `run`, which runs
//! the body through `run_ffi` (panics trapped) and turns any error into the
//! Java exception of its [`ErrorKind`](crate::ErrorKind): the class from
//! `ErrorKind::java_class()`, built with its `(String kind, int code, String
//! message)` constructor. If a Java exception is already pending (an
//! `OutOfMemoryError` while building a string, or the exception a progress
//! listener threw), that exception is left to propagate instead.
//!
//! Handles are leaked `Box<Agent>` pointers in a `jlong`. The Java wrapper
//! holds a read lock around every call and frees the handle (with `close`)
//! only under the write lock, so a handle is never used after it is freed;
//! `0` (a closed handle that slipped through) is an `invalid_argument` error.
//!
//! Objects built here (keep them in `android/consumer-rules.pro`):
//! `ConfigInfo`, `ConfigRefresh`, `QueueStats`, `RunReport`, `AuditRecord`,
//! `ItemInfo`, the exception classes, and the calls of
//! `ProgressListener.onProgress`, the `RunListener.onItem*` methods and
//! `CredentialProvider.getToken` (`scripts/android-java-check.sh` parses the
//! class paths, names and signatures out of these files and checks that R8
//! keeps them).
//!
//! Layout: this file holds the runner, the argument helpers and the
//! production entry points of the agent and its config; `run` holds
//! `runOnce` with its listener, `items` the per-item entry points, `objects`
//! builds the other Java value objects, `provider` calls the app's
//! `CredentialProvider`, `retention` the audit retention, and `hooks` holds
//! the entry points that exist only with `ffi-test-hooks`.

use std::sync::Arc;

use ::jni::objects::{
    JByteArray, JClass, JLongArray, JObject, JObjectArray, JString, JThrowable, JValue,
};
use ::jni::sys::{jint, jlong, jsize, JNI_VERSION_1_6};
use ::jni::{JNIEnv, JavaVM};

use super::{borrow_handle, free_handle, into_handle, run_ffi, run_quietly};
use crate::auth::CredentialProvider;
use crate::error::{Error, Result};
use crate::Agent;
use objects::{
    audit_array, config_info_object, config_refresh_object, opt_string, queue_stats_object,
};
use provider::JavaProvider;

#[cfg(feature = "ffi-test-hooks")]
mod hooks;
mod items;
mod objects;
mod provider;
mod retention;
mod run;

/// The runner and argument helpers, for the JVM tests' own entry points
/// (`crates/jvm-test-lib`: its in-process test server). Only with
/// `ffi-test-hooks`, never in the phone build.
#[cfg(feature = "ffi-test-hooks")]
#[doc(hidden)]
pub mod test_support {
    use ::jni::objects::JString;
    use ::jni::sys::jlong;
    use ::jni::JNIEnv;

    use crate::error::Result;

    /// `java.lang.String`'s class name.
    pub const STRING_CLASS: &str = super::STRING_CLASS;

    /// The single JNI runner (see the module's `run`).
    pub fn run<'local, T: Default>(
        env: &mut JNIEnv<'local>,
        f: impl FnOnce(&mut JNIEnv<'local>) -> Result<T>,
    ) -> T {
        super::run(env, f)
    }

    /// A u64 counter as a Java long, saturating.
    pub fn sat(n: u64) -> jlong {
        super::sat(n)
    }

    /// A non-null Java string argument.
    pub fn string_arg(
        env: &mut JNIEnv<'_>,
        s: &JString<'_>,
        null_msg: &'static str,
    ) -> Result<String> {
        super::string_arg(env, s, null_msg)
    }

    /// A nullable Java string argument.
    pub fn opt_string_arg(env: &mut JNIEnv<'_>, s: &JString<'_>) -> Result<Option<String>> {
        super::opt_string_arg(env, s)
    }

    /// `jni` crate failures as `Internal` errors.
    pub trait JniResultExt<T> {
        /// See the module's `JniResultExt`.
        fn jni(self) -> Result<T>;
    }

    impl<T> JniResultExt<T> for ::jni::errors::Result<T> {
        fn jni(self) -> Result<T> {
            super::JniResultExt::jni(self)
        }
    }
}

/// Constructor of every exception class: `(String kind, int code, String message)`.
const EXCEPTION_CTOR: &str = "(Ljava/lang/String;ILjava/lang/String;)V";
const STRING_CLASS: &str = "java/lang/String";

/// The single JNI runner: initialises logging, runs `f` with panics trapped,
/// and throws the mapped exception on error (returning `T::default()`, i.e.
/// `0` or `null`, which Java never sees because an exception is pending).
fn run<'local, T: Default>(
    env: &mut JNIEnv<'local>,
    f: impl FnOnce(&mut JNIEnv<'local>) -> Result<T>,
) -> T {
    init_logging();
    match run_ffi(|| f(&mut *env)) {
        Ok(v) => v,
        Err(e) => {
            throw(env, &e);
            T::default()
        }
    }
}

/// Throws `e` as its Java exception unless an exception is already pending.
fn throw(env: &mut JNIEnv<'_>, e: &Error) {
    run_quietly(|| {
        if env.exception_check().unwrap_or(true) {
            return;
        }
        if let Err(je) = throw_mapped(env, e) {
            log::error!("could not throw {} as a Java exception: {je}", e.kind());
            // Whatever failed (a class stripped by R8, an allocation) usually
            // left its own exception pending; if not, throw a plain one.
            if !env.exception_check().unwrap_or(true) {
                let _ = env.throw_new("java/lang/IllegalStateException", e.to_string());
            }
        }
    });
}

fn throw_mapped(env: &mut JNIEnv<'_>, e: &Error) -> ::jni::errors::Result<()> {
    let kind = e.kind();
    let jkind = env.new_string(kind.name())?;
    let jmsg = env.new_string(e.to_string())?;
    let obj = env.new_object(
        kind.java_class(),
        EXCEPTION_CTOR,
        &[
            JValue::Object(&jkind),
            JValue::Int(kind.code()),
            JValue::Object(&jmsg),
        ],
    )?;
    env.throw(JThrowable::from(obj))
}

/// `jni` crate failures become `Internal` errors (a pending Java exception,
/// if any, still wins in [`throw`]).
trait JniResultExt<T> {
    fn jni(self) -> Result<T>;
}

impl<T> JniResultExt<T> for ::jni::errors::Result<T> {
    fn jni(self) -> Result<T> {
        self.map_err(|e| Error::Internal(format!("jni: {e}")))
    }
}

#[cfg(target_os = "android")]
fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        android_logger::init_once(
            android_logger::Config::default()
                .with_tag("CloudSync")
                .with_max_level(log::LevelFilter::Info),
        );
    });
}

#[cfg(not(target_os = "android"))]
fn init_logging() {}

fn agent<'a>(handle: jlong) -> Result<&'a Agent> {
    // SAFETY: `SyncAgent` passes 0 or a handle returned by `open` and holds
    // its read lock for the whole call, while `close` frees the handle only
    // under the write lock; so the handle is null or live for this call.
    unsafe { borrow_handle(handle as usize as *const Agent) }
}

fn to_jlong(handle: *mut Agent) -> jlong {
    handle as usize as jlong
}

/// u64 counters become Java longs, saturating (never negative).
fn sat(n: u64) -> jlong {
    jlong::try_from(n).unwrap_or(jlong::MAX)
}

fn string_arg(env: &mut JNIEnv<'_>, s: &JString<'_>, null_msg: &'static str) -> Result<String> {
    if s.is_null() {
        return Err(Error::InvalidArgument(null_msg));
    }
    Ok(env.get_string(s).jni()?.into())
}

fn bytes_arg(env: &JNIEnv<'_>, a: &JByteArray<'_>, null_msg: &'static str) -> Result<Vec<u8>> {
    if a.is_null() {
        return Err(Error::InvalidArgument(null_msg));
    }
    env.convert_byte_array(a).jni()
}

/// A nullable Java string argument.
fn opt_string_arg(env: &mut JNIEnv<'_>, s: &JString<'_>) -> Result<Option<String>> {
    (!s.is_null()).then(|| string_arg(env, s, "")).transpose()
}

fn db_path_arg(env: &mut JNIEnv<'_>, s: &JString<'_>) -> Result<String> {
    let path = string_arg(env, s, "dbPath is null")?;
    if path.is_empty() {
        // SQLite would open a private temporary database: surely a bug.
        return Err(Error::InvalidArgument("dbPath is empty"));
    }
    Ok(path)
}

/// Called by the JVM when `System.loadLibrary("cloudsync")` loads the
/// library: sets up logcat logging on Android and asks for JNI 1.6.
#[no_mangle]
pub extern "system" fn JNI_OnLoad(_vm: JavaVM, _reserved: *mut std::ffi::c_void) -> jint {
    run_quietly(init_logging);
    JNI_VERSION_1_6
}

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
        agent(handle)?.install(&bytes).map(drop)
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
        let info = agent(handle)?.config_info()?;
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
        let r = agent(handle)?.refresh_config()?;
        config_refresh_object(env, &r)
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
        agent(handle)?.set_account_country(&cc)
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
        agent(handle)?.set_account(account.as_deref(), cc.as_deref())
    })
}

/// `static native void setCredentialProvider(long handle, CredentialProvider provider)`:
/// `null` removes it.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_setCredentialProvider<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    provider: JObject<'local>,
) {
    run(&mut env, |env| {
        let agent = agent(handle)?;
        let provider: Option<Arc<dyn CredentialProvider>> = if provider.is_null() {
            None
        } else {
            Some(Arc::new(JavaProvider {
                vm: env.get_java_vm().jni()?,
                provider: env.new_global_ref(&provider).jni()?,
            }))
        };
        agent.set_credential_provider(provider);
        Ok(())
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
        let region = agent(handle)?.approved_region()?;
        opt_string(env, region.as_ref().map(|r| r.id()))
    })
}

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
        agent(handle)?.enqueue(path, &service, priority)
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
        let ids = agent(handle)?.enqueue_all(&list, &service, priority)?;
        let len = jsize::try_from(ids.len()).map_err(|_| Error::Internal("too many ids".into()))?;
        let out = env.new_long_array(len).jni()?;
        env.set_long_array_region(&out, 0, &ids).jni()?;
        Ok(out)
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
        let s = agent(handle)?.stats()?;
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
        let records = agent(handle)?.audit(after_id, limit)?;
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
    run(&mut env, |_| Ok(sat(agent(handle)?.rehome()?)))
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
        Ok(sat(agent(handle)?.rehome_to(&region)?))
    })
}

/// `static native long discardHeld(long handle)`: deletes held items.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_discardHeld<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> jlong {
    run(&mut env, |_| Ok(sat(agent(handle)?.discard_held()?)))
}

/// `static native void close(long handle)`: frees the agent; `0` is a no-op.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_close<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) {
    run(&mut env, |_| {
        // SAFETY: `SyncAgent.close` swapped its handle to 0 under the write
        // lock, so no other call is using it and it is freed exactly once.
        unsafe { free_handle(handle as usize as *mut Agent) };
        Ok(())
    })
}
