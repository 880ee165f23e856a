//! Connections: the accept loop, TLS over a buffered TCP socket, the keep-alive request
//! loop and how a connection ends.

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http;
use crate::reply::base_response;
use crate::state::{lock, ConnCtx, ConnEntry, Shared};
use crate::stream::{cut, data_ready, graceful_close, Outcome, Sock};
use crate::tus;

/// How long an idle keep-alive connection (or a stalled body) may wait for the client.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a response write may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Read-ahead on the raw TCP socket, so TLS records are pulled in with few syscalls.
const TCP_READ_BUF: usize = 256 * 1024;

pub(crate) fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = listener.accept();
        if shared.stopping() {
            return;
        }
        let tcp = match accepted {
            Ok((tcp, _peer)) => tcp,
            Err(e) => {
                log::warn!("devserver: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        let killed = Arc::new(AtomicBool::new(false));
        let registry_copy = match tcp.try_clone() {
            Ok(s) => s,
            Err(e) => {
                log::warn!("devserver: cannot clone socket: {e}");
                continue;
            }
        };
        lock(&shared.conns).insert(
            id,
            ConnEntry {
                stream: registry_copy,
                killed: Arc::clone(&killed),
            },
        );
        let conn_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("devserver-conn-{id}"))
            .spawn(move || {
                let ctx = ConnCtx {
                    id,
                    killed,
                    scratch: Vec::new(),
                };
                serve_connection(&conn_shared, tcp, ctx);
                lock(&conn_shared.conns).remove(&id);
            });
        match spawned {
            Ok(handle) => {
                let mut threads = lock(&shared.threads);
                threads.retain(|t| !t.is_finished());
                threads.push(handle);
            }
            Err(e) => {
                log::warn!("devserver: cannot spawn connection thread: {e}");
                lock(&shared.conns).remove(&id);
            }
        }
    }
}

fn serve_connection(shared: &Shared, tcp: TcpStream, mut ctx: ConnCtx) {
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = tcp.set_write_timeout(Some(WRITE_TIMEOUT));
    let reader = match tcp.try_clone() {
        Ok(r) => r,
        Err(_) => return,
    };
    let mut sock = Sock {
        reader: BufReader::with_capacity(TCP_READ_BUF, reader),
        writer: tcp,
    };
    let mut tls = match rustls::ServerConnection::new(Arc::clone(&shared.tls)) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("devserver: TLS setup failed: {e}");
            return;
        }
    };
    if let Err(e) = tls.complete_io(&mut sock) {
        log::debug!("devserver: TLS handshake failed: {e}");
        return;
    }
    if tls.is_handshaking() {
        return;
    }
    shared
        .stats
        .tls_handshakes_ok
        .fetch_add(1, Ordering::Relaxed);
    let stream = rustls::StreamOwned::new(tls, sock);
    let mut conn = http::Conn::new(
        stream,
        Arc::clone(&shared.stats.app_bytes_received),
        Arc::clone(&shared.stats.body_bytes_received),
    );
    loop {
        if ctx.killed.load(Ordering::SeqCst) {
            cut(&conn);
            return;
        }
        let outcome = match conn.read_head() {
            Ok(None) => Outcome::Close,
            Err(http::HeadError::Io(e)) => {
                log::trace!("devserver: connection {} ended: {e}", ctx.id);
                Outcome::Abort
            }
            Err(http::HeadError::Malformed(why)) => {
                shared.stats.requests.fetch_add(1, Ordering::Relaxed);
                let mut resp = base_response(400).text(why);
                resp.close = true;
                match conn.send(&resp) {
                    Ok(()) => Outcome::Close,
                    Err(_) => Outcome::Abort,
                }
            }
            Err(http::HeadError::TooLarge) => {
                shared.stats.requests.fetch_add(1, Ordering::Relaxed);
                let mut resp = base_response(431).text("request head too large");
                resp.close = true;
                match conn.send(&resp) {
                    Ok(()) => Outcome::Close,
                    Err(_) => Outcome::Abort,
                }
            }
            Ok(Some(req)) => {
                shared.stats.requests.fetch_add(1, Ordering::Relaxed);
                let seen = conn.body_seen;
                conn.last_status = None;
                let outcome = tus::handle(shared, &mut conn, &req, &mut ctx);
                if let Some(label) = &shared.cfg.request_log {
                    eprintln!(
                        "{}",
                        request_line(label, &req, conn.last_status, conn.body_seen - seen)
                    );
                }
                outcome
            }
        };
        match outcome {
            Outcome::KeepAlive => {
                if let Some(idle) = shared.cfg.idle_close {
                    let until = Instant::now() + idle;
                    let mut ready = false;
                    while Instant::now() < until {
                        if data_ready(conn.stream_mut()) {
                            ready = true;
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    if !ready {
                        graceful_close(conn);
                        return;
                    }
                }
                continue;
            }
            Outcome::Close => {
                graceful_close(conn);
                return;
            }
            Outcome::Abort => {
                cut(&conn);
                return;
            }
        }
    }
}

/// The request log's line: `<label> <METHOD> <path> <status or -> <body bytes>B`.
/// Only the method and the path (its query already cut off): no header value,
/// so never a token, and no body.
pub(crate) fn request_line(
    label: &str,
    req: &http::Request,
    status: Option<u16>,
    body: u64,
) -> String {
    let status = status.map_or_else(|| "-".to_string(), |s| s.to_string());
    // The method is printed only if it is a plain token (a malformed one could carry anything).
    let method = if !req.method.is_empty()
        && req.method.len() <= 16
        && req.method.bytes().all(|b| b.is_ascii_alphabetic())
    {
        req.method.as_str()
    } else {
        "?"
    };
    let path: String = req
        .path
        .chars()
        .take(200)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    format!("{label} {method} {path} {status} {body}B")
}
