//! Regression tests from the adversarial review of issue 11: a writer through
//! a shared memory mapping (no metadata change) against a server without
//! checksums, a 417 to `Expect: 100-continue`, a cancel during a blocked TCP
//! connect and during the run's start, queued terminations at a run's end, a
//! pooled connection closed with close_notify, and the bytes-sent count at a
//! deadline. Real TLS dev servers on loopback; every test runs under a
//! watchdog (`within`). The mmap test calls libc's mmap directly (tests only:
//! the library itself keeps every `unsafe` in `src/ffi/`).

use cloudsync_testkit::net;
use cloudsync_testkit::proxy;

use std::time::{Duration, Instant};

use cloudsync::queue::ops;
use cloudsync::queue::Db;
use cloudsync::StopReason;
use cloudsync_devserver::world::RegionSetup;
use cloudsync_testkit::env::AgentEnv;
use cloudsync_testkit::files::{random_file, sha256_hex};
use cloudsync_testkit::timeouts::within;

const MIB: u64 = 1024 * 1024;

fn with(setup: impl FnOnce(&mut RegionSetup)) -> AgentEnv {
    AgentEnv::builder(&["in"])
        .setup(|s| setup(&mut s[0]))
        .build()
}

// ---------------------------------------------------------------------------
// A. Torn upload marked done: a writer through a shared mapping changes the
//    content without touching size, mtime, ctime, inode or device (a page
//    already dirty is written again: no page fault, no file_update_time).
// ---------------------------------------------------------------------------

mod sys {
    use std::ffi::c_void;
    extern "C" {
        pub fn mmap(
            addr: *mut c_void,
            len: usize,
            prot: i32,
            flags: i32,
            fd: i32,
            off: i64,
        ) -> *mut c_void;
        pub fn munmap(addr: *mut c_void, len: usize) -> i32;
    }
    pub const PROT_READ: i32 = 1;
    pub const PROT_WRITE: i32 = 2;
    pub const MAP_SHARED: i32 = 1;
}

#[test]
fn review_an_mmap_writer_tears_an_upload_that_is_then_marked_done() {
    within(Duration::from_secs(120), || {
        use std::os::fd::AsRawFd;
        // No checksum extension: only the fingerprint can tell.
        let e = with(|r| r.checksum = false);
        let size = 2 * MIB;
        let p = random_file(e.dir.path(), "app.mmkv", size, 21);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let base = unsafe {
            sys::mmap(
                std::ptr::null_mut(),
                size as usize,
                sys::PROT_READ | sys::PROT_WRITE,
                sys::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(base as isize, -1, "mmap failed");
        let map = base as usize;
        // The app has been writing through its mapping: every page is dirty.
        for off in (0..size as usize).step_by(4096) {
            unsafe {
                let b = (map + off) as *mut u8;
                b.write_volatile(b.read_volatile());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        let before = std::fs::read(&p).unwrap();
        let mut wrote = false;
        let r = e.run(&mut |pr| {
            // Chunk 1 (1 MiB) has been read for its PATCH: the app writes into chunk 2.
            if !wrote && pr.sent >= MIB {
                // One record in chunk 1 (already sent) and one in chunk 2 (not yet).
                for at in [500_000usize, 1_500_000] {
                    for (i, b) in b"TORN-BY-MMAP-WRITER".iter().enumerate() {
                        unsafe { ((map + at + i) as *mut u8).write_volatile(*b) };
                    }
                }
                wrote = true;
            }
            true
        });
        assert!(wrote);
        let after = std::fs::read(&p).unwrap();
        assert_ne!(before, after, "the content did change");
        unsafe { sys::munmap(base, size as usize) };
        if r.uploaded == 1 {
            let done: Vec<_> = e
                .uploads_of(id)
                .into_iter()
                .filter(|u| u.complete)
                .collect();
            let copy = e.server().upload_bytes(&done[0].id).unwrap();
            let audit = e.agent.audit(0, 10).unwrap();
            eprintln!(
                "uploaded; audit sha = old content? {}; server copy = old? {} new? {} sha(copy) == audit? {}",
                audit[0].sha256 == sha256_hex(&before),
                copy == before,
                copy == after,
                sha256_hex(&copy) == audit[0].sha256
            );
            assert_eq!(
                sha256_hex(&copy),
                audit[0].sha256,
                "TORN: item marked done, but the server's copy is not the content the audit records"
            );
        }
    });
}

// ---------------------------------------------------------------------------
// B. A middlebox/server that answers `Expect: 100-continue` with 417
//    (lighttpd 1.4 default, old Squid): 417 is read as a checksum mismatch,
//    Expect is sent again and again; a resumed upload can never finish.
// ---------------------------------------------------------------------------

#[test]
fn review_a_417_to_expect_never_lets_a_resumed_upload_finish() {
    within(Duration::from_secs(120), || {
        let e = with(|r| r.reject_expect = true);
        let p = random_file(e.dir.path(), "a.bin", 3 * MIB, 22);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        // A first run cut short (a cancel here; a dropped network is the same).
        let r = e.run(&mut |pr| pr.sent < MIB);
        assert_eq!(r.stopped, StopReason::Cancelled);
        let mut runs = 0;
        while e
            .agent
            .list(None, 0, 10)
            .unwrap()
            .iter()
            .any(|i| i.id == id && i.state.name() != "dead")
        {
            runs += 1;
            if runs > 8 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            let r = e.run(&mut |_| true);
            eprintln!("run {runs}: {r:?}");
        }
        let it = e
            .agent
            .list(None, 0, 10)
            .unwrap()
            .into_iter()
            .find(|i| i.id == id);
        eprintln!("item after {runs} runs: {it:?}");
        assert!(
            it.is_none(),
            "a server that refuses Expect with 417 must still get the file: {it:?}"
        );
    });
}

// ---------------------------------------------------------------------------
// C. Cancel during a TCP connect (SYNs unanswered) waits for connect_timeout.
// ---------------------------------------------------------------------------

#[test]
fn review_cancel_interrupts_a_blocked_tcp_connect() {
    within(Duration::from_secs(60), || {
        let n = net::net(net::Timeouts::defaults());
        let p = net::file(n.dir.path(), "a", 1000, 23);
        let _id = n.agent.enqueue(&p, "backup", 0).unwrap();
        let ip = std::net::IpAddr::V4(n.world.setups[net::REGION].addr);
        let hole = net::syn_black_hole(ip);
        n.agent
            .install(&n.world.sign_config(&net::proxied_config(
                &n.world,
                net::REGION,
                2,
                hole.port,
            )))
            .unwrap();
        let running = net::start_run(&n.agent, Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(700));
        let at = Instant::now();
        n.agent.cancel();
        let ran = running.wait(Duration::from_secs(40));
        let late = ran.ended.saturating_duration_since(at);
        eprintln!(
            "run_once returned {late:?} after cancel(): {:?}",
            ran.result
        );
        assert!(late <= Duration::from_secs(1), "cancel took {late:?}");
        drop(hole);
    });
}

// ---------------------------------------------------------------------------
// D. Queued terminations are dropped unsent when the run ends first.
// ---------------------------------------------------------------------------

#[test]
fn review_a_run_that_ends_at_once_does_not_drop_queued_terminations() {
    within(Duration::from_secs(120), || {
        let e = with(|_| {});
        let p = random_file(e.dir.path(), "a.bin", 3 * MIB, 24);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        let r = e.run(&mut |pr| pr.sent < MIB);
        assert_eq!(r.stopped, StopReason::Cancelled);
        assert_eq!(e.uploads_of(id).len(), 1);
        e.agent.remove(id).unwrap();
        let db = Db::open(&e.dir.path().join("q.db")).unwrap();
        assert_eq!(ops::terminations(db.conn(), "in", None).unwrap().len(), 1);
        // WorkManager gives the worker no time (or cancels it at once).
        let r = e.agent.run_once(Duration::ZERO, &mut |_| true).unwrap();
        eprintln!("run_once(0): {r:?}");
        let left = ops::terminations(db.conn(), "in", None).unwrap().len();
        let ups = e.uploads_of(id).len();
        eprintln!("terminations still queued: {left}; server uploads of the removed item: {ups}");
        // A later, normal run.
        e.run(&mut |_| true);
        assert_eq!(
            e.uploads_of(id).len(),
            0,
            "the removed item's partial upload was never terminated (queue now holds {} termination(s))",
            ops::terminations(db.conn(), "in", None).unwrap().len()
        );
    });
}

// ---------------------------------------------------------------------------
// E. The database busy at the deadline: run_once(3 s) takes ~5 s longer.
// ---------------------------------------------------------------------------

#[test]
fn review_a_pooled_connection_closed_with_close_notify_is_not_reused() {
    within(Duration::from_secs(120), || {
        let e = with(|r| r.idle_close = Some(Duration::from_millis(300)));
        let a = random_file(e.dir.path(), "a.bin", 200_000, 26);
        let b = random_file(e.dir.path(), "b.bin", 200_000, 27);
        let ida = e.agent.enqueue(&a, "backup", 0).unwrap();
        let idb = e.agent.enqueue(&b, "backup", 0).unwrap();
        let mut finals = 0;
        let r = e.run(&mut |pr| {
            if pr.item_id == ida && pr.sent == pr.total {
                finals += 1;
                if finals == 2 {
                    // After A's last PATCH was answered (finish()): the app's
                    // listener, or hashing a big next file, takes a moment.
                    std::thread::sleep(Duration::from_millis(1000));
                }
            }
            true
        });
        eprintln!("{r:?}");
        if r.failed > 0 {
            eprintln!("item b: {:?}", e.item(idb));
        }
        assert_eq!((r.uploaded, r.failed), (2, 0), "{r:?}");
    });
}

// ---------------------------------------------------------------------------
// G. Honest numbers: bytes sent in a chunk cut by the deadline are never
//    counted (the session's `sent` is dropped without being stored).
// ---------------------------------------------------------------------------

#[test]
fn review_bytes_sent_before_a_deadline_are_counted() {
    within(Duration::from_secs(120), || {
        let n = net::net(net::Timeouts::defaults());
        let size = 16 * MIB;
        let p = net::file(n.dir.path(), "a", size, 28);
        let id = n.agent.enqueue(&p, "backup", 0).unwrap();
        n.proxy.set_mode(proxy::Mode::Throttle {
            bytes_per_sec: 1_000_000,
        });
        let ran = net::run_watched(&n.agent, Duration::from_secs(3), Duration::from_secs(30));
        eprintln!("first run: {:?} after {:?}", ran.result, ran.took());
        let held = net::server_offset(&n.world, id).unwrap_or(0);
        eprintln!("server holds {held} after the deadline");
        net::finish_through_pass(&n, id, &p, "G");
        let body = n.world.servers[net::REGION].stats().body_bytes_received;
        let rec = n.agent.audit(0, 10).unwrap().pop().unwrap();
        eprintln!(
            "audit sent_bytes {:?}, bytes {}; the server read {body} body bytes",
            rec.sent_bytes, rec.bytes
        );
        assert!(
            rec.sent_bytes.unwrap() >= body,
            "the audit says {:?} bytes were sent, the server alone read {body}",
            rec.sent_bytes
        );
    });
}

// ---------------------------------------------------------------------------
// H. io_timeout bounds a whole 128 KiB output buffer, not a write that makes
//    no progress: a slow but steady link times out every PATCH.
// ---------------------------------------------------------------------------

#[test]
fn review_a_cancel_during_run_start_is_not_lost() {
    within(Duration::from_secs(60), || {
        let n = net::net(net::Timeouts::defaults());
        let p = net::file(n.dir.path(), "a", 1000, 30);
        let _ = n.agent.enqueue(&p, "backup", 0).unwrap();
        n.proxy.set_mode(proxy::Mode::BlackHole);
        // Widen the window deterministically: another writer holds the
        // database for 600 ms (without it the window is the lease
        // transaction's fsync, a few ms on a phone).
        let other = rusqlite::Connection::open(&n.db).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let running = net::start_run(&n.agent, Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(300));
        let at = Instant::now();
        n.agent.cancel(); // WorkManager's onStopped
        std::thread::sleep(Duration::from_millis(300));
        other.execute_batch("COMMIT").unwrap();
        let ran = running.wait(Duration::from_secs(40));
        let late = ran.ended.saturating_duration_since(at);
        eprintln!(
            "run_once returned {late:?} after cancel(): {:?}",
            ran.result
        );
        assert!(
            late <= Duration::from_secs(1),
            "cancel() was lost: the run returned {late:?} after it"
        );
    });
}

// ---------------------------------------------------------------------------
// J. A PATCH refused with 413 (a reverse proxy's body limit, nginx's default
//    client_max_body_size is 1 MiB; the client's chunk is 8 MiB) kills the
//    item at once: no smaller chunk is tried.
// ---------------------------------------------------------------------------

// The database locked by another connection at the deadline: the run's
// late writes wait 250 ms, not 5 s.
#[test]
fn review_a_busy_database_at_the_deadline_does_not_keep_the_run_late() {
    within(Duration::from_secs(90), || {
        let n = net::net(net::Timeouts::defaults());
        let p = net::file(n.dir.path(), "a", 16 * MIB, 25);
        let id = n.agent.enqueue(&p, "backup", 0).unwrap();
        n.proxy.set_mode(proxy::Mode::Throttle {
            bytes_per_sec: 1_000_000,
        });
        let running = net::start_run(&n.agent, Duration::from_secs(3));
        std::thread::sleep(Duration::from_millis(2000));
        // Another handle / process writes (e.g. a large enqueue_all, a rehome).
        let other = rusqlite::Connection::open(&n.db).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(7000));
            other.execute_batch("COMMIT").unwrap();
        });
        let ran = running.wait(Duration::from_secs(40));
        holder.join().unwrap();
        eprintln!("BUSY run_once(3 s) returned after {:?}", ran.took());
        assert!(
            ran.took() <= Duration::from_secs(4),
            "run_once(3 s) returned after {:?}",
            ran.took()
        );
        // Not an error: the run ended on time; what it could not write while
        // the file was locked waits for its lease to expire.
        let r = ran.result.as_ref().expect("the run ends with a report");
        assert_eq!(r.stopped, StopReason::TimeUp, "{r:?}");
        let it = net::item(&n.agent, id);
        assert!(
            matches!(it.state.as_str(), "uploading" | "pending"),
            "{}",
            it.state
        );
    });
}

// A body limit in front of the server (nginx: 1 MiB by default) answers 413
// to a large PATCH: the chunk size halves and the upload goes on.
#[test]
fn review_a_413_on_patch_halves_the_chunk_and_the_upload_finishes() {
    within(Duration::from_secs(60), || {
        let e = with(|_| {});
        let p = random_file(e.dir.path(), "a.bin", 3 * MIB, 31);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        for _ in 0..2 {
            e.server().push_fault(cloudsync_devserver::Fault::Status {
                method: Some("PATCH"),
                status: 413,
                retry_after: None,
            });
        }
        let r = e.run(&mut |_| true);
        assert_eq!((r.uploaded, r.failed, r.dead), (1, 0, 0), "{r:?}");
        let ups = e.uploads_of(id);
        assert_eq!(ups.len(), 1);
        assert!(ups[0].complete);
        assert_eq!(
            e.server().upload_bytes(&ups[0].id).unwrap(),
            std::fs::read(&p).unwrap()
        );
    });
}
