//! What the proxy's threads share: the modes and cut styles, the counters,
//! the plan for new connections, the stop flag.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a proxy socket call blocks before the stop flag is checked again.
pub(super) const POLL: Duration = Duration::from_millis(50);
/// Read buffer of a pump.
pub(super) const BUF: usize = 64 * 1024;
/// TLS record content type `application_data`.
pub(super) const TLS_APPLICATION_DATA: u8 = 23;

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways untouched.
    Pass,
    /// Forward the first `n` client→server bytes of this connection, then
    /// cut it: the client's side is shut down at once (it sees a reset or an
    /// early close); the server's side gets a FIN after the forwarded bytes.
    CutAfter(u64),
    /// Forward the first `n` client→server bytes, then never read from the
    /// client again (its writes block once the socket buffers are full).
    /// Server→client bytes keep flowing.
    StallAfter(u64),
    /// Forward client→server; once the handshake is over and `after`
    /// client→server bytes went through on this connection, read the
    /// server's bytes and throw them away: the response never comes.
    Swallow { after: u64 },
    /// Like `Swallow`, but forward the server's bytes one byte per `every`.
    Slowloris { after: u64, every: Duration },
    /// Forward client→server at `bytes_per_sec` at most (server→client untouched).
    Throttle { bytes_per_sec: u64 },
    /// Accept the TCP connection, never read or write (no connection to the server).
    BlackHole,
}

/// What the server's side of a cut connection sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutStyle {
    /// A FIN right after the forwarded bytes: the server learns at once.
    Fin,
    /// Nothing: the server's side stays open, as when a phone drops off the
    /// network; the server holds the connection (and whatever lock its
    /// request took) until it gives up or kills it. The server's bytes are drained.
    Zombie,
}

/// Counters of a proxy (all connections).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: u64,
    /// Bytes read from clients (and forwarded to the server).
    pub client_to_server: u64,
    /// Bytes forwarded from the server to clients.
    pub server_to_client: u64,
    /// Server bytes read and thrown away (`Swallow`, and after a cut).
    pub swallowed: u64,
    /// Connections cut (`CutAfter` and [`Proxy::cut_at_totals`]).
    pub cuts: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) connections: AtomicU64,
    pub(super) c2s: AtomicU64,
    pub(super) s2c: AtomicU64,
    pub(super) swallowed: AtomicU64,
    pub(super) cuts: AtomicU64,
}

/// The mutable programme of the proxy.
pub(super) struct Plan {
    pub(super) default: Mode,
    pub(super) next: VecDeque<Mode>,
    /// Remaining cut points on the cumulative client→server byte count, ascending.
    pub(super) cut_points: VecDeque<u64>,
    pub(super) cut_style: CutStyle,
    /// When each connection's fault began to apply (see [`Proxy::armed`]).
    pub(super) armed: Vec<(u64, Mode, Instant)>,
    /// When each connection was accepted.
    pub(super) accepted: Vec<Instant>,
}

pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    pub(super) upstream: SocketAddr,
    pub(super) counters: Counters,
    pub(super) plan: Mutex<Plan>,
    pub(super) threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(super) fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn arm(&self, conn: u64, mode: Mode) {
        self.plan().armed.push((conn, mode, Instant::now()));
    }

    pub(super) fn spawn(self: &Arc<Self>, name: String, f: impl FnOnce() + Send + 'static) {
        let h = std::thread::Builder::new()
            .name(name)
            .spawn(f)
            .expect("spawn proxy thread");
        self.threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(h);
    }
}
