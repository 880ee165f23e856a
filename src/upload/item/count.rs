//! The item's sent-bytes count (the audit's `sent_bytes`): every body byte
//! this agent writes into the TLS stream for the item, in every attempt, run
//! and session. A body is counted, on storage, before it goes out; the count
//! is corrected down to what went out when the attempt ends. So a crash or a
//! power cut leaves it at most the unsent tail of one body over the truth,
//! never under it (DESIGN.md §7). Request heads and TLS framing are not
//! counted.

use super::{ItemUpload, Step};
use crate::upload::source::Source;

impl ItemUpload<'_, '_> {
    /// Length of the body that starts at `offset` (0 past the end).
    pub(super) fn body_len(&self, src: &Source<'_>, offset: u64) -> u64 {
        self.chunks(src).end_from(offset).saturating_sub(offset)
    }

    /// Before a body of `len` bytes goes out at `offset`: the count with
    /// this body in it is on storage first, so no crash or power cut can
    /// leave bytes that went out uncounted (one durable commit, unless the
    /// last one already counted it: the session's or the previous chunk's).
    pub(super) fn count_body(&mut self, offset: u64, len: u64) -> Step<()> {
        let want = self.sent + len;
        if self.counted < want {
            self.ledger.progress(self.item.id, offset, want, true)?;
            self.counted = want;
        }
        Ok(())
    }

    /// A confirmed offset (a light commit; the count it carries is the one
    /// already on storage, never lower: see [`Self::count_body`]).
    pub(super) fn note_offset(&mut self, offset: u64) -> Step<()> {
        self.ledger
            .progress(self.item.id, offset, self.counted, false)?;
        Ok(())
    }

    /// At the end of a failed attempt: the count down to what went out.
    pub(super) fn correct_count(&mut self) {
        if self.counted > self.sent {
            match self.ledger.sent(self.item.id, self.sent) {
                Ok(()) => self.counted = self.sent,
                Err(e) => log::info!(
                    "item {}: sent-bytes count not corrected ({})",
                    self.item.id,
                    e.kind()
                ),
            }
        }
    }
}
