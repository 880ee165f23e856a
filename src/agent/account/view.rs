//! Who may upload now ([`AccountView`]) and the account stamp items carry.

use ring::hmac;

/// Who may upload now, as the stored trust says.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum AccountView {
    /// `set_account` was never called: the anonymous queue of earlier
    /// versions (items carry no stamp; `bearer` services cannot be used).
    Unset,
    /// Signed out: uploads stop, enqueue is refused, the queue is kept.
    SignedOut,
    /// This account is current.
    SignedIn {
        /// The id, for the credential provider only.
        id: String,
        /// Its stamp in this database.
        stamp: [u8; 32],
    },
}

impl AccountView {
    /// The stamp items of the current account carry (`None`: unstamped).
    pub(crate) fn stamp(&self) -> Option<&[u8; 32]> {
        match self {
            AccountView::SignedIn { stamp, .. } => Some(stamp),
            _ => None,
        }
    }
}

impl std::fmt::Debug for AccountView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the id.
        f.write_str(match self {
            AccountView::Unset => "Unset",
            AccountView::SignedOut => "SignedOut",
            AccountView::SignedIn { .. } => "SignedIn",
        })
    }
}

/// The stamp of `account` under `key`.
pub(crate) fn stamp(key: &[u8; 32], account: &str) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), account.as_bytes());
    tag.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes")
}
