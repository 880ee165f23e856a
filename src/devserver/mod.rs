//! A fault-injecting [tus 1.0.0](https://tus.io/protocols/resumable-upload) server over
//! real TLS, for integration tests, the `cloudsync demo` command and benchmarks.
//!
//! * Protocol: core + `creation` + `checksum` (sha256 only) + `termination`.
//! * Transport: rustls (ring provider) over std TCP, HTTP/1.1 with keep-alive, one thread
//!   per connection, no async runtime.
//! * Storage: one file per upload under [`ServerOptions::storage_dir`]; PATCH bodies are
//!   streamed to disk in large blocks, so multi-GiB uploads don't grow memory.
//! * Faults: a FIFO of one-shot [`Fault`]s (status codes, redirects, dropped connections,
//!   lost uploads, delays) plus [`TusServer::restart`] and [`TusServer::forget_uploads`].
//!
//! ```no_run
//! use cloudsync::devserver::{ServerOptions, TestCa, TusServer};
//! let ca = TestCa::new("Test CA");
//! let leaf = ca.issue(&["backup.in.test"], &["127.0.0.1".parse().expect("IP literal")]);
//! let dir = std::env::temp_dir().join("uploads");
//! let server = TusServer::start(ServerOptions::new(
//!     "127.0.0.1:0".parse().expect("socket address literal"),
//!     leaf,
//!     dir,
//!     "backup.in.test",
//! ))
//! .expect("server starts");
//! println!("tus endpoint: {}", server.base_url());
//! ```

mod ca;
mod http;
mod tus;
pub mod world;

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use ca::{LeafCert, TestCa};

/// How long an idle keep-alive connection (or a stalled body) may wait for the client.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a response write may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Read-ahead on the raw TCP socket, so TLS records are pulled in with few syscalls.
const TCP_READ_BUF: usize = 256 * 1024;

/// Configuration for [`TusServer::start`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Address to listen on, e.g. `127.0.0.2:0` (Linux answers on all of 127/8); port 0
    /// picks a free port (see [`TusServer::port`]).
    pub bind: SocketAddr,
    /// Server certificate chain and key.
    pub cert: LeafCert,
    /// Directory the uploads are written to (created if missing); one file per upload.
    pub storage_dir: PathBuf,
    /// Path prefix of the creation endpoint and of upload URLs (default `/files/`).
    pub base_path: String,
    /// Offer the checksum extension (sha256 only) and verify `Upload-Checksum`
    /// (460 on mismatch).
    pub checksum: bool,
    /// Offer the termination extension (DELETE).
    pub termination: bool,
    /// Announced as `Tus-Max-Size`; a POST with a larger `Upload-Length` gets 413.
    pub max_size: Option<u64>,
    /// Answer `Location: /files/<id>` instead of `https://<public_host>:<port>/files/<id>`.
    pub relative_location: bool,
    /// Host name used in absolute `Location`s, e.g. `backup.in.test`.
    pub public_host: String,
    /// A POST whose metadata `item` (and `sha256`) equal those of an existing, incomplete,
    /// not forgotten upload with the same `Upload-Length` gets that upload's URL (201 with its
    /// `Upload-Offset`) instead of a new one.
    pub dedupe_by_item: bool,
}

impl ServerOptions {
    /// Options with the defaults: base path `/files/`, checksum and termination offered,
    /// no maximum size, absolute `Location`s, dedupe by `item` on.
    pub fn new(
        bind: SocketAddr,
        cert: LeafCert,
        storage_dir: impl Into<PathBuf>,
        public_host: impl Into<String>,
    ) -> Self {
        ServerOptions {
            bind,
            cert,
            storage_dir: storage_dir.into(),
            base_path: "/files/".to_string(),
            checksum: true,
            termination: true,
            max_size: None,
            relative_location: false,
            public_host: public_host.into(),
            dedupe_by_item: true,
        }
    }
}

/// A snapshot of the server's counters (see [`TusServer::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// TLS handshakes that completed.
    pub tls_handshakes_ok: u64,
    /// Decrypted bytes read from clients (request heads, bodies and chunk framing).
    pub app_bytes_received: u64,
    /// Request body payload bytes read (including bodies that were discarded).
    pub body_bytes_received: u64,
    /// Uploads created by POST (a deduplicated POST doesn't count).
    pub uploads_created: u64,
    /// Uploads whose offset reached their length.
    pub uploads_completed: u64,
    /// HTTP requests read (including malformed ones).
    pub requests: u64,
}

/// One upload as the server sees it (see [`TusServer::uploads`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    /// The id (last path segment of the upload URL).
    pub id: String,
    /// `Upload-Length` (always known: deferred length is not supported).
    pub length: Option<u64>,
    /// Bytes received and stored so far.
    pub offset: u64,
    /// Decoded `Upload-Metadata`, in the order sent.
    pub metadata: Vec<(String, Option<Vec<u8>>)>,
    /// File holding the upload's bytes.
    pub path: PathBuf,
    /// Whether `offset == length`.
    pub complete: bool,
    /// Whether the server "lost" it ([`TusServer::forget_uploads`] or [`Fault::Gone`]):
    /// HEAD/PATCH on its URL answer 404, but its bytes are still on disk.
    pub forgotten: bool,
}

impl UploadInfo {
    /// The decoded value of a metadata key, if present with a value.
    pub fn metadata_value(&self, key: &str) -> Option<&[u8]> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// A one-shot fault, queued with [`TusServer::push_fault`].
///
/// Faults sit in a FIFO; each is consumed by the first request it applies to. A request
/// consumes at most one `Delay`, at most one answer-replacing fault (`Status`, `Redirect`,
/// `Gone`), and — only if it gets that far — one `DropAfterBodyBytes` (an accepted PATCH)
/// or `LocationOverride` (a successful POST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// On the next PATCH that passes validation: store N body bytes (advancing the offset),
    /// then close the TCP connection abruptly without responding. If the body is shorter
    /// than N, all of it is stored and the connection is still dropped unanswered.
    DropAfterBodyBytes(u64),
    /// The next request with this method (any method if `None`) is answered with `status`
    /// (plus `Retry-After` if given); its body is discarded and no state changes.
    Status {
        /// Method to match (e.g. `Some("PATCH")`), or `None` for any.
        method: Option<&'static str>,
        /// Status code to answer with, e.g. 500, 503, 429.
        status: u16,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// The next request with this method (any if `None`) is answered with a redirect;
    /// no state changes.
    Redirect {
        /// Method to match, or `None` for any.
        method: Option<&'static str>,
        /// Redirect status, e.g. 307 or 308.
        status: u16,
        /// `Location` value, verbatim.
        location: String,
    },
    /// The next successful POST creates (or deduplicates) the upload as usual but answers
    /// with this `Location`, verbatim.
    LocationOverride(String),
    /// The next HEAD or PATCH answers 404 and the server forgets the upload it named.
    Gone,
    /// The next request stalls this long after its head was read, before its body is read
    /// or anything is changed; then it is handled normally. Restart/stop cut it short.
    Delay(Duration),
}

/// Atomic counters behind [`ServerStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// See [`ServerStats::connections`].
    pub connections: AtomicU64,
    /// See [`ServerStats::tls_handshakes_ok`].
    pub tls_handshakes_ok: AtomicU64,
    /// See [`ServerStats::app_bytes_received`] (shared with each [`http::Conn`]).
    pub app_bytes_received: Arc<AtomicU64>,
    /// See [`ServerStats::body_bytes_received`] (shared with each [`http::Conn`]).
    pub body_bytes_received: Arc<AtomicU64>,
    /// See [`ServerStats::uploads_created`].
    pub uploads_created: AtomicU64,
    /// See [`ServerStats::uploads_completed`].
    pub uploads_completed: AtomicU64,
    /// See [`ServerStats::requests`].
    pub requests: AtomicU64,
}

/// Settings derived from [`ServerOptions`] that request handling needs.
#[derive(Debug)]
pub(crate) struct Config {
    /// [`ServerOptions::storage_dir`].
    pub storage_dir: PathBuf,
    /// [`ServerOptions::base_path`], normalised to start and end with `/`.
    pub base_path: String,
    /// [`ServerOptions::checksum`].
    pub checksum: bool,
    /// [`ServerOptions::termination`].
    pub termination: bool,
    /// [`ServerOptions::max_size`].
    pub max_size: Option<u64>,
    /// [`ServerOptions::relative_location`].
    pub relative_location: bool,
    /// [`ServerOptions::public_host`].
    pub public_host: String,
    /// [`ServerOptions::dedupe_by_item`].
    pub dedupe_by_item: bool,
    /// The port actually bound (for absolute `Location`s).
    pub port: u16,
}

struct ConnEntry {
    stream: TcpStream,
    killed: Arc<AtomicBool>,
}

/// Per-connection data the request handler needs.
pub(crate) struct ConnCtx {
    /// Registry id of the connection.
    pub id: u64,
    /// Set when the connection is cut by restart/stop/a newer writer.
    pub killed: Arc<AtomicBool>,
    /// Reusable body buffer (allocated on first PATCH).
    pub scratch: Vec<u8>,
}

/// State shared by the accept thread, the connection threads and [`TusServer`].
pub(crate) struct Shared {
    /// Request-handling settings.
    pub cfg: Config,
    /// Counters behind [`TusServer::stats`].
    pub stats: Counters,
    /// All uploads.
    pub store: Mutex<tus::Store>,
    /// Signalled whenever an upload's writer lock is released.
    pub store_cv: Condvar,
    faults: Mutex<VecDeque<Fault>>,
    conns: Mutex<HashMap<u64, ConnEntry>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stopping: AtomicBool,
    next_conn: AtomicU64,
    tls: Arc<rustls::ServerConfig>,
}

/// Locks a mutex, ignoring poisoning (a panicking connection thread must not take the
/// whole server down with it).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Removes and returns the first queued fault for which `applies` is true.
    pub fn take_fault(&self, applies: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let i = faults.iter().position(applies)?;
        faults.remove(i)
    }

    /// Whether the server is shutting down.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Cuts a connection: its thread sees EOF/errors on its next socket operation.
    pub fn kill_conn(&self, id: u64) {
        if let Some(entry) = lock(&self.conns).get(&id) {
            entry.killed.store(true, Ordering::SeqCst);
            let _ = entry.stream.shutdown(Shutdown::Both);
        }
    }

    fn kill_all_conns(&self) {
        for entry in lock(&self.conns).values() {
            entry.killed.store(true, Ordering::SeqCst);
            let _ = entry.stream.shutdown(Shutdown::Both);
        }
    }
}

/// A running tus server. Dropping it (or [`TusServer::stop`]) closes the listener, cuts
/// every connection and joins all threads; stored files stay on disk.
pub struct TusServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TusServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TusServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn server_tls_config(cert: &LeafCert) -> io::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(cert.rustls_chain(), cert.rustls_key())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn normalize_base_path(p: &str) -> String {
    let trimmed = p.trim_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        format!("/{trimmed}/")
    }
}

impl TusServer {
    /// Binds, creates the storage directory and starts accepting connections.
    pub fn start(opts: ServerOptions) -> io::Result<TusServer> {
        let tls = Arc::new(server_tls_config(&opts.cert)?);
        std::fs::create_dir_all(&opts.storage_dir)?;
        let listener = TcpListener::bind(opts.bind)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cfg: Config {
                storage_dir: opts.storage_dir,
                base_path: normalize_base_path(&opts.base_path),
                checksum: opts.checksum,
                termination: opts.termination,
                max_size: opts.max_size,
                relative_location: opts.relative_location,
                public_host: opts.public_host,
                dedupe_by_item: opts.dedupe_by_item,
                port: addr.port(),
            },
            stats: Counters::default(),
            store: Mutex::new(tus::Store::default()),
            store_cv: Condvar::new(),
            faults: Mutex::new(VecDeque::new()),
            conns: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            next_conn: AtomicU64::new(1),
            tls,
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name(format!("devserver-accept-{}", addr.port()))
            .spawn(move || accept_loop(accept_shared, listener))?;
        log::debug!("devserver listening on {addr}");
        Ok(TusServer {
            shared,
            addr,
            accept: Some(accept),
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The creation endpoint, `https://<public_host>:<port><base_path>`.
    pub fn base_url(&self) -> String {
        format!(
            "https://{}:{}{}",
            host_for_url(&self.shared.cfg.public_host),
            self.port(),
            self.shared.cfg.base_path
        )
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ServerStats {
        let s = &self.shared.stats;
        ServerStats {
            connections: s.connections.load(Ordering::Relaxed),
            tls_handshakes_ok: s.tls_handshakes_ok.load(Ordering::Relaxed),
            app_bytes_received: s.app_bytes_received.load(Ordering::Relaxed),
            body_bytes_received: s.body_bytes_received.load(Ordering::Relaxed),
            uploads_created: s.uploads_created.load(Ordering::Relaxed),
            uploads_completed: s.uploads_completed.load(Ordering::Relaxed),
            requests: s.requests.load(Ordering::Relaxed),
        }
    }

    /// All uploads known to the server (including forgotten ones), oldest first.
    pub fn uploads(&self) -> Vec<UploadInfo> {
        lock(&self.shared.store).infos()
    }

    /// One upload by id.
    pub fn upload(&self, id: &str) -> Option<UploadInfo> {
        lock(&self.shared.store).info(id)
    }

    /// The whole stored file of an upload (what has been received so far).
    pub fn upload_bytes(&self, id: &str) -> io::Result<Vec<u8>> {
        let path = lock(&self.shared.store)
            .path_of(id)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such upload"))?;
        std::fs::read(path)
    }

    /// Queues a one-shot fault (FIFO).
    pub fn push_fault(&self, f: Fault) {
        lock(&self.shared.faults).push_back(f);
    }

    /// Drops all queued faults.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Number of queued faults not yet consumed.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).len()
    }

    /// Simulates a server restart: every open connection is cut (in-flight requests get no
    /// answer; bytes of a PATCH already received stay stored). Uploads, their offsets and
    /// the listener are kept, so clients can reconnect and resume.
    pub fn restart(&self) {
        self.shared.kill_all_conns();
    }

    /// Simulates a server that lost its uploads: HEAD/PATCH/DELETE on any existing upload
    /// URL answer 404 from now on (files stay on disk for inspection).
    pub fn forget_uploads(&self) {
        lock(&self.shared.store).forget_all();
    }

    /// Stops the server (same as dropping it).
    pub fn stop(self) {}

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            // Wake the blocking accept() with a throwaway connection.
            let wake = match self.addr.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => {
                    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.addr.port())
                }
                IpAddr::V6(ip) if ip.is_unspecified() => {
                    SocketAddr::new(Ipv6Addr::LOCALHOST.into(), self.addr.port())
                }
                _ => self.addr,
            };
            match TcpStream::connect_timeout(&wake, Duration::from_secs(2)) {
                Ok(_) => {
                    let _ = accept.join();
                }
                Err(e) => log::warn!("devserver: could not wake accept thread: {e}"),
            }
        }
        self.shared.kill_all_conns();
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for TusServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Formats a host for a URL authority (brackets around IPv6 literals).
pub(crate) fn host_for_url(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = listener.accept();
        if shared.stopping() {
            return;
        }
        let tcp = match accepted {
            Ok((tcp, _peer)) => tcp,
            Err(e) => {
                log::warn!("devserver: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        let killed = Arc::new(AtomicBool::new(false));
        let registry_copy = match tcp.try_clone() {
            Ok(s) => s,
            Err(e) => {
                log::warn!("devserver: cannot clone socket: {e}");
                continue;
            }
        };
        lock(&shared.conns).insert(
            id,
            ConnEntry {
                stream: registry_copy,
                killed: Arc::clone(&killed),
            },
        );
        let conn_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("devserver-conn-{id}"))
            .spawn(move || {
                let ctx = ConnCtx {
                    id,
                    killed,
                    scratch: Vec::new(),
                };
                serve_connection(&conn_shared, tcp, ctx);
                lock(&conn_shared.conns).remove(&id);
            });
        match spawned {
            Ok(handle) => {
                let mut threads = lock(&shared.threads);
                threads.retain(|t| !t.is_finished());
                threads.push(handle);
            }
            Err(e) => {
                log::warn!("devserver: cannot spawn connection thread: {e}");
                lock(&shared.conns).remove(&id);
            }
        }
    }
}

/// The TCP socket as rustls sees it: reads go through a large buffer, writes go straight
/// to the socket.
pub(crate) struct Sock {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// The TLS stream a connection's HTTP layer reads from and writes to.
pub(crate) type TlsStream = rustls::StreamOwned<rustls::ServerConnection, Sock>;

/// What the connection loop does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Read the next request.
    KeepAlive,
    /// Close gracefully (close_notify, FIN, drain what the client still sends).
    Close,
    /// Close abruptly, no answer.
    Abort,
}

fn serve_connection(shared: &Shared, tcp: TcpStream, mut ctx: ConnCtx) {
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = tcp.set_write_timeout(Some(WRITE_TIMEOUT));
    let reader = match tcp.try_clone() {
        Ok(r) => r,
        Err(_) => return,
    };
    let mut sock = Sock {
        reader: BufReader::with_capacity(TCP_READ_BUF, reader),
        writer: tcp,
    };
    let mut tls = match rustls::ServerConnection::new(Arc::clone(&shared.tls)) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("devserver: TLS setup failed: {e}");
            return;
        }
    };
    if let Err(e) = tls.complete_io(&mut sock) {
        log::debug!("devserver: TLS handshake failed: {e}");
        return;
    }
    if tls.is_handshaking() {
        return;
    }
    shared
        .stats
        .tls_handshakes_ok
        .fetch_add(1, Ordering::Relaxed);
    let stream = rustls::StreamOwned::new(tls, sock);
    let mut conn = http::Conn::new(
        stream,
        Arc::clone(&shared.stats.app_bytes_received),
        Arc::clone(&shared.stats.body_bytes_received),
    );
    loop {
        if ctx.killed.load(Ordering::SeqCst) {
            abort(&conn);
            return;
        }
        let outcome = match conn.read_head() {
            Ok(None) => Outcome::Close,
            Err(http::HeadError::Io(e)) => {
                log::trace!("devserver: connection {} ended: {e}", ctx.id);
                Outcome::Abort
            }
            Err(http::HeadError::Malformed(why)) => {
                shared.stats.requests.fetch_add(1, Ordering::Relaxed);
                let mut resp = tus::base_response(400).text(why);
                resp.close = true;
                match conn.send(&resp) {
                    Ok(()) => Outcome::Close,
                    Err(_) => Outcome::Abort,
                }
            }
            Err(http::HeadError::TooLarge) => {
                shared.stats.requests.fetch_add(1, Ordering::Relaxed);
                let mut resp = tus::base_response(431).text("request head too large");
                resp.close = true;
                match conn.send(&resp) {
                    Ok(()) => Outcome::Close,
                    Err(_) => Outcome::Abort,
                }
            }
            Ok(Some(req)) => {
                shared.stats.requests.fetch_add(1, Ordering::Relaxed);
                tus::handle(shared, &mut conn, &req, &mut ctx)
            }
        };
        match outcome {
            Outcome::KeepAlive => continue,
            Outcome::Close => {
                graceful_close(conn);
                return;
            }
            Outcome::Abort => {
                abort(&conn);
                return;
            }
        }
    }
}

/// Whether a read on the stream would return promptly: decrypted bytes are waiting, raw
/// bytes are buffered, or the kernel has data (or EOF) for the socket.
pub(crate) fn data_ready(stream: &mut TlsStream) -> bool {
    match stream.conn.process_new_packets() {
        Ok(state) if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() => return true,
        Ok(_) => {}
        Err(_) => return true, // the next read reports the error at once
    }
    if !stream.sock.reader.buffer().is_empty() {
        return true;
    }
    let tcp = &stream.sock.writer;
    if tcp.set_nonblocking(true).is_err() {
        return true;
    }
    let ready = !matches!(tcp.peek(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    if tcp.set_nonblocking(false).is_err() {
        log::warn!("devserver: cannot make socket blocking again");
    }
    ready
}

fn abort(conn: &http::Conn<TlsStream>) {
    let _ = conn.stream_ref().sock.writer.shutdown(Shutdown::Both);
}

/// close_notify + FIN, then read and discard what the client still sends for a moment, so
/// the kernel doesn't answer unread data with a RST that could destroy our last response.
fn graceful_close(mut conn: http::Conn<TlsStream>) {
    let stream = conn.stream_mut();
    stream.conn.send_close_notify();
    let _ = stream.flush();
    let sock = &mut stream.sock;
    let _ = sock.writer.shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut drained = 0usize;
    let _ = sock
        .writer
        .set_read_timeout(Some(Duration::from_millis(250)));
    while Instant::now() < deadline && drained < 64 * 1024 * 1024 {
        let n = match sock.reader.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(b) => b.len(),
        };
        sock.reader.consume(n);
        drained += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const HOST: &str = "backup.in.test";

    fn b64(data: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    fn sha256_b64(data: &[u8]) -> String {
        b64(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
    }

    struct Env {
        ca: TestCa,
        server: TusServer,
        _dir: tempfile::TempDir,
    }

    fn env_with(tweak: impl FnOnce(&mut ServerOptions)) -> Env {
        let ca = TestCa::new("devserver test CA");
        let leaf = ca.issue(&[HOST], &["127.0.0.1".parse().unwrap()]);
        let dir = tempfile::tempdir().unwrap();
        let mut opts = ServerOptions::new(
            "127.0.0.1:0".parse().unwrap(),
            leaf,
            dir.path().join("uploads"),
            HOST,
        );
        tweak(&mut opts);
        let server = TusServer::start(opts).unwrap();
        Env {
            ca,
            server,
            _dir: dir,
        }
    }

    fn env() -> Env {
        env_with(|_| {})
    }

    #[derive(Debug)]
    struct Resp {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Resp {
        fn h(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    struct Client {
        tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
        buf: Vec<u8>,
    }

    impl Client {
        fn connect(env: &Env) -> Client {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(env.ca.root_store())
                .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
            let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
            let tcp = TcpStream::connect(env.server.addr()).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            Client {
                tls: rustls::StreamOwned::new(conn, tcp),
                buf: Vec::new(),
            }
        }

        fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.tls.write_all(bytes)?;
            self.tls.flush()
        }

        fn send_head(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) {
            let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n");
            for (n, v) in headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str("\r\n");
            self.send(head.as_bytes()).unwrap();
        }

        /// Sends a request with a Content-Length body and reads the answer.
        fn req(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
            let len = body.len().to_string();
            let mut all: Vec<(&str, &str)> = headers.to_vec();
            if !body.is_empty() || method == "PATCH" || method == "POST" {
                all.push(("Content-Length", &len));
            }
            self.send_head(method, path, &all);
            self.send(body).unwrap();
            self.read_response(method == "HEAD").unwrap()
        }

        fn fill(&mut self) -> io::Result<usize> {
            let mut chunk = [0u8; 8192];
            let n = self.tls.read(&mut chunk)?;
            self.buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }

        fn read_response(&mut self, head_request: bool) -> io::Result<Resp> {
            loop {
                let end = loop {
                    if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i;
                    }
                    if self.fill()? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                };
                let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
                self.buf.drain(..end + 4);
                let mut lines = head.split("\r\n");
                let status: u16 = lines.next().unwrap()[9..12].parse().unwrap();
                let headers: Vec<(String, String)> = lines
                    .map(|l| {
                        let (n, v) = l.split_once(':').unwrap();
                        (n.to_string(), v.trim().to_string())
                    })
                    .collect();
                if status == 100 {
                    continue;
                }
                let mut resp = Resp {
                    status,
                    headers,
                    body: Vec::new(),
                };
                if !head_request && status != 204 {
                    let len: usize = resp.h("Content-Length").unwrap().parse().unwrap();
                    while self.buf.len() < len {
                        if self.fill()? == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                    }
                    resp.body = self.buf.drain(..len).collect();
                }
                assert_eq!(resp.h("Tus-Resumable"), Some("1.0.0"), "{resp:?}");
                return Ok(resp);
            }
        }

        /// Whether the server closed the connection (EOF or reset) without more data.
        fn closed(&mut self) -> bool {
            match self.fill() {
                Ok(0) | Err(_) => true,
                Ok(_) => false,
            }
        }

        fn create(&mut self, length: u64, metadata: Option<&str>) -> Resp {
            let len = length.to_string();
            let mut h = vec![("Tus-Resumable", "1.0.0"), ("Upload-Length", len.as_str())];
            if let Some(md) = metadata {
                h.push(("Upload-Metadata", md));
            }
            self.req("POST", "/files/", &h, b"")
        }

        fn patch(&mut self, path: &str, offset: u64, data: &[u8], extra: &[(&str, &str)]) -> Resp {
            let off = offset.to_string();
            let mut h = vec![
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Offset", off.as_str()),
                ("Content-Type", "application/offset+octet-stream"),
            ];
            h.extend_from_slice(extra);
            self.req("PATCH", path, &h, data)
        }

        fn head(&mut self, path: &str) -> Resp {
            self.req("HEAD", path, &[("Tus-Resumable", "1.0.0")], b"")
        }
    }

    fn path_of(location: &str) -> String {
        match location.find("/files/") {
            Some(i) => location[i..].to_string(),
            None => location.to_string(),
        }
    }

    fn id_of(location: &str) -> String {
        location.rsplit('/').next().unwrap().to_string()
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn options_advertises_extensions() {
        let env = env_with(|o| o.max_size = Some(1 << 30));
        let mut c = Client::connect(&env);
        let r = c.req("OPTIONS", "/files/", &[], b"");
        assert_eq!(r.status, 204);
        assert_eq!(r.h("Tus-Version"), Some("1.0.0"));
        assert_eq!(r.h("Tus-Extension"), Some("creation,termination,checksum"));
        assert_eq!(r.h("Tus-Checksum-Algorithm"), Some("sha256"));
        assert_eq!(r.h("Tus-Max-Size"), Some("1073741824"));

        let env = env_with(|o| {
            o.checksum = false;
            o.termination = false;
        });
        let mut c = Client::connect(&env);
        let r = c.req("OPTIONS", "/files/", &[], b"");
        assert_eq!(r.h("Tus-Extension"), Some("creation"));
        assert_eq!(r.h("Tus-Checksum-Algorithm"), None);
        assert_eq!(r.h("Tus-Max-Size"), None);
        // Without Tus-Resumable everything but OPTIONS is refused.
        let r = c.req("POST", "/files/", &[("Upload-Length", "5")], b"");
        assert_eq!(r.status, 412);
        assert_eq!(r.h("Tus-Version"), Some("1.0.0"));
        let st = env.server.stats();
        assert_eq!(st.connections, 1);
        assert_eq!(st.tls_handshakes_ok, 1);
        assert_eq!(st.requests, 2);
    }

    #[test]
    fn create_patch_twice_head_and_compare() {
        let env = env();
        let payload = data(300_000);
        let mut c = Client::connect(&env);
        let md = format!("item {},filename {},flag", b64(b"item-1"), b64(b"a b.jpg"));
        let r = c.create(payload.len() as u64, Some(&md));
        assert_eq!(r.status, 201);
        let loc = r.h("Location").unwrap().to_string();
        assert_eq!(
            loc,
            format!("https://{HOST}:{}/files/{}", env.server.port(), id_of(&loc))
        );
        assert_eq!(id_of(&loc).len(), 32);
        let path = path_of(&loc);

        // First chunk with Content-Length.
        let r = c.patch(&path, 0, &payload[..100_000], &[]);
        assert_eq!(r.status, 204, "{r:?}");
        assert_eq!(r.h("Upload-Offset"), Some("100000"));
        let r = c.head(&path);
        assert_eq!(r.status, 200);
        assert_eq!(r.h("Upload-Offset"), Some("100000"));
        assert_eq!(r.h("Upload-Length"), Some("300000"));
        assert_eq!(r.h("Cache-Control"), Some("no-store"));
        assert!(r.h("Upload-Metadata").unwrap().contains("flag"));

        // Second chunk, chunked transfer encoding, with a valid checksum.
        let rest = &payload[100_000..];
        let sum = format!("sha256 {}", sha256_b64(rest));
        c.send_head(
            "PATCH",
            &path,
            &[
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Offset", "100000"),
                ("Content-Type", "application/offset+octet-stream"),
                ("Transfer-Encoding", "chunked"),
                ("Upload-Checksum", &sum),
            ],
        );
        for piece in rest.chunks(65_000) {
            c.send(format!("{:x}\r\n", piece.len()).as_bytes()).unwrap();
            c.send(piece).unwrap();
            c.send(b"\r\n").unwrap();
        }
        c.send(b"0\r\n\r\n").unwrap();
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 204, "{r:?}");
        assert_eq!(r.h("Upload-Offset"), Some("300000"));

        let id = id_of(&loc);
        assert_eq!(env.server.upload_bytes(&id).unwrap(), payload);
        let info = env.server.upload(&id).unwrap();
        assert!(info.complete);
        assert_eq!(info.offset, 300_000);
        assert_eq!(info.length, Some(300_000));
        assert_eq!(info.metadata_value("item"), Some(&b"item-1"[..]));
        assert_eq!(info.metadata_value("filename"), Some(&b"a b.jpg"[..]));
        assert_eq!(info.metadata[2], ("flag".to_string(), None));
        let st = env.server.stats();
        assert_eq!(st.uploads_created, 1);
        assert_eq!(st.uploads_completed, 1);
        assert_eq!(st.body_bytes_received, 300_000);
        assert!(st.app_bytes_received > 300_000);
        assert_eq!(st.connections, 1, "keep-alive reused the connection");
    }

    #[test]
    fn relative_location_and_errors() {
        let env = env_with(|o| {
            o.relative_location = true;
            o.max_size = Some(1000);
        });
        let mut c = Client::connect(&env);
        let r = c.create(10, None);
        let loc = r.h("Location").unwrap().to_string();
        assert!(loc.starts_with("/files/"), "{loc}");
        assert_eq!(r.h("Upload-Offset"), Some("0"));

        let r = c.patch(&loc, 3, b"abc", &[]);
        assert_eq!(r.status, 409);
        let r = c.req(
            "PATCH",
            &loc,
            &[
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Offset", "0"),
                ("Content-Type", "application/octet-stream"),
            ],
            b"abc",
        );
        assert_eq!(r.status, 415);
        let r = c.patch(&loc, 0, b"0123456789AB", &[]);
        assert_eq!(r.status, 400, "body beyond Upload-Length");
        // That closed the connection or discarded the body; use a fresh one.
        let mut c = Client::connect(&env);
        let r = c.patch(&loc, 0, b"abc", &[("Upload-Checksum", "md5 AAAA")]);
        assert_eq!(r.status, 400);
        assert_eq!(c.head("/files/0123").status, 404);
        assert_eq!(c.patch("/files/0123", 0, b"x", &[]).status, 404);
        assert_eq!(c.create(1001, None).status, 413);
        assert_eq!(
            c.req("POST", "/files/", &[("Tus-Resumable", "1.0.0")], b"")
                .status,
            400
        );
        assert_eq!(
            c.req("GET", "/nothing", &[("Tus-Resumable", "1.0.0")], b"")
                .status,
            404
        );
        assert_eq!(c.head(&loc).h("Upload-Offset"), Some("0"));
        assert_eq!(env.server.upload_bytes(&id_of(&loc)).unwrap(), b"");
    }

    #[test]
    fn checksum_mismatch_is_460_and_rolls_back() {
        let env = env();
        let mut c = Client::connect(&env);
        let loc = path_of(c.create(8, None).h("Location").unwrap());
        let r = c.patch(&loc, 0, b"abcd", &[]);
        assert_eq!(r.status, 204);
        let wrong = format!("sha256 {}", sha256_b64(b"nope"));
        let r = c.patch(&loc, 4, b"efgh", &[("Upload-Checksum", &wrong)]);
        assert_eq!(r.status, 460);
        assert_eq!(c.head(&loc).h("Upload-Offset"), Some("4"));
        let id = id_of(&loc);
        assert_eq!(env.server.upload_bytes(&id).unwrap(), b"abcd");
        let right = format!("sha256 {}", sha256_b64(b"efgh"));
        let r = c.patch(&loc, 4, b"efgh", &[("Upload-Checksum", &right)]);
        assert_eq!(r.status, 204);
        assert_eq!(env.server.upload_bytes(&id).unwrap(), b"abcdefgh");
        assert!(env.server.upload(&id).unwrap().complete);
    }

    #[test]
    fn drop_after_body_bytes_keeps_partial_data() {
        let env = env();
        let payload = data(50_000);
        let mut c = Client::connect(&env);
        let loc = path_of(c.create(payload.len() as u64, None).h("Location").unwrap());
        env.server.push_fault(Fault::DropAfterBodyBytes(12_345));
        // A HEAD doesn't consume it.
        assert_eq!(c.head(&loc).status, 200);
        assert_eq!(env.server.pending_faults(), 1);
        c.send_head(
            "PATCH",
            &loc,
            &[
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Offset", "0"),
                ("Content-Type", "application/offset+octet-stream"),
                ("Content-Length", "50000"),
            ],
        );
        let _ = c.send(&payload);
        assert!(
            c.read_response(false).is_err(),
            "no answer, connection dropped"
        );
        assert_eq!(env.server.pending_faults(), 0);

        let mut c = Client::connect(&env);
        let r = c.head(&loc);
        assert_eq!(r.h("Upload-Offset"), Some("12345"));
        let id = id_of(&loc);
        assert_eq!(env.server.upload_bytes(&id).unwrap(), &payload[..12_345]);
        let r = c.patch(&loc, 12_345, &payload[12_345..], &[]);
        assert_eq!(r.status, 204);
        assert_eq!(env.server.upload_bytes(&id).unwrap(), payload);
        assert_eq!(env.server.stats().uploads_completed, 1);
    }

    #[test]
    fn location_override_and_gone() {
        let env = env();
        let mut c = Client::connect(&env);
        env.server.push_fault(Fault::LocationOverride(
            "https://elsewhere.sg.test/files/x".into(),
        ));
        let r = c.create(5, None);
        assert_eq!(r.status, 201);
        assert_eq!(r.h("Location"), Some("https://elsewhere.sg.test/files/x"));
        let ups = env.server.uploads();
        assert_eq!(ups.len(), 1);
        let loc = format!("/files/{}", ups[0].id);
        assert_eq!(c.head(&loc).status, 200);

        env.server.push_fault(Fault::Gone);
        assert_eq!(c.head(&loc).status, 404);
        assert_eq!(c.head(&loc).status, 404, "the upload stays forgotten");
        assert_eq!(c.patch(&loc, 0, b"abcde", &[]).status, 404);
        assert!(env.server.uploads()[0].forgotten);
        assert_eq!(env.server.pending_faults(), 0);
    }

    #[test]
    fn dedupe_by_item_returns_the_same_upload() {
        let env = env();
        let mut c = Client::connect(&env);
        let md = format!("item {}", b64(b"photo-42"));
        let r1 = c.create(10, Some(&md));
        let loc = r1.h("Location").unwrap().to_string();
        assert_eq!(c.patch(&path_of(&loc), 0, b"01234", &[]).status, 204);
        let r2 = c.create(10, Some(&md));
        assert_eq!(r2.status, 201);
        assert_eq!(r2.h("Location"), Some(loc.as_str()));
        assert_eq!(r2.h("Upload-Offset"), Some("5"));
        // Different length or item: a new upload.
        let r3 = c.create(11, Some(&md));
        assert_ne!(r3.h("Location"), Some(loc.as_str()));
        let r4 = c.create(10, Some(&format!("item {}", b64(b"photo-43"))));
        assert_ne!(r4.h("Location"), Some(loc.as_str()));
        assert_eq!(env.server.stats().uploads_created, 3);
        // Completed uploads are not reused.
        assert_eq!(c.patch(&path_of(&loc), 5, b"56789", &[]).status, 204);
        let r5 = c.create(10, Some(&md));
        assert_ne!(r5.h("Location"), Some(loc.as_str()));

        let env = env_with(|o| o.dedupe_by_item = false);
        let mut c = Client::connect(&env);
        let a = c.create(10, Some(&md));
        let b = c.create(10, Some(&md));
        assert_ne!(a.h("Location"), b.h("Location"));
    }

    #[test]
    fn status_redirect_and_delay_faults() {
        let env = env();
        let mut c = Client::connect(&env);
        let loc = path_of(c.create(6, None).h("Location").unwrap());
        env.server.push_fault(Fault::Status {
            method: Some("PATCH"),
            status: 429,
            retry_after: Some(7),
        });
        env.server.push_fault(Fault::Redirect {
            method: Some("PATCH"),
            status: 307,
            location: "https://backup.sg.test/files/zz".into(),
        });
        // HEAD is not matched by PATCH-only faults.
        assert_eq!(c.head(&loc).status, 200);
        let r = c.patch(&loc, 0, b"abc", &[]);
        assert_eq!((r.status, r.h("Retry-After")), (429, Some("7")));
        let r = c.patch(&loc, 0, b"abc", &[]);
        assert_eq!(r.status, 307);
        assert_eq!(r.h("Location"), Some("https://backup.sg.test/files/zz"));
        assert_eq!(
            c.head(&loc).h("Upload-Offset"),
            Some("0"),
            "no state change"
        );

        env.server
            .push_fault(Fault::Delay(Duration::from_millis(300)));
        let t = Instant::now();
        assert_eq!(c.patch(&loc, 0, b"abc", &[]).status, 204);
        assert!(t.elapsed() >= Duration::from_millis(300));
        env.server.push_fault(Fault::Status {
            method: None,
            status: 503,
            retry_after: None,
        });
        assert_eq!(c.head(&loc).status, 503);
        assert_eq!(c.head(&loc).h("Upload-Offset"), Some("3"));
        assert_eq!(env.server.stats().connections, 1, "still keep-alive");
        env.server.push_fault(Fault::Gone);
        env.server.clear_faults();
        assert_eq!(env.server.pending_faults(), 0);
    }

    #[test]
    fn restart_keeps_partial_patch_and_forget_loses_uploads() {
        let env = env();
        let mut c = Client::connect(&env);
        let loc = path_of(c.create(1_000_000, None).h("Location").unwrap());
        c.send_head(
            "PATCH",
            &loc,
            &[
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Offset", "0"),
                ("Content-Type", "application/offset+octet-stream"),
                ("Content-Length", "1000000"),
            ],
        );
        c.send(&data(200_000)).unwrap();
        let id = id_of(&loc);
        let deadline = Instant::now() + Duration::from_secs(10);
        while env.server.upload(&id).unwrap().offset < 200_000 {
            assert!(Instant::now() < deadline, "server never stored the bytes");
            std::thread::sleep(Duration::from_millis(10));
        }
        env.server.restart();
        assert!(c.closed());
        let mut c = Client::connect(&env);
        assert_eq!(c.head(&loc).h("Upload-Offset"), Some("200000"));
        assert_eq!(env.server.upload_bytes(&id).unwrap(), data(200_000));

        env.server.forget_uploads();
        assert_eq!(c.head(&loc).status, 404);
        assert_eq!(c.patch(&loc, 200_000, b"x", &[]).status, 404);
    }

    #[test]
    fn stalled_writer_is_cut_off_by_a_resuming_patch() {
        let env = env();
        let payload = data(100_000);
        let mut a = Client::connect(&env);
        let loc = path_of(a.create(100_000, None).h("Location").unwrap());
        a.send_head(
            "PATCH",
            &loc,
            &[
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Offset", "0"),
                ("Content-Type", "application/offset+octet-stream"),
                ("Content-Length", "100000"),
            ],
        );
        a.send(&payload[..30_000]).unwrap();
        let id = id_of(&loc);
        let deadline = Instant::now() + Duration::from_secs(10);
        while env.server.upload(&id).unwrap().offset < 30_000 {
            assert!(Instant::now() < deadline, "stalled bytes were not stored");
            std::thread::sleep(Duration::from_millis(10));
        }
        // A second client (say, after the app was killed) resumes from HEAD.
        let mut b = Client::connect(&env);
        assert_eq!(b.head(&loc).h("Upload-Offset"), Some("30000"));
        let r = b.patch(&loc, 30_000, &payload[30_000..], &[]);
        assert_eq!(r.status, 204, "{r:?}");
        assert!(a.closed(), "the stale request was cut off");
        assert_eq!(env.server.upload_bytes(&id).unwrap(), payload);
    }

    #[test]
    fn chunked_body_beyond_length_is_rejected_whole() {
        let env = env();
        let mut c = Client::connect(&env);
        let loc = path_of(c.create(4, None).h("Location").unwrap());
        c.send_head(
            "PATCH",
            &loc,
            &[
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Offset", "0"),
                ("Content-Type", "application/offset+octet-stream"),
                ("Transfer-Encoding", "chunked"),
            ],
        );
        c.send(b"6\r\nabcdef\r\n0\r\n\r\n").unwrap();
        assert_eq!(c.read_response(false).unwrap().status, 400);
        let info = env.server.uploads().remove(0);
        assert_eq!((info.offset, info.complete), (0, false));
        assert_eq!(env.server.upload_bytes(&info.id).unwrap(), b"");
        assert_eq!(env.server.stats().uploads_completed, 0);
    }

    #[test]
    fn parallel_uploads() {
        let env = env();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let env = &env;
                s.spawn(move || {
                    let payload: Vec<u8> = data(200_000).iter().map(|b| b ^ t).collect();
                    let mut c = Client::connect(env);
                    let loc = path_of(c.create(200_000, None).h("Location").unwrap());
                    for (i, part) in payload.chunks(50_000).enumerate() {
                        let r = c.patch(&loc, (i * 50_000) as u64, part, &[]);
                        assert_eq!(r.status, 204);
                    }
                    assert_eq!(env.server.upload_bytes(&id_of(&loc)).unwrap(), payload);
                });
            }
        });
        let st = env.server.stats();
        assert_eq!((st.uploads_created, st.uploads_completed), (4, 4));
        assert_eq!(st.body_bytes_received, 800_000);
    }

    #[test]
    fn termination_deletes() {
        let env = env();
        let mut c = Client::connect(&env);
        let loc = path_of(c.create(4, None).h("Location").unwrap());
        let file = env.server.uploads()[0].path.clone();
        assert!(file.exists());
        let r = c.req("DELETE", &loc, &[("Tus-Resumable", "1.0.0")], b"");
        assert_eq!(r.status, 204);
        assert!(!file.exists());
        assert_eq!(c.head(&loc).status, 404);
        let r = c.req("DELETE", &loc, &[("Tus-Resumable", "1.0.0")], b"");
        assert_eq!(r.status, 404);
        assert!(env.server.uploads().is_empty());
    }

    #[test]
    fn expect_continue_and_connection_close() {
        let env = env();
        let mut c = Client::connect(&env);
        let loc = path_of(c.create(3, None).h("Location").unwrap());
        c.send_head(
            "PATCH",
            &loc,
            &[
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Offset", "0"),
                ("Content-Type", "application/offset+octet-stream"),
                ("Content-Length", "3"),
                ("Expect", "100-continue"),
                ("Connection", "close"),
            ],
        );
        // Wait for the interim answer before sending the body.
        while !c.buf.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n") {
            assert!(c.fill().unwrap() > 0);
        }
        c.send(b"xyz").unwrap();
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 204);
        assert_eq!(r.h("Connection"), Some("close"));
        assert!(c.closed());
    }

    #[test]
    fn malformed_request_gets_400_and_close() {
        let env = env();
        let mut c = Client::connect(&env);
        c.send(b"THIS IS NOT HTTP\r\n\r\n").unwrap();
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 400);
        assert!(c.closed());
    }

    #[test]
    fn untrusted_client_fails_handshake_and_stop_joins() {
        let env = env();
        let other = TestCa::new("other CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(other.root_store())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(env.server.addr()).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        assert!(tls.write_all(b"OPTIONS * HTTP/1.1\r\n\r\n").is_err() || tls.flush().is_err());
        // An idle keep-alive client must not keep stop() from returning.
        let _idle = Client::connect(&env);
        let t = Instant::now();
        env.server.stop();
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
