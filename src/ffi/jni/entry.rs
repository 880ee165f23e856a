//! [`native!`]: each JNI entry point declared once, as its Java
//! declaration reads, with the conversions of its parameters and of its
//! result named by the marker types below. The macro writes the rest: the
//! `extern "system"` function with its exported name
//! (`Java_com_miui_cloudsync_NativeBridge_<name>`), the `JNIEnv` and class
//! parameters, and the single [`run`](super::run) call (panic trap, error →
//! Java exception) that converts the arguments in order, runs the body and
//! converts its result.
//!
//! ```ignore
//! native! {
//!     /// `static native long enqueue(long handle, String path, String service, int priority)`.
//!     fn enqueue(handle: Handle, path: Str, service: Str, priority: jint) -> jlong |_| {
//!         handle.enqueue(path, &service, priority)
//!     }
//! }
//! ```
//!
//! Parameters carry their Java names (so `NativeBridge.java` and this file
//! read alike, and a null or negative argument's message names the Java
//! parameter: `"path is null"`); the body sees each one converted
//! ([`Arg::Value`]) and the `JNIEnv` under the name between the bars.

use std::time::Duration;

use ::jni::objects::{JByteArray, JLongArray, JObject, JObjectArray, JString};
use ::jni::sys::{jboolean, jint, jlong, jsize};
use ::jni::JNIEnv;

use super::values::sat;
use super::{agent_ref, bytes_arg, db_path_arg, opt_string_arg, string_arg, JniResultExt};
use crate::error::{Error, Result};
use crate::ffi::AgentRef;

/// The messages of a refused argument, each naming its Java parameter
/// (built by [`native!`] with `concat!`, so they are `&'static str`).
pub(super) struct ArgName {
    pub(super) is_null: &'static str,
    pub(super) has_null: &'static str,
    pub(super) is_negative: &'static str,
    /// An unpaired UTF-16 surrogate (in an element, for `String[]`).
    pub(super) not_utf16: &'static str,
}

/// A parameter's conversion: the JNI type it arrives as and what the body
/// gets.
pub(super) trait Arg<'local> {
    type Raw;
    type Value;
    fn get(env: &mut JNIEnv<'local>, raw: Self::Raw, name: &ArgName) -> Result<Self::Value>;
}

/// A result's conversion: what the body returns and the JNI type returned
/// (its `Default`, `0` or `null`, is what Java would see after an error, which
/// it never does: an exception is pending then).
pub(super) trait Ret<'local> {
    type Value;
    type Raw: Default;
    fn put(env: &mut JNIEnv<'local>, value: Self::Value) -> Result<Self::Raw>;
}

/// `long handle` → the live agent (a counted reference) (`0` is `invalid_argument`).
pub(super) struct Handle;
/// `String` → `String`: non-null, no unpaired surrogate (see `string_arg`).
pub(super) struct Str;
/// `String` → `Option<String>`: `null` is `None`.
pub(super) struct OptStr;
/// `String dbPath` → `String`: non-null and non-empty.
pub(super) struct DbPath;
/// `byte[]` → `Vec<u8>`: non-null.
pub(super) struct Bytes;
/// `String[]` → `Vec<String>`: non-null, no null element.
pub(super) struct StrArray;
/// Any object, passed through (may be null): `JObject`. As a result, the
/// object the body built (`String` results too).
pub(super) struct Obj;
/// `int` → `u32`: not negative (a count or a limit).
pub(super) struct Count;
/// `long` → `Duration`: milliseconds, not negative.
pub(super) struct Millis;
/// Result: an object array the body built.
pub(super) struct ObjArray;
/// Result: `Vec<i64>` → `long[]`.
pub(super) struct LongArray;
/// Result: a `&'static str` (a version, a table's name) → `String`.
pub(super) struct JStr;
/// Result: `Option<String>` → `String` or `null`.
pub(super) struct OptJStr;

impl<'local> Arg<'local> for Handle {
    type Raw = jlong;
    /// A counted reference: a `close` on another thread (or in a callback
    /// of this call) frees the agent only once this call returns.
    type Value = AgentRef;
    fn get(_: &mut JNIEnv<'local>, raw: jlong, _: &ArgName) -> Result<AgentRef> {
        agent_ref(raw)
    }
}

impl<'local> Arg<'local> for Str {
    type Raw = JString<'local>;
    type Value = String;
    fn get(env: &mut JNIEnv<'local>, raw: JString<'local>, name: &ArgName) -> Result<String> {
        string_arg(env, &raw, name.is_null, name.not_utf16)
    }
}

impl<'local> Arg<'local> for OptStr {
    type Raw = JString<'local>;
    type Value = Option<String>;
    fn get(
        env: &mut JNIEnv<'local>,
        raw: JString<'local>,
        name: &ArgName,
    ) -> Result<Option<String>> {
        opt_string_arg(env, &raw, name.not_utf16)
    }
}

impl<'local> Arg<'local> for DbPath {
    type Raw = JString<'local>;
    type Value = String;
    fn get(env: &mut JNIEnv<'local>, raw: JString<'local>, _: &ArgName) -> Result<String> {
        db_path_arg(env, &raw)
    }
}

impl<'local> Arg<'local> for Bytes {
    type Raw = JByteArray<'local>;
    type Value = Vec<u8>;
    fn get(env: &mut JNIEnv<'local>, raw: JByteArray<'local>, name: &ArgName) -> Result<Vec<u8>> {
        bytes_arg(env, &raw, name.is_null)
    }
}

impl<'local> Arg<'local> for StrArray {
    type Raw = JObjectArray<'local>;
    type Value = Vec<String>;
    fn get(
        env: &mut JNIEnv<'local>,
        raw: JObjectArray<'local>,
        name: &ArgName,
    ) -> Result<Vec<String>> {
        if raw.is_null() {
            return Err(Error::InvalidArgument(name.is_null));
        }
        let n = env.get_array_length(&raw).jni()?;
        let mut list = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        for i in 0..n {
            let element = env.get_object_array_element(&raw, i).jni()?;
            let element = env.auto_local(element);
            let s: &JString<'_> = (&*element).into();
            list.push(string_arg(env, s, name.has_null, name.not_utf16)?);
        }
        Ok(list)
    }
}

impl<'local> Arg<'local> for Obj {
    type Raw = JObject<'local>;
    type Value = JObject<'local>;
    fn get(_: &mut JNIEnv<'local>, raw: JObject<'local>, _: &ArgName) -> Result<JObject<'local>> {
        Ok(raw)
    }
}

impl<'local> Arg<'local> for Count {
    type Raw = jint;
    type Value = u32;
    fn get(_: &mut JNIEnv<'local>, raw: jint, name: &ArgName) -> Result<u32> {
        u32::try_from(raw).map_err(|_| Error::InvalidArgument(name.is_negative))
    }
}

impl<'local> Arg<'local> for Millis {
    type Raw = jlong;
    type Value = Duration;
    fn get(_: &mut JNIEnv<'local>, raw: jlong, name: &ArgName) -> Result<Duration> {
        let ms = u64::try_from(raw).map_err(|_| Error::InvalidArgument(name.is_negative))?;
        Ok(Duration::from_millis(ms))
    }
}

/// Primitives the body takes as they come (`boolean` as `bool`).
macro_rules! plain_args {
    ($($t:ty => $v:ty, |$x:ident| $conv:expr;)*) => {$(
        impl<'local> Arg<'local> for $t {
            type Raw = $t;
            type Value = $v;
            fn get(_: &mut JNIEnv<'local>, $x: $t, _: &ArgName) -> Result<$v> {
                Ok($conv)
            }
        }
    )*};
}

plain_args! {
    jint => jint, |x| x;
    jlong => jlong, |x| x;
    jboolean => bool, |x| x != 0;
}

/// Results returned as they are.
macro_rules! plain_rets {
    ($($t:ty => $raw:ty, |$x:ident| $conv:expr;)*) => {$(
        impl<'local> Ret<'local> for $t {
            type Value = $t;
            type Raw = $raw;
            fn put(_: &mut JNIEnv<'local>, $x: $t) -> Result<$raw> {
                Ok($conv)
            }
        }
    )*};
}

plain_rets! {
    () => (), |x| x;
    jint => jint, |x| x;
    jlong => jlong, |x| x;
    u64 => jlong, |x| sat(x);
    bool => jboolean, |x| u8::from(x);
}

impl<'local> Ret<'local> for Obj {
    type Value = JObject<'local>;
    type Raw = JObject<'local>;
    fn put(_: &mut JNIEnv<'local>, value: JObject<'local>) -> Result<JObject<'local>> {
        Ok(value)
    }
}

impl<'local> Ret<'local> for ObjArray {
    type Value = JObjectArray<'local>;
    type Raw = JObjectArray<'local>;
    fn put(_: &mut JNIEnv<'local>, value: JObjectArray<'local>) -> Result<JObjectArray<'local>> {
        Ok(value)
    }
}

impl<'local> Ret<'local> for LongArray {
    type Value = Vec<i64>;
    type Raw = JLongArray<'local>;
    fn put(env: &mut JNIEnv<'local>, value: Vec<i64>) -> Result<JLongArray<'local>> {
        let len =
            jsize::try_from(value.len()).map_err(|_| Error::Internal("too many ids".into()))?;
        let out = env.new_long_array(len).jni()?;
        env.set_long_array_region(&out, 0, &value).jni()?;
        Ok(out)
    }
}

impl<'local> Ret<'local> for JStr {
    type Value = &'static str;
    type Raw = JObject<'local>;
    fn put(env: &mut JNIEnv<'local>, value: &'static str) -> Result<JObject<'local>> {
        Ok(env.new_string(value).jni()?.into())
    }
}

impl<'local> Ret<'local> for OptJStr {
    type Value = Option<String>;
    type Raw = JObject<'local>;
    fn put(env: &mut JNIEnv<'local>, value: Option<String>) -> Result<JObject<'local>> {
        super::values::opt_string(env, value.as_deref())
    }
}

/// Declares JNI entry points of `NativeBridge` (see the module docs): for
/// each, `fn <javaName>(<javaParam>: <Arg marker>, ...) -> <Ret marker>
/// |<env>| { <body returning Result<value>> }`.
macro_rules! native {
    ($(
        $(#[$attr:meta])*
        fn $name:ident($($p:ident: $K:ident),* $(,)?) -> $R:ty |$env:pat_param| $body:block
    )*) => {$(
        $(#[$attr])*
        #[allow(non_snake_case, clippy::redundant_closure_call)]
        #[export_name = concat!("Java_com_miui_cloudsync_NativeBridge_", stringify!($name))]
        pub extern "system" fn $name<'local>(
            mut env: ::jni::JNIEnv<'local>,
            _class: ::jni::objects::JClass<'local>,
            $($p: <$K as $crate::ffi::jni::entry::Arg<'local>>::Raw,)*
        ) -> <$R as $crate::ffi::jni::entry::Ret<'local>>::Raw {
            $crate::ffi::jni::run(&mut env, |env| {
                $(
                    let $p = <$K as $crate::ffi::jni::entry::Arg<'local>>::get(
                        env,
                        $p,
                        &$crate::ffi::jni::entry::arg_name!($K $p),
                    )?;
                )*
                let body = |$env: &mut ::jni::JNIEnv<'local>|
                    -> $crate::error::Result<<$R as $crate::ffi::jni::entry::Ret<'local>>::Value> {
                    $body
                };
                let value = body(env)?;
                <$R as $crate::ffi::jni::entry::Ret<'local>>::put(env, value)
            })
        }
    )*};
}

pub(super) use native;

/// The [`ArgName`] of parameter `$p` of marker `$K`: only the messages the
/// marker can use are spelled out, so the library carries no unused text.
macro_rules! arg_name {
    (@ $is_null:expr, $has_null:expr, $is_negative:expr, $not_utf16:expr) => {
        $crate::ffi::jni::entry::ArgName {
            is_null: $is_null,
            has_null: $has_null,
            is_negative: $is_negative,
            not_utf16: $not_utf16,
        }
    };
    (Str $p:ident) => {
        $crate::ffi::jni::entry::arg_name!(@ concat!(stringify!($p), " is null"), "", "", concat!(stringify!($p), " is not valid UTF-16"))
    };
    (OptStr $p:ident) => {
        $crate::ffi::jni::entry::arg_name!(@ "", "", "", concat!(stringify!($p), " is not valid UTF-16"))
    };
    (Bytes $p:ident) => { $crate::ffi::jni::entry::arg_name!(@ concat!(stringify!($p), " is null"), "", "", "") };
    (StrArray $p:ident) => {
        $crate::ffi::jni::entry::arg_name!(@
            concat!(stringify!($p), " is null"),
            concat!(stringify!($p), " contains null"),
            "",
            concat!(stringify!($p), " contains a string that is not valid UTF-16"))
    };
    (Count $p:ident) => { $crate::ffi::jni::entry::arg_name!(@ "", "", concat!(stringify!($p), " is negative"), "") };
    (Millis $p:ident) => { $crate::ffi::jni::entry::arg_name!(@ "", "", concat!(stringify!($p), " is negative"), "") };
    ($K:ident $p:ident) => { $crate::ffi::jni::entry::arg_name!(@ "", "", "", "") };
}

pub(super) use arg_name;
