//! The C ABI from C: compiles `tests/c/test_capi.c` with gcc against
//! `include/cloudsync.h`, links it to the `libcloudsync.so` this very
//! `cargo test` built, and runs it (status codes, NULL arguments, enqueue,
//! stats, close, and — with the `ffi-test-hooks` feature — a panic arriving
//! as `CS_INTERNAL`). Without that feature the C program is compiled without
//! `CLOUDSYNC_TEST_HOOKS` and skips only the panic check. It also checks that
//! trust lives in the database (two handles on one file; roots at open), for
//! which it gets a two-region config and a same-version foreign root.
//! With the `devserver` feature it also gets a loopback TLS tus server that
//! requires a bearer token (and a config that trusts its CA and declares
//! `"auth": "bearer"`), to upload through `cs_set_credential_provider`; what
//! that server saw is checked here after the program exits. It also gets a
//! root v1 whose `sources` list a loopback mirror (with the world's CA) that
//! answers its first request 500 and then serves `root/2.json` and
//! `config.json`, for `cs_refresh_config`; the requests that mirror saw are
//! checked here too (the exact paths, a conditional last one, no user data).
//! For the queue's items, run events, the audit trail and `cs_retry_dead` it
//! gets a second loopback world (`in` and `sg`, their CA in `ca_certs`) whose
//! `in` answers the first POST 503 with `Retry-After: 600`. With the `cli`
//! feature it also starts `cloudsync dev-server` as QA would and hands the
//! program the `root.json` and `config.json` that server wrote, to upload
//! with nothing else (`common/cli.rs`'s `DevServer`). Inputs beyond the positional
//! arguments go through the environment (`CS_TEST_*`, listed in the C file).
//!
//! The program ends itself with `alarm()`; this side also kills it after
//! [`CHILD_TIMEOUT`], so a hang can never stall `cargo test`.

use cloudsync_testkit::cc::{self, lib_dir};
use cloudsync_testkit::cli;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::{CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};

/// How long the C program may run before it is killed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// The envelopes the C program gets.
struct Envelopes {
    /// Root version 1.
    root: Vec<u8>,
    /// Config v1 under `root`: IN -> in.
    config: Vec<u8>,
    /// Config v2 under `root`: IN -> in, SG -> sg (hosts never contacted).
    config2: Vec<u8>,
    /// Root version 1 with other keys: same version, different payload.
    other_root: Vec<u8>,
}

fn root_v1(root_seed: u8, config_seed: u8) -> (Vec<u8>, SigningKey) {
    let root_key = SigningKey::from_seed([root_seed; 32]).expect("seed");
    let config_key = SigningKey::from_seed([config_seed; 32]).expect("seed");
    let root = sign_envelope(
        ROOT_PAYLOAD_TYPE,
        &root_payload(
            1,
            "2099-01-01T00:00:00Z",
            &[&root_key],
            1,
            &[&config_key],
            1,
        ),
        &[&root_key],
    );
    (root, config_key)
}

fn region(id: &str) -> serde_json::Value {
    let host = format!("backup.{id}.example.net");
    serde_json::json!({"services": {"backup": {"url": format!("https://{host}/files/"),
                                               "protocol": "tus"}},
                       "allowed_hosts": [host]})
}

fn envelopes() -> Envelopes {
    let (root, config_key) = root_v1(7, 8);
    let (other_root, _) = root_v1(9, 10);
    let config = serde_json::json!({
        "version": 1, "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z",
        "countries": {"IN": "in"},
        "regions": {"in": {"services": {"backup": {"url": "https://backup.in.example.net/files/",
                                                   "protocol": "tus"}},
                           "allowed_hosts": ["backup.in.example.net"]}}
    });
    let config = sign_envelope(
        CONFIG_PAYLOAD_TYPE,
        &serde_json::to_vec(&config).expect("json"),
        &[&config_key],
    );
    let config2 = serde_json::json!({
        "version": 2, "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z",
        "countries": {"IN": "in", "SG": "sg"},
        "regions": {"in": region("in"), "sg": region("sg")}
    });
    let config2 = sign_envelope(
        CONFIG_PAYLOAD_TYPE,
        &serde_json::to_vec(&config2).expect("json"),
        &[&config_key],
    );
    Envelopes {
        root,
        config,
        config2,
        other_root,
    }
}

/// The bearer token the C program's callback gives the loopback server.
const TOKEN: &str = "c-abi-token-5e1f";

/// A loopback tus server for region `in` that requires [`TOKEN`], and a
/// config (signed like `config`) pointing `IN` at it and trusting its CA.
fn auth_world(dir: &Path) -> (cloudsync_devserver::world::World, Vec<u8>) {
    use cloudsync_devserver::world::{standard_regions, World};
    let mut setups = standard_regions(&["in"]);
    setups[0].bearer_token = Some(TOKEN.into());
    let world = World::start(dir, setups).expect("loopback tus server");
    let mut payload = world.config_json(1);
    payload["regions"]["in"]["ca_certs"] = serde_json::json!([world.ca.cert_pem()]);
    let (_, config_key) = root_v1(7, 8);
    let config = sign_envelope(
        CONFIG_PAYLOAD_TYPE,
        &serde_json::to_vec(&payload).expect("json"),
        &[&config_key],
    );
    (world, config)
}

/// A mirror on 127.0.0.9 for `world` serving root v2 and config v1, whose
/// first answer will be a 500, and the root v1 listing it (URL, pin, CA).
fn sources_root(
    world: &cloudsync_devserver::world::World,
) -> (cloudsync_devserver::mirror::Mirror, Vec<u8>) {
    let mirror = world
        .start_mirror(std::net::Ipv4Addr::new(127, 0, 0, 9), "mirror")
        .expect("loopback mirror");
    let sources = serde_json::json!({
        "urls": [mirror.url()], "pins": [mirror.pin], "ca_certs": [world.ca.cert_pem()],
    });
    let root = |v| world.sign_root(&world.root_payload_with_sources(v, sources.clone()));
    mirror.publish("root/2.json", &root(2)).expect("publish");
    mirror
        .publish("config.json", &world.config_envelope(1))
        .expect("publish");
    mirror
        .server
        .push_fault(cloudsync_devserver::Fault::Status {
            method: None,
            status: 500,
            retry_after: None,
        });
    (mirror, root(1))
}

/// A loopback world for the item, event and audit checks: `in` and `sg`
/// (each with its CA in `ca_certs`, as a production config would carry a
/// private CA), `in` answering its first POST 503 with `Retry-After: 600`;
/// its root and config.
fn items_world(dir: &Path) -> (cloudsync_devserver::world::World, Vec<u8>, Vec<u8>) {
    use cloudsync_devserver::world::{standard_regions, World};
    let world = World::start(dir, standard_regions(&["in", "sg"])).expect("loopback tus servers");
    let mut payload = world.config_json(1);
    for id in ["in", "sg"] {
        payload["regions"][id]["ca_certs"] = serde_json::json!([world.ca.cert_pem()]);
    }
    world.servers["in"].push_fault(cloudsync_devserver::Fault::Status {
        method: Some("POST"),
        status: 503,
        retry_after: Some(600),
    });
    let (root, config) = (world.root_envelope.clone(), world.sign_config(&payload));
    (world, root, config)
}

/// Whether the config file a dev server wrote carries its CA in the
/// `ca_certs` of region `in` (issue 14, item 4).
fn config_carries_ca(config: &Path) -> bool {
    use base64::Engine as _;
    let envelope: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config).expect("config")).expect("JSON");
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().expect("payload"))
        .expect("base64");
    let payload: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
    payload["regions"]["in"]["ca_certs"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
}

#[test]
// Long: one scenario end to end; each step reads the state the previous one left.
fn c_program_passes_against_the_cdylib() {
    let _manifest = cloudsync_testkit::repo();
    let lib = lib_dir();
    assert!(
        lib.join("libcloudsync.so").exists(),
        "{} has no libcloudsync.so (the cdylib of this build)",
        lib.display()
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let exe = tmp.path().join("test_capi");
    let mut flags = vec!["-lpthread"];
    if cfg!(feature = "ffi-test-hooks") {
        flags.push("-DCLOUDSYNC_TEST_HOOKS");
    }
    cc::program("tests/c/test_capi.c", &exe, &flags);

    let env = envelopes();
    let write = |name: &str, bytes: &[u8]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).expect("write envelope");
        p
    };
    let root_path = write("root.json", &env.root);
    let config_path = write("config.json", &env.config);
    let config2_path = write("config2.json", &env.config2);
    let other_root_path = write("other-root.json", &env.other_root);
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).expect("work dir");
    let (world, auth_config) = auth_world(&tmp.path().join("server"));
    let (mirror, sources_root) = sources_root(&world);
    let auth_args = [
        write("auth-config.json", &auth_config),
        PathBuf::from(TOKEN),
        write("sources-root.json", &sources_root),
    ];
    let mut envs: Vec<(&str, std::ffi::OsString)> =
        vec![("CS_TEST_PKG_VERSION", env!("CARGO_PKG_VERSION").into())];
    let (items_world, items_root, items_config) = items_world(&tmp.path().join("items-server"));
    {
        envs.push((
            "CS_TEST_WORLD_ROOT",
            write("world-root.json", &items_root).into(),
        ));
        envs.push((
            "CS_TEST_WORLD_CONFIG",
            write("world-config.json", &items_config).into(),
        ));
    }
    // `cloudsync dev-server --regions in` as QA starts it (killed when dropped).
    let dev_server = cli::DevServer::start(&tmp.path().join("dev-server"), &["--regions", "in"]);
    {
        let (root, config) = (dev_server.path("root"), dev_server.path("config"));
        // Issue 14: the dev server's own files are enough to upload.
        assert!(
            config_carries_ca(Path::new(&config)),
            "the dev server's config must carry its CA in ca_certs"
        );
        envs.push(("CS_TEST_DEVSERVER_ROOT", root.into()));
        envs.push(("CS_TEST_DEVSERVER_CONFIG", config.into()));
    }

    // Output goes to files (no pipe to fill up while we poll for the exit).
    let stdout_path = tmp.path().join("stdout");
    let stderr_path = tmp.path().join("stderr");
    let mut child = Command::new(&exe)
        .arg(&root_path)
        .arg(&config_path)
        .arg(&work)
        .arg(&config2_path)
        .arg(&other_root_path)
        .args(&auth_args)
        .envs(envs)
        .env("LD_LIBRARY_PATH", &lib)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("run test_capi");
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for test_capi") {
            break Some(st);
        }
        if started.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let Some(status) = status else {
        panic!("test_capi hung for {CHILD_TIMEOUT:?} and was killed:\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    assert!(
        status.success(),
        "test_capi failed ({status:?}):\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    // Its notes (shown with --nocapture); no part skipped that this build can run.
    eprintln!("test_capi stderr:\n{stderr}");
    let ran = |what: &str| assert!(!stderr.contains(&format!("{what} skipped")), "{stderr}");
    ran("item, event and audit checks");
    ran("credential callback checks");
    ran("cs_refresh_config checks");
    ran("dev-server files check");
    assert!(
        !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
        "the token never reaches any output"
    );
    {
        // Two uploads with the token; the wrong token twice (the first try
        // and the one after the refresh); no request without a token.
        let server = &world.servers["in"];
        let stats = server.stats();
        assert_eq!(stats.uploads_completed, 2, "{stats:?}");
        assert_eq!(stats.unauthorized, 2, "{stats:?}");
        let seen = server.authorizations();
        let wrong = seen.iter().filter(|a| *a == "Bearer wrong-token").count();
        assert_eq!(wrong, 2, "{seen:?}");
        let right = format!("Bearer {TOKEN}");
        assert_eq!(
            seen.iter().filter(|a| **a == right).count() + wrong,
            seen.len()
        );
        assert_eq!(stats.authorization_headers as usize, seen.len());

        // The refresh: the request the injected 500 answered, the walk to
        // root 2 and the config, then the same walk with a conditional
        // request; never any user data.
        let asked = mirror.server.source_requests();
        let paths: Vec<&str> = asked.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/sources/root/2.json",
                "/sources/root/2.json",
                "/sources/root/3.json",
                "/sources/config.json",
                "/sources/root/3.json",
                "/sources/config.json",
            ]
        );
        let last = asked.last().expect("requests");
        assert!(
            last.headers.iter().any(|(n, _)| n == "if-none-match"),
            "{last:?}"
        );
        for r in &asked {
            assert!(
                r.headers
                    .iter()
                    .all(|(n, v)| n != "authorization" && n != "cookie" && !v.contains(TOKEN)),
                "{r:?}"
            );
        }
    }
    {
        // The items world: a's POST answered 503 (then a removed); c, b
        // (after retry_dead) and d uploaded; e held in flight.
        let stats = items_world.servers["in"].stats();
        assert_eq!(stats.uploads_completed, 3, "{stats:?}");
        assert_eq!(items_world.servers["sg"].stats().uploads_completed, 0);
    }
    if cfg!(feature = "ffi-test-hooks") {
        assert!(
            stderr.contains("deliberate panic"),
            "the panic hook ran inside the library: {stderr}"
        );
    }
}
