//! The agent fetches its own trust (issue 13): a root lists mirrors
//! (`sources`); `refresh_config` walks `root/<N+1>.json` and fetches
//! `config.json` from them over real TLS on loopback (the dev server's
//! mirror mode), installing everything through the same checks as `install`
//! in one transaction. Every run and refresh has its own watchdog.
//!
//! Here: catching up (and the 64-step cap), key revocation by rotation,
//! conditional requests, mirror fallback, what a mirror sees, and the
//! refresh `run_once` makes first. Bad answers are in `sources_bad_answers.rs`;
//! the shared set-up in `common/sources.rs`.

use cloudsync_testkit::sources as common;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloudsync::agent::MAX_ROOT_STEPS;
use cloudsync::auth::{CredentialRequest, ProviderError, Secret};
use cloudsync::config::model::{secs_to_ms, unix_secs};
use cloudsync::config::sign::SigningKey;
use cloudsync::{Agent, ErrorKind, StopReason};
use cloudsync_devserver::world::standard_regions;
use cloudsync_devserver::Fault;
use common::*;
use rusqlite::Connection;

#[test]
fn a_phone_behind_catches_up_and_an_unchanged_config_costs_a_304() {
    let e = env();
    e.publish_roots(2..=4);
    e.publish_config(1);
    let r = refresh(&e.agent).unwrap();
    assert_eq!(
        (r.roots.as_slice(), r.config),
        (&[2, 3, 4][..], Some(1)),
        "{r:?}"
    );
    let info = e.info();
    assert_eq!((info.root_version, info.config_version), (4, Some(1)));
    assert_eq!(info.approved_region.as_deref(), Some("in"));
    assert!(info.refresh_due_at_ms.is_some());
    // Again: the chain ends at a 404, the config answers 304.
    let before = e.requests();
    let r = refresh(&e.agent).unwrap();
    assert!(r.unchanged(), "{r:?}");
    let last = e.requests_since(before);
    assert_eq!(
        last.iter().map(|q| q.path.as_str()).collect::<Vec<_>>(),
        ["/sources/root/5.json", "/sources/config.json"]
    );
    assert!(last[1].headers.iter().any(|(n, _)| n == "if-none-match"));
}

#[test]
fn more_than_64_root_steps_take_two_calls() {
    let e = env();
    // Versions 2..=66: 65 steps from the firmware's v1.
    e.publish_roots(2..=66);
    e.publish_config(1);
    let r = refresh(&e.agent).unwrap();
    let first: Vec<u64> = (2..=65).collect();
    assert_eq!(MAX_ROOT_STEPS, 64);
    assert_eq!((r.roots, r.config), (first, Some(1)));
    assert_eq!(e.info().root_version, 65);
    // The cap stopped the walk: root/66.json was not even asked for.
    let paths = e.paths_since(0);
    assert_eq!(paths.len(), 65, "64 roots and the config");
    assert_eq!(paths.last().unwrap(), "/sources/config.json");
    assert!(!paths.contains(&"/sources/root/66.json".to_string()));
    // The next call goes on from 65.
    let before = e.requests();
    let r = refresh(&e.agent).unwrap();
    assert_eq!((r.roots.as_slice(), r.config), (&[66][..], None), "{r:?}");
    assert_eq!(
        e.paths_since(before),
        [
            "/sources/root/66.json",
            "/sources/root/67.json",
            "/sources/config.json"
        ]
    );
    let info = e.info();
    assert_eq!((info.root_version, info.config_version), (66, Some(1)));
}

#[test]
fn a_rotation_that_revokes_the_config_key_takes_effect() {
    let e = env();
    e.publish_config(1);
    assert_eq!(refresh(&e.agent).unwrap().config, Some(1));
    // Root v2 trusts only a new config key.
    let new_key = SigningKey::generate().unwrap();
    let w = &e.world;
    let root2 = root_with_keys(
        2,
        &[&w.root_key],
        &[&new_key],
        &[&w.root_key],
        &e.urls(),
        &e.pins(),
    );
    e.mirror.publish("root/2.json", &root2).unwrap();
    // The mirror still serves a config signed by the old key: the verified
    // root step is kept (a complete step, as TUF's), the config is refused
    // and, no longer vouched for by root 2, config 1 is out of force: nothing
    // uploads, and the next refresh is due at once.
    e.mirror
        .publish(
            "config.json",
            &sign_config(&w.config_json(2), &[&w.config_key]),
        )
        .unwrap();
    let r = refresh(&e.agent).unwrap();
    assert_eq!(
        (r.roots.as_slice(), r.config, r.config_error),
        (&[2][..], None, Some(ErrorKind::BadSignature)),
        "{r:?}"
    );
    let info = e.info();
    assert_eq!((info.root_version, info.config_version), (2, None));
    assert_eq!(info.approved_region, None);
    let due = info.refresh_due_at_ms.expect("due") as u64 / 1000;
    assert!(due <= unix_secs(SystemTime::now()), "due at once: {info:?}");
    // Signed by the new key: the config goes in.
    e.mirror
        .publish("config.json", &sign_config(&w.config_json(2), &[&new_key]))
        .unwrap();
    let r = refresh(&e.agent).unwrap();
    assert_eq!((r.roots.as_slice(), r.config), (&[][..], Some(2)), "{r:?}");
    let info = e.info();
    assert_eq!((info.root_version, info.config_version), (2, Some(2)));
    assert_eq!(info.approved_region.as_deref(), Some("in"));
    // The old key is revoked for good: by install and by the mirror alike.
    let old = sign_config(&w.config_json(3), &[&w.config_key]);
    let err = e.agent.install(&old).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadSignature);
    e.mirror.publish("config.json", &old).unwrap();
    assert_refused(
        &e,
        ErrorKind::BadSignature,
        "no valid signature from a trusted config key",
    );
    assert_eq!(e.info().config_version, Some(2));
}

#[test]
fn a_last_modified_alone_also_costs_a_304() {
    // The dev server always sends an ETag; a mirror that sent only a
    // Last-Modified leaves a cache row without one: made so here.
    let e = env();
    e.publish_config(1);
    refresh(&e.agent).unwrap();
    let c = Connection::open(&e.db).unwrap();
    let n = c
        .execute("UPDATE source_cache SET etag = NULL", [])
        .unwrap();
    assert_eq!(n, 1);
    let before = e.requests();
    let r = refresh(&e.agent).unwrap();
    assert!(r.unchanged(), "{r:?}");
    let q = &e.requests_since(before)[1];
    assert_eq!(q.path, "/sources/config.json");
    let names: Vec<&str> = q.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"if-modified-since"), "{names:?}");
    assert!(!names.contains(&"if-none-match"), "{names:?}");
    // A 304 keeps the cached validators as they were (a 200 would have
    // stored the server's ETag).
    let etag: Option<String> = c
        .query_row("SELECT etag FROM source_cache", [], |r| r.get(0))
        .unwrap();
    assert_eq!(etag, None);
}

#[test]
fn the_next_mirror_answers_when_the_first_is_down() {
    // Mirror 1: nothing listens (connection refused); mirror 2 answers.
    let c = closed_url();
    let e = env_with(standard_regions(&["in"]), move |w, m| {
        w.root_with_sources(1, &[c, m.url()], std::slice::from_ref(&m.pin))
    });
    e.publish_config(1);
    let r = refresh(&e.agent).unwrap();
    assert_eq!(r.config, Some(1));
    let second = format!("127.0.0.9:{}", e.mirror.server.port());
    assert_eq!(r.mirror, second);
    // Mirror 1 answers 500, mirror 2 still answers.
    let m2 = e
        .world
        .start_mirror(Ipv4Addr::new(127, 0, 0, 11), "mirror2")
        .unwrap();
    let (w, urls) = (&e.world, [e.mirror.url(), m2.url()]);
    let pins = [e.mirror.pin.clone(), m2.pin.clone()];
    e.mirror
        .publish("root/2.json", &w.root_with_sources(2, &urls, &pins))
        .unwrap();
    refresh(&e.agent).unwrap();
    m2.publish("config.json", &w.config_envelope(2)).unwrap();
    e.mirror.server.push_fault(Fault::Status {
        method: None,
        status: 500,
        retry_after: None,
    });
    let before = e.requests();
    let r = refresh(&e.agent).unwrap();
    assert_eq!(r.config, Some(2));
    assert_eq!(e.paths_since(before), ["/sources/root/3.json"], "the 500");
    assert_eq!(r.mirror, format!("127.0.0.11:{}", m2.server.port()));
    assert_eq!(
        m2.server
            .source_requests()
            .iter()
            .map(|q| q.path.as_str())
            .collect::<Vec<_>>(),
        ["/sources/root/3.json", "/sources/config.json"]
    );
}

#[test]
fn a_stale_mirror_hands_over_to_the_next() {
    // Mirror 1 serves an old config (a stale CDN edge, or a replay): the
    // refresh moves on to mirror 2 and nothing of mirror 1 is kept.
    let mut second = None;
    let e = env_with(standard_regions(&["in"]), |w, m| {
        let m2 = w
            .start_mirror(Ipv4Addr::new(127, 0, 0, 11), "mirror2")
            .unwrap();
        let root = w.root_with_sources(1, &[m.url(), m2.url()], &[m.pin.clone(), m2.pin.clone()]);
        second = Some(m2);
        root
    });
    let m2 = second.unwrap();
    e.agent.install(&e.world.config_envelope(2)).unwrap();
    e.publish_config(1);
    m2.publish("config.json", &e.world.config_envelope(3))
        .unwrap();
    let r = refresh(&e.agent).unwrap();
    assert_eq!(r.config, Some(3));
    assert_eq!(r.mirror, format!("127.0.0.11:{}", m2.server.port()));
    assert_eq!(
        e.paths_since(0),
        ["/sources/root/2.json", "/sources/config.json"]
    );
    let cached: Vec<String> = Connection::open(&e.db)
        .unwrap()
        .prepare("SELECT url FROM source_cache")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(cached, [format!("{}config.json", m2.url())]);
}

#[test]
fn when_every_mirror_fails_the_first_ones_error_is_returned() {
    let closed = closed_url();
    let c = closed.clone();
    let e = env_with(standard_regions(&["in"]), move |w, m| {
        w.root_with_sources(1, &[c, m.url()], std::slice::from_ref(&m.pin))
    });
    e.agent.install(&e.world.config_envelope(1)).unwrap();
    e.publish_config(2);
    e.mirror.server.push_fault(Fault::Status {
        method: None,
        status: 500,
        retry_after: None,
    });
    assert_refused(&e, ErrorKind::Network, "network: connection refused");
    assert_eq!(
        e.paths_since(0),
        ["/sources/root/2.json"],
        "both were tried"
    );
    // The other way round: the 500 is the first mirror's, so it is reported.
    let c = closed.clone();
    let e = env_with(standard_regions(&["in"]), move |w, m| {
        w.root_with_sources(1, &[m.url(), c], std::slice::from_ref(&m.pin))
    });
    e.agent.install(&e.world.config_envelope(1)).unwrap();
    e.mirror.server.push_fault(Fault::Status {
        method: None,
        status: 500,
        retry_after: None,
    });
    assert_refused(&e, ErrorKind::Network, "network: source answered HTTP 500");
}

#[test]
fn mirror_requests_carry_no_user_data() {
    const TOKEN: &str = "tok-in-0123456789";
    const ACCOUNT: &str = "dana.user@example.org";
    let mut regions = standard_regions(&["in"]);
    regions[0].bearer_token = Some(TOKEN.into());
    let e = env_with(regions, |w, m| {
        w.root_with_sources(1, &[m.url()], std::slice::from_ref(&m.pin))
    });
    e.agent.set_account(Some(ACCOUNT), Some("IN")).unwrap();
    e.agent.set_credential_provider(Some(Arc::new(
        |_: &CredentialRequest<'_>| -> Result<Option<Secret>, ProviderError> {
            Ok(Some(Secret::new(TOKEN.into())))
        },
    )));
    let f = file(e.dir.path(), "IMG_0001.jpg", 4096);
    e.agent.enqueue(&f, "backup", 0).unwrap();
    e.publish_config(1);
    // The run refreshes first (no config yet), then uploads with the token.
    let report = run(&e.agent, Duration::from_secs(30)).unwrap();
    assert_eq!(report.uploaded, 1, "{report:?}");
    assert!(!e.world.servers["in"].authorizations().is_empty());
    // A second, conditional refresh.
    refresh(&e.agent).unwrap();
    let seen = e.requests_since(0);
    let host = format!("127.0.0.9:{}", e.mirror.server.port());
    let ua = concat!("cloudsync/", env!("CARGO_PKG_VERSION"));
    let plain = ["accept", "host", "user-agent"];
    let conditional = [
        "accept",
        "host",
        "if-modified-since",
        "if-none-match",
        "user-agent",
    ];
    let expected: [(&str, &[&str]); 4] = [
        ("/sources/root/2.json", &plain),
        ("/sources/config.json", &plain),
        ("/sources/root/2.json", &plain),
        ("/sources/config.json", &conditional),
    ];
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
    for (q, (path, names)) in seen.iter().zip(expected) {
        assert_eq!((q.method.as_str(), q.path.as_str()), ("GET", path));
        let mut got: Vec<&str> = q.headers.iter().map(|(n, _)| n.as_str()).collect();
        got.sort_unstable();
        assert_eq!(got, names, "{path}: {:?}", q.headers);
        let value = |name: &str| {
            q.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(value("user-agent"), Some(ua));
        assert_eq!(value("host"), Some(host.as_str()));
        assert_eq!(value("accept"), Some("application/json"));
        for (n, v) in &q.headers {
            for secret in [TOKEN, ACCOUNT, "IMG_0001", "backup"] {
                assert!(!v.contains(secret), "{n}: {v} carries {secret}");
            }
        }
    }
}

#[test]
fn run_once_refreshes_first_then_uploads_in_the_same_run() {
    let e = env();
    let info = e.info();
    assert_eq!(info.config_version, None);
    let due = info.refresh_due_at_ms.expect("due") as u64 / 1000;
    assert!(
        due <= unix_secs(std::time::SystemTime::now()),
        "due at once"
    );
    e.publish_roots(2..=2);
    e.publish_config(1);
    let f = file(e.dir.path(), "a.bin", 10_000);
    e.agent.enqueue(&f, "backup", 0).unwrap();
    let report = run(&e.agent, Duration::from_secs(30)).unwrap();
    assert_eq!(
        (report.region.as_str(), report.uploaded, report.stopped),
        ("in", 1, StopReason::Drained),
        "{report:?}"
    );
    assert_eq!(e.world.servers["in"].stats().uploads_completed, 1);
    // One refresh: the chain to its 404, then the config.
    assert_eq!(
        e.paths_since(0),
        [
            "/sources/root/2.json",
            "/sources/root/3.json",
            "/sources/config.json"
        ]
    );
    let info = e.info();
    assert_eq!((info.root_version, info.config_version), (2, Some(1)));
    // Not due again: the next run asks no mirror.
    let report = run(&e.agent, Duration::from_secs(30)).unwrap();
    assert_eq!(report.stopped, StopReason::Drained);
    assert_eq!(e.requests(), 3);
}

#[test]
fn a_failed_refresh_does_not_stop_uploads_under_a_valid_config() {
    let e = env();
    // Installed by bytes: the mirror never answered, so a refresh is due.
    e.agent.install(&e.world.config_envelope(1)).unwrap();
    e.publish_config(2);
    e.mirror.server.push_fault(Fault::Status {
        method: None,
        status: 500,
        retry_after: None,
    });
    let f = file(e.dir.path(), "a.bin", 10_000);
    e.agent.enqueue(&f, "backup", 0).unwrap();
    let before = e.snapshot();
    let report = run(&e.agent, Duration::from_secs(30)).unwrap();
    assert_eq!((report.uploaded, report.failed), (1, 0), "{report:?}");
    // One attempt per run (no second mirror request), nothing installed.
    assert_eq!(e.paths_since(0), ["/sources/root/2.json"]);
    assert_eq!(e.snapshot(), before);
    let info = e.info();
    assert_eq!(info.config_version, Some(1));
    let due = info.refresh_due_at_ms.expect("due") as u64 / 1000;
    assert!(due <= unix_secs(std::time::SystemTime::now()), "still due");
}

#[test]
fn refresh_due_at_follows_the_documented_rule() {
    // Without sources: never due.
    let dir = tempfile::tempdir().unwrap();
    let e0 = env();
    let plain = Agent::open_with(
        dir.path().join("plain.db"),
        Some(&e0.world.root_envelope),
        e0.world.agent_options(),
    )
    .unwrap();
    assert_eq!(plain.config_info().unwrap().refresh_due_at_ms, None);
    let err = plain.refresh_config().unwrap_err();
    assert_eq!(
        (err.kind(), err.to_string().as_str()),
        (
            ErrorKind::InvalidArgument,
            "invalid argument: the root lists no sources"
        )
    );
    drop(e0);

    let t = unix_secs(std::time::SystemTime::now());
    let clock = Arc::new(AtomicU64::new(t));
    let c = clock.clone();
    let e = env_opts(
        standard_regions(&["in"]),
        |w, m| w.root_with_sources(1, &[m.url()], std::slice::from_ref(&m.pin)),
        move |w| cloudsync::AgentOptions {
            clock: Arc::new(move || c.load(Ordering::SeqCst)),
            ..w.agent_options()
        },
    );
    let due = |e: &Env| e.info().refresh_due_at_ms;
    let at = |secs: u64| Some(secs_to_ms(secs));
    // No config: due now.
    assert_eq!(due(&e), at(t));
    // A month-long config: a day after the answer.
    let publish = |v: u64, issued: u64, expires: u64| {
        let p = config_payload(&e.world, v, issued, expires);
        e.mirror
            .publish("config.json", &sign_config(&p, &[&e.world.config_key]))
            .unwrap();
    };
    publish(1, t - HOUR, t + 30 * DAY);
    refresh(&e.agent).unwrap();
    assert_eq!(checked_at(&e.db), t);
    assert_eq!(due(&e), at(t + DAY));
    // A day later the run refreshes first (a 304), once.
    let now = t + DAY;
    clock.store(now, Ordering::SeqCst);
    let before = e.requests();
    let report = run(&e.agent, Duration::from_secs(30)).unwrap();
    assert_eq!(report.stopped, StopReason::Drained);
    assert_eq!(
        e.paths_since(before),
        ["/sources/root/2.json", "/sources/config.json"]
    );
    assert_eq!(checked_at(&e.db), now);
    assert_eq!(due(&e), at(now + DAY));
    // A config valid 3 h: its middle is 30 min away, but an hour at least.
    publish(2, now - HOUR, now + 2 * HOUR);
    assert_eq!(refresh(&e.agent).unwrap().config, Some(2));
    assert_eq!(due(&e), at(now + HOUR));
    // A config valid 11 h: its middle, 4.5 h away.
    publish(3, now - HOUR, now + 10 * HOUR);
    assert_eq!(refresh(&e.agent).unwrap().config, Some(3));
    assert_eq!(due(&e), at(now - HOUR + 11 * HOUR / 2));
    // Expired: due at once.
    let later = now + 11 * HOUR;
    clock.store(later, Ordering::SeqCst);
    let info = e.info();
    assert!(info.expired);
    assert_eq!(info.refresh_due_at_ms, at(later));
}
