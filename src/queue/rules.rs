//! The user's backup rules (issue 25): when an item may use the network.
//!
//! Each item carries a [`BackupRule`] (set at enqueue, or the queue's default,
//! and changeable later). Part 2 of issue 25 (not built yet: runs ignore the
//! rules today) tells a run the phone's state ([`Network`], and whether it
//! charges), given by the app since the library sees neither
//! `ConnectivityManager` nor the battery, and sends only the items whose rule
//! allows it. An item that may not go will wait with a [`WaitReason`] that
//! names the WorkManager constraint that would unlock it.

use serde::Serialize;

crate::codes::coded_enum! {
    /// Which networks an item's bytes may use (stored in `items.network_rule`).
    pub enum NetworkRule, c_prefix "CS_NETWORK_RULE_" {
        /// Every network the phone is on: Wi-Fi, mobile data, roaming.
        Any = 0, "any";
        /// Any network but mobile data while roaming.
        NotRoaming = 1, "not_roaming";
        /// Unmetered networks only (Wi-Fi, Ethernet: "Wi-Fi only").
        Unmetered = 2, "unmetered";
    }
}

crate::codes::coded_enum! {
    /// The network the phone is on, as the app sees it (an input of each run).
    pub enum Network, c_prefix "CS_NETWORK_" {
        /// An unmetered network (Wi-Fi, Ethernet).
        Unmetered = 0, "unmetered";
        /// A metered network that is not roaming (mobile data at home).
        Metered = 1, "metered";
        /// Mobile data while roaming.
        MeteredRoaming = 2, "metered_roaming";
        /// No network.
        None = 3, "none";
    }
}

crate::codes::coded_enum! {
    /// Why an item that may not go now waits; when several apply, the first
    /// in this order. Each names the WorkManager constraint that unlocks it.
    pub enum WaitReason, c_prefix "CS_WAIT_" {
        /// Its rule needs an unmetered network (`NetworkType.UNMETERED`).
        Unmetered = 0, "unmetered";
        /// Its rule needs a network that is not roaming (`NetworkType.NOT_ROAMING`).
        NotRoaming = 1, "not_roaming";
        /// It goes only while the phone charges (`setRequiresCharging`).
        Charging = 2, "charging";
        /// Its bytes do not fit in what is left of today's metered budget.
        Budget = 3, "budget";
        /// There is no network at all, and its rule would go on any
        /// (`NetworkType.CONNECTED`): only an `any` rule waits for this.
        Connected = 4, "connected";
    }
}

/// When an item may be uploaded: the user's rule for it. The default (what
/// every item had before rules existed): any network, charging or not.
///
/// Part 2 of issue 25 gives a run the phone's [`Network`] and whether it
/// charges, and sends an item only when [`BackupRule::first_block`] finds
/// nothing that blocks it (runs ignore rules until then).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct BackupRule {
    /// Which networks it may use: `any` goes on `unmetered`, `metered` and
    /// `metered_roaming`; `not_roaming` on `unmetered` and `metered`;
    /// `unmetered` on `unmetered` only. No rule goes on `none`.
    pub network: NetworkRule,
    /// Whether it goes only while the phone charges (`false`: charging or not).
    pub charging_only: bool,
}

// Not derivable: `coded_enum!` variants take doc comments only (no `#[default]`).
#[allow(clippy::derivable_impls)]
impl Default for NetworkRule {
    fn default() -> Self {
        NetworkRule::Any
    }
}

impl BackupRule {
    /// What keeps an item with this rule from going on `network` while the
    /// phone charges (`charging`) or not: `None` when nothing does, else the
    /// first reason in the order `unmetered`, `not_roaming`, `charging` (the
    /// daily budget, [`WaitReason::Budget`], is the run's to decide).
    ///
    /// No network (`none`) blocks every rule on the network, each with the
    /// constraint that lets exactly it go: `unmetered` for an `unmetered`
    /// rule, `not_roaming` for `not_roaming`, `connected` for `any`. (One
    /// reason for `any` and `not_roaming` would leave the app either never
    /// sending `any` items while roaming or waking in a loop while roaming.)
    pub fn first_block(&self, network: Network, charging: bool) -> Option<WaitReason> {
        let network_block = match (self.network, network) {
            (NetworkRule::Unmetered, Network::Unmetered) => None,
            (NetworkRule::Unmetered, _) => Some(WaitReason::Unmetered),
            (NetworkRule::Any, Network::None) => Some(WaitReason::Connected),
            (_, Network::None) => Some(WaitReason::NotRoaming),
            (NetworkRule::NotRoaming, Network::MeteredRoaming) => Some(WaitReason::NotRoaming),
            (NetworkRule::NotRoaming | NetworkRule::Any, _) => None,
        };
        network_block.or((self.charging_only && !charging).then_some(WaitReason::Charging))
    }

    /// The rule stored in an item's (or the settings') two columns; `None`
    /// for a network code this build does not know.
    pub fn from_columns(network_rule: i64, charging_only: i64) -> Option<BackupRule> {
        let network = NetworkRule::from_code(i32::try_from(network_rule).ok()?)?;
        Some(BackupRule {
            network,
            charging_only: charging_only != 0,
        })
    }

    /// The two column values this rule is stored as.
    pub fn to_columns(self) -> (i64, i64) {
        (
            i64::from(self.network.code()),
            i64::from(self.charging_only),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Network as N;
    use NetworkRule as R;
    use WaitReason as W;

    fn rule(network: NetworkRule, charging_only: bool) -> BackupRule {
        BackupRule {
            network,
            charging_only,
        }
    }

    #[test]
    fn the_default_is_todays_behaviour() {
        assert_eq!(BackupRule::default(), rule(R::Any, false));
        for n in [N::Unmetered, N::Metered, N::MeteredRoaming] {
            for charging in [false, true] {
                assert_eq!(BackupRule::default().first_block(n, charging), None);
            }
        }
    }

    #[test]
    fn first_block_over_the_whole_truth_table() {
        // The network's reason when it blocks (the same charging or not),
        // by rule, on unmetered / metered / metered_roaming / none.
        let network_block = |r: NetworkRule| -> [Option<WaitReason>; 4] {
            match r {
                R::Any => [None, None, None, Some(W::Connected)],
                R::NotRoaming => [None, None, Some(W::NotRoaming), Some(W::NotRoaming)],
                R::Unmetered => [
                    None,
                    Some(W::Unmetered),
                    Some(W::Unmetered),
                    Some(W::Unmetered),
                ],
            }
        };
        let mut cases = 0;
        for r in NetworkRule::ALL {
            for (n, blocked) in Network::ALL.into_iter().zip(network_block(r)) {
                for charging_only in [false, true] {
                    for charging in [false, true] {
                        let want = blocked.or((charging_only && !charging).then_some(W::Charging));
                        let got = rule(r, charging_only).first_block(n, charging);
                        assert_eq!(
                            got, want,
                            "{r} charging_only={charging_only} on {n} charging={charging}"
                        );
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 48);
        // Spelled out where the order matters: the network comes before charging.
        assert_eq!(
            rule(R::Unmetered, true).first_block(N::Metered, false),
            Some(W::Unmetered)
        );
        assert_eq!(
            rule(R::NotRoaming, true).first_block(N::MeteredRoaming, false),
            Some(W::NotRoaming)
        );
        assert_eq!(
            rule(R::Unmetered, true).first_block(N::Unmetered, false),
            Some(W::Charging)
        );
        assert_eq!(
            rule(R::Any, true).first_block(N::MeteredRoaming, true),
            None
        );
    }

    #[test]
    fn columns_round_trip_and_unknown_codes_are_refused() {
        for r in NetworkRule::ALL {
            for c in [false, true] {
                let (n, ch) = rule(r, c).to_columns();
                assert_eq!(BackupRule::from_columns(n, ch), Some(rule(r, c)));
            }
        }
        assert_eq!(BackupRule::from_columns(3, 0), None);
        assert_eq!(BackupRule::from_columns(-1, 0), None);
        assert_eq!(BackupRule::from_columns(i64::MAX, 0), None);
    }

    #[test]
    fn codes_and_names_are_the_abi() {
        assert_eq!(
            NetworkRule::ALL.map(|r| (r.code(), r.name())),
            [(0, "any"), (1, "not_roaming"), (2, "unmetered")]
        );
        assert_eq!(
            Network::ALL.map(|r| (r.code(), r.name())),
            [
                (0, "unmetered"),
                (1, "metered"),
                (2, "metered_roaming"),
                (3, "none")
            ]
        );
        assert_eq!(
            WaitReason::ALL.map(|r| (r.code(), r.name())),
            [
                (0, "unmetered"),
                (1, "not_roaming"),
                (2, "charging"),
                (3, "budget"),
                (4, "connected")
            ]
        );
        assert_eq!(
            (
                NetworkRule::C_PREFIX,
                Network::C_PREFIX,
                WaitReason::C_PREFIX
            ),
            ("CS_NETWORK_RULE_", "CS_NETWORK_", "CS_WAIT_")
        );
        let json = serde_json::to_string(&rule(R::NotRoaming, true)).unwrap();
        assert_eq!(json, r#"{"network":"not_roaming","charging_only":true}"#);
    }
}
