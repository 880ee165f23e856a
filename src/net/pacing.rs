//! Bounded socket I/O for a run: every read and write of a connection obeys
//! the inactivity limit of one call, the deadline of its phase (the TLS
//! handshake, or a request's overall budget), the run's own deadline and the
//! agent's cancel flag. ureq hands its timeouts to the transport per call;
//! [`PacedSocket`] enforces them across the whole call instead of per
//! syscall, so a peer that trickles bytes cannot stretch them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::unversioned::transport::NextTimeout;

/// How long a blocked socket call waits before it looks at the cancel flag
/// and the deadlines again: the bound on how late a cancel or a run's end
/// can be noticed while the peer sends or reads nothing.
const TICK: Duration = Duration::from_millis(100);

/// How long a call already in flight may still finish after a cancel or the
/// run's end (no new request starts then): long enough to read the answer to
/// a chunk that has just been sent, so its offset is confirmed, not re-sent;
/// short enough that a blocked run ends within a second.
pub(crate) const GRACE: Duration = Duration::from_millis(500);

/// What every socket of a run obeys, shared with the thread that may cancel
/// it: the run's hard deadline and the cancel flag of its [`crate::Agent`].
#[derive(Debug, Clone)]
pub struct IoControl {
    cancel: Arc<AtomicBool>,
    pub(crate) deadline: Instant,
}

impl IoControl {
    /// Sockets give up at `deadline` or as soon as `cancel` is set.
    pub fn new(cancel: Arc<AtomicBool>, deadline: Instant) -> IoControl {
        IoControl { cancel, deadline }
    }

    /// Whether the run must stop: cancelled, or past its deadline.
    pub fn stopped(&self) -> bool {
        self.cancel.load(Ordering::SeqCst) || Instant::now() >= self.deadline
    }

    /// Whether the cancel flag is set (as opposed to the deadline passing).
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Time left until the run's deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// A TCP socket whose every read and write is bounded: by the inactivity
/// limit of one call, by the deadline of the current phase (handshake or
/// request), by the run's deadline, and by the cancel flag. A blocked call
/// wakes every [`TICK`] to check them, so neither a peer that goes silent nor
/// one that trickles bytes can hold a run past its end. (Plain
/// `SO_RCVTIMEO`/`SO_SNDTIMEO` bound one syscall only: a trickle resets them.)
pub(crate) struct PacedSocket {
    pub(crate) sock: TcpStream,
    ctl: IoControl,
    /// Deadline of the current phase (the handshake's, or ureq's per-request budget).
    until: Option<Instant>,
    /// How long one read / one write may make no progress.
    idle_read: Option<Duration>,
    idle_write: Option<Duration>,
    /// The socket timeouts last set, to skip redundant `setsockopt` calls.
    set_read: Option<Duration>,
    set_write: Option<Duration>,
    /// When a call on this socket first saw the cancel flag.
    cancel_seen: Option<Instant>,
}

impl PacedSocket {
    pub(crate) fn new(sock: TcpStream, ctl: IoControl) -> PacedSocket {
        PacedSocket {
            sock,
            ctl,
            until: None,
            idle_read: None,
            idle_write: None,
            set_read: None,
            set_write: None,
            cancel_seen: None,
        }
    }

    /// Applies the budget ureq hands to one transport call.
    pub(crate) fn phase(&mut self, t: NextTimeout) {
        self.until = t.not_zero().map(|d| Instant::now() + *d);
        self.idle_read = t.per_read.filter(|d| !d.is_not_happening()).map(|d| *d);
        self.idle_write = t.per_write.filter(|d| !d.is_not_happening()).map(|d| *d);
    }

    /// Time this call may still wait, or why it may not.
    fn budget(&mut self, started: Instant, idle: Option<Duration>) -> std::io::Result<Duration> {
        let now = Instant::now();
        let mut end = self.ctl.deadline + GRACE;
        if self.ctl.cancel.load(Ordering::SeqCst) {
            end = end.min(*self.cancel_seen.get_or_insert(now) + GRACE);
            if now >= end {
                return Err(std::io::Error::other(CANCELLED));
            }
        }
        let mut left = end.saturating_duration_since(now);
        if let Some(u) = self.until {
            left = left.min(u.saturating_duration_since(now));
        }
        if let Some(i) = idle {
            left = left.min(i.saturating_sub(now - started));
        }
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out",
            ));
        }
        Ok(left.min(TICK))
    }
}

/// The message of the I/O error a cancelled socket call returns.
const CANCELLED: &str = "cancelled";

fn waits(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

impl Read for PacedSocket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let started = Instant::now();
        loop {
            let wait = Some(self.budget(started, self.idle_read)?);
            if wait != self.set_read {
                self.sock.set_read_timeout(wait)?;
                self.set_read = wait;
            }
            match self.sock.read(buf) {
                Err(e) if waits(&e) => continue,
                r => return r,
            }
        }
    }
}

impl Write for PacedSocket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let started = Instant::now();
        loop {
            let wait = Some(self.budget(started, self.idle_write)?);
            if wait != self.set_write {
                self.sock.set_write_timeout(wait)?;
                self.set_write = wait;
            }
            match self.sock.write(buf) {
                Err(e) if waits(&e) => continue,
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

/// Runs `f` (a call std cannot interrupt: a TCP connect, a DNS lookup) on a
/// helper thread and waits for it in ticks, so a cancel or the run's end is
/// noticed within a tick. An abandoned call finishes on its own (every such
/// call here has its own timeout) and its result is dropped.
pub(crate) fn interruptible<T: Send + 'static>(
    ctl: &IoControl,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("cloudsync-net".into())
        .spawn(move || {
            let _ = tx.send(f());
        })?;
    loop {
        match rx.recv_timeout(TICK) {
            Ok(out) => return Ok(out),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if ctl.stopped() => {
                return Err(std::io::Error::other(CANCELLED));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(std::io::Error::other("network helper thread ended"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connected socket whose peer never sends (kept alive by the returned listener side).
    fn silent_peer() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let c = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (s, _) = l.accept().expect("accept");
        (c, s)
    }

    fn paced(
        deadline_in: Duration,
        idle: Option<Duration>,
    ) -> (PacedSocket, TcpStream, Arc<AtomicBool>) {
        let (c, s) = silent_peer();
        let cancel = Arc::new(AtomicBool::new(false));
        let ctl = IoControl::new(cancel.clone(), Instant::now() + deadline_in);
        let mut p = PacedSocket::new(c, ctl);
        p.idle_read = idle;
        p.idle_write = idle;
        (p, s, cancel)
    }

    #[test]
    fn a_silent_peer_hits_the_inactivity_limit() {
        let (mut p, _peer, _) = paced(Duration::from_secs(30), Some(Duration::from_millis(300)));
        let t = Instant::now();
        let e = p.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[test]
    fn a_trickling_peer_cannot_stretch_the_phase_deadline() {
        let (mut p, mut peer, _) = paced(Duration::from_secs(30), Some(Duration::from_secs(5)));
        p.until = Some(Instant::now() + Duration::from_millis(600));
        let trickle = std::thread::spawn(move || {
            for _ in 0..40 {
                if peer.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let t = Instant::now();
        let mut got = 0;
        let e = loop {
            match p.read(&mut [0u8; 1]) {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(got > 0, "bytes did arrive");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        drop(p);
        trickle.join().expect("trickler");
    }

    #[test]
    fn cancel_ends_a_blocked_read_after_the_grace() {
        let (mut p, _peer, cancel) = paced(Duration::from_secs(30), None);
        let c = cancel.clone();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            c.store(true, Ordering::SeqCst);
            Instant::now()
        });
        let e = p.read(&mut [0u8; 16]).unwrap_err();
        let at = canceller.join().expect("canceller");
        assert_eq!(e.to_string(), CANCELLED);
        let late = at.elapsed();
        assert!(late >= GRACE && late < GRACE + TICK * 3, "{late:?}");
    }

    #[test]
    fn the_run_deadline_ends_a_blocked_write() {
        let (mut p, _peer, _) = paced(Duration::from_millis(300), None);
        let t = Instant::now();
        // The peer never reads: the socket buffers fill, then the write blocks.
        let chunk = vec![0u8; 1 << 20];
        let e = loop {
            if let Err(e) = p.write(&chunk) {
                break e;
            }
            assert!(t.elapsed() < Duration::from_secs(5), "never blocked");
        };
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(300) + GRACE && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
