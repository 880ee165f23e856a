//! Issue 10: trust state lives in the database, seen from two processes on
//! one file. A `cloudsync run` child process uploading to `in` must stop at
//! the next buffer when another process (the CLI) removes the region or moves
//! the account; items of the old region are `held` at once (no run needed);
//! a clock set back under `faketime` never revives an expired config; and a
//! firmware root that disagrees with the stored one is refused.
//!
//! Every child process has its own deadline: it is polled with `try_wait`,
//! killed on timeout and the test fails. Output goes to files (no pipe can
//! fill up and stall a child).

use cloudsync_testkit::process as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cloudsync::Agent;
use cloudsync_devserver::world::{standard_regions, World};
use cloudsync_devserver::Fault;
use common::{
    cli, cli_nodb, cloudsync_exe, count, fails_with, json, list, ok, s, status, Proc, RUN_LIMIT,
    SHORT,
};

const CHUNK: u64 = 65536;

// ---------------------------------------------------------------------------
// 1 + 2: a running child process stops when another process changes trust.
// ---------------------------------------------------------------------------

const FILES: usize = 8;

/// World with `in` and `sg`, db initialised in-process under IN, eight files
/// of ~2 MiB enqueued, the `in` server slowed down. Returns the item ids.
fn slow_world(dir: &Path) -> (World, PathBuf, PathBuf, Vec<i64>) {
    let world = World::start(&dir.join("servers"), standard_regions(&["in", "sg"])).unwrap();
    let db = dir.join("q.db");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, world.ca.cert_pem()).unwrap();
    std::fs::write(dir.join("root.json"), &world.root_envelope).unwrap();
    let mut ids = Vec::new();
    {
        let agent =
            Agent::open_with(&db, Some(&world.root_envelope), world.agent_options()).unwrap();
        agent.install(&world.config_envelope(1)).unwrap();
        agent.set_account_country("IN").unwrap();
        for i in 0..FILES {
            let p = dir.join(format!("f{i}.bin"));
            let data: Vec<u8> = (0..(2 * 1024 * 1024 + i * 4099))
                .map(|j| (j as u8) ^ (i as u8).wrapping_mul(37))
                .collect();
            std::fs::write(&p, data).unwrap();
            ids.push(agent.enqueue(&p, "backup", 0).unwrap());
        }
        assert_eq!(agent.stats().unwrap().pending, FILES as u64);
    }
    // Every request to `in` stalls 150 ms after its head: a file takes
    // seconds, so the second process lands mid-run.
    for _ in 0..2000 {
        world.servers["in"].push_fault(Fault::Delay(Duration::from_millis(150)));
    }
    (world, db, ca, ids)
}

fn spawn_runner(dir: &Path, db: &Path, ca: &Path) -> Proc {
    let mut c = Command::new(cloudsync_exe());
    common::anchor(&mut c, db);
    c.args(["--db", s(db), "run", "--test-ca", s(ca)]).args([
        "--chunk-size",
        &CHUNK.to_string(),
        "--max-seconds",
        "50",
    ]);
    Proc::spawn(c, dir, "cloudsync run")
}

/// Waits until the `in` server has received body bytes from the runner.
fn wait_for_body_bytes(world: &World, runner: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if world.servers["in"].stats().body_bytes_received > 0 {
            return;
        }
        if let Some(o) = runner.poll() {
            panic!("the runner exited before sending a byte: {o:?}");
        }
        assert!(
            Instant::now() < deadline,
            "no body bytes reached `in` within 30 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `second` (a trust change by another process) while the runner
/// uploads to `in`; then checks the runner stopped at once, nothing more went
/// to `in`, nothing at all to `sg`, and the rest is `held`.
fn stops_when_another_process_changes_trust(
    dir: &Path,
    world: &World,
    db: &Path,
    ca: &Path,
    ids: &[i64],
    second: &[&str],
) {
    let mut runner = spawn_runner(dir, db, ca);
    wait_for_body_bytes(world, &mut runner);

    let o = cli(dir, db, second);
    assert_eq!(o.code(), Some(0), "second process: {o:?}");
    let snap = world.servers["in"].stats();
    // The first upload is far from done: the change really lands mid-run.
    assert_eq!(snap.uploads_completed, 0, "{snap:?}");

    let r = runner.wait(RUN_LIMIT);
    let after = world.servers["in"].stats();
    assert!(
        after.requests <= snap.requests + 1,
        "requests to `in` after the change: {} (at most the one in flight)\nbefore {snap:?}\nafter {after:?}",
        after.requests - snap.requests
    );
    assert!(
        after.body_bytes_received <= snap.body_bytes_received + CHUNK,
        "more than the PATCH in flight reached `in` after the change: {} bytes",
        after.body_bytes_received - snap.body_bytes_received
    );
    assert_eq!(
        after.uploads_created, snap.uploads_created,
        "no new upload may be created on `in` after the change"
    );
    assert_eq!(after.uploads_completed, 0, "{after:?}");
    assert_eq!(r.code(), Some(0), "runner: {r:?}");
    assert!(
        r.stdout.starts_with("region in ") && r.stdout.contains("stopped region_changed"),
        "runner must report region_changed: {r:?}"
    );
    // Well before `--max-seconds` or a drained queue could end it.
    assert!(r.stdout.contains("uploaded 0 "), "{r:?}");

    // Nothing ever went to sg during this run.
    let by = world.bytes_by_region();
    assert_eq!(by["sg"], 0, "bytes at sg: {by:?}");
    assert_eq!(world.servers["sg"].stats().connections, 0);
    assert!(by["in"] > 0);

    // Everything not uploaded is held, stamped for `in`.
    let st = status(dir, db);
    assert_eq!(
        (
            count(&st, "held"),
            count(&st, "pending"),
            count(&st, "uploading"),
            count(&st, "failed"),
            count(&st, "dead"),
            count(&st, "done"),
        ),
        (FILES as u64, 0, 0, 0, 0, 0),
        "{st}"
    );
    let held = list(dir, db, "held");
    let mut held_ids: Vec<i64> = held.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    held_ids.sort();
    assert_eq!(held_ids, ids, "{held:?}");
    for i in &held {
        assert_eq!(i["state"], "held", "{i}");
        assert_eq!(i["region"], "in", "{i}");
    }
    assert_eq!(
        ok(cli(dir, db, &["region", "show"])).stdout.trim(),
        "sg",
        "the other process's change is what the database says now"
    );
    let audit = json(&cli(dir, db, &["audit", "--json"]));
    assert_eq!(audit.as_array().unwrap().len(), 0, "{audit}");
}

#[test]
fn run_stops_when_another_process_removes_the_region() {
    let dir = tempfile::tempdir().unwrap();
    let (world, db, ca, ids) = slow_world(dir.path());
    // v2: `in` is gone; IN (and everything else) goes to sg.
    let mut v2 = world.config_json(2);
    v2["regions"].as_object_mut().unwrap().remove("in");
    v2["countries"] = serde_json::json!({"IN": "sg", "SG": "sg", "*": "sg"});
    let cfg2 = dir.path().join("cfg2.json");
    std::fs::write(&cfg2, world.sign_config(&v2)).unwrap();

    stops_when_another_process_changes_trust(
        dir.path(),
        &world,
        &db,
        &ca,
        &ids,
        &["config", "install", s(&cfg2)],
    );
    let info = json(&cli(dir.path(), &db, &["config", "show", "--json"]));
    assert_eq!(info["config_version"], 2, "{info}");
    assert_eq!(info["regions"], serde_json::json!(["sg"]), "{info}");
    assert_eq!(info["approved_region"], "sg", "{info}");
}

#[test]
fn run_stops_when_another_process_changes_the_country() {
    let dir = tempfile::tempdir().unwrap();
    let (world, db, ca, ids) = slow_world(dir.path());
    stops_when_another_process_changes_trust(
        dir.path(),
        &world,
        &db,
        &ca,
        &ids,
        &["region", "set-country", "SG"],
    );
    let info = json(&cli(dir.path(), &db, &["config", "show", "--json"]));
    assert_eq!(info["config_version"], 1, "{info}");
    assert_eq!(info["country"], "SG", "{info}");
    assert_eq!(info["approved_region"], "sg", "{info}");
}

// ---------------------------------------------------------------------------
// 3: held at once, through the CLI.
// ---------------------------------------------------------------------------

#[test]
// Long: one scenario end to end; each step reads the state the previous one left.
fn held_at_once_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let world = World::start(&d.join("servers"), standard_regions(&["in", "sg"])).unwrap();
    let root = d.join("root.json");
    let cfg = d.join("cfg.json");
    std::fs::write(&root, &world.root_envelope).unwrap();
    std::fs::write(&cfg, world.config_envelope(1)).unwrap();
    let db = d.join("q.db");
    ok(cli(d, &db, &["init", "--root", s(&root)]));
    ok(cli(d, &db, &["config", "install", s(&cfg)]));
    assert_eq!(
        ok(cli(d, &db, &["region", "set-country", "IN"]))
            .stdout
            .trim(),
        "in"
    );
    let mut files = Vec::new();
    for i in 0..3 {
        let p = d.join(format!("p{i}.jpg"));
        std::fs::write(&p, vec![i as u8; 1000 + i]).unwrap();
        files.push(p);
    }
    let fs: Vec<&str> = files.iter().map(|p| s(p)).collect();
    let o = ok(cli(d, &db, &[&["enqueue"][..], &fs].concat()));
    assert_eq!(o.stdout, "1\n2\n3\n");
    let st = status(d, &db);
    assert_eq!((count(&st, "pending"), count(&st, "held")), (3, 0), "{st}");
    for i in list(d, &db, "pending") {
        assert_eq!(i["region"], "in", "stamped at enqueue: {i}");
    }

    let states = |d: &Path| {
        let st = status(d, &db);
        (
            count(&st, "pending"),
            count(&st, "held"),
            count(&st, "uploading"),
            count(&st, "failed"),
        )
    };
    let regions = |d: &Path, state: &str| {
        list(d, &db, state)
            .iter()
            .map(|i| {
                (
                    i["id"].as_i64().unwrap(),
                    i["region"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let stamped = |r: &str| (1..=3).map(|id| (id, r.to_string())).collect::<Vec<_>>();

    // Move the account: held immediately, no run.
    assert_eq!(
        ok(cli(d, &db, &["region", "set-country", "SG"]))
            .stdout
            .trim(),
        "sg"
    );
    assert_eq!(states(d), (0, 3, 0, 0));
    assert_eq!(regions(d, "held"), stamped("in"));
    let text = ok(cli(d, &db, &["list", "--state", "held"])).stdout;
    assert_eq!(text.lines().count(), 3, "{text}");
    for l in text.lines() {
        let cols: Vec<&str> = l.split('\t').collect();
        assert_eq!((cols[1], cols[2]), ("held", "in"), "{l}");
    }

    // Back to IN before any rehome: pending again, still for `in`.
    assert_eq!(
        ok(cli(d, &db, &["region", "set-country", "IN"]))
            .stdout
            .trim(),
        "in"
    );
    assert_eq!(states(d), (3, 0, 0, 0));
    assert_eq!(regions(d, "pending"), stamped("in"));

    // SG again. A rehome bound to a region that is not the approved one
    // (the user agreed to another) is refused and changes nothing.
    ok(cli(d, &db, &["region", "set-country", "SG"]));
    assert_eq!(states(d), (0, 3, 0, 0));
    fails_with(&cli(d, &db, &["rehome", "--to", "in"]), "residency");
    assert_eq!(states(d), (0, 3, 0, 0));
    assert_eq!(regions(d, "held"), stamped("in"));
    // Rehome bound to the approved region: pending for sg.
    assert_eq!(
        ok(cli(d, &db, &["rehome", "--to", "sg"])).stdout.trim(),
        "3"
    );
    assert_eq!(states(d), (3, 0, 0, 0));
    assert_eq!(regions(d, "pending"), stamped("sg"));
    assert!(list(d, &db, "held").is_empty());

    // Nothing ran: no server saw a connection.
    for (id, srv) in &world.servers {
        assert_eq!(srv.stats().connections, 0, "{id}");
    }
}

// ---------------------------------------------------------------------------
// 4: the clock set back under faketime (keys and envelopes made by the CLI).
// ---------------------------------------------------------------------------

fn keygen(d: &Path, name: &str) -> (PathBuf, String, String) {
    let key = d.join(name);
    let o = ok(cli_nodb(d, &["keygen", s(&key)]));
    let mut keyid = None;
    let mut public = None;
    for l in o.stdout.lines() {
        if let Some(k) = l.strip_prefix("keyid ") {
            keyid = Some(k.trim().to_string());
        }
        if let Some(p) = l.strip_prefix("public ") {
            public = Some(p.trim().to_string());
        }
    }
    let (keyid, public) = (keyid.expect("keyid line"), public.expect("public line"));
    assert_eq!((keyid.len(), public.len()), (64, 64), "{o:?}");
    (key, keyid, public)
}

/// Signs `payload` with `key` through the CLI; returns the envelope path.
fn sign(d: &Path, ty: &str, key: &Path, name: &str, payload: &serde_json::Value) -> PathBuf {
    let pfile = d.join(format!("{name}.payload.json"));
    std::fs::write(&pfile, serde_json::to_vec_pretty(payload).unwrap()).unwrap();
    let o = ok(cli_nodb(
        d,
        &["sign", "--type", ty, "--key", s(key), s(&pfile)],
    ));
    let env = d.join(format!("{name}.json"));
    std::fs::write(&env, o.stdout.as_bytes()).unwrap();
    env
}

/// A root (version `v`) with one root key and one config key.
fn root_payload(
    v: u64,
    root: &(PathBuf, String, String),
    cfg: &(PathBuf, String, String),
) -> serde_json::Value {
    serde_json::json!({
        "version": v,
        "expires_at": "2099-01-01T00:00:00Z",
        "keys": {
            root.1.clone(): {"type": "ed25519", "public": root.2.clone()},
            cfg.1.clone(): {"type": "ed25519", "public": cfg.2.clone()},
        },
        "roles": {
            "root": {"keyids": [root.1.clone()], "threshold": 1},
            "config": {"keyids": [cfg.1.clone()], "threshold": 1},
        },
    })
}

fn config_payload(v: u64, issued: &str, expires: &str) -> serde_json::Value {
    serde_json::json!({
        "version": v,
        "issued_at": issued,
        "expires_at": expires,
        "countries": {"IN": "in"},
        "regions": {"in": {
            "services": {"backup": {"url": "https://backup.in.example.net/files/", "protocol": "tus"}},
            "allowed_hosts": ["backup.in.example.net"],
        }},
    })
}

#[test]
// Long: one scenario end to end; each step reads the state the previous one left.
fn clock_set_back_under_faketime_stays_expired() {
    let have = Command::new("faketime")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        have,
        "faketime is required (apt-get install faketime; scripts/test.sh installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rk = keygen(d, "root.key");
    let ck = keygen(d, "cfg.key");
    let root = sign(d, "root", &rk.0, "root", &root_payload(1, &rk, &ck));
    let cfg1 = sign(
        d,
        "config",
        &ck.0,
        "cfg1",
        &config_payload(1, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
    );
    let cfg2 = sign(
        d,
        "config",
        &ck.0,
        "cfg2",
        &config_payload(2, "2026-11-30T00:00:00Z", "2027-01-01T00:00:00Z"),
    );
    let db = d.join("q.db");
    let ft = |when: &str, args: &[&str]| {
        let mut c = Command::new("faketime");
        c.env("TZ", "UTC")
            .env("CLOUDSYNC_ROOT", &root)
            .arg(when)
            .arg(cloudsync_exe())
            .args(["--db", s(&db)])
            .args(args);
        Proc::spawn(
            c,
            d,
            &format!("faketime {when} cloudsync {}", args.join(" ")),
        )
        .wait(SHORT)
    };
    let region_show = |when: &str| ok(ft(when, &["region", "show"])).stdout.trim().to_string();
    let info = |when: &str| json(&ft(when, &["config", "show", "--json"]));

    const BEFORE: &str = "2026-11-15 00:00:00";
    const AFTER: &str = "2026-12-02 00:00:00";
    const SET_BACK: &str = "2026-11-30 23:50:00";

    assert_eq!(
        ok(ft(BEFORE, &["init", "--root", s(&root)])).stdout.trim(),
        "ok root version 1"
    );
    assert_eq!(
        ok(ft(BEFORE, &["config", "install", s(&cfg1)]))
            .stdout
            .trim(),
        "installed config version 1"
    );
    assert_eq!(
        ok(ft(BEFORE, &["region", "set-country", "IN"]))
            .stdout
            .trim(),
        "in"
    );
    assert_eq!(region_show(BEFORE), "in");
    let i = info(BEFORE);
    assert_eq!(
        (&i["config_version"], &i["expired"], &i["approved_region"]),
        (
            &serde_json::json!(1),
            &serde_json::json!(false),
            &serde_json::json!("in")
        ),
        "{i}"
    );

    // The clock jumps past expires_at: expired, and recorded.
    assert_eq!(region_show(AFTER), "none (expired)");
    fails_with(&ft(AFTER, &["run"]), "expired");
    let i = info(AFTER);
    assert_eq!(i["expired"], true, "{i}");
    assert_eq!(i["approved_region"], serde_json::Value::Null, "{i}");

    // Set back to ten minutes before expiry: still expired (sticky).
    assert_eq!(region_show(SET_BACK), "none (expired)");
    let i = info(SET_BACK);
    assert_eq!(i["expired"], true, "sticky: {i}");
    assert_eq!(i["approved_region"], serde_json::Value::Null, "{i}");
    fails_with(&ft(SET_BACK, &["run"]), "expired");
    // Re-installing the very same v1 does not revive it either, and says so.
    fails_with(&ft(SET_BACK, &["config", "install", s(&cfg1)]), "expired");
    assert_eq!(region_show(SET_BACK), "none (expired)");

    // A newer config brings the region back.
    assert_eq!(
        ok(ft(AFTER, &["config", "install", s(&cfg2)]))
            .stdout
            .trim(),
        "installed config version 2"
    );
    assert_eq!(region_show(AFTER), "in");
    let i = info(AFTER);
    assert_eq!(
        (&i["config_version"], &i["expired"], &i["approved_region"]),
        (
            &serde_json::json!(2),
            &serde_json::json!(false),
            &serde_json::json!("in")
        ),
        "{i}"
    );
}

// ---------------------------------------------------------------------------
// 5: a different firmware root of the same version.
// ---------------------------------------------------------------------------

#[test]
fn a_database_from_another_root_of_the_same_version_is_reset_to_the_firmware_root() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (rka, cka) = (keygen(d, "rootA.key"), keygen(d, "cfgA.key"));
    let (rkb, ckb) = (keygen(d, "rootB.key"), keygen(d, "cfgB.key"));
    let root_a = sign(d, "root", &rka.0, "rootA", &root_payload(1, &rka, &cka));
    let root_b = sign(d, "root", &rkb.0, "rootB", &root_payload(1, &rkb, &ckb));
    let cfg = config_payload(1, "2026-01-01T00:00:00Z", "2099-01-01T00:00:00Z");
    let cfg_a = sign(d, "config", &cka.0, "cfgA", &cfg);
    let cfg_b = sign(d, "config", &ckb.0, "cfgB", &cfg);
    let junk = d.join("junk.json");
    std::fs::write(&junk, b"{\"hello\": \"this is not an envelope\"}").unwrap();
    let db = d.join("q.db");
    let (a, b) = (s(&root_a).to_string(), s(&root_b).to_string());

    assert_eq!(
        ok(cli(d, &db, &["init", "--root", &a])).stdout.trim(),
        "ok root version 1"
    );
    ok(cli(d, &db, &["--root", &a, "config", "install", s(&cfg_a)]));
    fails_with(&cli(d, &db, &["init", "--root", s(&junk)]), "malformed");

    // The file was made under root A; this firmware's root is B (a planted
    // or copied database): B is in force, A's config is gone, and the reset
    // is said, not a permanent error.
    let i = json(&cli(d, &db, &["--root", &b, "config", "show", "--json"]));
    assert_eq!(
        (&i["root_version"], &i["config_version"], &i["anchored"]),
        (
            &serde_json::json!(1),
            &serde_json::Value::Null,
            &serde_json::json!(true)
        ),
        "{i}"
    );
    assert_eq!(
        i["trust_reset"], "the stored root differs from the firmware root",
        "{i}"
    );
    // Written to the file: a read without any root shows B's state too.
    let plain = json(&cli(d, &db, &["config", "show", "--json"]));
    assert_eq!(
        (&plain["trust_reset"], &plain["anchored"]),
        (&i["trust_reset"], &serde_json::json!(false))
    );
    fails_with(
        &cli(d, &db, &["--root", &b, "config", "install", s(&cfg_a)]),
        "bad_signature",
    );
    assert_eq!(
        ok(cli(d, &db, &["--root", &b, "config", "install", s(&cfg_b)]))
            .stdout
            .trim(),
        "installed config version 1"
    );
    // A config accepted under the anchor ends the reset notice.
    let i = json(&cli(d, &db, &["--root", &b, "config", "show", "--json"]));
    assert_eq!(i["trust_reset"], serde_json::Value::Null, "{i}");
}
