//! The runner lock: `flock` on `<database>.lock` (e.g. `cloudsync.db.lock`,
//! which the Android backup rules exclude), held by a run from just before it
//! takes the lease until just after it releases it. The kernel drops it when
//! its holder dies, so it answers "is the lease holder dead?" at once, where
//! the lease alone would make every run wait for the lease to end.
//!
//! The lock file holds one line: the lease owner id of the run that last took
//! the lock. A run that gets the lock and finds a live lease of *that* owner
//! knows it is gone and takes the queue over at once
//! ([`crate::queue::ops::Takeover`]); a live lease of any other owner (one
//! that took the queue over by the lease while a frozen process held the
//! lock, a process of an older version, a deleted lock file) is waited out.
//! The file is read and written only under the lock.
//!
//! Best effort by design: a lock file that cannot be opened (read-only
//! directory, a symbolic link planted at its path, no `flock` on the file
//! system) leaves the run on the lease alone, as before this lock existed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Holder, Result};
use crate::platform::{self, TryLock};
use crate::queue::ops::Takeover;

/// The lock file of the database at `db`: its path with `.lock` appended.
/// `None` for an in-memory database or an SQLite URI (`file:...`), which
/// have no such sibling: their runs rely on the lease alone.
pub(crate) fn lock_path(db: &Path) -> Option<PathBuf> {
    let s = db.as_os_str();
    let bytes = s.as_encoded_bytes();
    if bytes.is_empty() || s == ":memory:" || bytes.starts_with(b"file:") {
        return None;
    }
    let mut p = s.to_os_string();
    p.push(".lock");
    Some(PathBuf::from(p))
}

/// Longest owner id read back from the file (ours are 32 hex digits).
const MAX_RECORD: u64 = 128;

/// One run's hold on the lock file (or its attempt at it).
pub(crate) struct RunnerLock {
    file: Option<File>,
    held: bool,
    /// The owner id the file named when this run took the lock: the runner
    /// that held it last (written over with this run's id at once, so a kill
    /// right after this run's lease commit still finds the file naming it).
    gone: Option<String>,
}

impl RunnerLock {
    /// Opens the lock file (created with mode 0600, never through a symbolic
    /// link) and tries to lock it, without waiting.
    pub(crate) fn try_take(path: Option<&Path>) -> RunnerLock {
        let mut lock = RunnerLock {
            file: None,
            held: false,
            gone: None,
        };
        let Some(path) = path else {
            return lock;
        };
        match open(path) {
            Ok(f) => lock.file = Some(f),
            Err(e) => {
                log::warn!("runner lock file unavailable ({}); lease only", e.kind());
                return lock;
            }
        }
        lock.try_lock();
        lock
    }

    /// Tries the lock again while another open file holds it; `true` once
    /// this run holds it. On success the file is pointed at `owner`.
    pub(crate) fn retry(&mut self, owner: &str) -> bool {
        if !self.held && self.file.is_some() && self.try_lock() {
            self.record(owner);
        }
        self.held
    }

    fn try_lock(&mut self) -> bool {
        let Some(f) = self.file.as_mut() else {
            return false;
        };
        match platform::try_lock_exclusive(f) {
            Ok(TryLock::Acquired) => {
                self.held = true;
                self.gone = read_record(f);
            }
            Ok(TryLock::Busy) => {}
            Err(e) => {
                log::warn!("runner lock unavailable ({}); lease only", e.kind());
                self.file = None;
            }
        }
        self.held
    }

    /// What the lock tells [`crate::queue::ops::acquire_lease_with`].
    pub(crate) fn takeover(&self) -> Takeover<'_> {
        Takeover {
            gone: if self.held {
                self.gone.as_deref()
            } else {
                None
            },
            lock_busy: !self.held && self.file.is_some(),
        }
    }

    /// Whether another open file holds the lock (a live process, maybe frozen).
    pub(crate) fn busy(&self) -> bool {
        !self.held && self.file.is_some()
    }

    /// Writes `owner` (the lease this run now holds) into the file, if this
    /// run holds the lock: from now on, this lock free while that lease is
    /// live means the run is gone.
    pub(crate) fn record(&mut self, owner: &str) {
        if !self.held {
            return;
        }
        if let Some(f) = self.file.as_mut() {
            // In place, then cut: the file never reads empty in between.
            let line = format!("{owner}\n");
            let written = f
                .seek(SeekFrom::Start(0))
                .and_then(|_| f.write_all(line.as_bytes()))
                .and_then(|()| f.set_len(line.len() as u64));
            match written {
                Ok(()) => {}
                // Harmless: the file names someone else, so a successor
                // waits for this lease to end instead of taking it at once.
                Err(e) => log::warn!("runner lock file not written ({})", e.kind()),
            }
        }
    }
}

impl Drop for RunnerLock {
    fn drop(&mut self) {
        // Closing the file drops the lock too; unlocking first keeps the
        // order explicit (the lease was released before this).
        if let (true, Some(f)) = (self.held, self.file.as_ref()) {
            let _ = platform::unlock(f);
        }
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // std opens with O_CLOEXEC: a child the app execs does not inherit the lock.
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    o.open(path)
}

fn read_record(f: &mut File) -> Option<String> {
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).ok()?;
    f.take(MAX_RECORD).read_to_string(&mut s).ok()?;
    let id = s.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// The per-handle guard: one run at a time on a handle, whatever the lock
/// file and the lease say (a nested `run_once` from a listener, or two
/// threads, on one handle).
pub(crate) struct RunGuard<'a>(&'a AtomicBool);

impl<'a> RunGuard<'a> {
    pub(crate) fn enter(running: &'a AtomicBool) -> Result<RunGuard<'a>> {
        running
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .map(|_| RunGuard(running))
            .map_err(|_| Error::QueueHeld(Holder::ThisHandle))
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_paths() {
        assert_eq!(
            lock_path(Path::new("/data/x/cloudsync.db")),
            Some(PathBuf::from("/data/x/cloudsync.db.lock"))
        );
        assert_eq!(lock_path(Path::new(":memory:")), None);
        assert_eq!(lock_path(Path::new("file:q.db?mode=ro")), None);
    }

    #[test]
    fn two_opens_in_one_process_conflict_and_the_record_survives() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.db.lock");
        let mut a = RunnerLock::try_take(Some(&p));
        assert!(a.held && a.gone.is_none());
        a.record("aaaa");
        let mut b = RunnerLock::try_take(Some(&p));
        assert!(b.busy(), "a second open file description is refused");
        assert!(b.takeover().lock_busy && b.takeover().gone.is_none());
        assert!(!b.retry("bbbb"));
        drop(a);
        assert!(b.retry("bbbb"), "free once the first one closed");
        assert_eq!(b.gone.as_deref(), Some("aaaa"), "the runner it found gone");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "bbbb\n");
        drop(b);
        let c = RunnerLock::try_take(Some(&p));
        assert_eq!(c.takeover().gone, Some("bbbb"));
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_at_the_lock_path_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"x").unwrap();
        let p = dir.path().join("q.db.lock");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        let l = RunnerLock::try_take(Some(&p));
        assert!(!l.held && !l.busy(), "lease only");
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
    }

    #[test]
    fn the_guard_refuses_a_second_run_on_the_handle() {
        let running = AtomicBool::new(false);
        let g = RunGuard::enter(&running).unwrap();
        let e = RunGuard::enter(&running).err().unwrap();
        assert_eq!(
            e.to_string(),
            "another runner holds the queue (a run on this handle; until it returns)"
        );
        drop(g);
        assert!(RunGuard::enter(&running).is_ok());
    }
}
