//! tus 1.0.0 protocol state and request handling (core, creation, checksum, termination).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::http::{self, Body, Request, Response};
use super::{host_for_url, lock, ConnCtx, Fault, Outcome, Shared, TlsStream, UploadInfo};

/// The only protocol version spoken.
pub(crate) const TUS_VERSION: &str = "1.0.0";
/// Request bodies we don't want are read and thrown away up to this size to keep the
/// connection alive; beyond it the connection is closed instead.
const DISCARD_LIMIT: u64 = 64 * 1024 * 1024;
/// PATCH bodies are written to disk in blocks of this size.
const WRITE_BLOCK: usize = 1024 * 1024;
/// How long a PATCH waits for an older request on the same upload to let go.
const LOCK_WAIT: Duration = Duration::from_secs(5);

type Conn = http::Conn<TlsStream>;

/// Decoded `Upload-Metadata`: keys in order, values optional.
pub(crate) type Metadata = Vec<(String, Option<Vec<u8>>)>;

/// One upload.
#[derive(Debug)]
pub(crate) struct Upload {
    seq: u64,
    length: u64,
    offset: u64,
    metadata: Metadata,
    path: PathBuf,
    complete: bool,
    forgotten: bool,
    /// Connection currently writing a PATCH body into it.
    writer: Option<u64>,
}

impl Upload {
    fn item(&self) -> Option<&Option<Vec<u8>>> {
        self.meta("item")
    }

    fn meta(&self, key: &str) -> Option<&Option<Vec<u8>>> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// All uploads, by id.
#[derive(Debug, Default)]
pub(crate) struct Store {
    uploads: HashMap<String, Upload>,
    next_seq: u64,
}

impl Store {
    fn live(&self, id: &str) -> Option<&Upload> {
        self.uploads.get(id).filter(|u| !u.forgotten)
    }

    fn live_mut(&mut self, id: &str) -> Option<&mut Upload> {
        self.uploads.get_mut(id).filter(|u| !u.forgotten)
    }

    fn info_of(id: &str, u: &Upload) -> UploadInfo {
        UploadInfo {
            id: id.to_string(),
            length: Some(u.length),
            offset: u.offset,
            metadata: u.metadata.clone(),
            path: u.path.clone(),
            complete: u.complete,
            forgotten: u.forgotten,
        }
    }

    /// Every upload, oldest first.
    pub fn infos(&self) -> Vec<UploadInfo> {
        let mut all: Vec<(&String, &Upload)> = self.uploads.iter().collect();
        all.sort_by_key(|(_, u)| u.seq);
        all.into_iter()
            .map(|(id, u)| Self::info_of(id, u))
            .collect()
    }

    /// One upload.
    pub fn info(&self, id: &str) -> Option<UploadInfo> {
        self.uploads.get(id).map(|u| Self::info_of(id, u))
    }

    /// Where an upload's bytes are stored.
    pub fn path_of(&self, id: &str) -> Option<PathBuf> {
        self.uploads.get(id).map(|u| u.path.clone())
    }

    /// Marks every upload as lost.
    pub fn forget_all(&mut self) {
        for u in self.uploads.values_mut() {
            u.forgotten = true;
        }
    }

    /// Sets an upload's offset (while its writer holds it). With `may_complete`, an upload
    /// whose offset reached its length is marked complete. Returns whether it completed
    /// just now, or `None` if the upload disappeared (terminated).
    fn set_offset(&mut self, id: &str, offset: u64, may_complete: bool) -> Option<bool> {
        let u = self.uploads.get_mut(id)?;
        u.offset = offset;
        if may_complete && !u.complete && u.offset == u.length {
            u.complete = true;
            return Some(true);
        }
        Some(false)
    }
}

/// A response carrying `Tus-Resumable`, which every response has.
pub(crate) fn base_response(status: u16) -> Response {
    Response::new(status).header("Tus-Resumable", TUS_VERSION)
}

fn b64() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::STANDARD
}

/// Parses `Upload-Metadata`: comma-separated `key[ base64value]` pairs.
pub(crate) fn parse_metadata(header: &str) -> Result<Metadata, &'static str> {
    let mut out: Metadata = Vec::new();
    for pair in header.split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let mut parts = pair.split(' ').filter(|s| !s.is_empty());
        let key = parts.next().ok_or("empty metadata pair")?;
        if !key.is_ascii() {
            return Err("metadata key is not ASCII");
        }
        let value = match parts.next() {
            None => None,
            Some(v) => Some(
                b64()
                    .decode(v)
                    .map_err(|_| "metadata value is not base64")?,
            ),
        };
        if parts.next().is_some() {
            return Err("metadata pair has more than two parts");
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err("duplicate metadata key");
        }
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// Encodes metadata back into an `Upload-Metadata` value.
pub(crate) fn encode_metadata(md: &[(String, Option<Vec<u8>>)]) -> String {
    md.iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k} {}", b64().encode(v)),
            None => k.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    hex::encode(bytes)
}

fn location_for(shared: &Shared, id: &str) -> String {
    let cfg = &shared.cfg;
    if cfg.relative_location {
        format!("{}{id}", cfg.base_path)
    } else {
        format!(
            "https://{}:{}{}{id}",
            host_for_url(&cfg.public_host),
            cfg.port,
            cfg.base_path
        )
    }
}

fn method_matches(wanted: Option<&'static str>, method: &str) -> bool {
    wanted.is_none_or(|m| m.eq_ignore_ascii_case(method))
}

/// Sleeps, waking early if the connection is cut or the server stops. Returns whether
/// the whole duration passed.
fn interruptible_sleep(shared: &Shared, ctx: &ConnCtx, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if ctx.killed.load(Ordering::SeqCst) || shared.stopping() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

/// Sends `resp` after dealing with an unread request body: small bodies are discarded to
/// keep the connection alive; otherwise the connection is closed after the response.
fn finish(conn: &mut Conn, req: &Request, body: &mut Body, mut resp: Response) -> Outcome {
    let mut keep = req.keep_alive() && !resp.close;
    if keep && !body.is_done() {
        keep = !req.expects_continue() && body.discard(conn, DISCARD_LIMIT);
    }
    resp.close = !keep;
    // Framing follows the method on the wire (not X-HTTP-Method-Override).
    resp.head_request = req.method.eq_ignore_ascii_case("HEAD");
    if !resp.headers.iter().any(|(n, _)| *n == "Tus-Resumable") {
        resp.headers
            .push(("Tus-Resumable", TUS_VERSION.to_string()));
    }
    if conn.send(&resp).is_err() {
        return Outcome::Abort;
    }
    if keep {
        Outcome::KeepAlive
    } else {
        Outcome::Close
    }
}

fn error(status: u16, why: &str) -> Response {
    base_response(status).text(why)
}

/// Handles one request whose head has been read; reads (or discards) its body and
/// answers it.
pub(crate) fn handle(
    shared: &Shared,
    conn: &mut Conn,
    req: &Request,
    ctx: &mut ConnCtx,
) -> Outcome {
    let framing = match req.framing() {
        Ok(f) => f,
        Err(why) => {
            let mut resp = error(400, why);
            resp.close = true;
            // The body can't be delimited: never try to read it.
            return match conn.send(&resp) {
                Ok(()) => Outcome::Close,
                Err(_) => Outcome::Abort,
            };
        }
    };
    let mut body = Body::new(framing);
    handle_framed(shared, conn, req, &mut body, ctx)
}

fn handle_framed(
    shared: &Shared,
    conn: &mut Conn,
    req: &Request,
    body: &mut Body,
    ctx: &mut ConnCtx,
) -> Outcome {
    let method = req
        .header("X-HTTP-Method-Override")
        .unwrap_or(&req.method)
        .to_ascii_uppercase();
    let base = shared.cfg.base_path.as_str();
    let id = req
        .path
        .strip_prefix(base)
        .filter(|rest| !rest.is_empty() && !rest.contains('/'));

    if let Some(Fault::Delay(d)) = shared.take_fault(|f| matches!(f, Fault::Delay(_))) {
        if !interruptible_sleep(shared, ctx, d) {
            return Outcome::Abort;
        }
    }

    let replacing = shared.take_fault(|f| match f {
        Fault::Status { method: m, .. } | Fault::Redirect { method: m, .. } => {
            method_matches(*m, &method)
        }
        Fault::Gone => method == "HEAD" || method == "PATCH",
        _ => false,
    });
    match replacing {
        Some(Fault::Status {
            status,
            retry_after,
            ..
        }) => {
            let mut resp = error(status, "injected fault");
            if let Some(secs) = retry_after {
                resp = resp.header("Retry-After", secs.to_string());
            }
            return finish(conn, req, body, resp);
        }
        Some(Fault::Redirect {
            status, location, ..
        }) => {
            let resp = error(status, "injected redirect").header("Location", location);
            return finish(conn, req, body, resp);
        }
        Some(Fault::Gone) => {
            if let Some(id) = id {
                if let Some(u) = lock(&shared.store).uploads.get_mut(id) {
                    u.forgotten = true;
                }
            }
            return finish(conn, req, body, error(404, "upload gone (injected)"));
        }
        _ => {}
    }

    if method == "OPTIONS" {
        return finish(conn, req, body, options(shared));
    }
    if req.header("Tus-Resumable") != Some(TUS_VERSION) {
        let resp = error(412, "Tus-Resumable: 1.0.0 required").header("Tus-Version", TUS_VERSION);
        return finish(conn, req, body, resp);
    }
    let at_base = req.path == base || req.path == base.trim_end_matches('/');
    match (method.as_str(), id) {
        ("POST", None) if at_base => create(shared, conn, req, body),
        ("HEAD", Some(id)) => head(shared, conn, req, body, id),
        ("PATCH", Some(id)) => patch(shared, conn, req, body, ctx, id),
        ("DELETE", Some(id)) if shared.cfg.termination => terminate(shared, conn, req, body, id),
        (_, Some(_)) => {
            let allow = if shared.cfg.termination {
                "OPTIONS, HEAD, PATCH, DELETE"
            } else {
                "OPTIONS, HEAD, PATCH"
            };
            let resp = error(405, "method not allowed").header("Allow", allow);
            finish(conn, req, body, resp)
        }
        (_, None) if at_base => {
            let resp = error(405, "method not allowed").header("Allow", "OPTIONS, POST");
            finish(conn, req, body, resp)
        }
        _ => finish(conn, req, body, error(404, "not found")),
    }
}

fn options(shared: &Shared) -> Response {
    let cfg = &shared.cfg;
    let mut ext = vec!["creation"];
    if cfg.termination {
        ext.push("termination");
    }
    if cfg.checksum {
        ext.push("checksum");
    }
    let mut resp = base_response(204)
        .header("Tus-Version", TUS_VERSION)
        .header("Tus-Extension", ext.join(","));
    if let Some(max) = cfg.max_size {
        resp = resp.header("Tus-Max-Size", max.to_string());
    }
    if cfg.checksum {
        resp = resp.header("Tus-Checksum-Algorithm", "sha256");
    }
    resp
}

fn create(shared: &Shared, conn: &mut Conn, req: &Request, body: &mut Body) -> Outcome {
    if req.header("Upload-Defer-Length").is_some() {
        return finish(
            conn,
            req,
            body,
            error(400, "Upload-Defer-Length is not supported"),
        );
    }
    let length = match req.header("Upload-Length").and_then(http::parse_u64) {
        Some(n) => n,
        None => {
            return finish(
                conn,
                req,
                body,
                error(400, "missing or invalid Upload-Length"),
            )
        }
    };
    if shared.cfg.max_size.is_some_and(|max| length > max) {
        return finish(
            conn,
            req,
            body,
            error(413, "Upload-Length exceeds Tus-Max-Size"),
        );
    }
    let metadata = match req.header("Upload-Metadata").map(parse_metadata) {
        None => Vec::new(),
        Some(Ok(md)) => md,
        Some(Err(why)) => return finish(conn, req, body, error(400, why)),
    };
    if !body.is_done() {
        // creation-with-upload is not offered: the body must be empty.
        if body.remaining_hint().is_some_and(|n| n > 0) {
            return finish(conn, req, body, error(400, "POST body must be empty"));
        }
        let mut probe = [0u8; 1];
        match body.read(conn, &mut probe) {
            Ok(0) => {}
            Ok(_) => return finish(conn, req, body, error(400, "POST body must be empty")),
            Err(_) => return Outcome::Abort,
        }
    }

    let (id, offset) = {
        let mut store = lock(&shared.store);
        let existing = if shared.cfg.dedupe_by_item {
            metadata
                .iter()
                .find(|(k, _)| k == "item")
                .and_then(|(_, item)| {
                    store
                        .uploads
                        .iter()
                        .filter(|(_, u)| {
                            !u.forgotten
                                && !u.complete
                                && u.length == length
                                && u.item() == Some(item)
                                // Same content too: a changed file must never
                                // resume onto the old bytes (a torn upload).
                                && u.meta("sha256")
                                    == metadata.iter().find(|(k, _)| k == "sha256").map(|(_, v)| v)
                        })
                        .max_by_key(|(_, u)| u.seq)
                        .map(|(id, u)| (id.clone(), u.offset))
                })
        } else {
            None
        };
        match existing {
            Some(found) => found,
            None => {
                let id = random_id();
                let path = shared.cfg.storage_dir.join(&id);
                if let Err(e) = File::create(&path) {
                    drop(store);
                    log::warn!("devserver: cannot create {}: {e}", path.display());
                    return finish(conn, req, body, error(500, "cannot create upload file"));
                }
                let seq = store.next_seq;
                store.next_seq += 1;
                let complete = length == 0;
                store.uploads.insert(
                    id.clone(),
                    Upload {
                        seq,
                        length,
                        offset: 0,
                        metadata,
                        path,
                        complete,
                        forgotten: false,
                        writer: None,
                    },
                );
                shared.stats.uploads_created.fetch_add(1, Ordering::Relaxed);
                if complete {
                    shared
                        .stats
                        .uploads_completed
                        .fetch_add(1, Ordering::Relaxed);
                }
                (id, 0)
            }
        }
    };
    let location = match shared.take_fault(|f| matches!(f, Fault::LocationOverride(_))) {
        Some(Fault::LocationOverride(loc)) => loc,
        _ => location_for(shared, &id),
    };
    let resp = base_response(201)
        .header("Location", location)
        .header("Upload-Offset", offset.to_string());
    finish(conn, req, body, resp)
}

fn head(shared: &Shared, conn: &mut Conn, req: &Request, body: &mut Body, id: &str) -> Outcome {
    let found = lock(&shared.store)
        .live(id)
        .map(|u| (u.offset, u.length, encode_metadata(&u.metadata)));
    let resp = match found {
        Some((offset, length, md)) => {
            let mut resp = base_response(200)
                .header("Upload-Offset", offset.to_string())
                .header("Upload-Length", length.to_string())
                .header("Cache-Control", "no-store");
            if !md.is_empty() {
                resp = resp.header("Upload-Metadata", md);
            }
            resp
        }
        None => base_response(404).header("Cache-Control", "no-store"),
    };
    finish(conn, req, body, resp)
}

fn terminate(
    shared: &Shared,
    conn: &mut Conn,
    req: &Request,
    body: &mut Body,
    id: &str,
) -> Outcome {
    let removed = {
        let mut store = lock(&shared.store);
        match store.live(id) {
            Some(_) => store.uploads.remove(id),
            None => None,
        }
    };
    let Some(upload) = removed else {
        return finish(conn, req, body, error(404, "no such upload"));
    };
    if let Some(writer) = upload.writer {
        shared.kill_conn(writer);
    }
    shared.store_cv.notify_all();
    let _ = std::fs::remove_file(&upload.path);
    finish(conn, req, body, base_response(204))
}

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
/// it (typically a dead client's connection) is cut off first.
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

fn patch(
    shared: &Shared,
    conn: &mut Conn,
    req: &Request,
    body: &mut Body,
    ctx: &mut ConnCtx,
    id: &str,
) -> Outcome {
    let current = lock(&shared.store)
        .live(id)
        .map(|u| (u.offset, u.length, u.writer.is_some()));
    let Some((current_offset, length, busy)) = current else {
        return finish(conn, req, body, error(404, "no such upload"));
    };
    let content_type_ok = req.header("Content-Type").is_some_and(|v| {
        v.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/offset+octet-stream")
        })
    });
    if !content_type_ok {
        return finish(
            conn,
            req,
            body,
            error(415, "Content-Type must be application/offset+octet-stream"),
        );
    }
    let Some(offset) = req.header("Upload-Offset").and_then(http::parse_u64) else {
        return finish(
            conn,
            req,
            body,
            error(400, "missing or invalid Upload-Offset"),
        );
    };
    let expected_sum = match req.header("Upload-Checksum") {
        Some(v) if shared.cfg.checksum => match parse_checksum(v) {
            Ok(sum) => Some(sum),
            Err((status, why)) => return finish(conn, req, body, error(status, why)),
        },
        _ => None,
    };
    // While another request is still writing, the offset is moving: decide after it's gone.
    if offset != current_offset && !busy {
        let resp = error(409, "Upload-Offset does not match")
            .header("Upload-Offset", current_offset.to_string());
        return finish(conn, req, body, resp);
    }
    if let Some(n) = body.remaining_hint() {
        if offset.checked_add(n).is_none_or(|end| end > length) {
            return finish(conn, req, body, error(400, "body exceeds Upload-Length"));
        }
    }
    let (length, path) = match acquire(shared, id, ctx.id, offset) {
        Acquire::Locked(length, path) => (length, path),
        Acquire::NotFound => return finish(conn, req, body, error(404, "no such upload")),
        Acquire::Conflict(cur) => {
            let resp =
                error(409, "Upload-Offset does not match").header("Upload-Offset", cur.to_string());
            return finish(conn, req, body, resp);
        }
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
    let drop_after = match shared.take_fault(|f| matches!(f, Fault::DropAfterBodyBytes(_))) {
        Some(Fault::DropAfterBodyBytes(n)) => Some(n),
        _ => None,
    };
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
    if ctx.scratch.len() < WRITE_BLOCK {
        ctx.scratch = vec![0u8; WRITE_BLOCK];
    }
    let buf = &mut ctx.scratch;
    let allowed = length - offset;
    let mut hasher = expected_sum.map(|_| ring::digest::Context::new(&ring::digest::SHA256));
    let mut written: u64 = 0;
    let stream_result: Result<(), StreamEnd> = loop {
        // Fill one block (or up to the end of the body / the injected drop point).
        let mut filled = 0usize;
        let mut ended = false;
        let mut read_err = None;
        let stop_at = drop_after.map(|n| n.saturating_sub(written));
        let mut cap = buf.len();
        if let Some(stop) = stop_at {
            cap = cap.min(usize::try_from(stop).unwrap_or(usize::MAX));
        }
        while filled < cap {
            // Don't sit on received bytes while the client pauses: store them first.
            if filled > 0 && !conn.has_buffered() && !super::data_ready(conn.stream_mut()) {
                break;
            }
            // Never read more than one byte past what the upload can take.
            let room = (allowed - written)
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
            if written + filled as u64 > allowed {
                break;
            }
        }
        let excess = written + filled as u64 > allowed;
        let take = if excess {
            usize::try_from(allowed - written).unwrap_or(filled)
        } else {
            filled
        };
        if take > 0 {
            if let Err(e) = file.write_all(&buf[..take]) {
                log::warn!("devserver: write to {} failed: {e}", path.display());
                break Err(StreamEnd::WriteFailed);
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&buf[..take]);
            }
            written += take as u64;
            // Advance the offset as data lands on disk, so a dropped connection keeps it;
            // completion is only declared once the request is over.
            if lock(&shared.store)
                .set_offset(id, offset + written, false)
                .is_none()
            {
                break Err(StreamEnd::Terminated);
            }
        }
        if excess {
            break Err(StreamEnd::TooLong);
        }
        if drop_after.is_some_and(|n| written >= n) {
            break Err(StreamEnd::InjectedDrop);
        }
        if let Some(e) = read_err {
            break Err(if e.kind() == io::ErrorKind::InvalidData {
                StreamEnd::BadFraming
            } else {
                StreamEnd::Disconnected
            });
        }
        if ended {
            break Ok(());
        }
    };

    // Records the final offset of this request (possibly completing the upload).
    let settle = |new_offset: u64| -> bool {
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
    };
    let rollback = |file: &File| {
        let _ = file.set_len(offset);
        let _ = lock(&shared.store).set_offset(id, offset, false);
    };
    let new_offset = offset + written;
    match stream_result {
        Ok(()) => {}
        Err(StreamEnd::InjectedDrop | StreamEnd::Disconnected) => {
            // tus servers keep what arrived of an interrupted PATCH.
            settle(new_offset);
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
            settle(new_offset);
            let mut resp = error(400, "malformed chunked body");
            resp.close = true;
            return finish(conn, req, body, resp);
        }
        Err(StreamEnd::WriteFailed) => {
            // Keep exactly what is known to be stored.
            let _ = file.set_len(new_offset);
            settle(new_offset);
            let mut resp = error(500, "cannot store upload data");
            resp.close = true;
            return finish(conn, req, body, resp);
        }
    }

    if let (Some(h), Some(expected)) = (hasher, expected_sum) {
        if h.finish().as_ref() != expected.as_slice() {
            rollback(&file);
            if drop_after.is_some() {
                return Outcome::Abort;
            }
            return finish(conn, req, body, error(460, "checksum mismatch"));
        }
    }
    if !settle(new_offset) {
        return Outcome::Abort;
    }
    if drop_after.is_some() {
        // The injected drop point lies beyond the body: everything is stored, but the
        // client never hears about it.
        return Outcome::Abort;
    }
    let resp = base_response(204).header("Upload-Offset", new_offset.to_string());
    finish(conn, req, body, resp)
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
