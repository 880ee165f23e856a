//! Public configuration and observation types of the dev server: its options, the
//! one-shot faults, the counters snapshot and what it knows about an upload.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::LeafCert;

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
    /// Like a proxy's body limit (nginx's `client_max_body_size`): a PATCH whose
    /// `Content-Length` exceeds it gets 413. With `Expect: 100-continue` the 413 is the
    /// answer to the head and no body byte is read; without, the body is read and thrown
    /// away first (counted in the upload's [`UploadInfo::body_bytes_received`]).
    pub max_body: Option<u64>,
    /// Read PATCH bodies no faster than this many bytes per second (a slow link),
    /// storing each 16 KiB as it arrives; `None`: as fast as they come.
    pub body_rate: Option<u64>,
    /// Answer `Location: /files/<id>` instead of `https://<public_host>:<port>/files/<id>`.
    pub relative_location: bool,
    /// Host name used in absolute `Location`s, e.g. `backup.in.test`.
    pub public_host: String,
    /// A POST with the idempotency key of an earlier, not forgotten upload (its
    /// `Idempotency-Key` header, or else its `key` metadata) gets that upload's URL (201 with
    /// its `Upload-Offset`) instead of a new one; with another `Upload-Length`, 422. Off: a
    /// plain tus server, every POST makes a new upload.
    pub dedupe_by_key: bool,
    /// Like a server that wants a `filetype` metadata field: a POST whose `Upload-Metadata`
    /// lacks `filetype` gets 400, and so do HEAD and PATCH on an upload created without
    /// one (an upload made before the server started to require it; see
    /// [`TusServer::create_upload`]). DELETE still works.
    pub require_filetype: bool,
    /// Like tusd: a PATCH that arrives while another request still holds the upload's
    /// writer lock (typically the previous connection of the same client, cut on the
    /// client's side but still being read here) is answered 409 at once, with the current
    /// `Upload-Offset`, and the older request is left to finish on its own. Off (the
    /// default): the older request is cut off and the new one waits for the lock.
    pub conflict_while_locked: bool,
    /// Answer 417 to any request with `Expect: 100-continue`, as some servers and
    /// proxies do (lighttpd, old Squid).
    pub reject_expect: bool,
    /// Close an idle keep-alive connection gracefully (close_notify, then FIN) after
    /// this long, as Go's net/http and Node do.
    pub idle_close: Option<Duration>,
    /// Require `Authorization: Bearer <token>` on every request but `OPTIONS`
    /// (401 with `WWW-Authenticate: Bearer` otherwise); `None`: anonymous. Change it
    /// while running with [`TusServer::set_token`] (a rotated token).
    pub bearer_token: Option<String>,
    /// Serve the files of this directory as a root's mirror under `/sources/` (see
    /// [`TusServer::sources_url`]), with `ETag`, `Last-Modified` and 304s. Mirror
    /// requests need no token.
    pub sources_dir: Option<PathBuf>,
    /// Write one line per request to stderr, labelled with this name (a
    /// region id, or `mirror`): method, path (no query), status, request body
    /// bytes. Never a header value (no token) and never a body. `None`: quiet.
    pub request_log: Option<String>,
}

impl ServerOptions {
    /// Options with the defaults: base path `/files/`, checksum and termination offered,
    /// no maximum size, absolute `Location`s, dedupe by `item` on, `filetype` not required,
    /// racing PATCHes wait for the lock.
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
            max_body: None,
            body_rate: None,
            relative_location: false,
            public_host: public_host.into(),
            dedupe_by_key: true,
            require_filetype: false,
            conflict_while_locked: false,
            reject_expect: false,
            idle_close: None,
            bearer_token: None,
            sources_dir: None,
            request_log: None,
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
    /// PATCH requests answered 409 (offset mismatch or a lock held by another request).
    pub conflicts: u64,
    /// Requests that carried an `Authorization` header (any value).
    pub authorization_headers: u64,
    /// Requests answered 401 because the bearer token was missing or wrong.
    pub unauthorized: u64,
    /// PATCH requests answered 413 because their body exceeded
    /// [`ServerOptions::max_body`].
    pub too_large: u64,
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
    /// Request body bytes read for requests on its URL, stored or not: bodies cut
    /// short, refused (409, 413, 460) or sent again all count. Added when a
    /// request ends.
    pub body_bytes_received: u64,
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
/// `Gone`), and — only if it gets that far — one `DropAfterBodyBytes` or `CutAndLinger`
/// (an accepted PATCH), or one `CreatedThenCut`, `LocationOverride`, `AnswerOffset` and
/// one `ClaimComplete` or `ClaimCompleteBlind` (a successful POST).
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
    /// The next successful POST is answered as if the upload were already complete
    /// (`Upload-Offset` equal to `Upload-Length`). If a complete upload with the same
    /// length and `sha256` metadata exists, the answer is true — the new upload gets a
    /// copy of its bytes, as a deduplicating server would; otherwise it is a lie and the
    /// new upload is empty (a HEAD tells the truth).
    ClaimComplete,
    /// Like [`Fault::ClaimComplete`], but any complete upload of the same length will do,
    /// whatever its content: a server that claims to hold what it was never told about.
    ClaimCompleteBlind,
    /// The next successful POST is answered with this `Upload-Offset` (its upload holds
    /// nothing): a server that resumed some other upload it took for this one.
    AnswerOffset(u64),
    /// The next successful POST creates its upload, waits `linger`, then cuts the
    /// connection without an answer: the client never learns the upload's URL (the
    /// window between a creation and storing its URL, which a crash can also hit).
    CreatedThenCut {
        /// How long the answer is withheld before the cut.
        linger: Duration,
    },
    /// The next mirror document (`/sources/...`) is answered with its full
    /// `Content-Length` but only this many body bytes, then the connection is cut.
    TruncateBody(u64),
    /// On the next PATCH that passes validation: store `after` body bytes, read `late`
    /// more, cut the TCP connection without answering, and only then — `linger` later, as
    /// a server that has not noticed the cut yet — store the `late` bytes and let go of
    /// the upload's writer lock. A HEAD meanwhile shows `after`; a PATCH meanwhile races
    /// the lock (409 with [`ServerOptions::conflict_while_locked`]; otherwise it cuts the
    /// linger short, which stores the late bytes at once, and then gets a 409 for its now
    /// stale offset).
    CutAndLinger {
        /// Body bytes stored before the cut.
        after: u64,
        /// Body bytes read before the cut but stored only when the linger ends.
        late: u64,
        /// How long the lock is kept after the cut.
        linger: Duration,
    },
}

/// One request a mirror received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRequest {
    /// Method.
    pub method: String,
    /// Path (query removed).
    pub path: String,
    /// Header fields in order, names lower-cased.
    pub headers: Vec<(String, String)>,
}
