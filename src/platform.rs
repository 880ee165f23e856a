//! The crate's only calls into the C library outside the FFI layer
//! (`src/ffi/`): the runner's lock file (`flock`). Every `unsafe` block of
//! them is here, each with the reason it is sound; the rest of the crate is
//! `deny(unsafe_code)`.
//!
//! Why `libc::flock` and not `std::fs::File::try_lock`: `try_lock` was
//! stabilised in Rust 1.89, above this crate's `rust-version` (1.85), and
//! std's implementation returns `Unsupported` on `target_os = "android"`
//! (rust-lang/rust#148325; the fix, #157038, was merged in May 2026 for a
//! later release): on the phone it would never lock. Bionic has had `flock(2)` from its first
//! commit, and both std (on Linux) and the fix for Android call that same
//! syscall, so this module locks exactly as std would.

use std::fs::File;
use std::io;

/// What a non-blocking attempt at an exclusive lock found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryLock {
    /// This open file description now holds the lock.
    Acquired,
    /// Another open file description (another handle, or another process)
    /// holds it.
    Busy,
}

/// `flock(fd, LOCK_EX | LOCK_NB)`. The lock belongs to the open file
/// description: two `open`s of one file conflict even in one process, and
/// the kernel drops it when the last descriptor of that description closes —
/// at the latest when the holder dies, however it dies.
#[cfg(unix)]
pub(crate) fn try_lock_exclusive(f: &File) -> io::Result<TryLock> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: `flock` only reads its two integer arguments; the
        // descriptor is valid for the call because `f` borrows the open file.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(TryLock::Acquired);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // EWOULDBLOCK is EAGAIN on Linux and Android.
            Some(libc::EWOULDBLOCK) => return Ok(TryLock::Busy),
            _ => return Err(e),
        }
    }
}

/// No file locks off Unix: runs rely on the lease alone.
#[cfg(not(unix))]
pub(crate) fn try_lock_exclusive(_f: &File) -> io::Result<TryLock> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// `flock(fd, LOCK_UN)`: gives the lock up before the file is closed (closing
/// it would too; this makes the order explicit where it matters).
#[cfg(unix)]
pub(crate) fn unlock(f: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: as in `try_lock_exclusive`: integers only, a borrowed live descriptor.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
pub(crate) fn unlock(_f: &File) -> io::Result<()> {
    Ok(())
}
