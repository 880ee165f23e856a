//! tus 1.0.0 request handling (core, creation, checksum, termination): routing, faults,
//! and every method but `PATCH` (in `patch.rs`).

use std::fs::File;
use std::io;
use std::sync::atomic::Ordering;

use crate::http::{self, Body, Request, Response};
use crate::options::Fault;
use crate::patch::patch;
use crate::reply::{
    base_response, error, finish, interruptible_sleep, lacks_required_filetype, Conn, TUS_VERSION,
};
use crate::state::{host_for_url, lock, ConnCtx, Shared};
use crate::store::{encode_metadata, parse_metadata, Metadata, Store, Upload};
use crate::stream::Outcome;

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
    let out = handle_framed(shared, conn, req, &mut body, ctx);
    // Every body byte read for an upload's URL, whatever became of it.
    let read = body.delivered;
    if read > 0 {
        if let Some(id) = req.path.strip_prefix(shared.cfg.base_path.as_str()) {
            if let Some(u) = lock(&shared.store).uploads.get_mut(id) {
                u.received += read;
            }
        }
    }
    out
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

    let source = shared
        .cfg
        .sources_dir
        .as_deref()
        .filter(|_| req.path.starts_with(crate::sources::SOURCES_PREFIX));
    if source.is_some() {
        crate::sources::record(shared, req);
    }

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

    if let Some(dir) = source {
        return crate::sources::serve(shared, conn, req, body, dir);
    }
    if shared.cfg.reject_expect && req.expects_continue() {
        return finish(conn, req, body, error(417, "Expectation Failed"));
    }
    if !authorized(shared, req, &method) {
        shared.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        let resp = error(401, "bearer token required")
            .header("WWW-Authenticate", "Bearer realm=\"cloudsync-dev\"");
        return finish(conn, req, body, resp);
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
        ("POST", None) if at_base => create(shared, conn, req, body, ctx),
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

/// Records the request's `Authorization` and checks it against the required
/// token (`OPTIONS` needs none).
fn authorized(shared: &Shared, req: &Request, method: &str) -> bool {
    let got = req.header("Authorization");
    if let Some(v) = got {
        shared
            .stats
            .authorization_headers
            .fetch_add(1, Ordering::Relaxed);
        let mut seen = lock(&shared.authorizations);
        if seen.len() == 1000 {
            seen.pop_front();
        }
        seen.push_back(v.to_string());
    }
    match lock(&shared.token).as_deref() {
        None => true,
        Some(_) if method == "OPTIONS" => true,
        Some(token) => got.and_then(|v| v.strip_prefix("Bearer ")) == Some(token),
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

fn create(
    shared: &Shared,
    conn: &mut Conn,
    req: &Request,
    body: &mut Body,
    ctx: &ConnCtx,
) -> Outcome {
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

    if shared.cfg.require_filetype && !metadata.iter().any(|(k, _)| k == "filetype") {
        return finish(conn, req, body, error(400, "filetype metadata required"));
    }
    let key = idempotency_key(req, &metadata);
    let found = match key.as_deref() {
        Some(key) if shared.cfg.dedupe_by_key => by_key(&lock(&shared.store), key),
        _ => None,
    };
    let (id, mut offset) = match found {
        Some((_, _, len)) if len != length => {
            let why = "Idempotency-Key reused with another Upload-Length";
            return finish(conn, req, body, error(422, why));
        }
        Some((id, offset, _)) => (id, offset),
        None => match new_upload(shared, length, metadata.clone(), key) {
            Ok(id) => (id, 0),
            Err(e) => {
                log::warn!("devserver: cannot create an upload file: {e}");
                return finish(conn, req, body, error(500, "cannot create upload file"));
            }
        },
    };
    if let Some(Fault::CreatedThenCut { linger }) =
        shared.take_fault(|f| matches!(f, Fault::CreatedThenCut { .. }))
    {
        // The upload exists; its creator never learns where.
        let _ = interruptible_sleep(shared, ctx, linger);
        return Outcome::Abort;
    }
    if let Some(f) =
        shared.take_fault(|f| matches!(f, Fault::ClaimComplete | Fault::ClaimCompleteBlind))
    {
        claim_complete(
            shared,
            &id,
            length,
            &metadata,
            f == Fault::ClaimCompleteBlind,
        );
        offset = length;
    }
    if let Some(Fault::AnswerOffset(o)) = shared.take_fault(|f| matches!(f, Fault::AnswerOffset(_)))
    {
        offset = o.min(length);
    }
    let location = match shared.take_fault(|f| matches!(f, Fault::LocationOverride(_))) {
        Some(Fault::LocationOverride(loc)) => loc,
        _ => location_for(shared, &id),
    };
    let resp = base_response(201)
        .header("Location", location)
        .header("Upload-Offset", offset.to_string());
    finish(conn, req, body, resp)
}

/// The request's idempotency key: the `Idempotency-Key` header (a structured-field
/// string, quotes stripped), or else the `key` metadata.
fn idempotency_key(req: &Request, metadata: &Metadata) -> Option<String> {
    if let Some(h) = req.header("Idempotency-Key") {
        let h = h.trim();
        return Some(
            h.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(h)
                .into(),
        );
    }
    metadata
        .iter()
        .find(|(k, _)| k == "key")
        .and_then(|(_, v)| v.as_deref())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The upload an earlier request with the same idempotency key made (not forgotten,
/// complete or not): `(id, offset, length)`.
fn by_key(store: &Store, key: &str) -> Option<(String, u64, u64)> {
    let id = store.by_key.get(key)?;
    store.live(id).map(|u| (id.clone(), u.offset, u.length))
}

/// Creates an empty upload file and registers it; returns its id.
pub(super) fn new_upload(
    shared: &Shared,
    length: u64,
    metadata: Metadata,
    key: Option<String>,
) -> io::Result<String> {
    let id = random_id();
    let path = shared.cfg.storage_dir.join(&id);
    File::create(&path)?;
    let mut store = lock(&shared.store);
    let seq = store.next_seq;
    store.next_seq += 1;
    let complete = length == 0;
    if let Some(k) = key {
        store.by_key.insert(k, id.clone());
    }
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
            received: 0,
        },
    );
    shared.stats.uploads_created.fetch_add(1, Ordering::Relaxed);
    if complete {
        shared
            .stats
            .uploads_completed
            .fetch_add(1, Ordering::Relaxed);
    }
    Ok(id)
}

/// [`Fault::ClaimComplete`]: if a complete upload of the same length and `sha256` exists,
/// `id` gets a copy of its bytes and is complete (a deduplicating server); otherwise
/// nothing changes and the claim is a lie. `blind`: the same length is enough.
fn claim_complete(shared: &Shared, id: &str, length: u64, metadata: &Metadata, blind: bool) {
    let sha = metadata.iter().find(|(k, _)| k == "sha256").map(|(_, v)| v);
    let mut store = lock(&shared.store);
    let twin = store
        .uploads
        .values()
        .find(|u| {
            u.complete
                && !u.forgotten
                && u.length == length
                && (blind || (sha.is_some() && u.meta("sha256") == sha))
        })
        .map(|u| u.path.clone());
    let (Some(src), Some(dst)) = (twin, store.path_of(id)) else {
        return;
    };
    if let Err(e) = std::fs::copy(src, dst) {
        log::warn!("devserver: cannot copy a deduplicated upload: {e}");
        return;
    }
    if store.set_offset(id, length, true) == Some(true) {
        shared
            .stats
            .uploads_completed
            .fetch_add(1, Ordering::Relaxed);
    }
}

fn head(shared: &Shared, conn: &mut Conn, req: &Request, body: &mut Body, id: &str) -> Outcome {
    let found = lock(&shared.store).live(id).map(|u| {
        let refused = lacks_required_filetype(shared, u);
        (u.offset, u.length, encode_metadata(&u.metadata), refused)
    });
    let resp = match found {
        Some((.., true)) => error(400, "filetype metadata required"),
        Some((offset, length, md, false)) => {
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
