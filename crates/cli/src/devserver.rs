//! `cloudsync dev-server`: the loopback world as a long-running process, for
//! QA, emulators, the JVM tests and the curl benchmark.
//!
//! What it writes into `--dir` is enough for any public surface (Java
//! `SyncAgent`, C `cs_*`, the CLI without `--test-ca`) to upload to it: the
//! config carries the dev CA in each region's `ca_certs`. It also writes the
//! root and config signing keys (mode 0600) and the payloads in force, so QA
//! can sign new configs under the same root with `cloudsync sign`.
//!
//! With `--mirror` it also serves the root's mirror (issue 13): `root.json`
//! is then a firmware root v1 whose `sources` list the mirror, and the
//! mirror serves `config.json` and `root/<N>.json` from a directory read on
//! every request. Publishing while it runs is writing a file there (aside,
//! then renamed into place).
//!
//! With `--admin` it also serves the test-only admin channel
//! ([`cloudsync_devserver::admin`]) on 127.0.0.1, named by the ready file's
//! `admin`: the JVM tests start their own servers through it.
//!
//! For an emulator or a phone, `--bind` / `--port` / `--public-host` put
//! every server on one address with consecutive ports, and the config, the
//! certificates and the URLs name the host the phone uses
//! (`docs/guide-qa.md`).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use cloudsync::config::model::unix_secs;
use cloudsync::config::{verify_offline, TrustedRoot};
use cloudsync_devserver::admin::AdminServer;
use cloudsync_devserver::mirror::Mirror;
use cloudsync_devserver::world::{standard_regions, RegionSetup, World};

use crate::store::Failure;

/// Flags of `cloudsync dev-server`.
#[derive(clap::Args)]
pub struct DevServerArgs {
    /// Comma-separated region ids (each gets 127.0.0.2, .3, ... unless `--bind` is given).
    #[arg(long, default_value = "in,sg,us,br", value_delimiter = ',')]
    regions: Vec<String>,
    /// Directory for uploads, the signed envelopes, the CA, the payloads in
    /// force and the signing keys (`root.key`, `config.key`, mode 0600).
    #[arg(long)]
    dir: PathBuf,
    /// Written (atomically) once the servers listen: JSON naming root,
    /// config, ca_pem, root_key, config_key, root_payload, config_payload,
    /// regions (and mirror, admin).
    #[arg(long)]
    ready_file: PathBuf,
    /// Listen on this IPv4 address (e.g. 127.0.0.1 for `adb reverse` and the
    /// emulator's 10.0.2.2, 0.0.0.0 for a phone on the LAN), every region on
    /// its own port. Default: each region on its own loopback address.
    #[arg(long, value_name = "ADDR")]
    bind: Option<Ipv4Addr>,
    /// First port: region N (in `--regions` order) listens on PORT+N-1, the
    /// mirror on the next one. Default: free ports (see the ready file).
    #[arg(long)]
    port: Option<u16>,
    /// The host the client uses to reach the servers (IPv4 address or DNS
    /// name; needs `--bind`; default: the `--bind` address). It is in the
    /// config's URLs and `allowed_hosts`, the certificates' SANs and, for an
    /// IP address, the regions' `networks`. E.g. 10.0.2.2 for an emulator.
    #[arg(long, value_name = "HOST", requires = "bind")]
    public_host: Option<String>,
    /// Do not offer the checksum extension.
    #[arg(long)]
    no_checksum: bool,
    /// Require `Authorization: Bearer SECRET` from REGION's clients (401
    /// otherwise; the config then declares `"auth": "bearer"` for it).
    /// Repeat for several regions.
    #[arg(long = "token", value_name = "REGION=SECRET")]
    tokens: Vec<String>,
    /// Also serve the root's mirror (`sources`) over TLS (on the next
    /// loopback address, or on `--bind`): `root.json` becomes a root v1
    /// listing it, and it serves `config.json` and `root/<N>.json` from
    /// `<dir>/mirror/` (the ready file's `mirror.dir`). Publish while running
    /// by writing there (`cloudsync sign` with `root_key` / `config_key`),
    /// atomically.
    #[arg(long)]
    mirror: bool,
    /// Also serve the test-only admin channel: plain HTTP with JSON on
    /// 127.0.0.1 (a free port; the ready file's `admin` URL), refusing every
    /// peer that is not loopback. Tests in another process (the JVM tests)
    /// start tus servers and mirrors through it, set their bearer token and
    /// failures, and read their counters and the `Authorization` headers they
    /// received. No authentication: never for a shared machine.
    #[arg(long)]
    admin: bool,
    /// Do not log requests. By default each request is one line on stderr:
    /// `<region> <METHOD> <path> <status> <body bytes>B` (never a header value
    /// or a token, never a body), to see whether a phone reached the server
    /// and what it was answered (e.g. 401).
    #[arg(long)]
    quiet: bool,
}

/// The port of the `n`th server (0-based) from `--port`, or 0 (any free port).
fn port_of(first: Option<u16>, n: usize) -> Result<u16, Failure> {
    match first {
        None => Ok(0),
        Some(p) => u16::try_from(usize::from(p) + n)
            .map_err(|_| Failure::Usage(format!("--port {p}: not enough ports above it"))),
    }
}

/// `cloudsync dev-server`: starts the servers (and the mirror), writes the
/// ready file once what it names checks out, then serves until killed.
pub fn run(args: DevServerArgs) -> Result<ExitCode, Failure> {
    let public = public_host(&args)?;
    let setups = region_setups(&args, public.as_deref())?;
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| Failure::Usage(format!("cannot create --dir: {e}")))?;
    let n = setups.len();
    let world = World::start(&args.dir, setups)
        .map_err(|e| Failure::Usage(format!("cannot start servers: {e}")))?;
    let mirror = if args.mirror {
        Some(start_mirror(&world, &args, public.as_deref(), n)?)
    } else {
        None
    };
    let admin = args.admin.then(|| start_admin(&args)).transpose()?;
    let extra: Vec<(&str, serde_json::Value)> =
        admin.iter().map(|a| ("admin", a.url().into())).collect();
    world
        .write_ready_file_full(&args.ready_file, mirror.as_ref(), &extra)
        .map_err(|e| Failure::Usage(format!("cannot write --ready-file: {e}")))?;
    if let Err(e) = check_written(&world) {
        // Not ready after all: whoever waits for the ready file must not start.
        let _ = std::fs::remove_file(&args.ready_file);
        return Err(e);
    }
    for id in world.servers.keys() {
        eprintln!("region {id:<3} {}", world.url(id));
    }
    if let Some(m) = &mirror {
        eprintln!(
            "mirror at {} serving {} (publish: write config.json or root/<N>.json there, then rename)",
            m.url(),
            m.dir.display()
        );
    }
    if let Some(a) = &admin {
        eprintln!("admin channel (test-only, loopback) at {}", a.url());
    }
    eprintln!("dev-server ready: {}", args.ready_file.display());
    // Serve until killed.
    loop {
        std::thread::park();
    }
}

/// The host the client uses: `--public-host`, else the `--bind` address
/// (not 0.0.0.0), else none (each region on its own loopback address).
fn public_host(args: &DevServerArgs) -> Result<Option<String>, Failure> {
    let public = match (&args.public_host, args.bind) {
        (Some(h), _) => Some(h.clone()),
        (None, Some(b)) if b.is_unspecified() => {
            return Err(Failure::Usage(
                "--bind 0.0.0.0 needs --public-host HOST (the address the phone uses)".into(),
            ))
        }
        (None, Some(b)) => Some(b.to_string()),
        (None, None) => None,
    };
    if let Some(h) = &public {
        if h.is_empty() || !h.is_ascii() || h.contains(['/', ':', ' ']) {
            return Err(Failure::Usage(
                "--public-host takes an IPv4 address or an ASCII DNS name".into(),
            ));
        }
    }
    Ok(public)
}

/// Each region's server as the flags ask: address, port, checksum, request
/// log, bearer token.
fn region_setups(args: &DevServerArgs, public: Option<&str>) -> Result<Vec<RegionSetup>, Failure> {
    let ids: Vec<&str> = args.regions.iter().map(String::as_str).collect();
    let mut setups = standard_regions(&ids);
    for (n, s) in setups.iter_mut().enumerate() {
        s.checksum = !args.no_checksum;
        s.log_requests = !args.quiet;
        s.port = port_of(args.port, n)?;
        if let Some(b) = args.bind {
            s.addr = b;
            s.public_host = public.map(str::to_string);
        }
    }
    for t in &args.tokens {
        // The secret is never echoed, not even in a usage error.
        let (region, secret) = t
            .split_once('=')
            .filter(|(_, secret)| !secret.is_empty())
            .ok_or_else(|| Failure::Usage("--token takes REGION=SECRET".into()))?;
        let setup = setups.iter_mut().find(|s| s.id == region).ok_or_else(|| {
            let ids = args.regions.join(",");
            Failure::Usage(format!(
                "--token REGION=SECRET: REGION must be one of {ids}"
            ))
        })?;
        setup.bearer_token = Some(secret.to_string());
    }
    Ok(setups)
}

/// The root's mirror, after the `n` regions: on `--bind` and the next port,
/// or on the next loopback address.
fn start_mirror(
    world: &World,
    args: &DevServerArgs,
    public: Option<&str>,
    n: usize,
) -> Result<Mirror, Failure> {
    let port = port_of(args.port, n)?;
    match (args.bind, public) {
        (Some(b), Some(host)) => world.start_mirror_at(b, port, host, "mirror"),
        _ => {
            // The first loopback address after the regions' (127.0.0.2, .3, ...).
            let k = u8::try_from(world.setups.len()).unwrap_or(u8::MAX).min(250);
            let addr = Ipv4Addr::new(127, 0, 0, 2 + k);
            world.start_mirror_at(addr, port, &addr.to_string(), "mirror")
        }
    }
    .map_err(|e| Failure::Usage(format!("cannot start the mirror: {e}")))
}

/// The test-only admin channel on 127.0.0.1 (a free port); its servers
/// keep their files under `<dir>/admin/`.
fn start_admin(args: &DevServerArgs) -> Result<AdminServer, Failure> {
    let bind = (Ipv4Addr::LOCALHOST, 0).into();
    AdminServer::start(bind, args.dir.join("admin"), !args.quiet)
        .map_err(|e| Failure::Usage(format!("cannot start the admin channel: {e}")))
}

/// Checks the written root and config the way an agent will (e.g. a
/// `--public-host` the config rules refuse), so a bad set-up fails here
/// rather than on the phone.
fn check_written(world: &World) -> Result<(), Failure> {
    let read = |name: &str| {
        std::fs::read(world.dir().join(name))
            .map_err(|e| Failure::Usage(format!("cannot read back {name}: {e}")))
    };
    let now = unix_secs(std::time::SystemTime::now());
    let (root, config) = (read("root.json")?, read("config.json")?);
    TrustedRoot::from_initial(&root, now)
        .and_then(|root| verify_offline(&root, &config, now))
        .map(|_| ())
        .map_err(|e| {
            Failure::Usage(format!(
                "the config it would serve is refused ({}: {e}); check --public-host",
                e.kind()
            ))
        })
}
