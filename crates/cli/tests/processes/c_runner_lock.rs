//! Issue 22 through the C ABI: `tests/c/runner_lock.c` (one `cs_run_once`
//! per process, built with gcc against `include/cloudsync.h` and this
//! build's `libcloudsync.so`, as `crates/cli/tests/processes/c_abi.rs` does). While a first
//! process is inside its run, a second one gets `CS_BUSY` with the message
//! saying what holds the queue and until when; once the first is SIGKILLed,
//! a third one, under the default 60 s lease, takes the item over at once
//! and uploads it.
//!
//! Every child has its own deadline (`common::Proc`) and an `alarm()`.

use cloudsync_testkit::process as common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cloudsync::Agent;
use cloudsync_devserver::world::{standard_regions, World};
use cloudsync_devserver::Fault;
use cloudsync_testkit::cc::{self, lib_dir};
use common::{Out, Proc};

fn build(dir: &Path) -> PathBuf {
    let exe = dir.join("runner_lock");
    cc::program("tests/c/runner_lock.c", &exe, &[]);
    exe
}

fn spawn(exe: &Path, dir: &Path, db: &Path, root: &Path) -> Proc {
    let mut c = Command::new(exe);
    c.env("LD_LIBRARY_PATH", lib_dir()).arg(db).arg(root);
    Proc::spawn(c, dir, "runner_lock (C)")
}

fn field<'a>(o: &'a Out, name: &str) -> &'a str {
    o.stdout
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} line: {o:?}"))
}

fn state(db: &Path) -> Option<String> {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT state FROM items", [], |r| r.get(0))
        .ok()
}

#[test]
fn c_runs_busy_while_alive_and_take_over_at_once_after_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exe = build(dir);
    let world = World::start(&dir.join("servers"), standard_regions(&["in"])).unwrap();
    let mut payload = world.config_json(1);
    payload["regions"]["in"]["ca_certs"] = serde_json::json!([world.ca.cert_pem()]);
    let db = dir.join("cloudsync.db");
    let root = dir.join("root.json");
    std::fs::write(&root, &world.root_envelope).unwrap();
    let data: Vec<u8> = (0..(1024 * 1024 + 17))
        .map(|j| (j * 7 % 253) as u8)
        .collect();
    let file = dir.join("photo.jpg");
    std::fs::write(&file, &data).unwrap();
    {
        let a = Agent::open(&db, &world.root_envelope).unwrap();
        a.install(&world.sign_config(&payload)).unwrap();
        a.set_account_country("IN").unwrap();
        a.enqueue(&file, "backup", 0).unwrap();
    }
    let server = &world.servers["in"];
    // The first run's first request stalls: it holds the queue, alive, for seconds.
    server.push_fault(Fault::Delay(Duration::from_secs(20)));

    let mut first = spawn(&exe, dir, &db, &root);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Claimed, and its first request is at the server (the stalled one): on a
    // loaded machine a kill before that would leave the stall to the third run.
    while state(&db).as_deref() != Some("uploading") || server.stats().requests == 0 {
        if let Some(o) = first.poll() {
            panic!("the first run ended early: {o:?}");
        }
        assert!(Instant::now() < deadline, "the first run never claimed");
        std::thread::sleep(Duration::from_millis(10));
    }

    let second = spawn(&exe, dir, &db, &root).wait(Duration::from_secs(30));
    assert_eq!(field(&second, "status"), "30 busy", "{second:?}");
    assert!(
        field(&second, "message")
            .starts_with("another runner holds the queue (a live process; its lease ends in "),
        "{second:?}"
    );
    assert!(first.poll().is_none(), "the first run is still going");

    let kill = Command::new("kill")
        .args(["-s", "KILL", &first.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let _ = first.wait(Duration::from_secs(10));
    assert_eq!(state(&db).as_deref(), Some("uploading"), "left uploading");

    let started = Instant::now();
    let third = spawn(&exe, dir, &db, &root).wait(Duration::from_secs(30));
    let took = started.elapsed();
    assert_eq!(field(&third, "status"), "0 ok", "{third:?}");
    assert_eq!(field(&third, "uploaded"), "1", "{third:?}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(state(&db), None, "the item left the queue");
    let ups = server.uploads();
    assert_eq!(ups.len(), 1, "{ups:?}");
    assert!(ups[0].complete);
    assert_eq!(server.upload_bytes(&ups[0].id).unwrap(), data);
    assert!(db.with_file_name("cloudsync.db.lock").exists());
}
