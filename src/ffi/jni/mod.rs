//! JNI bindings behind the Java class `com.miui.cloudsync.NativeBridge`
//! (package-private; the public API is `com.miui.cloudsync.SyncAgent`).
//!
//! Every entry point is declared once with `native!` (`entry.rs`): its Java
//! name, its parameters with their conversions and its result's. The macro
//! writes the `extern "system"` function, whose body is one call to `run`,
//! which runs the body through `run_ffi` (panics trapped) and turns any
//! error into the Java exception of its [`ErrorKind`](crate::ErrorKind): the
//! class from `ErrorKind::java_class()`, built with its `(String kind, int
//! code, String message)` constructor. If a Java exception is already pending (an
//! `OutOfMemoryError` while building a string, or the exception a progress
//! listener threw), that exception is left to propagate instead.
//!
//! Handles are ids of the registry of open agents in `ffi` (shared with C),
//! in a `jlong`: `0` or a closed handle that slipped through is an
//! `invalid_argument` error, never a dangling pointer. The Java wrapper still
//! holds a read lock around every call and closes only under the write lock.
//!
//! Objects built here (keep them in `android/consumer-rules.pro`):
//! `ConfigInfo`, `ConfigRefresh`, `QueueStats`, `RunReport`, `AuditRecord`,
//! `ItemInfo`, the exception classes, and the calls of
//! `ProgressListener.onProgress`, the `RunListener.onItem*` methods and
//! `CredentialProvider.getToken` (`scripts/android-java-check.sh` parses the
//! class paths, names and signatures out of these files and checks that R8
//! keeps them).
//!
//! Layout, the same files as `capi/` for the same concerns: this file holds
//! the runner (with the exception it throws), the argument helpers and
//! `JNI_OnLoad`; `entry.rs` the `native!` macro with the argument and result
//! conversions it names; `agent.rs` opens and closes the handle, signs in and out
//! and reports the version; `config.rs` installs envelopes, refreshes the
//! config and reports what is installed and the approved region; `queue.rs`
//! enqueues and reads and changes the queue (items, counters, the audit
//! trail, held items); `runs.rs` holds `runOnce` with its listener,
//! `cancel` and the app's `CredentialProvider`; `retention.rs` the audit
//! retention; `hooks.rs` the entry points that exist only with
//! `ffi-test-hooks`; `values.rs` builds the Java value
//! objects.

use ::jni::objects::{JByteArray, JString, JThrowable, JValue};
use ::jni::sys::{jint, jlong, JNI_VERSION_1_6};
use ::jni::{JNIEnv, JavaVM};

use super::{borrow_handle, run_ffi, run_quietly};
use crate::error::{Error, Result};

mod agent;
mod config;
mod entry;
#[cfg(feature = "ffi-test-hooks")]
mod hooks;
mod queue;
mod retention;
mod runs;
mod values;

/// Constructor of every exception class: `(String kind, int code, String message)`.
const EXCEPTION_CTOR: &str = "(Ljava/lang/String;ILjava/lang/String;)V";

/// The single JNI runner: initialises logging and runs `f`, both with panics
/// trapped, and throws the mapped exception on error (returning
/// `T::default()`, i.e. `0` or `null`, which Java never sees because an
/// exception is pending).
fn run<'local, T: Default>(
    env: &mut JNIEnv<'local>,
    f: impl FnOnce(&mut JNIEnv<'local>) -> Result<T>,
) -> T {
    let result = run_ffi(|| {
        init_logging();
        f(&mut *env)
    });
    match result {
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

/// The agent behind a Java handle (an id of the registry in `ffi`, kept
/// alive for the call): 0 or a closed handle is an `invalid_argument` error.
fn agent_ref(handle: jlong) -> Result<super::AgentRef> {
    borrow_handle(handle as u64)
}

fn to_jlong(handle: u64) -> jlong {
    handle as jlong
}

/// Every Java string argument goes through here: `null_msg` when it is
/// null, `bad_msg` (`"<param> is not valid UTF-16"`, as C's `"<param> is not
/// valid UTF-8"`) when it has an unpaired surrogate.
fn string_arg(
    env: &mut JNIEnv<'_>,
    s: &JString<'_>,
    null_msg: &'static str,
    bad_msg: &'static str,
) -> Result<String> {
    if s.is_null() {
        return Err(Error::InvalidArgument(null_msg));
    }
    java_string(env, s)
        .jni()?
        .ok_or(Error::InvalidArgument(bad_msg))
}

/// The text of a non-null Java string, `None` if it has an unpaired UTF-16
/// surrogate: the modified UTF-8 is decoded strictly (as invalid UTF-8 is
/// refused in C), never into U+FFFD as jni 0.21's `String` conversion does.
/// String arguments and the `CredentialProvider`'s token go through here.
/// The conversion runs in a local frame of its own: jni 0.21's `get_string`
/// leaves two local references behind (the `String` class and the object's
/// class), which a loop over an array would pile up past the frame's
/// capacity.
fn java_string(env: &mut JNIEnv<'_>, s: &JString<'_>) -> ::jni::errors::Result<Option<String>> {
    env.with_local_frame(4, |env| {
        let java = env.get_string(s)?;
        Ok(cesu8::from_java_cesu8(java.to_bytes())
            .ok()
            .map(std::borrow::Cow::into_owned))
    })
}

fn bytes_arg(env: &JNIEnv<'_>, a: &JByteArray<'_>, null_msg: &'static str) -> Result<Vec<u8>> {
    if a.is_null() {
        return Err(Error::InvalidArgument(null_msg));
    }
    env.convert_byte_array(a).jni()
}

/// A nullable Java string argument.
fn opt_string_arg(
    env: &mut JNIEnv<'_>,
    s: &JString<'_>,
    bad_msg: &'static str,
) -> Result<Option<String>> {
    (!s.is_null())
        .then(|| string_arg(env, s, "", bad_msg))
        .transpose()
}

fn db_path_arg(env: &mut JNIEnv<'_>, s: &JString<'_>) -> Result<String> {
    let path = string_arg(env, s, "dbPath is null", "dbPath is not valid UTF-16")?;
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
