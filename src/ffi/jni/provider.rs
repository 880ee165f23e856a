//! The app's Java `CredentialProvider` behind the Rust
//! [`CredentialProvider`] trait: the `getToken` call and its exception handling.

use ::jni::objects::{GlobalRef, JObject, JValue};
use ::jni::{JNIEnv, JavaVM};

use crate::auth::{CredentialProvider, CredentialRequest, ProviderError, Secret};

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
