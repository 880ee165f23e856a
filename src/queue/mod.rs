//! The durable upload queue in SQLite: enqueue, states, retry with backoff,
//! region stamps, the runner lease and the audit trail.

pub mod db;
pub mod ops;
pub mod schema;
pub mod wait;

pub use db::Db;
pub use ops::{AuditRecord, ItemInfo, QueueStats, RetryPolicy};

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Where an item is in its life. `done` items leave the queue for the audit table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Waiting for a run (stamped with a region, or not yet).
    Pending,
    /// Claimed by the current runner.
    Uploading,
    /// Failed; retried after `next_attempt_at`.
    Failed,
    /// Gave up (max attempts or a permanent error); `retry_dead` revives it.
    Dead,
    /// Stamped for a region other than the approved one; waits for `rehome` or `discard`.
    Held,
    /// Confirmed by the server and moved to the audit table.
    Done,
}

impl State {
    /// Every state.
    pub const ALL: [State; 6] = [
        State::Pending,
        State::Uploading,
        State::Failed,
        State::Dead,
        State::Held,
        State::Done,
    ];

    /// The name stored in the database and shown by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Uploading => "uploading",
            State::Failed => "failed",
            State::Dead => "dead",
            State::Held => "held",
            State::Done => "done",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
