//! The C ABI of the queue: enqueueing (one file, or a batch in one
//! transaction), the items, the counters, the audit trail and the held items
//! (same conventions as [`super`]).
//!
//! An item's path is not in `cs_item` but read with [`cs_item_path`]: a path
//! may be up to `PATH_MAX` (4096) bytes, which would make every `cs_item`
//! (and an array of them for [`cs_list_items`]) eight times larger, and a
//! truncated path is of no use.

use std::ffi::c_char;

use super::args::{self, fill};
use super::values::{
    audit_of, cs_agent, cs_audit_record, cs_item, cs_queue_stats, cs_status, item_of, stats_of,
};
use crate::error::Error;
use crate::queue::State;

/// Enqueues one file (absolute path) for `service`; its id goes to `*out_id`.
///
/// # Safety
/// `agent` is NULL or a handle; strings are NULL or NUL-terminated;
/// `out_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_enqueue(
    agent: *mut cs_agent,
    path: *const c_char,
    service: *const c_char,
    priority: i32,
    out_id: *mut i64,
) -> cs_status {
    c_body!(agent: agent, path: string, service: string, out_id: out => {
        out_id.set(agent.enqueue(path, service, priority)?)
    })
}

/// Writes the queued item `id` into `*out`; `CS_NOT_FOUND` once it left the
/// queue (finished items are in the audit trail).
///
/// # Safety
/// `agent` is NULL or a handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_get_item(
    agent: *const cs_agent,
    id: i64,
    out: *mut cs_item,
) -> cs_status {
    c_body!(agent: agent, out: out => out.set(item_of(&agent.item(id)?)))
}

/// Writes the path of item `id` into `buf` (`len` bytes, NUL-terminated;
/// 4096 always fits).
///
/// # Safety
/// `agent` is NULL or a handle; `buf` is NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cs_item_path(
    agent: *const cs_agent,
    id: i64,
    buf: *mut c_char,
    len: usize,
) -> cs_status {
    c_body!(agent: agent, buf: buf(len) => buf.put(&agent.item(id)?.path))
}

/// Writes up to `cap` items with an id above `after_id` (in `state`, a
/// `CS_STATE_*` code, or all states with -1) into `out`, by id, and their
/// count into `*out_len`. A negative `after_id` or an unknown state is
/// `CS_INVALID_ARGUMENT`.
///
/// # Safety
/// `agent` is NULL or a handle; `out` is NULL or writable for `cap` items;
/// `out_len` is NULL or writable; `out` and `out_len` do not overlap.
#[no_mangle]
pub unsafe extern "C" fn cs_list_items(
    agent: *const cs_agent,
    state: i32,
    after_id: i64,
    out: *mut cs_item,
    cap: usize,
    out_len: *mut usize,
) -> cs_status {
    c_body!(agent: agent, out_len: out, out: slots(cap) => {
        let state = match state {
            -1 => None,
            code => Some(State::from_code(code).ok_or(Error::InvalidArgument("unknown state"))?),
        };
        // One keyed page of `cap` items: the same cost at any depth.
        let items = agent.list(state, after_id, u32::try_from(cap).unwrap_or(u32::MAX))?;
        out_len.set(fill(out, items.iter().map(item_of)))
    })
}

/// Revives dead items (pending again, or held if their region is no longer
/// approved); the count goes to `*out_count`.
///
/// # Safety
/// `agent` is NULL or a handle; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_retry_dead(agent: *mut cs_agent, out_count: *mut u64) -> cs_status {
    c_body!(agent: agent, out_count: out => out_count.set(agent.retry_dead()?))
}

/// Removes item `id` (`CS_NOT_FOUND` if it is not queued); its server-side
/// upload is terminated at the next run, if possible.
#[no_mangle]
pub extern "C" fn cs_remove(agent: *mut cs_agent, id: i64) -> cs_status {
    c_body!(agent: agent => agent.remove(id))
}

/// Writes up to `cap` audit rows with an id above `after_id`, oldest first,
/// into `out` and their count into `*out_len`. A negative `after_id` is
/// `CS_INVALID_ARGUMENT`.
///
/// # Safety
/// `agent` is NULL or a handle; `out` is NULL or writable for `cap`
/// records; `out_len` is NULL or writable; `out` and `out_len` do not
/// overlap.
#[no_mangle]
pub unsafe extern "C" fn cs_audit(
    agent: *const cs_agent,
    after_id: i64,
    out: *mut cs_audit_record,
    cap: usize,
    out_len: *mut usize,
) -> cs_status {
    c_body!(agent: agent, out_len: out, out: slots(cap) => {
        let rows = agent.audit(after_id, u32::try_from(cap).unwrap_or(u32::MAX))?;
        out_len.set(fill(out, rows.iter().map(audit_of)))
    })
}

/// Enqueues `n` files (absolute paths) for `service` in one transaction, all
/// or none; their ids go to `out_ids[0..n]`.
///
/// # Safety
/// `agent` is NULL or a handle; `paths` is NULL or points to `n`
/// pointers, each NULL or NUL-terminated; `service` is NULL or
/// NUL-terminated; `out_ids` is NULL or writable for `n` ids and overlaps
/// neither `paths`, nor the strings, nor `service`.
#[no_mangle]
pub unsafe extern "C" fn cs_enqueue_all(
    agent: *mut cs_agent,
    paths: *const *const c_char,
    n: usize,
    service: *const c_char,
    priority: i32,
    out_ids: *mut i64,
) -> cs_status {
    c_body!(agent: agent, paths: slice(n), service: string, out_ids: slots(n) => {
        let mut strs = Vec::with_capacity(n);
        for &p in paths {
            // SAFETY: the contract: each of the `n` pointers is NULL
            // (refused here) or NUL-terminated and valid for the call.
            strs.push(unsafe { args::string(p, "a path is null", "a path is not valid UTF-8") }?);
        }
        fill(out_ids, agent.enqueue_all(&strs, service, priority)?.into_iter());
        Ok(())
    })
}

/// Writes the queue counters into `*out`.
///
/// # Safety
/// `agent` is NULL or a handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_stats(agent: *const cs_agent, out: *mut cs_queue_stats) -> cs_status {
    c_body!(agent: agent, out: out => out.set(stats_of(&agent.stats()?)))
}

/// Restamps held items to the approved region (user consent required); the
/// count goes to `*out_count`.
///
/// # Safety
/// `agent` is NULL or a handle; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_rehome(agent: *mut cs_agent, out_count: *mut u64) -> cs_status {
    c_body!(agent: agent, out_count: out => out_count.set(agent.rehome()?))
}

/// Restamps held items to `region` only if it is still the approved region
/// (the one the user consented to); `CS_RESIDENCY` and nothing changed otherwise.
///
/// # Safety
/// `agent` is NULL or a handle; `region` is NULL or a NUL-terminated
/// string; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_rehome_to(
    agent: *mut cs_agent,
    region: *const c_char,
    out_count: *mut u64,
) -> cs_status {
    c_body!(agent: agent, region: string, out_count: out => {
        out_count.set(agent.rehome_to(region)?)
    })
}

/// Deletes held items; the count goes to `*out_count`.
///
/// # Safety
/// `agent` is NULL or a handle; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_discard_held(agent: *mut cs_agent, out_count: *mut u64) -> cs_status {
    c_body!(agent: agent, out_count: out => out_count.set(agent.discard_held()?))
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn nulls_are_argument_errors() {
        let bad = ErrorKind::InvalidArgument.code();
        let (mut item, mut n, mut ids) = (std::mem::MaybeUninit::<cs_item>::uninit(), 0, [0i64]);
        let null = std::ptr::null_mut();
        // SAFETY: every pointer is NULL or valid, and NULLs must be refused.
        unsafe {
            assert_eq!(cs_get_item(null, 1, item.as_mut_ptr()), bad);
            assert_eq!(cs_list_items(null, -1, 0, null.cast(), 0, &mut n), bad);
            assert_eq!(cs_retry_dead(null, null.cast()), bad);
            assert_eq!(cs_remove(null, 1), bad);
            assert_eq!(cs_audit(null, 0, null.cast(), 0, &mut n), bad);
            let paths = [c"/a".as_ptr()];
            let st = cs_enqueue_all(null, paths.as_ptr(), 1, c"b".as_ptr(), 0, ids.as_mut_ptr());
            assert_eq!(st, bad);
            let msg = CStr::from_ptr(super::super::cs_last_error());
            assert_eq!(
                msg.to_str().unwrap(),
                "invalid argument: agent handle is null"
            );
        }
    }
}
