//! The C ABI of the queue's items, the audit trail and batch enqueue (the
//! rest of the ABI is in [`super`]; same conventions, and `tests/ffi/c_header.rs`
//! parses this file too).
//!
//! An item's path is not in `cs_item` but read with [`cs_item_path`]: a path
//! may be up to `PATH_MAX` (4096) bytes, which would make every `cs_item`
//! (and an array of them for [`cs_list_items`]) eight times larger, and a
//! truncated path is of no use.

#![allow(non_camel_case_types)]

use std::ffi::c_char;

use super::{cs_agent, cs_status};
use crate::ffi::c_support::{
    agent_ref, audit_of, copy_str, fill, item_of, opt_str_arg, out_ptr, out_slots, run, slice_arg,
    str_arg,
};
use crate::queue::State;

/// One queued item (`cs_item` in C; strings are "" when absent).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct cs_item {
    /// Item id.
    pub id: i64,
    /// Size in bytes as enqueued.
    pub size: u64,
    /// Bytes the server confirmed so far.
    pub confirmed_offset: u64,
    /// When the item is due (again), ms since the epoch.
    pub next_attempt_at_ms: i64,
    /// Priority given at enqueue.
    pub priority: i32,
    /// Attempts that failed.
    pub attempts: u32,
    /// The status code of the last error (`CS_OK`: none).
    pub last_error_status: cs_status,
    /// `pending`, `uploading`, `failed`, `dead` or `held`.
    pub state: [c_char; 16],
    /// Why a `held` item waits: `region` or `account`.
    pub held_reason: [c_char; 16],
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

/// Writes the queued item `id` into `*out`; `CS_NOT_FOUND` once it left the
/// queue (finished items are in the audit trail).
///
/// # Safety
/// `agent` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_get_item(
    agent: *const cs_agent,
    id: i64,
    out: *mut cs_item,
) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        let out = out_ptr(out, "out is null")?;
        out.write(item_of(&a.item(id)?));
        Ok(())
    })
}

/// Writes the path of item `id` into `buf` (`len` bytes, NUL-terminated;
/// 4096 always fits).
///
/// # Safety
/// `agent` is NULL or a live handle; `buf` is NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cs_item_path(
    agent: *const cs_agent,
    id: i64,
    buf: *mut c_char,
    len: usize,
) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        copy_str(buf, len, "")?;
        copy_str(buf, len, &a.item(id)?.path)
    })
}

/// Writes up to `cap` items with an id above `after_id` (of `state`, or all
/// states when NULL) into `out`, by id, and their count into `*out_len`. A
/// negative `after_id` is `CS_INVALID_ARGUMENT`.
///
/// # Safety
/// `agent` is NULL or a live handle; `state` is NULL or NUL-terminated;
/// `out` is NULL or writable for `cap` items; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_list_items(
    agent: *const cs_agent,
    state: *const c_char,
    after_id: i64,
    out: *mut cs_item,
    cap: usize,
    out_len: *mut usize,
) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        let state = opt_str_arg(state)?.map(str::parse::<State>).transpose()?;
        let len = out_ptr(out_len, "out_len is null")?;
        let slots = out_slots(out, cap, "out is null")?;
        // One keyed page of `cap` items: the same cost at any depth.
        let items = a.list(state, after_id, u32::try_from(cap).unwrap_or(u32::MAX))?;
        len.write(fill(slots, items.iter().map(item_of)));
        Ok(())
    })
}

/// Revives dead items (pending again, or held if their region is no longer
/// approved); the count goes to `*out_count`.
///
/// # Safety
/// `agent` is NULL or a live handle; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_retry_dead(agent: *mut cs_agent, out_count: *mut u64) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        let out = out_ptr(out_count, "out_count is null")?;
        out.write(a.retry_dead()?);
        Ok(())
    })
}

/// Removes item `id` (`CS_NOT_FOUND` if it is not queued); its server-side
/// upload is terminated at the next run, if possible.
///
/// # Safety
/// `agent` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn cs_remove(agent: *mut cs_agent, id: i64) -> cs_status {
    run(|| unsafe { agent_ref(agent)?.remove(id) })
}

/// Writes up to `cap` audit rows with an id above `after_id`, oldest first,
/// into `out` and their count into `*out_len`. A negative `after_id` is
/// `CS_INVALID_ARGUMENT`.
///
/// # Safety
/// `agent` is NULL or a live handle; `out` is NULL or writable for `cap`
/// records; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_audit(
    agent: *const cs_agent,
    after_id: i64,
    out: *mut cs_audit_record,
    cap: usize,
    out_len: *mut usize,
) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        let len = out_ptr(out_len, "out_len is null")?;
        let slots = out_slots(out, cap, "out is null")?;
        let rows = a.audit(after_id, u32::try_from(cap).unwrap_or(u32::MAX))?;
        len.write(fill(slots, rows.iter().map(audit_of)));
        Ok(())
    })
}

/// Enqueues `n` files (absolute paths) for `service` in one transaction, all
/// or none; their ids go to `out_ids[0..n]`.
///
/// # Safety
/// `agent` is NULL or a live handle; `paths` is NULL or points to `n`
/// pointers, each NULL or NUL-terminated; `service` is NULL or
/// NUL-terminated; `out_ids` is NULL or writable for `n` ids.
#[no_mangle]
pub unsafe extern "C" fn cs_enqueue_all(
    agent: *mut cs_agent,
    paths: *const *const c_char,
    n: usize,
    service: *const c_char,
    priority: i32,
    out_ids: *mut i64,
) -> cs_status {
    run(|| unsafe {
        let a = agent_ref(agent)?;
        let paths = slice_arg(paths, n, "paths is null")?;
        let service = str_arg(service, "service is null")?;
        let slots = out_slots(out_ids, n, "out_ids is null")?;
        let mut strs = Vec::with_capacity(n);
        for &p in paths {
            strs.push(str_arg(p, "a path is null")?);
        }
        fill(slots, a.enqueue_all(&strs, service, priority)?.into_iter());
        Ok(())
    })
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
            assert_eq!(
                cs_list_items(null, c"x".as_ptr(), 0, null.cast(), 0, &mut n),
                bad
            );
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
