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
/// Which commits reach storage before the next step (DESIGN.md §7): the
/// idempotency key (before its `POST`), the session URL (before the first
/// `PATCH`) and every count that holds a body about to go out (before it
/// goes: after a power cut the count is never short of what the server got)
/// are durable. Confirmed offsets alone, a cleared session and corrections of
/// the count are light ([`crate::queue::Db::write_light`]): each survives the
/// process being killed, and a power cut rolls back only a tail of them (the
/// server's `HEAD` is the truth for an offset; a lost correction leaves an
/// over-count of at most the tail of one body). The settlement of an upload
/// (audit row and removal) is durable too (in the run).
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
        g.db.write(|tx| {
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
        sent: u64,
    ) -> Result<()> {
        let mut g = self.agent.lock();
        let url_s = url.map(|u| u.as_str());
        let body = |tx: &rusqlite::Transaction<'_>| {
            ops::check_lease(tx, self.owner)?;
            ops::set_source(tx, id, print.meta)?;
            ops::set_session(
                tx,
                id,
                url_s.as_deref().map(|u| (u, print)),
                offset,
                now_ms(),
            )?;
            ops::set_sent(tx, id, sent, now_ms())
        };
        // A new URL is on storage before its first PATCH; clearing one may
        // be rolled back by a power cut (the next run's HEAD finds it gone).
        let written = match url_s {
            Some(_) => g.db.write(body),
            None => g.db.write_light(body),
        };
        if let (Err(Error::NotFound), Some(u)) = (&written, &url_s) {
            // Removed while its upload was being created: terminate it next run.
            let owner = self.termination_owner;
            g.db.write(|tx| ops::queue_termination(tx, self.region, u, owner))?;
        }
        written
    }

    fn progress(&mut self, id: i64, offset: u64, sent: u64, durable: bool) -> Result<()> {
        let mut g = self.agent.lock();
        let body = |tx: &rusqlite::Transaction<'_>| {
            ops::check_lease(tx, self.owner)?;
            ops::set_progress(tx, id, offset, sent, now_ms())
        };
        if durable {
            g.db.write(body)
        } else {
            g.db.write_light(body)
        }
    }

    fn sent(&mut self, id: i64, sent: u64) -> Result<()> {
        let mut g = self.agent.lock();
        g.db.write_light(|tx| {
            ops::check_lease(tx, self.owner)?;
            ops::set_sent(tx, id, sent, now_ms())
        })
    }
}
