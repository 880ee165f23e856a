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
//! `ConfigInfo`, `QueueStats`, `RunReport`, `AuditRecord`, the exception
//! classes, and the `ProgressListener.onProgress(JJJ)V` and
//! `CredentialProvider.getToken` calls.

use std::sync::Arc;
use std::time::Duration;

use ::jni::objects::{
    GlobalRef, JByteArray, JClass, JLongArray, JObject, JObjectArray, JString, JThrowable, JValue,
};
use ::jni::sys::{jint, jlong, jsize, JNI_VERSION_1_6};
use ::jni::{JNIEnv, JavaVM};

use super::{borrow_handle, free_handle, into_handle, run_ffi, run_quietly};
use crate::auth::{CredentialProvider, CredentialRequest, ProviderError, Secret};
use crate::error::{Error, Result};
use crate::{Agent, ConfigInfo, Progress, RunReport, StopReason};

/// Constructor of every exception class: `(String kind, int code, String message)`.
const EXCEPTION_CTOR: &str = "(Ljava/lang/String;ILjava/lang/String;)V";
const STRING_CLASS: &str = "java/lang/String";
const CONFIG_INFO_CLASS: &str = "com/miui/cloudsync/ConfigInfo";
/// rootVersion, configVersion (-1 = none), expiresAt, expired, regions, country, approvedRegion.
const CONFIG_INFO_CTOR: &str =
    "(JJLjava/lang/String;Z[Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;)V";
const QUEUE_STATS_CLASS: &str = "com/miui/cloudsync/QueueStats";
/// pending, uploading, failed, dead, held, done, pendingBytes.
const QUEUE_STATS_CTOR: &str = "(JJJJJJJ)V";
const RUN_REPORT_CLASS: &str = "com/miui/cloudsync/RunReport";
/// region, uploaded, bytes, failed, dead, held, remaining, stopped.
const RUN_REPORT_CTOR: &str = "(Ljava/lang/String;JJJJJJLjava/lang/String;)V";
const AUDIT_RECORD_CLASS: &str = "com/miui/cloudsync/AuditRecord";
/// id, itemId, service, region, host, peerIp (nullable), bytes, sentBytes (-1 = not
/// counted), sha256, finishedAtMillis.
const AUDIT_RECORD_CTOR: &str = "(JJLjava/lang/String;Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;JJLjava/lang/String;J)V";
const PROGRESS_METHOD: &str = "onProgress";
const PROGRESS_SIG: &str = "(JJJ)V";
/// `String getToken(String accountId, String region, String service, boolean refresh)`.
const TOKEN_METHOD: &str = "getToken";
const TOKEN_SIG: &str =
    "(Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;Z)Ljava/lang/String;";
const STRING_GETTER_SIG: &str = "()Ljava/lang/String;";

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

/// A Java string, or `null` for `None`.
fn opt_string<'local>(env: &mut JNIEnv<'local>, s: Option<&str>) -> Result<JObject<'local>> {
    match s {
        Some(s) => Ok(env.new_string(s).jni()?.into()),
        None => Ok(JObject::null()),
    }
}

fn stop_name(s: StopReason) -> &'static str {
    match s {
        StopReason::Drained => "drained",
        StopReason::TimeUp => "time_up",
        StopReason::Cancelled => "cancelled",
        StopReason::RegionChanged => "region_changed",
        StopReason::AccountChanged => "account_changed",
    }
}

fn config_info_object<'local>(
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
    let expires = opt_string(env, info.expires_at.as_deref())?;
    let country = opt_string(env, info.country.as_deref())?;
    let approved = opt_string(env, info.approved_region.as_deref())?;
    let config_version = info.config_version.map(sat).unwrap_or(-1);
    env.new_object(
        CONFIG_INFO_CLASS,
        CONFIG_INFO_CTOR,
        &[
            JValue::Long(sat(info.root_version)),
            JValue::Long(config_version),
            JValue::Object(&expires),
            JValue::Bool(u8::from(info.expired)),
            JValue::Object(&regions),
            JValue::Object(&country),
            JValue::Object(&approved),
        ],
    )
    .jni()
}

fn run_report_object<'local>(env: &mut JNIEnv<'local>, r: &RunReport) -> Result<JObject<'local>> {
    let region = env.new_string(&r.region).jni()?;
    let stopped = env.new_string(stop_name(r.stopped)).jni()?;
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
        ],
    )
    .jni()
}

/// Runs the agent's `run_once`, calling `listener.onProgress` on this thread.
/// A listener that throws cancels the run; its exception is rethrown after
/// the run has wound down (items unclaimed, lease released).
fn run_once_with_listener<'local>(
    env: &mut JNIEnv<'local>,
    agent: &Agent,
    max: Duration,
    listener: &JObject<'_>,
) -> Result<JObject<'local>> {
    let mut thrown: Option<JThrowable<'local>> = None;
    let result = {
        let mut progress = |p: Progress| -> bool {
            if thrown.is_some() {
                return false;
            }
            if listener.is_null() {
                return true;
            }
            let args = [
                JValue::Long(p.item_id),
                JValue::Long(sat(p.sent)),
                JValue::Long(sat(p.total)),
            ];
            if env
                .call_method(listener, PROGRESS_METHOD, PROGRESS_SIG, &args)
                .is_ok()
            {
                return true;
            }
            // The listener threw (or the call itself failed, which also leaves
            // an exception pending). Take the exception out of the way so the
            // run can unwind cleanly with JNI calls allowed, then stop the run.
            if env.exception_check().unwrap_or(false) {
                if let Ok(ex) = env.exception_occurred() {
                    thrown = Some(ex);
                }
                let _ = env.exception_clear();
            }
            if thrown.is_none() {
                // Not a Java exception: report it as an internal error.
                thrown = Some(JThrowable::default());
            }
            // The last progress call of an item ignores the return value, so
            // cancel explicitly: no further item may start.
            agent.cancel();
            false
        };
        agent.run_once(max, &mut progress)
    };
    match thrown {
        Some(ex) if !ex.is_null() => {
            if let Err(e) = &result {
                log::info!(
                    "run ended with {} after the progress listener threw",
                    e.kind()
                );
            }
            env.throw(ex).jni()?;
            // An exception is pending, so `run` will not replace it.
            Err(Error::Cancelled)
        }
        Some(_) => Err(Error::Internal("progress listener call failed".into())),
        None => run_report_object(env, &result?),
    }
}

/// The app's `com.miui.cloudsync.CredentialProvider`, asked on the thread
/// that runs `runOnce` (a Java thread: it is never attached here). The global
/// reference is deleted when the last run using it and the agent let go of it
/// (`GlobalRef`'s drop attaches a detached thread for that, which no path here
/// needs: every drop happens inside a Java call).
struct JavaProvider {
    vm: JavaVM,
    provider: GlobalRef,
}

impl CredentialProvider for JavaProvider {
    fn credential(
        &self,
        req: &CredentialRequest<'_>,
    ) -> std::result::Result<Option<Secret>, ProviderError> {
        let mut env = self
            .vm
            .get_env()
            .map_err(|_| ProviderError::new("not called on a Java thread"))?;
        // Every local reference (the arguments, the token, an exception) dies
        // with this frame; a failure is reported without its Java exception,
        // which is cleared.
        let got = env.with_local_frame(8, |env| -> ::jni::errors::Result<_> {
            Ok(get_token(env, &self.provider, req)
                .map_err(|e| take_exception(env).unwrap_or_else(|| e.to_string())))
        });
        match got {
            Ok(token) => token.map_err(ProviderError::new),
            Err(e) => {
                let _ = env.exception_clear();
                Err(ProviderError::new(format!("jni: {e}")))
            }
        }
    }
}

fn get_token(
    env: &mut JNIEnv<'_>,
    provider: &JObject<'_>,
    req: &CredentialRequest<'_>,
) -> ::jni::errors::Result<Option<Secret>> {
    let account = env.new_string(req.account)?;
    let region = env.new_string(req.region)?;
    let service = env.new_string(req.service)?;
    let args = [
        JValue::Object(&account),
        JValue::Object(&region),
        JValue::Object(&service),
        JValue::Bool(u8::from(req.refresh)),
    ];
    let token = env
        .call_method(provider, TOKEN_METHOD, TOKEN_SIG, &args)?
        .l()?;
    if token.is_null() {
        return Ok(None);
    }
    // Straight into the wiping wrapper (the Java string itself cannot be wiped).
    Ok(Some(Secret::new(env.get_string(&token.into())?.into())))
}

/// Clears the pending Java exception, if any, and returns its message (or,
/// without one, its `toString()`: the class name).
fn take_exception(env: &mut JNIEnv<'_>) -> Option<String> {
    let ex = env.exception_occurred().ok().filter(|x| !x.is_null())?;
    env.exception_clear().ok()?;
    call_string(env, &ex, "getMessage").or_else(|| call_string(env, &ex, "toString"))
}

/// `obj.<name>()` of a `String` getter; `None` if it is null or throws.
fn call_string(env: &mut JNIEnv<'_>, obj: &JObject<'_>, name: &str) -> Option<String> {
    match env
        .call_method(obj, name, STRING_GETTER_SIG, &[])
        .and_then(|v| v.l())
    {
        Ok(s) if !s.is_null() => env.get_string(&s.into()).ok().map(Into::into),
        _ => {
            let _ = env.exception_clear();
            None
        }
    }
}

fn audit_array<'local>(
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

/// `static native long openForTest(String dbPath, byte[] initialRoot, byte[] extraCaPem)`:
/// like `open`, also trusting the PEM certificates in `extraCaPem` for every
/// region (the loopback test CA). Only in builds with `ffi-test-hooks`.
#[cfg(feature = "ffi-test-hooks")]
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_openForTest<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    db_path: JString<'local>,
    initial_root: JByteArray<'local>,
    extra_ca_pem: JByteArray<'local>,
) -> jlong {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;
    run(&mut env, |env| {
        let path = db_path_arg(env, &db_path)?;
        let root = bytes_arg(env, &initial_root, "initialRoot is null")?;
        let pem = bytes_arg(env, &extra_ca_pem, "extraCaPem is null")?;
        let mut options = crate::AgentOptions::default();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|_| Error::malformed("extraCaPem", "not PEM certificates"))?;
            options.upload.extra_roots.push(cert);
        }
        if options.upload.extra_roots.is_empty() {
            return Err(Error::malformed("extraCaPem", "no certificate found"));
        }
        Ok(to_jlong(into_handle(Agent::open_with(
            path,
            Some(&root),
            options,
        )?)))
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
/// a `null` account signs out, a `null` country leaves it unchanged.
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

/// `static native RunReport runOnce(long handle, long maxMillis, ProgressListener listener)`:
/// uploads until drained, `maxMillis` elapsed or cancelled; `listener` may be null.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_runOnce<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
    max_millis: jlong,
    listener: JObject<'local>,
) -> JObject<'local> {
    run(&mut env, |env| {
        let max = u64::try_from(max_millis)
            .map_err(|_| Error::InvalidArgument("maxMillis is negative"))?;
        run_once_with_listener(env, agent(handle)?, Duration::from_millis(max), &listener)
    })
}

/// `static native void cancel(long handle)`: asks a running `runOnce` to stop soon.
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_cancel<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    handle: jlong,
) {
    run(&mut env, |_| {
        agent(handle)?.cancel();
        Ok(())
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
            ],
        )
        .jni()
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

/// `static native void nativePanicForTest()`: panics, to prove the panic
/// arrives as `SyncException` kind `internal`. Only with `ffi-test-hooks`.
#[cfg(feature = "ffi-test-hooks")]
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_nativePanicForTest<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
) {
    run(&mut env, |_| -> Result<()> {
        panic!("deliberate panic from nativePanicForTest")
    })
}

/// `static native void nativeErrorForTest(int index)`: throws the exception
/// for `ErrorKind::ALL[index]`, or returns normally when `index` is out of
/// range (so a test can enumerate every kind). Only with `ffi-test-hooks`.
#[cfg(feature = "ffi-test-hooks")]
#[no_mangle]
pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_nativeErrorForTest<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    index: jint,
) {
    run(&mut env, |_| {
        match usize::try_from(index)
            .ok()
            .and_then(|i| crate::ErrorKind::ALL.get(i))
        {
            Some(kind) => Err(super::sample_error(*kind)),
            None => Ok(()),
        }
    })
}

/// A loopback tus server over TLS inside the test JVM's process, so that the
/// credential tests can require and rotate a bearer token and read what the
/// server saw. Only with `ffi-test-hooks` and `devserver` (the dev server is
/// never in the phone build).
#[cfg(all(feature = "ffi-test-hooks", feature = "devserver"))]
mod test_server {
    use std::net::IpAddr;
    use std::sync::{Mutex, MutexGuard};

    use super::*;
    use crate::devserver::{Fault, ServerOptions, TestCa, TusServer};

    /// The servers and their CA certificates (PEM), by id - 1; `None` once stopped.
    type Servers = Vec<Option<(TusServer, String)>>;
    static SERVERS: Mutex<Servers> = Mutex::new(Vec::new());

    fn servers() -> MutexGuard<'static, Servers> {
        SERVERS.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The index of server `id` in [`SERVERS`].
    fn index(id: jlong) -> Option<usize> {
        usize::try_from(id).ok()?.checked_sub(1)
    }

    fn with_server<T>(id: jlong, f: impl FnOnce(&TusServer, &str) -> Result<T>) -> Result<T> {
        let servers = servers();
        let slot = index(id).and_then(|i| servers.get(i));
        let (server, ca_pem) = slot
            .and_then(Option::as_ref)
            .ok_or(Error::InvalidArgument("no such test server"))?;
        f(server, ca_pem)
    }

    /// `static native long testServerStart(String dir, String token)`: a tus
    /// server on 127.0.0.1 (a certificate of a new CA) storing uploads in
    /// `dir` and requiring `Bearer <token>` (`null`: anonymous); returns its id.
    #[no_mangle]
    pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerStart<'local>(
        mut env: JNIEnv<'local>,
        _class: JClass<'local>,
        dir: JString<'local>,
        token: JString<'local>,
    ) -> jlong {
        run(&mut env, |env| {
            let dir = string_arg(env, &dir, "dir is null")?;
            let ca = TestCa::new("cloudsync JVM test CA");
            let ip = IpAddr::from([127, 0, 0, 1]);
            let mut opts =
                ServerOptions::new((ip, 0).into(), ca.issue(&[], &[ip]), dir, "127.0.0.1");
            opts.bearer_token = opt_string_arg(env, &token)?;
            let server =
                TusServer::start(opts).map_err(|e| Error::Internal(format!("test server: {e}")))?;
            let mut servers = servers();
            servers.push(Some((server, ca.cert_pem())));
            Ok(sat(servers.len() as u64))
        })
    }

    /// `static native int testServerPort(long id)`.
    #[no_mangle]
    pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerPort<'local>(
        mut env: JNIEnv<'local>,
        _class: JClass<'local>,
        id: jlong,
    ) -> jint {
        run(&mut env, |_| {
            with_server(id, |s, _| Ok(jint::from(s.port())))
        })
    }

    /// `static native byte[] testServerCaPem(long id)`: the certificate of its CA.
    #[no_mangle]
    pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerCaPem<'local>(
        mut env: JNIEnv<'local>,
        _class: JClass<'local>,
        id: jlong,
    ) -> JByteArray<'local> {
        run(&mut env, |env| {
            let pem = with_server(id, |_, pem| Ok(pem.to_string()))?;
            env.byte_array_from_slice(pem.as_bytes()).jni()
        })
    }

    /// `static native void testServerSetToken(long id, String token)`: the
    /// token required from now on (`null`: anonymous).
    #[no_mangle]
    pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerSetToken<'local>(
        mut env: JNIEnv<'local>,
        _class: JClass<'local>,
        id: jlong,
        token: JString<'local>,
    ) {
        run(&mut env, |env| {
            let token = opt_string_arg(env, &token)?;
            with_server(id, |s, _| {
                s.set_token(token);
                Ok(())
            })
        })
    }

    /// `static native void testServerFail(long id, String method, int status)`:
    /// the next request with `method` (`null`: any) is answered `status`.
    #[no_mangle]
    pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerFail<'local>(
        mut env: JNIEnv<'local>,
        _class: JClass<'local>,
        id: jlong,
        method: JString<'local>,
        status: jint,
    ) {
        run(&mut env, |env| {
            let method = match opt_string_arg(env, &method)? {
                None => None,
                Some(m) => Some(
                    ["OPTIONS", "HEAD", "POST", "PATCH", "DELETE"]
                        .into_iter()
                        .find(|k| *k == m)
                        .ok_or(Error::InvalidArgument("unknown method"))?,
                ),
            };
            let status = u16::try_from(status).map_err(|_| Error::InvalidArgument("bad status"))?;
            with_server(id, |s, _| {
                s.push_fault(Fault::Status {
                    method,
                    status,
                    retry_after: None,
                });
                Ok(())
            })
        })
    }

    /// `static native String[] testServerAuthorizations(long id)`: every
    /// `Authorization` value received, oldest first.
    #[no_mangle]
    pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerAuthorizations<'local>(
        mut env: JNIEnv<'local>,
        _class: JClass<'local>,
        id: jlong,
    ) -> JObjectArray<'local> {
        run(&mut env, |env| {
            let seen = with_server(id, |s, _| Ok(s.authorizations()))?;
            let len =
                jsize::try_from(seen.len()).map_err(|_| Error::Internal("too many".into()))?;
            let array = env
                .new_object_array(len, STRING_CLASS, JObject::null())
                .jni()?;
            for (i, a) in (0..len).zip(&seen) {
                let s = env.auto_local(env.new_string(a).jni()?);
                env.set_object_array_element(&array, i, &*s).jni()?;
            }
            Ok(array)
        })
    }

    /// `static native long[] testServerStats(long id)`: requests,
    /// authorizationHeaders, unauthorized, uploadsCreated, uploadsCompleted,
    /// bodyBytesReceived.
    #[no_mangle]
    pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerStats<'local>(
        mut env: JNIEnv<'local>,
        _class: JClass<'local>,
        id: jlong,
    ) -> JLongArray<'local> {
        run(&mut env, |env| {
            let s = with_server(id, |s, _| Ok(s.stats()))?;
            let v = [
                s.requests,
                s.authorization_headers,
                s.unauthorized,
                s.uploads_created,
                s.uploads_completed,
                s.body_bytes_received,
            ]
            .map(sat);
            let out = env.new_long_array(v.len() as jsize).jni()?;
            env.set_long_array_region(&out, 0, &v).jni()?;
            Ok(out)
        })
    }

    /// `static native void testServerStop(long id)`: stops it (its files stay).
    #[no_mangle]
    pub extern "system" fn Java_com_miui_cloudsync_NativeBridge_testServerStop<'local>(
        mut env: JNIEnv<'local>,
        _class: JClass<'local>,
        id: jlong,
    ) {
        run(&mut env, |_| {
            let server = index(id).and_then(|i| servers().get_mut(i).and_then(Option::take));
            drop(server.ok_or(Error::InvalidArgument("no such test server"))?);
            Ok(())
        })
    }
}
