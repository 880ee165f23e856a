//! Credentials: the app's provider, the secret it returns, and the one
//! place a run keeps them.
//!
//! The library never stores a credential. At a run's first request to a
//! service whose signed config declares `"auth": "bearer"`, the run asks the
//! app's [`CredentialProvider`] for a token for `(account, region, service)`
//! and keeps it in a [`Secret`] until the run ends; a 401/403 asks once more
//! with `refresh = true`. The `Authorization` header is built only inside
//! `net::http::RegionHttp::send`, the single function that sends a request,
//! and only for a `GuardedUrl` of the region the run is bound to: no other
//! code path can attach it, and redirects are never followed.
//!
//! ```
//! use cloudsync::auth::{CredentialRequest, ProviderError, Secret};
//!
//! // Any `Fn(&CredentialRequest) -> Result<Option<Secret>, ProviderError>` is a provider.
//! let provider = |req: &CredentialRequest<'_>| -> Result<Option<Secret>, ProviderError> {
//!     if req.account.is_empty() {
//!         return Ok(None); // not signed in
//!     }
//!     Ok(Some(Secret::new(String::from("token-from-the-account-service"))))
//! };
//! let agent_provider: std::sync::Arc<dyn cloudsync::auth::CredentialProvider> =
//!     std::sync::Arc::new(provider);
//! # let _ = agent_provider;
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use crate::error::{AuthFailure, Error, Result};

/// Longest token accepted from a provider (bytes). Real bearer tokens (JWTs
/// included) are far shorter; the bound keeps a broken provider from
/// building huge headers.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Longest provider error message kept (characters); the rest is cut.
const MAX_PROVIDER_MESSAGE: usize = 200;

/// A credential. Its bytes are wiped when it is dropped, it cannot be cloned,
/// and neither `Debug` nor any other trait shows its content.
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Takes ownership of `token` (its buffer is wiped when the secret drops).
    pub fn new(token: String) -> Secret {
        Secret(Zeroizing::new(token))
    }

    /// Copies `token` into a new secret. The caller's copy is its own to wipe.
    pub fn from_bytes(token: &[u8]) -> Result<Secret> {
        let s =
            std::str::from_utf8(token).map_err(|_| Error::Unauthorized(AuthFailure::BadToken))?;
        Ok(Secret::new(s.to_string()))
    }

    /// The token, for building the request header only.
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What a run asks the provider for.
#[derive(Debug, Clone, Copy)]
pub struct CredentialRequest<'a> {
    /// The account the items belong to (as passed to [`crate::Agent::set_account`]).
    pub account: &'a str,
    /// The approved region the request goes to (e.g. `in`).
    pub region: &'a str,
    /// The service of the config (e.g. `backup`).
    pub service: &'a str,
    /// `true` when the server refused the previous token (401/403): get a new one.
    pub refresh: bool,
}

/// Why a provider could not supply a credential. Its message reaches the
/// run's error (kind `unauthorized`), so it must not contain the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError(String);

impl ProviderError {
    /// A failure with a short message (cut to 200 characters, control
    /// characters replaced).
    pub fn new(message: impl AsRef<str>) -> ProviderError {
        let clean = message
            .as_ref()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_PROVIDER_MESSAGE)
            .collect();
        ProviderError(clean)
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// Supplies the signed-in account's credentials. Called on the thread that
/// runs [`crate::Agent::run_once`], with no lock of the agent held: it may
/// call back into the agent (a nested `run_once` fails with `busy`).
/// Return `Ok(None)` when the account is not signed in. A slow provider
/// delays the run: it cannot be interrupted, and the run's deadline is
/// checked again when it returns.
pub trait CredentialProvider: Send + Sync {
    /// The token for `request`; with `request.refresh`, not the one given before.
    fn credential(
        &self,
        request: &CredentialRequest<'_>,
    ) -> std::result::Result<Option<Secret>, ProviderError>;
}

impl<F> CredentialProvider for F
where
    F: Fn(&CredentialRequest<'_>) -> std::result::Result<Option<Secret>, ProviderError>
        + Send
        + Sync,
{
    fn credential(
        &self,
        request: &CredentialRequest<'_>,
    ) -> std::result::Result<Option<Secret>, ProviderError> {
        self(request)
    }
}

/// RFC 6750 `b64token`: the only bytes a bearer token may hold. Anything else
/// (a CR/LF above all) could smuggle a header into the request.
fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && t.len() <= MAX_TOKEN_LEN
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The run's check that its region and account still hold (see
/// `agent::run`): `RegionChanged` or `AccountChanged` if not.
pub(crate) type Recheck<'a> = &'a (dyn Fn() -> Result<()> + Sync);

/// The credentials of one run: who, where, and the tokens asked so far. It
/// is dropped (tokens wiped) when the run ends.
pub(crate) struct RunAuth<'a> {
    provider: Option<Arc<dyn CredentialProvider>>,
    /// `None`: no account is set (legacy, anonymous queue).
    account: Option<String>,
    region: String,
    tokens: Mutex<HashMap<String, Secret>>,
    recheck: Recheck<'a>,
}

impl<'a> RunAuth<'a> {
    pub(crate) fn new(
        provider: Option<Arc<dyn CredentialProvider>>,
        account: Option<String>,
        region: &str,
        recheck: Recheck<'a>,
    ) -> RunAuth<'a> {
        RunAuth {
            provider,
            account,
            region: region.to_string(),
            tokens: Mutex::new(HashMap::new()),
            recheck,
        }
    }

    /// The `Authorization` value for `service`: the token asked earlier in
    /// this run, or a new one (always a new one with `refresh`).
    pub(crate) fn bearer(&self, service: &str, refresh: bool) -> Result<ureq::http::HeaderValue> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if refresh {
            tokens.remove(service);
        }
        if !tokens.contains_key(service) {
            let token = self.ask(service, refresh)?;
            // The provider runs app code (it may even sign the account out):
            // a token is used only if the run's region and account still hold.
            (self.recheck)()?;
            tokens.insert(service.to_string(), token);
        }
        let token = tokens.get(service).expect("inserted above");
        let value = Zeroizing::new(format!("Bearer {}", token.expose()));
        let mut header = ureq::http::HeaderValue::from_str(&value)
            .map_err(|_| Error::Unauthorized(AuthFailure::BadToken))?;
        // Keeps it out of the http crate's `Debug` output.
        header.set_sensitive(true);
        Ok(header)
    }

    fn ask(&self, service: &str, refresh: bool) -> Result<Secret> {
        let account = self.account.as_deref().ok_or(Error::NoAccount)?;
        let provider = self
            .provider
            .as_ref()
            .ok_or(Error::Unauthorized(AuthFailure::NoProvider))?;
        let request = CredentialRequest {
            account,
            region: &self.region,
            service,
            refresh,
        };
        let token = provider
            .credential(&request)
            .map_err(|e| Error::Unauthorized(AuthFailure::Provider(e.0)))?
            .ok_or(Error::Unauthorized(AuthFailure::NoToken))?;
        if !is_b64token(token.expose()) {
            return Err(Error::Unauthorized(AuthFailure::BadToken));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn tokens_outside_rfc6750_are_refused() {
        for good in ["abc", "a.b-c_d~e+f/g==", "eyJhbGciOi.eyJzdWIi.sig"] {
            assert!(is_b64token(good), "{good}");
        }
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        for bad in [
            "",
            "==",
            "a b",
            "a\r\nX-Evil: 1",
            "tök",
            "a\0",
            long.as_str(),
        ] {
            assert!(!is_b64token(bad), "{bad:?}");
        }
    }

    #[test]
    fn secrets_never_show_their_content() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let auth = RunAuth::new(
            Some(Arc::new(|_: &CredentialRequest<'_>| {
                Ok(Some(Secret::new("hunter2".into())))
            })),
            Some("acct".into()),
            "in",
            &|| Ok(()),
        );
        let h = auth.bearer("backup", false).unwrap();
        assert!(!format!("{h:?}").contains("hunter2"));
        assert_eq!(h.to_str().unwrap(), "Bearer hunter2");
    }

    #[test]
    fn one_ask_per_run_and_service_until_a_refresh() {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let provider = move |r: &CredentialRequest<'_>| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            assert_eq!((r.account, r.region), ("acct", "in"));
            Ok(Some(Secret::new(format!("t{n}{}", r.refresh))))
        };
        let auth = RunAuth::new(Some(Arc::new(provider)), Some("acct".into()), "in", &|| {
            Ok(())
        });
        assert_eq!(auth.bearer("backup", false).unwrap(), "Bearer t0false");
        assert_eq!(auth.bearer("backup", false).unwrap(), "Bearer t0false");
        assert_eq!(auth.bearer("photos", false).unwrap(), "Bearer t1false");
        assert_eq!(auth.bearer("backup", true).unwrap(), "Bearer t2true");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn every_way_of_not_getting_a_token_is_its_own_error() {
        let msg = |auth: RunAuth<'_>| auth.bearer("backup", false).unwrap_err().to_string();
        let none = |_: &CredentialRequest<'_>| Ok(None);
        let fails =
            |_: &CredentialRequest<'_>| Err(ProviderError::new("account service down\nretry"));
        let junk = |_: &CredentialRequest<'_>| Ok(Some(Secret::new("a\r\nX: y".into())));
        assert_eq!(
            msg(RunAuth::new(None, Some("a".into()), "in", &|| Ok(()))),
            "unauthorized: the service requires credentials and no provider is set"
        );
        assert_eq!(
            msg(RunAuth::new(Some(Arc::new(none)), None, "in", &|| Ok(()))),
            "no account is signed in"
        );
        assert_eq!(
            msg(RunAuth::new(
                Some(Arc::new(none)),
                Some("a".into()),
                "in",
                &|| Ok(())
            )),
            "unauthorized: the provider returned no credentials for the account"
        );
        assert_eq!(
            msg(RunAuth::new(
                Some(Arc::new(fails)),
                Some("a".into()),
                "in",
                &|| Ok(())
            )),
            "unauthorized: the credential provider failed: account service down retry"
        );
        assert_eq!(
            msg(RunAuth::new(
                Some(Arc::new(junk)),
                Some("a".into()),
                "in",
                &|| Ok(())
            )),
            "unauthorized: the provider returned a token that is not a bearer token"
        );
    }
}
