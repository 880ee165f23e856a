//! The agent fetches its own trust (issue 13): a root lists mirrors
//! (`sources`); `refresh_config` walks `root/<N+1>.json` and fetches
//! `config.json` from them over real TLS on loopback (the dev server's
//! mirror mode), installing everything through the same checks as `install`
//! in one transaction. Every run and refresh has its own watchdog.

#![cfg(feature = "devserver")]

use std::net::Ipv4Addr;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use cloudsync::devserver::mirror::Mirror;
use cloudsync::devserver::world::{standard_regions, World};
use cloudsync::{Agent, Refreshed};

const WATCHDOG: Duration = Duration::from_secs(60);

pub struct Env {
    pub dir: tempfile::TempDir,
    pub world: World,
    pub mirror: Mirror,
    pub agent: Arc<Agent>,
    pub db: std::path::PathBuf,
}

/// Region `in`, one mirror on 127.0.0.9, and an agent whose firmware root
/// (v1) lists that mirror. Nothing is published yet.
pub fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(&dir.path().join("servers"), standard_regions(&["in"])).unwrap();
    let mirror = world
        .start_mirror(Ipv4Addr::new(127, 0, 0, 9), "mirror")
        .unwrap();
    let root1 = world.root_with_sources(1, &[mirror.url()], std::slice::from_ref(&mirror.pin));
    let db = dir.path().join("q.db");
    let agent = Agent::open_with(&db, Some(&root1), world.agent_options()).unwrap();
    agent.set_account_country("IN").unwrap();
    Env {
        dir,
        world,
        mirror,
        agent: Arc::new(agent),
        db,
    }
}

/// `refresh_config` on a thread, failing the test if it hangs.
pub fn refresh(agent: &Arc<Agent>) -> cloudsync::Result<Refreshed> {
    let (tx, rx) = mpsc::channel();
    let a = agent.clone();
    std::thread::spawn(move || {
        let _ = tx.send(a.refresh_config());
    });
    rx.recv_timeout(WATCHDOG)
        .expect("refresh_config returned in time")
}

#[test]
fn a_phone_behind_catches_up_and_an_unchanged_config_costs_a_304() {
    let e = env();
    let urls = [e.mirror.url()];
    let pins = [e.mirror.pin.clone()];
    for v in 2..=4 {
        let root = e.world.root_with_sources(v, &urls, &pins);
        e.mirror.publish(&format!("root/{v}.json"), &root).unwrap();
    }
    e.mirror
        .publish("config.json", &e.world.config_envelope(1))
        .unwrap();
    let r = refresh(&e.agent).unwrap();
    assert_eq!(
        (r.roots.as_slice(), r.config),
        (&[2, 3, 4][..], Some(1)),
        "{r:?}"
    );
    let info = e.agent.config_info().unwrap();
    assert_eq!((info.root_version, info.config_version), (4, Some(1)));
    assert_eq!(info.approved_region.as_deref(), Some("in"));
    assert!(info.refresh_due_at.is_some());
    // Again: the chain ends at a 404, the config answers 304.
    let before = e.mirror.server.source_requests().len();
    let r = refresh(&e.agent).unwrap();
    assert!(r.unchanged(), "{r:?}");
    let seen = e.mirror.server.source_requests();
    let last = &seen[before..];
    assert_eq!(
        last.iter().map(|q| q.path.as_str()).collect::<Vec<_>>(),
        ["/sources/root/5.json", "/sources/config.json"]
    );
    assert!(last[1].headers.iter().any(|(n, _)| n == "if-none-match"));
}
