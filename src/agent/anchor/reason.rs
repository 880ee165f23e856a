//! Why the firmware root replaced the trust a database held: stored as a
//! short code, shown as a fixed sentence. The file holds only the code, so
//! whatever someone writes there can never put their words in front of the
//! user: an unknown code reads as no reset at all.

/// Why the firmware root replaced the stored trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetReason {
    /// The stored root has the firmware root's version and other bytes.
    RootDiffers,
    /// A stored chain row does not verify from the firmware root.
    ChainFails,
    /// The stored chain reaches another root at the stored root's version.
    ChainReachesOther,
    /// The stored chain goes past the stored root.
    ChainPastRoot,
    /// The firmware root's mirrors hold another root at the stored version.
    NotOnChain,
    /// The stored root or account key does not parse or verify at all.
    StoredInvalid,
}

const ALL: [ResetReason; 6] = [
    ResetReason::RootDiffers,
    ResetReason::ChainFails,
    ResetReason::ChainReachesOther,
    ResetReason::ChainPastRoot,
    ResetReason::NotOnChain,
    ResetReason::StoredInvalid,
];

impl ResetReason {
    /// The code stored in `trust.trust_reset`.
    pub(crate) fn code(self) -> &'static str {
        match self {
            ResetReason::RootDiffers => "root_differs",
            ResetReason::ChainFails => "chain_fails",
            ResetReason::ChainReachesOther => "chain_reaches_other",
            ResetReason::ChainPastRoot => "chain_past_root",
            ResetReason::NotOnChain => "not_on_chain",
            ResetReason::StoredInvalid => "stored_invalid",
        }
    }

    /// What `ConfigInfo::trust_reset` says.
    pub(crate) fn sentence(self) -> &'static str {
        match self {
            ResetReason::RootDiffers => "the stored root differs from the firmware root",
            ResetReason::ChainFails => "the stored root chain does not verify",
            ResetReason::ChainReachesOther => "the stored root is not the one its chain reaches",
            ResetReason::ChainPastRoot => "the stored root chain runs past the stored root",
            ResetReason::NotOnChain => "the stored root is not on the firmware root's chain",
            ResetReason::StoredInvalid => "the stored root or account key is damaged",
        }
    }

    /// The reason a stored code names; `None` for anything else.
    pub(crate) fn from_code(code: &str) -> Option<ResetReason> {
        ALL.into_iter().find(|r| r.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_foreign_text_is_no_reason() {
        for r in ALL {
            assert_eq!(ResetReason::from_code(r.code()), Some(r));
        }
        assert_eq!(
            ResetReason::from_code("Your backups are compromised: call +1-555-0100"),
            None
        );
    }
}
