//! The admin channel's refusals, each with its exact status: a peer that is
//! not loopback, a bind address that is not loopback, and every request it
//! does not take. What it does to the servers it starts is in
//! `crate::tests::admin`.

use std::io::{self, Cursor, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::*;

/// Runs a test body on its own thread; fails if it takes longer than
/// `limit` (a hang is a failure).
pub(crate) fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("the test did not finish within {limit:?}"),
    }
}

/// An answer as a client reads it.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) json: Value,
}

/// Sends `raw` (a whole request) to `addr` and reads the answer to EOF.
pub(crate) fn send_raw(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut tcp = TcpStream::connect(addr).expect("connect to the admin channel");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(raw).expect("send");
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).expect("read the answer");
    parse_reply(&answer)
}

fn parse_reply(answer: &[u8]) -> Reply {
    let text = String::from_utf8(answer.to_vec()).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole head");
    let status = head[9..12].parse().expect("a status");
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).expect("a JSON body")
    };
    Reply {
        status,
        head: head.to_string(),
        json,
    }
}

/// `method path` with a JSON `body` (if any), as a well-behaved client sends it.
pub(crate) fn call(admin: &AdminServer, method: &str, path: &str, body: Option<&str>) -> Reply {
    let addr = admin.addr();
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(b) = body {
        raw.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    raw.push_str("\r\n");
    raw.push_str(body.unwrap_or(""));
    send_raw(addr, raw.as_bytes())
}

pub(crate) fn admin() -> (AdminServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = AdminServer::start("127.0.0.1:0".parse().expect("address"), dir.path(), false)
        .expect("the admin channel starts");
    (admin, dir)
}

/// A stream whose reads come from `input` and whose writes are kept.
struct Mem {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Mem {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Mem {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The answer [`serve`] gives `request` from `peer`, and how much of the request it read.
fn serve_mem(peer: &str, request: &str) -> (Reply, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let shared = Shared {
        dir: dir.path().to_path_buf(),
        log_requests: false,
        servers: Mutex::new(BTreeMap::new()),
        next_id: AtomicU64::new(1),
        stopping: AtomicBool::new(false),
    };
    let mut mem = Mem {
        input: Cursor::new(request.as_bytes().to_vec()),
        output: Vec::new(),
    };
    serve(&shared, &mut mem, peer.parse::<IpAddr>().expect("an IP")).expect("answered");
    (parse_reply(&mem.output), mem.input.position())
}

#[test]
fn a_peer_that_is_not_loopback_gets_403_and_its_request_is_not_read() {
    within(Duration::from_secs(30), || {
        let request = "POST /servers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        for peer in ["192.0.2.7", "10.0.2.2", "::ffff:192.0.2.7", "2001:db8::1"] {
            let (reply, read) = serve_mem(peer, request);
            assert_eq!(reply.status, 403, "{peer}: {reply:?}");
            assert_eq!(
                reply.json["error"],
                "the admin channel answers loopback peers only"
            );
            assert_eq!(read, 0, "{peer}: nothing of its request is read");
        }
        for peer in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            let (reply, _) = serve_mem(peer, "GET /servers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            assert_eq!(reply.status, 200, "{peer}: {reply:?}");
            assert_eq!(reply.json, serde_json::json!({"servers": []}));
        }
    });
}

#[test]
fn it_listens_on_a_loopback_address_only() {
    within(Duration::from_secs(30), || {
        let dir = tempfile::tempdir().expect("temp dir");
        for bind in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
            let e = AdminServer::start(bind.parse().expect("address"), dir.path(), false)
                .expect_err(bind);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bind}: {e}");
        }
        let (admin, _dir) = admin();
        assert!(admin.addr().ip().is_loopback());
        assert_eq!(admin.url(), format!("http://{}", admin.addr()));
    });
}

#[test]
fn requests_it_does_not_take_get_their_exact_status() {
    within(Duration::from_secs(60), || {
        let (admin, _dir) = admin();
        let created = call(&admin, "POST", "/servers", Some("{}"));
        assert_eq!(created.status, 201, "{created:?}");
        let cases: [(&str, &str, Option<&str>, u16); 17] = [
            ("GET", "/", None, 404),
            ("GET", "/nope", None, 404),
            ("GET", "/servers/abc", None, 404),
            ("GET", "/servers/99", None, 404),
            ("DELETE", "/servers/99", None, 404),
            ("GET", "/servers/1/nope", None, 404),
            ("GET", "/servers/1/stats/more", None, 404),
            ("PUT", "/servers", Some("{}"), 405),
            ("GET", "/servers/1/token", None, 405),
            ("POST", "/servers", Some("{not json"), 400),
            ("POST", "/servers", Some("[1]"), 400),
            ("POST", "/servers", Some(r#"{"tokn": "x"}"#), 400),
            ("POST", "/servers", Some(r#"{"token": ""}"#), 400),
            ("PUT", "/servers/1/token", Some("{}"), 400),
            ("POST", "/servers/1/faults", Some(r#"{"status": 42}"#), 400),
            (
                "POST",
                "/servers/1/faults",
                Some(r#"{"method": "TRACE", "status": 500}"#),
                400,
            ),
            (
                "POST",
                "/servers/1/faults",
                Some(r#"{"status": 500, "retry_after": -1}"#),
                400,
            ),
        ];
        for (method, path, body, status) in cases {
            let reply = call(&admin, method, path, body);
            assert_eq!(reply.status, status, "{method} {path} {body:?}: {reply:?}");
            assert!(reply.json["error"].is_string(), "{reply:?}");
        }
        let reply = call(&admin, "PATCH", "/servers", None);
        assert!(reply.head.contains("\r\nAllow: GET, POST\r\n"), "{reply:?}");
        assert!(
            reply.head.contains("\r\nConnection: close\r\n"),
            "{reply:?}"
        );
        raw_refusals(&admin);
        // None of that changed the server.
        let stats = call(&admin, "GET", "/servers/1/stats", None);
        assert_eq!(stats.json["requests"], 0, "{stats:?}");
    });
}

/// Requests a well-behaved client does not send.
fn raw_refusals(admin: &AdminServer) {
    let addr = admin.addr();
    let big = "x".repeat(wire::MAX_BODY + 1);
    let cases = [
        // DNS rebinding: a name that resolved to 127.0.0.1 for a browser.
        ("GET /servers HTTP/1.1\r\nHost: attacker.example:80\r\n\r\n".to_string(), 403),
        ("GET /servers HTTP/1.1\r\n\r\n".to_string(), 403),
        (format!("GET /servers HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://a.example\r\n\r\n"), 403),
        (format!("POST /servers HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\n\r\n{{}}"), 415),
        (format!("POST /servers HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{{}}"), 415),
        (format!("POST /servers HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 411),
        (format!("POST /servers HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{big}", big.len()), 413),
        (format!("POST /servers HTTP/1.1\r\nHost: {addr}\r\nContent-Length: many\r\n\r\n"), 400),
        ("GET /servers\r\n\r\n".to_string(), 400),
        ("GET servers HTTP/1.1\r\n\r\n".to_string(), 400),
        (format!("GET /servers HTTP/1.1\r\nHost: {addr}\r\nX: {}\r\n\r\n", "y".repeat(20_000)), 431),
    ];
    for (raw, status) in cases {
        let reply = send_raw(addr, raw.as_bytes());
        assert_eq!(
            reply.status,
            status,
            "{}: {reply:?}",
            &raw[..raw.len().min(80)]
        );
    }
    for host in ["localhost", "127.0.0.1", "[::1]:1"] {
        let reply = send_raw(
            addr,
            format!("GET /servers HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        );
        assert_eq!(reply.status, 200, "{host}: {reply:?}");
    }
}
