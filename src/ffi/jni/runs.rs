//! `runOnce` and `cancel`: the run with its listener, called on the run's
//! own thread. One entry point serves both Java overloads: a
//! `ProgressListener` gets `onProgress` only, a `RunListener` (which extends
//! it) every event of [`RunEvent`].
//!
//! `setCredentialProvider` puts the app's Java `CredentialProvider` behind
//! the Rust [`CredentialProvider`] trait, asked on the run's thread: the
//! `getToken` call and its exception handling.

use std::sync::Arc;
use std::time::Duration;

use ::jni::objects::{GlobalRef, JObject, JThrowable, JValue};
use ::jni::sys::jboolean;
use ::jni::{JNIEnv, JavaVM};

use super::entry::{native, Handle, Millis, Obj};
use super::values::{run_report_object, sat, time_ms};
use super::{java_string, JniResultExt};
use crate::auth::{CredentialProvider, CredentialRequest, ProviderError, Secret};
use crate::error::{Error, Result};
use crate::{Agent, RunEvent};

/// Calls the listener method `e` maps to (`all`: a `RunListener`, else
/// progress only). Method names and signatures are those of
/// `ProgressListener` and `RunListener` (kept in `consumer-rules.pro`); each
/// name literal stands right before its signature literal, which is how
/// `scripts/android-java-check.sh` finds them.
fn deliver(
    env: &mut JNIEnv<'_>,
    l: &JObject<'_>,
    e: &RunEvent,
    all: bool,
) -> ::jni::errors::Result<()> {
    let (name, sig, a, b, c) = match *e {
        RunEvent::Progress(p) => ("onProgress", "(JJJ)V", p.item_id, sat(p.sent), sat(p.total)),
        _ if !all => return Ok(()),
        RunEvent::Started { item_id, size } => ("onItemStarted", "(JJ)V", item_id, sat(size), 0),
        RunEvent::Done { item_id, bytes } => ("onItemDone", "(JJ)V", item_id, sat(bytes), 0),
        RunEvent::Held { item_id } => ("onItemHeld", "(J)V", item_id, 0, 0),
        RunEvent::Failed {
            item_id,
            kind,
            dead,
            next_attempt_at,
        } => {
            let k = env.new_string(kind.name())?;
            let k = env.auto_local(k);
            let args = [
                JValue::Long(item_id),
                JValue::Object(&k),
                JValue::Bool(u8::from(dead)),
                JValue::Long(time_ms(next_attempt_at)),
            ];
            let (name, sig) = ("onItemFailed", "(JLjava/lang/String;ZJ)V");
            return env.call_method(l, name, sig, &args).map(drop);
        }
    };
    let args = [JValue::Long(a), JValue::Long(b), JValue::Long(c)];
    // The signature's `J`s: how many of the arguments the method takes.
    let n = sig.len() - 3;
    env.call_method(l, name, sig, &args[..n]).map(drop)
}

/// Runs the agent's run with events, calling the listener on this thread.
/// A listener that throws cancels the run; its exception is rethrown after
/// the run has wound down (items unclaimed, lease released).
fn run_with_listener<'local>(
    env: &mut JNIEnv<'local>,
    agent: &Agent,
    max: Duration,
    listener: &JObject<'_>,
    all: bool,
) -> Result<JObject<'local>> {
    let mut thrown: Option<JThrowable<'local>> = None;
    let result = {
        let mut on_event = |e: &RunEvent| -> bool {
            if thrown.is_some() {
                return false;
            }
            if listener.is_null() || deliver(env, listener, e, all).is_ok() {
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
            // Not a Java exception: reported as an internal error below.
            thrown.get_or_insert_with(JThrowable::default);
            // An event after the last buffer (done, failed) cannot stop the
            // item any more: cancel explicitly so that no further item starts.
            agent.cancel();
            false
        };
        agent.run_with_events(max, &mut on_event)
    };
    match thrown {
        Some(ex) if !ex.is_null() => {
            if let Err(e) = &result {
                log::info!("run ended with {} after the listener threw", e.kind());
            }
            env.throw(ex).jni()?;
            // An exception is pending, so `run` will not replace it.
            Err(Error::Cancelled)
        }
        Some(_) => Err(Error::Internal("run listener call failed".into())),
        None => run_report_object(env, &result?),
    }
}

native! {
    /// `static native RunReport runOnce(long handle, long maxMillis, ProgressListener listener, boolean events)`:
    /// uploads until drained, `maxMillis` elapsed or cancelled; `listener` may be
    /// null; `events`: it is a `RunListener` and gets every event.
    fn runOnce(handle: Handle, maxMillis: Millis, listener: Obj, events: jboolean) -> Obj |env| {
        run_with_listener(env, &handle, maxMillis, &listener, events)
    }

    /// `static native void cancel(long handle)`: asks a running `runOnce` to stop soon.
    fn cancel(handle: Handle) -> () |_| {
        handle.cancel();
        Ok(())
    }

    /// `static native void setCredentialProvider(long handle, CredentialProvider provider)`:
    /// `null` removes it.
    fn setCredentialProvider(handle: Handle, provider: Obj) -> () |env| {
        let provider: Option<Arc<dyn CredentialProvider>> = if provider.is_null() {
            None
        } else {
            Some(Arc::new(JavaProvider {
                vm: env.get_java_vm().jni()?,
                provider: env.new_global_ref(&provider).jni()?,
            }))
        };
        handle.set_credential_provider(provider);
        Ok(())
    }
}

/// `String getToken(String accountId, String region, String service, boolean refresh)`.
const TOKEN_METHOD: &str = "getToken";
const TOKEN_SIG: &str =
    "(Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;Z)Ljava/lang/String;";
const STRING_GETTER_SIG: &str = "()Ljava/lang/String;";

/// The app's `com.miui.cloudsync.CredentialProvider`, asked on the thread
/// that runs `runOnce` (a Java thread: it is never attached here). The global
/// reference is deleted when the last run using it and the agent let go of it
/// (`GlobalRef`'s drop attaches a detached thread for that, which no path here
/// needs: every drop happens inside a Java call).
pub(super) struct JavaProvider {
    pub(super) vm: JavaVM,
    pub(super) provider: GlobalRef,
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
            Ok(get_token(env, &self.provider, req))
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

/// Calls `getToken`. A token is decoded strictly, as string arguments are
/// (`java_string`): one with an unpaired UTF-16 surrogate is a provider
/// failure, as a token that is not UTF-8 is in C, and its message never
/// quotes the token. The error is the message of the provider's exception
/// when it threw.
fn get_token(
    env: &mut JNIEnv<'_>,
    provider: &JObject<'_>,
    req: &CredentialRequest<'_>,
) -> std::result::Result<Option<Secret>, String> {
    let failed = |env: &mut JNIEnv<'_>, e: ::jni::errors::Error| {
        take_exception(env).unwrap_or_else(|| e.to_string())
    };
    let token = match call_get_token(env, provider, req) {
        Ok(token) => token,
        Err(e) => return Err(failed(env, e)),
    };
    if token.is_null() {
        return Ok(None);
    }
    match java_string(env, &token.into()) {
        // Straight into the wiping wrapper (the Java string itself cannot be wiped).
        Ok(Some(token)) => Ok(Some(Secret::new(token))),
        Ok(None) => Err("getToken returned a token that is not valid UTF-16".into()),
        Err(e) => Err(failed(env, e)),
    }
}

fn call_get_token<'local>(
    env: &mut JNIEnv<'local>,
    provider: &JObject<'_>,
    req: &CredentialRequest<'_>,
) -> ::jni::errors::Result<JObject<'local>> {
    let account = env.new_string(req.account)?;
    let region = env.new_string(req.region)?;
    let service = env.new_string(req.service)?;
    let args = [
        JValue::Object(&account),
        JValue::Object(&region),
        JValue::Object(&service),
        JValue::Bool(u8::from(req.refresh)),
    ];
    env.call_method(provider, TOKEN_METHOD, TOKEN_SIG, &args)?
        .l()
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
