//! Issue 11, the client side of resuming: every upload finishes, none is torn,
//! and the numbers are honest. Real TLS tus servers on loopback (the project's
//! devserver, with the modes and faults that imitate other servers), real
//! SQLite files; the progress callback (called on the uploading thread after
//! each MiB and at the end of each chunk) acts "mid-upload".
//!
//! - A resume `HEAD` answered 400 (a server that wants a `filetype` field)
//!   starts a fresh upload and terminates the old one; `retry_dead` drops a
//!   dead item's stored URL; `Upload-Metadata` carries `filename` and
//!   `filetype`.
//! - A PATCH that races the server's lock of a cut request gets 409: the
//!   client re-reads the offset and goes on from it, re-sending nothing but
//!   what was in flight.
//! - A source overwritten, truncated or deleted mid-upload: `source_changes.rs`.
//! - A creation answered "already complete" is believed only after a HEAD.
//!
//! Every test runs under a watchdog.

use std::path::Path;
use std::time::{Duration, SystemTime};

use cloudsync::queue::ops::{self, ItemRow};
use cloudsync::queue::Db;
use cloudsync::StopReason;
use cloudsync_devserver::world::RegionSetup;
use cloudsync_devserver::Fault;
use cloudsync_testkit::env::AgentEnv;
use cloudsync_testkit::files::{random, random_file, sha256_hex};
use cloudsync_testkit::timeouts::within;

pub(super) const MIB: u64 = 1024 * 1024;

/// Region `in` set up by `setup`, plus `sg` (never contacted).
pub(super) fn with(setup: impl FnOnce(&mut RegionSetup)) -> AgentEnv {
    AgentEnv::builder(&["in", "sg"])
        .setup(|s| setup(&mut s[0]))
        .build()
}

/// What these tests read of a session, beyond the kit's.
pub(super) trait Session {
    fn row(&self, id: i64) -> ItemRow;
    fn copy_of(&self, id: i64) -> Vec<u8>;
    fn start_then_cancel(&self, id: i64) -> String;
}

impl Session for AgentEnv {
    /// The item's queue row, as the uploader sees it (upload URL included).
    fn row(&self, id: i64) -> ItemRow {
        let db = Db::open(&self.db).unwrap();
        ops::get(db.conn(), id).unwrap()
    }

    /// The one complete server copy of an item.
    fn copy_of(&self, id: i64) -> Vec<u8> {
        let done: Vec<_> = self
            .uploads_of(id)
            .into_iter()
            .filter(|u| u.complete)
            .collect();
        assert_eq!(done.len(), 1, "item {id}: {done:?}");
        self.server().upload_bytes(&done[0].id).unwrap()
    }

    /// Cancels a first run once a MiB is confirmed; returns the stored upload's id.
    fn start_then_cancel(&self, id: i64) -> String {
        let r = self.run(&mut |p| p.sent < MIB);
        assert_eq!(r.stopped, StopReason::Cancelled);
        let url = self.row(id).upload_url.expect("a session is stored");
        url.rsplit('/').next().unwrap().to_string()
    }
}

/// Writes `data` over the file in place and sets its mtime back, as a careless
/// (or malicious) writer would: size and mtime are what they were.
pub(super) fn overwrite_keeping_mtime(p: &Path, data: &[u8]) {
    let mtime: SystemTime = std::fs::metadata(p).unwrap().modified().unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    std::io::Write::write_all(&mut &f, data).unwrap();
    f.set_times(std::fs::FileTimes::new().set_modified(mtime))
        .unwrap();
}

#[test]
fn a_resume_head_answered_400_starts_a_fresh_upload_and_terminates_the_old_one() {
    within(Duration::from_secs(120), || {
        let e = with(|_| {});
        let p = random_file(e.dir.path(), "a.jpg", 3 * MIB, 1);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        let old = e.start_then_cancel(id);
        e.server().push_fault(Fault::Status {
            method: Some("HEAD"),
            status: 400,
            retry_after: None,
        });
        let r = e.run(&mut |_| true);
        assert_eq!((r.uploaded, r.failed, r.dead), (1, 0, 0), "{r:?}");
        assert_eq!(e.copy_of(id), std::fs::read(&p).unwrap());
        assert!(
            e.server().upload(&old).is_none(),
            "the old upload was terminated"
        );
        assert_eq!(e.server().stats().uploads_created, 2);
    });
}

#[test]
fn a_server_that_requires_filetype_gets_it_and_old_sessions_are_replaced() {
    within(Duration::from_secs(120), || {
        let e = with(|r| r.require_filetype = true);
        // Metadata like the common tus clients', besides our own fields.
        let photo = random_file(e.dir.path(), "IMG 1.JPG", 200_000, 1);
        let id = e.agent.enqueue(&photo, "backup", 0).unwrap();
        assert_eq!(e.run(&mut |_| true).uploaded, 1);
        let up = &e.uploads_of(id)[0];
        let md = |k: &str| up.metadata_value(k).map(<[u8]>::to_vec);
        assert_eq!(md("filename"), Some(b"IMG 1.JPG".to_vec()));
        assert_eq!(md("filetype"), Some(b"image/jpeg".to_vec()));
        let sha = sha256_hex(&std::fs::read(&photo).unwrap());
        assert_eq!(md("sha256"), Some(sha.into_bytes()));

        // A session an older client made without `filetype`: its HEAD gets 400.
        let clip = random_file(e.dir.path(), "clip.mp4", 2 * MIB + 5, 2);
        let id = e.agent.enqueue(&clip, "backup", 0).unwrap();
        let meta = ops::stat_source(&clip).unwrap();
        let print = ops::SourcePrint::of(&std::fs::metadata(&clip).unwrap());
        let url = e
            .server()
            .create_upload(
                meta.size,
                &[
                    ("filename", b"clip.mp4"),
                    ("item", id.to_string().as_bytes()),
                ],
            )
            .unwrap();
        let mut db = Db::open(&e.dir.path().join("q.db")).unwrap();
        db.write(|tx| ops::set_session(tx, id, Some((&url, &print)), 0, 0))
            .unwrap();
        let r = e.run(&mut |_| true);
        assert_eq!((r.uploaded, r.dead), (1, 0), "{r:?}");
        let ups = e.uploads_of(id);
        assert_eq!(ups.len(), 1, "the refused upload was terminated: {ups:?}");
        assert_eq!(ups[0].metadata_value("filetype"), Some(&b"video/mp4"[..]));
        assert_eq!(e.copy_of(id), std::fs::read(&clip).unwrap());
    });
}

#[test]
fn an_upload_lost_mid_way_starts_afresh_in_the_same_attempt() {
    within(Duration::from_secs(120), || {
        let e = with(|_| {});
        let p = random_file(e.dir.path(), "a.bin", 3 * MIB, 15);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        // The first PATCH finds the upload gone (404).
        e.server().push_fault(Fault::Gone);
        let r = e.run(&mut |_| true);
        assert_eq!((r.uploaded, r.failed), (1, 0), "{r:?}");
        assert_eq!(e.copy_of(id), std::fs::read(&p).unwrap());
        assert_eq!(e.server().stats().uploads_created, 2);
    });
}

#[test]
fn retry_dead_drops_the_stored_url_and_the_item_then_uploads() {
    within(Duration::from_secs(120), || {
        let e = with(|_| {});
        let p = random_file(e.dir.path(), "a.bin", 3 * MIB, 3);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        let old = e.start_then_cancel(id);
        // A permanent refusal of the stored upload kills the item, URL and all.
        e.server().push_fault(Fault::Status {
            method: Some("PATCH"),
            status: 400,
            retry_after: None,
        });
        let r = e.run(&mut |_| true);
        assert_eq!(r.dead, 1, "{r:?}");
        assert_eq!(e.item(id).state.name(), "dead");
        assert!(e.row(id).upload_url.is_some());

        assert_eq!(e.agent.retry_dead().unwrap(), 1);
        let row = e.row(id);
        assert_eq!(
            (row.upload_url, row.upload_key, row.upload_print),
            (None, None, None)
        );
        assert_eq!(row.confirmed_offset, 0);
        let r = e.run(&mut |_| true);
        assert_eq!((r.uploaded, r.failed), (1, 0), "{r:?}");
        assert_eq!(e.copy_of(id), std::fs::read(&p).unwrap());
        assert!(
            e.server().upload(&old).is_none(),
            "the old upload was terminated"
        );
        assert_eq!(e.server().stats().uploads_created, 2);
    });
}

/// A cut whose request the server keeps reading (and holding the lock for) a
/// moment longer: the next PATCH races it and gets 409.
fn racing_patch_resumes_from_the_servers_offset(conflict_while_locked: bool) {
    let e = with(|r| r.conflict_while_locked = conflict_while_locked);
    let size = 6 * MIB;
    let p = random_file(e.dir.path(), "a.bin", size, 4);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    e.server().push_fault(Fault::CutAndLinger {
        after: 300_000,
        late: 200_000,
        linger: Duration::from_millis(700),
    });
    let r = e.run(&mut |_| true);
    assert_eq!((r.uploaded, r.failed), (1, 0), "{r:?}");
    assert_eq!(e.copy_of(id), std::fs::read(&p).unwrap());
    let st = e.server().stats();
    assert!(st.conflicts >= 1, "the resume raced the lock: {st:?}");
    assert_eq!(st.uploads_created, 1, "resumed, not re-created");
    // The 409s cost no body (the resuming PATCH asks before sending it): the
    // server read every byte once, nothing beyond one chunk in flight.
    let chunk = e.world.upload_options().chunk_size;
    assert!(
        st.body_bytes_received <= size + chunk,
        "{} body bytes for {size}",
        st.body_bytes_received
    );
    assert_eq!(st.body_bytes_received, size);
    let sent = e.agent.audit(0, 10).unwrap()[0].sent_bytes.unwrap();
    assert!(
        (size..=size + chunk).contains(&sent),
        "sent {sent} for {size}"
    );
}

#[test]
fn a_patch_racing_the_servers_lock_gets_409_and_resumes_from_head() {
    within(Duration::from_secs(120), || {
        racing_patch_resumes_from_the_servers_offset(true)
    });
}

#[test]
fn a_patch_that_takes_over_a_lingering_request_gets_409_and_resumes_from_head() {
    within(Duration::from_secs(120), || {
        racing_patch_resumes_from_the_servers_offset(false)
    });
}

#[test]
fn a_cut_resends_at_most_what_was_in_flight() {
    within(Duration::from_secs(120), || {
        let e = with(|_| {});
        let size = 5 * MIB + 77;
        let p = random_file(e.dir.path(), "a.bin", size, 5);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        e.server().push_fault(Fault::DropAfterBodyBytes(300_000));
        e.server().push_fault(Fault::DropAfterBodyBytes(MIB / 2));
        let r = e.run(&mut |_| true);
        assert_eq!((r.uploaded, r.failed), (1, 0), "{r:?}");
        assert_eq!(e.copy_of(id), std::fs::read(&p).unwrap());
        let st = e.server().stats();
        assert_eq!(st.body_bytes_received, size, "each byte stored once");
        assert_eq!(st.uploads_created, 1);
        // What the client sent beyond the file is what two cuts left in flight.
        let chunk = e.world.upload_options().chunk_size;
        let sent = e.agent.audit(0, 10).unwrap()[0].sent_bytes.unwrap();
        assert!(
            (size..=size + 2 * chunk).contains(&sent),
            "sent {sent} for {size}"
        );
    });
}

#[test]
fn the_bytes_sent_are_counted_across_runs() {
    within(Duration::from_secs(120), || {
        let e = with(|_| {});
        let size = 3 * MIB;
        let p = random_file(e.dir.path(), "a.bin", size, 14);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        e.start_then_cancel(id);
        assert_eq!(e.row(id).upload_sent, MIB, "the first run's bytes are kept");
        assert_eq!(e.run(&mut |_| true).uploaded, 1);
        let rec = &e.agent.audit(0, 10).unwrap()[0];
        assert_eq!((rec.bytes, rec.sent_bytes), (size, Some(size)));
    });
}

#[test]
// Long: one scenario end to end; each step reads the state the previous one left.
fn a_creation_answered_complete_is_believed_only_when_a_head_confirms_it() {
    within(Duration::from_secs(120), || {
        let e = with(|_| {});
        // One chunk (1 MiB here) to a server that verifies checksums: the file is read
        // whole before the creation request, so its hash goes with it and a
        // deduplicating server can know the content.
        let size = MIB - 4096;
        let a = random_file(e.dir.path(), "a.bin", size, 12);
        assert_eq!(
            e.agent
                .enqueue(&a, "backup", 0)
                .map(|_| e.run(&mut |_| true).uploaded)
                .unwrap(),
            1
        );
        // The same content under another name: a deduplicating server holds it.
        let b = e.dir.path().join("b.bin");
        std::fs::copy(&a, &b).unwrap();
        let id_b = e.agent.enqueue(&b, "backup", 0).unwrap();
        e.server().push_fault(Fault::ClaimComplete);
        let body_before = e.server().stats().body_bytes_received;
        let r = e.run(&mut |_| true);
        assert_eq!((r.uploaded, r.failed), (1, 0), "{r:?}");
        assert_eq!(
            e.server().stats().body_bytes_received,
            body_before,
            "no PATCH"
        );
        assert_eq!(e.copy_of(id_b), std::fs::read(&b).unwrap());
        let rec = e.agent.audit(0, 10).unwrap().pop().unwrap();
        assert_eq!(
            (rec.item_id, rec.bytes, rec.sent_bytes),
            (id_b, size, Some(0)),
            "confirmed, not sent"
        );

        // New content: the claim is false, the HEAD says so, the client uploads it all.
        let c = random_file(e.dir.path(), "c.bin", size, 13);
        let id_c = e.agent.enqueue(&c, "backup", 0).unwrap();
        e.server().push_fault(Fault::ClaimComplete);
        let body_before = e.server().stats().body_bytes_received;
        let r = e.run(&mut |_| true);
        assert_eq!((r.uploaded, r.failed), (1, 0), "{r:?}");
        assert_eq!(e.server().stats().body_bytes_received, body_before + size);
        assert_eq!(e.copy_of(id_c), std::fs::read(&c).unwrap());
        let rec = e.agent.audit(0, 10).unwrap().pop().unwrap();
        assert_eq!((rec.item_id, rec.sent_bytes), (id_c, Some(size)));

        // A larger file goes out before it is hashed: its creation request carries only a
        // new key, so a server that claims (and a HEAD that confirms) it holds all of it
        // holds bytes of unknown content. Refused, terminated, uploaded in full next run.
        let big = 3 * MIB;
        let d = random_file(e.dir.path(), "d.bin", big, 14);
        let id_d = e.agent.enqueue(&d, "backup", 0).unwrap();
        assert_eq!(e.run(&mut |_| true).uploaded, 1);
        let f = random_file(e.dir.path(), "f.bin", big, 15);
        let id_f = e.agent.enqueue(&f, "backup", 0).unwrap();
        e.server().push_fault(Fault::ClaimCompleteBlind);
        let r = e.run(&mut |_| true);
        assert_eq!((r.uploaded, r.failed), (0, 1), "{r:?}");
        assert_eq!(
            e.agent
                .item(id_f)
                .unwrap()
                .last_error_kind
                .map(|k| k.name()),
            Some("protocol")
        );
        assert!(
            e.uploads_of(id_f).is_empty(),
            "the false upload was terminated"
        );
        assert!(e
            .agent
            .audit(0, 10)
            .unwrap()
            .iter()
            .all(|a| a.item_id != id_f));
        // Its backoff passes; the next run uploads it all.
        let mut runs = 0;
        while e.uploads_of(id_f).iter().all(|u| !u.complete) && runs < 40 {
            runs += 1;
            std::thread::sleep(Duration::from_millis(100));
            e.run(&mut |_| true);
        }
        assert_eq!(e.copy_of(id_f), std::fs::read(&f).unwrap());
        assert_ne!(e.copy_of(id_d), e.copy_of(id_f));
    });
}

/// Runs until the item has a complete upload on the server (its backoff passes between runs).
fn run_until_uploaded(e: &AgentEnv, id: i64) {
    for _ in 0..40 {
        if e.uploads_of(id).iter().any(|u| u.complete) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
        e.run(&mut |_| true);
    }
    panic!("item {id} never finished");
}

#[test]
fn a_creation_whose_answer_is_lost_is_found_again_by_its_key() {
    within(Duration::from_secs(120), || {
        let e = with(|_| {});
        let p = random_file(e.dir.path(), "a.bin", 3 * MIB, 16);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        // The server creates the upload; the answer never arrives.
        e.server().push_fault(Fault::CreatedThenCut {
            linger: Duration::ZERO,
        });
        let r = e.run(&mut |_| true);
        assert_eq!((r.uploaded, r.failed), (0, 1), "{r:?}");
        let row = e.row(id);
        assert_eq!(row.upload_url, None, "the URL never arrived");
        let key = row.upload_key.expect("the key was stored before the POST");
        let ups = e.uploads_of(id);
        assert_eq!(ups.len(), 1);
        assert_eq!(ups[0].metadata_value("key"), Some(key.as_bytes()));
        run_until_uploaded(&e, id);
        assert_eq!(e.server().stats().uploads_created, 1, "found by its key");
        assert_eq!(e.copy_of(id), std::fs::read(&p).unwrap());
        let rec = e.agent.audit(0, 10).unwrap().pop().unwrap();
        assert_eq!(rec.sha256, sha256_hex(&std::fs::read(&p).unwrap()));

        // A file rewritten while its key waited gets a new key: the upload made for
        // the old version is never resumed with the new bytes.
        let q = random_file(e.dir.path(), "b.bin", 3 * MIB, 17);
        let id = e.agent.enqueue(&q, "backup", 0).unwrap();
        e.server().push_fault(Fault::CreatedThenCut {
            linger: Duration::ZERO,
        });
        assert_eq!(e.run(&mut |_| true).failed, 1);
        let old_key = e.row(id).upload_key.unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&q, random(3 * MIB, 18)).unwrap();
        run_until_uploaded(&e, id);
        let ups = e.uploads_of(id);
        assert_eq!(ups.len(), 2, "{ups:?}");
        let done: Vec<_> = ups.iter().filter(|u| u.complete).collect();
        assert_eq!(done.len(), 1);
        assert_ne!(done[0].metadata_value("key"), Some(old_key.as_bytes()));
        assert_eq!(e.copy_of(id), std::fs::read(&q).unwrap());
    });
}

#[test]
fn a_new_key_answered_with_bytes_already_there_is_refused_before_any_byte() {
    within(Duration::from_secs(120), || {
        // A server that took this creation for another upload (say one of an older
        // version of the file, matched by item and length): appending to it would tear.
        let e = with(|_| {});
        let p = random_file(e.dir.path(), "a.bin", 3 * MIB, 19);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        e.server().push_fault(Fault::AnswerOffset(MIB));
        let r = e.run(&mut |_| true);
        assert_eq!((r.uploaded, r.failed), (0, 1), "{r:?}");
        assert_eq!(
            e.agent.item(id).unwrap().last_error_kind.map(|k| k.name()),
            Some("protocol")
        );
        assert_eq!(e.server().stats().body_bytes_received, 0, "not one byte");
        assert!(e.uploads_of(id).is_empty(), "its upload was terminated");
        let row = e.row(id);
        assert_eq!((row.upload_url, row.upload_key), (None, None), "key spent");
        run_until_uploaded(&e, id);
        assert_eq!(e.copy_of(id), std::fs::read(&p).unwrap());
    });
}

#[test]
fn a_chunk_stored_whole_whose_answer_is_lost_resumes_in_the_same_attempt() {
    within(Duration::from_secs(120), || {
        for checksum in [false, true] {
            let e = with(|r| r.checksum = checksum);
            let size = 3 * MIB + 5;
            let p = random_file(e.dir.path(), "a.bin", size, 20);
            let id = e.agent.enqueue(&p, "backup", 0).unwrap();
            // The first chunk (1 MiB) is stored whole, then the answer is lost.
            e.server().push_fault(Fault::DropAfterBodyBytes(MIB));
            let r = e.run(&mut |_| true);
            assert_eq!((r.uploaded, r.failed), (1, 0), "checksum {checksum}: {r:?}");
            assert_eq!(e.copy_of(id), std::fs::read(&p).unwrap());
            let rec = e.agent.audit(0, 10).unwrap().pop().unwrap();
            assert_eq!(rec.sha256, sha256_hex(&std::fs::read(&p).unwrap()));
            assert_eq!(rec.sent_bytes, Some(size), "nothing sent twice");
        }
    });
}
