//! Uploads against real tus servers on loopback over real TLS (the project's
//! fault-injecting devserver, one per region on its own 127.0.0.x address, a
//! throwaway CA made with rcgen). Every attack ends with zero bytes at the
//! wrong host — counted by the servers themselves — and a specific error kind.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudsync::{Agent, State, StopReason};
use cloudsync_devserver::world::{standard_regions, World};
use cloudsync_devserver::Fault;
use cloudsync_testkit::env::{item, AgentEnv};
use cloudsync_testkit::files::random_file;
use cloudsync_testkit::trust::untouched;

const MIB: u64 = 1024 * 1024;

fn run(agent: &Agent) -> cloudsync::RunReport {
    agent
        .run_once(Duration::from_secs(60), &mut |_| true)
        .unwrap()
}

/// The server's stored copy of an item (found by the `item` metadata).
fn server_copy(world: &World, region: &str, item: i64) -> Option<Vec<u8>> {
    let s = &world.servers[region];
    let ups: Vec<_> = s
        .uploads()
        .into_iter()
        .filter(|u| u.metadata_value("item") == Some(item.to_string().as_bytes()))
        .collect();
    let done: Vec<_> = ups.iter().filter(|u| u.complete).collect();
    assert!(done.len() <= 1, "item {item} completed more than once");
    done.first().map(|u| s.upload_bytes(&u.id).unwrap())
}

#[test]
fn files_of_every_shape_arrive_byte_identical_in_the_approved_region_only() {
    let e = AgentEnv::new(&["in", "sg", "us"]);
    let sizes = [0, 1, MIB, 3 * MIB + 12345];
    let paths: Vec<PathBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| random_file(e.dir.path(), &format!("f{i}"), *s, i as u8))
        .collect();
    let ids = e.agent.enqueue_all(&paths, "backup", 0).unwrap();
    let mut last = 0;
    let r = e
        .agent
        .run_once(Duration::from_secs(60), &mut |p| {
            assert!(p.sent <= p.total);
            last = p.sent;
            true
        })
        .unwrap();
    assert_eq!(
        (r.uploaded, r.failed, r.remaining, r.stopped),
        (4, 0, 0, StopReason::Drained)
    );
    assert_eq!(r.bytes, sizes.iter().sum::<u64>());
    for (id, p) in ids.iter().zip(&paths) {
        assert_eq!(
            server_copy(&e.world, "in", *id).as_deref(),
            Some(std::fs::read(p).unwrap().as_slice()),
            "item {id}"
        );
    }
    let audit = e.agent.audit(0, 100).unwrap();
    assert_eq!(audit.len(), 4);
    for a in &audit {
        assert_eq!(
            (a.region.as_str(), a.host.clone(), a.peer_ip.as_deref()),
            ("in", e.world.host_port("in"), Some("127.0.0.2"))
        );
    }
    let sha = cloudsync::upload::hash_file(&paths[3]).unwrap();
    assert_eq!(audit[3].sha256, hex::encode(sha));
    assert_eq!(e.world.servers["in"].stats().uploads_created, 4);
    untouched(&e.world, "sg");
    untouched(&e.world, "us");
    assert_eq!(e.agent.stats().unwrap().done, 4);
}

#[test]
fn dropped_connection_resumes_the_same_upload() {
    let e = AgentEnv::new(&["in", "sg", "us"]);
    let p = random_file(e.dir.path(), "big", 5 * MIB, 1);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    let s = &e.world.servers["in"];
    s.push_fault(Fault::DropAfterBodyBytes(300_000));
    s.push_fault(Fault::DropAfterBodyBytes(10));
    let r = run(&e.agent);
    assert_eq!(r.uploaded, 1, "{r:?}");
    assert_eq!(
        server_copy(&e.world, "in", id).unwrap(),
        std::fs::read(&p).unwrap()
    );
    assert_eq!(s.stats().uploads_created, 1, "resumed, not re-created");
}

#[test]
fn server_errors_back_off_and_retry_after_is_honoured() {
    let e = AgentEnv::new(&["in", "sg", "us"]);
    let p = random_file(e.dir.path(), "a", 1000, 1);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    let s = &e.world.servers["in"];
    s.push_fault(Fault::Status {
        method: Some("POST"),
        status: 503,
        retry_after: None,
    });
    let r = run(&e.agent);
    // The 503 fails the attempt; with the test policy's millisecond backoff the same run may retry.
    assert!(r.failed >= 1);
    assert_eq!(r.uploaded, 0, "one attempt per item per run");
    std::thread::sleep(Duration::from_millis(20));
    let r = run(&e.agent);
    assert_eq!(r.uploaded, 1);
    let p2 = random_file(e.dir.path(), "b", 1000, 2);
    let id2 = e.agent.enqueue(&p2, "backup", 0).unwrap();
    s.push_fault(Fault::Status {
        method: Some("POST"),
        status: 429,
        retry_after: Some(30),
    });
    let before = cloudsync::queue::ops::now_ms();
    let r = run(&e.agent);
    assert_eq!((r.uploaded, r.failed, r.remaining), (0, 1, 1));
    let it = item(&e.agent, id2);
    assert_eq!(it.state.name(), "failed");
    assert!(
        it.next_attempt_at.expect("failed items are due again") >= before + 30_000,
        "Retry-After: 30 honoured"
    );
    assert!(
        it.last_error
            .as_deref()
            .unwrap()
            .starts_with("network: POST: HTTP 429"),
        "{:?}",
        it.last_error
    );
    assert_ne!(id, id2);
}

#[test]
fn permanent_refusal_marks_dead_with_reason() {
    let e = AgentEnv::new(&["in", "sg", "us"]);
    let p = random_file(e.dir.path(), "a", 1000, 1);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    e.world.servers["in"].push_fault(Fault::Status {
        method: Some("POST"),
        status: 413,
        retry_after: None,
    });
    let r = run(&e.agent);
    assert_eq!((r.dead, r.uploaded), (1, 0));
    let it = item(&e.agent, id);
    assert_eq!(
        (it.state.as_str(), it.last_error.as_deref()),
        (
            "dead",
            Some("rejected: server rejected the upload: HTTP 413")
        )
    );
    assert_eq!(e.agent.retry_dead().unwrap(), 1);
    assert_eq!(run(&e.agent).uploaded, 1);
}

#[test]
fn redirect_to_another_region_is_refused_before_connecting() {
    let e = AgentEnv::new(&["in", "sg", "us"]);
    let p = random_file(e.dir.path(), "a", 200_000, 1);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    let evil = format!("{}stolen", e.world.url("sg"));
    e.world.servers["in"].push_fault(Fault::Redirect {
        method: Some("PATCH"),
        status: 307,
        location: evil,
    });
    let r = run(&e.agent);
    assert_eq!(r.uploaded, 0, "{r:?}");
    let it = item(&e.agent, id);
    assert_eq!(
        it.last_error.as_deref(),
        Some("residency: refused: redirect refused")
    );
    untouched(&e.world, "sg");
    untouched(&e.world, "us");
}

#[test]
fn location_on_another_regions_host_is_refused() {
    let e = AgentEnv::new(&["in", "sg", "us"]);
    let p = random_file(e.dir.path(), "a", 200_000, 1);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    e.world.servers["in"].push_fault(Fault::LocationOverride(format!("{}abc", e.world.url("sg"))));
    let r = run(&e.agent);
    assert_eq!(r.uploaded, 0);
    let it = item(&e.agent, id);
    assert_eq!(
        it.last_error.as_deref(),
        Some("residency: refused: host is not in the region's allowed_hosts")
    );
    untouched(&e.world, "sg");
    // A relative Location on the right host is fine: the next attempt goes through.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(run(&e.agent).uploaded, 1);
}

#[test]
fn certificate_missing_the_pin_fails_the_handshake() {
    // Region `in` pins sg's key: in's real certificate matches no pin.
    let e = AgentEnv::builder(&["in", "sg"])
        .config(|w, cfg| {
            cfg["regions"]["in"]["pins"] = serde_json::json!([w.pins["sg"]]);
        })
        .build();
    let p = random_file(e.dir.path(), "a", 1000, 1);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    let r = run(&e.agent);
    assert_eq!(r.uploaded, 0);
    assert_eq!(
        item(&e.agent, id).last_error.as_deref(),
        Some("residency: refused: certificate chain matches no pin")
    );
    let st = e.world.servers["in"].stats();
    assert_eq!(
        st.app_bytes_received, 0,
        "not one HTTP byte after a failed pin: {st:?}"
    );
    untouched(&e.world, "sg");
}

#[test]
fn peer_outside_the_regions_networks_is_never_dialled() {
    let e = AgentEnv::builder(&["in", "sg"])
        .config(|_, cfg| {
            cfg["regions"]["in"]["networks"] = serde_json::json!(["10.0.0.0/8"]);
        })
        .build();
    let p = random_file(e.dir.path(), "a", 1000, 1);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    run(&e.agent);
    assert_eq!(
        item(&e.agent, id).last_error.as_deref(),
        Some("residency: refused: resolved address is outside the region's networks")
    );
    untouched(&e.world, "in");
    untouched(&e.world, "sg");
}

#[test]
fn region_change_holds_items_until_rehome() {
    let e = AgentEnv::new(&["in", "sg", "us"]);
    let p = random_file(e.dir.path(), "a", 50_000, 1);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    e.agent.set_account_country("SG").unwrap();
    let r = run(&e.agent);
    assert_eq!((r.uploaded, r.held, r.region.as_str()), (0, 1, "sg"));
    assert_eq!(item(&e.agent, id).state.name(), "held");
    untouched(&e.world, "in");
    // Only the sg endpoint was asked for capabilities? No: nothing due means no request at all.
    untouched(&e.world, "sg");
    assert_eq!(e.agent.rehome().unwrap(), 1);
    let r = run(&e.agent);
    assert_eq!(r.uploaded, 1);
    assert_eq!(e.agent.audit(0, 10).unwrap()[0].region, "sg");
    untouched(&e.world, "in");
    assert!(server_copy(&e.world, "sg", id).is_some());
}

#[test]
fn gone_uploads_and_changed_sources_start_over_without_torn_bytes() {
    let e = AgentEnv::new(&["in", "sg", "us"]);
    let p = random_file(e.dir.path(), "a", 3 * MIB, 1);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    let s = &e.world.servers["in"];
    // First attempt: cancel after the first chunk lands.
    let r = e
        .agent
        .run_once(Duration::from_secs(60), &mut |p| p.sent < MIB)
        .unwrap();
    assert_eq!(r.stopped, StopReason::Cancelled);
    let it = item(&e.agent, id);
    assert_eq!(
        it.state.name(),
        "pending",
        "cancel returns the item, it does not fail it"
    );
    assert!(it.confirmed_offset >= MIB);
    // The source changes (same size, new bytes): the upload must restart with the new content.
    std::thread::sleep(Duration::from_millis(10));
    let p = random_file(e.dir.path(), "a", 3 * MIB, 9);
    let r = run(&e.agent);
    assert_eq!(r.uploaded, 1, "{r:?}");
    assert_eq!(
        server_copy(&e.world, "in", id).unwrap(),
        std::fs::read(&p).unwrap()
    );
    // Gone: the server forgets an in-progress upload; a fresh one is created.
    let p2 = random_file(e.dir.path(), "b", 2 * MIB, 3);
    let id2 = e.agent.enqueue(&p2, "backup", 0).unwrap();
    e.agent
        .run_once(Duration::from_secs(60), &mut |p| p.sent < MIB)
        .unwrap();
    s.forget_uploads();
    let created = s.stats().uploads_created;
    assert_eq!(run(&e.agent).uploaded, 1);
    assert_eq!(s.stats().uploads_created, created + 1);
    assert_eq!(
        server_copy(&e.world, "in", id2).unwrap(),
        std::fs::read(&p2).unwrap()
    );
}

#[test]
fn servers_without_checksum_or_with_relative_locations_work() {
    let e = AgentEnv::builder(&["in", "sg"])
        .setup(|s| {
            s[0].checksum = false;
            s[0].termination = false;
            s[0].relative_location = true;
        })
        .build();
    let p = random_file(e.dir.path(), "a", 2 * MIB + 1, 1);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    assert_eq!(run(&e.agent).uploaded, 1);
    assert_eq!(
        server_copy(&e.world, "in", id).unwrap(),
        std::fs::read(&p).unwrap()
    );
}

#[test]
fn cancel_from_another_thread_stops_a_blocked_run() {
    let e = AgentEnv::new(&["in", "sg", "us"]);
    let p = random_file(e.dir.path(), "a", 1000, 1);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    e.world.servers["in"].push_fault(Fault::Delay(Duration::from_secs(3)));
    let agent = Arc::new(e.agent);
    let a2 = agent.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        a2.cancel();
    });
    let start = Instant::now();
    let r = agent
        .run_once(Duration::from_secs(60), &mut |_| true)
        .unwrap();
    t.join().unwrap();
    // The blocked request ends when the server answers (3 s), then the run stops without another request.
    assert_eq!(r.stopped, StopReason::Cancelled, "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(20));
    assert_eq!(item(&agent, id).state.name(), "pending");
}

#[test]
fn a_second_runner_is_busy() {
    let e = AgentEnv::new(&["in", "sg", "us"]);
    let p = random_file(e.dir.path(), "a", 1000, 1);
    e.agent.enqueue(&p, "backup", 0).unwrap();
    e.world.servers["in"].push_fault(Fault::Delay(Duration::from_millis(1500)));
    let other = Agent::open_with(
        e.dir.path().join("q.db"),
        Some(&e.world.root_envelope),
        e.world.agent_options(),
    )
    .unwrap();
    let t = std::thread::spawn(move || other_run(other));
    std::thread::sleep(Duration::from_millis(300));
    let r = e.agent.run_once(Duration::from_secs(60), &mut |_| true);
    let other_result = t.join().unwrap();
    // Exactly one of the two runs got the lease.
    let busy = [r.as_ref().err().map(|e| e.kind()), other_result.err()];
    assert_eq!(
        busy.iter()
            .filter(|k| **k == Some(cloudsync::ErrorKind::Busy))
            .count(),
        1,
        "{busy:?}"
    );
}

fn other_run(a: Agent) -> Result<cloudsync::RunReport, cloudsync::ErrorKind> {
    a.run_once(Duration::from_secs(60), &mut |_| true)
        .map_err(|e| e.kind())
}

#[test]
fn no_config_or_no_region_fails_closed_and_enqueue_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(&dir.path().join("s"), standard_regions(&["in"])).unwrap();
    let agent = Agent::open_with(
        dir.path().join("q.db"),
        Some(&world.root_envelope),
        world.agent_options(),
    )
    .unwrap();
    let p = random_file(dir.path(), "a", 10, 1);
    let id = agent.enqueue(&p, "backup", 0).unwrap();
    assert_eq!(
        agent
            .run_once(Duration::from_secs(5), &mut |_| true)
            .unwrap_err()
            .kind(),
        cloudsync::ErrorKind::NoConfig
    );
    let mut cfg = world.config_json(1);
    cfg["countries"].as_object_mut().unwrap().remove("*");
    agent.install(&world.sign_config(&cfg)).unwrap();
    agent.set_account_country("FR").unwrap();
    assert_eq!(
        agent
            .run_once(Duration::from_secs(5), &mut |_| true)
            .unwrap_err()
            .kind(),
        cloudsync::ErrorKind::NoRegion
    );
    untouched(&world, "in");
    agent.set_account_country("IN").unwrap();
    assert_eq!(
        agent
            .run_once(Duration::from_secs(5), &mut |_| true)
            .unwrap()
            .uploaded,
        1
    );
    assert_eq!(
        agent.audit(0, 1).unwrap()[0].item_id,
        id,
        "stamped at the first run that had a region"
    );
    let _ = State::Done;
}

#[test]
fn a_region_change_mid_upload_stops_the_bytes_at_once() {
    let e = AgentEnv::new(&["in", "sg", "us"]);
    let p = random_file(e.dir.path(), "a", 6 * MIB, 1);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    let agent = &e.agent;
    let mut switched_at = None;
    let r = agent
        .run_once(Duration::from_secs(60), &mut |p| {
            if p.sent >= 2 * MIB && switched_at.is_none() {
                // The app moves the account while bytes flow (here: on the run thread).
                agent.set_account_country("SG").unwrap();
                switched_at = Some(p.sent);
            }
            true
        })
        .unwrap();
    assert_eq!(
        (r.stopped, r.uploaded),
        (StopReason::RegionChanged, 0),
        "{r:?}"
    );
    let in_body = e.world.servers["in"].stats().body_bytes_received;
    assert!(
        in_body < 6 * MIB,
        "the upload to the old region stopped: {in_body}"
    );
    untouched(&e.world, "sg");
    let r = run(&e.agent);
    assert_eq!((r.region.as_str(), r.held, r.uploaded), ("sg", 1, 0));
    assert_eq!(item(&e.agent, id).state.name(), "held");
    assert_eq!(
        e.world.servers["in"].stats().body_bytes_received,
        in_body,
        "nothing more to in"
    );
    untouched(&e.world, "sg");
}
