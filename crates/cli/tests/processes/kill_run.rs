//! Invariant N under SIGKILL: a child `cloudsync run` is killed mid-upload
//! again and again; after a final run every file arrived exactly once,
//! byte-identical, and the server never had to create a second upload for an
//! item (the stored URL is resumed; the crash window between POST and storing
//! the URL is closed by the idempotency key stored before the POST, which the
//! server matches). A second test kills a runner inside that window for sure.
//!
//! The audit's `sent_bytes` is honest through all of it (issue 22, point 4):
//! after k kills and network cuts, it differs from the body bytes the server
//! read for the items by at most k chunks in all.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cloudsync::Agent;
use cloudsync_devserver::world::{standard_regions, World};
use cloudsync_devserver::Fault;

/// A `cloudsync run` child with small chunks and a 1 s lease (a frozen
/// runner would be superseded after it; a killed one is taken over at once).
/// The firmware root comes from `root.json` beside the database
/// (`CLOUDSYNC_ROOT`, as an emulator harness exports it).
fn spawn_run(db: &Path, ca: &Path) -> Child {
    Command::new(cloudsync_testkit::cloudsync_exe())
        .env("CLOUDSYNC_ROOT", db.with_file_name("root.json"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "run",
            "--test-ca",
            ca.to_str().unwrap(),
        ])
        .args(["--chunk-size", "131072", "--lease-secs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
// Long: one scenario end to end; each step reads the state the previous one left.
fn killed_runners_never_lose_or_double_an_upload() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(&dir.path().join("servers"), standard_regions(&["in", "sg"])).unwrap();
    let db = dir.path().join("q.db");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, world.ca.cert_pem()).unwrap();
    std::fs::write(dir.path().join("root.json"), &world.root_envelope).unwrap();
    let mut files = Vec::new();
    {
        let agent =
            Agent::open_with(&db, Some(&world.root_envelope), world.agent_options()).unwrap();
        agent.install(&world.config_envelope(1)).unwrap();
        agent.set_account_country("IN").unwrap();
        for i in 0..4u8 {
            let p = dir.path().join(format!("f{i}"));
            let data: Vec<u8> = (0..(16 * 1024 * 1024 + i as usize * 7777))
                .map(|j| (j as u8) ^ i.wrapping_mul(31))
                .collect();
            std::fs::write(&p, data).unwrap();
            files.push((agent.enqueue(&p, "backup", 0).unwrap(), p));
        }
    }
    let run = || spawn_run(&db, &ca);
    let server = &world.servers["in"];
    let mut seed = 0x2545_f491_u32;
    let (mut kills, mut cuts_pushed) = (0u64, 0u64);
    for round in 0..15 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        if round % 3 == 1 {
            // A network cut too: the connection drops mid-body.
            server.push_fault(Fault::DropAfterBodyBytes(40_000 + u64::from(seed % 60_000)));
            cuts_pushed += 1;
        }
        let mut child = run();
        std::thread::sleep(Duration::from_millis(30 + u64::from(seed % 200)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        // No wait: the killed runner's lock died with it, so the next run
        // takes its live lease (and its `uploading` item) over at once.
    }
    assert!(
        kills >= 3,
        "the runner should have been killed mid-upload several times ({kills})"
    );
    // Finish: run until nothing is left (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = run().wait_with_output().unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not drain: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(1100));
    }
    let agent = Agent::open_with(&db, None, world.agent_options()).unwrap();
    let audit = agent.audit(0, 100).unwrap();
    assert_eq!(audit.len(), files.len(), "every item audited exactly once");
    // Honest bytes: each kill or cut leaves at most one body in flight whose
    // count may be off (counted before it went out, its tail never sent).
    let cuts = cuts_pushed - server.pending_faults() as u64;
    server.clear_faults();
    let chunk = 131_072u64;
    let (mut sent_all, mut read_all, mut off) = (0u64, 0u64, 0u64);
    for rec in &audit {
        let read: u64 = server
            .uploads()
            .iter()
            .filter(|u| u.metadata_value("item") == Some(rec.item_id.to_string().as_bytes()))
            .map(|u| u.body_bytes_received)
            .sum();
        let sent = rec.sent_bytes.expect("sent_bytes recorded");
        sent_all += sent;
        read_all += read;
        off += sent.abs_diff(read);
    }
    eprintln!(
        "{kills} kills, {cuts} cuts: the audit says {sent_all} bytes sent, the server read \
         {read_all} ({:.4}x); off by {off} in all",
        sent_all as f64 / read_all as f64
    );
    assert!(
        off <= (kills + cuts) * chunk,
        "audit {sent_all} vs server {read_all}: off by {off}, more than {} chunks",
        kills + cuts
    );
    for (id, path) in &files {
        let mine: Vec<_> = server
            .uploads()
            .into_iter()
            .filter(|u| u.metadata_value("item") == Some(id.to_string().as_bytes()))
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "item {id}: exactly one upload on the server, got {}",
            mine.len()
        );
        assert!(mine[0].complete);
        assert_eq!(
            server.upload_bytes(&mine[0].id).unwrap(),
            std::fs::read(path).unwrap(),
            "item {id}"
        );
    }
    assert_eq!(server.stats().uploads_created, files.len() as u64);
    let sg = world.servers["sg"].stats();
    assert_eq!((sg.connections, sg.app_bytes_received), (0, 0));
    // The status counters survived every kill: they equal a full count.
    let q = cloudsync::queue::Db::open(&db).unwrap();
    let (kept, counted) = (
        cloudsync::queue::ops::stats(q.conn()).unwrap(),
        cloudsync::queue::ops::stats_by_scan(q.conn()).unwrap(),
    );
    assert_eq!(kept, counted, "counters differ from a full count");
    assert_eq!(kept.done, files.len() as u64);
}

#[test]
fn a_runner_killed_after_the_server_created_the_upload_resumes_that_upload() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(&dir.path().join("servers"), standard_regions(&["in"])).unwrap();
    let db = dir.path().join("q.db");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, world.ca.cert_pem()).unwrap();
    std::fs::write(dir.path().join("root.json"), &world.root_envelope).unwrap();
    let p = dir.path().join("clip.mp4");
    let data: Vec<u8> = (0..(2 * 1024 * 1024 + 3)).map(|j| (j * 7) as u8).collect();
    std::fs::write(&p, &data).unwrap();
    let id = {
        let agent =
            Agent::open_with(&db, Some(&world.root_envelope), world.agent_options()).unwrap();
        agent.install(&world.config_envelope(1)).unwrap();
        agent.set_account_country("IN").unwrap();
        agent.enqueue(&p, "backup", 0).unwrap()
    };
    let server = &world.servers["in"];
    // The server creates the upload and holds its answer back; the runner dies then.
    server.push_fault(Fault::CreatedThenCut {
        linger: Duration::from_secs(30),
    });
    let mut child = spawn_run(&db, &ca);
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.stats().uploads_created == 0 {
        assert!(Instant::now() < deadline, "the POST never arrived");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the runner ended early"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL, inside the window
    child.wait().unwrap();
    let (key, url): (Option<String>, Option<String>) = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT upload_key, upload_url FROM items WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(url, None, "killed before the URL could be stored");
    let key = key.expect("the key was stored before the POST");
    // The next run takes the dead runner's lease over at once and finishes the item.
    let out = spawn_run(&db, &ca).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ups = server.uploads();
    assert_eq!(ups.len(), 1, "exactly one upload on the server: {ups:?}");
    assert_eq!(ups[0].metadata_value("key"), Some(key.as_bytes()));
    assert!(ups[0].complete);
    assert_eq!(server.upload_bytes(&ups[0].id).unwrap(), data);
    assert_eq!(server.stats().uploads_created, 1);
    let agent = Agent::open_with(&db, None, world.agent_options()).unwrap();
    assert_eq!(agent.audit(0, 10).unwrap().len(), 1);
}
