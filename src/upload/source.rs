//! The file being uploaded: its fingerprint, its hashes, and the reader that
//! feeds a PATCH body from it.
//!
//! A torn upload (bytes of two versions on the server) must never be declared
//! done, even on a server without the checksum extension and with a writer
//! that restores the mtime. The [`Fingerprint`] therefore takes size, mtime,
//! ctime, inode and device: a writer cannot set ctime back, and a file replaced
//! by rename has a new inode. It is taken before the file is hashed and
//! compared with the path's again after hashing, after every chunk and before
//! the upload is declared done.
//!
//! Metadata is not enough against every writer: a write through a shared
//! memory mapping (MMKV, Realm) may change bytes without touching size,
//! mtime or ctime, and timestamps are coarse. So when the server does not
//! verify chunk checksums, the bytes handed to the transport are hashed as
//! they go ([`Sent`]) and the upload is declared done only if that hash of
//! the whole content, in order, equals the hash taken before the first byte:
//! what the server holds is then exactly the version recorded in the audit.
//! (A server with the checksum extension verifies every chunk against the
//! same first-pass hashes, so no second hash is needed there.)
//!
//! The fingerprint lives in memory only, for one pass over the file; the queue
//! keeps size and mtime. That is enough: a session is resumed across runs only
//! if the whole-file SHA-256 (taken again at the start of every attempt) equals
//! the one the session was created for, so a change between runs is caught by
//! content, whatever the metadata says.

use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::{Progress, Stop};
use crate::error::{Error, Result};
use crate::queue::ops::SourceMeta;

/// Read buffer for hashing and sending: memory stays flat whatever the file size.
pub(super) const BUF: usize = 256 * 1024;

/// What identifies one version of a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fingerprint {
    meta: SourceMeta,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
}

impl Fingerprint {
    #[cfg(unix)]
    fn of(md: &Metadata) -> Fingerprint {
        use std::os::unix::fs::MetadataExt;
        Fingerprint {
            meta: SourceMeta::of(md),
            ctime_ns: md.ctime().saturating_mul(1_000_000_000) + md.ctime_nsec(),
            ino: md.ino(),
            dev: md.dev(),
        }
    }

    /// Hosts without ctime and inodes (not a target today) fall back to size and mtime.
    #[cfg(not(unix))]
    fn of(md: &Metadata) -> Fingerprint {
        Fingerprint {
            meta: SourceMeta::of(md),
            ctime_ns: 0,
            ino: 0,
            dev: 0,
        }
    }
}

/// Whether the file at the path is still the one being uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceState {
    /// Same fingerprint.
    Same,
    /// Written to, truncated, or replaced.
    Changed,
    /// No file at the path any more.
    Gone,
}

/// An open source file, hashed, with the fingerprint its hashes belong to.
pub(super) struct Source<'p> {
    path: &'p Path,
    /// Read for the hashes and every body: a rename over the path cannot swap
    /// the bytes under a pass (the fingerprint check notices it instead).
    file: File,
    print: Fingerprint,
    /// SHA-256 of the whole file.
    pub sha: [u8; 32],
    /// Checksums of the aligned chunks, when the server verifies them.
    sums: Vec<[u8; 32]>,
    checksums: bool,
    chunk: u64,
    /// Without server checksums: the hash of what was sent, in order.
    sent: Option<Sent>,
}

/// SHA-256 of the content as handed to the transport, covering `[0, upto)`.
struct Sent {
    ctx: ring::digest::Context,
    upto: u64,
}

impl<'p> Source<'p> {
    /// Opens and hashes `path` (per-chunk hashes too with `checksums`, in the
    /// same pass). `Error::SourceChanged` if the file changed while it was
    /// read; `Rejected(413)` if it exceeds the server's `max_size`.
    pub fn open(
        path: &'p Path,
        max_size: Option<u64>,
        checksums: bool,
        chunk: u64,
        check: &dyn Fn() -> Result<()>,
    ) -> Result<Source<'p>> {
        // Checked before opening: opening a FIFO would block the run.
        let at_path = std::fs::metadata(path).map_err(|e| Error::SourceIo(e.kind()))?;
        if !at_path.is_file() {
            return Err(Error::InvalidArgument("path is not a regular file"));
        }
        let mut file = File::open(path).map_err(|e| Error::SourceIo(e.kind()))?;
        let md = file.metadata().map_err(|e| Error::SourceIo(e.kind()))?;
        let print = Fingerprint::of(&md);
        if Fingerprint::of(&at_path) != print {
            // Written to or replaced between the two looks.
            return Err(Error::SourceChanged);
        }
        if max_size.is_some_and(|max| print.meta.size > max) {
            return Err(Error::Rejected(413));
        }
        check()?;
        // A file that fits in one chunk has one checksum: the whole-file hash.
        let per_chunk = checksums && print.meta.size > chunk;
        let (sha, mut sums) = hash_chunks(&mut file, per_chunk.then_some(chunk), check)?;
        if checksums && !per_chunk {
            sums = vec![sha];
        }
        let sent = (!checksums).then(|| Sent {
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            upto: 0,
        });
        let src = Source {
            path,
            file,
            print,
            sha,
            sums,
            checksums,
            chunk,
            sent,
        };
        match src.state()? {
            SourceState::Same => Ok(src),
            SourceState::Changed => Err(Error::SourceChanged),
            SourceState::Gone => Err(Error::SourceGone),
        }
    }

    /// Size and mtime of the version being uploaded.
    pub fn meta(&self) -> SourceMeta {
        self.print.meta
    }

    /// Compares the file at the path with the fingerprint (one `stat`).
    pub fn state(&self) -> Result<SourceState> {
        match std::fs::metadata(self.path) {
            Ok(md) if Fingerprint::of(&md) == self.print => Ok(SourceState::Same),
            Ok(_) => Ok(SourceState::Changed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SourceState::Gone),
            Err(e) => Err(Error::SourceIo(e.kind())),
        }
    }

    /// After the path was deleted: whether the open file still has the size and
    /// mtime it was hashed with (deleting changes its ctime, writing its mtime).
    pub fn content_intact(&self) -> bool {
        self.file
            .metadata()
            .is_ok_and(|md| SourceMeta::of(&md) == self.print.meta)
    }

    /// The `Upload-Checksum` digest of `len` bytes at `offset`, if the server
    /// verifies them: an aligned chunk's comes from the hashing pass, a partial
    /// one (after a resume mid-chunk) is hashed for exactly the range sent.
    pub fn checksum(&mut self, offset: u64, len: u64) -> Result<Option<[u8; 32]>> {
        if !self.checksums {
            return Ok(None);
        }
        let aligned = usize::try_from(offset / self.chunk)
            .ok()
            .filter(|_| offset % self.chunk == 0)
            .and_then(|i| self.sums.get(i).copied())
            .filter(|_| len == self.chunk.min(self.print.meta.size - offset));
        match aligned {
            Some(sum) => Ok(Some(sum)),
            None => hash_range(&mut self.file, offset, len).map(Some),
        }
    }

    /// A reader of `len` bytes at `offset`, for a PATCH body.
    pub fn body<'a>(
        &'a mut self,
        offset: u64,
        len: u64,
        stop: &'a Stop<'a>,
        progress: &'a mut dyn FnMut(Progress) -> bool,
        item_id: i64,
    ) -> Result<ChunkReader<'a>> {
        if let Some(s) = self.sent.as_mut().filter(|s| s.upto != offset) {
            // A resume from another offset than where the last body ended:
            // what the server holds before `offset` is taken from the file
            // (if that differs from what was sent, the final check fails).
            s.ctx = hash_prefix(&mut self.file, offset)?;
            s.upto = offset;
        }
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(|e| Error::SourceIo(e.kind()))?;
        Ok(ChunkReader {
            verify: self.sent.as_mut().map(|s| &mut s.ctx),
            file: &mut self.file,
            left: len,
            sent_before: offset,
            sent: 0,
            stop,
            progress,
            item_id,
            total: self.print.meta.size,
            last_report: 0,
            failure: None,
        })
    }

    /// Records that a body starting at `offset` handed `sent` bytes to the transport.
    pub fn note_sent(&mut self, offset: u64, sent: u64) {
        if let Some(s) = self.sent.as_mut() {
            s.upto = offset + sent;
        }
    }

    /// Whether the server holds exactly the first-pass content: without
    /// server checksums, the hash of what was sent (completed from the file
    /// if this attempt did not send it all) must equal the first-pass hash.
    pub fn sent_intact(&mut self) -> Result<bool> {
        let size = self.print.meta.size;
        let Some(s) = self.sent.as_mut() else {
            return Ok(true);
        };
        if s.upto != size {
            s.ctx = hash_prefix(&mut self.file, size)?;
            s.upto = size;
        }
        Ok(sha_out(s.ctx.clone()) == self.sha)
    }
}

/// SHA-256 of a whole file, streamed.
pub fn hash_file(path: &Path) -> Result<[u8; 32]> {
    let mut f = File::open(path).map_err(|e| Error::SourceIo(e.kind()))?;
    Ok(hash_chunks(&mut f, None, &|| Ok(()))?.0)
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
fn hash_chunks(
    f: &mut File,
    chunk: Option<u64>,
    check: &dyn Fn() -> Result<()>,
) -> Result<([u8; 32], Vec<[u8; 32]>)> {
    f.seek(SeekFrom::Start(0))
        .map_err(|e| Error::SourceIo(e.kind()))?;
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
        // Every MiB: a cancel or the run's end is noticed soon even on slow storage.
        if reads % 4 == 0 {
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

/// A hash context over the first `len` bytes of the file; a file now
/// shorter is `SourceChanged`.
fn hash_prefix(f: &mut File, len: u64) -> Result<ring::digest::Context> {
    hash_span(f, 0, len)
}

/// SHA-256 of `len` bytes at `offset`; a file now shorter is `SourceChanged`.
fn hash_range(f: &mut File, offset: u64, len: u64) -> Result<[u8; 32]> {
    Ok(sha_out(hash_span(f, offset, len)?))
}

/// A hash context over `len` bytes at `offset`, read in [`BUF`] pieces.
fn hash_span(f: &mut File, offset: u64, len: u64) -> Result<ring::digest::Context> {
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
            return Err(Error::SourceChanged);
        }
        ctx.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(ctx)
}

/// Reads exactly one chunk from the file, checking the stop conditions and
/// reporting progress as bytes leave. Whatever ends the body early is kept in
/// `failure`: the transport only sees an I/O error, and the uploader must tell
/// a cancel or a truncated file from a dropped connection.
pub(super) struct ChunkReader<'a> {
    file: &'a mut File,
    /// Hash of what is handed to the transport (servers without checksums).
    verify: Option<&'a mut ring::digest::Context>,
    left: u64,
    sent_before: u64,
    /// Bytes handed to the transport so far.
    pub sent: u64,
    stop: &'a Stop<'a>,
    progress: &'a mut dyn FnMut(Progress) -> bool,
    item_id: i64,
    total: u64,
    last_report: u64,
    /// Why the body ended early, if it did for a reason of ours.
    pub failure: Option<Error>,
}

impl ChunkReader<'_> {
    fn fail(&mut self, e: Error) -> std::io::Error {
        let io = std::io::Error::other(e.kind().name());
        self.failure = Some(e);
        io
    }
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        if let Err(e) = self.stop.check() {
            return Err(self.fail(e));
        }
        let want = usize::try_from(self.left.min(buf.len() as u64)).expect("bounded by buf.len()");
        let n = match self.file.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) => return Err(self.fail(Error::SourceIo(e.kind()))),
        };
        if n == 0 {
            // The file shrank under us: never send a short body.
            return Err(self.fail(Error::SourceChanged));
        }
        if let Some(v) = self.verify.as_mut() {
            v.update(&buf[..n]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sums_match_separate_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..(3 * BUF + 1234)).map(|i| (i * 7) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let mut f = File::open(&p).unwrap();
        for chunk in [1u64, 1000, BUF as u64, BUF as u64 + 1, 10 * BUF as u64] {
            let (whole, sums) = hash_chunks(&mut f, Some(chunk), &|| Ok(())).unwrap();
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
        assert!(hash_chunks(&mut f, None, &|| Ok(())).unwrap().1.is_empty());
        let mid = hash_range(&mut f, 1000, 5000).unwrap();
        assert_eq!(
            mid.as_slice(),
            ring::digest::digest(&ring::digest::SHA256, &data[1000..6000]).as_ref()
        );
        let beyond = hash_range(&mut f, data.len() as u64 - 10, 20).unwrap_err();
        assert_eq!(beyond.kind(), crate::ErrorKind::SourceChanged);
    }

    #[test]
    fn an_overwrite_that_restores_the_mtime_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"old content").unwrap();
        let src = Source::open(&p, None, false, 4, &|| Ok(())).unwrap();
        assert_eq!(src.state().unwrap(), SourceState::Same);
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        std::io::Write::write_all(&mut &f, b"new content").unwrap();
        f.set_times(std::fs::FileTimes::new().set_modified(mtime))
            .unwrap();
        drop(f);
        assert_eq!(SourceMeta::of(&std::fs::metadata(&p).unwrap()), src.meta());
        assert_eq!(src.state().unwrap(), SourceState::Changed, "ctime moved");
    }

    #[test]
    fn a_deleted_source_is_gone_and_its_open_file_tells_whether_it_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"content").unwrap();
        let src = Source::open(&p, None, false, 4, &|| Ok(())).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(src.state().unwrap(), SourceState::Gone);
        assert!(src.content_intact());
        std::fs::write(&p, b"content").unwrap();
        let src = Source::open(&p, None, false, 4, &|| Ok(())).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, b"more content").unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(!src.content_intact(), "written before it was deleted");
    }
}
