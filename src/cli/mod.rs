//! The `cloudsync` command-line tool's commands (kept out of the library).

pub mod cmds;
pub mod demo;
pub mod devserver;

/// How a command failed: usage (exit 2) or operation (exit 1).
pub enum Failure {
    /// Bad invocation.
    Usage(String),
    /// Rejected input or failed operation.
    Op(cloudsync::Error),
}

impl From<cloudsync::Error> for Failure {
    fn from(e: cloudsync::Error) -> Failure {
        Failure::Op(e)
    }
}

/// Reads a file given on the command line; a missing file is a failed operation.
pub fn read(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::Op(cloudsync::Error::SourceIo(e.kind())))
}
