//! The CLI's standard output. A reader that goes away (`cloudsync list
//! --json | head`) ends the process quietly with status 141 (128 + SIGPIPE,
//! what a shell reports for a C tool killed by the signal, and what
//! `set -o pipefail` sees): Rust ignores SIGPIPE, so a write gets EPIPE and
//! `println!` would panic (exit 101). Any other write error is
//! `error: cannot write to stdout` with exit 1.

use std::io::Write;

/// Exit status when stdout's reader went away.
pub const BROKEN_PIPE_STATUS: i32 = 141;

/// Writes `args` and a newline to stdout (see [`outln!`](crate)).
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        failed(&e);
    }
}

/// Writes `bytes` to stdout as they are.
pub fn bytes(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes) {
        failed(&e);
    }
}

/// Flushes stdout (before the process ends).
pub fn flush() {
    if let Err(e) = std::io::stdout().lock().flush() {
        failed(&e);
    }
}

fn failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(BROKEN_PIPE_STATUS);
    }
    eprintln!("error: cannot write to stdout: {e}");
    std::process::exit(1);
}
