//! Opening the database (pragmas, migrations) and the one write helper.
//!
//! Opening writes nothing unless something must change (a new file, a
//! migration, the one-time `VACUUM` try), so it never waits for another
//! connection's write lock on a file that is up to date. On storage that
//! cannot be written the connection is read-only (SQLite reopens the file
//! read-only by itself; reads need the `-wal` and `-shm` files to exist or
//! the directory to be writable: see docs/DESIGN.md) and every write fails
//! `storage_unavailable` at once.

use std::cell::Cell;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use super::schema;
use super::wait::{self, Bound, Scope};
use crate::error::{Error, ErrorKind, Result};

pub use super::wait::BUSY_WAIT;

/// The most bytes the WAL file keeps after a checkpoint reset it (4 MiB).
pub const JOURNAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

/// One SQLite connection with cloudsync's pragmas applied and schema migrated.
#[derive(Debug)]
pub struct Db {
    conn: Connection,
    /// The budget of this connection's writes ([`Self::set_busy_wait`]).
    wait: Cell<Duration>,
    /// The deadline of the run holding the queue through this connection.
    bound: Option<Bound>,
    /// The file (or its storage) cannot be written: writes fail at once.
    read_only: bool,
}

impl Db {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path) -> Result<Db> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)?;
        Self::setup(conn)
    }

    /// An in-memory database (tests, dry runs).
    pub fn open_in_memory() -> Result<Db> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Db> {
        // Another process (a second CLI, a crashed runner's successor) may hold
        // the write lock briefly; wait rather than fail, within the limits of
        // the calling thread (a run's deadline and cancel: `super::wait`).
        conn.busy_handler(Some(wait::busy))?;
        // Read-only first: this tells a non-SQLite file from a database, and
        // refuses a newer build's file before anything is written (switching
        // a rollback-journal file to WAL below rewrites its header).
        let version = schema::check_version(&conn)?;
        // SQLite opens a file it may not write read-only (the unix VFS falls
        // back by itself; a second open with SQLITE_OPEN_READONLY would meet
        // the same `-shm` rules): serve reads, write nothing.
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            if version != schema::CURRENT_VERSION {
                return Err(Error::Storage {
                    kind: ErrorKind::StorageUnavailable,
                    reason: "the database file is read-only and needs an upgrade".into(),
                });
            }
            log::warn!("the database file is read-only: reads only");
            return Ok(Db::new(conn, true));
        }
        // Before anything can create a table: a new file is made with incremental
        // auto-vacuum, so pruning gives pages back. Only on a new file: on one that
        // has it, setting it again rewrites the header (a write at every open); an
        // older file switches by the one-time VACUUM after the migrations.
        let fresh: bool =
            conn.query_row("SELECT count(*) = 0 FROM sqlite_master", [], |r| r.get(0))?;
        if fresh {
            conn.pragma_update(None, "auto_vacuum", 2)?;
        }
        // WAL lets readers (stats from the UI thread) run beside the uploader.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        // A checkpoint that resets the WAL also cuts the file back to this size, so a
        // big batch does not leave a big WAL behind for as long as the handle lives.
        let _limit: i64 = conn.query_row(
            &format!("PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}"),
            [],
            |r| r.get(0),
        )?;
        // FULL: a returned enqueue survives power loss, not just process death.
        conn.pragma_update(None, "synchronous", "FULL")?;
        schema::migrate(&mut conn)?;
        {
            // Best effort, tried again at a later open: not worth a long wait.
            let _brief = Scope::within(wait::SHORT_WAIT);
            schema::enable_incremental_vacuum(&conn);
        }
        Ok(Db::new(conn, false))
    }

    fn new(conn: Connection, read_only: bool) -> Db {
        Db {
            conn,
            wait: Cell::new(BUSY_WAIT),
            bound: None,
            read_only,
        }
    }

    /// Whether the file could not be opened for writing: reads work, every
    /// write fails `storage_unavailable` (reopen once storage is writable).
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Runs `f` in one read transaction (a consistent snapshot across its
    /// statements); takes no write lock, so it never waits for a writer.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let tx = self.conn.unchecked_transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` in an IMMEDIATE transaction that commits only if `f` succeeds.
    /// Every write in cloudsync goes through here.
    pub fn write<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        if self.read_only {
            return Err(read_only_error());
        }
        // The lock wait is at BEGIN IMMEDIATE (a WAL commit takes no other lock).
        let waits = Scope::bounded(self.wait.get(), self.bound.as_ref());
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        drop(waits);
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Like [`Self::write`], but the commit is not flushed to storage before it
    /// returns (`synchronous = NORMAL` for this one transaction): it survives
    /// the process being killed, and a power cut may roll it back — together
    /// with everything after it, never leaving a hole (WAL frames are
    /// recovered as a prefix). For the steps of an upload whose loss costs at
    /// most a repeated request (claim, idempotency key, session URL, offsets):
    /// the next durable commit flushes them too. Enqueues, trust and the
    /// settlement of an upload use [`Self::write`].
    pub fn write_light<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        if self.read_only {
            return Err(read_only_error());
        }
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let out = self.write(f);
        let restored = self.conn.pragma_update(None, "synchronous", "FULL");
        let out = out?;
        restored?;
        Ok(out)
    }

    /// Flushes the write-ahead log to storage (a passive checkpoint syncs it
    /// first): makes earlier [`Self::write_light`] commits durable.
    pub fn sync(&self) -> Result<()> {
        let _: (i64, i64, i64) =
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
        Ok(())
    }

    /// Changes how long this connection's writes ([`Self::write`],
    /// [`Self::write_light`]) wait for another connection's lock (default
    /// [`BUSY_WAIT`]); a narrower limit of the calling thread still wins
    /// (`super::wait`).
    pub fn set_busy_wait(&self, wait: Duration) -> Result<()> {
        self.wait.set(wait);
        Ok(())
    }

    /// While a run holds the queue through this connection: its deadline
    /// and cancel flag bound the writes of every thread on it (`None` when
    /// the run ends).
    pub(crate) fn bind_to_run(&mut self, bound: Option<Bound>) {
        self.bound = bound;
    }

    /// Read-only access.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Caps the file size (pages); used to simulate a full disk in tests.
    pub fn set_max_page_count(&self, pages: u64) -> Result<()> {
        let _: i64 = self
            .conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                r.get(0)
            })?;
        Ok(())
    }
}

/// A write refused because the connection is read-only.
pub(crate) fn read_only_error() -> Error {
    Error::Storage {
        kind: ErrorKind::StorageUnavailable,
        reason: "the database file is read-only".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(db: &Db) -> i64 {
        db.conn()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_light_commit_is_committed_and_the_next_one_is_durable_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.db");
        let mut db = Db::open(&p).unwrap();
        assert_eq!(synchronous(&db), 2, "FULL");
        db.write_light(|tx| {
            tx.execute("UPDATE lease SET owner = owner", [])?;
            tx.execute(
                "INSERT INTO terminations (region, upload_url) VALUES ('in', 'u')",
                [],
            )?;
            Ok(())
        })
        .unwrap();
        assert_eq!(synchronous(&db), 2, "FULL again after a light commit");
        // A failed light transaction rolls back and restores FULL too.
        let e = db
            .write_light(|tx| {
                tx.execute(
                    "INSERT INTO terminations (region, upload_url) VALUES ('in', 'v')",
                    [],
                )?;
                Err::<(), _>(crate::error::Error::NotFound)
            })
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        assert_eq!(synchronous(&db), 2);
        db.sync().unwrap();
        // Another connection sees exactly the committed row.
        let other = Db::open(&p).unwrap();
        let urls: Vec<String> = other
            .conn()
            .prepare("SELECT upload_url FROM terminations")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(urls, ["u"]);
    }
}
