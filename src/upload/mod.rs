//! The uploader: tus 1.0.0 over ureq + rustls, with the residency guard on
//! every URL, connection and certificate.

use std::time::Duration;

use rustls::pki_types::CertificateDer;

/// Upload tuning.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Bytes per PATCH request.
    pub chunk_size: u64,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Per-read / per-write socket timeout.
    pub io_timeout: Duration,
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
            io_timeout: Duration::from_secs(30),
            extra_roots: Vec::new(),
            no_public_roots: false,
        }
    }
}
