//! A test-only control channel: plain HTTP with JSON bodies on a loopback
//! address, through which a test in another process (the JVM tests) starts
//! tus servers and mirrors, sets the bearer token they require, makes their
//! next request fail with a status, and reads their counters and the
//! `Authorization` headers they received. What the in-process API of
//! [`TusServer`] does, across a process boundary.
//!
//! It is for tests on the developer's machine only: no authentication, no
//! TLS, so it listens on a loopback address only ([`AdminServer::start`]
//! refuses any other), answers 403 to a peer that is not a loopback address,
//! to a request whose `Host` is not a loopback name (DNS rebinding) and to
//! one with an `Origin` (a web page). The servers it starts write under its
//! own directory; a request names no path. `cloudsync dev-server --admin`
//! serves it; the library crate never contains it.
//!
//! | request | answer |
//! |---|---|
//! | `POST /servers` `{"token": "T" \| null, "mirror": bool}` (both optional) | 201, the server (below) |
//! | `GET /servers` | 200 `{"servers": [server, ...]}` |
//! | `GET /servers/N` | 200, the server |
//! | `DELETE /servers/N` | 204; the server stops (its files stay) |
//! | `PUT /servers/N/token` `{"token": "T" \| null}` | 204; `null`: anonymous from now on |
//! | `POST /servers/N/faults` `{"method": "PATCH" \| null, "status": 503, "retry_after": 2}` | 204; the next such request is answered `status` ([`Fault::Status`]) |
//! | `DELETE /servers/N/faults` | 204; queued faults dropped |
//! | `GET /servers/N/authorizations` | 200 `{"authorizations": ["Bearer T", ...]}`, oldest first |
//! | `GET /servers/N/stats` | 200, every field of [`ServerStats`] by name |
//!
//! A server is `{"id", "port", "url", "ca_pem", "storage_dir", "mirror_dir",
//! "sources_url"}`: a tus server on 127.0.0.1 with a certificate of a CA of
//! its own (`ca_pem`); a mirror also serves the files of `mirror_dir` (which
//! has a `root/` directory) under `sources_url`, read on every request.
//! Errors are `{"error": "..."}` with 400 (bad JSON, a field it does not
//! know, a bad value), 403, 404 (no such route or server), 405 (with
//! `Allow`), 411, 413, 415 (a body that is not `application/json`) or 431.
//! One request per connection.

mod wire;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::state::lock;
use crate::{Fault, ServerOptions, ServerStats, TestCa, TusServer};
use wire::ReadError;

/// How long one admin connection may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A running admin channel. Dropping it stops it and every server it started.
pub struct AdminServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// One server started through the channel.
struct Managed {
    server: TusServer,
    ca_pem: String,
    storage_dir: PathBuf,
    mirror_dir: Option<PathBuf>,
}

struct Shared {
    dir: PathBuf,
    log_requests: bool,
    servers: Mutex<BTreeMap<u64, Managed>>,
    next_id: AtomicU64,
    stopping: AtomicBool,
}

impl AdminServer {
    /// Listens on `bind` (a loopback address; port 0: a free one); the
    /// servers it starts keep their files under `dir/server-<N>/` and, with
    /// `log_requests`, log each request to stderr labelled `server-<N>` (see
    /// [`ServerOptions::request_log`]). Any other address is refused
    /// (`InvalidInput`).
    pub fn start(
        bind: SocketAddr,
        dir: impl Into<PathBuf>,
        log_requests: bool,
    ) -> io::Result<AdminServer> {
        if !bind.ip().to_canonical().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the admin channel listens on a loopback address only, not {bind}"),
            ));
        }
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let listener = TcpListener::bind(bind)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {bind}: {e}")))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            dir,
            log_requests,
            servers: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name(format!("devserver-admin-{}", addr.port()))
            .spawn(move || accept_loop(&accept_shared, &listener))?;
        Ok(AdminServer {
            shared,
            addr,
            accept: Some(accept),
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            // Wake the blocking accept() with a throwaway connection.
            match TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)) {
                Ok(_) => {
                    let _ = accept.join();
                }
                Err(e) => log::warn!("devserver admin: could not wake its accept thread: {e}"),
            }
        }
        let servers = std::mem::take(&mut *lock(&self.shared.servers));
        drop(servers);
    }
}

fn accept_loop(shared: &Shared, listener: &TcpListener) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let peer = match stream.peer_addr() {
            Ok(p) => p.ip(),
            Err(_) => continue,
        };
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        if let Err(e) = serve(shared, &stream, peer) {
            log::debug!("devserver admin: {e}");
        }
        linger(&stream);
    }
}

/// Ends a connection so that its answer arrives: closing with unread bytes
/// (a refused body) would reset it, and the client could lose the answer.
fn linger(mut stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = io::copy(&mut Read::take(&mut stream, 1 << 20), &mut io::sink());
}

/// An answer: status, the `Allow` of a 405, the JSON body (none: 204).
struct Answer {
    status: u16,
    allow: Option<&'static str>,
    body: Option<Value>,
}

impl Answer {
    fn ok(status: u16, body: Value) -> Answer {
        Answer {
            status,
            allow: None,
            body: Some(body),
        }
    }

    fn no_content() -> Answer {
        Answer {
            status: 204,
            allow: None,
            body: None,
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Answer {
        Answer::ok(status, json!({ "error": message.into() }))
    }

    fn not_allowed(allow: &'static str) -> Answer {
        Answer {
            allow: Some(allow),
            ..Answer::error(405, format!("allowed: {allow}"))
        }
    }
}

/// Answers the one request of a connection from `peer`.
fn serve(shared: &Shared, mut stream: impl Read + Write, peer: IpAddr) -> io::Result<()> {
    let answer = if peer.to_canonical().is_loopback() {
        match wire::read_request(&mut stream) {
            Ok(req) => checked(shared, &req),
            Err(ReadError::Status(status, message)) => Answer::error(status, message),
            Err(ReadError::Io(e)) => return Err(e),
        }
    } else {
        // Not even read: whatever it is, it is not for this peer.
        Answer::error(403, "the admin channel answers loopback peers only")
    };
    let allow: Vec<(&str, &str)> = answer.allow.iter().map(|a| ("Allow", *a)).collect();
    wire::write_response(&mut stream, answer.status, &allow, answer.body.as_ref())
}

/// Whether `host` (a `Host` header value) names a loopback address.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The request's origin checks, then its route.
fn checked(shared: &Shared, req: &wire::Request) -> Answer {
    if !req.header("host").is_some_and(loopback_host) {
        return Answer::error(403, "Host must name a loopback address");
    }
    if req.header("origin").is_some() {
        return Answer::error(403, "no requests from web pages");
    }
    let json_body = req.header("content-type").is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|t| t.trim() == "application/json")
    });
    if !req.body.is_empty() && !json_body {
        return Answer::error(415, "send Content-Type: application/json");
    }
    route(shared, req)
}

fn route(shared: &Shared, req: &wire::Request) -> Answer {
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let method = req.method.as_str();
    match segments.as_slice() {
        ["servers"] => match method {
            "GET" => {
                let servers = lock(&shared.servers);
                let all: Vec<Value> = servers.iter().map(|(id, m)| describe(*id, m)).collect();
                Answer::ok(200, json!({ "servers": all }))
            }
            "POST" => create(shared, &req.body),
            _ => Answer::not_allowed("GET, POST"),
        },
        ["servers", id, rest @ ..] => {
            let Some(id) = id.parse::<u64>().ok().filter(|_| rest.len() <= 1) else {
                return Answer::error(404, "no such route");
            };
            on_server(shared, id, rest.first().copied(), method, &req.body)
        }
        _ => Answer::error(404, "no such route"),
    }
}

/// The routes under `/servers/<id>` (`part`: the segment after it).
fn on_server(shared: &Shared, id: u64, part: Option<&str>, method: &str, body: &[u8]) -> Answer {
    let allow = match part {
        None => "GET, DELETE",
        Some("token") => "PUT",
        Some("faults") => "POST, DELETE",
        Some("authorizations" | "stats") => "GET",
        Some(_) => return Answer::error(404, "no such route"),
    };
    if !allow.split(", ").any(|m| m == method) {
        return Answer::not_allowed(allow);
    }
    let mut servers = lock(&shared.servers);
    if part.is_none() && method == "DELETE" {
        let stopped = servers.remove(&id);
        drop(servers);
        return match stopped {
            Some(m) => {
                m.server.stop();
                Answer::no_content()
            }
            None => Answer::error(404, format!("no server {id}")),
        };
    }
    let Some(m) = servers.get(&id) else {
        return Answer::error(404, format!("no server {id}"));
    };
    match (part, method) {
        (None, _) => Answer::ok(200, describe(id, m)),
        (Some("token"), _) => set_token(&m.server, body),
        (Some("faults"), "DELETE") => {
            m.server.clear_faults();
            Answer::no_content()
        }
        (Some("faults"), _) => push_fault(&m.server, body),
        (Some("authorizations"), _) => {
            Answer::ok(200, json!({ "authorizations": m.server.authorizations() }))
        }
        _ => Answer::ok(200, stats_json(&m.server.stats())),
    }
}

/// The body as a JSON object with no field outside `known` (empty: `{}`).
fn object(body: &[u8], known: &[&str]) -> Result<Map<String, Value>, Answer> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    let map = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(Answer::error(400, "the body must be a JSON object")),
        Err(e) => return Err(Answer::error(400, format!("the body is not JSON: {e}"))),
    };
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(Answer::error(400, format!("unknown field {k:?}"))),
        None => Ok(map),
    }
}

/// A `token` field: a non-empty string, or null / absent for none.
fn token_field(map: &Map<String, Value>) -> Result<Option<String>, Answer> {
    match map.get("token") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) if !t.is_empty() => Ok(Some(t.clone())),
        Some(_) => Err(Answer::error(
            400,
            "token must be a non-empty string or null",
        )),
    }
}

fn create(shared: &Shared, body: &[u8]) -> Answer {
    let map = match object(body, &["token", "mirror"]) {
        Ok(map) => map,
        Err(answer) => return answer,
    };
    let token = match token_field(&map) {
        Ok(t) => t,
        Err(answer) => return answer,
    };
    let mirror = match map.get("mirror") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Answer::error(400, "mirror must be true or false"),
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    match start_server(shared, id, token, mirror) {
        Ok(m) => {
            let description = describe(id, &m);
            lock(&shared.servers).insert(id, m);
            Answer::ok(201, description)
        }
        Err(e) => Answer::error(500, format!("cannot start a server: {e}")),
    }
}

/// A tus server on 127.0.0.1 (a free port) with a CA of its own, under
/// `<dir>/server-<id>/`.
fn start_server(
    shared: &Shared,
    id: u64,
    token: Option<String>,
    mirror: bool,
) -> io::Result<Managed> {
    let base = shared.dir.join(format!("server-{id}"));
    let ca = TestCa::new("cloudsync dev-server admin test CA");
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let storage_dir = base.join("uploads");
    let mut opts = ServerOptions::new(
        SocketAddr::new(ip, 0),
        ca.issue(&[], &[ip]),
        storage_dir.clone(),
        ip.to_string(),
    );
    opts.bearer_token = token;
    opts.request_log = shared.log_requests.then(|| format!("server-{id}"));
    let mirror_dir = if mirror {
        let dir = base.join("mirror");
        std::fs::create_dir_all(dir.join("root"))?;
        opts.sources_dir = Some(dir.clone());
        Some(dir)
    } else {
        None
    };
    Ok(Managed {
        server: TusServer::start(opts)?,
        ca_pem: ca.cert_pem(),
        storage_dir,
        mirror_dir,
    })
}

fn describe(id: u64, m: &Managed) -> Value {
    json!({
        "id": id,
        "port": m.server.port(),
        "url": m.server.base_url(),
        "ca_pem": m.ca_pem,
        "storage_dir": m.storage_dir,
        "mirror_dir": m.mirror_dir,
        "sources_url": m.mirror_dir.as_ref().map(|_| m.server.sources_url()),
    })
}

fn set_token(server: &TusServer, body: &[u8]) -> Answer {
    let map = match object(body, &["token"]) {
        Ok(map) if map.contains_key("token") => map,
        Ok(_) => return Answer::error(400, "token is required (null: anonymous)"),
        Err(answer) => return answer,
    };
    match token_field(&map) {
        Ok(token) => {
            server.set_token(token);
            Answer::no_content()
        }
        Err(answer) => answer,
    }
}

/// The methods a fault can name.
const METHODS: [&str; 6] = ["OPTIONS", "HEAD", "GET", "POST", "PATCH", "DELETE"];

fn push_fault(server: &TusServer, body: &[u8]) -> Answer {
    let map = match object(body, &["method", "status", "retry_after"]) {
        Ok(map) => map,
        Err(answer) => return answer,
    };
    let method = match map.get("method") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => match METHODS.into_iter().find(|k| k == m) {
            Some(k) => Some(k),
            None => {
                return Answer::error(400, format!("method must be one of {METHODS:?} or null"))
            }
        },
        Some(_) => return Answer::error(400, "method must be a string or null"),
    };
    let Some(status) = map
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..=599).contains(s))
    else {
        return Answer::error(400, "status must be a number from 100 to 599");
    };
    let retry_after = match map.get("retry_after") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(s) => Some(s),
            None => return Answer::error(400, "retry_after must be a number of seconds"),
        },
    };
    server.push_fault(Fault::Status {
        method,
        status,
        retry_after,
    });
    Answer::no_content()
}

fn stats_json(s: &ServerStats) -> Value {
    // Every field by name: a new counter does not compile until it is here.
    let ServerStats {
        connections,
        tls_handshakes_ok,
        app_bytes_received,
        body_bytes_received,
        uploads_created,
        uploads_completed,
        requests,
        conflicts,
        authorization_headers,
        unauthorized,
        too_large,
    } = *s;
    json!({
        "connections": connections,
        "tls_handshakes_ok": tls_handshakes_ok,
        "app_bytes_received": app_bytes_received,
        "body_bytes_received": body_bytes_received,
        "uploads_created": uploads_created,
        "uploads_completed": uploads_completed,
        "requests": requests,
        "conflicts": conflicts,
        "authorization_headers": authorization_headers,
        "unauthorized": unauthorized,
        "too_large": too_large,
    })
}
