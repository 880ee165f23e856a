//! One proxied connection: accepting it, the two pumps, cuts.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::shared::*;

pub(super) fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
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
pub(super) struct Conn {
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
pub(super) struct Records {
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

// Long: one pump loop; each mode's cut acts mid-stream on the loop's own state.
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

// Long: one pump loop; each mode's cut acts mid-stream on the loop's own state.
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
