//! One function per subcommand. Output is plain text, or JSON with `--json`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cloudsync::auth::{CredentialRequest, ProviderError, Secret};
use zeroize::Zeroizing;

use cloudsync::config::model::{format_time, unix_secs};
use cloudsync::config::sign::{sign_envelope, SigningKey};
use cloudsync::config::{
    verify_offline, TrustedRoot, Verified, CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE,
};
use cloudsync::{Agent, AgentOptions, Error, Installed, State};

use super::{read, Failure, Store};

type Out = Result<ExitCode, Failure>;

fn ok() -> Out {
    Ok(ExitCode::SUCCESS)
}

fn json<T: serde::Serialize>(v: &T) -> Out {
    println!("{}", serde_json::to_string_pretty(v).expect("serialisable"));
    ok()
}

pub fn keygen(out: &Path) -> Out {
    let key = SigningKey::generate()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(out).map_err(|e| super::file_io(out, &e))?;
    f.write_all(key.to_file_text().as_bytes())
        .map_err(|e| super::file_io(out, &e))?;
    println!("keyid {}", key.keyid());
    println!("public {}", key.public_hex());
    ok()
}

pub fn sign(root: bool, keys: &[std::path::PathBuf], payload: &Path) -> Out {
    let keys = keys
        .iter()
        .map(|k| {
            let text =
                String::from_utf8(read(k)?).map_err(|_| Failure::Op(Error::malformed_key()))?;
            Ok(SigningKey::from_file_text(&text)?)
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let body = read(payload)?;
    // Refuse to sign what the agent would refuse to parse.
    serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| {
        Failure::Op(Error::Malformed {
            what: "payload",
            reason: format!("not JSON at line {}", e.line()),
        })
    })?;
    let pt = if root {
        ROOT_PAYLOAD_TYPE
    } else {
        CONFIG_PAYLOAD_TYPE
    };
    let refs: Vec<&SigningKey> = keys.iter().collect();
    std::io::stdout()
        .write_all(&sign_envelope(pt, &body, &refs))
        .expect("stdout");
    println!();
    ok()
}

pub fn verify(root: &Path, envelope: &Path) -> Out {
    let now = unix_secs(std::time::SystemTime::now());
    let (root, envelope) = (read(root)?, read(envelope)?);
    let result =
        TrustedRoot::from_initial(&root, now).and_then(|r| verify_offline(&r, &envelope, now));
    match result {
        Ok(Verified::Root { version }) => println!("ok root version {version}"),
        Ok(Verified::Config {
            version,
            expires_at,
        }) => {
            println!(
                "ok config version {version} expires {}",
                format_time(expires_at)
            )
        }
        Err(e) => {
            println!("{}", e.kind());
            return Err(e.into());
        }
    }
    ok()
}

pub fn init(db: &Store, root: &Path) -> Out {
    let agent = Agent::open(db.path(), &super::read_root(root)?)?;
    println!("ok root version {}", agent.config_info()?.root_version);
    ok()
}

pub fn config_install(db: &Store, envelope: &Path) -> Out {
    match db.open_anchored()?.install(&read(envelope)?)? {
        Installed::Root { version } => println!("installed root version {version}"),
        Installed::Config { version } => println!("installed config version {version}"),
        Installed::Unchanged => println!("unchanged"),
    }
    ok()
}

pub fn config_show(db: &Store, as_json: bool) -> Out {
    let info = db.open()?.config_info()?;
    if as_json {
        return json(&info);
    }
    println!("root version   {}", info.root_version);
    match info.config_version {
        Some(v) => println!("config version {v}"),
        None => println!("config version none"),
    }
    println!(
        "expires        {}{}",
        info.expires_at.as_deref().unwrap_or("-"),
        if info.expired { " (expired)" } else { "" }
    );
    println!("regions        {}", info.regions.join(" "));
    println!(
        "refresh due    {}",
        info.refresh_due_at
            .as_deref()
            .unwrap_or("- (the root lists no sources)")
    );
    ok()
}

pub fn config_refresh(db: &Store, as_json: bool) -> Out {
    let r = db.open_anchored()?.refresh_config()?;
    if as_json {
        let mut v = serde_json::to_value(&r).expect("serialisable");
        v["unchanged"] = r.unchanged().into();
        return json(&v);
    }
    for v in &r.roots {
        println!("installed root version {v}");
    }
    if let Some(v) = r.config {
        println!("installed config version {v}");
    }
    if r.unchanged() {
        println!("unchanged");
    }
    println!("mirror {}", r.mirror);
    ok()
}

pub fn set_country(db: &Store, cc: &str) -> Out {
    let agent = db.open_anchored()?;
    agent.set_account_country(cc)?;
    println!(
        "{}",
        agent
            .approved_region()
            .ok()
            .flatten()
            .map(|r| r.id().to_string())
            .unwrap_or_else(|| "none".into())
    );
    ok()
}

pub fn account_set(db: &Store, id: Option<&str>, country: Option<&str>) -> Out {
    let agent = db.open_anchored()?;
    agent.set_account(id, country)?;
    match (id, agent.approved_region().ok().flatten()) {
        (None, _) => println!("signed out"),
        (Some(_), Some(r)) => println!("signed in, region {}", r.id()),
        (Some(_), None) => println!("signed in, region none"),
    }
    ok()
}

pub fn account_show(db: &Store) -> Out {
    println!(
        "{}",
        match db.open()?.signed_in()? {
            Some(true) => "signed in",
            Some(false) => "signed out",
            None => "none",
        }
    );
    ok()
}

pub fn region_show(db: &Store, as_json: bool) -> Out {
    // An expired or missing config is an answer here ("none"), not a failure.
    let (region, reason) = match db.open()?.approved_region() {
        Ok(Some(r)) => (Some(r.id().to_string()), None),
        Ok(None) => (None, None),
        Err(e) => (None, Some(e.kind().name())),
    };
    if as_json {
        return json(&serde_json::json!({"region": region, "reason": reason}));
    }
    match (region, reason) {
        (Some(id), _) => println!("{id}"),
        (None, Some(kind)) => println!("none ({kind})"),
        (None, None) => println!("none"),
    }
    ok()
}

pub fn enqueue(db: &Store, service: &str, priority: i32, files: &[std::path::PathBuf]) -> Out {
    let agent = db.open()?;
    let abs = files
        .iter()
        .map(|f| {
            // The checks the library makes, here naming the file as typed.
            let named = |e: Error| Failure::File(f.clone(), e);
            let md = std::fs::symlink_metadata(f).map_err(|e| super::file_io(f, &e))?;
            if md.file_type().is_symlink() {
                return Err(named(Error::SourceSymlink));
            }
            if !md.is_file() {
                return Err(named(Error::InvalidArgument("not a regular file")));
            }
            std::path::absolute(f).map_err(|e| super::file_io(f, &e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for id in agent.enqueue_all(&abs, service, priority)? {
        println!("{id}");
    }
    ok()
}

pub fn status(db: &Store, as_json: bool) -> Out {
    let agent = db.open()?;
    let s = agent.stats()?;
    if as_json {
        #[derive(serde::Serialize)]
        struct Status {
            #[serde(flatten)]
            stats: cloudsync::queue::QueueStats,
            audit_retention_days: u32,
        }
        return json(&Status {
            stats: s,
            audit_retention_days: agent.audit_retention_days()?,
        });
    }
    println!(
        "pending {} uploading {} failed {} dead {} held {} done {} pending_bytes {}",
        s.pending, s.uploading, s.failed, s.dead, s.held, s.done, s.pending_bytes
    );
    ok()
}

/// `audit-retention`: shows the retention, or sets it (`--days`, which prunes
/// what it makes due) and/or prunes now (`--prune`, until nothing is due).
pub fn audit_retention(db: &Store, days: Option<u32>, prune: bool, as_json: bool) -> Out {
    let agent = db.open()?;
    let mut last = match days {
        Some(d) => agent.set_audit_retention_days(d)?,
        None if prune => agent.prune_audit()?,
        None => 0,
    };
    let mut pruned = last;
    // A call prunes a bounded number of rows: the CLI goes on until none is due.
    let per_call = u64::from(cloudsync::agent::PRUNE_BATCHES_PER_CALL)
        * u64::from(cloudsync::queue::ops::PRUNE_BATCH);
    while last == per_call {
        last = agent.prune_audit()?;
        pruned += last;
    }
    let retention = agent.audit_retention_days()?;
    if as_json {
        return json(&serde_json::json!({
            "audit_retention_days": retention,
            "pruned": pruned,
        }));
    }
    println!("audit retention {retention} days");
    if prune || days.is_some() {
        println!("pruned {pruned}");
    }
    ok()
}

pub fn list(db: &Store, as_json: bool, state: Option<&str>, after: i64, limit: u32) -> Out {
    if state == Some("done") {
        return super::results::list_done(&db.open()?, as_json, after, limit);
    }
    let state = state
        .map(|s| {
            s.parse::<State>().map_err(|_| {
                Failure::Usage(format!(
                    "unknown state {s:?} (pending, uploading, failed, dead, held, done)"
                ))
            })
        })
        .transpose()?;
    let items = db.open()?.list(state, after, limit)?;
    if as_json {
        return json(&items);
    }
    // Columns are stable (scripts cut them); held_reason and account are in --json.
    for i in items {
        println!(
            "{}\t{}\t{}\t{}\t{}/{}\t{}",
            i.id,
            i.state,
            i.region.as_deref().unwrap_or("-"),
            i.service,
            i.confirmed_offset,
            i.size,
            i.path
        );
    }
    ok()
}

pub fn rehome(db: &Store, to: Option<&str>) -> Out {
    let agent = db.open_anchored()?;
    let n = match to {
        Some(region) => agent.rehome_to(region)?,
        None => agent.rehome()?,
    };
    println!("{n}");
    ok()
}

pub fn discard(db: &Store) -> Out {
    println!("{}", db.open()?.discard_held()?);
    ok()
}

pub fn retry_dead(db: &Store) -> Out {
    println!("{}", db.open()?.retry_dead()?);
    ok()
}

pub fn remove(db: &Store, id: i64) -> Out {
    db.open()?.remove(id)?;
    ok()
}

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

pub fn run(db: &Store, f: RunFlags) -> Out {
    if !db.exists() {
        return Err(Failure::Usage("database does not exist".into()));
    }
    if let Some(path) = &f.token_file {
        read_token(path).map_err(Failure::Usage)?;
    }
    let mut opts = AgentOptions::default();
    if let Some(ca) = &f.test_ca {
        use rustls::pki_types::pem::PemObject as _;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(&read(ca)?)
            .map_err(|_| Failure::Usage("--test-ca is not a PEM certificate".into()))?;
        opts.upload.extra_roots.push(der);
    }
    if let Some(c) = f.chunk_size {
        opts.upload.chunk_size = c;
    }
    if let Some(l) = f.lease_secs {
        opts.lease_ttl = Duration::from_secs(l.max(1));
    }
    let agent = db.open_with(opts, true)?;
    if let Some(path) = f.token_file {
        // Read again at each ask: a refresh picks up a token rotated in the file.
        agent.set_credential_provider(Some(Arc::new(move |_: &CredentialRequest<'_>| {
            read_token(&path).map(Some).map_err(ProviderError::new)
        })));
    }
    let max = Duration::from_secs(f.max_seconds.unwrap_or(24 * 3600));
    let report = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        let r = agent.run_once(max, &mut |p| {
            bar.set_length(p.total);
            bar.set_position(p.sent);
            bar.set_message(format!("item {}", p.item_id));
            true
        });
        bar.finish_and_clear();
        r?
    } else {
        agent.run_once(max, &mut |_| true)?
    };
    let stopped = super::results::snake(&report.stopped);
    if f.json {
        json(&report)?;
    } else {
        println!(
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
    super::results::run_outcome(&agent, &report)
}

pub fn audit(db: &Store, as_json: bool, after: i64, limit: u32) -> Out {
    let rows = db.open()?.audit(after, limit)?;
    if as_json {
        return json(&rows);
    }
    for r in rows {
        println!(
            "{}\titem {}\t{}\t{}\t{}\t{} bytes\tsent {}\t{}",
            r.id,
            r.item_id,
            r.region,
            r.host,
            r.peer_ip.as_deref().unwrap_or("-"),
            r.bytes,
            r.sent_bytes.map_or("-".to_string(), |n| n.to_string()),
            r.sha256
        );
    }
    ok()
}
