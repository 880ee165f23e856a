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
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a proxy socket call blocks before the stop flag is checked again.
const POLL: Duration = Duration::from_millis(50);
/// Read buffer of a pump.
const BUF: usize = 64 * 1024;
/// TLS record content type `application_data`.
const TLS_APPLICATION_DATA: u8 = 23;

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
struct Counters {
    connections: AtomicU64,
    c2s: AtomicU64,
    s2c: AtomicU64,
    swallowed: AtomicU64,
    cuts: AtomicU64,
}

/// The mutable programme of the proxy.
struct Plan {
    default: Mode,
    next: VecDeque<Mode>,
    /// Remaining cut points on the cumulative client→server byte count, ascending.
    cut_points: VecDeque<u64>,
    cut_style: CutStyle,
    /// When each connection's fault began to apply (see [`Proxy::armed`]).
    armed: Vec<(u64, Mode, Instant)>,
    /// When each connection was accepted.
    accepted: Vec<Instant>,
}

struct Shared {
    stop: AtomicBool,
    upstream: SocketAddr,
    counters: Counters,
    plan: Mutex<Plan>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arm(&self, conn: u64, mode: Mode) {
        self.plan().armed.push((conn, mode, Instant::now()));
    }

    fn spawn(self: &Arc<Self>, name: String, f: impl FnOnce() + Send + 'static) {
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

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut n = 0u64;
    while !shared.stopping() {
        match listener.accept() {
            Ok((client, _)) => {
                n += 1;
                shared.counters.connections.fetch_add(1, Ordering::SeqCst);
                let mode = {
                    let mut plan = shared.plan();
                    plan.accepted.push(Instant::now());
                    let d = plan.default;
                    plan.next.pop_front().unwrap_or(d)
                };
                let s = shared.clone();
                let id = n;
                shared.spawn(format!("proxy-conn{id}"), move || {
                    handle(s, id, client, mode)
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Per-connection state shared by its two pumps.
struct Conn {
    id: u64,
    mode: Mode,
    client: TcpStream,
    server: TcpStream,
    /// Set when the client sent its first application-data record.
    handshake_done: AtomicBool,
    /// Set when the mode's fault starts to apply to server→client bytes.
    armed: AtomicBool,
    /// Set when the connection was cut: both pumps wind down.
    cut: AtomicBool,
    /// Set when the client→server pump ended.
    c2s_done: AtomicBool,
}

fn prepare(s: &TcpStream) -> io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(POLL))?;
    s.set_write_timeout(Some(POLL))?;
    s.set_nodelay(true)
}

fn handle(shared: Arc<Shared>, id: u64, client: TcpStream, mode: Mode) {
    if prepare(&client).is_err() {
        return;
    }
    if mode == Mode::BlackHole {
        shared.arm(id, mode);
        // Hold the socket: never read, never write, until the proxy stops.
        while !shared.stopping() {
            std::thread::sleep(POLL);
        }
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let server = match TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    if prepare(&server).is_err() {
        return;
    }
    if matches!(mode, Mode::Throttle { .. }) {
        shared.arm(id, mode);
    }
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let conn = Arc::new(Conn {
        id,
        mode,
        client: c2,
        server: s2,
        handshake_done: AtomicBool::new(false),
        armed: AtomicBool::new(false),
        cut: AtomicBool::new(false),
        c2s_done: AtomicBool::new(false),
    });
    let (sh, cn) = (shared.clone(), conn.clone());
    shared.spawn(format!("proxy-conn{id}-s2c"), move || {
        server_to_client(&sh, &cn, server)
    });
    client_to_server(&shared, &conn, client);
}

/// Writes all of `buf`, retrying timed-out writes until `give_up` says so.
fn write_all(s: &mut TcpStream, mut buf: &[u8], give_up: &dyn Fn() -> bool) -> io::Result<()> {
    while !buf.is_empty() {
        if give_up() {
            return Err(io::Error::other("proxy stopping"));
        }
        match s.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if transient(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Follows TLS record boundaries in the client's stream.
#[derive(Default)]
struct Records {
    hdr: [u8; 5],
    have: usize,
    left: usize,
    app_seen: bool,
}

impl Records {
    fn feed(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            if self.left > 0 {
                let k = self.left.min(b.len());
                self.left -= k;
                b = &b[k..];
            } else {
                let k = (5 - self.have).min(b.len());
                self.hdr[self.have..self.have + k].copy_from_slice(&b[..k]);
                self.have += k;
                b = &b[k..];
                if self.have == 5 {
                    if self.hdr[0] == TLS_APPLICATION_DATA {
                        self.app_seen = true;
                    }
                    self.left = usize::from(u16::from_be_bytes([self.hdr[3], self.hdr[4]]));
                    self.have = 0;
                }
            }
        }
    }
}

/// Cuts the connection: the client's side at once; with [`CutStyle::Fin`]
/// the server's side gets a FIN after what was forwarded (so the server
/// keeps every byte that went through), with [`CutStyle::Zombie`] nothing.
fn cut(shared: &Shared, conn: &Conn, style: CutStyle) {
    if !conn.cut.swap(true, Ordering::SeqCst) {
        shared.counters.cuts.fetch_add(1, Ordering::SeqCst);
        shared.arm(conn.id, conn.mode);
    }
    let _ = conn.client.shutdown(Shutdown::Both);
    if style == CutStyle::Fin {
        let _ = conn.server.shutdown(Shutdown::Write);
    }
}

fn client_to_server(shared: &Arc<Shared>, conn: &Arc<Conn>, mut client: TcpStream) {
    let mut server = match conn.server.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut buf = vec![0u8; BUF];
    let mut records = Records::default();
    let mut total: u64 = 0;
    let started = Instant::now();
    let give_up = || shared.stopping() || conn.cut.load(Ordering::SeqCst);
    loop {
        if give_up() {
            break;
        }
        // How much this connection may read now.
        let mut want = BUF as u64;
        match conn.mode {
            Mode::CutAfter(n) => {
                if total >= n {
                    cut(shared, conn, CutStyle::Fin);
                    break;
                }
                want = want.min(n - total);
            }
            Mode::StallAfter(n) => {
                if total >= n {
                    shared.arm(conn.id, conn.mode);
                    // Never read from the client again; wait for the end.
                    while !give_up() {
                        std::thread::sleep(POLL);
                    }
                    break;
                }
                want = want.min(n - total);
            }
            Mode::Throttle { bytes_per_sec } => {
                let allowed = (started.elapsed().as_secs_f64() * bytes_per_sec as f64) as u64;
                if allowed <= total {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                want = want.min(allowed - total);
            }
            _ => {}
        }
        // Never read past the next global cut point.
        let (cut_here, style) = {
            let plan = shared.plan();
            (plan.cut_points.front().copied(), plan.cut_style)
        };
        if let Some(p) = cut_here {
            let so_far = shared.counters.c2s.load(Ordering::SeqCst);
            if so_far >= p {
                shared.plan().cut_points.pop_front();
                cut(shared, conn, style);
                break;
            }
            want = want.min(p - so_far);
        }
        let want = usize::try_from(want).expect("bounded by BUF");
        let n = match client.read(&mut buf[..want]) {
            Ok(0) => {
                // The client closed its side: pass the FIN on.
                let _ = conn.server.shutdown(Shutdown::Write);
                break;
            }
            Ok(n) => n,
            Err(e) if transient(&e) => continue,
            Err(_) => {
                let _ = conn.server.shutdown(Shutdown::Both);
                break;
            }
        };
        records.feed(&buf[..n]);
        total += n as u64;
        shared.counters.c2s.fetch_add(n as u64, Ordering::SeqCst);
        if records.app_seen {
            // Decided before these bytes reach the server: nothing the server
            // says from now on belongs to the handshake.
            conn.handshake_done.store(true, Ordering::SeqCst);
        }
        if let Mode::Swallow { after } | Mode::Slowloris { after, .. } = conn.mode {
            if conn.handshake_done.load(Ordering::SeqCst)
                && total >= after
                && !conn.armed.swap(true, Ordering::SeqCst)
            {
                shared.arm(conn.id, conn.mode);
            }
        }
        if write_all(&mut server, &buf[..n], &|| shared.stopping()).is_err() {
            let _ = conn.client.shutdown(Shutdown::Both);
            break;
        }
    }
    conn.c2s_done.store(true, Ordering::SeqCst);
}

fn server_to_client(shared: &Arc<Shared>, conn: &Arc<Conn>, mut server: TcpStream) {
    let mut client = match conn.client.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    };
    let mut buf = vec![0u8; BUF];
    let mut queue: VecDeque<u8> = VecDeque::new();
    let mut next_drip = Instant::now();
    let mut server_eof = false;
    loop {
        if shared.stopping() {
            break;
        }
        let cut = conn.cut.load(Ordering::SeqCst);
        if server_eof {
            // Slowloris: keep dripping what is queued; everything else is over.
            if queue.is_empty() || cut {
                let _ = conn.client.shutdown(Shutdown::Write);
                break;
            }
        } else {
            match server.read(&mut buf) {
                Ok(0) => server_eof = true,
                Ok(n) => {
                    let swallow = cut
                        || (matches!(conn.mode, Mode::Swallow { .. })
                            && conn.armed.load(Ordering::SeqCst));
                    if swallow {
                        // After a cut the server's bytes are drained (not left
                        // unread, which would reset the server's side before it
                        // has read everything that was forwarded).
                        shared
                            .counters
                            .swallowed
                            .fetch_add(n as u64, Ordering::SeqCst);
                        continue;
                    }
                    queue.extend(&buf[..n]);
                }
                Err(e) if transient(&e) => {}
                Err(_) => {
                    let _ = conn.client.shutdown(Shutdown::Both);
                    break;
                }
            }
        }
        if cut || queue.is_empty() {
            continue;
        }
        let slow = match conn.mode {
            Mode::Slowloris { every, .. } if conn.armed.load(Ordering::SeqCst) => Some(every),
            _ => None,
        };
        let n = match slow {
            None => queue.len(),
            Some(every) => {
                let now = Instant::now();
                if now < next_drip {
                    if server_eof {
                        std::thread::sleep((next_drip - now).min(POLL));
                    }
                    continue;
                }
                next_drip = now + every;
                1
            }
        };
        let out: Vec<u8> = queue.drain(..n).collect();
        if write_all(&mut client, &out, &|| {
            shared.stopping() || conn.cut.load(Ordering::SeqCst)
        })
        .is_err()
        {
            let _ = conn.server.shutdown(Shutdown::Both);
            break;
        }
        shared
            .counters
            .s2c
            .fetch_add(out.len() as u64, Ordering::SeqCst);
    }
}
