//! Persistence of the trust state in the queue's SQLite file, as one row.
//!
//! The row is the single source of truth for every decision that lets bytes
//! leave the device: each [`crate::Agent`] handle (and each process) keeps
//! only a cache of it, keyed by [`StoredTrust::generation`]. Writers bump the
//! generation inside the same IMMEDIATE transaction in which they read the
//! row ([`save`] is a compare-and-swap on it), so a stale handle can never
//! overwrite newer trust.

use rusqlite::{Connection, OptionalExtension, Transaction};

use crate::error::{Error, Result};

/// The persisted trust state, as raw bytes (re-verified on load).
#[derive(Debug, Clone, Default)]
pub struct StoredTrust {
    /// Root envelope in force.
    pub root: Vec<u8>,
    /// Config envelope in force, if any.
    pub config: Option<Vec<u8>>,
    /// Freeze-safe clock floor: newest `issued_at` seen (seconds).
    pub clock_floor: u64,
    /// The effective country: the signed-in account's (or, accounts never
    /// used, the queue's); each account's own is in `account_countries`.
    pub country: Option<String>,
    /// Highest config version ever accepted; survives a rotation that drops the config.
    pub config_version_floor: u64,
    /// SHA-256 of the payload of that version (an equal version must match it).
    pub config_floor_sha256: Option<Vec<u8>>,
    /// Configs of this version or older were observed expired (0: none).
    pub expired_config_version: u64,
    /// Roots of this version or older were observed expired (0: none).
    pub expired_root_version: u64,
    /// Bumped by every write; the cheap change detector of the cached copies.
    pub generation: i64,
    /// The signed-in account id (schema v5; `None`: none).
    pub account: Option<String>,
    /// The per-database key of the account stamps (`None`: accounts never used).
    pub account_key: Option<Vec<u8>>,
    /// The lowest root version from which [`chain`] is complete (schema v11;
    /// -1: a file from before it, whose chain starts at the root in force).
    pub chain_from: i64,
    /// Why the firmware root last replaced the stored trust (schema v11).
    pub trust_reset: Option<String>,
}

const COLS: &str = "root, config, clock_floor, country, config_version_floor,
    config_floor_sha256, expired_config_version, expired_root_version, generation,
    account, account_key, chain_from, trust_reset";

fn u64_col(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(int_col(r, i)?.max(0) as u64)
}

/// An INTEGER column read leniently: what an editor of the file put there in
/// another type (a REAL, text) reads as 0 rather than failing every open.
fn int_col(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<i64> {
    Ok(match r.get_ref(i)? {
        rusqlite::types::ValueRef::Integer(v) => v,
        _ => 0,
    })
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Loads the trust row, if the database has one.
pub fn load(conn: &Connection) -> Result<Option<StoredTrust>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM trust WHERE id = 1"))?
        .query_row([], |r| {
            Ok(StoredTrust {
                root: r.get(0)?,
                config: r.get(1)?,
                clock_floor: u64_col(r, 2)?,
                country: r.get(3)?,
                config_version_floor: u64_col(r, 4)?,
                config_floor_sha256: r.get(5)?,
                expired_config_version: u64_col(r, 6)?,
                expired_root_version: u64_col(r, 7)?,
                generation: int_col(r, 8)?,
                account: r.get(9)?,
                account_key: r.get(10)?,
                chain_from: int_col(r, 11)?,
                trust_reset: r.get(12)?,
            })
        })
        .optional()?)
}

/// The generation of the trust row (`None` before the first write): one
/// indexed read, far cheaper than re-verifying the signatures.
pub fn generation(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT generation FROM trust WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?)
}

/// SQLite's `PRAGMA data_version`: it changes when *another* connection (in
/// this process or any other) commits to the file, and never for this
/// connection's own commits. It needs no table read, so the per-buffer check
/// of a run costs one pragma while nothing else writes.
pub fn data_version(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))?)
}

/// Writes the whole trust row if it is still at generation `expected`
/// (`None`: no row yet) and returns the new generation. The caller read the
/// row in the same transaction, so a mismatch means a bug, not a race; it
/// fails rather than overwrite.
pub fn save(tx: &Transaction<'_>, t: &StoredTrust, expected: Option<i64>) -> Result<i64> {
    // Wraps rather than saturates: the next generation must differ from the
    // one every cached copy holds, or none of them would notice the write.
    let next = match expected {
        Some(g) if g < i64::MAX => g + 1,
        _ => 1,
    };
    let params = rusqlite::params![
        t.root,
        t.config,
        i64_of(t.clock_floor),
        t.country,
        i64_of(t.config_version_floor),
        t.config_floor_sha256,
        i64_of(t.expired_config_version),
        i64_of(t.expired_root_version),
        next,
        t.account,
        t.account_key,
        t.chain_from,
        t.trust_reset,
        expected,
    ];
    let n = match expected {
        None => tx.execute(
            &format!(
                "INSERT INTO trust (id, {COLS})
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT (id) DO NOTHING"
            ),
            &params[..13], // the INSERT binds no expected generation
        )?,
        Some(_) => tx.execute(
            "UPDATE trust SET root = ?1, config = ?2, clock_floor = ?3, country = ?4,
                    config_version_floor = ?5, config_floor_sha256 = ?6,
                    expired_config_version = ?7, expired_root_version = ?8, generation = ?9,
                    account = ?10, account_key = ?11, chain_from = ?12, trust_reset = ?13
             WHERE id = 1 AND generation = ?14",
            params,
        )?,
    };
    if n != 1 {
        return Err(Error::Internal(
            "trust row changed under its write lock".into(),
        ));
    }
    Ok(next)
}

/// The country remembered for the account of `stamp` (schema v11,
/// `account_countries`): what it had when it was last signed in.
pub fn account_country(conn: &Connection, stamp: &[u8]) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT country FROM account_countries WHERE stamp = ?1")?
        .query_row([stamp], |r| r.get(0))
        .optional()?)
}

/// Remembers `country` (upper-case ISO code) for the account of `stamp`.
pub fn set_account_country(tx: &Transaction<'_>, stamp: &[u8], country: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO account_countries (stamp, country) VALUES (?1, ?2)
         ON CONFLICT (stamp) DO UPDATE SET country = ?2",
        rusqlite::params![stamp, country],
    )?;
    Ok(())
}

/// One root of the stored chain (see `root_chain` in the schema).
#[derive(Debug, Clone)]
pub struct ChainRow {
    /// Root version.
    pub version: u64,
    /// Its envelope, verbatim.
    pub envelope: Vec<u8>,
    /// Whether its root keys or threshold differ from its predecessor's.
    pub changed: bool,
}

/// Most chain rows read (a real chain holds a few: the key changes and the newest).
const MAX_CHAIN_ROWS: i64 = 256;

/// The stored root chain, oldest first: at most [`MAX_CHAIN_ROWS`] rows of
/// at most 1 MiB each, whatever the file holds (a chain cut short this way
/// fails to verify rather than exhaust memory).
pub fn chain(conn: &Connection) -> Result<Vec<ChainRow>> {
    let mut st = conn.prepare_cached(
        "SELECT version, envelope, changed FROM root_chain
         WHERE length(envelope) <= 1048576 ORDER BY version LIMIT ?1",
    )?;
    let rows = st.query_map([MAX_CHAIN_ROWS], |r| {
        Ok(ChainRow {
            version: u64_col(r, 0)?,
            envelope: r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default(),
            changed: int_col(r, 2)? != 0,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Appends `row` to the chain and drops what it makes redundant: every root
/// below it whose keys did not change (the newest is always kept).
pub fn push_chain(tx: &Transaction<'_>, row: &ChainRow) -> Result<()> {
    tx.execute(
        "INSERT INTO root_chain (version, envelope, changed) VALUES (?1, ?2, ?3)
         ON CONFLICT (version) DO UPDATE SET envelope = ?2, changed = ?3",
        rusqlite::params![i64_of(row.version), row.envelope, row.changed as i64],
    )?;
    tx.execute(
        "DELETE FROM root_chain WHERE changed = 0 AND version < ?1",
        [i64_of(row.version)],
    )?;
    Ok(())
}

/// Drops the chain at and below `version` (the firmware root vouches for it).
pub fn prune_chain(tx: &Transaction<'_>, version: u64) -> Result<()> {
    tx.execute(
        "DELETE FROM root_chain WHERE version <= ?1",
        [i64_of(version)],
    )?;
    Ok(())
}

/// What a mirror's `config.json` looked like when last fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceEntry {
    /// `ETag`.
    pub etag: Option<String>,
    /// `Last-Modified`.
    pub last_modified: Option<String>,
    /// SHA-256 of the body those validators describe.
    pub body_sha256: Option<Vec<u8>>,
    /// When the mirror last answered (seconds, freeze-safe clock).
    pub checked_at: u64,
}

/// The cache entry of the config URL `url`, if any.
pub fn source_entry(conn: &Connection, url: &str) -> Result<Option<SourceEntry>> {
    Ok(conn
        .prepare_cached(
            "SELECT etag, last_modified, body_sha256, checked_at FROM source_cache WHERE url = ?1",
        )?
        .query_row([url], |r| {
            Ok(SourceEntry {
                etag: r.get(0)?,
                last_modified: r.get(1)?,
                body_sha256: r.get(2)?,
                checked_at: u64_col(r, 3)?,
            })
        })
        .optional()?)
}

/// Records what the mirror's config URL `url` answered.
pub fn save_source_entry(tx: &Transaction<'_>, url: &str, e: &SourceEntry) -> Result<()> {
    tx.execute(
        "INSERT INTO source_cache (url, etag, last_modified, body_sha256, checked_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (url) DO UPDATE SET etag = ?2, last_modified = ?3, body_sha256 = ?4,
                                         checked_at = ?5",
        rusqlite::params![
            url,
            e.etag,
            e.last_modified,
            e.body_sha256,
            i64_of(e.checked_at)
        ],
    )?;
    Ok(())
}

/// Forgets when the mirrors last answered, so the next refresh is due at
/// once (a refresh that installed roots but not the config).
pub fn forget_source_checks(tx: &Transaction<'_>) -> Result<()> {
    tx.execute("UPDATE source_cache SET checked_at = 0", [])?;
    Ok(())
}

/// When any mirror last answered (0: never).
pub fn last_source_check(conn: &Connection) -> Result<u64> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT max(checked_at) FROM source_cache")?
        .query_row([], |r| r.get(0))?;
    Ok(v.unwrap_or(0).max(0) as u64)
}
