//! `cloudsync run`: the bearer token file, the progress bar and the run's
//! report and exit status.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cloudsync::auth::{CredentialRequest, ProviderError, Secret};
use cloudsync::error::AuthFailure;
use cloudsync::{Agent, AgentOptions, Error, RunEvent, RunReport};
use zeroize::Zeroizing;

use crate::store::{read, Failure, Store};

/// The most a token file may hold: a bearer token is far shorter.
const TOKEN_FILE_MAX: u64 = 64 * 1024;

/// The token in `path`: its first line without the line ending. Errors name
/// the file as the user typed it, never its content. Like ssh with a key, the
/// file must be a regular file only its owner can access, and is never read
/// through a symbolic link.
fn read_token(path: &Path) -> Result<Secret, String> {
    use std::io::Read;
    let name = path.display();
    let cannot = |e: std::io::Error| format!("cannot read --token-file {name}: {}", e.kind());
    // Looked at before opening: a FIFO would block the run.
    let md = std::fs::symlink_metadata(path).map_err(cannot)?;
    check_token_file(path, &md)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // What is opened is what was looked at: no link, and nothing that can block.
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = opts.open(path).map_err(|e| match e.raw_os_error() {
        #[cfg(unix)]
        Some(libc::ELOOP) => format!("--token-file {name} is a symbolic link"),
        _ => cannot(e),
    })?;
    // Again on what was opened, in case the path changed since the look.
    check_token_file(path, &file.metadata().map_err(cannot)?)?;
    let mut text = Zeroizing::new(Vec::with_capacity(
        usize::try_from(md.len().min(TOKEN_FILE_MAX) + 1).expect("64 KiB fits usize"),
    ));
    file.take(TOKEN_FILE_MAX + 1)
        .read_to_end(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > TOKEN_FILE_MAX {
        return Err(format!("--token-file {name} is larger than 64 KiB"));
    }
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(format!("--token-file {name} is empty"));
    }
    Secret::from_bytes(line).map_err(|_| format!("--token-file {name} is not UTF-8"))
}

/// A token file must be a regular file (not a link) that group and others
/// cannot access (mode `& 0o077 == 0`).
fn check_token_file(path: &Path, md: &std::fs::Metadata) -> Result<(), String> {
    let name = path.display();
    if md.file_type().is_symlink() {
        return Err(format!("--token-file {name} is a symbolic link"));
    }
    if !md.is_file() {
        return Err(format!("--token-file {name} is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = md.permissions().mode();
        if mode & 0o077 != 0 {
            let how = if mode & 0o044 != 0 {
                "readable"
            } else {
                "accessible"
            };
            return Err(format!(
                "--token-file {name} is {how} by group or others (chmod 600 {name})"
            ));
        }
    }
    Ok(())
}

/// Flags of `cloudsync run`.
pub struct RunFlags {
    /// Print the report as JSON.
    pub json: bool,
    /// Deadline of the run.
    pub max_seconds: Option<u64>,
    /// An extra CA for loopback test servers (hidden flag).
    pub test_ca: Option<PathBuf>,
    /// Bytes per PATCH (hidden flag).
    pub chunk_size: Option<u64>,
    /// Lease lifetime (hidden flag).
    pub lease_secs: Option<u64>,
    /// Bearer token file.
    pub token_file: Option<PathBuf>,
}

/// What the progress bar shows after a run event: its label, length and
/// position, set in that order (the label first: a redraw triggered by the
/// position shows the item the bytes belong to). An item's label is set when
/// it starts, before any of its bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct BarUpdate {
    /// `item N`.
    pub label: String,
    /// The item's size.
    pub length: u64,
    /// Bytes the server holds.
    pub position: u64,
}

/// The bar's update for `event`, if it changes the bar.
pub fn bar_update(event: &RunEvent) -> Option<BarUpdate> {
    match event {
        RunEvent::Started { item_id, size } => Some(BarUpdate {
            label: format!("item {item_id}"),
            length: *size,
            position: 0,
        }),
        RunEvent::Progress(p) => Some(BarUpdate {
            label: format!("item {}", p.item_id),
            length: p.total,
            position: p.sent,
        }),
        _ => None,
    }
}

fn draw(bar: &indicatif::ProgressBar, u: BarUpdate) {
    bar.set_message(u.label);
    bar.set_length(u.length);
    bar.set_position(u.position);
}

/// A service that requires a token, and no `--token-file`: the library's
/// words, then what to do.
fn explain(e: Error, token_file: bool) -> Failure {
    match e {
        Error::Unauthorized(AuthFailure::NoProvider) if !token_file => Failure::Incomplete {
            kind: e.kind().name().into(),
            message: format!(
                "{}: pass --token-file FILE (the bearer token on its first line, mode 0600)",
                AuthFailure::NoProvider
            ),
        },
        e => e.into(),
    }
}

/// `cloudsync run`: one run of the queue (with a progress bar on a
/// terminal), its report, and the exit status (a signal's if one stopped it).
pub fn run(db: &Store, f: RunFlags) -> Result<ExitCode, Failure> {
    crate::interrupt::install();
    if !db.exists() {
        return Err(Failure::Usage("database does not exist".into()));
    }
    if let Some(path) = &f.token_file {
        read_token(path).map_err(Failure::Usage)?;
    }
    let agent = db.open_with(agent_options(&f)?, true)?;
    let token_file = f.token_file.is_some();
    if let Some(path) = f.token_file {
        // Read again at each ask: a refresh picks up a token rotated in the file.
        agent.set_credential_provider(Some(Arc::new(move |_: &CredentialRequest<'_>| {
            read_token(&path).map(Some).map_err(ProviderError::new)
        })));
    }
    // Any u64: the library caps the run's deadline (no `Instant` overflow).
    let max = Duration::from_secs(f.max_seconds.unwrap_or(24 * 3600));
    let (report, signal) = run_watched(&agent, max);
    let report = match (report, signal) {
        (Ok(r), _) => r,
        (Err(e), None) => return Err(explain(e, token_file)),
        (Err(e), Some(sig)) => {
            eprintln!("error: {}", crate::store::kind_once(&e));
            return Ok(ExitCode::from(crate::interrupt::exit_status(sig)));
        }
    };
    print_report(&report, f.json);
    if let Some(sig) = signal {
        return Ok(ExitCode::from(crate::interrupt::exit_status(sig)));
    }
    crate::results::run_outcome(&agent, &report)
}

/// The agent's options from `--test-ca`, `--chunk-size` and `--lease-secs`.
fn agent_options(f: &RunFlags) -> Result<AgentOptions, Failure> {
    let mut opts = AgentOptions::default();
    if let Some(ca) = &f.test_ca {
        use rustls::pki_types::pem::PemObject as _;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(&read(ca)?)
            .map_err(|_| Failure::Usage("--test-ca is not a PEM certificate".into()))?;
        opts.upload.extra_roots.push(der);
    }
    if let Some(c) = f.chunk_size {
        if c == 0 {
            // The library refuses it too (invalid_argument): a run would spin.
            return Err(Failure::Usage("--chunk-size must be at least 1".into()));
        }
        opts.upload.chunk_size = c;
    }
    if let Some(l) = f.lease_secs {
        // Any u64 is a valid Duration; the lease's expiry saturates (ops::lease).
        opts.lease_ttl = Duration::from_secs(l.max(1));
    }
    Ok(opts)
}

/// One run of at most `max`, watched for SIGINT/SIGTERM (the signal, if one
/// came), with a progress bar when stderr is a terminal.
fn run_watched(agent: &Agent, max: Duration) -> (cloudsync::Result<RunReport>, Option<i32>) {
    if !std::io::stderr().is_terminal() {
        return crate::interrupt::watch(agent, None, || agent.run_once(max, &mut |_| true));
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let r = crate::interrupt::watch(agent, Some(&bar), || {
        agent.run_with_events(max, &mut |e| {
            if let Some(u) = bar_update(e) {
                draw(&bar, u);
            }
            true
        })
    });
    bar.finish_and_clear();
    r
}

/// The run's report on stdout: JSON, or one line.
fn print_report(report: &RunReport, json: bool) {
    let stopped = crate::results::snake(&report.stopped);
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(report).expect("serialisable")
        );
    } else {
        outln!(
            "region {} uploaded {} bytes {} failed {} dead {} held {} remaining {} stopped {stopped}",
            report.region,
            report.uploaded,
            report.bytes,
            report.failed,
            report.dead,
            report.held,
            report.remaining,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The label names the item whose bytes are shown, from its start: the
    /// bar never shows an item's bytes under the previous item's label.
    #[test]
    fn the_label_names_the_item_being_uploaded() {
        let one = RunEvent::Progress(cloudsync::Progress {
            item_id: 1,
            sent: 10,
            total: 10,
        });
        assert_eq!(bar_update(&one).unwrap().label, "item 1");
        let started = bar_update(&RunEvent::Started {
            item_id: 2,
            size: 300,
        })
        .unwrap();
        assert_eq!(
            started,
            BarUpdate {
                label: "item 2".into(),
                length: 300,
                position: 0
            }
        );
        assert_eq!(
            bar_update(&RunEvent::Done {
                item_id: 2,
                bytes: 300
            }),
            None
        );
    }
}
