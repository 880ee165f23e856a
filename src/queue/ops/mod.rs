//! Queue operations. Writers take a `Transaction` from [`super::Db::write`],
//! so each operation commits whole or not at all.
//!
//! Split by responsibility into private submodules: `items` (an item's life
//! in the queue), `regions` (region stamps and held items), `retry` (failures
//! and backoff), `lease` (the runner lease), `audit` (finished uploads and
//! what the app reads back), `stats` (the counters behind `status`) and
//! `retention` (how long audit rows are kept, and pruning them). Everything
//! public is re-exported here, so callers keep using `queue::ops::X`.

mod audit;
mod items;
mod lease;
mod regions;
mod retention;
mod retry;
mod stats;

pub use audit::{audit, complete, item, list, next_attempt_of, AuditRecord, ItemInfo};
pub use items::{
    claim, drop_termination, enqueue, get, mark_seen, next_due, next_for_run, queue_termination,
    remove, set_offset, set_progress, set_session, set_source, terminations, unclaim, Owner,
    Termination,
};
pub use lease::{acquire_lease, check_lease, release_lease};
pub use regions::{discard_held, hold_all, reconcile_accounts, reconcile_regions, rehome};
pub use retention::{
    audit_prunable, audit_retention_days, prune_audit_batch, set_audit_retention_days,
    DEFAULT_AUDIT_RETENTION_DAYS, MAX_AUDIT_RETENTION_DAYS, PRUNE_BATCH,
};
pub use retry::{fail, retry_dead, RetryPolicy};
pub use stats::{stats, stats_by_scan, QueueStats};

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Row;

use super::State;
use crate::error::{Error, Result};

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Size and modification time of a source file, as recorded at enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceMeta {
    /// Bytes (u64: files over 4 GiB work on 32-bit phones too).
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
}

/// Reads size and mtime; only regular files are accepted.
pub fn stat_source(path: &Path) -> Result<SourceMeta> {
    let md = std::fs::metadata(path).map_err(|e| Error::SourceIo(e.kind()))?;
    if !md.is_file() {
        return Err(Error::InvalidArgument("path is not a regular file"));
    }
    Ok(SourceMeta::of(&md))
}

impl SourceMeta {
    /// Size and mtime of already-read metadata.
    pub fn of(md: &std::fs::Metadata) -> SourceMeta {
        let mtime_ns = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        SourceMeta {
            size: md.len(),
            mtime_ns,
        }
    }
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidArgument("value exceeds 2^63"))
}

/// One queue row, as the uploader needs it.
#[derive(Debug, Clone)]
pub struct ItemRow {
    /// Item id.
    pub id: i64,
    /// Source path.
    pub path: String,
    /// Service name.
    pub service: String,
    /// Higher first.
    pub priority: i64,
    /// Size at enqueue (or last refresh).
    pub size: u64,
    /// mtime at enqueue.
    pub mtime_ns: i64,
    /// Region stamp.
    pub region: Option<String>,
    /// Current state.
    pub state: State,
    /// Attempts so far.
    pub attempts: u32,
    /// Upload URL of the session in progress.
    pub upload_url: Option<String>,
    /// Length declared when the session was created.
    pub upload_len: Option<u64>,
    /// Source mtime when the session was created.
    pub upload_mtime_ns: Option<i64>,
    /// Content hash the session was created for.
    pub upload_sha256: Option<[u8; 32]>,
    /// Bytes the server confirmed.
    pub confirmed_offset: u64,
    /// Body bytes sent so far for the session in progress (as of its last confirmed offset).
    pub upload_sent: u64,
}

const ITEM_COLS: &str = "id, path, service, priority, size, mtime_ns, region, state, attempts,
    upload_url, upload_len, upload_mtime_ns, upload_sha256, confirmed_offset, upload_sent";

fn hash32(v: Option<Vec<u8>>) -> Option<[u8; 32]> {
    v.and_then(|v| <[u8; 32]>::try_from(v).ok())
}

fn state_of(s: String) -> rusqlite::Result<State> {
    s.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            7,
            rusqlite::types::Type::Text,
            "bad state".into(),
        )
    })
}

fn item_row(r: &Row<'_>) -> rusqlite::Result<ItemRow> {
    Ok(ItemRow {
        id: r.get(0)?,
        path: r.get(1)?,
        service: r.get(2)?,
        priority: r.get(3)?,
        size: r.get::<_, i64>(4)?.max(0) as u64,
        mtime_ns: r.get(5)?,
        region: r.get(6)?,
        state: state_of(r.get(7)?)?,
        attempts: r.get::<_, i64>(8)?.clamp(0, i64::from(u32::MAX)) as u32,
        upload_url: r.get(9)?,
        upload_len: r.get::<_, Option<i64>>(10)?.map(|v| v.max(0) as u64),
        upload_mtime_ns: r.get(11)?,
        upload_sha256: hash32(r.get(12)?),
        confirmed_offset: r.get::<_, i64>(13)?.max(0) as u64,
        upload_sent: r.get::<_, i64>(14)?.max(0) as u64,
    })
}

#[cfg(test)]
mod testutil {
    use super::SourceMeta;
    use crate::queue::Db;

    pub(super) const META: SourceMeta = SourceMeta {
        size: 100,
        mtime_ns: 5,
    };

    pub(super) fn db() -> Db {
        Db::open_in_memory().unwrap()
    }
}
