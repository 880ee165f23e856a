//! The uploader: tus 1.0.0 over ureq + rustls, with the residency guard on
//! every URL, connection and certificate.

use std::time::Duration;

use rustls::pki_types::CertificateDer;

/// Upload tuning.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Bytes per PATCH request.
    pub chunk_size: u64,
    /// TCP connect timeout (per address tried).
    pub connect_timeout: Duration,
    /// TLS handshake timeout, from the TCP connection to the end of the handshake.
    pub handshake_timeout: Duration,
    /// How long one read or one write may make no progress.
    pub io_timeout: Duration,
    /// Overall limit of a request without a body (OPTIONS, HEAD, POST,
    /// DELETE), under the run's own deadline; a PATCH is bounded by the
    /// run's deadline and `io_timeout` only (a slow link may need long).
    pub request_timeout: Duration,
    /// Extra trust anchors for every region (tests only: the loopback CA).
    /// Production trust comes from Mozilla's roots plus each region's `ca_certs`.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Skip Mozilla's roots (tests: trust only the test CA).
    pub no_public_roots: bool,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            chunk_size: 8 * 1024 * 1024,
            connect_timeout: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(15),
            io_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            extra_roots: Vec::new(),
            no_public_roots: false,
        }
    }
}

pub(crate) mod fetch;
pub mod http;
mod item;
pub mod mime;
mod pacing;
mod pipeline;
mod source;
mod tls;
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
