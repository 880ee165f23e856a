//! The state every connection thread shares with the server: counters,
//! the live configuration, the fault queue, the connections to cut.

use std::collections::{HashMap, VecDeque};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::options::{Fault, SourceRequest};
use crate::store;

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
    /// See [`ServerStats::conflicts`].
    pub conflicts: AtomicU64,
    /// See [`ServerStats::authorization_headers`].
    pub authorization_headers: AtomicU64,
    /// See [`ServerStats::unauthorized`].
    pub unauthorized: AtomicU64,
    /// See [`ServerStats::too_large`].
    pub too_large: AtomicU64,
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
    /// [`ServerOptions::max_body`].
    pub max_body: Option<u64>,
    /// [`ServerOptions::body_rate`].
    pub body_rate: Option<u64>,
    /// [`ServerOptions::relative_location`].
    pub relative_location: bool,
    /// [`ServerOptions::public_host`].
    pub public_host: String,
    /// [`ServerOptions::dedupe_by_key`].
    pub dedupe_by_key: bool,
    /// [`ServerOptions::require_filetype`].
    pub require_filetype: bool,
    /// [`ServerOptions::conflict_while_locked`].
    pub conflict_while_locked: bool,
    /// [`ServerOptions::reject_expect`].
    pub reject_expect: bool,
    /// [`ServerOptions::idle_close`].
    pub idle_close: Option<Duration>,
    /// [`ServerOptions::sources_dir`].
    pub sources_dir: Option<PathBuf>,
    /// [`ServerOptions::request_log`].
    pub request_log: Option<String>,
    /// The port actually bound (for absolute `Location`s).
    pub port: u16,
}

pub(crate) struct ConnEntry {
    pub(crate) stream: TcpStream,
    pub(crate) killed: Arc<AtomicBool>,
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
    pub store: Mutex<store::Store>,
    /// Signalled whenever an upload's writer lock is released.
    pub store_cv: Condvar,
    pub(crate) faults: Mutex<VecDeque<Fault>>,
    /// [`ServerOptions::bearer_token`], replaceable while running.
    pub token: Mutex<Option<String>>,
    /// Every `Authorization` value received, oldest first (the last 1,000).
    pub authorizations: Mutex<VecDeque<String>>,
    /// Every mirror request (see [`sources`]).
    pub source_requests: Mutex<Vec<SourceRequest>>,
    pub(crate) conns: Mutex<HashMap<u64, ConnEntry>>,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) stopping: AtomicBool,
    pub(crate) next_conn: AtomicU64,
    pub(crate) tls: Arc<rustls::ServerConfig>,
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

    pub(crate) fn kill_all_conns(&self) {
        for entry in lock(&self.conns).values() {
            entry.killed.store(true, Ordering::SeqCst);
            let _ = entry.stream.shutdown(Shutdown::Both);
        }
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
