//! The argument checkers of the C entry points, one per kind of parameter,
//! called by `c_body!` (in `mod.rs`) with the parameter and the messages
//! derived from its name. Each one refuses NULL and lengths past
//! `isize::MAX` bytes before any work is done, so a bad argument never comes
//! after a side effect. A leaf like `values.rs`.

use std::ffi::{c_char, CStr};
use std::mem::MaybeUninit;

use super::values::cs_agent;
use crate::error::{Error, Result};

/// The handle given to C for a registry id (see `ffi::into_handle`).
pub(super) fn to_handle(id: u64) -> *mut cs_agent {
    id as usize as *mut cs_agent
}

/// The agent behind a C handle: NULL, closed or made-up handles are
/// `CS_INVALID_ARGUMENT` ("agent handle is null" / "is closed").
pub(crate) fn agent(handle: *const cs_agent) -> Result<crate::ffi::AgentRef> {
    crate::ffi::borrow_handle(handle as usize as u64)
}

/// A NUL-terminated string, strict UTF-8.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string that stays valid for the call.
pub(crate) unsafe fn string<'a>(
    s: *const c_char,
    null: &'static str,
    utf8: &'static str,
) -> Result<&'a str> {
    if s.is_null() {
        return Err(Error::InvalidArgument(null));
    }
    // SAFETY: non-null, NUL-terminated per the contract.
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| Error::InvalidArgument(utf8))
}

/// [`string`] where NULL means `None`.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string that stays valid for the call.
pub(crate) unsafe fn opt_string<'a>(
    s: *const c_char,
    utf8: &'static str,
) -> Result<Option<&'a str>> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { string(s, "", utf8) }.map(Some)
}

/// Fails on a NULL array or one of more than `isize::MAX` bytes.
fn check_array<T>(p: *const T, len: usize, null: &'static str, long: &'static str) -> Result<()> {
    if p.is_null() {
        return Err(Error::InvalidArgument(null));
    }
    if len > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(Error::InvalidArgument(long));
    }
    Ok(())
}

/// An array of `len` values to read.
///
/// # Safety
/// `p` is NULL or points to `len` readable values.
pub(crate) unsafe fn slice<'a, T>(
    p: *const T,
    len: usize,
    null: &'static str,
    long: &'static str,
) -> Result<&'a [T]> {
    check_array(p, len, null, long)?;
    // SAFETY: non-null, `len` readable values per the contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// An out-parameter, written later with [`Out::set`].
pub(crate) struct Out<'a, T>(&'a mut MaybeUninit<T>);

impl<T> Out<'_, T> {
    /// Writes the result.
    pub(crate) fn set(&mut self, value: T) -> Result<()> {
        self.0.write(value);
        Ok(())
    }
}

/// An out-parameter.
///
/// # Safety
/// `out` is NULL or valid for writes of `T` for the call.
pub(crate) unsafe fn out<'a, T>(out: *mut T, null: &'static str) -> Result<Out<'a, T>> {
    // SAFETY: NULL or writable per the contract; `MaybeUninit` needs no init.
    match unsafe { out.cast::<MaybeUninit<T>>().as_mut() } {
        Some(slot) => Ok(Out(slot)),
        None => Err(Error::InvalidArgument(null)), // not `ok_or`: built on this path only
    }
}

/// An array of `cap` slots to write, filled with [`fill`].
///
/// # Safety
/// `out` is NULL or valid for writes of `cap` values of `T` for the call.
pub(crate) unsafe fn slots<'a, T>(
    out: *mut T,
    cap: usize,
    null: &'static str,
    long: &'static str,
) -> Result<&'a mut [MaybeUninit<T>]> {
    check_array(out, cap, null, long)?;
    // SAFETY: non-null and writable for `cap` values per the contract; a
    // `MaybeUninit<T>` has the layout of `T` and needs no initialisation.
    Ok(unsafe { std::slice::from_raw_parts_mut(out.cast::<MaybeUninit<T>>(), cap) })
}

/// Writes `values` into `slots` (as many as fit) and returns how many.
pub(crate) fn fill<T>(slots: &mut [MaybeUninit<T>], values: impl Iterator<Item = T>) -> usize {
    slots
        .iter_mut()
        .zip(values)
        .map(|(s, v)| s.write(v))
        .count()
}

/// A caller's string buffer, checked (and set to "") before any work is done.
pub(crate) struct Buf<'a>(&'a mut [u8]);

impl Buf<'_> {
    /// Copies `s` in, NUL-terminated, or fails if it does not fit (the buffer
    /// then holds "").
    pub(crate) fn put(&mut self, s: &str) -> Result<()> {
        if s.len() >= self.0.len() {
            return Err(Error::InvalidArgument("buffer too small"));
        }
        self.0[..s.len()].copy_from_slice(s.as_bytes());
        self.0[s.len()] = 0;
        Ok(())
    }
}

/// A string buffer of `len` bytes: NULL or 0 bytes is `CS_INVALID_ARGUMENT`.
///
/// # Safety
/// `buf` is NULL or valid for writes of `len` bytes.
pub(crate) unsafe fn buf<'a>(
    buf: *mut c_char,
    len: usize,
    null: &'static str,
    long: &'static str,
) -> Result<Buf<'a>> {
    check_array(buf, len, null, long)?;
    if len == 0 {
        return Err(Error::InvalidArgument("buffer length is 0"));
    }
    // SAFETY: `buf` is valid for `len` bytes per the contract; `len` > 0.
    let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    out[0] = 0;
    Ok(Buf(out))
}
