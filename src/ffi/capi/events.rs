//! The C ABI of runs with per-item events (the rest of the ABI is in
//! [`super`]; same conventions, and `tests/ffi/c_header.rs` parses this file too).

#![allow(non_camel_case_types)]

use std::ffi::{c_int, c_void};
use std::time::Duration;

use super::{cs_agent, cs_run_report, cs_status};
use crate::ffi::c_support::{agent_ref, event_of, out_ptr, report_of, run};
use crate::RunEvent;

/// `cs_event.type`: an item was claimed and its upload attempt begins (`total`: its size).
pub const CS_EVENT_STARTED: i32 = 0;
/// `cs_event.type`: bytes of the item in flight (`sent` of `total`).
pub const CS_EVENT_PROGRESS: i32 = 1;
/// `cs_event.type`: the server confirmed the whole item (`sent` = `total` = its bytes).
pub const CS_EVENT_DONE: i32 = 2;
/// `cs_event.type`: the attempt failed (`status`, `dead`, `next_attempt_at_ms`).
pub const CS_EVENT_FAILED: i32 = 3;
/// `cs_event.type`: the item in flight is held (the region or account changed).
pub const CS_EVENT_HELD: i32 = 4;

/// Event callback of [`cs_run_with_events`], called on the thread running it
/// with no lock of the agent held; `e` is valid for the call only. Returns 0
/// to continue; any other value cancels the run.
pub type cs_event_fn = Option<unsafe extern "C" fn(user: *mut c_void, e: *const cs_event) -> c_int>;

/// One event of [`cs_run_with_events`] (`cs_event` in C).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cs_event {
    /// `CS_EVENT_STARTED`, `_PROGRESS`, `_DONE`, `_FAILED` or `_HELD`.
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

/// [`cs_run_once`](super::cs_run_once) with one callback for progress and the per-item events
/// (`cs_event`): started, progress, done, failed, held; each completion once.
///
/// # Safety
/// `agent` is NULL or a live handle; `cb` is NULL or a valid callback;
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_run_with_events(
    agent: *mut cs_agent,
    max_ms: u64,
    cb: cs_event_fn,
    user: *mut c_void,
    out: *mut cs_run_report,
) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        let out = out_ptr(out, "out is null")?;
        let mut listener = |e: &RunEvent| match cb {
            // SAFETY: the caller vouches for the callback and its `user`.
            Some(f) => f(user, &event_of(e)) == 0,
            None => true,
        };
        let r = a.run_with_events(Duration::from_millis(max_ms), &mut listener)?;
        out.write(report_of(&r));
        Ok(())
    })
}
