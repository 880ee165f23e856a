//! The queue: `enqueue` and `enqueueAll`, the items one by one (`item`,
//! `listItems`, `retryDead`, `remove`), the counters, the audit trail and
//! the held items.

use ::jni::sys::{jint, jlong};

use super::entry::{native, Count, Handle, LongArray, Obj, ObjArray, OptStr, Str, StrArray};
use super::values::{audit_array, item_array, queue_stats_object};
use crate::error::Error;

native! {
    /// `static native long enqueue(long handle, String path, String service, int priority)`.
    fn enqueue(handle: Handle, path: Str, service: Str, priority: jint) -> jlong |_| {
        handle.enqueue(path, &service, priority)
    }

    /// `static native long[] enqueueAll(long handle, String[] paths, String service, int priority)`:
    /// all or none, in one transaction.
    fn enqueueAll(handle: Handle, paths: StrArray, service: Str, priority: jint) -> LongArray |_| {
        handle.enqueue_all(&paths, &service, priority)
    }

    /// `static native ItemInfo[] item(long handle, long id)`: the item, or an
    /// empty array once it left the queue (done: see the audit; or removed).
    /// An array so that both entry points share one object builder.
    fn item(handle: Handle, id: jlong) -> ObjArray |env| {
        match handle.item(id) {
            Ok(it) => item_array(env, std::slice::from_ref(&it)),
            Err(Error::NotFound) => item_array(env, &[]),
            Err(e) => Err(e),
        }
    }

    /// `static native ItemInfo[] listItems(long handle, String state, long afterId, int limit)`:
    /// one page of items by id: ids above `afterId`, of one state (`null`: all),
    /// at most `limit`.
    fn listItems(handle: Handle, state: OptStr, afterId: jlong, limit: Count) -> ObjArray |env| {
        let state = state.map(|s| s.parse()).transpose()?;
        item_array(env, &handle.list(state, afterId, limit)?)
    }

    /// `static native long retryDead(long handle)`: revives dead items; how many.
    fn retryDead(handle: Handle) -> u64 |_| {
        handle.retry_dead()
    }

    /// `static native boolean remove(long handle, long id)`: `false` when the
    /// item is no longer queued.
    fn remove(handle: Handle, id: jlong) -> bool |_| {
        match handle.remove(id) {
            Ok(()) => Ok(true),
            Err(Error::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `static native QueueStats stats(long handle)`.
    fn stats(handle: Handle) -> Obj |env| {
        queue_stats_object(env, &handle.stats()?)
    }

    /// `static native AuditRecord[] audit(long handle, long afterId, int limit)`.
    fn audit(handle: Handle, afterId: jlong, limit: Count) -> ObjArray |env| {
        audit_array(env, &handle.audit(afterId, limit)?)
    }

    /// `static native long rehome(long handle)`: restamps held items to the approved region.
    fn rehome(handle: Handle) -> u64 |_| {
        handle.rehome()
    }

    /// `static native long rehomeTo(long handle, String expectedRegion)`:
    /// restamps held items only if `expectedRegion` is still the approved region.
    fn rehomeTo(handle: Handle, expectedRegion: Str) -> u64 |_| {
        handle.rehome_to(&expectedRegion)
    }

    /// `static native long discardHeld(long handle)`: deletes held items.
    fn discardHeld(handle: Handle) -> u64 |_| {
        handle.discard_held()
    }
}
