//! A fault-injecting [tus 1.0.0](https://tus.io/protocols/resumable-upload) server over
//! real TLS, for integration tests, the `cloudsync demo` command and benchmarks.
//!
//! * Protocol: core + `creation` + `checksum` (sha256 only) + `termination`.
//! * Transport: rustls (ring provider) over std TCP, HTTP/1.1 with keep-alive, one thread
//!   per connection, no async runtime.
//! * Storage: one file per upload under [`ServerOptions::storage_dir`]; PATCH bodies are
//!   streamed to disk in large blocks, so multi-GiB uploads don't grow memory.
//! * Faults: a FIFO of one-shot [`Fault`]s (status codes, redirects, dropped connections,
//!   lost uploads, delays, false "already complete" answers, a cut that races the next
//!   request for the upload's lock) plus [`TusServer::restart`] and
//!   [`TusServer::forget_uploads`].
//! * A test-only control channel ([`admin`]): plain HTTP on loopback, for tests in another
//!   process (the JVM tests) to start servers, set their token and faults and read them.
//! * Modes of other servers ([`ServerOptions`]): no checksum or termination, relative
//!   `Location`s, a required `filetype` metadata field, 409 to a PATCH racing the lock.
//!
//! ```no_run
//! use cloudsync_devserver::{ServerOptions, TestCa, TusServer};
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

#![forbid(unsafe_code)]

pub mod admin;
mod ca;
mod conn;
mod http;
pub mod mirror;
mod options;
mod patch;
mod reply;
pub mod sources;
mod state;
mod store;
mod stream;
#[cfg(test)]
mod tests;
mod tus;
pub mod world;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use ca::{LeafCert, TestCa};
pub use options::SourceRequest;
pub use options::{Fault, ServerOptions, ServerStats, UploadInfo};
use state::{host_for_url, lock, Config, Counters, Shared};

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
        // A port conflict names the address (the OS error alone does not).
        let listener = TcpListener::bind(opts.bind).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", opts.bind))
        })?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cfg: Config {
                storage_dir: opts.storage_dir,
                base_path: normalize_base_path(&opts.base_path),
                checksum: opts.checksum,
                termination: opts.termination,
                max_size: opts.max_size,
                max_body: opts.max_body,
                body_rate: opts.body_rate,
                relative_location: opts.relative_location,
                public_host: opts.public_host,
                dedupe_by_key: opts.dedupe_by_key,
                require_filetype: opts.require_filetype,
                conflict_while_locked: opts.conflict_while_locked,
                reject_expect: opts.reject_expect,
                idle_close: opts.idle_close,
                sources_dir: opts.sources_dir,
                request_log: opts.request_log,
                port: addr.port(),
            },
            stats: Counters::default(),
            store: Mutex::new(store::Store::default()),
            store_cv: Condvar::new(),
            faults: Mutex::new(VecDeque::new()),
            token: Mutex::new(opts.bearer_token),
            authorizations: Mutex::new(VecDeque::new()),
            source_requests: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            next_conn: AtomicU64::new(1),
            tls,
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name(format!("devserver-accept-{}", addr.port()))
            .spawn(move || conn::accept_loop(accept_shared, listener))?;
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
            conflicts: s.conflicts.load(Ordering::Relaxed),
            authorization_headers: s.authorization_headers.load(Ordering::Relaxed),
            unauthorized: s.unauthorized.load(Ordering::Relaxed),
            too_large: s.too_large.load(Ordering::Relaxed),
        }
    }

    /// Replaces the bearer token every request but `OPTIONS` must carry
    /// (`None`: anonymous from now on); the old token gets 401 at once.
    pub fn set_token(&self, token: Option<String>) {
        *lock(&self.shared.token) = token;
    }

    /// Every `Authorization` header value received, oldest first (the last 1,000).
    pub fn authorizations(&self) -> Vec<String> {
        lock(&self.shared.authorizations).iter().cloned().collect()
    }

    /// `https://<public_host>:<port>/sources/`: the mirror base URL of
    /// [`ServerOptions::sources_dir`].
    pub fn sources_url(&self) -> String {
        format!(
            "https://{}:{}{}",
            host_for_url(&self.shared.cfg.public_host),
            self.port(),
            sources::SOURCES_PREFIX
        )
    }

    /// Every request the mirror received, oldest first.
    pub fn source_requests(&self) -> Vec<sources::SourceRequest> {
        lock(&self.shared.source_requests).clone()
    }

    /// Creates an upload as if a client had POSTed it (bypassing faults and
    /// [`ServerOptions::require_filetype`]: tests use it for an upload an older client
    /// made) and returns its absolute URL.
    pub fn create_upload(&self, length: u64, metadata: &[(&str, &[u8])]) -> io::Result<String> {
        let md = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_vec())))
            .collect();
        let id = tus::new_upload(&self.shared, length, md, None)?;
        Ok(format!("{}{id}", self.base_url()))
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
