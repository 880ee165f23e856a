//! `cloudsync dev-server`: the loopback world as a long-running process, for
//! the JVM tests, emulator scripts and the curl benchmark.
//!
//! With `--mirror` it also serves the root's mirror (issue 13): `root.json`
//! is then a firmware root v1 whose `sources` list the mirror, and the
//! mirror serves `config.json` and `root/<N>.json` from a directory read on
//! every request. Publishing while it runs is writing a file there (aside,
//! then renamed into place); the ready file's `mirror` object names the
//! directory, the URL, the payloads in force and the signing keys.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use cloudsync::devserver::world::{standard_regions, World};

use super::Failure;

/// Flags of `cloudsync dev-server`.
#[derive(clap::Args)]
pub struct DevServerArgs {
    /// Comma-separated region ids (each gets 127.0.0.2, .3, ...).
    #[arg(long, default_value = "in,sg,us,br", value_delimiter = ',')]
    regions: Vec<String>,
    /// Directory for uploads, keys and the signed envelopes.
    #[arg(long)]
    dir: PathBuf,
    /// Written (atomically) once the servers listen: JSON with root, config, ca_pem, regions (and mirror).
    #[arg(long)]
    ready_file: PathBuf,
    /// Do not offer the checksum extension.
    #[arg(long)]
    no_checksum: bool,
    /// Require `Authorization: Bearer SECRET` from REGION's clients (401
    /// otherwise; the config then declares `"auth": "bearer"` for it).
    /// Repeat for several regions.
    #[arg(long = "token", value_name = "REGION=SECRET")]
    tokens: Vec<String>,
    /// Also serve the root's mirror (`sources`) over TLS on its own loopback
    /// address: `root.json` becomes a root v1 listing it, and it serves
    /// `config.json` and `root/<N>.json` from `<dir>/mirror/` (the ready file's
    /// `mirror.dir`). Publish while running by writing there (`cloudsync
    /// sign` with `mirror.root_key` / `mirror.config_key`), atomically.
    #[arg(long)]
    mirror: bool,
}

pub fn run(args: DevServerArgs) -> Result<ExitCode, Failure> {
    let ids: Vec<&str> = args.regions.iter().map(String::as_str).collect();
    let mut setups = standard_regions(&ids);
    for s in &mut setups {
        s.checksum = !args.no_checksum;
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
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| Failure::Usage(format!("cannot create --dir: {e}")))?;
    let world = World::start(&args.dir, setups)
        .map_err(|e| Failure::Usage(format!("cannot start servers: {e}")))?;
    let mirror = if args.mirror {
        // The first loopback address after the regions' (127.0.0.2, .3, ...).
        let n = u8::try_from(world.setups.len()).unwrap_or(u8::MAX).min(250);
        let addr = Ipv4Addr::new(127, 0, 0, 2 + n);
        let m = world
            .start_mirror(addr, "mirror")
            .map_err(|e| Failure::Usage(format!("cannot start the mirror: {e}")))?;
        Some(m)
    } else {
        None
    };
    world
        .write_ready_file_with(&args.ready_file, mirror.as_ref())
        .map_err(|e| Failure::Usage(format!("cannot write --ready-file: {e}")))?;
    if let Some(m) = &mirror {
        eprintln!(
            "mirror at {} serving {} (publish: write config.json or root/<N>.json there, then rename)",
            m.url(),
            m.dir.display()
        );
    }
    eprintln!("dev-server ready: {}", args.ready_file.display());
    // Serve until killed.
    loop {
        std::thread::park();
    }
}
