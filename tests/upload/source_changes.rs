//! Issue 11, a source that changes under its upload: overwritten in place
//! with its mtime restored (no checksum extension), truncated, shrinking, or
//! deleted mid-upload never ends as a torn copy on the server. Real TLS tus
//! servers on loopback, real SQLite files; every test runs under a watchdog.

use cloudsync_testkit::env::AgentEnv;
use cloudsync_testkit::files::{random, random_file, sha256_hex};
use cloudsync_testkit::timeouts::within;
use std::time::Duration;

use super::resume::{overwrite_keeping_mtime, with, Session, MIB};

#[test]
fn a_source_overwritten_in_place_with_its_mtime_restored_is_uploaded_anew() {
    within(Duration::from_secs(120), || {
        // No checksum extension: only the fingerprint (ctime) can tell.
        let e = with(|r| r.checksum = false);
        let p = random_file(e.dir.path(), "a.bin", 3 * MIB, 6);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        let new = random(3 * MIB, 7);
        let mut done = false;
        let r = e.run(&mut |pr| {
            if !done && pr.sent >= MIB {
                overwrite_keeping_mtime(&p, &new);
                done = true;
            }
            true
        });
        assert!(done);
        assert_eq!((r.uploaded, r.failed), (1, 0), "{r:?}");
        assert_eq!(e.copy_of(id), new, "the new content, not a mix");
        let audit = e.agent.audit(0, 10).unwrap();
        assert_eq!(audit[0].sha256, sha256_hex(&new));
        assert_eq!(e.uploads_of(id).len(), 1, "the torn upload was terminated");
        assert_eq!(e.server().stats().uploads_created, 2);
    });
}

fn shrinking(chunk: u64) -> AgentEnv {
    AgentEnv::builder(&["in"])
        .options(|o| o.upload.chunk_size = chunk)
        .build()
}

#[test]
fn a_source_truncated_mid_chunk_restarts_and_uploads_what_is_left() {
    within(Duration::from_secs(120), || {
        // One 4 MiB chunk: the body reader hits the new end of file mid-request.
        let e = shrinking(4 * MIB);
        let p = random_file(e.dir.path(), "a.bin", 3 * MIB, 8);
        let original = std::fs::read(&p).unwrap();
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        let mut cut = false;
        let r = e.run(&mut |pr| {
            if !cut && pr.sent >= MIB {
                let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.set_len(MIB + MIB / 2).unwrap();
                cut = true;
            }
            true
        });
        assert!(cut);
        assert_eq!((r.uploaded, r.failed), (1, 0), "{r:?}");
        assert_eq!(e.copy_of(id), &original[..(MIB + MIB / 2) as usize]);
        assert_eq!(e.uploads_of(id).len(), 1, "the short upload was terminated");
        assert_eq!(e.agent.audit(0, 10).unwrap()[0].bytes, MIB + MIB / 2);
    });
}

#[test]
fn a_source_that_keeps_shrinking_fails_the_attempt_with_source_changed() {
    within(Duration::from_secs(120), || {
        let e = shrinking(4 * MIB);
        let p = random_file(e.dir.path(), "a.bin", 3 * MIB, 9);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        let mut cuts = 0;
        let mut last_total = 0;
        let r = e.run(&mut |pr| {
            // Once per pass over the file.
            if pr.total != last_total && pr.sent >= MIB && pr.sent < pr.total {
                let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.set_len(pr.total - 256 * 1024).unwrap();
                last_total = pr.total;
                cuts += 1;
            }
            true
        });
        assert_eq!(cuts, 3, "one clean start and two restarts");
        assert_eq!((r.uploaded, r.failed, r.dead), (0, 1, 0), "{r:?}");
        let it = e.item(id);
        assert_eq!(it.state.name(), "failed", "backoff, not dead");
        assert_eq!(
            it.last_error.as_deref(),
            Some("source_changed: source file changed during upload")
        );
        assert!(e.uploads_of(id).is_empty(), "every torn upload terminated");
    });
}

#[test]
fn a_source_deleted_after_the_server_confirmed_everything_is_done() {
    within(Duration::from_secs(120), || {
        let e = with(|_| {});
        let p = random_file(e.dir.path(), "a.bin", 2 * MIB + 3, 10);
        let original = std::fs::read(&p).unwrap();
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        let mut deleted = false;
        let r = e.run(&mut |pr| {
            // The last byte has been read for the last PATCH: it will arrive whole.
            if !deleted && pr.sent == pr.total {
                std::fs::remove_file(&p).unwrap();
                deleted = true;
            }
            true
        });
        assert!(deleted);
        assert_eq!((r.uploaded, r.failed), (1, 0), "{r:?}");
        assert_eq!(e.copy_of(id), original);
        assert_eq!(
            e.agent.audit(0, 10).unwrap()[0].sha256,
            sha256_hex(&original)
        );
    });
}

#[test]
fn a_source_deleted_before_the_server_held_it_all_is_dead_and_its_upload_terminated() {
    within(Duration::from_secs(120), || {
        let e = with(|_| {});
        let p = random_file(e.dir.path(), "a.bin", 3 * MIB, 11);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        let mut deleted = false;
        let r = e.run(&mut |pr| {
            if !deleted && pr.sent >= MIB {
                std::fs::remove_file(&p).unwrap();
                deleted = true;
            }
            true
        });
        assert!(deleted);
        assert_eq!((r.uploaded, r.failed, r.dead), (0, 1, 1), "{r:?}");
        let it = e.item(id);
        assert_eq!(
            (it.state.as_str(), it.last_error.as_deref()),
            (
                "dead",
                Some("source_changed: source file deleted during upload")
            )
        );
        assert!(
            e.uploads_of(id).is_empty(),
            "the partial upload was terminated"
        );
    });
}

/// Some writers delete the file and put the new version in place a moment
/// later (older AtomicFile saves): that is a change, not a deletion.
#[test]
fn a_source_deleted_and_put_back_at_once_restarts_with_the_new_content() {
    within(Duration::from_secs(120), || {
        let e = with(|_| {});
        let p = random_file(e.dir.path(), "a.bin", 3 * MIB, 13);
        let id = e.agent.enqueue(&p, "backup", 0).unwrap();
        let newer = std::fs::read(random_file(e.dir.path(), "b.bin", 3 * MIB, 14)).unwrap();
        let mut writer = None;
        let r = e.run(&mut |pr| {
            if writer.is_none() && pr.sent >= MIB {
                std::fs::remove_file(&p).unwrap();
                let (p, newer) = (p.clone(), newer.clone());
                writer = Some(std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(100));
                    std::fs::write(&p, newer).unwrap();
                }));
            }
            true
        });
        writer.expect("the file was replaced").join().unwrap();
        assert_eq!((r.uploaded, r.failed, r.dead), (1, 0, 0), "{r:?}");
        let done: Vec<_> = e
            .uploads_of(id)
            .into_iter()
            .filter(|u| u.complete)
            .collect();
        assert_eq!(done.len(), 1);
        assert_eq!(e.server().upload_bytes(&done[0].id).unwrap(), newer);
    });
}
