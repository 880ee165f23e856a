//! What the admin channel does to the servers it starts, seen by a TLS
//! client of those servers: the token they require, a failed next request,
//! the `Authorization` headers and counters they report, a mirror's files,
//! and stopping them.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};

use super::client::{path_of, Client, Resp};
use crate::admin::tests::{admin, call, within};

/// A TLS client of server `s` (a server's description), trusting its CA only.
fn client_of(s: &Value) -> Client {
    let pem = s["ca_pem"].as_str().expect("ca_pem");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate"))
        .expect("a trust anchor");
    Client::connect_to(addr_of(s), roots, "127.0.0.1")
}

fn addr_of(s: &Value) -> SocketAddr {
    let port = s["port"].as_u64().expect("port");
    SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).expect("a port")))
}

/// A creation POST with `token` (if any).
fn post(c: &mut Client, token: Option<&str>) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("Tus-Resumable", "1.0.0"), ("Upload-Length", "5")];
    if let Some(a) = &auth {
        h.push(("Authorization", a));
    }
    c.req("POST", "/files/", &h, b"")
}

#[test]
fn a_server_requires_the_token_it_is_given_and_reports_what_it_saw() {
    within(Duration::from_secs(60), || {
        let (admin, dir) = admin();
        let s = call(&admin, "POST", "/servers", Some(r#"{"token": "tok-1"}"#));
        assert_eq!(s.status, 201, "{s:?}");
        let s = s.json;
        assert_eq!(s["id"], 1);
        let port = s["port"].as_u64().expect("port");
        assert_eq!(s["url"], format!("https://127.0.0.1:{port}/files/"));
        assert_eq!(s["mirror_dir"], Value::Null);
        assert_eq!(s["sources_url"], Value::Null);
        let storage = dir.path().join("server-1").join("uploads");
        assert_eq!(s["storage_dir"], json!(storage));
        assert_eq!(call(&admin, "GET", "/servers/1", None).json, s);
        assert_eq!(
            call(&admin, "GET", "/servers", None).json,
            json!({"servers": [s]})
        );

        let mut c = client_of(&s);
        assert_eq!(post(&mut c, None).status, 401);
        assert_eq!(post(&mut c, Some("tok-1")).status, 201);
        let r = call(
            &admin,
            "PUT",
            "/servers/1/token",
            Some(r#"{"token": "tok-2"}"#),
        );
        assert_eq!(r.status, 204, "{r:?}");
        assert_eq!(
            post(&mut c, Some("tok-1")).status,
            401,
            "the old token is refused at once"
        );

        let r = call(
            &admin,
            "POST",
            "/servers/1/faults",
            Some(r#"{"method": "POST", "status": 503, "retry_after": 7}"#),
        );
        assert_eq!(r.status, 204, "{r:?}");
        let failed = post(&mut c, Some("tok-2"));
        assert_eq!(failed.status, 503);
        assert_eq!(failed.h("Retry-After"), Some("7"));
        assert_eq!(
            post(&mut c, Some("tok-2")).status,
            201,
            "a fault is one-shot"
        );

        let r = call(&admin, "GET", "/servers/1/authorizations", None);
        assert_eq!(r.status, 200);
        // A faulted request is answered before its Authorization is looked at.
        let seen = json!(["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]);
        assert_eq!(r.json, json!({ "authorizations": seen }));
        assert_counters(&call(&admin, "GET", "/servers/1/stats", None).json);

        // Anonymous from now on.
        let r = call(
            &admin,
            "PUT",
            "/servers/1/token",
            Some(r#"{"token": null}"#),
        );
        assert_eq!(r.status, 204, "{r:?}");
        assert_eq!(post(&mut c, None).status, 201);
    });
}

/// The counters after the requests of
/// `a_server_requires_the_token_it_is_given_and_reports_what_it_saw`.
fn assert_counters(st: &Value) {
    assert_eq!(st["requests"], 5, "{st}");
    assert_eq!(st["authorization_headers"], 3, "{st}");
    assert_eq!(st["unauthorized"], 2, "{st}");
    assert_eq!(st["uploads_created"], 2, "{st}");
    assert_eq!(st["uploads_completed"], 0, "{st}");
    assert_eq!(st["body_bytes_received"], 0, "{st}");
    assert_eq!(st["connections"], 1, "{st}");
    assert_eq!(
        st.as_object().expect("an object").len(),
        11,
        "every counter: {st}"
    );
}

#[test]
fn faults_of_any_method_queue_in_order_and_can_be_dropped() {
    within(Duration::from_secs(60), || {
        let (admin, _dir) = admin();
        let s = call(&admin, "POST", "/servers", None).json;
        let mut c = client_of(&s);
        for (method, status) in [("null", 500), (r#""PATCH""#, 403)] {
            let body = format!(r#"{{"method": {method}, "status": {status}}}"#);
            assert_eq!(
                call(&admin, "POST", "/servers/1/faults", Some(&body)).status,
                204
            );
        }
        let r = post(&mut c, None);
        assert_eq!(r.status, 500, "any method: {r:?}");
        let created = post(&mut c, None);
        assert_eq!(created.status, 201, "the PATCH fault waits for a PATCH");
        let upload = path_of(created.h("Location").expect("Location"));
        assert_eq!(
            call(&admin, "DELETE", "/servers/1/faults", None).status,
            204
        );
        let r = c.patch(&upload, 0, b"hello", &[]);
        assert_eq!(r.status, 204, "the PATCH fault was dropped: {r:?}");
        let st = call(&admin, "GET", "/servers/1/stats", None).json;
        assert_eq!(st["uploads_created"], 1, "{st}");
        assert_eq!(st["uploads_completed"], 1, "{st}");
        assert_eq!(st["body_bytes_received"], 5, "{st}");
        assert_eq!(st["authorization_headers"], 0, "{st}");
    });
}

#[test]
fn a_mirror_serves_its_directory_and_fails_when_told() {
    within(Duration::from_secs(60), || {
        let (admin, dir) = admin();
        let r = call(&admin, "POST", "/servers", Some(r#"{"mirror": true}"#));
        assert_eq!(r.status, 201, "{r:?}");
        let s = r.json;
        let mirror = dir.path().join("server-1").join("mirror");
        assert_eq!(s["mirror_dir"], json!(mirror));
        assert!(mirror.join("root").is_dir());
        let port = s["port"].as_u64().expect("port");
        assert_eq!(
            s["sources_url"],
            format!("https://127.0.0.1:{port}/sources/")
        );
        std::fs::write(mirror.join("config.json"), b"{\"v\": 1}").expect("publish");

        let mut c = client_of(&s);
        assert_eq!(status_of_get(&mut c), 200);
        let r = call(
            &admin,
            "POST",
            "/servers/1/faults",
            Some(r#"{"method": null, "status": 500}"#),
        );
        assert_eq!(r.status, 204);
        let mut c = client_of(&s);
        assert_eq!(status_of_get(&mut c), 500);
        let mut c = client_of(&s);
        assert_eq!(status_of_get(&mut c), 200, "one-shot");
        assert_eq!(
            call(&admin, "GET", "/servers/1/stats", None).json["requests"],
            3
        );
    });
}

/// The status of `GET /sources/config.json` (a mirror's answer has no `Tus-Resumable`).
fn status_of_get(c: &mut Client) -> u16 {
    c.send_head("GET", "/sources/config.json", &[]);
    while !c.buf.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(c.fill().expect("read") > 0, "an answer");
    }
    let head = String::from_utf8_lossy(&c.buf);
    head[9..12].parse().expect("a status")
}

#[test]
fn a_stopped_server_is_gone_and_stopping_the_channel_stops_the_rest() {
    within(Duration::from_secs(60), || {
        let (admin, dir) = admin();
        let one = call(&admin, "POST", "/servers", None).json;
        let two = call(&admin, "POST", "/servers", Some(r#"{"mirror": true}"#)).json;
        assert_eq!(two["id"], 2);
        assert_eq!(call(&admin, "DELETE", "/servers/1", None).status, 204);
        assert_eq!(call(&admin, "GET", "/servers/1", None).status, 404);
        assert_eq!(call(&admin, "DELETE", "/servers/1", None).status, 404);
        let timeout = Duration::from_secs(2);
        assert!(TcpStream::connect_timeout(&addr_of(&one), timeout).is_err());
        assert!(dir.path().join("server-1").is_dir(), "its files stay");
        let listed = call(&admin, "GET", "/servers", None).json;
        assert_eq!(listed, json!({"servers": [two]}));

        let admin_addr = admin.addr();
        drop(admin);
        assert!(TcpStream::connect_timeout(&addr_of(&two), timeout).is_err());
        assert!(TcpStream::connect_timeout(&admin_addr, timeout).is_err());
    });
}
