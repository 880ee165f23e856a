//! What every command shares: how a command fails (exit status and message),
//! the database the user named, and reading the files the user named (capped).

use std::path::{Path, PathBuf};

/// How a command failed: usage (exit 2) or operation (exit 1). Every exit 1
/// prints `error: <kind>: <message>` on stderr.
pub enum Failure {
    /// Bad invocation.
    Usage(String),
    /// Rejected input or failed operation.
    Op(cloudsync::Error),
    /// A failed operation on a file the user named on the command line:
    /// `error: <kind>: <path>: <message>` (the CLI may show what the user
    /// typed; the library's own messages never hold a path).
    File(PathBuf, cloudsync::Error),
    /// `run` left items failed or pending: the kind of the failure shown
    /// (or `incomplete`) and what remains.
    Incomplete {
        /// An error kind name, or `incomplete`.
        kind: String,
        /// How many items remain, and why.
        message: String,
    },
}

impl From<cloudsync::Error> for Failure {
    fn from(e: cloudsync::Error) -> Failure {
        Failure::Op(e)
    }
}

impl Failure {
    /// A storage failure names the database file the user passed (`--db`).
    pub fn on_db(self, db: Option<&Path>) -> Failure {
        use cloudsync::ErrorKind as K;
        match (self, db) {
            (Failure::Op(e), Some(db))
                if matches!(
                    e.kind(),
                    K::StorageCorrupt
                        | K::NotADatabase
                        | K::StorageUnavailable
                        | K::StorageFull
                        | K::SchemaTooNew
                        | K::Storage
                ) =>
            {
                Failure::File(db.to_path_buf(), e)
            }
            (other, _) => other,
        }
    }

    /// The `error: ...` line for stderr (without the newline) and the exit code.
    pub fn report(&self) -> (String, u8) {
        match self {
            Failure::Usage(msg) => (format!("error: {msg}"), 2),
            Failure::Op(e) => (format!("error: {}", kind_once(e)), 1),
            Failure::File(path, e) => {
                let msg = match e {
                    // "entity not found", not "source file unreadable: entity not found".
                    cloudsync::Error::SourceIo(k) => k.to_string(),
                    other => without_kind(other.kind(), &other.to_string()).to_string(),
                };
                (format!("error: {}: {}: {msg}", e.kind(), path.display()), 1)
            }
            Failure::Incomplete { kind, message } => (format!("error: {kind}: {message}"), 1),
        }
    }
}

/// `<kind>: <message>` with the kind once: many of the library's messages
/// already start with it (`network: connection refused`).
pub fn kind_once(e: &cloudsync::Error) -> String {
    format!("{}: {}", e.kind(), without_kind(e.kind(), &e.to_string()))
}

/// `msg` without a leading `<kind>: `, the kind spelt as its name
/// (`network`) or in words (`invalid argument` for `invalid_argument`).
fn without_kind(kind: cloudsync::ErrorKind, msg: &str) -> &str {
    let name = kind.name();
    let words = name.replace('_', " ");
    [name, words.as_str()]
        .iter()
        .find_map(|k| msg.strip_prefix(k).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or(msg)
}

/// Largest root envelope `--root` reads (a root is a few KiB).
const MAX_ROOT_FILE: u64 = 1 << 20;

/// The database a command works on, and the firmware root (`--root`,
/// `CLOUDSYNC_ROOT`) that anchors its trust.
pub struct Store {
    path: PathBuf,
    root: Option<PathBuf>,
}

impl Store {
    /// `path` anchored in the root file `root`, if one was given.
    pub fn new(path: PathBuf, root: Option<PathBuf>) -> Store {
        Store { path, root }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the database file exists.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Opens the existing database, anchored in `--root` when it was given;
    /// without it the agent serves reads only.
    pub fn open(&self) -> Result<cloudsync::Agent, Failure> {
        self.open_with(cloudsync::AgentOptions::default(), false)
    }

    /// Opens the existing database for a command that uploads or changes
    /// trust: `--root` is required.
    pub fn open_anchored(&self) -> Result<cloudsync::Agent, Failure> {
        self.open_with(cloudsync::AgentOptions::default(), true)
    }

    /// [`Store::open`] with options; `anchored`: `--root` is required.
    pub fn open_with(
        &self,
        options: cloudsync::AgentOptions,
        anchored: bool,
    ) -> Result<cloudsync::Agent, Failure> {
        if !self.exists() {
            return Err(Failure::Usage(
                "database does not exist; run `cloudsync --db DB --root ROOT.json init` first"
                    .into(),
            ));
        }
        let root = match (&self.root, anchored) {
            (Some(path), _) => Some(read_root(path)?),
            (None, false) => None,
            (None, true) => {
                return Err(Failure::Usage(
                    "this command uploads or changes trust: pass the firmware root with \
                     --root ROOT.json or CLOUDSYNC_ROOT (reads work without it)"
                        .into(),
                ))
            }
        };
        Ok(cloudsync::Agent::open_with(
            &self.path,
            root.as_deref(),
            options,
        )?)
    }
}

/// Reads the firmware root file: a regular file of at most 1 MiB.
pub fn read_root(path: &Path) -> Result<Vec<u8>, Failure> {
    read_capped(path, MAX_ROOT_FILE, "not a regular file of at most 1 MiB")
}

/// Largest file [`read`] reads (an envelope, payload, key or CA is KiBs).
const MAX_FILE: u64 = 4 << 20;

/// Reads a file given on the command line (an envelope, payload, key or
/// CA): a regular file of at most 4 MiB. A missing, special (`/dev/zero`, a
/// FIFO) or larger file is a failed operation naming it.
pub fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    read_capped(path, MAX_FILE, "not a regular file of at most 4 MiB")
}

/// Reads `path` if it is a regular file of at most `max` bytes; `refused`
/// says why not. Looked at before opening (opening a FIFO would block), and
/// opened without blocking; what was opened is looked at again.
fn read_capped(path: &Path, max: u64, refused: &'static str) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let refuse = || {
        Failure::File(
            path.to_path_buf(),
            cloudsync::Error::InvalidArgument(refused),
        )
    };
    let fits = |md: &std::fs::Metadata| md.is_file() && md.len() <= max;
    let md = std::fs::metadata(path).map_err(|e| file_io(path, &e))?;
    if !fits(&md) {
        return Err(refuse());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path).map_err(|e| file_io(path, &e))?;
    if !fits(&file.metadata().map_err(|e| file_io(path, &e))?) {
        return Err(refuse());
    }
    let mut buf = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| file_io(path, &e))?;
    if buf.len() as u64 > max {
        return Err(refuse()); // it grew since it was looked at
    }
    Ok(buf)
}

/// `source_io` on `path` (as the user typed it).
pub fn file_io(path: &Path, e: &std::io::Error) -> Failure {
    Failure::File(path.to_path_buf(), cloudsync::Error::SourceIo(e.kind()))
}
