//! Issue 22, point 5: a body limit in front of the server (a proxy's
//! `client_max_body_size`) costs one refused body per run, not one per chunk.
//! After a 413 the chunk size is halved before the next body, and the next
//! bodies ask `Expect: 100-continue` until one of the new size gets through:
//! a limit still below it is then answered before any body byte is sent. The
//! run's later items start at the size that got through.

use std::time::Duration;

use cloudsync_testkit::env::{uploads_of, AgentEnv};
use cloudsync_testkit::files::random_file;
use cloudsync_testkit::timeouts::within;

const MIB: u64 = 1024 * 1024;

fn limited_body(checksum: bool) {
    let e = AgentEnv::builder(&["in"])
        .setup(|s| {
            // Below the 1 MiB chunk and its half, above a quarter (the smallest chunk).
            s[0].max_body = Some(300_000);
            s[0].checksum = checksum;
        })
        .options(|o| assert_eq!(o.upload.chunk_size, MIB))
        .build();
    let (dir, world, agent) = (&e.dir, &e.world, &e.agent);
    let (a_size, b_size) = (3 * MIB + 5, 2 * MIB);
    let a = random_file(dir.path(), "a.bin", a_size, 1);
    let b = random_file(dir.path(), "b.bin", b_size, 2);
    let id_a = agent.enqueue(&a, "backup", 1).unwrap();
    let id_b = agent.enqueue(&b, "backup", 0).unwrap();
    let r = agent
        .run_once(Duration::from_secs(60), &mut |_| true)
        .unwrap();
    assert_eq!((r.uploaded, r.failed), (2, 0), "{r:?}");
    let server = &world.servers["in"];
    let st = server.stats();
    // 1 MiB refused (sent in full: nothing said it was too large yet), then
    // 512 KiB refused before its body, then 256 KiB bodies for both items.
    assert_eq!(st.too_large, 2, "{st:?}");
    for (id, path) in [(id_a, &a), (id_b, &b)] {
        let ups = uploads_of(world, "in", id);
        assert_eq!(ups.len(), 1, "{ups:?}");
        assert!(ups[0].complete);
        assert_eq!(
            server.upload_bytes(&ups[0].id).unwrap(),
            std::fs::read(path).unwrap()
        );
    }
    let read_a = uploads_of(world, "in", id_a)[0].body_bytes_received;
    let read_b = uploads_of(world, "in", id_b)[0].body_bytes_received;
    assert_eq!(
        read_a,
        a_size + MIB,
        "one refused body read in full, none after it"
    );
    assert_eq!(read_b, b_size, "the next item starts below the limit");
    assert_eq!(st.body_bytes_received, a_size + b_size + MIB);
    // The audit counts what went out, the refused body included.
    let audit = agent.audit(0, 10).unwrap();
    let sent = |id| {
        audit
            .iter()
            .find(|r| r.item_id == id)
            .and_then(|r| r.sent_bytes)
    };
    assert_eq!(sent(id_a), Some(a_size + MIB));
    assert_eq!(sent(id_b), Some(b_size));
}

#[test]
fn after_a_413_no_refused_body_is_sent_again_in_full() {
    within(Duration::from_secs(120), || limited_body(false));
}

#[test]
fn after_a_413_no_refused_body_is_sent_again_in_full_with_checksums() {
    within(Duration::from_secs(120), || limited_body(true));
}
