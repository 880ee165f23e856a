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

    /// Like [`Self::write`], but the commit is not flushed to storage before it
    /// returns (`synchronous = NORMAL` for this one transaction): it survives
    /// the process being killed, and a power cut may roll it back — together
    /// with everything after it, never leaving a hole (WAL frames are
    /// recovered as a prefix). For the steps of an upload whose loss costs at
    /// most a repeated request (claim, idempotency key, session URL, offsets):
    /// the next durable commit flushes them too. Enqueues, trust and the
    /// settlement of an upload use [`Self::write`].
    pub fn write_light<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
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
