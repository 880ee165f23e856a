//! How long a statement waits for another connection's lock.
//!
//! Every connection [`super::Db`] opens gets one busy handler ([`busy`]),
//! instead of SQLite's fixed `busy_timeout`. It keeps trying while the wait
//! is within the limits in force *on the calling thread*, and sleeps at
//! most [`STEP`] between tries, so whatever ends a wait is noticed within
//! that step:
//!
//! - a budget: [`BUSY_WAIT`] by default, narrowed by [`Scope::within`]
//!   (best-effort writes: a read that may record an expiry waits
//!   [`SHORT_WAIT`]) or by [`super::Db::set_busy_wait`];
//! - a run's deadline and cancel flag ([`Scope::run`]): the wait ends when
//!   the deadline passes or the flag is set, and a wait that starts once the
//!   run has stopped gets [`LATE_WAIT`] (the unclaim and the lease release
//!   of a stopped run try briefly; what they cannot write is recovered by
//!   the next run).
//!
//! The limits are per thread because SQLite calls the handler on the thread
//! that runs the statement, and rusqlite takes a plain `fn` as the handler
//! (no per-connection state without `unsafe`). A thread runs one statement
//! at a time, so one "current wait" per thread is exact.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a statement waits for another connection's write lock when
/// nothing narrower is in force.
pub const BUSY_WAIT: Duration = Duration::from_secs(5);

/// The wait of a write that may be skipped (an expiry recorded by a read,
/// retried at the next call): a read never waits longer for a writer.
pub const SHORT_WAIT: Duration = Duration::from_millis(50);

/// The wait of a write made after the run stopped (deadline or cancel).
pub const LATE_WAIT: Duration = Duration::from_millis(50);

/// The longest sleep between two tries: a cancel, or a deadline passing,
/// ends a wait within this.
pub const STEP: Duration = Duration::from_millis(50);

/// What bounds a wait on this thread.
#[derive(Clone, Default)]
struct Limits {
    /// `None`: [`BUSY_WAIT`].
    budget: Option<Duration>,
    deadline: Option<Instant>,
    cancel: Option<Arc<AtomicBool>>,
}

impl Limits {
    /// The narrower of `self` and `other`, field by field.
    fn narrowed(&self, other: &Limits) -> Limits {
        fn min<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        Limits {
            budget: min(self.budget, other.budget),
            deadline: min(self.deadline, other.deadline),
            // The inner scope's flag (a run's), else the outer one's.
            cancel: other.cancel.clone().or_else(|| self.cancel.clone()),
        }
    }

    fn stopped(&self, now: Instant) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
            || self.deadline.is_some_and(|d| now >= d)
    }

    /// How long a wait that started at `start` may last, seen at `now`.
    fn allowed(&self, start: Instant, now: Instant) -> Duration {
        let budget = self.budget.unwrap_or(BUSY_WAIT);
        if self.stopped(now) {
            return budget.min(LATE_WAIT);
        }
        match self.deadline {
            Some(d) => budget.min(d.saturating_duration_since(start)),
            None => budget,
        }
    }
}

thread_local! {
    static LIMITS: RefCell<Limits> = RefCell::new(Limits::default());
    /// When the current wait began (the handler's first call for it).
    static STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Narrows the waits of this thread until dropped (scopes nest; the
/// narrowest limit of each kind wins). Not `Send`: it belongs to the
/// thread that made it.
#[must_use = "the limits hold only while the scope lives"]
pub struct Scope {
    prev: Limits,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Scope {
    fn push(limits: Limits) -> Scope {
        let prev = LIMITS.with(|l| {
            let prev = l.borrow().clone();
            *l.borrow_mut() = prev.narrowed(&limits);
            prev
        });
        Scope {
            prev,
            _not_send: std::marker::PhantomData,
        }
    }

    /// Waits on this thread last at most `budget` each.
    pub fn within(budget: Duration) -> Scope {
        Scope::push(Limits {
            budget: Some(budget),
            ..Limits::default()
        })
    }

    /// The waits of a run: none outlasts `deadline` or `cancel`.
    pub fn run(deadline: Instant, cancel: Arc<AtomicBool>) -> Scope {
        Scope::push(Limits {
            deadline: Some(deadline),
            cancel: Some(cancel),
            ..Limits::default()
        })
    }

    /// [`Scope::run`] and [`Scope::within`] together, from a
    /// [`Bound`] and a budget (a connection's own wait).
    pub(super) fn bounded(budget: Duration, bound: Option<&Bound>) -> Scope {
        Scope::push(Limits {
            budget: Some(budget),
            deadline: bound.map(|b| b.deadline),
            cancel: bound.map(|b| b.cancel.clone()),
        })
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let prev = std::mem::take(&mut self.prev);
        LIMITS.with(|l| *l.borrow_mut() = prev);
    }
}

/// A run's deadline and cancel flag, kept by a connection while a run holds
/// the queue so that the writes of *other* threads on the same handle end
/// with the run's waits too (the run waits for the handle behind them).
#[derive(Clone, Debug)]
pub struct Bound {
    /// When the run must have returned.
    pub deadline: Instant,
    /// The run's cancel flag.
    pub cancel: Arc<AtomicBool>,
}

/// The busy handler of every connection: `true` to try again (after a
/// sleep of at most [`STEP`]), `false` to give up with `SQLITE_BUSY`.
pub(super) fn busy(count: i32) -> bool {
    let now = Instant::now();
    let start = match STARTED.get() {
        Some(s) if count > 0 => s,
        _ => {
            STARTED.set(Some(now));
            now
        }
    };
    let allowed = LIMITS.with(|l| l.borrow().allowed(start, now));
    let waited = now.saturating_duration_since(start);
    if waited >= allowed {
        return false;
    }
    std::thread::sleep(step(count).min(allowed - waited));
    true
}

/// SQLite's own back-off (1, 2, 5, 10, 15, 20, 25, ... ms), capped at [`STEP`].
fn step(count: i32) -> Duration {
    const MS: [u64; 7] = [1, 2, 5, 10, 15, 20, 25];
    let ms = usize::try_from(count)
        .ok()
        .and_then(|i| MS.get(i).copied())
        .unwrap_or(STEP.as_millis() as u64);
    Duration::from_millis(ms).min(STEP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_narrow_and_a_stopped_run_waits_briefly() {
        let t0 = Instant::now();
        let cancel = Arc::new(AtomicBool::new(false));
        let run = Limits {
            budget: None,
            deadline: Some(t0 + Duration::from_secs(2)),
            cancel: Some(cancel.clone()),
        };
        // Before the deadline: the budget, or the time left when the wait began.
        assert_eq!(run.allowed(t0, t0), Duration::from_secs(2));
        let wide = Limits::default();
        assert_eq!(wide.allowed(t0, t0), BUSY_WAIT);
        let short = wide.narrowed(&Limits {
            budget: Some(SHORT_WAIT),
            ..Limits::default()
        });
        assert_eq!(short.narrowed(&run).allowed(t0, t0), SHORT_WAIT);
        // Past the deadline, or cancelled: a brief wait from its start.
        let late = t0 + Duration::from_secs(3);
        assert_eq!(run.allowed(late, late), LATE_WAIT);
        cancel.store(true, Ordering::SeqCst);
        assert_eq!(run.allowed(t0, t0), LATE_WAIT);
    }

    #[test]
    fn scopes_nest_and_restore() {
        let budget = || LIMITS.with(|l| l.borrow().budget);
        assert_eq!(budget(), None);
        {
            let _a = Scope::within(Duration::from_secs(1));
            assert_eq!(budget(), Some(Duration::from_secs(1)));
            {
                let _b = Scope::within(Duration::from_secs(3));
                assert_eq!(budget(), Some(Duration::from_secs(1)), "narrowest wins");
            }
            assert_eq!(budget(), Some(Duration::from_secs(1)));
        }
        assert_eq!(budget(), None);
    }
}
