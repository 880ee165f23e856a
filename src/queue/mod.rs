//! The durable upload queue in SQLite: enqueue, states, retry with backoff,
//! region stamps, the runner lease and the audit trail.

pub mod db;
pub mod ops;
pub mod rules;
pub mod schema;
pub mod wait;

pub use db::Db;
pub use ops::{AuditRecord, Backlog, ItemInfo, QueueStats, RetryPolicy, RuleStats};
pub use rules::{BackupRule, Network, NetworkRule, WaitReason};

use std::str::FromStr;

use crate::error::Error;

crate::codes::coded_enum! {
    /// Where an item is in its life. `done` items leave the queue for the
    /// audit table. The name is what the database stores.
    #[derive(PartialOrd, Ord)]
    pub enum State, c_prefix "CS_STATE_" {
        /// Waiting for a run (stamped with a region, or not yet).
        Pending = 0, "pending";
        /// Claimed by the current runner.
        Uploading = 1, "uploading";
        /// Failed; retried after `next_attempt_at`.
        Failed = 2, "failed";
        /// Gave up (max attempts or a permanent error); `retry_dead` revives it.
        Dead = 3, "dead";
        /// Waits for another region or account (see [`HeldReason`]): for
        /// `rehome`, that account's return, or `discard`.
        Held = 4, "held";
        /// Confirmed by the server and moved to the audit table.
        Done = 5, "done";
    }
}

impl State {
    /// The name stored in the database and shown by the CLI (= [`State::name`]).
    pub fn as_str(self) -> &'static str {
        self.name()
    }
}

crate::codes::coded_enum! {
    /// Why a `held` item waits.
    pub enum HeldReason, c_prefix "CS_HELD_" {
        /// It is stamped for a region other than the approved one.
        Region = 0, "region";
        /// It belongs to an account other than the one signed in.
        Account = 1, "account";
    }
}

impl FromStr for State {
    type Err = Error;
    fn from_str(s: &str) -> Result<State, Error> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(Error::InvalidArgument("unknown state"))
    }
}
