//! What the CLI shows about results: finished items (`list --state done`,
//! from the audit trail) and what a `run` left behind (its exit status and
//! `error:` line).

use std::process::ExitCode;

use cloudsync::{Agent, RunReport, State};

use crate::store::Failure;

/// The snake_case name serde gives a unit enum value (`StopReason::TimeUp` →
/// `time_up`), the spelling of every name the CLI prints.
pub fn snake<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

/// `list --state done`: finished uploads, read from the audit trail (an
/// item leaves the queue when the server confirms it). Text rows have the
/// columns of `list` (`id state region service confirmed/size path`), with
/// `-` for the path, which is not kept after the upload; JSON rows have the
/// fields of `list --json` (path `null`) plus the audit row's `audit_id`,
/// `host`, `peer_ip`, `sha256` and `finished_at`. Paged like the audit it
/// reads: `after` is an `audit_id`.
pub fn list_done(
    agent: &Agent,
    as_json: bool,
    after: i64,
    limit: u32,
) -> Result<ExitCode, Failure> {
    let rows = agent.audit(after, limit)?;
    if as_json {
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.item_id, "path": null, "service": r.service, "size": r.bytes,
                    "region": r.region, "state": "done", "confirmed_offset": r.bytes,
                    "audit_id": r.id, "host": r.host, "peer_ip": r.peer_ip,
                    "sha256": r.sha256, "finished_at": r.finished_at,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&items).expect("serialisable")
        );
        return Ok(ExitCode::SUCCESS);
    }
    for r in rows {
        outln!(
            "{}\tdone\t{}\t{}\t{}/{}\t-",
            r.item_id,
            r.region,
            r.service,
            r.bytes,
            r.bytes
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn items(n: u64) -> String {
    if n == 1 {
        "1 item".into()
    } else {
        format!("{n} items")
    }
}

/// Exit 0 when the run left nothing failed or pending and no attempt
/// failed; otherwise exit 1 with `error: <kind>: <message>`, where kind is
/// that of a remaining failure (the first failed item's last error, else
/// the last dead one's if items went dead in this run) or `incomplete`
/// (items wait, none failed: e.g. the run's time was up, or an item is left
/// `uploading` because the file stayed locked), and the message
/// counts what remains and shows that item's error.
pub fn run_outcome(agent: &Agent, report: &RunReport) -> Result<ExitCode, Failure> {
    let stats = agent.stats()?;
    // An item still `uploading` after the run is one whose write-back did
    // not happen (the file stayed locked or full): the next run takes it over.
    if report.failed == 0 && stats.pending + stats.failed + stats.uploading == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let mut parts = Vec::new();
    if stats.failed > 0 {
        let verb = if stats.failed == 1 {
            "remains"
        } else {
            "remain"
        };
        parts.push(format!("{} {verb} failed", items(stats.failed)));
    }
    if report.dead > 0 {
        parts.push(format!(
            "{} went dead in this run (retry-dead revives them)",
            items(report.dead)
        ));
    }
    if stats.pending > 0 {
        parts.push(format!("{} pending", items(stats.pending)));
    }
    if stats.uploading > 0 {
        parts.push(format!(
            "{} left uploading (the next run takes it over)",
            items(stats.uploading)
        ));
    }
    if parts.is_empty() {
        parts.push(format!("{} failed in this run", items(report.failed)));
    }
    let mut message = format!("{} (stopped {})", parts.join(", "), snake(&report.stopped));
    let mut shown = agent.list(Some(State::Failed), 0, 1)?.into_iter().next();
    if shown.is_none() && report.dead > 0 {
        shown = agent.list(Some(State::Dead), 0, u32::MAX)?.pop();
    }
    let mut kind = "incomplete".to_string();
    if let Some((id, last)) = shown.and_then(|i| Some((i.id, i.last_error?))) {
        // Stored as "<kind>: <message>".
        let (k, msg) = last
            .split_once(": ")
            .unwrap_or(("incomplete", last.as_str()));
        kind = k.to_string();
        message.push_str(&format!("; item {id}: {msg}"));
    }
    Err(Failure::Incomplete { kind, message })
}
