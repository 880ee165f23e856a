//! Issue 21 through the `cloudsync` binary: the firmware root comes from
//! `--root` or `CLOUDSYNC_ROOT`, never from the database; without it the CLI
//! reads and refuses what uploads or changes trust; a planted database sends
//! nothing to the planted host.

use cloudsync_testkit::cli as common;

use std::path::Path;
use std::time::SystemTime;

use cloudsync::config::model::{format_time, unix_secs};
use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::ROOT_PAYLOAD_TYPE;
use cloudsync::Agent;
use cloudsync_devserver::world::{standard_regions, World};
use common::{err, out, run, run_unanchored, s};

fn untouched(world: &World, region: &str) {
    let st = world.servers[region].stats();
    assert_eq!(
        (st.connections, st.requests, st.app_bytes_received),
        (0, 0, 0),
        "region {region} was contacted: {st:?}"
    );
}

#[test]
fn without_a_firmware_root_the_cli_reads_and_refuses_trust_changes_and_uploads() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("q.db");
    let dbs = s(&db);
    let root = common::golden("root_v1.json");
    let cfg = common::golden("config_v7.json");
    let o = run_unanchored(&["--db", dbs, "init"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        "error: --root ROOT (or CLOUDSYNC_ROOT) is required for this command\n"
    );
    assert!(!db.exists(), "nothing was created");
    let o = run_unanchored(&["--db", dbs, "--root", s(&root), "init"]);
    assert_eq!(
        (o.status.code(), out(&o)),
        (Some(0), "ok root version 1\n".into())
    );
    let refused = "error: this command uploads or changes trust: pass the firmware root \
                   with --root ROOT.json or CLOUDSYNC_ROOT (reads work without it)\n";
    for args in [
        &["config", "install", s(&cfg)][..],
        &["config", "refresh"],
        &["region", "set-country", "IN"],
        &["account", "set", "--id", "a1"],
        &["account", "sign-out"],
        &["rehome"],
        &["run", "--max-seconds", "5"],
    ] {
        let mut all = vec!["--db", dbs];
        all.extend_from_slice(args);
        let o = run_unanchored(&all);
        assert_eq!(
            (o.status.code(), err(&o)),
            (Some(2), refused.into()),
            "{args:?}"
        );
    }
    // Reads work, and say the handle is not anchored.
    let o = run_unanchored(&["--db", dbs, "config", "show"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).contains("anchored       false\n"), "{}", out(&o));
    let o = run_unanchored(&["--db", dbs, "status"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert_eq!(
        out(&run_unanchored(&["--db", dbs, "region", "show"])),
        "none (root_mismatch)\n"
    );
    // The environment variable is the same anchor as --root.
    let mut c = common::bin();
    c.env("CLOUDSYNC_ROOT", &root)
        .args(["--db", dbs, "config", "install", s(&cfg)]);
    let o = common::spawn_within(c, common::STEP_LIMIT);
    assert_eq!(
        (o.status.code(), out(&o)),
        (Some(0), "installed config version 7\n".into()),
        "{}",
        err(&o)
    );
}

/// A database made under an attacker's own root v2 (no mirrors), with a
/// config that sends `IN` to the `sg` server, one photo queued, and the
/// `chain_from` the attacker chose.
fn plant(world: &World, db: &Path, chain_from: i64) {
    let (rk, ck) = (
        SigningKey::generate().unwrap(),
        SigningKey::generate().unwrap(),
    );
    let root = sign_envelope(
        ROOT_PAYLOAD_TYPE,
        &root_payload(2, "2099-01-01T00:00:00Z", &[&rk], 1, &[&ck], 1),
        &[&rk],
    );
    let now = unix_secs(SystemTime::now());
    let mut p = world.config_json(5);
    p["issued_at"] = format_time(now - 60).into();
    p["countries"]["IN"] = "sg".into();
    let cfg = sign_envelope(
        cloudsync::config::CONFIG_PAYLOAD_TYPE,
        &serde_json::to_vec(&p).unwrap(),
        &[&ck],
    );
    let a = Agent::open_with(db, Some(&root), world.agent_options()).unwrap();
    a.install(&cfg).unwrap();
    a.set_account_country("IN").unwrap();
    let photo = db.with_file_name("photo.jpg");
    std::fs::write(&photo, vec![7u8; 100_000]).unwrap();
    a.enqueue(&photo, "backup", 0).unwrap();
    drop(a);
    rusqlite::Connection::open(db)
        .unwrap()
        .execute("UPDATE trust SET chain_from = ?1", [chain_from])
        .unwrap();
}

#[test]
fn a_planted_database_sends_nothing_to_the_planted_host_through_the_cli() {
    let d = tempfile::tempdir().unwrap();
    let world = World::start(&d.path().join("servers"), standard_regions(&["in", "sg"])).unwrap();
    let (root, ca) = (d.path().join("root.json"), d.path().join("ca.pem"));
    std::fs::write(&root, &world.root_envelope).unwrap();
    std::fs::write(&ca, world.ca.cert_pem()).unwrap();
    for (chain_from, line) in [
        (0, "error: no_config: no verified config is installed\n"),
        (
            2,
            "error: root_mismatch: the stored root is newer than the firmware root and not \
             yet verified: refresh the config\n",
        ),
    ] {
        let db = d.path().join(format!("planted{chain_from}.db"));
        plant(&world, &db, chain_from);
        let dbs = s(&db);
        let o = run(&["--db", dbs, "--root", s(&root), "run", "--test-ca", s(&ca)]);
        assert_eq!(
            (o.status.code(), err(&o)),
            (Some(1), line.into()),
            "{}",
            out(&o)
        );
        untouched(&world, "sg");
        untouched(&world, "in");
        let o = run(&["--db", dbs, "--root", s(&root), "config", "show"]);
        let shown = out(&o);
        if chain_from == 0 {
            assert!(
                shown.contains("trust reset    the stored root chain does not verify\n"),
                "{shown}"
            );
            assert!(shown.contains("root version   1\n"), "{shown}");
        } else {
            assert!(shown.contains("anchored       false\n"), "{shown}");
        }
    }
}
