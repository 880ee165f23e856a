//! The guarded transport: ureq + rustls under the residency guard of
//! [`crate::region`] (host rules, resolved peers, pins, anchors, no
//! redirects, no proxy, paced sockets). It serves the tus uploads
//! ([`crate::upload`]) and the mirror fetches of signed metadata, and knows
//! neither the queue nor the tus protocol.

use std::time::Duration;

use rustls::pki_types::CertificateDer;

pub(crate) mod fetch;
pub mod http;
mod pacing;
mod tls;

/// Upload tuning.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Bytes per PATCH request; at least 1 (0 is `invalid_argument` when the agent is opened).
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
