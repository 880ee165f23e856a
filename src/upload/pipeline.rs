//! One read of the source feeds everything an upload needs.
//!
//! A reader thread reads the file once, in [`BUF`]-sized blocks, and hashes
//! each block as it goes: the whole-file SHA-256 (for the audit) and, when the
//! server verifies them, each chunk's own SHA-256 (its `Upload-Checksum`). The
//! blocks go to the sending thread over a bounded channel and come back
//! through a pool, so reading and hashing overlap with TLS and the network:
//! wall time is the slower of the two stages, not their sum, and memory is the
//! pool, whatever the file's size.
//!
//! The hash covers exactly the bytes handed to the transport (they are the same
//! buffers), so what the audit records is what the server was sent, even if
//! the file is written under the upload by something the fingerprint cannot
//! see. The one exception is a resume: the bytes between the last chunk
//! boundary and the server's offset are read again to rebuild the hash state
//! (at most one chunk within a run; the confirmed prefix after a restart).
//!
//! The reader never seeks (`read_at`), so it shares nothing with the
//! uploader's own handle. It stops when the sender drops the [`Feed`].

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ring::digest::{Context, SHA256};

use super::{Progress, Stop};
use crate::error::{Error, Result};
pub(crate) use blocks::release_spares;
use blocks::{finish, keep_spare, Msg};
pub(super) use blocks::{ChunkEnd, Mark, BUF};
use link::{DoneGuard, Link};

mod blocks;
mod link;

/// Blocks in flight when streaming: enough to ride out jitter on either side.
const STREAM_BLOCKS: usize = 8;

/// How the file is cut into PATCH bodies: aligned chunks of `len` bytes, so a
/// body after a partial one ends at the next boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Chunks {
    /// Chunk size.
    pub len: u64,
    /// File size.
    pub size: u64,
}

impl Chunks {
    /// End of the chunk that holds `offset`.
    pub fn end_from(&self, offset: u64) -> u64 {
        (offset / self.len + 1)
            .saturating_mul(self.len)
            .min(self.size)
    }
}

/// What a [`Feed`] is asked for.
pub(super) struct Plan {
    /// Hash state to start from (at or before `send_from`).
    pub mark: Mark,
    /// First byte to hand out: `[mark.at, send_from)` is hashed only.
    pub send_from: u64,
    /// Chunk boundaries.
    pub chunks: Chunks,
    /// Compute each chunk's own SHA-256 (the server verifies them).
    pub digests: bool,
    /// Blocks in the pool: bounds memory and read-ahead.
    pub blocks: usize,
}

impl Plan {
    /// Pool size when whole chunks are held before they are sent: the chunk
    /// being sent and the next one being read.
    pub fn holding(chunk: u64) -> usize {
        2 * usize::try_from(chunk.div_ceil(BUF as u64)).expect("chunk bounded by the caller") + 1
    }

    /// Pool size when bytes stream through.
    pub fn streaming() -> usize {
        STREAM_BLOCKS
    }
}

/// A block received and not yet handed out in full.
struct Piece {
    buf: Vec<u8>,
    from: usize,
    to: usize,
}

/// The sending side of the pipeline.
pub(super) struct Feed {
    link: Arc<Link>,
    reader: Option<JoinHandle<()>>,
    /// Position of the next byte to hand out.
    pos: u64,
    /// Where the chunk being handed out starts.
    chunk_start: u64,
    chunks: Chunks,
    held: VecDeque<Piece>,
    /// End of the chunk being handed out, once the reader reached it.
    end: Option<Box<ChunkEnd>>,
}

impl Feed {
    /// Starts a reader thread on a duplicate of `file`.
    pub fn start(file: &File, plan: Plan) -> Result<Feed> {
        let file = file.try_clone().map_err(|e| Error::SourceIo(e.kind()))?;
        // Never more blocks than the bytes to send need (a photo is not a video).
        let needed = (plan.chunks.size - plan.send_from).div_ceil(BUF as u64);
        let blocks = plan
            .blocks
            .min(usize::try_from(needed).unwrap_or(usize::MAX))
            .max(2);
        let link = Arc::new(Link::new(blocks));
        let (pos, chunks) = (plan.send_from, plan.chunks);
        let reader = Reader {
            file,
            link: link.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("cloudsync-read".into())
            .spawn(move || reader.run(plan))
            .map_err(|e| Error::SourceIo(e.kind()))?;
        Ok(Feed {
            link,
            reader: Some(handle),
            pos,
            chunk_start: pos,
            chunks,
            held: VecDeque::new(),
            end: None,
        })
    }

    /// Position of the next byte this feed hands out.
    #[cfg(test)]
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Whether the next body may start at `offset` from this feed: it is
    /// there and has handed out nothing of its current chunk yet.
    pub fn untouched_at(&self, offset: u64) -> bool {
        self.pos == offset && self.chunk_start == offset
    }

    /// The boundaries this feed reads by.
    pub fn chunks(&self) -> Chunks {
        self.chunks
    }

    /// Waits until the whole chunk at [`Self::pos`] is read and hashed, and
    /// returns its end. Its blocks stay held for the body.
    pub fn hold_chunk(&mut self, stop: &Stop<'_>) -> Result<&ChunkEnd> {
        while self.end.is_none() {
            self.receive(stop)?;
        }
        Ok(self.end.as_ref().expect("received above"))
    }

    /// After a body handed out its whole chunk: the chunk's end.
    pub fn take_end(&mut self, stop: &Stop<'_>) -> Result<ChunkEnd> {
        self.hold_chunk(stop)?;
        let end = self.end.take().expect("held above");
        if end.mark.at != self.pos {
            return Err(Error::Protocol("source reader out of step".into()));
        }
        self.chunk_start = self.pos;
        Ok(*end)
    }

    /// Receives one message: a block is held, an end recorded, a failure returned.
    fn receive(&mut self, stop: &Stop<'_>) -> Result<()> {
        match self.link.recv(stop)? {
            Msg::Block(buf, n) => {
                self.held.push_back(Piece {
                    buf,
                    from: 0,
                    to: n,
                });
                Ok(())
            }
            Msg::End(end) => {
                self.end = Some(end);
                Ok(())
            }
            Msg::Failed(e) => Err(e),
        }
    }

    /// A reader of `len` bytes from [`Self::pos`], for a PATCH body.
    pub fn body<'a>(
        &'a mut self,
        len: u64,
        stop: &'a Stop<'a>,
        progress: &'a mut dyn FnMut(Progress) -> bool,
        item_id: i64,
    ) -> Body<'a> {
        Body {
            sent_before: self.pos,
            feed: self,
            left: len,
            sent: 0,
            stop,
            progress,
            item_id,
            last_report: 0,
            failure: None,
        }
    }

    /// Copies up to `out.len()` held bytes out, returning spent blocks to the pool.
    fn copy_out(&mut self, out: &mut [u8]) -> usize {
        let Some(p) = self.held.front_mut() else {
            return 0;
        };
        let n = out.len().min(p.to - p.from);
        out[..n].copy_from_slice(&p.buf[p.from..p.from + n]);
        p.from += n;
        if p.from == p.to {
            let spent = self.held.pop_front().expect("front exists");
            self.link.give_back(spent.buf);
        }
        self.pos += n as u64;
        n
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        for p in self.held.drain(..) {
            keep_spare(p.buf);
        }
        // The reader ends after at most one read (it looks before each). A
        // read stalled on dead storage (a removed card, a hung FUSE mount)
        // cannot be interrupted: after a second the thread is left to end on
        // its own (it owns its file handle), so the run still ends on time.
        let ended = self.link.quit(Duration::from_secs(1));
        if let Some(h) = self.reader.take().filter(|_| ended) {
            // Its last act was to say so: the join is immediate.
            let _ = h.join();
        }
    }
}

/// The reading side: reads, hashes, hands blocks over in order.
struct Reader {
    file: File,
    link: Arc<Link>,
}

impl Reader {
    fn run(self, plan: Plan) {
        let _done = DoneGuard(&self.link);
        if let Err(e) = self.read_all(plan) {
            self.link.send(Msg::Failed(e));
        }
    }

    /// `Err` only for a failure to report; a gone sender just ends the thread.
    fn read_all(&self, plan: Plan) -> Result<()> {
        let Plan {
            mark,
            send_from,
            chunks,
            digests,
            ..
        } = plan;
        let (mut pos, mut whole) = (mark.at, mark.ctx);
        // The prefix the server already holds: hashed, not sent (one
        // scratch block: only a resume has a prefix).
        let mut scratch = Vec::new();
        while pos < send_from {
            if self.link.quitting() {
                return Ok(());
            }
            scratch.resize(BUF, 0);
            let n = self.read_at(&mut scratch, pos, send_from)?;
            whole.update(&scratch[..n]);
            pos += n as u64;
        }
        drop(scratch);
        if pos == chunks.size {
            self.link.send(Msg::End(Box::new(ChunkEnd {
                mark: Mark {
                    at: pos,
                    ctx: whole,
                },
                digest: None,
            })));
            return Ok(());
        }
        while pos < chunks.size {
            let end = chunks.end_from(pos);
            // A chunk that is the whole file has the whole file's digest.
            let whole_file = pos == 0 && end == chunks.size;
            let mut piece = (digests && !whole_file).then(|| Context::new(&SHA256));
            while pos < end {
                let Some(mut buf) = self.block() else {
                    return Ok(());
                };
                let n = self.read_at(&mut buf, pos, end)?;
                whole.update(&buf[..n]);
                if let Some(p) = piece.as_mut() {
                    p.update(&buf[..n]);
                }
                pos += n as u64;
                if !self.link.send(Msg::Block(buf, n)) {
                    return Ok(());
                }
            }
            let mark = Mark {
                at: pos,
                ctx: whole.clone(),
            };
            let digest = match piece {
                Some(p) => Some(finish(p)),
                None if digests => mark.digest_of(chunks.size),
                None => None,
            };
            let end = Box::new(ChunkEnd { mark, digest });
            if !self.link.send(Msg::End(end)) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// A free block, or `None` once the sender is gone.
    fn block(&self) -> Option<Vec<u8>> {
        self.link.block()
    }

    /// Reads up to one block at `pos`, not past `limit`. A file that ends
    /// early was truncated under the upload: `SourceChanged`.
    ///
    /// The block is filled whole (short reads are read on): a chunk then takes
    /// exactly as many blocks as the pool was sized for.
    fn read_at(&self, buf: &mut [u8], pos: u64, limit: u64) -> Result<usize> {
        let want = usize::try_from((limit - pos).min(BUF as u64)).expect("bounded by BUF");
        let mut got = 0;
        while got < want {
            match read_at(&self.file, &mut buf[got..want], pos + got as u64) {
                Ok(0) => return Err(Error::SourceChanged),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::SourceIo(e.kind())),
            }
        }
        Ok(got)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, pos)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, pos)
}

/// One PATCH body: hands out exactly `left` bytes from the feed, checking the
/// stop conditions and reporting progress as bytes leave. Whatever ends the
/// body early is kept in `failure`: the transport only sees an I/O error, and
/// the uploader must tell a cancel or a truncated file from a dropped connection.
pub(super) struct Body<'a> {
    feed: &'a mut Feed,
    left: u64,
    sent_before: u64,
    /// Bytes handed to the transport so far.
    pub sent: u64,
    stop: &'a Stop<'a>,
    progress: &'a mut dyn FnMut(Progress) -> bool,
    item_id: i64,
    last_report: u64,
    /// Why the body ended early, if it did for a reason of ours.
    pub failure: Option<Error>,
}

impl Body<'_> {
    fn fail(&mut self, e: Error) -> std::io::Error {
        let io = std::io::Error::other(e.kind().name());
        self.failure = Some(e);
        io
    }
}

impl Read for Body<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.stop.check() {
            return Err(self.fail(e));
        }
        while self.feed.held.is_empty() {
            if self.feed.end.is_some() {
                // The reader ended the chunk before the body's length.
                return Err(self.fail(Error::Protocol("source reader out of step".into())));
            }
            if let Err(e) = self.feed.receive(self.stop) {
                return Err(self.fail(e));
            }
        }
        let want = usize::try_from(self.left.min(buf.len() as u64)).expect("bounded by buf.len()");
        let n = self.feed.copy_out(&mut buf[..want]);
        self.left -= n as u64;
        self.sent += n as u64;
        if self.sent - self.last_report >= 1024 * 1024 || self.left == 0 {
            self.last_report = self.sent;
            let p = Progress {
                item_id: self.item_id,
                sent: self.sent_before + self.sent,
                total: self.feed.chunks.size,
            };
            if !(self.progress)(p) {
                self.stop.cancel.store(true, Ordering::SeqCst);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
