//! One internal [`Error`] for the whole crate and the small public [`ErrorKind`]
//! that crosses the FFI edge.
//!
//! Messages name the problem, never the data: no file paths, URLs, account ids
//! or config contents appear in `Display` output, because these strings reach
//! logcat, crash reports and QA logs.

use std::fmt;

mod sqlite;

crate::codes::coded_enum! {
    /// The category of a failure, stable across releases: the one table of
    /// each kind's C status code, name and Java exception class (CHANGELOG:
    /// add kinds, never renumber). `ErrorKind::ALL` lists them for
    /// exhaustive tests and for the generated header's `CS_*` constants.
    #[non_exhaustive]
    pub enum ErrorKind, c_prefix "CS_", java JavaException {
        /// An envelope carried no valid signature from a trusted key of the role.
        BadSignature = 10, "bad_signature", Config;
        /// Some, but fewer than the threshold of, distinct trusted keys signed.
        ThresholdNotMet = 11, "threshold_not_met", Config;
        /// A version went down, or the same version arrived with different bytes.
        Rollback = 12, "rollback", Config;
        /// A root version skipped ahead by more than one.
        VersionGap = 13, "version_gap", Config;
        /// The root or config is past `expires_at` (against the freeze-safe clock).
        Expired = 14, "expired", Config;
        /// The envelope's `payloadType` is not the one expected.
        WrongPayloadType = 15, "wrong_payload_type", Config;
        /// Input bytes could not be parsed or miss required fields.
        Malformed = 16, "malformed", Config;
        /// A config endpoint or host rule breaks the residency rules.
        InvalidEndpoint = 17, "invalid_endpoint", Config;
        /// No verified config is installed (uploads are off).
        NoConfig = 18, "no_config", Config;
        /// The stored trust is not anchored in the firmware root: the handle was
        /// opened without one (reads only), or the stored root is newer than the
        /// firmware root and its chain is not verified yet (a config refresh
        /// re-walks it). Nothing uploads and trust does not change until it is.
        RootMismatch = 19, "root_mismatch", Config;
        /// No region is approved for this account (uploads are off).
        NoRegion = 20, "no_region", Residency;
        /// No account is signed in (`set_account(None, ..)`), or the service needs
        /// one and none was ever set; or the account changed during the run.
        NoAccount = 22, "no_account", Auth;
        /// A URL or peer outside the approved region was refused before any byte was sent.
        Residency = 21, "residency", Residency;
        /// Another runner holds the queue (the message says which and until
        /// when), this run was superseded by one, or the database is locked.
        Busy = 30, "busy", Busy;
        /// The database file is damaged.
        StorageCorrupt = 40, "storage_corrupt", Storage;
        /// The file is not an SQLite database.
        NotADatabase = 41, "not_a_database", Storage;
        /// The database cannot be opened or written (read-only or missing directory).
        StorageUnavailable = 42, "storage_unavailable", Storage;
        /// The disk (or the database's page budget) is full.
        StorageFull = 43, "storage_full", Storage;
        /// The database was written by a newer cloudsync with a newer schema.
        SchemaTooNew = 44, "schema_too_new", Storage;
        /// Any other SQLite failure.
        Storage = 45, "storage", Storage;
        /// A source file could not be read.
        SourceIo = 46, "source_io", Sync;
        /// The source file changed (or shrank, or vanished) while it was being
        /// uploaded; the upload starts again from a clean read.
        SourceChanged = 47, "source_changed", Sync;
        /// Connecting, TLS, or a transfer failed (retryable).
        Network = 50, "network", Network;
        /// A server answered something the protocol does not allow.
        Protocol = 51, "protocol", Network;
        /// The server refused the upload for good (e.g. 413); the item is dead.
        Rejected = 52, "rejected", Network;
        /// The server answered 401 or 403 twice (before and after a refresh), or
        /// the credential provider returned nothing, failed, or returned a
        /// malformed token. The run stops; items are left as they were.
        Unauthorized = 53, "unauthorized", Auth;
        /// The run was cancelled.
        Cancelled = 60, "cancelled", Sync;
        /// No item with that id.
        NotFound = 61, "not_found", Sync;
        /// A caller passed an invalid argument (null, empty, out of range).
        InvalidArgument = 62, "invalid_argument", Sync;
        /// A bug: a panic was caught at the FFI edge, or an invariant broke.
        Internal = 99, "internal", Sync;
    }
}

/// The Java exception class that carries an [`ErrorKind`] (package
/// `com.miui.cloudsync`; each has a `(String kind, int code, String
/// message)` constructor and subclasses `SyncException`, except that one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JavaException {
    /// `ConfigException`: trust and config.
    Config,
    /// `ResidencyException`: no region, or a refused destination.
    Residency,
    /// `BusyException`: another runner holds the queue.
    Busy,
    /// `StorageException`: the database.
    Storage,
    /// `NetworkException`: the transfer.
    Network,
    /// `AuthException`: the account and its credentials.
    Auth,
    /// `SyncException` itself: everything else.
    Sync,
}

impl JavaException {
    /// The JNI class name.
    pub const fn class(self) -> &'static str {
        match self {
            JavaException::Config => "com/miui/cloudsync/ConfigException",
            JavaException::Residency => "com/miui/cloudsync/ResidencyException",
            JavaException::Busy => "com/miui/cloudsync/BusyException",
            JavaException::Storage => "com/miui/cloudsync/StorageException",
            JavaException::Network => "com/miui/cloudsync/NetworkException",
            JavaException::Auth => "com/miui/cloudsync/AuthException",
            JavaException::Sync => "com/miui/cloudsync/SyncException",
        }
    }
}

impl ErrorKind {
    /// The Java exception class (JNI name) that carries this kind.
    pub const fn java_class(self) -> &'static str {
        self.exception().class()
    }
}

/// Every failure in cloudsync. Variants hold only non-sensitive detail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No signature from a trusted key of `role` verified.
    #[error("no valid signature from a trusted {role} key")]
    BadSignature {
        /// `root` or `config`.
        role: &'static str,
    },
    /// Fewer than `threshold` distinct trusted keys of `role` signed.
    #[error("{role} threshold not met: {valid} of {threshold} distinct trusted keys signed")]
    ThresholdNotMet {
        /// `root`, `config`, or `root (new)` for a rotation's own keys.
        role: &'static str,
        /// Distinct keys with a valid signature.
        valid: usize,
        /// Keys required.
        threshold: usize,
    },
    /// A version older than the installed one.
    #[error("{what} version {offered} is older than installed version {installed}")]
    Rollback {
        /// `root` or `config`.
        what: &'static str,
        /// Version in the rejected document.
        offered: u64,
        /// Version in force.
        installed: u64,
    },
    /// Same version, different bytes.
    #[error("{what} version {version} is already installed with different content")]
    SameVersionDifferent {
        /// `root` or `config`.
        what: &'static str,
        /// The version.
        version: u64,
    },
    /// Root versions must step by exactly one.
    #[error("root version {offered} does not follow installed version {installed}")]
    VersionGap {
        /// Version in the rejected root.
        offered: u64,
        /// Version in force.
        installed: u64,
    },
    /// Past its expiry.
    #[error("{what} expired")]
    Expired {
        /// `root` or `config`.
        what: &'static str,
    },
    /// Wrong `payloadType` (the offered type is not echoed).
    #[error("wrong payload type: expected {expected}")]
    WrongPayloadType {
        /// The type that was required.
        expected: &'static str,
    },
    /// Could not parse.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// Why, without echoing input.
        reason: String,
    },
    /// An endpoint or host rule breaks the residency rules.
    #[error("invalid endpoint: {0}")]
    InvalidEndpoint(&'static str),
    /// No config installed.
    #[error("no verified config is installed")]
    NoConfig,
    /// The root offered at open has the version of the stored root but other content.
    #[error("the database trusts a different root of version {version}")]
    RootMismatch {
        /// The version both roots claim.
        version: u64,
    },
    /// The stored trust is not (yet) vouched for by the firmware root.
    #[error("{0}")]
    Unanchored(&'static str),
    /// No region approved.
    #[error("no region is approved for this account")]
    NoRegion,
    /// Residency guard refused a URL or peer.
    #[error("residency: refused: {0}")]
    Residency(&'static str),
    /// The approved region changed (or its config expired) during a run, or
    /// is not the one the user consented to move held items to.
    #[error("residency: the approved region changed")]
    RegionChanged,
    /// A run that no longer owns the queue: its lease ran out (it was frozen
    /// or stuck) and another runner took the queue over; it writes nothing more.
    #[error("another runner took the queue over (this run's lease had run out)")]
    Busy,
    /// Another runner holds the queue: who, as far as can be told, and until when.
    #[error("another runner holds the queue ({0})")]
    QueueHeld(Holder),
    /// SQLite failure, classified.
    #[error("{reason}")]
    Storage {
        /// The classified kind.
        kind: ErrorKind,
        /// What failed, in words (never contains paths or row data).
        reason: String,
    },
    /// DB schema is newer than this build.
    #[error("database schema version {found} is newer than supported version {supported}")]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// Source file unreadable.
    #[error("source file unreadable: {0}")]
    SourceIo(std::io::ErrorKind),
    /// The source file changed while it was being read; the upload restarts.
    #[error("source file changed during upload")]
    SourceChanged,
    /// The queued path is a symbolic link: never followed, so none of its
    /// target's bytes are read or sent (a usage error, like a directory).
    #[error("the queued path is a symbolic link")]
    SourceSymlink,
    /// The source file was deleted while its upload was in progress, before the server
    /// confirmed all of it: nothing can finish it any more.
    #[error("source file deleted during upload")]
    SourceGone,
    /// The request could not be authorised (see [`AuthFailure`]).
    #[error("unauthorized: {0}")]
    Unauthorized(AuthFailure),
    /// No account is signed in.
    #[error("no account is signed in")]
    NoAccount,
    /// The current account changed (another handle, process or thread set
    /// another one, or signed out) during a run.
    #[error("the account changed during the run")]
    AccountChanged,
    /// Transport failure.
    #[error("network: {0}")]
    Network(String),
    /// The server answered 408, 429 or 5xx (retryable, through the queue's
    /// backoff and `Retry-After`, never in a tight loop).
    #[error("network: {0}")]
    ServerStatus(String),
    /// Protocol violation by the server.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Permanent refusal by the server.
    #[error("server rejected the upload: HTTP {0}")]
    Rejected(u16),
    /// Cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Unknown id.
    #[error("no such item")]
    NotFound,
    /// Bad argument.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A caught panic or broken invariant.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Who holds the queue when a run is refused with `busy` ([`Error::QueueHeld`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Holder {
    /// Another run on the same handle (a nested or concurrent `run_once`).
    ThisHandle,
    /// A live process holds the runner lock beside the database (it may be
    /// frozen: then it is superseded when its lease ends).
    LiveProcess {
        /// Seconds until its lease ends, rounded up.
        lease_ends_in_secs: u64,
    },
    /// A runner that does not hold the runner lock, so whether it is alive
    /// cannot be told (it took the queue over from a frozen runner, or the
    /// lock file cannot be used): waited out until its lease ends.
    Lease {
        /// Seconds until its lease ends, rounded up.
        lease_ends_in_secs: u64,
    },
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::ThisHandle => f.write_str("a run on this handle; until it returns"),
            Holder::LiveProcess { lease_ends_in_secs } => {
                write!(
                    f,
                    "a live process; its lease ends in {lease_ends_in_secs} s"
                )
            }
            Holder::Lease { lease_ends_in_secs } => write!(
                f,
                "a process not known to be alive; its lease ends in {lease_ends_in_secs} s"
            ),
        }
    }
}

/// Why a request could not be authorised. Never holds a token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The server answered this status (401 or 403) after a refresh too.
    Status(u16),
    /// The service requires credentials and the app set no provider.
    NoProvider,
    /// The provider returned none (the account is not signed in).
    NoToken,
    /// The provider returned something that is not an RFC 6750 bearer token.
    BadToken,
    /// The provider failed, with its (shortened) message.
    Provider(String),
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFailure::Status(s) => write!(f, "the server refused the credentials (HTTP {s})"),
            AuthFailure::NoProvider => {
                f.write_str("the service requires credentials and no provider is set")
            }
            AuthFailure::NoToken => {
                f.write_str("the provider returned no credentials for the account")
            }
            AuthFailure::BadToken => {
                f.write_str("the provider returned a token that is not a bearer token")
            }
            AuthFailure::Provider(m) => write!(f, "the credential provider failed: {m}"),
        }
    }
}

impl Error {
    /// The public category.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadSignature { .. } => ErrorKind::BadSignature,
            Error::ThresholdNotMet { .. } => ErrorKind::ThresholdNotMet,
            Error::Rollback { .. } | Error::SameVersionDifferent { .. } => ErrorKind::Rollback,
            Error::VersionGap { .. } => ErrorKind::VersionGap,
            Error::Expired { .. } => ErrorKind::Expired,
            Error::WrongPayloadType { .. } => ErrorKind::WrongPayloadType,
            Error::Malformed { .. } => ErrorKind::Malformed,
            Error::InvalidEndpoint(_) => ErrorKind::InvalidEndpoint,
            Error::NoConfig => ErrorKind::NoConfig,
            Error::NoRegion => ErrorKind::NoRegion,
            Error::Residency(_) | Error::RegionChanged => ErrorKind::Residency,
            Error::Busy | Error::QueueHeld(_) => ErrorKind::Busy,
            Error::RootMismatch { .. } | Error::Unanchored(_) => ErrorKind::RootMismatch,
            Error::Storage { kind, .. } => *kind,
            Error::SchemaTooNew { .. } => ErrorKind::SchemaTooNew,
            Error::SourceIo(_) => ErrorKind::SourceIo,
            Error::SourceChanged | Error::SourceGone => ErrorKind::SourceChanged,
            Error::Unauthorized(_) => ErrorKind::Unauthorized,
            Error::NoAccount | Error::AccountChanged => ErrorKind::NoAccount,
            Error::Network(_) | Error::ServerStatus(_) => ErrorKind::Network,
            Error::Protocol(_) => ErrorKind::Protocol,
            Error::Rejected(_) => ErrorKind::Rejected,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::NotFound => ErrorKind::NotFound,
            Error::InvalidArgument(_) | Error::SourceSymlink => ErrorKind::InvalidArgument,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// A key file that does not parse.
    pub fn malformed_key() -> Error {
        Error::malformed("key", "not a cloudsync key file")
    }

    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Error {
        Error::Malformed {
            what,
            reason: reason.into(),
        }
    }

    /// serde_json's messages can quote input values ("invalid type: string \"…\""),
    /// so only the category, position and missing field names survive.
    pub(crate) fn from_json(what: &'static str, e: &serde_json::Error) -> Error {
        let msg = e.to_string();
        let reason = if let Some(rest) = msg.strip_prefix("missing field ") {
            let field = rest.split(" at line").next().unwrap_or(rest);
            format!("missing field {field}")
        } else {
            let cat = match e.classify() {
                serde_json::error::Category::Io => "i/o error",
                serde_json::error::Category::Syntax => "syntax error",
                serde_json::error::Category::Data => "invalid value",
                serde_json::error::Category::Eof => "unexpected end of input",
            };
            format!("{cat} at line {} column {}", e.line(), e.column())
        };
        Error::Malformed { what, reason }
    }
}

/// Crate-wide result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_and_names_are_unique_and_nonzero() {
        let codes: HashSet<i32> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        let names: HashSet<&str> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        assert_eq!(names.len(), ErrorKind::ALL.len());
        assert!(!codes.contains(&0));
    }

    #[test]
    fn storage_errors_are_words_without_a_path() {
        let dir = std::env::temp_dir().join("cloudsync-no-such-dir-7f3a");
        let path = dir.join("q.db");
        let e = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
        )
        .unwrap_err();
        let e = Error::from(e);
        assert_eq!(e.kind(), ErrorKind::StorageUnavailable);
        assert_eq!(e.to_string(), "cannot open the database file");
        let other = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT);
        let e = Error::from(rusqlite::Error::SqliteFailure(
            other,
            Some(path.display().to_string()),
        ));
        assert_eq!(
            (e.kind(), e.to_string().as_str()),
            (ErrorKind::Storage, "constraint failed")
        );
    }

    #[test]
    fn json_errors_do_not_echo_input() {
        let e = serde_json::from_str::<u64>("\"secret-account-42\"").unwrap_err();
        let msg = Error::from_json("config", &e).to_string();
        assert!(!msg.contains("secret"), "{msg}");
        assert_eq!(Error::from_json("config", &e).kind(), ErrorKind::Malformed);
    }
}
