//! A fault-injecting TCP proxy for the network-fault tests (`net_faults.rs`).
//!
//! It listens on a loopback address (normally the same 127.0.0.x as the
//! region's dev server, so the config's `networks` and the server's
//! certificate still match), forwards raw TCP to the dev server (TLS stays
//! end to end: the proxy never sees plaintext), counts bytes each way, and
//! applies a programmable [`Mode`] to each connection it accepts.
//!
//! To tell the TLS handshake from what follows without decrypting anything,
//! it reads the TLS record headers of the client's stream: once the client
//! sends its first `application_data` record (its encrypted `Finished` in
//! TLS 1.3, its first request in TLS 1.2), it has everything the server had
//! to say for the handshake; faults "after the handshake" start there.
//!
//! Bounded in time: every socket has short read/write timeouts and every
//! loop checks a stop flag, so dropping the [`Proxy`] stops and joins all of
//! its threads within a fraction of a second, whatever the peers do.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod conn;
mod shared;

use conn::accept_loop;
use shared::*;
pub use shared::{CutStyle, Mode, ProxyStats};

/// A running proxy; dropping it stops every thread it started.
pub struct Proxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `listen_ip` (any free port) and forwards to `upstream`.
    /// New connections get [`Mode::Pass`] until told otherwise.
    pub fn start(listen_ip: IpAddr, upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(SocketAddr::new(listen_ip, 0)).expect("proxy bind");
        listener
            .set_nonblocking(true)
            .expect("proxy listener nonblocking");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            upstream,
            counters: Counters::default(),
            plan: Mutex::new(Plan {
                default: Mode::Pass,
                next: VecDeque::new(),
                cut_points: VecDeque::new(),
                cut_style: CutStyle::Fin,
                armed: Vec::new(),
                accepted: Vec::new(),
            }),
            threads: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(s, listener))
            .expect("spawn proxy acceptor");
        Proxy {
            shared,
            addr,
            acceptor: Some(acceptor),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The mode of every connection accepted from now on (after any queued
    /// with [`Proxy::push_next`]). Live connections keep theirs.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.plan().default = mode;
    }

    /// The mode of the next accepted connection only (FIFO).
    pub fn push_next(&self, mode: Mode) {
        self.shared.plan().next.push_back(mode);
    }

    /// Cuts the connection carrying the client→server byte number `p` (counted
    /// over all connections, handshakes and headers included) for each `p`,
    /// whatever the connection's mode: exactly `p` bytes will have gone
    /// through. `style` applies to every cut point.
    pub fn cut_at_totals(&self, points: &[u64], style: CutStyle) {
        let mut plan = self.shared.plan();
        plan.cut_style = style;
        let mut all: Vec<u64> = plan
            .cut_points
            .iter()
            .copied()
            .chain(points.iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        plan.cut_points = all.into();
    }

    /// Cut points not reached yet.
    pub fn pending_cuts(&self) -> usize {
        self.shared.plan().cut_points.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            connections: c.connections.load(Ordering::SeqCst),
            client_to_server: c.c2s.load(Ordering::SeqCst),
            server_to_client: c.s2c.load(Ordering::SeqCst),
            swallowed: c.swallowed.load(Ordering::SeqCst),
            cuts: c.cuts.load(Ordering::SeqCst),
        }
    }

    /// When each connection's fault began to apply, in order: a black hole
    /// when accepted; a stall when the proxy stopped reading; a swallow or a
    /// slowloris once the handshake and `after` bytes were through; a cut
    /// when cut; a throttle when accepted.
    pub fn armed(&self) -> Vec<Instant> {
        self.shared.plan().armed.iter().map(|a| a.2).collect()
    }

    /// When each connection was accepted, in order.
    pub fn accepted(&self) -> Vec<Instant> {
        self.shared.plan().accepted.clone()
    }

    /// How long the client kept each faulty connection after its fault
    /// armed: until it opened its next connection (a retry) or, for the
    /// last one, until `end` (the run's return).
    pub fn given_up_after(&self, end: Instant) -> Vec<Duration> {
        let accepted = self.accepted();
        self.armed()
            .iter()
            .map(|a| {
                let next = accepted.iter().find(|t| *t > a).copied().unwrap_or(end);
                next.min(end).saturating_duration_since(*a)
            })
            .collect()
    }

    /// Waits up to `limit` until at least `n` connections have armed their fault.
    pub fn wait_armed(&self, n: usize, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.armed().len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        // Handlers may register pumps while we join: loop until none is left.
        loop {
            let hs: Vec<JoinHandle<()>> = std::mem::take(
                &mut *self
                    .shared
                    .threads
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            );
            if hs.is_empty() {
                break;
            }
            for h in hs {
                let _ = h.join();
            }
        }
    }
}
