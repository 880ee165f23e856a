//! `cloudsync dev-server`: the loopback world as a long-running process, for
//! the JVM tests, emulator scripts and the curl benchmark.

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
    /// Written (atomically) once the servers listen: JSON with root, config, ca_pem, regions.
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
    world
        .write_ready_file(&args.ready_file)
        .map_err(|e| Failure::Usage(format!("cannot write --ready-file: {e}")))?;
    eprintln!("dev-server ready: {}", args.ready_file.display());
    // Serve until killed.
    loop {
        std::thread::park();
    }
}
