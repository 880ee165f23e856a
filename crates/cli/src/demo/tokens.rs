//! The demo's account and its tokens: the account service and the app's
//! credential provider.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use cloudsync::auth::{CredentialProvider, CredentialRequest, ProviderError, Secret};

/// The demo's signed-in account.
pub(super) const ACCOUNT: &str = "demo-user";

/// The account service and the app's side of it: the token each region's
/// server accepts now, and the one the app cached (what it hands out until a
/// server refuses it). Tokens are never printed.
#[derive(Default)]
pub(super) struct Tokens {
    /// Region -> the token its server accepts.
    issued: Mutex<BTreeMap<String, String>>,
    /// Region -> the token the app hands out.
    cached: Mutex<BTreeMap<String, String>>,
    serial: AtomicU32,
    /// `account/region/service` of the last request.
    pub(super) last: Mutex<String>,
    pub(super) asked: AtomicU32,
    pub(super) refreshed: AtomicU32,
}

impl Tokens {
    /// A new token for `region` from the account service.
    pub(super) fn issue(&self, region: &str) -> String {
        let n = self.serial.fetch_add(1, Ordering::SeqCst);
        let t = format!("demo-token-{region}-{n}");
        self.issued.lock().unwrap().insert(region.into(), t.clone());
        t
    }
}

impl CredentialProvider for Tokens {
    fn credential(&self, req: &CredentialRequest<'_>) -> Result<Option<Secret>, ProviderError> {
        *self.last.lock().unwrap() = format!("{}/{}/{}", req.account, req.region, req.service);
        if req.account != ACCOUNT {
            return Ok(None);
        }
        let counter = if req.refresh {
            &self.refreshed
        } else {
            &self.asked
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let mut cached = self.cached.lock().unwrap();
        if req.refresh || !cached.contains_key(req.region) {
            let fresh = self.issued.lock().unwrap().get(req.region).cloned();
            let fresh = fresh.ok_or_else(|| ProviderError::new("no token for the region"))?;
            cached.insert(req.region.into(), fresh);
        }
        Ok(Some(Secret::new(cached[req.region].clone())))
    }
}
