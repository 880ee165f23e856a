//! What the tus handlers (`tus.rs`, `patch.rs`, `sources.rs`) share: the
//! connection type, responses and how a request is finished, the filetype
//! rule, and sleeping without outliving the connection.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::http::{self, Body, Request, Response};
use crate::state::{ConnCtx, Shared};
use crate::store::Upload;
use crate::stream::{Outcome, TlsStream};

/// The only protocol version spoken.
pub(crate) const TUS_VERSION: &str = "1.0.0";
/// Request bodies we don't want are read and thrown away up to this size to keep the
/// connection alive; beyond it the connection is closed instead.
const DISCARD_LIMIT: u64 = 64 * 1024 * 1024;

pub(crate) type Conn = http::Conn<TlsStream>;

/// A response carrying `Tus-Resumable`, which every response has.
pub(crate) fn base_response(status: u16) -> Response {
    Response::new(status).header("Tus-Resumable", TUS_VERSION)
}

/// Sleeps, waking early if the connection is cut or the server stops. Returns whether
/// the whole duration passed.
pub(crate) fn interruptible_sleep(shared: &Shared, ctx: &ConnCtx, d: Duration) -> bool {
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
pub(crate) fn finish(
    conn: &mut Conn,
    req: &Request,
    body: &mut Body,
    mut resp: Response,
) -> Outcome {
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

pub(crate) fn error(status: u16, why: &str) -> Response {
    base_response(status).text(why)
}

/// [`crate::ServerOptions::require_filetype`]: whether requests on this upload are refused.
pub(crate) fn lacks_required_filetype(shared: &Shared, u: &Upload) -> bool {
    shared.cfg.require_filetype && u.meta("filetype").is_none()
}
