//! Shared set-up of the network-fault tests (`net_faults.rs`): a loopback
//! world whose region `in` is reached only through a fault-injecting
//! [`Proxy`] (same 127.0.0.2 address, its own port; TLS end to end, so the
//! pins and the `networks` rule still hold), an agent on it, and runs behind
//! a `recv_timeout` watchdog.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use cloudsync::queue::ItemInfo;
use cloudsync::{Agent, AgentOptions, RunReport, State};
use cloudsync_devserver::world::{RegionSetup, World};

use crate::proxy::Proxy;

/// A file of pseudo-random bytes (the kit's one seed rule).
pub use crate::files::random_file as file;

pub const MIB: u64 = 1024 * 1024;
/// The region behind the proxy.
pub const REGION: &str = "in";

pub struct Net {
    // Dropped in this order: the agent, then the proxy (its threads stop),
    // then the servers, then the files.
    pub agent: Arc<Agent>,
    pub proxy: Proxy,
    pub world: World,
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
}

/// Timeouts of a test, in the order of `UploadOptions`' fields.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub handshake: Duration,
    pub io: Duration,
    pub request: Duration,
}

impl Timeouts {
    pub fn secs(connect: f64, handshake: f64, io: f64, request: f64) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs_f64(connect),
            handshake: Duration::from_secs_f64(handshake),
            io: Duration::from_secs_f64(io),
            request: Duration::from_secs_f64(request),
        }
    }

    /// The library's defaults (15 s, 15 s, 30 s, 60 s): only a run's
    /// deadline or a cancel can end a stalled exchange early.
    pub fn defaults() -> Timeouts {
        let d = cloudsync::net::UploadOptions::default();
        Timeouts {
            connect: d.connect_timeout,
            handshake: d.handshake_timeout,
            io: d.io_timeout,
            request: d.request_timeout,
        }
    }
}

/// Agent options for the proxied world: the production chunk size (8 MiB),
/// the given timeouts, fast retries that never make an item dead here.
pub fn options(world: &World, t: Timeouts) -> AgentOptions {
    let mut o = world.agent_options();
    o.upload.chunk_size = cloudsync::net::UploadOptions::default().chunk_size;
    o.upload.connect_timeout = t.connect;
    o.upload.handshake_timeout = t.handshake;
    o.upload.io_timeout = t.io;
    o.upload.request_timeout = t.request;
    o.retry.max_attempts = 50;
    o
}

/// The world's config with region `region` pointed at `proxy_port` on its
/// own address (URL and `allowed_hosts`); pins and networks unchanged.
pub fn proxied_config(
    world: &World,
    region: &str,
    version: u64,
    proxy_port: u16,
) -> serde_json::Value {
    let mut cfg = world.config_json(version);
    let ip = world.setups[region].addr;
    cfg["regions"][region]["services"]["backup"]["url"] =
        serde_json::json!(format!("https://{ip}:{proxy_port}/files/"));
    cfg["regions"][region]["allowed_hosts"] = serde_json::json!([format!("{ip}:{proxy_port}")]);
    cfg
}

/// A world with region `in` on 127.0.0.2 (relative `Location`s, so the
/// upload URL stays on the proxy), a proxy in front of it, and an agent
/// whose config goes through the proxy.
pub fn net(t: Timeouts) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = RegionSetup::new(REGION, std::net::Ipv4Addr::new(127, 0, 0, 2));
    setup.relative_location = true;
    let world = World::start(&dir.path().join("servers"), vec![setup]).unwrap();
    let server = &world.servers[REGION];
    let ip = IpAddr::V4(world.setups[REGION].addr);
    let proxy = Proxy::start(ip, SocketAddr::new(ip, server.port()));
    let db = dir.path().join("q.db");
    let agent = Agent::open_with(&db, Some(&world.root_envelope), options(&world, t)).unwrap();
    agent
        .install(&world.sign_config(&proxied_config(&world, REGION, 1, proxy.port())))
        .unwrap();
    agent.set_account_country("IN").unwrap();
    Net {
        agent: Arc::new(agent),
        proxy,
        world,
        db,
        dir,
    }
}

/// One finished run: its result and when it started and returned.
pub struct Ran {
    pub result: Result<RunReport, String>,
    pub started: Instant,
    pub ended: Instant,
}

impl Ran {
    pub fn took(&self) -> Duration {
        self.ended - self.started
    }

    pub fn report(&self) -> &RunReport {
        match &self.result {
            Ok(r) => r,
            Err(e) => panic!("run_once failed after {:?}: {e}", self.took()),
        }
    }
}

/// A run on its own thread; [`Running::wait`] is the watchdog.
pub struct Running {
    rx: mpsc::Receiver<Ran>,
    pub started: Instant,
    max: Duration,
}

impl Running {
    /// Waits up to `limit`; fails the test if the run has not returned by then.
    pub fn wait(self, limit: Duration) -> Ran {
        match self.rx.recv_timeout(limit) {
            Ok(r) => r,
            Err(_) => panic!(
                "watchdog: run_once(max = {:?}) had not returned {:?} after it started",
                self.max, limit
            ),
        }
    }
}

pub fn start_run(agent: &Arc<Agent>, max: Duration) -> Running {
    let (tx, rx) = mpsc::channel();
    let a = agent.clone();
    let started = Instant::now();
    std::thread::Builder::new()
        .name("run_once".into())
        .spawn(move || {
            let started = Instant::now();
            let result = a
                .run_once(max, &mut |_| true)
                .map_err(|e| format!("{:?}: {e}", e.kind()));
            let _ = tx.send(Ran {
                result,
                started,
                ended: Instant::now(),
            });
        })
        .unwrap();
    Running { rx, started, max }
}

/// `run_once(max)` on a thread, failing the test if it has not returned within `limit`.
pub fn run_watched(agent: &Arc<Agent>, max: Duration, limit: Duration) -> Ran {
    start_run(agent, max).wait(limit)
}

/// The item, if still queued.
pub fn find_item(agent: &Agent, id: i64) -> Option<ItemInfo> {
    agent
        .list(None, 0, 1000)
        .unwrap()
        .into_iter()
        .find(|i| i.id == id)
}

pub fn item(agent: &Agent, id: i64) -> ItemInfo {
    find_item(agent, id).unwrap_or_else(|| panic!("item {id} is no longer queued"))
}

/// The server's offset of the item's (single) upload, if it has one.
pub fn server_offset(world: &World, id: i64) -> Option<u64> {
    let ups: Vec<_> = world.servers[REGION]
        .uploads()
        .into_iter()
        .filter(|u| u.metadata_value("item") == Some(id.to_string().as_bytes()))
        .collect();
    ups.iter().map(|u| u.offset).max()
}

/// The server's completed copy of an item.
pub fn server_copy(world: &World, id: i64) -> Option<Vec<u8>> {
    let s = &world.servers[REGION];
    let done: Vec<_> = s
        .uploads()
        .into_iter()
        .filter(|u| u.complete && u.metadata_value("item") == Some(id.to_string().as_bytes()))
        .collect();
    assert!(
        done.len() <= 1,
        "item {id} completed more than once on the server"
    );
    done.first().map(|u| s.upload_bytes(&u.id).unwrap())
}

/// The item after a faulty run: resumable (`pending` or `failed`, never
/// `uploading`), with a confirmed offset the server really holds.
pub fn assert_resumable(net: &Net, id: i64, what: &str) -> ItemInfo {
    let it = item(&net.agent, id);
    assert!(
        matches!(it.state, State::Pending | State::Failed),
        "{what}: item {id} must be left pending or failed, not {:?} (last_error {:?})",
        it.state,
        it.last_error
    );
    let held = server_offset(&net.world, id).unwrap_or(0);
    assert!(
        it.confirmed_offset <= held,
        "{what}: item {id} claims {} confirmed bytes but the server holds {held}",
        it.confirmed_offset
    );
    it
}

/// Runs through the proxy (set to pass-through) until the item is done;
/// then the server's copy must be byte-identical to `path`. Returns the runs made.
pub fn finish_through_pass(net: &Net, id: i64, path: &Path, what: &str) -> u32 {
    net.proxy.set_mode(crate::proxy::Mode::Pass);
    let mut runs = 0;
    while find_item(&net.agent, id).is_some() {
        runs += 1;
        assert!(
            runs <= 12,
            "{what}: item {id} still queued after 12 pass-through runs: {:?}",
            item(&net.agent, id)
        );
        // The test retry policy backs off a few milliseconds.
        std::thread::sleep(Duration::from_millis(30));
        let ran = run_watched(&net.agent, Duration::from_secs(60), Duration::from_secs(90));
        ran.report();
    }
    let want = std::fs::read(path).unwrap();
    let got = server_copy(&net.world, id).unwrap_or_else(|| {
        panic!("{what}: item {id} left the queue but no complete upload is on the server")
    });
    assert!(
        got == want,
        "{what}: the server's copy of item {id} differs from the source ({} vs {} bytes)",
        got.len(),
        want.len()
    );
    runs
}

/// A port on `ip` whose SYNs go unanswered: a listener that never accepts,
/// its accept queue filled up (Linux then drops further SYNs), so a connect
/// hangs until the client's own timeout. Keep the returned value alive.
pub struct SynBlackHole {
    pub port: u16,
    _listener: std::net::TcpListener,
    _queued: Vec<std::net::TcpStream>,
}

pub fn syn_black_hole(ip: IpAddr) -> SynBlackHole {
    let listener = std::net::TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..10_000 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => queued.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return SynBlackHole {
                    port: addr.port(),
                    _listener: listener,
                    _queued: queued,
                }
            }
            Err(e) => panic!("filling the accept queue of {addr}: {e}"),
        }
    }
    panic!("the accept queue of {addr} never filled after 10000 connections");
}
