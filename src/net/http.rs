//! The HTTP layer of one region: a ureq agent whose only way to the network
//! is `GuardConnector`. It re-checks every connection against the region
//! (host rules, resolved peer in `networks`), speaks TLS with a verifier that
//! enforces the region's pins, follows no redirects and uses no proxy.
//!
//! This is the layer that cannot be bypassed: even a URL that somehow skipped
//! [`crate::region::ApprovedRegion::guard`] would be refused here before a
//! single byte is written.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};

pub use super::pacing::IoControl;
use super::pacing::{interruptible, PacedSocket, GRACE};
pub use super::tls::spki_sha256;
use super::tls::{tls_config, Refusal};
use super::UploadOptions;
use crate::auth::RunAuth;
use crate::error::{Error, Result};
use crate::region::{ApprovedRegion, AuthScheme, GuardedUrl, Region};

/// A failed request with what the retry logic needs to know.
#[derive(Debug)]
pub struct Failure {
    /// The error recorded on the item.
    pub error: Error,
    /// The server's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            error,
            retry_after: None,
        }
    }
}

/// Result of a tus request.
pub type TusResult<T> = std::result::Result<T, Failure>;

fn refuse(r: &Refusal, why: &'static str) -> ureq::Error {
    *r.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    ureq::Error::Io(std::io::Error::other(why))
}

/// Resolves with the system resolver, then keeps only addresses inside the
/// region's `networks`: nothing outside them is ever dialled.
#[derive(Debug)]
struct GuardResolver {
    region: Arc<Region>,
    ctl: IoControl,
    refusal: Refusal,
}

impl Resolver for GuardResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        // The system resolver blocks: a cancel or the run's end must not wait for it.
        let (u, c) = (uri.clone(), config.clone());
        let all = interruptible(&self.ctl, move || {
            DefaultResolver::default().resolve(&u, &c, timeout)
        })??;
        let mut kept = self.empty();
        kept.truncate(0);
        for a in all.iter().filter(|a| self.region.allows_peer(a.ip())) {
            kept.push(*a);
        }
        if kept.is_empty() {
            return Err(refuse(
                &self.refusal,
                "resolved address is outside the region's networks",
            ));
        }
        Ok(kept)
    }
}

/// TCP + TLS, with the residency checks in front of each step.
struct GuardConnector {
    region: Arc<Region>,
    tls: Arc<ClientConfig>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    ctl: IoControl,
    refusal: Refusal,
    peers: Arc<Mutex<HashMap<String, IpAddr>>>,
}

impl fmt::Debug for GuardConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardConnector")
            .field("region", &self.region.id())
            .finish()
    }
}

impl Connector<()> for GuardConnector {
    type Out = TlsTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> std::result::Result<Option<TlsTransport>, ureq::Error> {
        let uri = details.uri;
        if uri.scheme_str() != Some("https") {
            return Err(refuse(&self.refusal, "not https"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| refuse(&self.refusal, "no host"))?;
        if authority.as_str().contains('@') {
            return Err(refuse(&self.refusal, "userinfo in URL"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(443);
        if !self.region.allows_host(&host, port) {
            return Err(refuse(
                &self.refusal,
                "host is not in the region's allowed_hosts",
            ));
        }
        let mut last_err = None;
        let mut stream = None;
        for addr in details.addrs.iter() {
            if !self.region.allows_peer(addr.ip()) {
                last_err = Some(refuse(
                    &self.refusal,
                    "peer is outside the region's networks",
                ));
                continue;
            }
            // Never past the run's end or ureq's budget for this request.
            let mut limit = self.connect_timeout.min(self.ctl.remaining());
            if let Some(t) = details.timeout.not_zero() {
                limit = limit.min(*t);
            }
            if limit.is_zero() || self.ctl.stopped() {
                return Err(ureq::Error::Timeout(ureq::Timeout::Connect));
            }
            let to = *addr;
            let connected =
                interruptible(&self.ctl, move || TcpStream::connect_timeout(&to, limit))
                    .and_then(|r| r);
            match connected {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = Some(ureq::Error::Io(e)),
            }
        }
        let stream = stream.ok_or_else(|| last_err.unwrap_or(ureq::Error::ConnectionFailed))?;
        // Belt and braces: the address we actually reached.
        let peer: SocketAddr = stream.peer_addr()?;
        if !self.region.allows_peer(peer.ip()) {
            return Err(refuse(
                &self.refusal,
                "peer is outside the region's networks",
            ));
        }
        stream.set_nodelay(true)?;
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(crate::region::host_port(&host, port), peer.ip());
        let name = ServerName::try_from(host.clone())
            .map_err(|_| ureq::Error::Tls("invalid server name"))?;
        let mut conn = ClientConnection::new(self.tls.clone(), name)?;
        let cfg = details.config;
        let mut sock = PacedSocket::new(stream, self.ctl.clone());
        // The handshake as one phase: a peer that never answers, or answers a
        // byte at a time, is cut at handshake_timeout (or the request's budget).
        let mut hs = details.timeout;
        if hs.not_zero().is_none_or(|t| *t > self.handshake_timeout) {
            hs.after = self.handshake_timeout.into();
        }
        sock.phase(hs);
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        let buffers = LazyBuffers::new(cfg.input_buffer_size(), cfg.output_buffer_size());
        Ok(Some(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        }))
    }
}

/// A timeout of a socket call becomes ureq's own timeout error, as ureq's TCP
/// transport reports it: ureq relies on that, e.g. to send a body anyway when
/// a server does not answer `Expect: 100-continue` in time.
fn io_error(e: std::io::Error, t: &NextTimeout) -> ureq::Error {
    if e.kind() == std::io::ErrorKind::TimedOut {
        ureq::Error::Timeout(t.reason)
    } else {
        ureq::Error::Io(e)
    }
}

/// rustls directly over a `TcpStream` (ureq's own `RustlsTransport` cannot
/// take our verifier, so this mirrors it).
struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, PacedSocket>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: NextTimeout,
    ) -> std::result::Result<(), ureq::Error> {
        let t = timeout.for_write();
        let StreamOwned { conn, sock } = &mut self.stream;
        sock.phase(timeout);
        let mut out = &self.buffers.output()[..amount];
        // Not `write_all` on the rustls stream: its `write` drops the error of
        // its last flush to the socket, so a timeout would be swallowed and
        // the next write would wait the whole limit out again.
        while !out.is_empty() {
            let n = conn.writer().write(out).map_err(|e| io_error(e, &t))?;
            if n == 0 && !conn.wants_write() {
                // Nothing taken and nothing to flush (e.g. a key-usage limit):
                // never spin.
                return Err(ureq::Error::Io(std::io::ErrorKind::WriteZero.into()));
            }
            out = &out[n..];
            while conn.wants_write() {
                conn.write_tls(sock).map_err(|e| io_error(e, &t))?;
            }
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        let t = timeout.for_read();
        self.stream.get_mut().phase(t);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input).map_err(|e| io_error(e, &t))?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // A pooled connection the server closed reads as EOF; peek without blocking.
        let sock = &self.stream.get_ref().sock;
        if sock.set_nonblocking(true).is_err() {
            return false;
        }
        let mut b = [0u8; 1];
        let open = match sock.peek(&mut b) {
            // EOF, or bytes nobody asked for (a close_notify before the FIN): not reusable.
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        };
        sock.set_nonblocking(false).is_ok() && open
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// A ureq agent bound to one approved region, with the run's credentials.
pub struct RegionHttp<'a> {
    net: Guarded,
    region: ApprovedRegion,
    request_timeout: Duration,
    auth: RunAuth<'a>,
    /// What 413s taught this run, by `host:port`.
    body_caps: Mutex<HashMap<String, BodyCap>>,
}

/// The chunk size a 413 brought a host's bodies down to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyCap {
    /// Bytes per body.
    pub chunk: u64,
    /// A body of this size got through; until then each asks
    /// `Expect: 100-continue` first.
    pub proven: bool,
}

/// Peer address by `host:port`, as connected.
type Peers = Arc<Mutex<HashMap<String, IpAddr>>>;

/// A ureq agent whose every connection passes the guard of one set of host
/// rules (a region's, or the config mirrors'): resolver, connector and TLS
/// verifier; no redirects, no proxy; sockets obeying `ctl`.
pub(crate) struct Guarded {
    pub(crate) agent: ureq::Agent,
    refusal: Refusal,
    peers: Peers,
    pub(crate) ctl: IoControl,
}

impl Guarded {
    pub(crate) fn new(r: Arc<Region>, opts: &UploadOptions, ctl: IoControl) -> Result<Guarded> {
        let refusal: Refusal = Arc::new(Mutex::new(None));
        let peers: Peers = Arc::new(Mutex::new(HashMap::new()));
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .max_redirects_will_error(false)
            .http_status_as_error(false)
            .proxy(None)
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_per_read(Some(opts.io_timeout))
            .timeout_per_write(Some(opts.io_timeout))
            .user_agent(concat!("cloudsync/", env!("CARGO_PKG_VERSION")))
            .input_buffer_size(128 * 1024)
            .output_buffer_size(128 * 1024)
            .build();
        let connector = GuardConnector {
            region: r.clone(),
            tls: tls_config(&r, opts, refusal.clone())?,
            connect_timeout: opts.connect_timeout,
            handshake_timeout: opts.handshake_timeout,
            ctl: ctl.clone(),
            refusal: refusal.clone(),
            peers: peers.clone(),
        };
        let resolver = GuardResolver {
            region: r,
            ctl: ctl.clone(),
            refusal: refusal.clone(),
        };
        Ok(Guarded {
            agent: ureq::Agent::with_parts(config, connector, resolver),
            refusal,
            peers,
            ctl,
        })
    }

    /// Maps a ureq failure to our error, preferring the guard's reason. A
    /// failure after a cancel or the deadline is `Cancelled` (the run tells
    /// the two apart): it is no fault of the item.
    pub(crate) fn classify(&self, e: ureq::Error) -> Error {
        if self.ctl.stopped() {
            self.reset_refusal();
            return Error::Cancelled;
        }
        if let Some(why) = self
            .refusal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Error::Residency(why);
        }
        Error::Network(
            match e {
                ureq::Error::Timeout(_) => "timed out",
                ureq::Error::HostNotFound => "host not found",
                ureq::Error::ConnectionFailed => "connection failed",
                ureq::Error::Io(ref io) => match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connection refused",
                    std::io::ErrorKind::ConnectionReset => "connection reset",
                    std::io::ErrorKind::ConnectionAborted => "connection aborted",
                    std::io::ErrorKind::BrokenPipe => "connection closed while sending",
                    std::io::ErrorKind::UnexpectedEof => "connection closed early",
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timed out",
                    std::io::ErrorKind::InvalidData => "TLS or protocol failure",
                    _ => "i/o error",
                },
                ureq::Error::Tls(_) => "TLS failure",
                ureq::Error::Protocol(_) => "HTTP protocol error",
                _ => "transport error",
            }
            .to_string(),
        )
    }

    /// Clears a stale refusal before a new request.
    pub(crate) fn reset_refusal(&self) {
        *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Which credentials a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credential<'s> {
    /// None (the service is anonymous, or the request carries no user data).
    Anonymous,
    /// The bearer token of `service` (a new one with `refresh`).
    Bearer {
        /// The config's service name.
        service: &'s str,
        /// Ask the provider for a new token first.
        refresh: bool,
    },
}

impl<'s> Credential<'s> {
    /// What `service` of `region` needs, as its signed config declares.
    pub(crate) fn of(region: &ApprovedRegion, service: &'s str) -> Credential<'s> {
        match region.region().services().get(service).map(|s| s.auth()) {
            Some(AuthScheme::Bearer) => Credential::Bearer {
                service,
                refresh: false,
            },
            Some(AuthScheme::None) | None => Credential::Anonymous,
        }
    }

    /// The same credential, refreshed.
    pub(crate) fn refreshed(self) -> Credential<'s> {
        match self {
            Credential::Bearer { service, .. } => Credential::Bearer {
                service,
                refresh: true,
            },
            anonymous => anonymous,
        }
    }
}

impl fmt::Debug for RegionHttp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegionHttp")
            .field("region", &self.region.id())
            .finish()
    }
}

impl<'a> RegionHttp<'a> {
    /// Builds the agent for `region`; its sockets obey `ctl` (the run's
    /// deadline and cancel flag).
    pub(crate) fn new(
        region: &ApprovedRegion,
        opts: &UploadOptions,
        ctl: IoControl,
        auth: RunAuth<'a>,
    ) -> Result<RegionHttp<'a>> {
        Ok(RegionHttp {
            net: Guarded::new(Arc::new(region.region().clone()), opts, ctl)?,
            region: region.clone(),
            request_timeout: opts.request_timeout,
            auth,
            body_caps: Mutex::new(HashMap::new()),
        })
    }

    /// The body limit a 413 taught this run about `host_port`, if any.
    pub(crate) fn body_cap(&self, host_port: &str) -> Option<BodyCap> {
        let caps = self.body_caps.lock().unwrap_or_else(|p| p.into_inner());
        caps.get(host_port).copied()
    }

    /// Records what a 413 (or the body that then got through) taught.
    pub(crate) fn set_body_cap(&self, host_port: &str, cap: BodyCap) {
        let mut caps = self.body_caps.lock().unwrap_or_else(|p| p.into_inner());
        caps.insert(host_port.to_string(), cap);
    }

    /// Sends one request to `url` under an overall deadline: the run's
    /// remaining time, and for a request without a body (`bounded`) also
    /// `request_timeout`. A request whose run already ended is not sent.
    ///
    /// The only place a request leaves, and the only place an
    /// `Authorization` header is made: only for a URL the guard of this
    /// run's region approved, never on a redirect (none is followed), and
    /// not at all when the provider gives no token (nothing is sent then).
    pub(crate) fn send<S: ureq::AsSendBody>(
        &self,
        url: &GuardedUrl,
        mut req: ureq::http::Request<S>,
        bounded: bool,
        credential: Credential<'_>,
    ) -> TusResult<ureq::http::Response<ureq::Body>> {
        self.reset_refusal();
        if url.region_id() != self.region.id() || req.uri() != url.uri() {
            return Err(Error::Residency("request is not for the run's region").into());
        }
        let headers = req.headers_mut();
        headers.remove(ureq::http::header::AUTHORIZATION);
        if self.net.ctl.stopped() {
            return Err(Error::Cancelled.into());
        }
        if let Credential::Bearer { service, refresh } = credential {
            let value = self.auth.bearer(service, refresh)?;
            // The provider may have been slow: the run's end is checked again.
            if self.net.ctl.stopped() {
                return Err(Error::Cancelled.into());
            }
            headers.insert(ureq::http::header::AUTHORIZATION, value);
        }
        // The grace lets an answer that is arriving as the run ends be read.
        let mut limit = self.net.ctl.remaining() + GRACE;
        if bounded {
            limit = limit.min(self.request_timeout);
        }
        let req = self
            .net
            .agent
            .configure_request(req)
            .timeout_global(Some(limit))
            .build();
        self.net
            .agent
            .run(req)
            .map_err(|e| Failure::from(self.net.classify(e)))
    }

    /// Replaces the cached token of `service` with a new one from the provider.
    pub(crate) fn refresh_token(&self, service: &str) -> Result<()> {
        self.auth.bearer(service, true).map(|_| ())
    }

    /// The region this agent serves.
    pub fn region(&self) -> &ApprovedRegion {
        &self.region
    }

    /// The peer address last connected for `host:port`.
    pub fn peer_ip(&self, host_port: &str) -> Option<IpAddr> {
        self.net
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(host_port)
            .copied()
    }

    /// Clears a stale refusal before a new request.
    pub(crate) fn reset_refusal(&self) {
        self.net.reset_refusal();
    }
}
