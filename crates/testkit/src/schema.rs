//! Databases at an old schema version, built the way build N left them: the
//! first N steps of the library's own [`MIGRATIONS`] (the one description of
//! every schema version), applied with rusqlite, not through the crate's open
//! path, and `user_version` set to N. `tests/fixtures/schema_v1.db` is the
//! one database written by another tool (the `sqlite3` CLI).

use std::path::{Path, PathBuf};

use cloudsync::queue::schema::MIGRATIONS;
use rusqlite::Connection;

/// A database at schema `version` at `path` (rollback journal, as SQLite
/// creates it), open for the test to add the rows that build would have
/// written.
pub fn database_at(version: usize, path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    apply(&c, version);
    c
}

/// [`database_at`] in WAL mode, switched on before the first table (as the
/// library's own files are).
pub fn wal_database_at(version: usize, path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    apply(&c, version);
    c
}

fn apply(c: &Connection, version: usize) {
    assert!(
        version <= MIGRATIONS.len(),
        "schema v{version} does not exist yet"
    );
    for step in &MIGRATIONS[..version] {
        c.execute_batch(step).unwrap();
    }
    c.pragma_update(None, "user_version", version as i64)
        .unwrap();
}

/// The column names of `table` in the database at `path`, in order. Read
/// from a statement's result columns, not `pragma_table_info`: the SQLite
/// the phone ships (and the tests use) is built without the schema pragmas
/// (`SQLITE_OMIT_SCHEMA_PRAGMAS`, `.cargo/config.toml`).
pub fn columns(path: &Path, table: &str) -> Vec<String> {
    let c = Connection::open(path).expect("open the database");
    let st = c
        .prepare(&format!("SELECT * FROM {table} LIMIT 0"))
        .expect("the table exists");
    st.column_names().into_iter().map(String::from).collect()
}

/// `PRAGMA user_version` of the database at `path`.
pub fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// A file of the workspace's `tests/golden/`.
pub fn golden(name: &str) -> PathBuf {
    crate::repo().join("tests/golden").join(name)
}

/// A file of the workspace's `tests/fixtures/` (`schema_v1.db`).
pub fn fixture(name: &str) -> PathBuf {
    crate::repo().join("tests/fixtures").join(name)
}

/// The golden root version 1 (`tests/golden/root_v1.json`): the root the
/// schema fixtures trust.
pub fn root_v1() -> Vec<u8> {
    std::fs::read(golden("root_v1.json")).unwrap()
}
