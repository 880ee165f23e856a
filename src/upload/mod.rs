//! The uploader: tus 1.0.0 over the guarded transport of [`crate::net`]
//! (the residency guard on every URL, connection and certificate).

mod item;
pub mod mime;
mod pipeline;
mod source;
pub mod tus;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::queue::ops::{SourceMeta, SourcePrint};
use crate::region::GuardedUrl;

pub use item::upload_item;
pub(crate) use pipeline::release_spares;
pub use source::hash_file;

/// Progress of the item being uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Item id.
    pub item_id: i64,
    /// Bytes the server holds (confirmed, plus the chunk in flight).
    pub sent: u64,
    /// Total bytes of the item.
    pub total: u64,
}

/// Where the uploader records what the server confirmed (the queue).
///
/// `sent` is always the item's count of body bytes sent, across its
/// attempts, runs and sessions, with the body about to go out (if any)
/// already in it.
pub trait Ledger {
    /// The idempotency key of a creation request about to be sent for the
    /// source version `print`; on storage (durable) before it returns.
    fn key(&mut self, id: i64, key: &str, print: &SourcePrint) -> Result<()>;
    /// A new upload session for the source version `print`, its confirmed
    /// offset and the count (durable: a restart after a power cut resumes
    /// it); with `None`, clears the session and its key (a light commit).
    fn session(
        &mut self,
        id: i64,
        url: Option<&GuardedUrl>,
        print: &SourcePrint,
        offset: u64,
        sent: u64,
    ) -> Result<()>;
    /// A confirmed offset and the count; with `durable`, on storage before
    /// it returns (the count holds a body about to go out).
    fn progress(&mut self, id: i64, offset: u64, sent: u64, durable: bool) -> Result<()>;
    /// The count alone, corrected down to what went out (a light commit).
    fn sent(&mut self, id: i64, sent: u64) -> Result<()>;
}

/// A new random idempotency key for a creation request (128 bits, hex).
pub(crate) fn new_key() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| Error::Internal("OS RNG unavailable".into()))?;
    Ok(hex::encode(b))
}

/// Stop conditions checked while bytes flow.
pub struct Stop<'a> {
    /// Set by [`crate::Agent::cancel`] (or a progress callback) from another thread.
    pub cancel: &'a AtomicBool,
    /// Time limit of the run.
    pub deadline: Instant,
    /// Whether the region being uploaded to is still the approved one and
    /// the account still the current one (either may change on another
    /// thread or process mid-run): `RegionChanged` or `AccountChanged` if not.
    pub still_approved: &'a (dyn Fn() -> Result<()> + Sync),
    /// Renews the runner lease while bytes flow (a slow chunk may outlast
    /// it); fails with `Busy` if another runner took the queue over.
    pub keepalive: &'a (dyn Fn() -> Result<()> + Sync),
}

impl Stop<'_> {
    fn check(&self) -> Result<()> {
        // Cancel and time-up both end the attempt the same way; the run tells them apart.
        if self.cancel.load(Ordering::SeqCst) || Instant::now() >= self.deadline {
            Err(Error::Cancelled)
        } else {
            // Checked per buffer: not one more byte once the region is no
            // longer approved or the account no longer current.
            (self.still_approved)()?;
            (self.keepalive)()
        }
    }
}

/// A finished upload, for the audit trail.
#[derive(Debug, Clone)]
pub struct Finished {
    /// `host:port` of the upload URL.
    pub host: String,
    /// Peer the bytes went to.
    pub peer_ip: Option<std::net::IpAddr>,
    /// Bytes the server confirmed: the whole file.
    pub bytes: u64,
    /// Body bytes this client wrote into the TLS stream for the item, in
    /// every attempt, run and session (bytes re-sent after a cut count
    /// again; 0 when the server already held the content). A crash may have
    /// added at most the unsent tail of the body in flight.
    pub sent_bytes: u64,
    /// Content SHA-256.
    pub sha256: [u8; 32],
    /// Size and mtime of the source that was uploaded.
    pub meta: SourceMeta,
}
