//! `PATCH`: the writer lock of an upload, checksums, and streaming the body to disk.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::http::{self, Body, Request, Response};
use crate::stream::cut;
use base64::Engine as _;

use crate::options::Fault;
use crate::reply::{
    base_response, error, finish, interruptible_sleep, lacks_required_filetype, Conn,
};
use crate::state::{lock, ConnCtx, Shared};
use crate::store::b64;
use crate::stream::Outcome;

/// PATCH bodies are written to disk in blocks of this size.
const WRITE_BLOCK: usize = 1024 * 1024;
/// The block size under [`super::ServerOptions::body_rate`].
const SLOW_BLOCK: usize = 16 * 1024;
/// How long a PATCH waits for an older request on the same upload to let go.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Holds an upload's writer lock; releases it on drop.
struct WriterGuard<'a> {
    shared: &'a Shared,
    id: &'a str,
    conn: u64,
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        let mut store = lock(&self.shared.store);
        if let Some(u) = store.uploads.get_mut(self.id) {
            if u.writer == Some(self.conn) {
                u.writer = None;
            }
        }
        drop(store);
        self.shared.store_cv.notify_all();
    }
}

enum Acquire {
    /// Locked; fields: upload length and path.
    Locked(u64, PathBuf),
    NotFound,
    Conflict(u64),
    Busy,
}

/// Takes an upload's writer lock for a PATCH at `offset`. An older request still holding
/// it (typically a dead client's connection) is cut off first — or, with
/// [`super::ServerOptions::conflict_while_locked`], the newcomer gets a 409.
fn acquire(shared: &Shared, id: &str, conn_id: u64, offset: u64) -> Acquire {
    let deadline = Instant::now() + LOCK_WAIT;
    let mut store = lock(&shared.store);
    loop {
        if shared.stopping() {
            return Acquire::Busy;
        }
        let Some(u) = store.live_mut(id) else {
            return Acquire::NotFound;
        };
        match u.writer {
            // Like tusd: the lock holder is left alone and the newcomer told to come back.
            Some(other) if other != conn_id && shared.cfg.conflict_while_locked => {
                return Acquire::Conflict(u.offset);
            }
            Some(other) if other != conn_id => {
                drop(store);
                shared.kill_conn(other);
                store = lock(&shared.store);
                let now = Instant::now();
                if now >= deadline {
                    return Acquire::Busy;
                }
                store = shared
                    .store_cv
                    .wait_timeout(store, (deadline - now).min(Duration::from_millis(100)))
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            _ => {
                if u.offset != offset {
                    return Acquire::Conflict(u.offset);
                }
                u.writer = Some(conn_id);
                return Acquire::Locked(u.length, u.path.clone());
            }
        }
    }
}

/// Parses `Upload-Checksum: sha256 <base64>` into the expected digest.
fn parse_checksum(value: &str) -> Result<[u8; 32], (u16, &'static str)> {
    let mut parts = value.split_whitespace();
    let (Some(algo), Some(sum), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err((400, "malformed Upload-Checksum"));
    };
    if !algo.eq_ignore_ascii_case("sha256") {
        return Err((400, "unsupported checksum algorithm"));
    }
    let digest = b64()
        .decode(sum)
        .map_err(|_| (400, "Upload-Checksum is not base64"))?;
    digest
        .try_into()
        .map_err(|_| (400, "Upload-Checksum has the wrong length for sha256"))
}

/// What a PATCH asks for, once its head passed validation.
struct Checked {
    offset: u64,
    expected_sum: Option<[u8; 32]>,
}

/// Validates a PATCH head against the upload; `Err` is the answer to send.
fn check(shared: &Shared, req: &Request, body: &Body, id: &str) -> Result<Checked, Response> {
    let current = lock(&shared.store).live(id).map(|u| {
        let refused = lacks_required_filetype(shared, u);
        (u.offset, u.length, u.writer.is_some(), refused)
    });
    let Some((current_offset, length, busy, refused)) = current else {
        return Err(error(404, "no such upload"));
    };
    if refused {
        return Err(error(400, "filetype metadata required"));
    }
    let content_type_ok = req.header("Content-Type").is_some_and(|v| {
        v.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/offset+octet-stream")
        })
    });
    if !content_type_ok {
        return Err(error(
            415,
            "Content-Type must be application/offset+octet-stream",
        ));
    }
    let Some(offset) = req.header("Upload-Offset").and_then(http::parse_u64) else {
        return Err(error(400, "missing or invalid Upload-Offset"));
    };
    let expected_sum = match req.header("Upload-Checksum") {
        Some(v) if shared.cfg.checksum => {
            Some(parse_checksum(v).map_err(|(status, why)| error(status, why))?)
        }
        _ => None,
    };
    if let (Some(max), Some(n)) = (shared.cfg.max_body, body.remaining_hint()) {
        if n > max {
            // Before any body byte: `finish` reads none if the client waits for 100.
            shared.stats.too_large.fetch_add(1, Ordering::Relaxed);
            return Err(error(413, "request body too large"));
        }
    }
    // While another request is still writing, the offset is moving: decide after it's gone.
    if offset != current_offset && !busy {
        return Err(conflict(shared, current_offset));
    }
    if let Some(n) = body.remaining_hint() {
        if offset.checked_add(n).is_none_or(|end| end > length) {
            return Err(error(400, "body exceeds Upload-Length"));
        }
    }
    Ok(Checked {
        offset,
        expected_sum,
    })
}

/// A 409 with the server's offset (counted in [`super::ServerStats::conflicts`]).
fn conflict(shared: &Shared, current: u64) -> Response {
    shared.stats.conflicts.fetch_add(1, Ordering::Relaxed);
    error(409, "Upload-Offset does not match").header("Upload-Offset", current.to_string())
}

/// The one-shot fault that ends this PATCH's body early, if any.
enum BodyFault {
    /// [`Fault::DropAfterBodyBytes`].
    Drop(u64),
    /// [`Fault::CutAndLinger`].
    Linger {
        after: u64,
        late: u64,
        linger: Duration,
    },
}

impl BodyFault {
    fn take(shared: &Shared) -> Option<BodyFault> {
        let f = shared
            .take_fault(|f| matches!(f, Fault::DropAfterBodyBytes(_) | Fault::CutAndLinger { .. }));
        match f? {
            Fault::DropAfterBodyBytes(n) => Some(BodyFault::Drop(n)),
            Fault::CutAndLinger {
                after,
                late,
                linger,
            } => Some(BodyFault::Linger {
                after,
                late,
                linger,
            }),
            _ => None,
        }
    }

    /// Body bytes stored before the connection is dropped.
    fn drop_after(&self) -> u64 {
        match self {
            BodyFault::Drop(n) => *n,
            BodyFault::Linger { after, .. } => *after,
        }
    }
}

pub(super) fn patch(
    shared: &Shared,
    conn: &mut Conn,
    req: &Request,
    body: &mut Body,
    ctx: &mut ConnCtx,
    id: &str,
) -> Outcome {
    let Checked {
        offset,
        expected_sum,
    } = match check(shared, req, body, id) {
        Ok(c) => c,
        Err(resp) => return finish(conn, req, body, resp),
    };
    let (length, path) = match acquire(shared, id, ctx.id, offset) {
        Acquire::Locked(length, path) => (length, path),
        Acquire::NotFound => return finish(conn, req, body, error(404, "no such upload")),
        Acquire::Conflict(cur) => return finish(conn, req, body, conflict(shared, cur)),
        Acquire::Busy => {
            return finish(
                conn,
                req,
                body,
                error(423, "upload is locked by another request"),
            )
        }
    };
    let _guard = WriterGuard {
        shared,
        id,
        conn: ctx.id,
    };
    let fault = BodyFault::take(shared);
    let mut file = match open_at(&path, offset) {
        Ok(f) => f,
        Err(e) => {
            log::warn!("devserver: cannot open {}: {e}", path.display());
            return finish(conn, req, body, error(500, "cannot open upload file"));
        }
    };
    if req.expects_continue() && !body.is_done() && conn.send_continue().is_err() {
        return Outcome::Abort;
    }
    let mut target = Target {
        shared,
        id,
        file: &mut file,
        offset,
        allowed: length - offset,
        hasher: expected_sum.map(|_| ring::digest::Context::new(&ring::digest::SHA256)),
        written: 0,
    };
    let drop_after = fault.as_ref().map(BodyFault::drop_after);
    let streamed = stream_body(conn, body, ctx, &mut target, drop_after);
    let (written, hasher) = (target.written, target.hasher.take());
    let new_offset = offset + written;
    let rollback = |file: &File| {
        let _ = file.set_len(offset);
        let _ = lock(&shared.store).set_offset(id, offset, false);
    };
    match streamed {
        Ok(()) => {}
        Err(StreamEnd::InjectedDrop) => {
            // tus servers keep what arrived of an interrupted PATCH.
            settle(shared, id, new_offset);
            if let Some(BodyFault::Linger { late, linger, .. }) = fault {
                let late = late.min(length - new_offset);
                linger_after_cut(
                    shared,
                    conn,
                    body,
                    ctx,
                    (id, &mut file, new_offset),
                    late,
                    linger,
                );
            }
            return Outcome::Abort;
        }
        Err(StreamEnd::Disconnected) => {
            settle(shared, id, new_offset);
            return Outcome::Abort;
        }
        Err(StreamEnd::Terminated) => return Outcome::Abort,
        Err(StreamEnd::TooLong) => {
            rollback(&file);
            let mut resp = error(400, "body exceeds Upload-Length");
            resp.close = true;
            return finish(conn, req, body, resp);
        }
        Err(StreamEnd::BadFraming) => {
            settle(shared, id, new_offset);
            let mut resp = error(400, "malformed chunked body");
            resp.close = true;
            return finish(conn, req, body, resp);
        }
        Err(StreamEnd::WriteFailed) => {
            // Keep exactly what is known to be stored.
            let _ = file.set_len(new_offset);
            settle(shared, id, new_offset);
            let mut resp = error(500, "cannot store upload data");
            resp.close = true;
            return finish(conn, req, body, resp);
        }
    }

    if let (Some(h), Some(expected)) = (hasher, expected_sum) {
        if h.finish().as_ref() != expected.as_slice() {
            rollback(&file);
            if fault.is_some() {
                return Outcome::Abort;
            }
            return finish(conn, req, body, error(460, "checksum mismatch"));
        }
    }
    if !settle(shared, id, new_offset) {
        return Outcome::Abort;
    }
    if fault.is_some() {
        // The injected drop point lies beyond the body: everything is stored, but the
        // client never hears about it.
        return Outcome::Abort;
    }
    let resp = base_response(204).header("Upload-Offset", new_offset.to_string());
    finish(conn, req, body, resp)
}

/// Records the final offset of a request (possibly completing the upload); `false` if
/// the upload was terminated meanwhile.
fn settle(shared: &Shared, id: &str, new_offset: u64) -> bool {
    match lock(&shared.store).set_offset(id, new_offset, true) {
        Some(true) => {
            shared
                .stats
                .uploads_completed
                .fetch_add(1, Ordering::Relaxed);
            true
        }
        Some(false) => true,
        None => false,
    }
}

/// [`Fault::CutAndLinger`] after its first bytes are stored: read `late` more, cut the
/// connection, keep the lock for `linger` (cut short when a newer PATCH takes the upload
/// over, see [`acquire`]), then store the late bytes.
fn linger_after_cut(
    shared: &Shared,
    conn: &mut Conn,
    body: &mut Body,
    ctx: &ConnCtx,
    (id, file, at): (&str, &mut File, u64),
    late: u64,
    linger: Duration,
) {
    let mut held = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while (held.len() as u64) < late {
        let want = usize::try_from(late - held.len() as u64)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        match body.read(conn, &mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => held.extend_from_slice(&buf[..n]),
        }
    }
    cut(conn);
    let _ = interruptible_sleep(shared, ctx, linger);
    if file.write_all(&held).is_ok() {
        settle(shared, id, at + held.len() as u64);
    }
}

/// Where a PATCH body goes.
struct Target<'a> {
    shared: &'a Shared,
    id: &'a str,
    file: &'a mut File,
    /// The request's `Upload-Offset`.
    offset: u64,
    /// Bytes the upload can still take.
    allowed: u64,
    hasher: Option<ring::digest::Context>,
    /// Bytes stored so far.
    written: u64,
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
fn stream_body(
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
        let mut filled = 0usize;
        let mut ended = false;
        let mut read_err = None;
        let stop_at = drop_after.map(|n| n.saturating_sub(t.written));
        let mut cap = if rate.is_some() {
            SLOW_BLOCK
        } else {
            buf.len()
        };
        if let Some(stop) = stop_at {
            cap = cap.min(usize::try_from(stop).unwrap_or(usize::MAX));
        }
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

/// Why a PATCH body stopped streaming early.
enum StreamEnd {
    InjectedDrop,
    Disconnected,
    Terminated,
    TooLong,
    BadFraming,
    WriteFailed,
}

/// Opens an upload file for writing at `offset`, cutting off anything stored beyond it.
fn open_at(path: &std::path::Path, offset: u64) -> io::Result<File> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    if file.metadata()?.len() != offset {
        file.set_len(offset)?;
    }
    file.seek(SeekFrom::Start(offset))?;
    Ok(file)
}
