//! The agent handle: `open` and `close`, the account and its country, and
//! the library's version.

use ::jni::sys::jlong;

use super::entry::{native, Bytes, DbPath, Handle, JStr, OptStr, Str};
use super::to_jlong;
use crate::ffi::{free_handle, into_handle};
use crate::Agent;

native! {
    /// `static native long open(String dbPath, byte[] initialRoot)`: opens or
    /// creates the database; returns the handle.
    fn open(dbPath: DbPath, initialRoot: Bytes) -> jlong |_| {
        Ok(to_jlong(into_handle(Agent::open(dbPath, &initialRoot)?)))
    }

    /// `static native String version()`: the library's version (`cloudsync::VERSION`).
    fn version() -> JStr |_| {
        Ok(crate::VERSION)
    }

    /// `static native void setAccountCountry(long handle, String iso2)`.
    fn setAccountCountry(handle: Handle, iso2: Str) -> () |_| {
        handle.set_account_country(&iso2)
    }

    /// `static native void setAccount(long handle, String accountId, String iso2)`:
    /// a `null` account signs out, a `null` country keeps the account's own (see
    /// [`crate::Agent::set_account`]).
    fn setAccount(handle: Handle, accountId: OptStr, iso2: OptStr) -> () |_| {
        handle.set_account(accountId.as_deref(), iso2.as_deref())
    }

    /// `static native String accountState(long handle)`: `never_set`,
    /// `signed_out` or `signed_in` (Java maps the name to `AccountState`).
    fn accountState(handle: Handle) -> JStr |_| {
        Ok(handle.account_state()?.name())
    }

    /// `static native void close(long handle)`: frees the agent; `0` is a no-op.
    fn close(handle: jlong) -> () |_| {
        // A handle closed already is an `invalid_argument` error (the registry in `ffi`).
        free_handle(handle as u64)
    }
}
