//! `cloudsync run` under Ctrl-C (SIGINT) and SIGTERM: the signal becomes
//! [`Agent::cancel`], so the run stops within a second the way an app's
//! `cancel()` stops it — the item in flight goes back to `pending` with its
//! confirmed offset, the lease and the runner lock are let go — instead of
//! the process dying with the item left `uploading`. The handler itself
//! lives in `cloudsync::platform::interrupt` (the crate's one place for
//! `unsafe`); this side is a watcher thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cloudsync::Agent;

/// How often the watcher looks at the signal flag.
const POLL: Duration = Duration::from_millis(20);

/// The line printed on stderr when a signal stops a run.
pub const LINE: &str = "stopping; progress is kept";

/// Installs the SIGINT/SIGTERM handler (before the database is opened, so a
/// signal at any point of `run` is seen). A failure leaves the default
/// action (the process dies; the next run takes its items over at once).
pub fn install() {
    #[cfg(unix)]
    if let Err(e) = cloudsync::platform::interrupt::install() {
        eprintln!("warning: Ctrl-C will not stop the run cleanly ({e})");
    }
}

/// Runs `f` (the run) while a thread turns a signal into `agent.cancel()`
/// and says so on stderr (through `bar`, when a progress bar is drawn).
/// Returns `f`'s result and the signal that arrived, if any.
pub fn watch<R>(
    agent: &Agent,
    bar: Option<&indicatif::ProgressBar>,
    f: impl FnOnce() -> R,
) -> (R, Option<i32>) {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut told = false;
            while !done.load(Ordering::SeqCst) {
                if let Some(sig) = received() {
                    // Again at every tick: a run clears a cancel from before
                    // it started, and the signal may have come before it did.
                    agent.cancel();
                    if !told {
                        told = true;
                        let line = format!("interrupted ({}): {LINE}", name(sig));
                        match bar {
                            Some(b) => b.suspend(|| eprintln!("{line}")),
                            None => eprintln!("{line}"),
                        }
                    }
                }
                std::thread::sleep(POLL);
            }
        });
        let out = f();
        done.store(true, Ordering::SeqCst);
        (out, received())
    })
}

/// The exit status of a run stopped by `sig`: 128 + its number, as a shell
/// reports a process a signal ended (130 for SIGINT, 143 for SIGTERM).
pub fn exit_status(sig: i32) -> u8 {
    u8::try_from(128 + sig).unwrap_or(u8::MAX)
}

#[cfg(unix)]
fn received() -> Option<i32> {
    cloudsync::platform::interrupt::received()
}

#[cfg(not(unix))]
fn received() -> Option<i32> {
    None
}

#[cfg(unix)]
fn name(sig: i32) -> &'static str {
    cloudsync::platform::interrupt::name(sig)
}

#[cfg(not(unix))]
fn name(_sig: i32) -> &'static str {
    "a signal"
}
