//! The C ABI of the queue: enqueueing (one file, or a batch in one
//! transaction), the items, the counters, the audit trail and the held items
//! (same conventions as [`super`]; `tests/ffi/c_header.rs` parses this
//! file too).
//!
//! An item's path is not in `cs_item` but read with [`cs_item_path`]: a path
//! may be up to `PATH_MAX` (4096) bytes, which would make every `cs_item`
//! (and an array of them for [`cs_list_items`]) eight times larger, and a
//! truncated path is of no use.

use std::ffi::c_char;

use super::values::{
    audit_of, cs_agent, cs_audit_record, cs_item, cs_queue_stats, cs_status, item_of, stats_of,
};
use super::{
    agent_ref, copy_str, fill, opt_str_arg, out_ptr, out_slots, put, run, slice_arg, str_arg,
};
use crate::error::Error;
use crate::queue::State;

/// Enqueues one file (absolute path) for `service`; its id goes to `*out_id`.
///
/// # Safety
/// `agent` is NULL or a live handle; strings are NULL or NUL-terminated;
/// `out_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_enqueue(
    agent: *mut cs_agent,
    path: *const c_char,
    service: *const c_char,
    priority: i32,
    out_id: *mut i64,
) -> cs_status {
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `path` and `service` NULL or NUL-terminated (`str_arg`), `out_id` NULL
    // or writable (`put`).
    run(|| unsafe {
        let a = agent_ref(agent)?;
        let path = str_arg(path, "path is null")?;
        let service = str_arg(service, "service is null")?;
        if out_id.is_null() {
            return Err(Error::InvalidArgument("out_id is null"));
        }
        put(
            out_id,
            a.enqueue(path, service, priority)?,
            "out_id is null",
        )
    })
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
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `out` NULL or writable (`out_ptr`).
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
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `buf` NULL or writable for `len` bytes (`copy_str`).
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
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `state` NULL or NUL-terminated (`opt_str_arg`), `out_len` NULL or
    // writable (`out_ptr`), `out` NULL or writable for `cap` items (`out_slots`).
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
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `out_count` NULL or writable (`out_ptr`).
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
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`).
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
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `out_len` NULL or writable (`out_ptr`), `out` NULL or writable for
    // `cap` records (`out_slots`).
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
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `paths` NULL or `n` readable pointers (`slice_arg`), each of them and
    // `service` NULL or NUL-terminated (`str_arg`), `out_ids` NULL or writable for `n` ids
    // (`out_slots`).
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

/// Writes the queue counters into `*out`.
///
/// # Safety
/// `agent` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_stats(agent: *const cs_agent, out: *mut cs_queue_stats) -> cs_status {
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `out` NULL or writable (`put`).
    run(|| unsafe {
        let a = agent_ref(agent)?;
        if out.is_null() {
            return Err(Error::InvalidArgument("out is null"));
        }
        put(out, stats_of(&a.stats()?), "out is null")
    })
}

/// Restamps held items to the approved region (user consent required); the
/// count goes to `*out_count`.
///
/// # Safety
/// `agent` is NULL or a live handle; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_rehome(agent: *mut cs_agent, out_count: *mut u64) -> cs_status {
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `out_count` NULL or writable (`put`).
    run(|| unsafe {
        let a = agent_ref(agent)?;
        if out_count.is_null() {
            return Err(Error::InvalidArgument("out_count is null"));
        }
        put(out_count, a.rehome()?, "out_count is null")
    })
}

/// Restamps held items to `region` only if it is still the approved region
/// (the one the user consented to); `CS_RESIDENCY` and nothing changed otherwise.
///
/// # Safety
/// `agent` is NULL or a live handle; `region` is NULL or a NUL-terminated
/// string; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_rehome_to(
    agent: *mut cs_agent,
    region: *const c_char,
    out_count: *mut u64,
) -> cs_status {
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `region` NULL or NUL-terminated (`str_arg`), `out_count` NULL or
    // writable (`put`).
    run(|| unsafe {
        let a = agent_ref(agent)?;
        let region = str_arg(region, "region is null")?;
        if out_count.is_null() {
            return Err(Error::InvalidArgument("out_count is null"));
        }
        put(out_count, a.rehome_to(region)?, "out_count is null")
    })
}

/// Deletes held items; the count goes to `*out_count`.
///
/// # Safety
/// `agent` is NULL or a live handle; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cs_discard_held(agent: *mut cs_agent, out_count: *mut u64) -> cs_status {
    // SAFETY: the caller keeps this function's contract (# Safety above): `agent` is NULL or a live
    // handle (`agent_ref`), `out_count` NULL or writable (`put`).
    run(|| unsafe {
        let a = agent_ref(agent)?;
        if out_count.is_null() {
            return Err(Error::InvalidArgument("out_count is null"));
        }
        put(out_count, a.discard_held()?, "out_count is null")
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
