//! `cloudsync run` under Ctrl-C (SIGINT) and SIGTERM: the signal becomes
//! [`Agent::cancel`], so the run stops within a second the way an app's
//! `cancel()` stops it — the item in flight goes back to `pending` with its
//! confirmed offset, the lease and the runner lock are let go — instead of
//! the process dying with the item left `uploading`. The handlers are
//! `signal-hook`'s (no `unsafe` here): the first signal only stores its
//! number in an atomic — the one thing a handler may safely do — and a
//! watcher thread turns it into `cancel`; a second signal ends the process at
//! once with status 128 + its number, the status a shell reports for a
//! process killed by it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
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
    if let Err(e) = register() {
        eprintln!("warning: Ctrl-C will not stop the run cleanly ({e})");
    }
}

/// The first signal received (0: none yet).
static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

#[cfg(unix)]
fn register() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    let received = RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0)));
    let again = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees `again` as the previous signal left it.
        let status = i32::from(exit_status(sig));
        flag::register_conditional_shutdown(sig, status, Arc::clone(&again))?;
        flag::register(sig, Arc::clone(&again))?;
        // `usize::MAX` never matches a signal number; the value is positive.
        let number = usize::try_from(sig).unwrap_or(usize::MAX);
        flag::register_usize(sig, Arc::clone(received), number)?;
    }
    Ok(())
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

/// The first signal received since [`install`], if any.
fn received() -> Option<i32> {
    let sig = RECEIVED.get()?.load(Ordering::SeqCst);
    i32::try_from(sig).ok().filter(|&s| s != 0)
}

/// The signal's name, for the message.
fn name(sig: i32) -> &'static str {
    use signal_hook::consts::{SIGINT, SIGTERM};
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
