//! The value types of the C ABI: the handle and status types, the
//! `#[repr(C)]` structs of `include/cloudsync.h`, and the conversions of
//! Rust values to those structs (each one copy, out of line). A leaf: it
//! uses no other file of `capi/`, all of which use it. The enum constants
//! (`CS_STATE_*`, ...) are not here: `crates/xtask` writes them into the
//! header from the Rust tables (`crate::codes`).

#![allow(non_camel_case_types)]

use std::ffi::c_char;

use crate::error::ErrorKind;
use crate::queue::{AuditRecord, ItemInfo, QueueStats};
use crate::{ConfigInfo, Refreshed, RunEvent, RunReport};

/// Opaque agent handle, from `cs_open`, closed by `cs_close`. Its value is
/// an id in the library's registry of open agents, not an address: a handle
/// that was closed is refused (`CS_INVALID_ARGUMENT`), never dereferenced.
pub struct cs_agent {
    _opaque: [u8; 0],
}

/// `CS_OK` or one of the status codes (`enum cs_status_code`).
pub type cs_status = i32;

/// Success (the status code enum also lists it, generated with the others).
pub const CS_OK: cs_status = 0;

/// Queue counters (`cs_queue_stats` in C).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct cs_queue_stats {
    /// Items waiting for a run.
    pub pending: u64,
    /// Items claimed by the current runner.
    pub uploading: u64,
    /// Items waiting for a retry.
    pub failed: u64,
    /// Items given up on.
    pub dead: u64,
    /// Items held for another region.
    pub held: u64,
    /// Items confirmed (audit rows).
    pub done: u64,
    /// Bytes not yet confirmed.
    pub pending_bytes: u64,
    /// When the next pending or failed item is due, ms since the epoch (in
    /// the past: due now); -1 when none waits.
    pub next_due_at_ms: i64,
}

/// What one `cs_run_once` did (`cs_run_report` in C).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cs_run_report {
    /// The region id uploaded to, NUL-terminated (truncated to 63 bytes).
    pub region: [c_char; 64],
    /// Items confirmed.
    pub uploaded: u64,
    /// Bytes of those items.
    pub bytes: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Items that went dead in this run.
    pub dead: u64,
    /// Items held for another region.
    pub held: u64,
    /// Items still queued for the approved region.
    pub remaining: u64,
    /// Why the run returned: a `CS_STOP_*` code (`cs_stop_reason_name`).
    pub stopped: i32,
    /// When the next queued item is due, ms since the epoch (in the past:
    /// due now); -1 when none waits. Schedule the next run for it.
    pub next_due_at_ms: i64,
}

/// One queued item (`cs_item` in C; strings are "" when absent, codes -1).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cs_item {
    /// Item id.
    pub id: i64,
    /// Size in bytes as enqueued.
    pub size: u64,
    /// Bytes the server confirmed so far.
    pub confirmed_offset: u64,
    /// When the item is due (again), ms since the epoch; -1 for `dead` and
    /// `held` items (they wait for `cs_retry_dead` or `cs_rehome`, not a time).
    pub next_attempt_at_ms: i64,
    /// Priority given at enqueue.
    pub priority: i32,
    /// Attempts that failed.
    pub attempts: u32,
    /// The status code of the last error (`CS_OK`: none).
    pub last_error_status: cs_status,
    /// `CS_STATE_PENDING`, `_UPLOADING`, `_FAILED`, `_DEAD` or `_HELD`
    /// (`cs_state_name`). Was the string `state`.
    pub state_code: i32,
    /// Why a `CS_STATE_HELD` item waits: `CS_HELD_REGION` or `CS_HELD_ACCOUNT`
    /// (`cs_held_reason_name`); -1 for other states. Was the string `held_reason`.
    pub held_reason_code: i32,
    /// The last error's kind (`network`, `rejected`, ...; `cs_status_name` of `last_error_status`).
    pub last_error_kind: [c_char; 32],
    /// The first 8 bytes of the item's account stamp in hex (never the account id).
    pub account: [c_char; 17],
    /// Service name.
    pub service: [c_char; 65],
    /// The region the item is stamped for.
    pub region: [c_char; 64],
    /// The last error, `kind: message` (truncated to 255 bytes on a character boundary).
    pub last_error: [c_char; 256],
}

/// One finished upload (`cs_audit_record` in C).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cs_audit_record {
    /// Audit row id (increasing; page with `after_id`).
    pub id: i64,
    /// The item it finished.
    pub item_id: i64,
    /// Bytes the server confirmed (the whole file).
    pub bytes: u64,
    /// Body bytes this client sent (re-sent bytes count again); -1: not recorded.
    pub sent_bytes: i64,
    /// When it finished, ms since the epoch.
    pub finished_at_ms: i64,
    /// Service name.
    pub service: [c_char; 65],
    /// The region the bytes went to.
    pub region: [c_char; 64],
    /// `host:port` of the endpoint.
    pub host: [c_char; 260],
    /// The peer IP the bytes were written to ("" if unknown).
    pub peer_ip: [c_char; 46],
    /// Lowercase hex SHA-256 of the content.
    pub sha256: [c_char; 65],
}

/// What is installed (`cs_config_info` in C; strings "" when absent).
/// `anchored` and `trust_reset` were added at the end: code built against an
/// older header passes a smaller struct and must be rebuilt.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cs_config_info {
    /// Root version in force.
    pub root_version: u64,
    /// The installed config's version; -1 when none is installed (was
    /// `config_version`, 0 for none).
    pub installed_config_version: i64,
    /// Regions the config defines (their ids: `cs_config_region`).
    pub region_count: u64,
    /// 1 if the config or the root is expired (against the freeze-safe clock).
    pub expired: i32,
    /// When the config expires, ms since the epoch; -1 without a config
    /// (was the RFC 3339 string `expires_at`).
    pub expires_at_ms: i64,
    /// When the next config refresh is due, ms since the epoch; -1 when the
    /// root lists no sources (was the RFC 3339 string `refresh_due_at`).
    pub refresh_due_at_ms: i64,
    /// The approved region id.
    pub approved_region: [c_char; 64],
    /// The account country (ISO 3166-1 alpha-2).
    pub country: [c_char; 3],
    /// 1 if the trust is vouched for by the root passed to `cs_open`; 0 while
    /// the stored root is newer and its chain not verified yet (a refresh
    /// re-walks it): nothing uploads and no region is approved meanwhile.
    pub anchored: i32,
    /// Why the root passed to `cs_open` last replaced the trust the database
    /// held (a planted, tampered or restored file), a fixed sentence; ""
    /// when it did not, or once a config was accepted since.
    pub trust_reset: [c_char; 128],
}

/// What one `cs_refresh_config` installed (`cs_refresh_report` in C).
/// `more_roots`, `config_error` and `root_in_force` were added at the end:
/// code built against an older header must be rebuilt.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cs_refresh_report {
    /// Root versions installed, one step each (0: the root did not change).
    pub roots_installed: u64,
    /// The last root version installed, now in force (0: none installed).
    pub root_version: u64,
    /// The config version installed; -1 when the config did not change, like
    /// `cs_config_info.installed_config_version` and Java's `ConfigRefresh`
    /// (was `config_version`, 0 for none).
    pub installed_config_version: i64,
    /// 1 if a root or a config was installed, 0 if nothing changed.
    pub changed: i32,
    /// `host:port` of the mirror that answered, NUL-terminated.
    pub mirror: [c_char; 260],
    /// 1 if the walk stopped at 64 roots with more to come (call again).
    pub more_roots: i32,
    /// The status of the config's failure when roots were installed but the
    /// config was not (`CS_OK` when none); the next refresh is due at once.
    pub config_error: cs_status,
    /// The root version in force after the refresh (whether or not it changed).
    pub root_in_force: u64,
}

/// One event of `cs_run_with_events` (`cs_event` in C).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cs_event {
    /// `CS_EVENT_STARTED`, `_PROGRESS`, `_DONE`, `_FAILED` or `_HELD`
    /// (`cs_event_kind_name`).
    pub r#type: i32,
    /// `CS_EVENT_FAILED`: the failure's status code; `CS_OK` otherwise.
    pub status: cs_status,
    /// The item.
    pub item_id: i64,
    /// `PROGRESS`: bytes sent; `DONE`: the item's bytes; 0 otherwise.
    pub sent: u64,
    /// `STARTED`: the item's size; `PROGRESS`: its total; `DONE`: its bytes; 0 otherwise.
    pub total: u64,
    /// `FAILED`: when the item is due again, ms since the epoch; -1 otherwise (and when dead).
    pub next_attempt_at_ms: i64,
    /// `FAILED`: 1 if the item gave up for good (`dead`); 0 otherwise.
    pub dead: i32,
}

/// `s` as a fixed C string field of `N` bytes, NUL-terminated (truncated to
/// `N - 1` bytes on a character boundary).
#[inline]
pub(super) fn c_field<const N: usize>(s: &str) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    fill_field(&mut out, s);
    out
}

/// The body of [`c_field`], one copy for every field size. `out` is zeroed.
#[inline(never)]
fn fill_field(out: &mut [c_char], s: &str) {
    let mut n = s.len().min(out.len().saturating_sub(1));
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    for (o, b) in out.iter_mut().zip(&s.as_bytes()[..n]) {
        *o = *b as c_char;
    }
}

/// [`c_field`] of an optional string (`None`: "").
#[inline]
fn opt_field<const N: usize>(s: &Option<String>) -> [c_char; N] {
    c_field(s.as_deref().unwrap_or(""))
}

/// A time in ms since the epoch, or -1 for none.
fn ms(t: Option<i64>) -> i64 {
    t.unwrap_or(-1)
}

#[inline(never)]
pub(super) fn report_of(r: &RunReport) -> cs_run_report {
    cs_run_report {
        region: c_field(&r.region),
        uploaded: r.uploaded,
        bytes: r.bytes,
        failed: r.failed,
        dead: r.dead,
        held: r.held,
        remaining: r.remaining,
        stopped: r.stopped.code(),
        next_due_at_ms: ms(r.next_due_at),
    }
}

#[inline(never)]
pub(super) fn stats_of(s: &QueueStats) -> cs_queue_stats {
    cs_queue_stats {
        pending: s.pending,
        uploading: s.uploading,
        failed: s.failed,
        dead: s.dead,
        held: s.held,
        done: s.done,
        pending_bytes: s.pending_bytes,
        next_due_at_ms: ms(s.next_due_at),
    }
}

#[inline(never)]
pub(super) fn item_of(i: &ItemInfo) -> cs_item {
    cs_item {
        id: i.id,
        size: i.size,
        confirmed_offset: i.confirmed_offset,
        next_attempt_at_ms: ms(i.next_attempt_at),
        priority: i.priority.clamp(i32::MIN.into(), i32::MAX.into()) as i32,
        attempts: i.attempts,
        last_error_status: i.last_error_kind.map_or(CS_OK, |k| k.code()),
        state_code: i.state.code(),
        held_reason_code: i.held_reason.map_or(-1, |h| h.code()),
        last_error_kind: c_field(i.last_error_kind.map_or("", |k| k.name())),
        account: opt_field(&i.account),
        service: c_field(&i.service),
        region: opt_field(&i.region),
        last_error: opt_field(&i.last_error),
    }
}

#[inline(never)]
pub(super) fn audit_of(r: &AuditRecord) -> cs_audit_record {
    cs_audit_record {
        id: r.id,
        item_id: r.item_id,
        bytes: r.bytes,
        sent_bytes: r
            .sent_bytes
            .map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)),
        finished_at_ms: r.finished_at,
        service: c_field(&r.service),
        region: c_field(&r.region),
        host: c_field(&r.host),
        peer_ip: opt_field(&r.peer_ip),
        sha256: c_field(&r.sha256),
    }
}

#[inline(never)]
pub(super) fn config_info_of(c: &ConfigInfo) -> cs_config_info {
    cs_config_info {
        root_version: c.root_version,
        installed_config_version: c
            .config_version
            .map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX)),
        region_count: c.regions.len() as u64,
        expired: i32::from(c.expired),
        expires_at_ms: ms(c.expires_at_ms),
        refresh_due_at_ms: ms(c.refresh_due_at_ms),
        approved_region: opt_field(&c.approved_region),
        country: opt_field(&c.country),
        anchored: i32::from(c.anchored),
        trust_reset: opt_field(&c.trust_reset),
    }
}

#[inline(never)]
pub(super) fn event_of(e: &RunEvent) -> cs_event {
    let mut ev = cs_event {
        r#type: e.kind().code(),
        status: CS_OK,
        item_id: 0,
        sent: 0,
        total: 0,
        next_attempt_at_ms: -1,
        dead: 0,
    };
    match *e {
        RunEvent::Started { item_id, size } => (ev.item_id, ev.total) = (item_id, size),
        RunEvent::Progress(p) => {
            (ev.item_id, ev.sent, ev.total) = (p.item_id, p.sent, p.total);
        }
        RunEvent::Done { item_id, bytes } => {
            (ev.item_id, ev.sent, ev.total) = (item_id, bytes, bytes);
        }
        RunEvent::Failed {
            item_id,
            kind,
            dead,
            next_attempt_at,
        } => {
            (ev.item_id, ev.status, ev.dead) = (item_id, kind.code(), i32::from(dead));
            ev.next_attempt_at_ms = ms(next_attempt_at);
        }
        RunEvent::Held { item_id } => ev.item_id = item_id,
    }
    ev
}

/// The C report of a refresh.
#[inline(never)]
pub(super) fn refresh_report_of(r: &Refreshed) -> cs_refresh_report {
    cs_refresh_report {
        roots_installed: r.roots.len() as u64,
        root_version: r.roots.last().copied().unwrap_or(0),
        installed_config_version: r
            .config
            .map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX)),
        changed: i32::from(!r.unchanged()),
        mirror: c_field(&r.mirror),
        more_roots: i32::from(r.more_roots),
        config_error: r.config_error.map_or(CS_OK, ErrorKind::code),
        root_in_force: r.root_version,
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    #[test]
    fn c_field_truncates_on_a_char_boundary() {
        let f: [c_char; 64] = c_field("in");
        assert_eq!(f[0] as u8, b'i');
        assert_eq!(f[2], 0);
        let long = "é".repeat(40); // 80 bytes
        let f: [c_char; 64] = c_field(&long);
        assert_eq!(f[62], 0, "63rd byte would split a character");
        assert_eq!(f[63], 0);
    }

    fn text<const N: usize>(f: &[c_char; N]) -> String {
        // SAFETY: every field is NUL-terminated.
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn items_and_events_convert() {
        let info = ItemInfo {
            id: 7,
            path: "/p".into(),
            service: "backup".into(),
            priority: i64::from(i32::MAX) + 5,
            size: 10,
            region: None,
            state: crate::State::Failed,
            attempts: 2,
            confirmed_offset: 4,
            next_attempt_at: Some(99),
            last_error: Some(format!("network: x{}", "é".repeat(200))),
            last_error_kind: Some(ErrorKind::Network),
            held_reason: None,
            account: Some("00112233aabbccdd".into()),
            rule: Default::default(),
        };
        let c = item_of(&info);
        assert_eq!((c.id, c.priority, c.attempts), (7, i32::MAX, 2));
        assert_eq!(c.last_error_status, ErrorKind::Network.code());
        assert_eq!((c.state_code, c.held_reason_code), (2, -1));
        assert_eq!(text(&c.region), "");
        assert_eq!(text(&c.account), "00112233aabbccdd");
        let e = text(&c.last_error);
        assert!(
            e.starts_with("network: xé") && e.len() == 254,
            "{}",
            e.len()
        );
        let ev = event_of(&RunEvent::Failed {
            item_id: 3,
            kind: ErrorKind::Rejected,
            dead: true,
            next_attempt_at: None,
        });
        assert_eq!(ev.r#type, crate::EventKind::Failed.code());
        assert_eq!((ev.status, ev.dead, ev.next_attempt_at_ms), (52, 1, -1));
        let ev = event_of(&RunEvent::Done {
            item_id: 3,
            bytes: 5,
        });
        assert_eq!(
            (ev.r#type, ev.sent, ev.total, ev.status),
            (crate::EventKind::Done.code(), 5, 5, 0)
        );
    }

    #[test]
    fn refresh_reports_convert() {
        let mut r = Refreshed {
            roots: vec![3, 4],
            config: None,
            mirror: "m.example:443".into(),
            root_version: 4,
            config_error: Some(ErrorKind::ThresholdNotMet),
            more_roots: true,
        };
        let c = refresh_report_of(&r);
        assert_eq!(
            (
                c.roots_installed,
                c.root_version,
                c.installed_config_version
            ),
            (2, 4, -1)
        );
        assert_eq!((c.changed, c.more_roots, c.root_in_force), (1, 1, 4));
        assert_eq!(c.config_error, ErrorKind::ThresholdNotMet.code());
        // SAFETY: `c_field` NUL-terminates.
        let mirror = unsafe { CStr::from_ptr(c.mirror.as_ptr()) };
        assert_eq!(mirror.to_bytes(), b"m.example:443");
        (r.roots, r.config_error, r.more_roots) = (Vec::new(), None, false);
        let c = refresh_report_of(&r);
        assert_eq!((c.roots_installed, c.root_version, c.changed), (0, 0, 0));
        assert_eq!(
            (c.more_roots, c.config_error, c.root_in_force),
            (0, CS_OK, 4)
        );
    }
}
