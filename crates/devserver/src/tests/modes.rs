//! The server modes and faults that imitate other servers: a required `filetype`, a false
//! "already complete", a cut that races the next PATCH for the upload's lock.

use std::time::{Duration, Instant};

use super::client::*;
use crate::Fault;

fn patch_head(c: &mut Client, loc: &str, offset: u64, len: usize, expect: bool) {
    let off = offset.to_string();
    let len = len.to_string();
    let mut h = vec![
        ("Tus-Resumable", "1.0.0"),
        ("Upload-Offset", off.as_str()),
        ("Content-Type", "application/offset+octet-stream"),
        ("Content-Length", len.as_str()),
    ];
    if expect {
        h.push(("Expect", "100-continue"));
    }
    c.send_head("PATCH", loc, &h);
}

#[test]
fn require_filetype_refuses_uploads_without_it() {
    let env = env_with(|o| o.require_filetype = true);
    let mut c = Client::connect(&env);
    let r = c.create(5, Some(&format!("filename {}", b64(b"a.jpg"))));
    assert_eq!(r.status, 400);
    let mut c = Client::connect(&env);
    let md = format!("filename {},filetype {}", b64(b"a.jpg"), b64(b"image/jpeg"));
    let loc = path_of(c.create(5, Some(&md)).h("Location").unwrap());
    assert_eq!(c.head(&loc).status, 200);
    assert_eq!(c.patch(&loc, 0, b"abcde", &[]).status, 204);
    // An upload an older client made without the field: HEAD and PATCH refused, DELETE works.
    let old = env
        .server
        .create_upload(5, &[("filename", b"b.jpg")])
        .unwrap();
    let old = path_of(&old);
    assert_eq!(c.head(&old).status, 400);
    let mut c = Client::connect(&env);
    assert_eq!(c.patch(&old, 0, b"abcde", &[]).status, 400);
    let mut c = Client::connect(&env);
    let r = c.req("DELETE", &old, &[("Tus-Resumable", "1.0.0")], b"");
    assert_eq!(r.status, 204);
}

#[test]
fn claim_complete_is_true_only_for_content_the_server_holds() {
    let env = env();
    let mut c = Client::connect(&env);
    let md = format!("item {},sha256 {}", b64(b"1"), b64(b"aaaa"));
    let first = path_of(c.create(5, Some(&md)).h("Location").unwrap());
    assert_eq!(c.patch(&first, 0, b"abcde", &[]).status, 204);
    // The same content again: the claim is true, the bytes are there.
    env.server.push_fault(Fault::ClaimComplete);
    let md2 = format!("item {},sha256 {}", b64(b"2"), b64(b"aaaa"));
    let r = c.create(5, Some(&md2));
    assert_eq!(r.h("Upload-Offset"), Some("5"));
    let twin = path_of(r.h("Location").unwrap());
    assert_eq!(c.head(&twin).h("Upload-Offset"), Some("5"));
    assert_eq!(env.server.upload_bytes(&id_of(&twin)).unwrap(), b"abcde");
    assert!(env.server.upload(&id_of(&twin)).unwrap().complete);
    // Unknown content: the claim is a lie, HEAD tells the truth.
    env.server.push_fault(Fault::ClaimComplete);
    let md3 = format!("item {},sha256 {}", b64(b"3"), b64(b"bbbb"));
    let r = c.create(5, Some(&md3));
    assert_eq!(r.h("Upload-Offset"), Some("5"));
    let liar = path_of(r.h("Location").unwrap());
    assert_eq!(c.head(&liar).h("Upload-Offset"), Some("0"));
    assert_eq!(env.server.pending_faults(), 0);
}

/// Starts a PATCH of `payload` on a fresh upload under a `CutAndLinger` fault and waits
/// until the client's connection is cut. Returns the upload path.
fn cut_and_linger(env: &Env, payload: &[u8], linger: Duration) -> String {
    let mut a = Client::connect(env);
    let loc = path_of(a.create(payload.len() as u64, None).h("Location").unwrap());
    env.server.push_fault(Fault::CutAndLinger {
        after: 30_000,
        late: 10_000,
        linger,
    });
    patch_head(&mut a, &loc, 0, payload.len(), false);
    let _ = a.send(payload);
    assert!(a.read_response(false).is_err(), "cut without an answer");
    loc
}

#[test]
fn a_patch_racing_a_lingering_cut_takes_the_lock_and_gets_409() {
    let env = env();
    let payload = data(100_000);
    let loc = cut_and_linger(&env, &payload, Duration::from_secs(20));
    let mut b = Client::connect(&env);
    assert_eq!(
        b.head(&loc).h("Upload-Offset"),
        Some("30000"),
        "late bytes not yet stored"
    );
    let t = Instant::now();
    let r = b.patch(&loc, 30_000, &payload[30_000..], &[]);
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.h("Upload-Offset"), Some("40000"));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the linger was cut short"
    );
    assert_eq!(env.server.stats().conflicts, 1);
    let mut b = Client::connect(&env);
    assert_eq!(b.patch(&loc, 40_000, &payload[40_000..], &[]).status, 204);
    assert_eq!(env.server.upload_bytes(&id_of(&loc)).unwrap(), payload);
}

#[test]
fn conflict_while_locked_answers_409_at_once_without_the_body() {
    let env = env_with(|o| o.conflict_while_locked = true);
    let payload = data(100_000);
    let linger = Duration::from_millis(1500);
    let loc = cut_and_linger(&env, &payload, linger);
    let mut b = Client::connect(&env);
    assert_eq!(b.head(&loc).h("Upload-Offset"), Some("30000"));
    let body_before = env.server.stats().body_bytes_received;
    // With Expect: 100-continue the refusal costs no body bytes.
    patch_head(&mut b, &loc, 30_000, payload.len() - 30_000, true);
    let r = b.read_response(false).unwrap();
    assert_eq!((r.status, r.h("Upload-Offset")), (409, Some("30000")));
    assert_eq!(env.server.stats().body_bytes_received, body_before);
    // Once the lock is let go the late bytes are there.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut c = Client::connect(&env);
    while c.head(&loc).h("Upload-Offset") != Some("40000") {
        assert!(
            Instant::now() < deadline,
            "the lingering request never let go"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.patch(&loc, 40_000, &payload[40_000..], &[]).status, 204);
    assert_eq!(env.server.upload_bytes(&id_of(&loc)).unwrap(), payload);
}
