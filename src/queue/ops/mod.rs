//! Queue operations. Writers take a `Transaction` from [`super::Db::write`],
//! so each operation commits whole or not at all.
//!
//! Split by responsibility into private submodules: `items` (an item's life
//! in the queue), `regions` (region stamps and held items), `retry` (failures
//! and backoff), `lease` (the runner lease), `audit` (finished uploads and
//! what the app reads back), `stats` (the counters behind `status`), `rules`
//! (the backup rules stored with the items) and `retention` (how long audit rows are kept, and pruning them). Everything
//! public is re-exported here, so callers keep using `queue::ops::X`.

mod audit;
mod items;
mod lease;
mod regions;
mod retention;
mod retry;
mod rules;
mod stats;

pub use audit::{audit, complete, item, list, next_attempt_of, AuditRecord, ItemInfo};
pub use items::{
    claim, drop_termination, enqueue, enqueue_with_rule, get, mark_seen, next_due, next_for_run,
    preset_key, queue_termination, remove, set_key, set_offset, set_progress, set_sent,
    set_session, set_source, terminations, unclaim, NewItem, Owner, Termination,
};
pub use lease::{
    acquire_lease, acquire_lease_with, check_lease, release_lease, renew_lease, Taken, Takeover,
};
pub use regions::{discard_held, hold_all, reconcile_accounts, reconcile_regions, rehome};
pub use retention::{
    audit_prunable, audit_retention_days, prune_audit_batch, set_audit_retention_days,
    DEFAULT_AUDIT_RETENTION_DAYS, MAX_AUDIT_RETENTION_DAYS, PRUNE_BATCH,
};
pub use retry::{fail, retry_dead, RetryPolicy};
pub use rules::{default_rule, set_default_rule, set_rule};
pub use stats::{stats, stats_by_scan, Backlog, QueueStats, RuleStats};

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Row;

use super::{BackupRule, State};
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

/// Reads size and mtime; only regular files are accepted, and a symbolic
/// link at the path is refused (`SourceSymlink`), never followed.
pub fn stat_source(path: &Path) -> Result<SourceMeta> {
    Ok(print_source(path)?.meta)
}

/// Like [`stat_source`], with the whole fingerprint: the one the uploader
/// takes when it opens the file, if nothing changed meanwhile.
pub fn print_source(path: &Path) -> Result<SourcePrint> {
    let md = std::fs::symlink_metadata(path).map_err(|e| Error::SourceIo(e.kind()))?;
    if md.file_type().is_symlink() {
        return Err(Error::SourceSymlink);
    }
    if !md.is_file() {
        return Err(Error::InvalidArgument("path is not a regular file"));
    }
    Ok(SourcePrint::of(&md))
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

/// What identifies one version of a file's content without reading it: size
/// and mtime, plus ctime (a writer cannot set it back), inode and device (a
/// file replaced by rename has a new inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePrint {
    /// Size and mtime.
    pub meta: SourceMeta,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// Device number.
    pub dev: u64,
}

impl SourcePrint {
    /// The fingerprint of already-read metadata.
    #[cfg(unix)]
    pub fn of(md: &std::fs::Metadata) -> SourcePrint {
        use std::os::unix::fs::MetadataExt;
        SourcePrint {
            meta: SourceMeta::of(md),
            ctime_ns: md.ctime().saturating_mul(1_000_000_000) + md.ctime_nsec(),
            ino: md.ino(),
            dev: md.dev(),
        }
    }

    /// Hosts without ctime and inodes (not a target today) fall back to size and mtime.
    #[cfg(not(unix))]
    pub fn of(md: &std::fs::Metadata) -> SourcePrint {
        SourcePrint {
            meta: SourceMeta::of(md),
            ctime_ns: 0,
            ino: 0,
            dev: 0,
        }
    }

    /// The 40-byte form kept in `items.upload_print` (five little-endian integers).
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        let fields = [
            self.meta.size,
            self.meta.mtime_ns as u64,
            self.ctime_ns as u64,
            self.ino,
            self.dev,
        ];
        for (slot, v) in out.chunks_exact_mut(8).zip(fields) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Reads [`Self::to_bytes`]'s form; anything else is no fingerprint.
    pub fn from_bytes(b: &[u8]) -> Option<SourcePrint> {
        if b.len() != 40 {
            return None;
        }
        let f = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Some(SourcePrint {
            meta: SourceMeta {
                size: f(0),
                mtime_ns: f(1) as i64,
            },
            ctime_ns: f(2) as i64,
            ino: f(3),
            dev: f(4),
        })
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
    /// The version of the source the session (and its key) belongs to.
    pub upload_print: Option<SourcePrint>,
    /// Idempotency key of the session's creation request, persisted before the `POST`.
    pub upload_key: Option<String>,
    /// Bytes the server confirmed.
    pub confirmed_offset: u64,
    /// Body bytes sent for the item so far, across its sessions, attempts and
    /// runs (a body about to go out is counted before it is sent and
    /// corrected after it).
    pub upload_sent: u64,
    /// When it may be uploaded.
    pub rule: BackupRule,
}

const ITEM_COLS: &str = "id, path, service, priority, size, mtime_ns, region, state, attempts,
    upload_url, upload_print, upload_key, confirmed_offset, upload_sent, network_rule, charging_only";

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
        upload_print: r
            .get::<_, Option<Vec<u8>>>(10)?
            .and_then(|b| SourcePrint::from_bytes(&b)),
        upload_key: r.get(11)?,
        confirmed_offset: r.get::<_, i64>(12)?.max(0) as u64,
        upload_sent: r.get::<_, i64>(13)?.max(0) as u64,
        rule: rules::rule_at(r, 14)?,
    })
}

#[cfg(test)]
mod testutil {
    use super::{SourceMeta, SourcePrint};
    use crate::queue::Db;

    pub(super) const META: SourceMeta = SourceMeta {
        size: 100,
        mtime_ns: 5,
    };

    pub(super) const PRINT: SourcePrint = SourcePrint {
        meta: META,
        ctime_ns: 6,
        ino: 7,
        dev: 8,
    };

    pub(super) fn db() -> Db {
        Db::open_in_memory().unwrap()
    }
}
