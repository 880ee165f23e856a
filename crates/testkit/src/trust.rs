//! Helpers shared by the in-process two-handle trust tests
//! (`trust_handles.rs`, `trust_clock_roots.rs`): a temp dir with loopback tus
//! servers (`devserver::world::World`), handles on one SQLite file, the raw
//! trust row, and runs behind a `recv_timeout` watchdog.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::{CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};
use cloudsync::queue::ItemInfo;
use cloudsync::{Agent, AgentOptions, ConfigInfo, RunReport};
use cloudsync_devserver::world::{standard_regions, World};
use rusqlite::Connection;

pub const MIB: u64 = 1024 * 1024;
pub const FAR: &str = "2099-01-01T00:00:00Z";
/// Upper bound for any one run (the watchdog); runs here take well under 10 s.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

pub struct Env {
    pub dir: tempfile::TempDir,
    pub world: World,
    pub db: PathBuf,
}

pub fn env(regions: &[&str]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(&dir.path().join("servers"), standard_regions(regions)).unwrap();
    let db = dir.path().join("q.db");
    Env { dir, world, db }
}

impl Env {
    /// A handle as the app opens it (with the firmware root).
    pub fn open(&self) -> Agent {
        self.open_at(&self.db, self.world.agent_options())
    }

    pub fn open_at(&self, db: &Path, opts: AgentOptions) -> Agent {
        Agent::open_with(db, Some(&self.world.root_envelope), opts).unwrap()
    }

    /// A brand-new handle that has never seen anything but the file (and
    /// the firmware root it is anchored in, as the app opens it).
    pub fn fresh(&self) -> Agent {
        Agent::open_with(
            &self.db,
            Some(&self.world.root_envelope),
            self.world.agent_options(),
        )
        .unwrap()
    }

    pub fn fresh_info(&self) -> ConfigInfo {
        self.fresh().config_info().unwrap()
    }

    /// The world's config payload, version `v`, signed by `keys`.
    pub fn config(&self, payload: &serde_json::Value, keys: &[&SigningKey]) -> Vec<u8> {
        sign_envelope(
            CONFIG_PAYLOAD_TYPE,
            &serde_json::to_vec(payload).unwrap(),
            keys,
        )
    }
}

/// A root envelope: `root_keys`/`config_keys` with thresholds, signed by `signers`.
pub fn root_env(
    version: u64,
    expires: &str,
    root_keys: &[&SigningKey],
    root_threshold: u64,
    config_keys: &[&SigningKey],
    config_threshold: u64,
    signers: &[&SigningKey],
) -> Vec<u8> {
    sign_envelope(
        ROOT_PAYLOAD_TYPE,
        &root_payload(
            version,
            expires,
            root_keys,
            root_threshold,
            config_keys,
            config_threshold,
        ),
        signers,
    )
}

/// The raw trust row, read with a separate SQLite connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub root: Vec<u8>,
    pub config: Option<Vec<u8>>,
    pub country: Option<String>,
    pub generation: i64,
    pub config_version_floor: i64,
    pub expired_config_version: i64,
    pub expired_root_version: i64,
}

pub fn row(db: &Path) -> Row {
    let c = Connection::open(db).unwrap();
    c.query_row(
        "SELECT root, config, country, generation, config_version_floor, expired_config_version,
                expired_root_version
         FROM trust WHERE id = 1",
        [],
        |r| {
            Ok(Row {
                root: r.get(0)?,
                config: r.get(1)?,
                country: r.get(2)?,
                generation: r.get(3)?,
                config_version_floor: r.get(4)?,
                expired_config_version: r.get(5)?,
                expired_root_version: r.get(6)?,
            })
        },
    )
    .unwrap()
}

pub fn file(dir: &Path, name: &str, size: u64, seed: u8) -> PathBuf {
    let p = dir.join(name);
    let mut x = 0x9e37_79b9u32 ^ u32::from(seed);
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

pub fn region_of(a: &Agent) -> Option<String> {
    a.approved_region().unwrap().map(|r| r.id().to_string())
}

pub fn item(a: &Agent, id: i64) -> ItemInfo {
    a.list(None, 0, 1000)
        .unwrap()
        .into_iter()
        .find(|i| i.id == id)
        .expect("item still queued")
}

/// `run_once` on its own thread with a watchdog.
pub fn spawn_run(a: &Arc<Agent>) -> mpsc::Receiver<cloudsync::Result<RunReport>> {
    let (tx, rx) = mpsc::channel();
    let a = a.clone();
    std::thread::spawn(move || {
        let _ = tx.send(a.run_once(RUN_LIMIT, &mut |_| true));
    });
    rx
}

pub fn run(a: &Arc<Agent>) -> cloudsync::Result<RunReport> {
    spawn_run(a)
        .recv_timeout(RUN_LIMIT + Duration::from_secs(15))
        .expect("run_once hung (watchdog)")
}

pub fn untouched(world: &World, region: &str) {
    let st = world.servers[region].stats();
    assert_eq!(
        (st.connections, st.requests, st.app_bytes_received),
        (0, 0, 0),
        "region {region} was contacted: {st:?}"
    );
}

pub fn clocked(world: &World, clock: &Arc<AtomicU64>) -> AgentOptions {
    let c = clock.clone();
    AgentOptions {
        clock: Arc::new(move || c.load(Ordering::SeqCst)),
        ..world.agent_options()
    }
}
