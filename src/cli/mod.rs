//! The `cloudsync` command-line tool's commands (kept out of the library).

use std::path::{Path, PathBuf};

pub mod cmds;
pub mod demo;
pub mod devserver;
mod results;

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
            Failure::Op(e) => (format!("error: {}: {e}", e.kind()), 1),
            Failure::File(path, e) => {
                let msg = match e {
                    // "entity not found", not "source file unreadable: entity not found".
                    cloudsync::Error::SourceIo(k) => k.to_string(),
                    other => other.to_string(),
                };
                (format!("error: {}: {}: {msg}", e.kind(), path.display()), 1)
            }
            Failure::Incomplete { kind, message } => (format!("error: {kind}: {message}"), 1),
        }
    }
}

/// Reads a file given on the command line; a missing file is a failed
/// operation naming it.
pub fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| file_io(path, &e))
}

/// `source_io` on `path` (as the user typed it).
pub fn file_io(path: &Path, e: &std::io::Error) -> Failure {
    Failure::File(path.to_path_buf(), cloudsync::Error::SourceIo(e.kind()))
}
