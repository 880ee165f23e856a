//! The user's backup rules (issue 25): an item's rule after enqueue, and the
//! queue's default for items enqueued without one. Both live in the
//! database, so every handle and process on the file sees the same.

use super::Agent;
use crate::error::Result;
use crate::queue::ops;
use crate::queue::BackupRule;

impl Agent {
    /// Changes item `id`'s backup rule (`NotFound` once it left the queue).
    /// Allowed in every state: a `held` item keeps it for when it comes
    /// back. Runs do not apply rules yet (issue 25 part 2, which will check
    /// an uploading item's rule again at its next buffer).
    pub fn set_rule(&self, id: i64, rule: BackupRule) -> Result<()> {
        self.lock().db.write(|tx| ops::set_rule(tx, id, rule))
    }

    /// The rule a new item gets when it is enqueued without one
    /// (`BackupRule::default()`, any network, charging or not, until
    /// [`Agent::set_default_rule`]).
    pub fn default_rule(&self) -> Result<BackupRule> {
        ops::default_rule(self.lock().db.conn())
    }

    /// Sets the queue's default rule for every handle and process on this
    /// database. Only items enqueued later without a rule take it: queued
    /// items keep theirs (change them with [`Agent::set_rule`]).
    pub fn set_default_rule(&self, rule: BackupRule) -> Result<()> {
        self.lock().db.write(|tx| ops::set_default_rule(tx, rule))
    }
}
