//! The queue side of an upload run: the [`crate::upload::Ledger`] that
//! records confirmed sessions and offsets (and queues a termination when an
//! item was removed while its upload was being created).

use super::Agent;
use crate::error::{Error, Result};
use crate::queue::ops::{self, now_ms, SourcePrint};
use crate::region::GuardedUrl;

/// The queue side of an upload: confirmed sessions and offsets. (The lease
/// is renewed by the run's keepalive, checked as bytes flow.)
///
/// Its commits are light ([`crate::queue::Db::write_light`]): each survives
/// the process being killed, which is the crash these steps guard against
/// (the key closes the window between a `POST` and storing its URL, the URL
/// lets a resume skip the `POST`, an offset lets it skip a `HEAD`'s worth of
/// guessing). A power cut can roll back only their tail, never reorder them,
/// and costs at most a repeated request or an orphan upload the server
/// expires: the item stays in the queue. The settlement of an upload (audit
/// row and removal) is the durable commit.
pub(super) struct QueueLedger<'a> {
    pub(super) agent: &'a Agent,
    pub(super) owner: &'a str,
    pub(super) region: &'a str,
    /// Whose credentials a termination of this item's upload needs.
    pub(super) termination_owner: ops::Owner<'a>,
}

impl crate::upload::Ledger for QueueLedger<'_> {
    fn key(&mut self, id: i64, key: &str, print: &SourcePrint) -> Result<()> {
        let mut g = self.agent.lock();
        g.db.write_light(|tx| {
            ops::check_lease(tx, self.owner)?;
            ops::set_source(tx, id, print.meta)?;
            ops::set_key(tx, id, key, print, now_ms())
        })
    }

    fn session(
        &mut self,
        id: i64,
        url: Option<&GuardedUrl>,
        print: &SourcePrint,
        offset: u64,
    ) -> Result<()> {
        let mut g = self.agent.lock();
        let url_s = url.map(|u| u.as_str());
        let written = g.db.write_light(|tx| {
            ops::check_lease(tx, self.owner)?;
            ops::set_source(tx, id, print.meta)?;
            ops::set_session(
                tx,
                id,
                url_s.as_deref().map(|u| (u, print)),
                offset,
                now_ms(),
            )
        });
        if let (Err(Error::NotFound), Some(u)) = (&written, &url_s) {
            // Removed while its upload was being created: terminate it next run.
            let owner = self.termination_owner;
            g.db.write(|tx| ops::queue_termination(tx, self.region, u, owner))?;
        }
        written
    }

    fn offset(&mut self, id: i64, offset: u64) -> Result<()> {
        let mut g = self.agent.lock();
        g.db.write_light(|tx| {
            ops::check_lease(tx, self.owner)?;
            ops::set_offset(tx, id, offset, now_ms())
        })
    }

    fn progress(&mut self, id: i64, offset: u64, sent: u64) -> Result<()> {
        let mut g = self.agent.lock();
        g.db.write_light(|tx| {
            ops::check_lease(tx, self.owner)?;
            ops::set_progress(tx, id, offset, sent, now_ms())
        })
    }
}
