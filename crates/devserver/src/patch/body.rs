//! Streaming a PATCH body to the upload file: in large blocks, the upload's
//! offset advancing as data lands on disk, never past its `Upload-Length`.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::http::Body;
use crate::reply::Conn;
use crate::state::{lock, ConnCtx, Shared};

/// PATCH bodies are written to disk in blocks of this size.
const WRITE_BLOCK: usize = 1024 * 1024;
/// The block size under [`crate::ServerOptions::body_rate`].
const SLOW_BLOCK: usize = 16 * 1024;

/// Where a PATCH body goes.
pub(super) struct Target<'a> {
    pub(super) shared: &'a Shared,
    pub(super) id: &'a str,
    pub(super) file: &'a mut File,
    /// The request's `Upload-Offset`.
    pub(super) offset: u64,
    /// Bytes the upload can still take.
    pub(super) allowed: u64,
    pub(super) hasher: Option<ring::digest::Context>,
    /// Bytes stored so far.
    pub(super) written: u64,
}

impl Target<'_> {
    /// Stores one block; the offset advances as data lands on disk, so a dropped
    /// connection keeps it (completion is only declared once the request is over).
    fn store(&mut self, block: &[u8]) -> Result<(), StreamEnd> {
        if let Err(e) = self.file.write_all(block) {
            log::warn!("devserver: write to an upload file failed: {e}");
            return Err(StreamEnd::WriteFailed);
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(block);
        }
        self.written += block.len() as u64;
        lock(&self.shared.store)
            .set_offset(self.id, self.offset + self.written, false)
            .map(drop)
            .ok_or(StreamEnd::Terminated)
    }
}

/// Streams the body to disk in large blocks, stopping after `drop_after` bytes if given.
pub(super) fn stream_body(
    conn: &mut Conn,
    body: &mut Body,
    ctx: &mut ConnCtx,
    t: &mut Target<'_>,
    drop_after: Option<u64>,
) -> Result<(), StreamEnd> {
    if ctx.scratch.len() < WRITE_BLOCK {
        ctx.scratch = vec![0u8; WRITE_BLOCK];
    }
    let buf = &mut ctx.scratch;
    let rate = t.shared.cfg.body_rate.filter(|r| *r > 0);
    let started = Instant::now();
    loop {
        // Cut (a restart, a newer writer): what still sits in socket buffers
        // never arrived.
        if ctx.killed.load(Ordering::SeqCst) {
            return Err(StreamEnd::Disconnected);
        }
        if let Some(rate) = rate {
            // A slow link: the next block is not read before its time.
            let due = Duration::from_secs_f64(t.written as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        // Fill one block (or up to the end of the body / the injected drop point).
        let stop_at = drop_after.map(|n| n.saturating_sub(t.written));
        let mut cap = if rate.is_some() {
            SLOW_BLOCK
        } else {
            buf.len()
        };
        if let Some(stop) = stop_at {
            cap = cap.min(usize::try_from(stop).unwrap_or(usize::MAX));
        }
        let Filled {
            filled,
            ended,
            read_err,
        } = fill(conn, body, &mut buf[..cap], t);
        let excess = t.written + filled as u64 > t.allowed;
        let take = if excess {
            usize::try_from(t.allowed - t.written).unwrap_or(filled)
        } else {
            filled
        };
        if take > 0 {
            t.store(&buf[..take])?;
        }
        if excess {
            return Err(StreamEnd::TooLong);
        }
        if drop_after.is_some_and(|n| t.written >= n) {
            return Err(StreamEnd::InjectedDrop);
        }
        if let Some(e) = read_err {
            return Err(if e.kind() == io::ErrorKind::InvalidData {
                StreamEnd::BadFraming
            } else {
                StreamEnd::Disconnected
            });
        }
        if ended {
            return Ok(());
        }
    }
}

/// One block read by [`fill`].
struct Filled {
    /// Bytes in the block.
    filled: usize,
    /// Whether the body ended.
    ended: bool,
    /// The read error that stopped it, if any.
    read_err: Option<io::Error>,
}

/// Reads body bytes into `buf` until it is full, the body ends, the client
/// pauses with bytes already read, or the upload's room is passed by a byte.
fn fill(conn: &mut Conn, body: &mut Body, buf: &mut [u8], t: &Target<'_>) -> Filled {
    let cap = buf.len();
    let mut filled = 0usize;
    let mut ended = false;
    let mut read_err = None;
    while filled < cap {
        // Don't sit on received bytes while the client pauses: store them first.
        if filled > 0 && !conn.has_buffered() && !crate::stream::data_ready(conn.stream_mut()) {
            break;
        }
        // Never read more than one byte past what the upload can take.
        let room = (t.allowed - t.written)
            .saturating_sub(filled as u64)
            .saturating_add(1);
        let lim = (cap - filled).min(usize::try_from(room).unwrap_or(usize::MAX));
        match body.read(conn, &mut buf[filled..filled + lim]) {
            Ok(0) => {
                ended = true;
                break;
            }
            Ok(n) => filled += n,
            Err(e) => {
                read_err = Some(e);
                break;
            }
        }
        if t.written + filled as u64 > t.allowed {
            break;
        }
    }
    Filled {
        filled,
        ended,
        read_err,
    }
}

/// Why a PATCH body stopped streaming early.
pub(super) enum StreamEnd {
    InjectedDrop,
    Disconnected,
    Terminated,
    TooLong,
    BadFraming,
    WriteFailed,
}

/// Opens an upload file for writing at `offset`, cutting off anything stored beyond it.
pub(super) fn open_at(path: &std::path::Path, offset: u64) -> io::Result<File> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    if file.metadata()?.len() != offset {
        file.set_len(offset)?;
    }
    file.seek(SeekFrom::Start(offset))?;
    Ok(file)
}
