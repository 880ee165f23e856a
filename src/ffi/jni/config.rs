//! The trust state: installing envelopes, the config refresh, what is
//! installed (`ConfigInfo`, `ConfigRefresh`) and the approved region.

use super::entry::{native, Bytes, Handle, Obj, OptJStr};
use super::values::{config_info_object, config_refresh_object};

native! {
    /// `static native void install(long handle, byte[] envelope)`: installs a
    /// root or config envelope.
    fn install(handle: Handle, envelope: Bytes) -> () |_| {
        handle.install(&envelope).map(drop)
    }

    /// `static native ConfigInfo configInfo(long handle)`.
    fn configInfo(handle: Handle) -> Obj |env| {
        config_info_object(env, &handle.config_info()?)
    }

    /// `static native ConfigRefresh refreshConfig(long handle)`: fetches the next
    /// roots and the config from the root's mirrors (blocks, 30 s at most).
    fn refreshConfig(handle: Handle) -> Obj |env| {
        config_refresh_object(env, &handle.refresh_config()?)
    }

    /// `static native String approvedRegion(long handle)`: the region id, or `null`.
    fn approvedRegion(handle: Handle) -> OptJStr |_| {
        Ok(handle.approved_region()?.map(|r| r.id().to_owned()))
    }
}
