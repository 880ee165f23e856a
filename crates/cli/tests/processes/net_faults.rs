//! Issue 11: every run ends on time and every upload finishes, whatever the
//! network and the server do. A fault-injecting TCP proxy of our own
//! (`common/proxy.rs`) sits between the uploader and the loopback tus server
//! (TLS end to end) and black-holes, stalls, swallows, trickles, throttles
//! or cuts the connection.
//!
//! - Timeouts that bite, one per phase: TCP connect (SYNs unanswered), TLS
//!   handshake, a write that makes no progress, a read that makes no
//!   progress, a request without a body that never completes (each with the
//!   timeout under test short and the others long, so the elapsed time says
//!   which one fired).
//! - A hard run deadline: `run_once(3 s)` and `run --max-seconds 3` return
//!   within 4 s with the library's long default timeouts.
//! - Cancel interrupts a blocked write or read within 1 s.
//! - Re-sent bytes after 1 and 7 cuts of a 24 MiB upload (`RESENT` lines),
//!   with the server told of each cut (FIN) or not (a zombie connection that
//!   keeps the upload locked, as when a phone drops off the network).
//!
//! After every fault the item is resumable (`pending`/`failed`, never
//! `uploading`) and a following run through a pass-through proxy completes
//! it with a byte-identical server copy. Every run is behind a watchdog.

use cloudsync_testkit::net;
use cloudsync_testkit::process;
use cloudsync_testkit::proxy;

use std::process::Command;
use std::time::{Duration, Instant};

use cloudsync::StopReason;
use net::{
    assert_resumable, file, finish_through_pass, net, run_watched, start_run, Timeouts, MIB, REGION,
};
use proxy::{CutStyle, Mode};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn assert_timed_out_failure(net: &net::Net, id: i64, what: &str) {
    let it = assert_resumable(net, id, what);
    assert_eq!(
        it.state.name(),
        "failed",
        "{what}: a timed-out attempt fails the item (it stays resumable): {it:?}"
    );
    let err = it.last_error.clone().unwrap_or_default();
    assert!(
        err.starts_with("network:") && err.contains("timed out"),
        "{what}: last_error should be a network timeout, got {err:?}"
    );
}

// ---------------------------------------------------------------------------
// 1. Timeouts that bite, one per phase.
// ---------------------------------------------------------------------------

#[test]
fn connect_timeout_bites_when_syns_go_unanswered() {
    let what = "SYNs unanswered, connect_timeout 1 s (handshake 5 s, io 5 s, request 10 s)";
    let n = net(Timeouts::secs(1.0, 5.0, 5.0, 10.0));
    let p = file(n.dir.path(), "a", 1000, 9);
    let id = n.agent.enqueue(&p, "backup", 0).unwrap();
    let ip = std::net::IpAddr::V4(n.world.setups[REGION].addr);
    let hole = net::syn_black_hole(ip);
    n.agent
        .install(
            &n.world
                .sign_config(&net::proxied_config(&n.world, REGION, 2, hole.port)),
        )
        .unwrap();
    let ran = run_watched(&n.agent, secs(30.0), secs(20.0));
    let r = ran.report().clone();
    eprintln!("{what}: run took {:?}", ran.took());
    assert!(
        ran.took() >= secs(0.9) && ran.took() <= secs(1.7),
        "{what}: the run took {:?}; want ≈ 1 s (0.9–1.7 s)",
        ran.took()
    );
    assert_eq!(
        (r.uploaded, r.failed, r.stopped),
        (0, 1, StopReason::Drained),
        "{what}: report {r:?}"
    );
    assert_timed_out_failure(&n, id, what);
    drop(hole);
    n.agent
        .install(
            &n.world
                .sign_config(&net::proxied_config(&n.world, REGION, 3, n.proxy.port())),
        )
        .unwrap();
    finish_through_pass(&n, id, &p, what);
}

#[test]
fn handshake_timeout_bites_when_the_server_never_answers_the_tls_handshake() {
    let what = "black hole, handshake_timeout 1 s (connect 5 s, io 5 s, request 10 s)";
    let n = net(Timeouts::secs(5.0, 1.0, 5.0, 10.0));
    let p = file(n.dir.path(), "a", 1000, 1);
    let id = n.agent.enqueue(&p, "backup", 0).unwrap();
    n.proxy.set_mode(Mode::BlackHole);
    let ran = run_watched(&n.agent, secs(30.0), secs(20.0));
    let r = ran.report().clone();
    let armed = n.proxy.armed();
    assert!(
        !armed.is_empty(),
        "{what}: the client never connected: {r:?}"
    );
    let g = n.proxy.given_up_after(ran.ended);
    eprintln!(
        "{what}: gave up {:?} after the accept; run took {:?}",
        g[0],
        ran.took()
    );
    assert!(
        g[0] >= secs(0.9) && g[0] <= secs(1.7),
        "{what}: the run gave up {:?} after the TCP connection was accepted; want ≈ 1 s (0.9–1.7 s)",
        g[0]
    );
    assert!(
        ran.took() < secs(4.0),
        "{what}: the run took {:?}; want < 4 s",
        ran.took()
    );
    assert_eq!(
        (r.uploaded, r.failed, r.stopped),
        (0, 1, StopReason::Drained),
        "{what}: report {r:?}"
    );
    assert_timed_out_failure(&n, id, what);
    finish_through_pass(&n, id, &p, what);
}

#[test]
fn io_timeout_bites_when_the_server_stops_reading_the_patch_body() {
    let what =
        "stall after 1 MiB of a PATCH, io_timeout 1 s (connect 5 s, handshake 5 s, request 10 s)";
    let n = net(Timeouts::secs(5.0, 5.0, 1.0, 10.0));
    let p = file(n.dir.path(), "a", 16 * MIB, 2);
    let id = n.agent.enqueue(&p, "backup", 0).unwrap();
    n.proxy.set_mode(Mode::StallAfter(MIB));
    let ran = run_watched(&n.agent, secs(30.0), secs(25.0));
    let r = ran.report().clone();
    let armed = n.proxy.armed();
    assert!(!armed.is_empty(), "{what}: no connection stalled: {r:?}");
    // Each stalled connection is given up when the client opens its next
    // one (an inline retry's HEAD) or the run returns.
    let g = n.proxy.given_up_after(ran.ended);
    eprintln!(
        "{what}: {} stalled connection(s), given up after {g:?}; run took {:?}",
        armed.len(),
        ran.took()
    );
    // ≈ io_timeout: not twice it (a write error swallowed once by the TLS
    // layer, then waited out again), not the run's deadline.
    for (i, d) in g.iter().enumerate() {
        assert!(
            *d >= secs(0.9) && *d <= secs(1.7),
            "{what}: stalled connection {} was given up {d:?} after the proxy stopped reading; \
             want ≈ 1 s (0.9–1.7 s); all: {g:?}",
            i + 1
        );
    }
    assert!(
        ran.took() < secs(10.0),
        "{what}: the run took {:?} for {} stalled connection(s); want < 10 s (run max 30 s)",
        ran.took(),
        armed.len()
    );
    assert_eq!(
        (r.uploaded, r.failed, r.stopped),
        (0, 1, StopReason::Drained),
        "{what}: report {r:?}"
    );
    assert_timed_out_failure(&n, id, what);
    finish_through_pass(&n, id, &p, what);
    assert_eq!(
        n.world.servers[REGION].stats().uploads_created,
        1,
        "{what}: the upload must be resumed, not created again"
    );
}

#[test]
fn io_timeout_bites_when_the_response_never_comes() {
    let what = "response swallowed, io_timeout 1 s (connect 5 s, handshake 5 s, request 10 s)";
    let n = net(Timeouts::secs(5.0, 5.0, 1.0, 10.0));
    let p = file(n.dir.path(), "a", 1000, 3);
    let id = n.agent.enqueue(&p, "backup", 0).unwrap();
    n.proxy.set_mode(Mode::Swallow { after: 0 });
    let ran = run_watched(&n.agent, secs(30.0), secs(25.0));
    let r = ran.report().clone();
    let armed = n.proxy.armed();
    assert!(
        !armed.is_empty(),
        "{what}: no request got through the handshake: {r:?}"
    );
    let g = n.proxy.given_up_after(ran.ended);
    eprintln!("{what}: given up after {g:?}; run took {:?}", ran.took());
    for (i, d) in g.iter().enumerate() {
        assert!(
            *d >= secs(0.9) && *d <= secs(1.7),
            "{what}: request {} was given up {d:?} after it was sent; want ≈ 1 s (0.9–1.7 s); all: {g:?}",
            i + 1
        );
    }
    assert!(
        ran.took() < secs(5.0),
        "{what}: the run took {:?}; want < 5 s",
        ran.took()
    );
    assert_eq!(
        (r.uploaded, r.failed, r.stopped),
        (0, 1, StopReason::Drained),
        "{what}: report {r:?}"
    );
    assert_timed_out_failure(&n, id, what);
    finish_through_pass(&n, id, &p, what);
}

/// `UploadOptions::request_timeout` bounds a request without a body
/// (OPTIONS, HEAD, POST, DELETE); a PATCH is bounded by the run's deadline
/// and `io_timeout` only. A one-byte-per-second answer makes progress every
/// second, so `io_timeout` (4 s) never fires: only `request_timeout` (2 s)
/// can end the first request, `OPTIONS`.
#[test]
fn request_timeout_bites_when_the_server_answers_one_byte_per_second() {
    let what = "slowloris 1 byte/s, request_timeout 2 s (connect 5 s, handshake 5 s, io 4 s)";
    let n = net(Timeouts::secs(5.0, 5.0, 4.0, 2.0));
    let p = file(n.dir.path(), "a", 1000, 4);
    let id = n.agent.enqueue(&p, "backup", 0).unwrap();
    n.proxy.set_mode(Mode::Slowloris {
        after: 0,
        every: secs(1.0),
    });
    let ran = run_watched(&n.agent, secs(15.0), secs(25.0));
    let r = ran.report().clone();
    let armed = n.proxy.armed();
    assert!(
        !armed.is_empty(),
        "{what}: no request got through the handshake: {r:?}"
    );
    let g = n.proxy.given_up_after(ran.ended);
    eprintln!(
        "{what}: OPTIONS given up {:?} after it was sent; run took {:?}",
        g[0],
        ran.took()
    );
    assert!(
        g[0] >= secs(1.5) && g[0] <= secs(2.7),
        "{what}: OPTIONS was given up {:?} after it was sent; want ≈ 2 s (1.5–2.7 s), \
         not the io_timeout (4 s) or the run's deadline (15 s)",
        g[0]
    );
    assert!(
        ran.took() < secs(4.0),
        "{what}: the run took {:?}; want < 4 s",
        ran.took()
    );
    assert_eq!(
        (r.uploaded, r.failed, r.stopped),
        (0, 1, StopReason::Drained),
        "{what}: report {r:?}"
    );
    assert_timed_out_failure(&n, id, what);
    finish_through_pass(&n, id, &p, what);
}

// ---------------------------------------------------------------------------
// 2. A hard run deadline, with the library's long default timeouts.
// ---------------------------------------------------------------------------

const MAX: Duration = Duration::from_secs(3);
/// The bound of issue 11: max + 1 s.
const MAX_PLUS: Duration = Duration::from_secs(4);
/// The watchdog of a deadline run: long enough to see how late a broken one is.
const DEADLINE_WATCHDOG: Duration = Duration::from_secs(45);

fn deadline_case(mode: Mode, size: u64, what: &str) {
    let n = net(Timeouts::defaults());
    let p = file(n.dir.path(), "a", size, 5);
    let id = n.agent.enqueue(&p, "backup", 0).unwrap();
    n.proxy.set_mode(mode);
    let ran = run_watched(&n.agent, MAX, DEADLINE_WATCHDOG);
    assert!(
        ran.took() <= MAX_PLUS,
        "{what}: run_once(max = 3 s) returned after {:?}; want ≤ 4 s (result {:?})",
        ran.took(),
        ran.result
    );
    let r = ran.report().clone();
    assert!(
        !n.proxy.armed().is_empty(),
        "{what}: the fault never applied (report {r:?})"
    );
    assert_eq!(r.stopped, StopReason::TimeUp, "{what}: report {r:?}");
    assert_eq!(r.uploaded, 0, "{what}: report {r:?}");
    let it = assert_resumable(&n, id, what);
    eprintln!(
        "{what}: returned after {:?}; item {} confirmed {} of {size}, server holds {:?}",
        ran.took(),
        it.state,
        it.confirmed_offset,
        net::server_offset(&n.world, id)
    );
    finish_through_pass(&n, id, &p, what);
    assert!(
        n.world.servers[REGION].stats().uploads_created <= 1,
        "{what}: the upload must be resumed, not created again ({:?})",
        n.world.servers[REGION].stats()
    );
}

#[test]
fn run_deadline_holds_against_a_black_hole() {
    deadline_case(
        Mode::BlackHole,
        1000,
        "black hole, run_once(3 s), default timeouts",
    );
}

#[test]
fn run_deadline_holds_against_a_slowloris_patch_response() {
    deadline_case(
        Mode::Slowloris {
            after: MIB,
            every: secs(1.0),
        },
        16 * MIB,
        "PATCH answered 1 byte/s, run_once(3 s), default timeouts",
    );
}

#[test]
fn run_deadline_holds_against_a_swallowed_patch_response() {
    deadline_case(
        Mode::Swallow { after: MIB },
        16 * MIB,
        "PATCH response swallowed, run_once(3 s), default timeouts",
    );
}

#[test]
fn run_deadline_holds_against_a_1mb_per_s_throttle() {
    deadline_case(
        Mode::Throttle {
            bytes_per_sec: 1_000_000,
        },
        16 * MIB,
        "16 MiB at 1 MB/s, run_once(3 s), default timeouts",
    );
}

#[test]
fn cli_run_max_seconds_holds_against_a_black_hole() {
    let what = "cloudsync run --max-seconds 3 against a black hole";
    let n = net(Timeouts::defaults());
    let p = file(n.dir.path(), "a", 1000, 6);
    let id = n.agent.enqueue(&p, "backup", 0).unwrap();
    let ca = n.dir.path().join("ca.pem");
    std::fs::write(&ca, n.world.ca.cert_pem()).unwrap();
    n.proxy.set_mode(Mode::BlackHole);
    let root = n.dir.path().join("root.json");
    std::fs::write(&root, &n.world.root_envelope).unwrap();
    let mut cmd = Command::new(process::cloudsync_exe());
    cmd.env("CLOUDSYNC_ROOT", &root)
        .args([
            "--db",
            process::s(&n.db),
            "run",
            "--max-seconds",
            "3",
            "--test-ca",
        ])
        .arg(&ca);
    let started = Instant::now();
    // The child's own watchdog: killed (and the test failed) after 30 s.
    let out = process::Proc::spawn(cmd, n.dir.path(), what).wait(secs(30.0));
    let took = started.elapsed();
    assert!(
        took <= MAX_PLUS,
        "{what}: the process exited after {took:?}; want ≤ 4 s\n{out:?}"
    );
    assert!(
        !n.proxy.armed().is_empty(),
        "{what}: the CLI never connected\n{out:?}"
    );
    assert!(
        out.stdout.contains("stopped time_up"),
        "{what}: want a run that stopped at its deadline\n{out:?}"
    );
    assert_eq!(out.code(), Some(1), "{what}: items remain, exit 1\n{out:?}");
    assert_resumable(&n, id, what);
    finish_through_pass(&n, id, &p, what);
}

// ---------------------------------------------------------------------------
// 3. Cancel interrupts blocked I/O.
// ---------------------------------------------------------------------------

fn cancel_case(mode: Mode, size: u64, what: &str) {
    let n = net(Timeouts::defaults());
    let p = file(n.dir.path(), "a", size, 7);
    let id = n.agent.enqueue(&p, "backup", 0).unwrap();
    n.proxy.set_mode(mode);
    let running = start_run(&n.agent, secs(60.0));
    assert!(
        n.proxy.wait_armed(1, secs(20.0)),
        "{what}: the fault never applied within 20 s"
    );
    // Let the client block in the socket call.
    std::thread::sleep(secs(0.5));
    let cancelled_at = Instant::now();
    n.agent.cancel();
    let ran = running.wait(secs(45.0));
    let late = ran.ended.saturating_duration_since(cancelled_at);
    eprintln!("{what}: run_once returned {late:?} after cancel()");
    assert!(
        late <= secs(1.0),
        "{what}: run_once returned {late:?} after cancel(); want ≤ 1 s (result {:?})",
        ran.result
    );
    let r = ran.report().clone();
    assert_eq!(r.stopped, StopReason::Cancelled, "{what}: report {r:?}");
    assert_eq!(r.uploaded, 0, "{what}: report {r:?}");
    let it = assert_resumable(&n, id, what);
    assert_eq!(
        it.state.name(),
        "pending",
        "{what}: a cancel returns the item to pending, it does not fail it: {it:?}"
    );
    finish_through_pass(&n, id, &p, what);
}

#[test]
fn cancel_interrupts_a_patch_blocked_in_write() {
    cancel_case(
        Mode::StallAfter(MIB),
        16 * MIB,
        "server stops reading mid-PATCH, default timeouts, cancel()",
    );
}

#[test]
fn cancel_interrupts_a_request_blocked_in_read() {
    cancel_case(
        Mode::Swallow { after: 0 },
        1000,
        "response swallowed, default timeouts, cancel()",
    );
}

// ---------------------------------------------------------------------------
// 4. Re-sent bytes after cuts (issue 11, item 7).
// ---------------------------------------------------------------------------

/// Uploads a 24 MiB file (8 MiB chunks) through a proxy that cuts the
/// connection at `cuts` evenly spaced points of the client's byte stream,
/// then measures what the client sent against the file size: body bytes the
/// server read (`ratio`, what is asserted) and everything the client put on
/// the wire, TLS, headers and other requests included (`wire_ratio`).
fn resent(cuts: u64, style: CutStyle, bound: f64) {
    let size = 24 * MIB;
    let what = format!("24 MiB, {cuts} cut(s), {style:?}");
    let n = net(Timeouts::secs(5.0, 5.0, 10.0, 20.0));
    let p = file(n.dir.path(), "a", size, 8);
    let id = n.agent.enqueue(&p, "backup", 0).unwrap();
    let step = size / (cuts + 1);
    let points: Vec<u64> = (1..=cuts).map(|k| k * step).collect();
    n.proxy.cut_at_totals(&points, style);
    let runs = finish_through_pass(&n, id, &p, &what);
    let ps = n.proxy.stats();
    let ss = n.world.servers[REGION].stats();
    let ratio = ss.body_bytes_received as f64 / size as f64;
    let wire = ps.client_to_server as f64 / size as f64;
    eprintln!(
        "RESENT cuts={cuts} style={style:?} ratio={ratio:.4} wire_ratio={wire:.4} body_bytes={} wire_bytes={} size={size} runs={runs} connections={} uploads_created={}",
        ss.body_bytes_received, ps.client_to_server, ps.connections, ss.uploads_created
    );
    assert_eq!(
        ps.cuts,
        cuts,
        "{what}: the proxy cut {} time(s), {} cut point(s) never reached",
        ps.cuts,
        n.proxy.pending_cuts()
    );
    assert!(
        ratio <= bound,
        "{what}: the server read {} body bytes for a {size}-byte file: ratio {ratio:.4} > {bound}",
        ss.body_bytes_received
    );
    // What left the client, including bodies a server may refuse unread;
    // TLS records, headers and the other requests cost well under 2 %.
    assert!(
        wire <= bound + 0.02,
        "{what}: the client put {} bytes on the wire for a {size}-byte file: wire_ratio {wire:.4} > {}",
        ps.client_to_server,
        bound + 0.02
    );
    assert_eq!(
        ss.uploads_created, 1,
        "{what}: every cut must resume the same upload"
    );
    let audit = n.agent.audit(0, 10).unwrap();
    assert_eq!(audit.len(), 1, "{what}: one audit row");
    assert_eq!(audit[0].bytes, size, "{what}: audit {:?}", audit[0]);
}

/// `Fin`: the server learns of the cut at once. `Zombie`: as when a phone
/// drops off the network, the server's side stays open and its PATCH keeps
/// the upload locked until the resumed request takes over.
#[test]
fn resent_bytes_after_one_cut_stay_within_5_percent() {
    resent(1, CutStyle::Fin, 1.05);
}

#[test]
fn resent_bytes_after_one_cut_with_a_zombie_server_side_stay_within_5_percent() {
    resent(1, CutStyle::Zombie, 1.05);
}

#[test]
fn resent_bytes_after_seven_cuts_stay_within_35_percent() {
    resent(7, CutStyle::Fin, 1.35);
}

#[test]
fn resent_bytes_after_seven_cuts_with_a_zombie_server_side_stay_within_35_percent() {
    resent(7, CutStyle::Zombie, 1.35);
}
