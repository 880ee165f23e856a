//! Interoperability with an independent tus implementation: tus-node-server
//! (`@tus/server` + `@tus/file-store`, pinned in `tests/interop/package.json`
//! and its lock) behind Node's own HTTPS server on 127.0.0.6.
//!
//! The test installs the npm packages itself when `tests/interop/node_modules`
//! is missing or stale (`npm ci`, once), starts `tests/interop/server.mjs` with
//! a leaf certificate from the loopback world's CA, and points region `in` of a
//! signed config at it. That server offers no checksum extension and answers
//! relative `Location`s (`/files/<id>`), so the client must do without
//! per-chunk checksums and resolve Locations through the residency guard.
//! Region `sg` is the project's own devserver: it must see nothing at all.
//!
//! Needs `node` (>= 20.19) and `npm` on PATH and, the first time, the npm
//! registry: without them the tests fail with a message saying so.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use cloudsync::{Agent, AgentOptions, StopReason};
use cloudsync_devserver::world::{standard_regions, World};
use cloudsync_testkit::files::random_file;
use cloudsync_testkit::trust::untouched;

const MIB: u64 = 1024 * 1024;
const NODE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
/// How long `npm ci` may take before the test gives up on the registry.
const NPM_TIMEOUT: Duration = Duration::from_secs(300);

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

/// Runs a command to completion within `limit`, returning (success, stdout+stderr).
fn run_with_timeout(cmd: &mut Command, limit: Duration, what: &str) -> (bool, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {what}: {e} (is Node.js with npm installed and on PATH?)")
        });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    let _ = std::fs::File::open(log.path()).and_then(|mut f| f.read_to_string(&mut out));
    match status {
        Some(st) => (st.success(), out),
        None => (false, format!("{out}\n[killed after {limit:?}]")),
    }
}

/// The version `package-lock.json` pins for `name`, and the installed one.
fn versions(dir: &Path, name: &str) -> (Option<String>, Option<String>) {
    let read = |p: PathBuf| -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(p).ok()?).ok()
    };
    let locked = read(dir.join("package-lock.json")).and_then(|v| {
        v["packages"][format!("node_modules/{name}")]["version"]
            .as_str()
            .map(String::from)
    });
    let installed = read(dir.join("node_modules").join(name).join("package.json"))
        .and_then(|v| v["version"].as_str().map(String::from));
    (locked, installed)
}

/// Installs the npm packages once (idempotent: skipped when node_modules
/// already holds the locked versions). Panics with a clear message when Node,
/// npm or the registry is unavailable: this test never passes silently.
fn ensure_node_modules() {
    // The outcome is remembered, so a failed install is reported by every test without retrying it.
    static OUTCOME: Mutex<Option<Result<(), String>>> = Mutex::new(None);
    let mut outcome = OUTCOME.lock().unwrap_or_else(|p| p.into_inner());
    let result = outcome.get_or_insert_with(install_node_modules);
    if let Err(msg) = result {
        panic!("{msg}");
    }
}

fn install_node_modules() -> Result<(), String> {
    let dir = interop_dir();
    let (ok, out) = run_with_timeout(
        Command::new("node").arg("--version"),
        Duration::from_secs(30),
        "node",
    );
    if !ok {
        return Err(format!(
            "`node --version` failed: Node.js >= 20.19 must be installed for this test\n{out}"
        ));
    }
    let v = out.trim().trim_start_matches('v');
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (20, 19) {
        return Err(format!(
            "Node.js {v} is too old: @tus/server needs Node >= 20.19"
        ));
    }

    let pkgs = ["@tus/server", "@tus/file-store"];
    let has_lock = dir.join("package-lock.json").exists();
    let current = has_lock
        && pkgs.iter().all(|p| {
            let (locked, installed) = versions(&dir, p);
            locked.is_some() && locked == installed
        });
    if current {
        return Ok(());
    }
    let sub = if has_lock { "ci" } else { "install" };
    eprintln!("interop_tus_node: running `npm {sub}` in {}", dir.display());
    let (ok, out) = run_with_timeout(
        Command::new("npm")
            .args([
                sub,
                "--no-audit",
                "--no-fund",
                // Fail in seconds, not minutes, when the registry cannot be reached.
                "--fetch-retries=1",
                "--fetch-retry-mintimeout=2000",
                "--fetch-retry-maxtimeout=10000",
            ])
            .current_dir(&dir),
        NPM_TIMEOUT,
        "npm",
    );
    if !ok {
        return Err(format!(
            "`npm {sub}` in {} failed: the interop test needs the npm registry to install \
             @tus/server and @tus/file-store (or an already populated tests/interop/node_modules).\n\
             --- npm output ---\n{out}",
            dir.display()
        ));
    }
    for p in pkgs {
        let (locked, installed) = versions(&dir, p);
        if installed.is_none() || (has_lock && installed != locked) {
            return Err(format!(
                "`npm {sub}` succeeded but {p} is {installed:?}, package-lock.json says {locked:?}\n{out}"
            ));
        }
    }
    Ok(())
}

/// The running Node tus server; killed (and reaped) on drop.
struct NodeServer {
    child: Child,
    port: u16,
    uploads: PathBuf,
    stderr: PathBuf,
}

impl NodeServer {
    fn start(work: &Path, cert_pem: &str, key_pem: &str) -> NodeServer {
        ensure_node_modules();
        let cert = work.join("node-cert.pem");
        let key = work.join("node-key.pem");
        let uploads = work.join("node-uploads");
        let stderr = work.join("node-stderr.log");
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg("--host")
            .arg(NODE_IP.to_string())
            .args(["--port", "0"])
            .arg("--key")
            .arg(&key)
            .arg("--cert")
            .arg(&cert)
            .arg("--dir")
            .arg(&uploads)
            .current_dir(interop_dir())
            // The server exits when its stdin closes: no orphan even if this process dies.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let r = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(r);
        });
        let mut server = NodeServer {
            child,
            port: 0,
            uploads,
            stderr,
        };
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(line)) => line,
            other => panic!(
                "node server.mjs did not report its port ({other:?}); stderr:\n{}",
                server.stderr_text()
            ),
        };
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
            panic!(
                "node server.mjs printed {line:?} instead of {{\"port\": N}} ({e}); stderr:\n{}",
                server.stderr_text()
            )
        });
        server.port = v["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0)
            .unwrap_or_else(|| panic!("node server.mjs printed {line:?}: no port"));
        server
    }

    fn host_port(&self) -> String {
        format!("{NODE_IP}:{}", self.port)
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Uploads the server stored, by their `item` metadata: (upload id, info JSON).
    fn uploads_by_item(&self) -> BTreeMap<i64, Vec<(String, serde_json::Value)>> {
        let mut out: BTreeMap<i64, Vec<(String, serde_json::Value)>> = BTreeMap::new();
        for e in std::fs::read_dir(&self.uploads).unwrap() {
            let p = e.unwrap().path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let info: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            let id = info["id"]
                .as_str()
                .expect("upload info has an id")
                .to_string();
            let item: i64 = info["metadata"]["item"]
                .as_str()
                .expect("item metadata")
                .parse()
                .unwrap();
            out.entry(item).or_default().push((id, info));
        }
        out
    }

    /// The stored length of an upload once it has stopped growing (bounded wait).
    fn settled_len(&self, id: &str) -> u64 {
        let path = self.uploads.join(id);
        let len = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = len();
        loop {
            std::thread::sleep(Duration::from_millis(150));
            let now = len();
            if (now == last && now > 0) || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }

    /// The stored bytes of an upload.
    fn bytes(&self, id: &str) -> Vec<u8> {
        std::fs::read(self.uploads.join(id)).unwrap()
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fields drop in order: the agent, then the servers, then their directory.
struct Env {
    agent: Agent,
    node: NodeServer,
    world: World,
    dir: tempfile::TempDir,
}

/// A world whose `sg` region is the project's devserver and whose `in`
/// region is the Node server; the account is in India.
fn env(tweak: impl FnOnce(&mut AgentOptions)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(&dir.path().join("servers"), standard_regions(&["sg"])).unwrap();
    let leaf = world.ca.issue(&[], &[IpAddr::V4(NODE_IP)]);
    let node = NodeServer::start(
        dir.path(),
        &format!("{}{}", leaf.cert_pem, world.ca.cert_pem()),
        &leaf.key_pem,
    );

    let mut cfg = world.config_json(1);
    cfg["regions"]["in"] = serde_json::json!({
        // tus-node-server's creation endpoint is its `path`, without a trailing slash.
        "services": {"backup": {"url": format!("https://{}/files", node.host_port()), "protocol": "tus"}},
        "allowed_hosts": [node.host_port()],
        "pins": [leaf.spki_sha256_b64()],
        "networks": [format!("{NODE_IP}/32")],
    });
    cfg["countries"]["IN"] = "in".into();
    let mut opts = world.agent_options();
    tweak(&mut opts);
    let agent =
        Agent::open_with(dir.path().join("q.db"), Some(&world.root_envelope), opts).unwrap();
    agent.install(&world.sign_config(&cfg)).unwrap();
    agent.set_account_country("IN").unwrap();
    Env {
        dir,
        world,
        node,
        agent,
    }
}

/// Checks the Node server holds exactly one upload for `item`, complete and
/// byte-identical to `path`.
fn assert_stored(e: &Env, item: i64, path: &Path) {
    let want = std::fs::read(path).unwrap();
    let by_item = e.node.uploads_by_item();
    let ups = by_item
        .get(&item)
        .unwrap_or_else(|| panic!("item {item}: the Node server has no upload"));
    assert_eq!(ups.len(), 1, "item {item}: uploads {ups:?}");
    let (id, info) = &ups[0];
    assert_eq!(
        info["size"].as_u64(),
        Some(want.len() as u64),
        "item {item}: declared length"
    );
    // The creation request carries an idempotency key (32 hex digits). The content
    // hash goes with it only when the file was read whole before it (one chunk to a
    // server that verifies checksums), never a second read of the file.
    let key = info["metadata"]["key"].as_str().unwrap_or_default();
    assert!(
        key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "item {item}: idempotency key {key:?}"
    );
    if let Some(sent) = info["metadata"]["sha256"].as_str() {
        let sha = hex::encode(cloudsync::upload::hash_file(path).unwrap());
        assert_eq!(sent, sha, "item {item}: sha256 metadata");
    }
    assert_eq!(
        info["metadata"]["filename"].as_str(),
        path.file_name().and_then(|n| n.to_str()),
        "item {item}: filename metadata"
    );
    let got = e.node.bytes(id);
    assert_eq!(got.len(), want.len(), "item {item}: stored size");
    assert!(
        got == want,
        "item {item}: stored bytes differ from the source"
    );
}

#[test]
fn files_of_every_shape_arrive_byte_identical_at_tus_node_server() {
    let e = env(|_| {});
    // Empty, one byte, exactly one 1 MiB chunk, and many chunks with a ragged tail.
    let sizes = [0, 1, MIB, 5 * MIB + 3];
    let paths: Vec<PathBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| random_file(e.dir.path(), &format!("f{i}.bin"), *s, i as u8))
        .collect();
    let ids = e.agent.enqueue_all(&paths, "backup", 0).unwrap();
    let r = e.agent.run_once(Duration::from_secs(60), &mut |p| {
        assert!(p.sent <= p.total);
        true
    });
    let r =
        r.unwrap_or_else(|err| panic!("run failed: {err}; node stderr:\n{}", e.node.stderr_text()));
    assert_eq!(
        (
            r.region.as_str(),
            r.uploaded,
            r.failed,
            r.dead,
            r.remaining,
            r.stopped
        ),
        ("in", 4, 0, 0, 0, StopReason::Drained),
        "{r:?}; items {:?}; node stderr:\n{}",
        e.agent.list(None, 0, 100).unwrap(),
        e.node.stderr_text()
    );
    assert_eq!(r.bytes, sizes.iter().sum::<u64>());
    for (id, p) in ids.iter().zip(&paths) {
        assert_stored(&e, *id, p);
    }
    assert_eq!(
        e.node.uploads_by_item().len(),
        4,
        "one upload per item, nothing else"
    );

    let audit = e.agent.audit(0, 100).unwrap();
    assert_eq!(audit.len(), 4);
    for (a, p) in audit.iter().zip(&paths) {
        assert_eq!(
            (a.region.as_str(), a.host.as_str(), a.peer_ip.as_deref()),
            ("in", e.node.host_port().as_str(), Some("127.0.0.6"))
        );
        assert_eq!(
            a.sha256,
            hex::encode(cloudsync::upload::hash_file(p).unwrap())
        );
    }
    assert_eq!(e.agent.stats().unwrap().done, 4);
    untouched(&e.world, "sg");
}

#[test]
fn upload_cut_mid_chunk_resumes_at_tus_node_servers_offset() {
    // 4 MiB chunks: the first progress report (after 1 MiB) cancels mid-PATCH,
    // so the connection is cut with the body half sent and the server keeps
    // whatever it had written. The next run must HEAD, take the server's
    // (unaligned) offset and finish the same upload.
    let e = env(|o| o.upload.chunk_size = 4 * MIB);
    let p = random_file(e.dir.path(), "big.bin", 6 * MIB + 7, 9);
    let id = e.agent.enqueue(&p, "backup", 0).unwrap();
    let mut calls = 0;
    let r = e
        .agent
        .run_once(Duration::from_secs(60), &mut |_| {
            calls += 1;
            false
        })
        .unwrap();
    assert_eq!((r.uploaded, r.stopped), (0, StopReason::Cancelled), "{r:?}");
    assert_eq!(calls, 1);
    let by_item = e.node.uploads_by_item();
    assert_eq!(
        by_item.get(&id).map(Vec::len),
        Some(1),
        "the upload was created once"
    );
    // No PATCH was answered, so the agent confirmed nothing: where to go on
    // from can only come from the server's HEAD.
    let it = e
        .agent
        .list(None, 0, 100)
        .unwrap()
        .into_iter()
        .find(|i| i.id == id)
        .unwrap();
    assert_eq!(it.confirmed_offset, 0, "{it:?}");
    // Let the server finish writing what it received before the cut, so the
    // resume really starts from a partial, unaligned offset.
    let held = e.node.settled_len(&by_item[&id][0].0);
    assert!(
        held > 0 && held < 4 * MIB,
        "server kept {held} bytes of the cut chunk"
    );

    let r = e
        .agent
        .run_once(Duration::from_secs(60), &mut |_| true)
        .unwrap();
    assert_eq!(
        (r.uploaded, r.failed, r.remaining, r.stopped),
        (1, 0, 0, StopReason::Drained),
        "{r:?}; items {:?}; node stderr:\n{}",
        e.agent.list(None, 0, 100).unwrap(),
        e.node.stderr_text()
    );
    assert_stored(&e, id, &p);
    untouched(&e.world, "sg");
}
