//! Whose backups these are: the signed-in account, stored in the trust row
//! like the country (one source of truth for every handle and process), the
//! account stamp every item carries, and the country of each account
//! (`account_countries`, by stamp): a new account never inherits the
//! previous one's country.
//!
//! The stamp is HMAC-SHA256 of the account id under a random key made for
//! this database at the first [`Agent::set_account`]. Items outlive a
//! sign-in (a user signs out, another signs in, the first comes back), so the
//! queue must tell accounts apart without naming them: the file never holds
//! the id of an account that is not signed in, and the same account gets
//! unrelated stamps on two devices. (The key sits in the same file, so this
//! is no defence against someone holding the whole file and guessing ids; it
//! keeps ids out of the rows, of `list`, and of copies in bug reports.)

use std::sync::Arc;

use rusqlite::Transaction;

use super::trust::Trust;
use super::Agent;
use crate::auth::CredentialProvider;
use crate::config::store;
use crate::error::{Error, Result};
use crate::region;
pub(crate) use view::{stamp, AccountView};

/// Longest account id accepted (bytes).
const MAX_ACCOUNT_LEN: usize = 256;

/// Remembers the signed-in account's country for its stamp, so it comes
/// back when the account signs in again. Also what carries a country stored
/// before schema v11 (one country per queue) over to its account.
fn remember_country(t: &Trust, tx: &Transaction<'_>) -> Result<()> {
    if let (AccountView::SignedIn { stamp, .. }, Some(cc)) = (t.account_view(), &t.country) {
        store::set_account_country(tx, &stamp, cc)?;
    }
    Ok(())
}

fn check_account_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ACCOUNT_LEN {
        return Err(Error::InvalidArgument("account id must be 1..=256 bytes"));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(
            "account id must not contain control characters",
        ));
    }
    Ok(())
}

impl Agent {
    /// Signs `account` in (or, with `None`, signs out) and, if given, sets
    /// the account's country, in one step: every handle and process on the
    /// database sees both change together.
    ///
    /// A country belongs to an account: it is remembered per account (by
    /// its stamp, never the id), and the trust row's country is the signed-in
    /// account's.
    /// - `(Some(id), Some(cc))`: `id` is signed in with country `cc`, which
    ///   is remembered for it.
    /// - `(Some(id), None)`: the account signed in already keeps its country
    ///   (apps call this at every start); another account gets the country
    ///   remembered for it, or none at all (no region is approved: runs fail
    ///   `no_region`, nothing is sent, its items wait) until it is given one.
    ///   Exception: the first account after an account-less queue (accounts
    ///   never used) adopts that queue's country, as its items.
    /// - `(None, None)`: signs out; the account's country stays remembered
    ///   for it and no country is in force until an account signs in.
    /// - `(None, Some(_))`: `InvalidArgument` (a country needs an account),
    ///   changing nothing.
    ///
    /// New items are stamped with the account. Items of another account are
    /// `held` (reason `account`) when this returns and stay so until that
    /// account is current again or the app discards them; items enqueued
    /// before any account was set belong to the first account signed in. A
    /// sign-out stops uploads (`no_account`) and refuses enqueues, keeping
    /// the queue. A run in progress stops at its next buffer.
    pub fn set_account(&self, account: Option<&str>, country: Option<&str>) -> Result<()> {
        if let Some(id) = account {
            check_account_id(id)?;
        }
        let cc = country.map(region::normalize_country).transpose()?;
        if account.is_none() && cc.is_some() {
            return Err(Error::InvalidArgument("a country needs an account"));
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|_| Error::Internal("OS RNG unavailable".into()))?;
        let mut g = self.lock();
        self.update_trust(&mut g, |t, tx, _| {
            t.require_anchor()?;
            let before = (t.account.clone(), t.account_key, t.country.clone());
            // Accounts never used: the queue's country goes to the first account.
            let legacy = t.account_key.is_none();
            remember_country(t, tx)?;
            let key = *t.account_key.get_or_insert(key);
            let same = account.is_some() && t.account.as_deref() == account;
            t.account = account.map(str::to_string);
            t.country = match (account, cc) {
                (None, _) => None,
                (Some(_), None) if same || legacy => t.country.take(),
                (Some(id), None) => store::account_country(tx, &stamp(&key, id))?,
                (Some(_), Some(cc)) => Some(cc),
            };
            remember_country(t, tx)?;
            let changed = before != (t.account.clone(), t.account_key, t.country.clone());
            Ok(((), changed))
        })?;
        log::info!(
            "account {}",
            if account.is_some() {
                "signed in"
            } else {
                "signed out"
            }
        );
        Ok(())
    }

    /// Sets the signed-in account's country (ISO 3166-1 alpha-2, any case),
    /// remembered for that account. Items stamped for another region are
    /// `held` when this returns. Signed out: `NoAccount`, changing nothing (a
    /// country belongs to an account). Accounts never used: the queue's
    /// country, which the first account signed in adopts.
    pub fn set_account_country(&self, country: &str) -> Result<()> {
        let cc = region::normalize_country(country)?;
        let mut g = self.lock();
        self.update_trust(&mut g, |t, tx, _| {
            t.require_anchor()?;
            if t.account_view() == AccountView::SignedOut {
                return Err(Error::NoAccount);
            }
            let changed = t.country.as_deref() != Some(cc.as_str());
            t.country = Some(cc);
            remember_country(t, tx)?;
            Ok(((), changed))
        })
    }

    /// Whether an account is signed in now (see [`AccountState`]).
    pub fn account_state(&self) -> Result<AccountState> {
        Ok(match self.signed_in()? {
            None => AccountState::NeverSet,
            Some(false) => AccountState::SignedOut,
            Some(true) => AccountState::SignedIn,
        })
    }

    /// Whether an account is signed in now (`None`: accounts were never used).
    pub fn signed_in(&self) -> Result<Option<bool>> {
        let mut g = self.lock();
        self.refresh(&mut g)?;
        Ok(match g.trust.account_view() {
            AccountView::Unset => None,
            AccountView::SignedOut => Some(false),
            AccountView::SignedIn { .. } => Some(true),
        })
    }

    /// Sets (or, with `None`, clears) the app's credential provider for
    /// services whose config declares `"auth": "bearer"`. It belongs to this
    /// handle, in memory only; a run uses the provider set when it starts.
    pub fn set_credential_provider(&self, provider: Option<Arc<dyn CredentialProvider>>) {
        *self.credentials.lock().unwrap_or_else(|p| p.into_inner()) = provider;
    }

    pub(crate) fn credential_provider(&self) -> Option<Arc<dyn CredentialProvider>> {
        self.credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

mod view;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_depend_on_key_and_id() {
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        assert_eq!(stamp(&k1, "alice"), stamp(&k1, "alice"));
        assert_ne!(stamp(&k1, "alice"), stamp(&k1, "bob"));
        assert_ne!(stamp(&k1, "alice"), stamp(&k2, "alice"));
    }

    #[test]
    fn account_ids_are_checked() {
        assert!(check_account_id("12345678").is_ok());
        for bad in ["", "a\nb", &"x".repeat(257)] {
            assert_eq!(
                check_account_id(bad).unwrap_err().kind(),
                crate::ErrorKind::InvalidArgument
            );
        }
    }
}

crate::codes::coded_enum! {
    /// Whether an account is signed in ([`Agent::account_state`]).
    pub enum AccountState, c_prefix "CS_ACCOUNT_" {
        /// No account was ever set on this queue: uploads need none unless a
        /// service asks for credentials.
        NeverSet = 0, "never_set";
        /// The last account signed out: uploads and enqueues stop
        /// (`no_account`) until one signs in.
        SignedOut = 1, "signed_out";
        /// An account is signed in.
        SignedIn = 2, "signed_in";
    }
}
