//! Opening the database (pragmas, migrations) and the one write helper.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use super::schema;
use crate::error::Result;

/// How long a statement waits for another connection's write lock.
pub const BUSY_WAIT: Duration = Duration::from_secs(5);

/// The most bytes the WAL file keeps after a checkpoint reset it (4 MiB).
pub const JOURNAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

/// One SQLite connection with cloudsync's pragmas applied and schema migrated.
#[derive(Debug)]
pub struct Db {
    conn: Connection,
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
        // the write lock briefly; wait rather than fail.
        conn.busy_timeout(BUSY_WAIT)?;
        // Read-only first: this tells a non-SQLite file from a database, and
        // refuses a newer build's file before anything is written (switching
        // a rollback-journal file to WAL below rewrites its header).
        schema::check_version(&conn)?;
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
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::migrate(&mut conn)?;
        schema::enable_incremental_vacuum(&conn);
        Ok(Db { conn })
    }

    /// Runs `f` in an IMMEDIATE transaction that commits only if `f` succeeds.
    /// Every write in cloudsync goes through here.
    pub fn write<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Changes how long statements wait for another connection's lock (a run
    /// past its deadline waits briefly: the lease expiry recovers what it
    /// could not write).
    pub fn set_busy_wait(&self, wait: Duration) -> Result<()> {
        self.conn.busy_timeout(wait)?;
        Ok(())
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
