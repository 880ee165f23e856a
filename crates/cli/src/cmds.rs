//! One function per subcommand. Output is plain text, or JSON with `--json`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use cloudsync::config::model::{format_time, format_time_ms, unix_secs};
use cloudsync::config::sign::{sign_envelope, SigningKey};
use cloudsync::config::{
    verify_offline, TrustedRoot, Verified, CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE,
};
use cloudsync::{Agent, Error, Installed, State};

use crate::store::{read, Failure, Store};

type Out = Result<ExitCode, Failure>;

fn ok() -> Out {
    Ok(ExitCode::SUCCESS)
}

/// A time of the API (ms since the epoch) as RFC 3339 text for people.
pub fn time_text(ms: Option<i64>) -> Option<String> {
    ms.map(format_time_ms)
}

fn json<T: serde::Serialize>(v: &T) -> Out {
    outln!("{}", serde_json::to_string_pretty(v).expect("serialisable"));
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
    let mut f = opts.open(out).map_err(|e| crate::store::file_io(out, &e))?;
    f.write_all(key.to_file_text().as_bytes())
        .map_err(|e| crate::store::file_io(out, &e))?;
    outln!("keyid {}", key.keyid());
    outln!("public {}", key.public_hex());
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
    crate::out::bytes(&sign_envelope(pt, &body, &refs));
    outln!();
    ok()
}

pub fn verify(root: &Path, envelope: &Path) -> Out {
    let now = unix_secs(std::time::SystemTime::now());
    let (root, envelope) = (read(root)?, read(envelope)?);
    let result =
        TrustedRoot::from_initial(&root, now).and_then(|r| verify_offline(&r, &envelope, now));
    match result {
        Ok(Verified::Root { version }) => outln!("ok root version {version}"),
        Ok(Verified::Config {
            version,
            expires_at,
        }) => {
            outln!(
                "ok config version {version} expires {}",
                format_time(expires_at)
            )
        }
        Err(e) => {
            outln!("{}", e.kind());
            return Err(e.into());
        }
    }
    ok()
}

pub fn init(db: &Store, root: &Path) -> Out {
    let agent = Agent::open(db.path(), &crate::store::read_root(root)?)?;
    outln!("ok root version {}", agent.config_info()?.root_version);
    ok()
}

pub fn config_install(db: &Store, envelope: &Path) -> Out {
    match db.open_anchored()?.install(&read(envelope)?)? {
        Installed::Root { version } => outln!("installed root version {version}"),
        Installed::Config { version } => outln!("installed config version {version}"),
        Installed::Unchanged => outln!("unchanged"),
    }
    ok()
}

pub fn config_show(db: &Store, as_json: bool) -> Out {
    let info = db.open()?.config_info()?;
    if as_json {
        return json(&info);
    }
    outln!("root version   {}", info.root_version);
    match info.config_version {
        Some(v) => outln!("config version {v}"),
        None => outln!("config version none"),
    }
    outln!(
        "expires        {}{}",
        time_text(info.expires_at_ms).as_deref().unwrap_or("-"),
        if info.expired { " (expired)" } else { "" }
    );
    outln!("regions        {}", info.regions.join(" "));
    outln!(
        "refresh due    {}",
        time_text(info.refresh_due_at_ms)
            .as_deref()
            .unwrap_or("- (the root lists no sources)")
    );
    outln!("anchored       {}", info.anchored);
    if let Some(why) = &info.trust_reset {
        outln!("trust reset    {why}");
    }
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
        outln!("installed root version {v}");
    }
    if let Some(v) = r.config {
        outln!("installed config version {v}");
    }
    if r.unchanged() {
        outln!("unchanged");
    }
    if r.more_roots {
        outln!("more roots to come (refresh again)");
    }
    if let Some(kind) = &r.config_error {
        outln!("config not installed: {kind} (refresh again)");
    }
    outln!("mirror {}", r.mirror);
    ok()
}

pub fn set_country(db: &Store, cc: &str) -> Out {
    let agent = db.open_anchored()?;
    agent.set_account_country(cc)?;
    outln!(
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
        (None, _) => outln!("signed out"),
        (Some(_), Some(r)) => outln!("signed in, region {}", r.id()),
        (Some(_), None) => outln!("signed in, region none"),
    }
    ok()
}

pub fn account_show(db: &Store) -> Out {
    outln!(
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
        (Some(id), _) => outln!("{id}"),
        (None, Some(kind)) => outln!("none ({kind})"),
        (None, None) => outln!("none"),
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
            let md = std::fs::symlink_metadata(f).map_err(|e| crate::store::file_io(f, &e))?;
            if md.file_type().is_symlink() {
                return Err(named(Error::SourceSymlink));
            }
            if !md.is_file() {
                return Err(named(Error::InvalidArgument("not a regular file")));
            }
            std::path::absolute(f).map_err(|e| crate::store::file_io(f, &e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for id in agent.enqueue_all(&abs, service, priority)? {
        outln!("{id}");
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
    outln!(
        "pending {} uploading {} failed {} dead {} held {} done {} pending_bytes {}",
        s.pending,
        s.uploading,
        s.failed,
        s.dead,
        s.held,
        s.done,
        s.pending_bytes
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
    outln!("audit retention {retention} days");
    if prune || days.is_some() {
        outln!("pruned {pruned}");
    }
    ok()
}

pub fn list(db: &Store, as_json: bool, state: Option<&str>, after: i64, limit: u32) -> Out {
    if state == Some("done") {
        return crate::results::list_done(&db.open()?, as_json, after, limit);
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
        outln!(
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
    outln!("{n}");
    ok()
}

pub fn discard(db: &Store) -> Out {
    outln!("{}", db.open()?.discard_held()?);
    ok()
}

pub fn retry_dead(db: &Store) -> Out {
    outln!("{}", db.open()?.retry_dead()?);
    ok()
}

pub fn remove(db: &Store, id: i64) -> Out {
    db.open()?.remove(id)?;
    ok()
}

pub fn audit(db: &Store, as_json: bool, after: i64, limit: u32) -> Out {
    let rows = db.open()?.audit(after, limit)?;
    if as_json {
        return json(&rows);
    }
    for r in rows {
        outln!(
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
