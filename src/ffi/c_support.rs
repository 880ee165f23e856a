//! The support half of the C ABI (`super::capi` and its submodules hold the
//! `extern "C"` functions, which `tests/ffi/c_header.rs` parses): the single
//! runner and its per-thread last error, the pointer-argument helpers,
//! the conversions of Rust values to the C structs (each one copy, out of
//! line), and the credential callback as a [`CredentialProvider`].

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::mem::MaybeUninit;

use zeroize::Zeroizing;

use super::capi::{
    cs_agent, cs_audit_record, cs_config_info, cs_event, cs_item, cs_queue_stats, cs_run_report,
    cs_status, CS_EVENT_DONE, CS_EVENT_FAILED, CS_EVENT_HELD, CS_EVENT_PROGRESS, CS_EVENT_STARTED,
    CS_OK, CS_STOP_ACCOUNT_CHANGED, CS_STOP_CANCELLED, CS_STOP_DRAINED, CS_STOP_REGION_CHANGED,
    CS_STOP_TIME_UP,
};
use super::{borrow_handle, run_ffi, run_quietly};
use crate::auth::{CredentialProvider, CredentialRequest, ProviderError, Secret, MAX_TOKEN_LEN};
use crate::error::{Error, ErrorKind, Result};
use crate::queue::{AuditRecord, ItemInfo, QueueStats};
use crate::{Agent, ConfigInfo, RunEvent, RunReport, StopReason};

thread_local! {
    pub(super) static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(super) fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|cell| *cell.borrow_mut() = c);
}

/// The single C runner: clears the thread's last error, runs `f` with panics
/// trapped, and turns an error into its status code and message.
pub(super) fn run(f: impl FnOnce() -> Result<()>) -> cs_status {
    clear_last_error();
    status_of(run_ffi(f))
}

// The two halves of `run` that do not depend on `f` are kept out of line:
// one copy in the library instead of one per entry point.

#[inline(never)]
pub(super) fn clear_last_error() {
    run_quietly(|| set_last_error(""));
}

#[inline(never)]
pub(super) fn status_of(result: Result<()>) -> cs_status {
    match result {
        Ok(()) => CS_OK,
        Err(e) => {
            let msg = e.to_string();
            run_quietly(|| set_last_error(&msg));
            e.kind().code()
        }
    }
}

/// Writes `value` through `out`, or fails on NULL.
///
/// # Safety
/// `out` is NULL or valid for writes of `T`.
pub(super) unsafe fn put<T>(out: *mut T, value: T, what: &'static str) -> Result<()> {
    if out.is_null() {
        return Err(Error::InvalidArgument(what));
    }
    // SAFETY: non-null and, per the contract, valid for writes.
    unsafe { out.write(value) };
    Ok(())
}

/// # Safety
/// `s` is NULL or a NUL-terminated string that stays valid for the call.
pub(super) unsafe fn str_arg<'a>(s: *const c_char, null_msg: &'static str) -> Result<&'a str> {
    if s.is_null() {
        return Err(Error::InvalidArgument(null_msg));
    }
    // SAFETY: non-null, NUL-terminated per the contract.
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| Error::InvalidArgument("string is not valid UTF-8"))
}

/// [`str_arg`] where NULL means `None`.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string that stays valid for the call.
pub(super) unsafe fn opt_str_arg<'a>(s: *const c_char) -> Result<Option<&'a str>> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { str_arg(s, "") }.map(Some)
}

/// Fails on a NULL array or one of more than `isize::MAX` bytes.
fn check_array<T>(p: *const T, len: usize, null_msg: &'static str) -> Result<()> {
    if p.is_null() {
        return Err(Error::InvalidArgument(null_msg));
    }
    if len > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(Error::InvalidArgument("length too large"));
    }
    Ok(())
}

/// # Safety
/// `p` is NULL or points to `len` readable values.
pub(super) unsafe fn slice_arg<'a, T>(
    p: *const T,
    len: usize,
    null_msg: &'static str,
) -> Result<&'a [T]> {
    check_array(p, len, null_msg)?;
    // SAFETY: non-null, `len` readable values per the contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// # Safety
/// `p` is NULL or points to `len` readable bytes.
pub(super) unsafe fn bytes_arg<'a>(
    p: *const u8,
    len: usize,
    null_msg: &'static str,
) -> Result<&'a [u8]> {
    // SAFETY: forwarded contract.
    unsafe { slice_arg(p, len, null_msg) }
}

/// A caller's out-parameter, checked before any work is done (so that a
/// NULL never comes after a side effect), written later with `write`.
///
/// # Safety
/// `out` is NULL or valid for writes of `T` for the call.
pub(super) unsafe fn out_ptr<'a, T>(
    out: *mut T,
    what: &'static str,
) -> Result<&'a mut MaybeUninit<T>> {
    // SAFETY: NULL or writable per the contract; `MaybeUninit` needs no init.
    match unsafe { out.cast::<MaybeUninit<T>>().as_mut() } {
        Some(slot) => Ok(slot),
        None => Err(Error::InvalidArgument(what)), // not `ok_or`: see `borrow_handle`
    }
}

/// A caller's array of `cap` slots, checked before any work is done.
///
/// # Safety
/// `out` is NULL or valid for writes of `cap` values of `T` for the call.
pub(super) unsafe fn out_slots<'a, T>(
    out: *mut T,
    cap: usize,
    what: &'static str,
) -> Result<&'a mut [MaybeUninit<T>]> {
    check_array(out, cap, what)?;
    // SAFETY: non-null and writable for `cap` values per the contract; a
    // `MaybeUninit<T>` has the layout of `T` and needs no initialisation.
    Ok(unsafe { std::slice::from_raw_parts_mut(out.cast::<MaybeUninit<T>>(), cap) })
}

/// Writes `values` into `slots` (as many as fit) and returns how many.
pub(super) fn fill<T>(slots: &mut [MaybeUninit<T>], values: impl Iterator<Item = T>) -> usize {
    slots
        .iter_mut()
        .zip(values)
        .map(|(s, v)| s.write(v))
        .count()
}

/// # Safety
/// `agent` is NULL or a live handle from `cs_open`.
pub(super) unsafe fn agent_ref<'a>(agent: *const cs_agent) -> Result<&'a Agent> {
    // SAFETY: forwarded contract.
    unsafe { borrow_handle(agent) }
}

/// Copies `s` into a C buffer of `len` bytes, NUL-terminated, or fails if it
/// does not fit (the buffer then holds an empty string).
///
/// # Safety
/// `buf` is NULL or valid for writes of `len` bytes.
pub(super) unsafe fn copy_str(buf: *mut c_char, len: usize, s: &str) -> Result<()> {
    if buf.is_null() {
        return Err(Error::InvalidArgument("buf is null"));
    }
    if len == 0 {
        return Err(Error::InvalidArgument("buffer length is 0"));
    }
    // SAFETY: `buf` is valid for `len` bytes; `len` > 0.
    let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    if s.len() >= len {
        out[0] = 0;
        return Err(Error::InvalidArgument("buffer too small"));
    }
    out[..s.len()].copy_from_slice(s.as_bytes());
    out[s.len()] = 0;
    Ok(())
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

/// The status code of an error kind's name (`CS_OK` for none).
pub(super) fn code_of(kind: Option<&str>) -> cs_status {
    ErrorKind::ALL
        .iter()
        .find(|k| Some(k.name()) == kind)
        .map_or(CS_OK, |k| k.code())
}

fn stop_code(s: StopReason) -> i32 {
    match s {
        StopReason::Drained => CS_STOP_DRAINED,
        StopReason::TimeUp => CS_STOP_TIME_UP,
        StopReason::Cancelled => CS_STOP_CANCELLED,
        StopReason::RegionChanged => CS_STOP_REGION_CHANGED,
        StopReason::AccountChanged => CS_STOP_ACCOUNT_CHANGED,
    }
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
        stopped: stop_code(r.stopped),
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
        next_attempt_at_ms: i.next_attempt_at,
        priority: i.priority.clamp(i32::MIN.into(), i32::MAX.into()) as i32,
        attempts: i.attempts,
        last_error_status: code_of(i.last_error_kind.as_deref()),
        state: c_field(&i.state),
        held_reason: opt_field(&i.held_reason),
        last_error_kind: opt_field(&i.last_error_kind),
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
        config_version: c.config_version.unwrap_or(0),
        region_count: c.regions.len() as u64,
        expired: i32::from(c.expired),
        expires_at: opt_field(&c.expires_at),
        refresh_due_at: opt_field(&c.refresh_due_at),
        approved_region: opt_field(&c.approved_region),
        country: opt_field(&c.country),
        anchored: i32::from(c.anchored),
        trust_reset: opt_field(&c.trust_reset),
    }
}

#[inline(never)]
pub(super) fn event_of(e: &RunEvent) -> cs_event {
    let mut ev = cs_event {
        r#type: CS_EVENT_STARTED,
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
            ev.r#type = CS_EVENT_PROGRESS;
            (ev.item_id, ev.sent, ev.total) = (p.item_id, p.sent, p.total);
        }
        RunEvent::Done { item_id, bytes } => {
            ev.r#type = CS_EVENT_DONE;
            (ev.item_id, ev.sent, ev.total) = (item_id, bytes, bytes);
        }
        RunEvent::Failed {
            item_id,
            kind,
            dead,
            next_attempt_at,
        } => {
            ev.r#type = CS_EVENT_FAILED;
            (ev.item_id, ev.status, ev.dead) = (item_id, kind.code(), i32::from(dead));
            ev.next_attempt_at_ms = ms(next_attempt_at);
        }
        RunEvent::Held { item_id } => (ev.r#type, ev.item_id) = (CS_EVENT_HELD, item_id),
    }
    ev
}

/// The `user` pointer of a credential callback.
pub(super) struct UserPtr(pub(super) *mut c_void);

// SAFETY: the library never dereferences the pointer; it only hands it back
// to the caller's callback, on whichever thread runs `cs_run_once`. The
// header makes the caller responsible for what it points to being usable
// from that thread and alive until the callback is replaced (and runs that
// started with it returned) or the agent is freed.
unsafe impl Send for UserPtr {}
// SAFETY: as above; shared access only copies the pointer.
unsafe impl Sync for UserPtr {}

/// A C credential callback as a [`CredentialProvider`].
pub(super) struct CCredentials {
    pub(super) f: unsafe extern "C" fn(
        *mut c_void,
        *const c_char,
        *const c_char,
        *const c_char,
        c_int,
        *mut c_char,
        usize,
        *mut usize,
    ) -> c_int,
    pub(super) user: UserPtr,
}

impl CredentialProvider for CCredentials {
    fn credential(
        &self,
        r: &CredentialRequest<'_>,
    ) -> std::result::Result<Option<Secret>, ProviderError> {
        let c = |s: &str| CString::new(s).map_err(|_| ProviderError::new("NUL in a request"));
        let (account, region, service) = (c(r.account)?, c(r.region)?, c(r.service)?);
        // Wiped on drop, whatever the callback wrote.
        let mut buf = Zeroizing::new(vec![0u8; MAX_TOKEN_LEN]);
        let mut len = 0usize;
        // SAFETY: the caller vouches for the callback and its `user`; the
        // strings live until it returns and `buf` holds `buf.len()` bytes.
        let rc = unsafe {
            (self.f)(
                self.user.0,
                account.as_ptr(),
                region.as_ptr(),
                service.as_ptr(),
                c_int::from(r.refresh),
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut len,
            )
        };
        match rc {
            0 if len <= buf.len() => Secret::from_bytes(&buf[..len])
                .map(Some)
                .map_err(|_| ProviderError::new("callback wrote a token that is not UTF-8")),
            0 => Err(ProviderError::new("callback claimed out_len > out_cap")),
            1 => Ok(None),
            n => Err(ProviderError::new(format!("callback returned {n}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
            state: "failed".into(),
            attempts: 2,
            confirmed_offset: 4,
            next_attempt_at: 99,
            last_error: Some(format!("network: x{}", "é".repeat(200))),
            last_error_kind: Some("network".into()),
            held_reason: None,
            account: Some("00112233aabbccdd".into()),
        };
        let c = item_of(&info);
        assert_eq!((c.id, c.priority, c.attempts), (7, i32::MAX, 2));
        assert_eq!(c.last_error_status, ErrorKind::Network.code());
        assert_eq!(text(&c.state), "failed");
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
        assert_eq!(ev.r#type, CS_EVENT_FAILED);
        assert_eq!((ev.status, ev.dead, ev.next_attempt_at_ms), (52, 1, -1));
        let ev = event_of(&RunEvent::Done {
            item_id: 3,
            bytes: 5,
        });
        assert_eq!(
            (ev.r#type, ev.sent, ev.total, ev.status),
            (CS_EVENT_DONE, 5, 5, 0)
        );
        assert_eq!(code_of(Some("no_such_kind")), CS_OK);
    }

    /// `*user` picks the answer: 0 writes "tok" (or "new" on a refresh), 1
    /// none, 2 claims more than `out_cap`, anything else is returned as is.
    unsafe extern "C" fn callback(
        user: *mut c_void,
        account: *const c_char,
        _region: *const c_char,
        _service: *const c_char,
        refresh: c_int,
        out: *mut c_char,
        out_cap: usize,
        out_len: *mut usize,
    ) -> c_int {
        unsafe {
            assert_eq!(CStr::from_ptr(account).to_bytes(), b"acct");
            assert_eq!(out_cap, MAX_TOKEN_LEN);
            let mode = *user.cast::<c_int>();
            let token: &[u8] = if refresh != 0 { b"new" } else { b"tok" };
            std::ptr::copy_nonoverlapping(token.as_ptr(), out.cast::<u8>(), token.len());
            *out_len = if mode == 2 { out_cap + 1 } else { token.len() };
            if mode == 2 {
                0
            } else {
                mode
            }
        }
    }

    #[test]
    fn credential_callback_answers() {
        use crate::auth::RunAuth;
        let ask = |mut mode: c_int, refresh: bool| {
            let p = CCredentials {
                f: callback,
                user: UserPtr((&raw mut mode).cast()),
            };
            let auth = RunAuth::new(Some(Arc::new(p)), Some("acct".into()), "in", &|| Ok(()));
            auth.bearer("backup", refresh)
                .map(|h| h.to_str().unwrap().to_string())
                .map_err(|e| e.to_string())
        };
        assert_eq!(ask(0, false).unwrap(), "Bearer tok");
        assert_eq!(ask(0, true).unwrap(), "Bearer new");
        assert!(ask(1, false).unwrap_err().contains("no credentials"));
        assert!(ask(2, false).unwrap_err().contains("out_len > out_cap"));
        assert_eq!(
            ask(7, false).unwrap_err(),
            "unauthorized: the credential provider failed: callback returned 7"
        );
    }
}
