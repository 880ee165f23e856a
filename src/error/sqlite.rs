//! SQLite's failures as [`Error`]s: a kind from the result code, and words
//! from the code only (SQLite's own detail message can name the file or
//! quote SQL).

use super::{Error, ErrorKind};

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        use rusqlite::ffi::ErrorCode as C;
        let kind = match e.sqlite_error_code() {
            Some(C::DatabaseCorrupt) => ErrorKind::StorageCorrupt,
            Some(C::NotADatabase) => ErrorKind::NotADatabase,
            Some(C::DiskFull) => ErrorKind::StorageFull,
            // The shared-memory file (`-shm`) could not be grown: no space
            // left (or a quota) at open, when SQLite makes it.
            _ if is_shm_size(&e) => ErrorKind::StorageFull,
            Some(C::ReadOnly) | Some(C::CannotOpen) | Some(C::PermissionDenied) => {
                ErrorKind::StorageUnavailable
            }
            Some(C::DatabaseBusy) | Some(C::DatabaseLocked) => ErrorKind::Busy,
            _ => ErrorKind::Storage,
        };
        // In words, from the error code only: SQLite's detail message can
        // name the file or quote SQL; for other variants keep only a category.
        let reason = match &e {
            rusqlite::Error::SqliteFailure(err, _) => storage_words(err).to_string(),
            rusqlite::Error::QueryReturnedNoRows => "no rows".to_string(),
            other => short_variant(other).to_string(),
        };
        Error::Storage { kind, reason }
    }
}

fn is_shm_size(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(err, _)
        if err.extended_code == rusqlite::ffi::SQLITE_IOERR_SHMSIZE)
}

/// What a failed SQLite call means, in words without a path: ours for the
/// codes a user meets, else SQLite's generic text for the code
/// (`sqlite3_errstr`, a fixed string).
fn storage_words(err: &rusqlite::ffi::Error) -> &'static str {
    use rusqlite::ffi::ErrorCode as C;
    if err.extended_code == rusqlite::ffi::SQLITE_IOERR_SHMSIZE {
        return "the disk is full: no room for the database's shared-memory file";
    }
    match err.code {
        C::CannotOpen => "cannot open the database file",
        C::ReadOnly => "the database file is read-only",
        C::PermissionDenied => "permission denied on the database file",
        C::DatabaseCorrupt => "the database file is damaged",
        C::NotADatabase => "the file is not a database",
        C::DiskFull => "the disk or the database is full",
        C::DatabaseBusy => "the database is locked by another connection (a write in progress, or a process frozen inside one)",
        C::DatabaseLocked => "the database is locked",
        C::SystemIoFailure => "disk input/output error on the database file",
        _ => rusqlite::ffi::code_to_str(err.extended_code),
    }
}

fn short_variant(e: &rusqlite::Error) -> &'static str {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..) => "unexpected column type",
        rusqlite::Error::IntegralValueOutOfRange(..) => "integer out of range",
        rusqlite::Error::InvalidColumnType(..) => "invalid column type",
        rusqlite::Error::Utf8Error(..) => "invalid utf-8 in column",
        _ => "sqlite error",
    }
}
