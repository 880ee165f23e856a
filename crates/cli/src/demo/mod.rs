//! `cloudsync demo`: the product end to end on loopback, with proof of
//! residency from the servers' own byte counters, and uploads on behalf of
//! a signed-in account (bearer tokens, a refresh, a sign-out). The agent
//! starts from a firmware root v1 and fetches a root rotation and the config
//! from the root's mirror itself.

mod checks;
mod files;
mod setup;
mod steps;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::store::Failure;
use checks::Checks;
use files::io;
use steps::Demo;

/// Flags of `cloudsync demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Account country for the first part (ISO 3166-1 alpha-2).
    #[arg(long, default_value = "IN")]
    country: String,
    /// Country the account moves to in the second part.
    #[arg(long, default_value = "SG")]
    switch_to: String,
    /// Size of the largest generated file, in MiB.
    #[arg(long, default_value_t = 48)]
    big_mib: u64,
    /// Work directory (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Runs the demo (steps 1 to 9, then the summary) in `--dir` or a temporary
/// directory; exit status 1 if a check failed.
pub fn run(args: DemoArgs) -> Result<ExitCode, Failure> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(io)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().map_err(io)?;
            tmp.path().to_path_buf()
        }
    };
    let mut checks = Checks::new();
    let (tokens, world) = setup::start_regions(&dir)?;
    let (agent, region, trust) =
        setup::trust_from_mirror(&dir, &world, &tokens, &args.country, &mut checks)?;
    let mut demo = Demo {
        files_dir: dir.join("files"),
        tokens,
        world,
        agent,
        region,
        checks,
    };
    let (ids, paths, total) = demo.enqueue_files(args.big_mib)?;
    let before = demo.world.bytes_by_region();
    let report = demo.upload(total)?;
    let audit = demo.print_audit()?;
    let mut creds = demo.check_first_upload(&ids, &paths, &report, &audit, &before);
    creds &= demo.token_refresh()?;
    creds &= demo.sign_out_and_in()?;
    let (held, moved_creds) = demo.move_account(&args.country, &args.switch_to)?;
    creds &= moved_creds;
    demo.summary(trust, creds, held)
}
