//! `cloudsync dev-server --admin` (issue 24): the test-only control channel
//! on 127.0.0.1, named by the ready file, through which the JVM tests start
//! their own servers. The channel's every route and refusal are tested in
//! `crates/devserver` (`admin/tests.rs`, `tests/admin.rs`); here the flag,
//! the ready file, the request log and that the process serves it. Each
//! test runs under a time limit.

use cloudsync_testkit::cli as common;
use cloudsync_testkit::timeouts::within;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::DevServer;

/// `method path` (a JSON `body`, if any) to the admin channel at `addr`:
/// (status, the head, the JSON body or null).
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String, serde_json::Value) {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    tcp.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(body).unwrap()
    };
    (head[9..12].parse().unwrap(), head.to_string(), json)
}

/// The admin channel's address from the ready file's `admin` URL.
fn admin_addr(server: &DevServer) -> SocketAddr {
    let url = server.path("admin");
    let addr = url
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("{url}"));
    SocketAddr::from(([127, 0, 0, 1], addr.parse::<u16>().unwrap()))
}

#[test]
fn the_ready_file_names_the_admin_channel_and_it_starts_servers() {
    within(Duration::from_secs(120), || {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("server.log");
        let server = DevServer::start_with_stderr(
            d.path(),
            &["--regions", "in", "--admin"],
            std::fs::File::create(&log).unwrap(),
        );
        let addr = admin_addr(&server);
        let (status, _, s) = call(addr, "POST", "/servers", Some(r#"{"token": "T-9"}"#));
        assert_eq!(status, 201, "{s}");
        assert_eq!(s["id"], 1);
        let storage = d
            .path()
            .join("data")
            .join("admin")
            .join("server-1")
            .join("uploads");
        assert_eq!(s["storage_dir"], serde_json::json!(storage));
        assert!(
            s["ca_pem"]
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----"),
            "{s}"
        );
        let port = s["port"].as_u64().unwrap();
        assert_ne!(port, u64::from(addr.port()));

        let (status, _, stats) = call(addr, "GET", "/servers/1/stats", None);
        assert_eq!(status, 200);
        assert_eq!(stats["requests"], 0, "{stats}");
        let (status, _, e) = call(addr, "GET", "/nope", None);
        assert_eq!(status, 404, "{e}");
        let (status, head, _) = call(addr, "DELETE", "/servers", None);
        assert_eq!(status, 405);
        assert!(head.contains("\r\nAllow: GET, POST\r\n"), "{head}");
        assert_eq!(call(addr, "DELETE", "/servers/1", None).0, 204);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains(&format!(
                "admin channel (test-only, loopback) at http://{addr}"
            )),
            "{text}"
        );
        assert!(!text.contains("T-9"), "no token in the log: {text}");
    });
}

#[test]
fn without_the_flag_there_is_no_admin_channel() {
    within(Duration::from_secs(120), || {
        let d = tempfile::tempdir().unwrap();
        let server = DevServer::start(d.path(), &["--regions", "in", "--mirror"]);
        assert!(server.ready.get("admin").is_none(), "{}", server.ready);
        assert!(server.ready.get("mirror").is_some(), "{}", server.ready);
        assert!(!d.path().join("data").join("admin").exists());
    });
}

#[test]
fn with_a_mirror_the_ready_file_names_both() {
    within(Duration::from_secs(120), || {
        let d = tempfile::tempdir().unwrap();
        let server = DevServer::start(
            d.path(),
            &["--regions", "in", "--mirror", "--admin", "--quiet"],
        );
        assert!(
            server.ready["mirror"]["url"].is_string(),
            "{}",
            server.ready
        );
        let addr = admin_addr(&server);
        let (status, _, s) = call(addr, "POST", "/servers", Some(r#"{"mirror": true}"#));
        assert_eq!(status, 201, "{s}");
        assert!(std::path::Path::new(s["mirror_dir"].as_str().unwrap())
            .join("root")
            .is_dir());
    });
}
