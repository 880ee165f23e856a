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

pub mod http;
mod pacing;
pub mod tus;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::queue::ops::{stat_source, ItemRow, SourceMeta};
use crate::region::GuardedUrl;
use http::RegionHttp;
use tus::{Capabilities, Failure, HeadResult, PatchOutcome, TusResult};

/// Read buffer for hashing and sending: memory stays flat whatever the file size.
const BUF: usize = 256 * 1024;

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
pub trait Ledger {
    /// A new (or cleared, with `None`) upload session and its confirmed offset.
    fn session(
        &mut self,
        id: i64,
        url: Option<&GuardedUrl>,
        meta: SourceMeta,
        sha256: &[u8; 32],
        offset: u64,
    ) -> Result<()>;
    /// A newly confirmed offset.
    fn offset(&mut self, id: i64, offset: u64) -> Result<()>;
}

/// Stop conditions checked while bytes flow.
pub struct Stop<'a> {
    /// Set by [`crate::Agent::cancel`] (or a progress callback) from another thread.
    pub cancel: &'a AtomicBool,
    /// Time limit of the run.
    pub deadline: Instant,
    /// Whether the region being uploaded to is still the approved one (the
    /// account country or the config may change on another thread mid-run).
    pub still_approved: &'a (dyn Fn() -> bool + Sync),
    /// Renews the runner lease while bytes flow (a slow chunk may outlast
    /// it); fails with `Busy` if another runner took the queue over.
    pub keepalive: &'a (dyn Fn() -> Result<()> + Sync),
}

impl Stop<'_> {
    fn check(&self) -> Result<()> {
        // Cancel and time-up both end the attempt the same way; the run tells them apart.
        if self.cancel.load(Ordering::SeqCst) || Instant::now() >= self.deadline {
            Err(Error::Cancelled)
        } else if !(self.still_approved)() {
            // Checked per buffer: not one more byte once the region is no longer approved.
            Err(Error::RegionChanged)
        } else {
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
    /// Bytes.
    pub bytes: u64,
    /// Content SHA-256.
    pub sha256: [u8; 32],
    /// Size and mtime of the source that was uploaded.
    pub meta: SourceMeta,
}

/// SHA-256 of a whole file, streamed.
pub fn hash_file(path: &Path) -> Result<[u8; 32]> {
    Ok(hash_file_chunks(path, None, &|| Ok(()))?.0)
}

fn sha_out(ctx: ring::digest::Context) -> [u8; 32] {
    ctx.finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// SHA-256 of a whole file and, if `chunk` is given, of each `chunk`-sized
/// piece from offset 0 — in one read pass, so the tus checksum of every
/// aligned chunk costs no second pass over the file.
/// `check` runs every 64 buffers (16 MiB): a cancel, a region change or a lost
/// lease must not wait for a multi-GiB file to finish hashing.
fn hash_file_chunks(
    path: &Path,
    chunk: Option<u64>,
    check: &dyn Fn() -> Result<()>,
) -> Result<([u8; 32], Vec<[u8; 32]>)> {
    let mut f = File::open(path).map_err(|e| Error::SourceIo(e.kind()))?;
    let mut whole = ring::digest::Context::new(&ring::digest::SHA256);
    let mut piece = ring::digest::Context::new(&ring::digest::SHA256);
    let mut in_piece = 0u64;
    let mut pieces = Vec::new();
    let mut reads = 0u64;
    let mut buf = vec![0u8; BUF];
    loop {
        let want = match chunk {
            Some(c) => usize::try_from((c - in_piece).min(BUF as u64)).expect("bounded by BUF"),
            None => BUF,
        };
        let n = f
            .read(&mut buf[..want])
            .map_err(|e| Error::SourceIo(e.kind()))?;
        if n == 0 {
            break;
        }
        reads += 1;
        if reads % 64 == 0 {
            check()?;
        }
        whole.update(&buf[..n]);
        if let Some(c) = chunk {
            piece.update(&buf[..n]);
            in_piece += n as u64;
            if in_piece == c {
                pieces.push(sha_out(std::mem::replace(
                    &mut piece,
                    ring::digest::Context::new(&ring::digest::SHA256),
                )));
                in_piece = 0;
            }
        }
    }
    if chunk.is_some() && in_piece > 0 {
        pieces.push(sha_out(piece));
    }
    Ok((sha_out(whole), pieces))
}

fn hash_range(f: &mut File, offset: u64, len: u64) -> Result<[u8; 32]> {
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::SourceIo(e.kind()))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; BUF];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(BUF as u64)).expect("bounded by BUF");
        let n = f
            .read(&mut buf[..want])
            .map_err(|e| Error::SourceIo(e.kind()))?;
        if n == 0 {
            return Err(Error::SourceIo(std::io::ErrorKind::UnexpectedEof));
        }
        ctx.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(ctx
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes"))
}

/// Reads exactly one chunk from the file, checking the stop conditions and
/// reporting progress as bytes leave.
struct ChunkReader<'a> {
    file: &'a mut File,
    left: u64,
    sent_before: u64,
    sent: u64,
    stop: &'a Stop<'a>,
    progress: &'a mut dyn FnMut(Progress) -> bool,
    item_id: i64,
    total: u64,
    last_report: u64,
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        if self.stop.check().is_err() {
            return Err(std::io::Error::other("stopped"));
        }
        let want = usize::try_from(self.left.min(buf.len() as u64)).expect("bounded by buf.len()");
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            // The file shrank under us: fail rather than send a short body.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "source shrank",
            ));
        }
        self.left -= n as u64;
        self.sent += n as u64;
        if self.sent - self.last_report >= 1024 * 1024 || self.left == 0 {
            self.last_report = self.sent;
            let p = Progress {
                item_id: self.item_id,
                sent: self.sent_before + self.sent,
                total: self.total,
            };
            if !(self.progress)(p) {
                self.stop.cancel.store(true, Ordering::SeqCst);
            }
        }
        Ok(n)
    }
}

/// Uploads one item of the region `http` serves. The caller has claimed it.
#[allow(clippy::too_many_arguments)]
pub fn upload_item(
    http: &RegionHttp,
    caps: &Capabilities,
    endpoint: &GuardedUrl,
    item: &ItemRow,
    opts: &UploadOptions,
    ledger: &mut dyn Ledger,
    stop: &Stop<'_>,
    progress: &mut dyn FnMut(Progress) -> bool,
) -> TusResult<Finished> {
    let path = Path::new(&item.path);
    let meta = stat_source(path)?;
    if let Some(max) = caps.max_size {
        if meta.size > max {
            return Err(Error::Rejected(413).into());
        }
    }
    stop.check()?;
    // The hash is taken before anything is sent; the file is re-checked after.
    let chunk_size = opts.chunk_size.max(1);
    // A file that fits in one chunk has one checksum: the whole-file hash.
    let per_chunk = caps.checksum_sha256 && meta.size > chunk_size;
    let (sha, mut chunk_sums) =
        hash_file_chunks(path, per_chunk.then_some(chunk_size), &|| stop.check())?;
    if caps.checksum_sha256 && !per_chunk {
        chunk_sums = vec![sha];
    }
    if stat_source(path)? != meta {
        return Err(Error::SourceChanged.into());
    }
    stop.check()?;

    // Resume the stored session only if it was made for exactly this content
    // and its URL still passes the guard (it was read back from disk).
    let mut session: Option<(GuardedUrl, u64)> = None;
    if let Some(stored) = item.upload_url.as_deref() {
        let same_content = item.upload_len == Some(meta.size)
            && item.upload_mtime_ns == Some(meta.mtime_ns)
            && item.upload_sha256 == Some(sha);
        match http.region().guard(stored) {
            Ok(url) if same_content => match http.tus_head(&url)? {
                HeadResult::Offset(off, len)
                    if len.is_none_or(|l| l == meta.size) && off <= meta.size =>
                {
                    session = Some((url, off));
                }
                _ => log::info!(
                    "item {}: stored upload is gone; creating a new one",
                    item.id
                ),
            },
            Ok(url) => {
                log::info!(
                    "item {}: source changed since its upload began; restarting",
                    item.id
                );
                if caps.termination {
                    let _ = http.tus_delete(&url);
                }
            }
            Err(e) => log::warn!(
                "item {}: stored upload URL refused by the guard ({})",
                item.id,
                e.kind()
            ),
        }
        if session.is_none() {
            ledger.session(item.id, None, meta, &sha, 0)?;
        }
    }

    let (url, mut offset) = match session {
        Some(s) => s,
        None => {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
            let id = item.id.to_string();
            let sha_hex = hex::encode(sha);
            let md: [(&str, &[u8]); 3] = [
                ("filename", name.as_bytes()),
                ("item", id.as_bytes()),
                ("sha256", sha_hex.as_bytes()),
            ];
            stop.check()?;
            let (url, off) = http.tus_create(endpoint, meta.size, &md)?;
            if off > meta.size {
                return Err(Error::Protocol(
                    "POST answered an offset beyond the upload length".into(),
                )
                .into());
            }
            // Persist at once: a crash after this line resumes this very upload.
            ledger.session(item.id, Some(&url), meta, &sha, off)?;
            (url, off)
        }
    };

    let mut file = File::open(path).map_err(|e| Failure::from(Error::SourceIo(e.kind())))?;
    let mut inline_retries = 0;
    while offset < meta.size {
        stop.check()?;
        // After a partial chunk, send up to the next boundary: chunks stay
        // aligned, so their checksums come from the single hashing pass.
        let len = (chunk_size - offset % chunk_size).min(meta.size - offset);
        let aligned = usize::try_from(offset / chunk_size)
            .ok()
            .filter(|_| offset % chunk_size == 0)
            .and_then(|i| chunk_sums.get(i).copied());
        let checksum = match (caps.checksum_sha256, aligned) {
            (false, _) => None,
            (true, Some(sum)) => Some(sum),
            (true, None) => Some(hash_range(&mut file, offset, len)?),
        };
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Failure::from(Error::SourceIo(e.kind())))?;
        let mut reader = ChunkReader {
            file: &mut file,
            left: len,
            sent_before: offset,
            sent: 0,
            stop,
            progress: &mut *progress,
            item_id: item.id,
            total: meta.size,
            last_report: 0,
        };
        let outcome = http.tus_patch(&url, offset, len, checksum.as_ref(), &mut reader);
        if let Ok(PatchOutcome::Offset(new)) = outcome {
            // The server may confirm less than we sent, never more.
            if new > offset && new <= offset + len {
                // Record what the server confirmed before anything else, even a cancel.
                offset = new;
                ledger.offset(item.id, offset)?;
                continue;
            }
        }
        // A cancel mid-body surfaces as an I/O error: report it as the cancel it is.
        stop.check()?;
        match outcome {
            Ok(PatchOutcome::Offset(_)) => {
                return Err(Error::Protocol(
                    "PATCH answered an offset that does not advance".into(),
                )
                .into())
            }
            Ok(PatchOutcome::Gone) => {
                ledger.session(item.id, None, meta, &sha, 0)?;
                return Err(Error::Network(
                    "upload vanished on the server; will start over".into(),
                )
                .into());
            }
            Ok(PatchOutcome::Conflict)
            | Ok(PatchOutcome::ChecksumMismatch)
            | Err(Failure {
                error: Error::Network(_),
                ..
            }) if inline_retries < 3 => {
                // A dropped connection or a disagreement: ask the server where it is, and go on from there.
                inline_retries += 1;
                match http.tus_head(&url)? {
                    HeadResult::Offset(off, _) if off <= meta.size => {
                        offset = off;
                        ledger.offset(item.id, offset)?;
                    }
                    _ => {
                        ledger.session(item.id, None, meta, &sha, 0)?;
                        return Err(Error::Network(
                            "upload vanished on the server; will start over".into(),
                        )
                        .into());
                    }
                }
            }
            Ok(PatchOutcome::Conflict) => {
                return Err(Error::Protocol("offset conflict persists".into()).into())
            }
            Ok(PatchOutcome::ChecksumMismatch) => {
                return Err(Error::Network("checksum mismatch persists".into()).into())
            }
            Err(f) => return Err(f),
        }
    }

    // The bytes sent were read while the file had this size and mtime; if it
    // changed meanwhile the server copy may be torn: throw it away.
    if stat_source(path)? != meta {
        // Not even a DELETE once the region is no longer approved (the URL
        // may carry a token); the orphan then expires on the server.
        if caps.termination && stop.check().is_ok() {
            let _ = http.tus_delete(&url);
        }
        ledger.session(item.id, None, meta, &sha, 0)?;
        return Err(Error::SourceChanged.into());
    }
    let _ = progress(Progress {
        item_id: item.id,
        sent: meta.size,
        total: meta.size,
    });
    Ok(Finished {
        host: url.host_port(),
        peer_ip: http.peer_ip(&url.host_port()),
        bytes: meta.size,
        sha256: sha,
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sums_match_separate_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..(3 * BUF + 1234)).map(|i| (i * 7) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        for chunk in [1u64, 1000, BUF as u64, BUF as u64 + 1, 10 * BUF as u64] {
            let (whole, sums) = hash_file_chunks(&p, Some(chunk), &|| Ok(())).unwrap();
            let sha = |b: &[u8]| -> [u8; 32] {
                ring::digest::digest(&ring::digest::SHA256, b)
                    .as_ref()
                    .try_into()
                    .unwrap()
            };
            assert_eq!(whole, sha(&data));
            let want: Vec<[u8; 32]> = data.chunks(chunk as usize).map(sha).collect();
            assert_eq!(sums, want, "chunk {chunk}");
        }
        assert!(hash_file_chunks(&p, None, &|| Ok(())).unwrap().1.is_empty());
    }
}
