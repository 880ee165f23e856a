//! Persistence of the trust state (root, config, clock floor, country) in
//! the queue's SQLite file, as one row. Callers write inside `Db::write`, so
//! a rejected install never reaches the disk.

use rusqlite::{Connection, OptionalExtension, Transaction};

use crate::error::Result;

/// The persisted trust state, as raw bytes (re-verified on load).
#[derive(Debug, Clone, Default)]
pub struct StoredTrust {
    /// Root envelope in force.
    pub root: Vec<u8>,
    /// Config envelope in force, if any.
    pub config: Option<Vec<u8>>,
    /// Freeze-safe clock floor: newest `issued_at` seen (seconds).
    pub clock_floor: u64,
    /// Account country (upper-case ISO code).
    pub country: Option<String>,
}

/// Loads the trust row, if the database has one.
pub fn load(conn: &Connection) -> Result<Option<StoredTrust>> {
    Ok(conn
        .query_row(
            "SELECT root, config, clock_floor, country FROM trust WHERE id = 1",
            [],
            |r| {
                Ok(StoredTrust {
                    root: r.get(0)?,
                    config: r.get(1)?,
                    clock_floor: r.get::<_, i64>(2)?.max(0) as u64,
                    country: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// Writes the whole trust row.
pub fn save(tx: &Transaction<'_>, t: &StoredTrust) -> Result<()> {
    tx.execute(
        "INSERT INTO trust (id, root, config, clock_floor, country) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET root = ?1, config = ?2, clock_floor = ?3, country = ?4",
        rusqlite::params![t.root, t.config, t.clock_floor as i64, t.country],
    )?;
    Ok(())
}
