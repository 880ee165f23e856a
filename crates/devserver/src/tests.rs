//! Unit tests of the dev server, through a raw TLS client.

mod admin;
mod client;
mod modes;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use client::*;

#[test]
fn options_advertises_extensions() {
    let env = env_with(|o| o.max_size = Some(1 << 30));
    let mut c = Client::connect(&env);
    let r = c.req("OPTIONS", "/files/", &[], b"");
    assert_eq!(r.status, 204);
    assert_eq!(r.h("Tus-Version"), Some("1.0.0"));
    assert_eq!(r.h("Tus-Extension"), Some("creation,termination,checksum"));
    assert_eq!(r.h("Tus-Checksum-Algorithm"), Some("sha256"));
    assert_eq!(r.h("Tus-Max-Size"), Some("1073741824"));

    let env = env_with(|o| {
        o.checksum = false;
        o.termination = false;
    });
    let mut c = Client::connect(&env);
    let r = c.req("OPTIONS", "/files/", &[], b"");
    assert_eq!(r.h("Tus-Extension"), Some("creation"));
    assert_eq!(r.h("Tus-Checksum-Algorithm"), None);
    assert_eq!(r.h("Tus-Max-Size"), None);
    // Without Tus-Resumable everything but OPTIONS is refused.
    let r = c.req("POST", "/files/", &[("Upload-Length", "5")], b"");
    assert_eq!(r.status, 412);
    assert_eq!(r.h("Tus-Version"), Some("1.0.0"));
    let st = env.server.stats();
    assert_eq!(st.connections, 1);
    assert_eq!(st.tls_handshakes_ok, 1);
    assert_eq!(st.requests, 2);
}

#[test]
fn create_patch_twice_head_and_compare() {
    let env = env();
    let payload = data(300_000);
    let mut c = Client::connect(&env);
    let md = format!("item {},filename {},flag", b64(b"item-1"), b64(b"a b.jpg"));
    let r = c.create(payload.len() as u64, Some(&md));
    assert_eq!(r.status, 201);
    let loc = r.h("Location").unwrap().to_string();
    assert_eq!(
        loc,
        format!("https://{HOST}:{}/files/{}", env.server.port(), id_of(&loc))
    );
    assert_eq!(id_of(&loc).len(), 32);
    let path = path_of(&loc);

    // First chunk with Content-Length.
    let r = c.patch(&path, 0, &payload[..100_000], &[]);
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.h("Upload-Offset"), Some("100000"));
    let r = c.head(&path);
    assert_eq!(r.status, 200);
    assert_eq!(r.h("Upload-Offset"), Some("100000"));
    assert_eq!(r.h("Upload-Length"), Some("300000"));
    assert_eq!(r.h("Cache-Control"), Some("no-store"));
    assert!(r.h("Upload-Metadata").unwrap().contains("flag"));

    // Second chunk, chunked transfer encoding, with a valid checksum.
    let rest = &payload[100_000..];
    let sum = format!("sha256 {}", sha256_b64(rest));
    c.send_head(
        "PATCH",
        &path,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "100000"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Transfer-Encoding", "chunked"),
            ("Upload-Checksum", &sum),
        ],
    );
    for piece in rest.chunks(65_000) {
        c.send(format!("{:x}\r\n", piece.len()).as_bytes()).unwrap();
        c.send(piece).unwrap();
        c.send(b"\r\n").unwrap();
    }
    c.send(b"0\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.h("Upload-Offset"), Some("300000"));

    let id = id_of(&loc);
    assert_eq!(env.server.upload_bytes(&id).unwrap(), payload);
    let info = env.server.upload(&id).unwrap();
    assert!(info.complete);
    assert_eq!(info.offset, 300_000);
    assert_eq!(info.length, Some(300_000));
    assert_eq!(info.metadata_value("item"), Some(&b"item-1"[..]));
    assert_eq!(info.metadata_value("filename"), Some(&b"a b.jpg"[..]));
    assert_eq!(info.metadata[2], ("flag".to_string(), None));
    let st = env.server.stats();
    assert_eq!(st.uploads_created, 1);
    assert_eq!(st.uploads_completed, 1);
    assert_eq!(st.body_bytes_received, 300_000);
    assert!(st.app_bytes_received > 300_000);
    assert_eq!(st.connections, 1, "keep-alive reused the connection");
}

#[test]
fn relative_location_and_errors() {
    let env = env_with(|o| {
        o.relative_location = true;
        o.max_size = Some(1000);
    });
    let mut c = Client::connect(&env);
    let r = c.create(10, None);
    let loc = r.h("Location").unwrap().to_string();
    assert!(loc.starts_with("/files/"), "{loc}");
    assert_eq!(r.h("Upload-Offset"), Some("0"));

    let r = c.patch(&loc, 3, b"abc", &[]);
    assert_eq!(r.status, 409);
    let r = c.req(
        "PATCH",
        &loc,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/octet-stream"),
        ],
        b"abc",
    );
    assert_eq!(r.status, 415);
    let r = c.patch(&loc, 0, b"0123456789AB", &[]);
    assert_eq!(r.status, 400, "body beyond Upload-Length");
    // That closed the connection or discarded the body; use a fresh one.
    let mut c = Client::connect(&env);
    let r = c.patch(&loc, 0, b"abc", &[("Upload-Checksum", "md5 AAAA")]);
    assert_eq!(r.status, 400);
    assert_eq!(c.head("/files/0123").status, 404);
    assert_eq!(c.patch("/files/0123", 0, b"x", &[]).status, 404);
    assert_eq!(c.create(1001, None).status, 413);
    assert_eq!(
        c.req("POST", "/files/", &[("Tus-Resumable", "1.0.0")], b"")
            .status,
        400
    );
    assert_eq!(
        c.req("GET", "/nothing", &[("Tus-Resumable", "1.0.0")], b"")
            .status,
        404
    );
    assert_eq!(c.head(&loc).h("Upload-Offset"), Some("0"));
    assert_eq!(env.server.upload_bytes(&id_of(&loc)).unwrap(), b"");
}

#[test]
fn checksum_mismatch_is_460_and_rolls_back() {
    let env = env();
    let mut c = Client::connect(&env);
    let loc = path_of(c.create(8, None).h("Location").unwrap());
    let r = c.patch(&loc, 0, b"abcd", &[]);
    assert_eq!(r.status, 204);
    let wrong = format!("sha256 {}", sha256_b64(b"nope"));
    let r = c.patch(&loc, 4, b"efgh", &[("Upload-Checksum", &wrong)]);
    assert_eq!(r.status, 460);
    assert_eq!(c.head(&loc).h("Upload-Offset"), Some("4"));
    let id = id_of(&loc);
    assert_eq!(env.server.upload_bytes(&id).unwrap(), b"abcd");
    let right = format!("sha256 {}", sha256_b64(b"efgh"));
    let r = c.patch(&loc, 4, b"efgh", &[("Upload-Checksum", &right)]);
    assert_eq!(r.status, 204);
    assert_eq!(env.server.upload_bytes(&id).unwrap(), b"abcdefgh");
    assert!(env.server.upload(&id).unwrap().complete);
}

#[test]
fn drop_after_body_bytes_keeps_partial_data() {
    let env = env();
    let payload = data(50_000);
    let mut c = Client::connect(&env);
    let loc = path_of(c.create(payload.len() as u64, None).h("Location").unwrap());
    env.server.push_fault(Fault::DropAfterBodyBytes(12_345));
    // A HEAD doesn't consume it.
    assert_eq!(c.head(&loc).status, 200);
    assert_eq!(env.server.pending_faults(), 1);
    c.send_head(
        "PATCH",
        &loc,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Content-Length", "50000"),
        ],
    );
    let _ = c.send(&payload);
    assert!(
        c.read_response(false).is_err(),
        "no answer, connection dropped"
    );
    assert_eq!(env.server.pending_faults(), 0);

    let mut c = Client::connect(&env);
    let r = c.head(&loc);
    assert_eq!(r.h("Upload-Offset"), Some("12345"));
    let id = id_of(&loc);
    assert_eq!(env.server.upload_bytes(&id).unwrap(), &payload[..12_345]);
    let r = c.patch(&loc, 12_345, &payload[12_345..], &[]);
    assert_eq!(r.status, 204);
    assert_eq!(env.server.upload_bytes(&id).unwrap(), payload);
    assert_eq!(env.server.stats().uploads_completed, 1);
}

#[test]
fn location_override_and_gone() {
    let env = env();
    let mut c = Client::connect(&env);
    env.server.push_fault(Fault::LocationOverride(
        "https://elsewhere.sg.test/files/x".into(),
    ));
    let r = c.create(5, None);
    assert_eq!(r.status, 201);
    assert_eq!(r.h("Location"), Some("https://elsewhere.sg.test/files/x"));
    let ups = env.server.uploads();
    assert_eq!(ups.len(), 1);
    let loc = format!("/files/{}", ups[0].id);
    assert_eq!(c.head(&loc).status, 200);

    env.server.push_fault(Fault::Gone);
    assert_eq!(c.head(&loc).status, 404);
    assert_eq!(c.head(&loc).status, 404, "the upload stays forgotten");
    assert_eq!(c.patch(&loc, 0, b"abcde", &[]).status, 404);
    assert!(env.server.uploads()[0].forgotten);
    assert_eq!(env.server.pending_faults(), 0);
}

#[test]
fn an_idempotency_key_returns_the_upload_it_made() {
    let env = env();
    let mut c = Client::connect(&env);
    let post = |c: &mut Client, len: u64, key: &str| {
        let r = c.req(
            "POST",
            "/files/",
            &[
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Length", &len.to_string()),
                ("Idempotency-Key", &format!("\"{key}\"")),
            ],
            b"",
        );
        (
            r.status,
            r.h("Location").map(str::to_string),
            r.h("Upload-Offset").map(str::to_string),
        )
    };
    let (status, loc, _) = post(&mut c, 10, "k-42");
    assert_eq!(status, 201);
    let loc = loc.unwrap();
    assert_eq!(c.patch(&path_of(&loc), 0, b"01234", &[]).status, 204);
    // The same key again: the same upload, at its offset.
    assert_eq!(
        post(&mut c, 10, "k-42"),
        (201, Some(loc.clone()), Some("5".into()))
    );
    // Another key: a new upload. The same key with another length: refused.
    let (_, other, _) = post(&mut c, 10, "k-43");
    assert_ne!(other.as_deref(), Some(loc.as_str()));
    assert_eq!(post(&mut c, 11, "k-42").0, 422);
    assert_eq!(env.server.stats().uploads_created, 2);
    // A complete upload is returned too (the retried request's answer).
    assert_eq!(c.patch(&path_of(&loc), 5, b"56789", &[]).status, 204);
    assert_eq!(
        post(&mut c, 10, "k-42"),
        (201, Some(loc.clone()), Some("10".into()))
    );
    // Without the header, the `key` metadata is the key.
    let md = format!("key {}", b64(b"k-42"));
    assert_eq!(c.create(10, Some(&md)).h("Location"), Some(loc.as_str()));

    let env = env_with(|o| o.dedupe_by_key = false);
    let mut c = Client::connect(&env);
    let (_, a, _) = post(&mut c, 10, "k-42");
    let (_, b, _) = post(&mut c, 10, "k-42");
    assert_ne!(a, b);
}

#[test]
fn status_redirect_and_delay_faults() {
    let env = env();
    let mut c = Client::connect(&env);
    let loc = path_of(c.create(6, None).h("Location").unwrap());
    env.server.push_fault(Fault::Status {
        method: Some("PATCH"),
        status: 429,
        retry_after: Some(7),
    });
    env.server.push_fault(Fault::Redirect {
        method: Some("PATCH"),
        status: 307,
        location: "https://backup.sg.test/files/zz".into(),
    });
    // HEAD is not matched by PATCH-only faults.
    assert_eq!(c.head(&loc).status, 200);
    let r = c.patch(&loc, 0, b"abc", &[]);
    assert_eq!((r.status, r.h("Retry-After")), (429, Some("7")));
    let r = c.patch(&loc, 0, b"abc", &[]);
    assert_eq!(r.status, 307);
    assert_eq!(r.h("Location"), Some("https://backup.sg.test/files/zz"));
    assert_eq!(
        c.head(&loc).h("Upload-Offset"),
        Some("0"),
        "no state change"
    );

    env.server
        .push_fault(Fault::Delay(Duration::from_millis(300)));
    let t = Instant::now();
    assert_eq!(c.patch(&loc, 0, b"abc", &[]).status, 204);
    assert!(t.elapsed() >= Duration::from_millis(300));
    env.server.push_fault(Fault::Status {
        method: None,
        status: 503,
        retry_after: None,
    });
    assert_eq!(c.head(&loc).status, 503);
    assert_eq!(c.head(&loc).h("Upload-Offset"), Some("3"));
    assert_eq!(env.server.stats().connections, 1, "still keep-alive");
    env.server.push_fault(Fault::Gone);
    env.server.clear_faults();
    assert_eq!(env.server.pending_faults(), 0);
}

#[test]
fn restart_keeps_partial_patch_and_forget_loses_uploads() {
    let env = env();
    let mut c = Client::connect(&env);
    let loc = path_of(c.create(1_000_000, None).h("Location").unwrap());
    c.send_head(
        "PATCH",
        &loc,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Content-Length", "1000000"),
        ],
    );
    c.send(&data(200_000)).unwrap();
    let id = id_of(&loc);
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.server.upload(&id).unwrap().offset < 200_000 {
        assert!(Instant::now() < deadline, "server never stored the bytes");
        std::thread::sleep(Duration::from_millis(10));
    }
    env.server.restart();
    assert!(c.closed());
    let mut c = Client::connect(&env);
    assert_eq!(c.head(&loc).h("Upload-Offset"), Some("200000"));
    assert_eq!(env.server.upload_bytes(&id).unwrap(), data(200_000));

    env.server.forget_uploads();
    assert_eq!(c.head(&loc).status, 404);
    assert_eq!(c.patch(&loc, 200_000, b"x", &[]).status, 404);
}

#[test]
fn stalled_writer_is_cut_off_by_a_resuming_patch() {
    let env = env();
    let payload = data(100_000);
    let mut a = Client::connect(&env);
    let loc = path_of(a.create(100_000, None).h("Location").unwrap());
    a.send_head(
        "PATCH",
        &loc,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Content-Length", "100000"),
        ],
    );
    a.send(&payload[..30_000]).unwrap();
    let id = id_of(&loc);
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.server.upload(&id).unwrap().offset < 30_000 {
        assert!(Instant::now() < deadline, "stalled bytes were not stored");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A second client (say, after the app was killed) resumes from HEAD.
    let mut b = Client::connect(&env);
    assert_eq!(b.head(&loc).h("Upload-Offset"), Some("30000"));
    let r = b.patch(&loc, 30_000, &payload[30_000..], &[]);
    assert_eq!(r.status, 204, "{r:?}");
    assert!(a.closed(), "the stale request was cut off");
    assert_eq!(env.server.upload_bytes(&id).unwrap(), payload);
}

#[test]
fn chunked_body_beyond_length_is_rejected_whole() {
    let env = env();
    let mut c = Client::connect(&env);
    let loc = path_of(c.create(4, None).h("Location").unwrap());
    c.send_head(
        "PATCH",
        &loc,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Transfer-Encoding", "chunked"),
        ],
    );
    c.send(b"6\r\nabcdef\r\n0\r\n\r\n").unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 400);
    let info = env.server.uploads().remove(0);
    assert_eq!((info.offset, info.complete), (0, false));
    assert_eq!(env.server.upload_bytes(&info.id).unwrap(), b"");
    assert_eq!(env.server.stats().uploads_completed, 0);
}

#[test]
fn parallel_uploads() {
    let env = env();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let env = &env;
            s.spawn(move || {
                let payload: Vec<u8> = data(200_000).iter().map(|b| b ^ t).collect();
                let mut c = Client::connect(env);
                let loc = path_of(c.create(200_000, None).h("Location").unwrap());
                for (i, part) in payload.chunks(50_000).enumerate() {
                    let r = c.patch(&loc, (i * 50_000) as u64, part, &[]);
                    assert_eq!(r.status, 204);
                }
                assert_eq!(env.server.upload_bytes(&id_of(&loc)).unwrap(), payload);
            });
        }
    });
    let st = env.server.stats();
    assert_eq!((st.uploads_created, st.uploads_completed), (4, 4));
    assert_eq!(st.body_bytes_received, 800_000);
}

#[test]
fn termination_deletes() {
    let env = env();
    let mut c = Client::connect(&env);
    let loc = path_of(c.create(4, None).h("Location").unwrap());
    let file = env.server.uploads()[0].path.clone();
    assert!(file.exists());
    let r = c.req("DELETE", &loc, &[("Tus-Resumable", "1.0.0")], b"");
    assert_eq!(r.status, 204);
    assert!(!file.exists());
    assert_eq!(c.head(&loc).status, 404);
    let r = c.req("DELETE", &loc, &[("Tus-Resumable", "1.0.0")], b"");
    assert_eq!(r.status, 404);
    assert!(env.server.uploads().is_empty());
}

#[test]
fn expect_continue_and_connection_close() {
    let env = env();
    let mut c = Client::connect(&env);
    let loc = path_of(c.create(3, None).h("Location").unwrap());
    c.send_head(
        "PATCH",
        &loc,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Content-Length", "3"),
            ("Expect", "100-continue"),
            ("Connection", "close"),
        ],
    );
    // Wait for the interim answer before sending the body.
    while !c.buf.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n") {
        assert!(c.fill().unwrap() > 0);
    }
    c.send(b"xyz").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.h("Connection"), Some("close"));
    assert!(c.closed());
}

#[test]
fn malformed_request_gets_400_and_close() {
    let env = env();
    let mut c = Client::connect(&env);
    c.send(b"THIS IS NOT HTTP\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 400);
    assert!(c.closed());
}

#[test]
fn untrusted_client_fails_handshake_and_stop_joins() {
    let env = env();
    let other = TestCa::new("other CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(other.root_store())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(env.server.addr()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    assert!(tls.write_all(b"OPTIONS * HTTP/1.1\r\n\r\n").is_err() || tls.flush().is_err());
    // An idle keep-alive client must not keep stop() from returning.
    let _idle = Client::connect(&env);
    let t = Instant::now();
    env.server.stop();
    assert!(t.elapsed() < Duration::from_secs(5));
}
