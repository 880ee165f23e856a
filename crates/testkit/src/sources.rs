//! Shared set-up of the config-source tests (`sources_refresh.rs`,
//! `sources_bad_answers.rs`): a loopback world (region `in`), a config
//! mirror on 127.0.0.9 over real TLS, an agent whose firmware root lists it,
//! the raw trust state read with a separate SQLite connection, and every
//! refresh and run on its own thread behind a `recv_timeout` watchdog.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime};

use cloudsync::config::model::{format_time, unix_secs};
use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::{CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};
use cloudsync::{Agent, AgentOptions, ConfigInfo, ErrorKind, Refreshed, RunReport};
use cloudsync_devserver::mirror::Mirror;
use cloudsync_devserver::world::{standard_regions, RegionSetup, World};
use cloudsync_devserver::{ServerOptions, SourceRequest, TestCa, TusServer};
use rusqlite::types::Value;
use rusqlite::Connection;

/// Upper bound of one refresh or run (a hang fails the test, never the binary).
pub const WATCHDOG: Duration = Duration::from_secs(60);
pub const FAR: &str = "2099-01-01T00:00:00Z";
pub const HOUR: u64 = 3_600;
pub const DAY: u64 = 24 * HOUR;

pub struct Env {
    // Dropped in this order: the agent, the mirror, the world, the files.
    pub agent: Arc<Agent>,
    pub mirror: Mirror,
    pub world: World,
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
}

/// Region `in`, one mirror on 127.0.0.9, and an agent whose firmware root
/// (v1) lists that mirror. Nothing is published yet.
pub fn env() -> Env {
    env_with(standard_regions(&["in"]), |w, m| {
        w.root_with_sources(1, &[m.url()], std::slice::from_ref(&m.pin))
    })
}

/// Like [`env`] with other regions and another firmware root (made from
/// the world and its mirror); the agent's clock is the wall clock.
pub fn env_with(
    regions: Vec<RegionSetup>,
    firmware: impl FnOnce(&World, &Mirror) -> Vec<u8>,
) -> Env {
    env_opts(regions, firmware, |w| w.agent_options())
}

/// The most general set-up: `options` picks the agent's options (e.g. a clock).
pub fn env_opts(
    regions: Vec<RegionSetup>,
    firmware: impl FnOnce(&World, &Mirror) -> Vec<u8>,
    options: impl FnOnce(&World) -> AgentOptions,
) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(&dir.path().join("servers"), regions).unwrap();
    let mirror = world
        .start_mirror(Ipv4Addr::new(127, 0, 0, 9), "mirror")
        .unwrap();
    let root1 = firmware(&world, &mirror);
    let db = dir.path().join("q.db");
    let agent = Agent::open_with(&db, Some(&root1), options(&world)).unwrap();
    agent.set_account_country("IN").unwrap();
    Env {
        agent: Arc::new(agent),
        mirror,
        world,
        db,
        dir,
    }
}

impl Env {
    pub fn urls(&self) -> Vec<String> {
        vec![self.mirror.url()]
    }

    pub fn pins(&self) -> Vec<String> {
        vec![self.mirror.pin.clone()]
    }

    /// Publishes `root/<v>.json` for each `v` (the world's keys, this mirror).
    pub fn publish_roots(&self, versions: std::ops::RangeInclusive<u64>) {
        for v in versions {
            let root = self.world.root_with_sources(v, &self.urls(), &self.pins());
            self.mirror
                .publish(&format!("root/{v}.json"), &root)
                .unwrap();
        }
    }

    /// Publishes the world's standard config, version `v`, as `config.json`.
    pub fn publish_config(&self, v: u64) {
        self.mirror
            .publish("config.json", &self.world.config_envelope(v))
            .unwrap();
    }

    /// Paths of the mirror requests from the `from`-th on.
    pub fn paths_since(&self, from: usize) -> Vec<String> {
        self.requests_since(from)
            .into_iter()
            .map(|q| q.path)
            .collect()
    }

    pub fn requests_since(&self, from: usize) -> Vec<SourceRequest> {
        self.mirror.server.source_requests()[from..].to_vec()
    }

    pub fn requests(&self) -> usize {
        self.mirror.server.source_requests().len()
    }

    /// The raw trust state on disk now.
    pub fn snapshot(&self) -> Snapshot {
        snapshot(&self.db)
    }

    pub fn info(&self) -> ConfigInfo {
        self.agent.config_info().unwrap()
    }
}

/// The world's config payload `v` with explicit validity times.
pub fn config_payload(world: &World, v: u64, issued: u64, expires: u64) -> serde_json::Value {
    let mut p = world.config_json(v);
    p["issued_at"] = format_time(issued).into();
    p["expires_at"] = format_time(expires).into();
    p
}

/// A config envelope of `payload` signed by `keys`.
pub fn sign_config(payload: &serde_json::Value, keys: &[&SigningKey]) -> Vec<u8> {
    sign_envelope(
        CONFIG_PAYLOAD_TYPE,
        &serde_json::to_vec(payload).unwrap(),
        keys,
    )
}

/// A root envelope of `version` (thresholds 1) with these root and config
/// keys, listing `urls`/`pins` as its sources, signed by `signers`.
pub fn root_with_keys(
    version: u64,
    root_keys: &[&SigningKey],
    config_keys: &[&SigningKey],
    signers: &[&SigningKey],
    urls: &[String],
    pins: &[String],
) -> Vec<u8> {
    let base = root_payload(version, FAR, root_keys, 1, config_keys, 1);
    let mut payload: serde_json::Value = serde_json::from_slice(&base).unwrap();
    payload["sources"] = serde_json::json!({"urls": urls, "pins": pins});
    sign_envelope(
        ROOT_PAYLOAD_TYPE,
        &serde_json::to_vec(&payload).unwrap(),
        signers,
    )
}

/// `https://127.0.0.10:<port>/sources/` where nothing listens (connection refused).
pub fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.10:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("https://127.0.0.10:{port}/sources/")
}

/// A mirror on `addr` whose certificate comes from a CA the agent does not
/// trust (its own throwaway one); its SPKI pin.
pub fn rogue_mirror(dir: &Path, addr: Ipv4Addr) -> (TusServer, String) {
    let ca = TestCa::new("not the world's CA");
    let ip = IpAddr::V4(addr);
    let leaf = ca.issue(&[], &[ip]);
    let pin = leaf.spki_sha256_b64();
    let files = dir.join("rogue");
    std::fs::create_dir_all(&files).unwrap();
    let mut opts = ServerOptions::new(
        SocketAddr::new(ip, 0),
        leaf,
        dir.join("rogue-uploads"),
        addr.to_string(),
    );
    opts.sources_dir = Some(files);
    (TusServer::start(opts).unwrap(), pin)
}

/// The trust row (every column) and the source cache, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub trust: Vec<Value>,
    pub source_cache: Vec<Vec<Value>>,
}

fn rows(c: &Connection, sql: &str) -> Vec<Vec<Value>> {
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
}

pub fn snapshot(db: &Path) -> Snapshot {
    let c = Connection::open(db).unwrap();
    let mut trust = rows(&c, "SELECT * FROM trust");
    assert_eq!(trust.len(), 1);
    Snapshot {
        trust: trust.remove(0),
        source_cache: rows(&c, "SELECT * FROM source_cache ORDER BY url"),
    }
}

/// `checked_at` of the one source-cache row.
pub fn checked_at(db: &Path) -> u64 {
    Connection::open(db)
        .unwrap()
        .query_row("SELECT checked_at FROM source_cache", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as u64
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

/// `run_once(max)` on a thread, failing the test if it hangs.
pub fn run(agent: &Arc<Agent>, max: Duration) -> cloudsync::Result<RunReport> {
    let (tx, rx) = mpsc::channel();
    let a = agent.clone();
    std::thread::spawn(move || {
        let _ = tx.send(a.run_once(max, &mut |_| true));
    });
    rx.recv_timeout(max + WATCHDOG)
        .expect("run_once returned in time")
}

/// A refresh that must fail with exactly `kind` and `message` and leave the
/// trust row, the source cache and `config_info` as they were.
pub fn assert_refused(e: &Env, kind: ErrorKind, message: &str) {
    let (before, info) = (e.snapshot(), Seen::now(e));
    let err = refresh(&e.agent).unwrap_err();
    assert_eq!((err.kind(), err.to_string().as_str()), (kind, message));
    assert_eq!(e.snapshot(), before, "{message}: the trust state changed");
    info.assert_same(&Seen::now(e), message);
}

/// `config_info` and the wall-clock second it was read in.
pub struct Seen {
    pub info: ConfigInfo,
    pub at: u64,
}

impl Seen {
    pub fn now(e: &Env) -> Seen {
        let info = e.info();
        Seen {
            info,
            at: unix_secs(SystemTime::now()),
        }
    }

    /// The same `config_info`; a refresh "due now" (rendered with the clock
    /// of the moment) must still be due now.
    pub fn assert_same(&self, later: &Seen, what: &str) {
        let due = |i: &ConfigInfo| i.refresh_due_at_ms.map(|ms| (ms / 1000) as u64);
        let (a, b) = (due(&self.info), due(&later.info));
        let still_due = a.is_some_and(|a| a <= self.at) && b.is_some_and(|b| b <= later.at);
        assert!(a == b || still_due, "{what}: refresh_due_at {a:?} -> {b:?}");
        let strip = |i: &ConfigInfo| ConfigInfo {
            refresh_due_at_ms: None,
            ..i.clone()
        };
        assert_eq!(
            strip(&self.info),
            strip(&later.info),
            "{what}: config_info changed"
        );
    }
}

/// A file of `size` pseudo-random bytes.
pub fn file(dir: &Path, name: &str, size: usize) -> PathBuf {
    let p = dir.join(name);
    let mut x = 0x2545_f491u32;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(&p, data).unwrap();
    p
}
