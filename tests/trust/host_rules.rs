//! Host rules through the public API: configs signed with the loopback
//! world's keys, installed by an `Agent` on a real SQLite file. A config whose
//! `allowed_hosts` (or service URL host) breaks the host-name rules is
//! rejected as `invalid_endpoint` and nothing is installed.

use cloudsync::{Agent, ErrorKind, Installed};
use cloudsync_devserver::world::{standard_regions, World};

/// The world's config at `version` with region `in` rewritten to `hosts` / `url`.
fn config_with(world: &World, version: u64, hosts: &[&str], url: &str) -> Vec<u8> {
    let mut cfg = world.config_json(version);
    let region = &mut cfg["regions"]["in"];
    region["allowed_hosts"] = serde_json::json!(hosts);
    region["services"]["backup"]["url"] = serde_json::json!(url);
    world.sign_config(&cfg)
}

const BAD: &[(&[&str], &str)] = &[
    // Wildcard on the tail of an IP literal: it used to match 127.0.0.9.
    (&["*.0.0.9:8443"], "https://127.0.0.9:8443/files/"),
    // Empty label in a rule.
    (&["x..example.net"], "https://x..example.net/files/"),
    // Valid rule, empty label in the service URL host.
    (
        &["*.storage.in.example.net"],
        "https://a..storage.in.example.net/files/",
    ),
];

#[test]
fn bad_host_rules_are_invalid_endpoint_and_install_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(&dir.path().join("servers"), standard_regions(&["in", "sg"])).unwrap();
    let db = dir.path().join("q.db");
    let agent = Agent::open_with(&db, Some(&world.root_envelope), world.agent_options()).unwrap();

    // Nothing installed yet: a bad config leaves it so.
    for (hosts, url) in BAD {
        let e = agent
            .install(&config_with(&world, 1, hosts, url))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidEndpoint, "{hosts:?}");
        assert_eq!(e.kind().name(), "invalid_endpoint");
        assert_eq!(
            agent.config_info().unwrap().config_version,
            None,
            "{hosts:?}"
        );
    }

    // The world's own config (IP literal rules, 127.0.0.x) still validates.
    assert_eq!(
        agent.install(&world.config_envelope(1)).unwrap(),
        Installed::Config { version: 1 }
    );
    agent.set_account_country("IN").unwrap();
    let before = agent.config_info().unwrap();
    for (hosts, url) in BAD {
        let e = agent
            .install(&config_with(&world, 2, hosts, url))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidEndpoint, "{hosts:?}");
        let msg = e.to_string();
        for leak in ["example.net", "0.0.9", "https://"] {
            assert!(!msg.contains(leak), "message leaks {leak:?}: {msg}");
        }
        assert_eq!(agent.config_info().unwrap(), before, "{hosts:?}");
        assert_eq!(agent.config_info().unwrap().config_version, Some(1));
    }
    drop(agent);

    // Nor on disk.
    let reopened =
        Agent::open_with(&db, Some(&world.root_envelope), world.agent_options()).unwrap();
    assert_eq!(reopened.config_info().unwrap(), before);

    // A well-formed wildcard in the same position installs.
    let good = config_with(
        &world,
        2,
        &["*.storage.in.example.net"],
        "https://eu1.storage.in.example.net/files/",
    );
    assert_eq!(
        reopened.install(&good).unwrap(),
        Installed::Config { version: 2 }
    );
}
