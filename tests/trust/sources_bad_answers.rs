//! Every bad answer of a config mirror (issue 13, items 3, 4 and 8): a
//! refresh that fails changes nothing on disk (the trust row and the source
//! cache are compared column by column, with a separate SQLite connection,
//! and `config_info` too) and fails with its exact kind and message. Real
//! TLS on loopback; every refresh and run behind a watchdog
//! (`common/sources.rs`).

use cloudsync_testkit::sources as common;

use std::net::Ipv4Addr;
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant, SystemTime};

use cloudsync::config::model::unix_secs;
use cloudsync::config::sign::SigningKey;
use cloudsync::{ErrorKind, StopReason};
use cloudsync_devserver::world::standard_regions;
use cloudsync_devserver::Fault;
use common::*;

/// Config v2 installed from the mirror (so its validators are cached and
/// the next config request is conditional).
fn installed() -> Env {
    let e = env();
    e.publish_config(2);
    let r = refresh(&e.agent).unwrap();
    assert_eq!(r.config, Some(2));
    e
}

/// The documented cap of a mirror's document (`net::fetch`, private).
const MAX_DOCUMENT: u64 = 1024 * 1024;

fn now() -> u64 {
    unix_secs(SystemTime::now())
}

#[test]
fn a_config_signed_by_an_unknown_key() {
    let e = installed();
    let stranger = SigningKey::generate().unwrap();
    let cfg = sign_config(&e.world.config_json(3), &[&stranger]);
    e.mirror.publish("config.json", &cfg).unwrap();
    assert_refused(
        &e,
        ErrorKind::BadSignature,
        "no valid signature from a trusted config key",
    );
}

#[test]
fn an_older_config_is_a_rollback() {
    let e = installed();
    e.publish_config(1);
    assert_refused(
        &e,
        ErrorKind::Rollback,
        "config version 1 is older than installed version 2",
    );
}

#[test]
fn the_same_version_with_other_bytes_is_a_rollback() {
    let e = installed();
    let mut p = e.world.config_json(2);
    p["countries"]["SG"] = "in".into();
    e.mirror
        .publish("config.json", &sign_config(&p, &[&e.world.config_key]))
        .unwrap();
    assert_refused(
        &e,
        ErrorKind::Rollback,
        "config version 2 is already installed with different content",
    );
}

#[test]
fn an_expired_config_does_not_replace_a_valid_one() {
    let e = installed();
    let t = now();
    let p = config_payload(&e.world, 3, t - 2 * DAY, t - DAY);
    e.mirror
        .publish("config.json", &sign_config(&p, &[&e.world.config_key]))
        .unwrap();
    assert_refused(&e, ErrorKind::Expired, "config expired");
    assert!(!e.info().expired);
}

#[test]
fn a_body_over_1_mib_is_refused_and_1_mib_is_not() {
    let e = installed();
    let mut padded = e.world.config_envelope(3);
    padded.resize(MAX_DOCUMENT as usize + 1, b' ');
    e.mirror.publish("config.json", &padded).unwrap();
    assert_refused(
        &e,
        ErrorKind::Malformed,
        "malformed source document: larger than 1 MiB",
    );
    // Exactly the cap (JSON allows the trailing blanks): accepted.
    padded.truncate(MAX_DOCUMENT as usize);
    e.mirror.publish("config.json", &padded).unwrap();
    assert_eq!(refresh(&e.agent).unwrap().config, Some(3));
}

#[test]
fn a_truncated_body_is_refused_and_not_cached() {
    let e = installed();
    e.publish_config(3);
    e.mirror.server.push_fault(Fault::TruncateBody(100));
    assert_refused(&e, ErrorKind::Network, "network: connection closed early");
    assert_eq!(e.mirror.server.pending_faults(), 0, "the fault was served");
    assert_eq!(refresh(&e.agent).unwrap().config, Some(3));
}

#[test]
fn garbage_is_malformed() {
    let e = installed();
    e.mirror
        .publish("config.json", b"<html><body>502 Bad Gateway</body></html>")
        .unwrap();
    assert_refused(
        &e,
        ErrorKind::Malformed,
        "malformed envelope: syntax error at line 1 column 1",
    );
    e.mirror.publish("config.json", b"").unwrap();
    assert_refused(&e, ErrorKind::Malformed, "malformed envelope: empty input");
}

#[test]
fn redirects_are_refused() {
    let e = installed();
    e.publish_config(3);
    let target = format!("{}config.json", e.mirror.url());
    for status in [301, 302, 303, 307, 308] {
        e.mirror.server.push_fault(Fault::Redirect {
            method: None,
            status,
            location: target.clone(),
        });
        assert_refused(
            &e,
            ErrorKind::Residency,
            "residency: refused: redirect refused",
        );
    }
}

#[test]
fn server_errors_are_network_failures() {
    let e = installed();
    e.publish_config(3);
    for status in [500, 503, 429, 408] {
        e.mirror.server.push_fault(Fault::Status {
            method: None,
            status,
            retry_after: None,
        });
        assert_refused(
            &e,
            ErrorKind::Network,
            &format!("network: source answered HTTP {status}"),
        );
    }
    // Any other status is a protocol failure.
    e.mirror.server.push_fault(Fault::Status {
        method: None,
        status: 403,
        retry_after: None,
    });
    assert_refused(
        &e,
        ErrorKind::Protocol,
        "protocol: source answered unexpected HTTP 403",
    );
}

#[test]
fn a_304_to_an_unconditional_request_is_a_protocol_failure() {
    // Roots are always fetched unconditionally: a 304 is no redirect, and
    // no answer either.
    let e = installed();
    e.mirror.server.push_fault(Fault::Status {
        method: None,
        status: 304,
        retry_after: None,
    });
    assert_refused(
        &e,
        ErrorKind::Protocol,
        "protocol: 304 to an unconditional request",
    );
}

#[test]
fn a_mirror_without_config_json_is_a_protocol_failure() {
    let e = installed();
    e.mirror.unpublish("config.json").unwrap();
    assert_refused(
        &e,
        ErrorKind::Protocol,
        "protocol: the source has no config.json",
    );
}

#[test]
fn a_certificate_the_root_does_not_pin_is_refused() {
    // The root pins the region server's key, not the mirror's.
    let e = env_with(standard_regions(&["in"]), |w, m| {
        w.root_with_sources(1, &[m.url()], &[w.pins["in"].clone()])
    });
    e.agent.install(&e.world.config_envelope(1)).unwrap();
    e.publish_config(2);
    assert_refused(
        &e,
        ErrorKind::Residency,
        "residency: refused: certificate chain matches no pin",
    );
    assert!(
        e.mirror.server.source_requests().is_empty(),
        "no request sent"
    );
}

#[test]
fn a_certificate_from_an_untrusted_ca_is_refused() {
    // The root lists a mirror whose certificate chains to no trusted CA
    // (its pin does match: the pin alone is not enough).
    let dir = tempfile::tempdir().unwrap();
    let (rogue, pin) = rogue_mirror(dir.path(), Ipv4Addr::new(127, 0, 0, 12));
    let url = rogue.sources_url();
    let e = env_with(standard_regions(&["in"]), move |w, _| {
        w.root_with_sources(1, &[url], &[pin])
    });
    e.agent.install(&e.world.config_envelope(1)).unwrap();
    assert_refused(&e, ErrorKind::Network, "network: TLS or protocol failure");
    assert!(rogue.source_requests().is_empty(), "no request sent");
}

#[test]
fn a_bad_root_in_the_chain_installs_nothing() {
    // root/2.json is fine, root/3.json is signed by a stranger, the config
    // is fine: all or nothing, so nothing.
    let e = env();
    e.agent.install(&e.world.config_envelope(1)).unwrap();
    let w = &e.world;
    let stranger = SigningKey::generate().unwrap();
    e.publish_roots(2..=2);
    let bad = root_with_keys(
        3,
        &[&w.root_key],
        &[&w.config_key],
        &[&stranger],
        &e.urls(),
        &e.pins(),
    );
    e.mirror.publish("root/3.json", &bad).unwrap();
    e.publish_config(2);
    assert_refused(
        &e,
        ErrorKind::BadSignature,
        "no valid signature from a trusted root key",
    );
    let info = e.info();
    assert_eq!((info.root_version, info.config_version), (1, Some(1)));
    assert_eq!(
        e.paths_since(0),
        ["/sources/root/2.json", "/sources/root/3.json"],
        "the config was not even fetched"
    );
    // root/3.json claiming version 4: a gap.
    let gap = w.root_with_sources(4, &e.urls(), &e.pins());
    e.mirror.publish("root/3.json", &gap).unwrap();
    assert_refused(
        &e,
        ErrorKind::VersionGap,
        "root version 4 does not follow installed version 2",
    );
    // root/3.json repeating root 2, or going back to root 1.
    let two = w.root_with_sources(2, &e.urls(), &e.pins());
    e.mirror.publish("root/3.json", &two).unwrap();
    assert_refused(
        &e,
        ErrorKind::Protocol,
        "protocol: the source repeats the root in force",
    );
    let one = w.root_with_sources(1, &e.urls(), &e.pins());
    e.mirror.publish("root/3.json", &one).unwrap();
    assert_refused(
        &e,
        ErrorKind::Rollback,
        "root version 1 is older than installed version 2",
    );
    // Garbage as a root.
    e.mirror.publish("root/3.json", b"not json").unwrap();
    assert_refused(
        &e,
        ErrorKind::Malformed,
        "malformed envelope: syntax error at line 1 column 2",
    );
}

// ---------------------------------------------------------------- slow

/// Warnings logged, with the thread that logged them.
static LOGGED: OnceLock<Mutex<Vec<(ThreadId, String)>>> = OnceLock::new();

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let id = std::thread::current().id();
            let logged = LOGGED.get_or_init(Default::default);
            logged.lock().unwrap().push((id, r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

fn warnings_of(id: ThreadId) -> Vec<String> {
    LOGGED
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t == id)
        .map(|(_, m)| m.clone())
        .collect()
}

#[test]
fn a_slow_mirror_is_cut_at_the_run_deadline() {
    static LOGGER: Capture = Capture;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    // A config installed by bytes: the mirror never answered, a refresh is due.
    let e = env();
    e.agent.install(&e.world.config_envelope(1)).unwrap();
    e.publish_config(2);
    e.mirror
        .server
        .push_fault(Fault::Delay(Duration::from_secs(6)));
    let (before, info) = (e.snapshot(), Seen::now(&e));
    // The run's refresh has the run's deadline (under REFRESH_DEADLINE).
    let max = Duration::from_secs(2);
    let agent = e.agent.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    let t = std::thread::spawn(move || {
        let _ = tx.send(agent.run_once(max, &mut |_| true));
    });
    let id = t.thread().id();
    let report = rx
        .recv_timeout(WATCHDOG)
        .expect("run_once returned")
        .unwrap();
    let took = started.elapsed();
    assert!(took < max + Duration::from_millis(1500), "took {took:?}");
    assert_eq!(report.stopped, StopReason::TimeUp, "{report:?}");
    assert_eq!(
        e.paths_since(0),
        ["/sources/root/2.json"],
        "one request, cut"
    );
    assert_eq!(e.snapshot(), before);
    info.assert_same(&Seen::now(&e), "slow");
    let warned = warnings_of(id);
    assert!(
        warned.contains(&"config refresh failed (network); going on".to_string()),
        "{warned:?}"
    );
    // The mirror recovers: the next refresh installs the config.
    assert_eq!(refresh(&e.agent).unwrap().config, Some(2));
}
