//! Time limits: a hang is a failure. [`within`] and [`bounded`] run a test
//! body on its own thread and fail when it overruns; [`wait_until`] polls a
//! condition up to a limit.

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `f` on its own thread; fails the test, naming `what`, if it takes
/// longer than `limit` (the stuck thread is left behind). A panic in `f` is
/// the test's panic.
pub fn bounded<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// [`bounded`] for a whole test body: "the test did not finish within …".
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    bounded(limit, "the test", f)
}

/// Polls `done` every 10 ms until it holds; fails, naming `what`, after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
