//! Versioned schema. `PRAGMA user_version` holds the version; each step in
//! [`MIGRATIONS`] upgrades from the previous one inside one transaction.
//! Never edit a shipped step: add a new one and a migration test.

use rusqlite::Connection;

use crate::error::{Error, Result};

/// Step `i` upgrades version `i` to version `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // v1: the trust store (signed root and config, clock floor, account country).
    "CREATE TABLE trust (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        root        BLOB NOT NULL,
        config      BLOB,
        clock_floor INTEGER NOT NULL DEFAULT 0,
        country     TEXT
    );",
    // v2: the upload queue, the audit trail, the runner lease, pending terminations.
    "CREATE TABLE items (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        path             TEXT NOT NULL,
        service          TEXT NOT NULL,
        priority         INTEGER NOT NULL DEFAULT 0,
        size             INTEGER NOT NULL,
        mtime_ns         INTEGER NOT NULL,
        sha256           BLOB,
        region           TEXT,
        state            TEXT NOT NULL CHECK (state IN ('pending','uploading','failed','dead','held')),
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  INTEGER NOT NULL,
        upload_url       TEXT,
        upload_len       INTEGER,
        upload_mtime_ns  INTEGER,
        upload_sha256    BLOB,
        confirmed_offset INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL
    );
    CREATE INDEX items_due ON items (region, priority DESC, next_attempt_at, id)
        WHERE state IN ('pending', 'failed');
    CREATE UNIQUE INDEX items_active_path ON items (path, service)
        WHERE state IN ('pending', 'uploading', 'failed', 'held');
    CREATE INDEX items_state ON items (state, region);
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id     INTEGER NOT NULL,
        service     TEXT NOT NULL,
        region      TEXT NOT NULL,
        host        TEXT NOT NULL,
        peer_ip     TEXT,
        bytes       INTEGER NOT NULL,
        sha256      BLOB NOT NULL,
        finished_at INTEGER NOT NULL
    );
    CREATE TABLE lease (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        owner      TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE terminations (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        region     TEXT NOT NULL,
        upload_url TEXT NOT NULL
    );",
    // v3: trust that holds across handles and processes: a generation counter
    // (cheap change detection, compare-and-swap writes), the config version
    // floor kept apart from the config row (a root rotation may drop the
    // config, never the floor), and sticky expiry of configs and roots.
    "ALTER TABLE trust ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE trust ADD COLUMN config_version_floor INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE trust ADD COLUMN config_floor_sha256 BLOB;
    ALTER TABLE trust ADD COLUMN expired_config_version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE trust ADD COLUMN expired_root_version INTEGER NOT NULL DEFAULT 0;
    -- A process that opened the file before this migration still writes the
    -- row without the counter: bump it for them, so cached copies notice.
    CREATE TRIGGER trust_generation_bump AFTER UPDATE ON trust
    WHEN NEW.generation = OLD.generation
    BEGIN
        UPDATE trust SET generation = OLD.generation + 1 WHERE id = NEW.id;
    END;",
    // v4: honest numbers. `audit.sent_bytes`: body bytes this client sent for the
    // upload (bytes re-sent after a cut count again; 0 when the server already held the
    // content), beside `bytes`, the confirmed length; NULL on rows written before v4,
    // whose clients did not count. `items.upload_sent`: the running count of the session
    // in progress, so a session resumed by a later run keeps counting.
    "ALTER TABLE audit ADD COLUMN sent_bytes INTEGER;
    ALTER TABLE items ADD COLUMN upload_sent INTEGER NOT NULL DEFAULT 0;",
    // v5: accounts. `trust.account`: the signed-in account (NULL: none), needed in clear to
    // ask the app's credential provider; `trust.account_key`: a random per-database key,
    // made at the first `set_account`, whose presence also means "accounts are in use"
    // (then a NULL account is a sign-out). `items.account`: HMAC-SHA256 of the account id
    // under that key (never the id: the queue outlives a sign-in, and a file copied into a
    // bug report must not name past accounts nor link them across devices).
    // `items.held_reason`: why a held item waits ('region' or 'account'). One active item per
    // path, service and account: another account's copy of a file is another item.
    // `terminations.service` / `.account`: a DELETE carries the credentials of the service
    // and account that created the upload. Rows from before v5 stay anonymous (NULL).
    "ALTER TABLE trust ADD COLUMN account TEXT;
    ALTER TABLE trust ADD COLUMN account_key BLOB;
    ALTER TABLE items ADD COLUMN account BLOB;
    ALTER TABLE items ADD COLUMN held_reason TEXT CHECK (held_reason IN ('region','account'));
    UPDATE items SET held_reason = 'region' WHERE state = 'held';
    ALTER TABLE terminations ADD COLUMN service TEXT;
    ALTER TABLE terminations ADD COLUMN account BLOB;
    DROP INDEX items_active_path;
    CREATE UNIQUE INDEX items_active_path ON items (path, service, ifnull(account, x''))
        WHERE state IN ('pending', 'uploading', 'failed', 'held');",
    // v6: what the agent last fetched from each of the root's mirrors (`sources`): the
    // validators of its `config.json` (for a conditional request), the SHA-256 of the body
    // they describe (sent only while that very config is in force) and when the mirror
    // last answered (the refresh schedule).
    "CREATE TABLE source_cache (
        url           TEXT PRIMARY KEY,
        etag          TEXT,
        last_modified TEXT,
        body_sha256   BLOB,
        checked_at    INTEGER NOT NULL
    );",
    // v7: `items.run_id`: the run (its lease owner id) that last claimed the item. A run
    // picks only items it has not tried yet, by this column, instead of passing the ids of
    // every item it tried into each pick (which made a run quadratic in its items).
    "ALTER TABLE items ADD COLUMN run_id TEXT;",
    // v8: uploads read the file once, so no content hash exists before the `POST`. A
    // session now belongs to one version of the source named by its whole fingerprint
    // (`upload_print`: size, mtime, ctime, inode, device), and its creation request carries
    // an idempotency key (`upload_key`) persisted with that fingerprint before the `POST`
    // goes out, so a retried creation after a crash finds the upload it made. A session
    // stored by v7 has no fingerprint and is terminated and started over once.
    "ALTER TABLE items ADD COLUMN upload_key TEXT;
    ALTER TABLE items ADD COLUMN upload_print BLOB;",
    // v9: status in O(1) and audit retention (issue 16). `counters`: one row per item state
    // (`n` items, `bytes_left` = the sum of max(size - confirmed_offset, 0)) and one for the
    // audit rows, kept by triggers in the very transaction that changes the rows they count,
    // whichever statement does it; initialised here from the rows that exist.
    // `items_next_due`: `min(next_attempt_at)` of waiting items is one index seek.
    // `settings`: the audit retention in days (one value for every handle and process on the
    // file) and how often the one-time VACUUM that turns on incremental auto-vacuum was tried.
    // `audit_finished`: pruning finds the oldest rows without a scan.
    "CREATE TABLE counters (
        name       TEXT PRIMARY KEY,
        n          INTEGER NOT NULL,
        bytes_left INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO counters (name, n, bytes_left) VALUES
        ('pending', 0, 0), ('uploading', 0, 0), ('failed', 0, 0), ('dead', 0, 0),
        ('held', 0, 0), ('audit', 0, 0);
    UPDATE counters SET
        n = (SELECT count(*) FROM items WHERE state = counters.name),
        bytes_left = (SELECT coalesce(sum(max(size - confirmed_offset, 0)), 0) FROM items
                      WHERE state = counters.name)
    WHERE name <> 'audit';
    UPDATE counters SET n = (SELECT count(*) FROM audit) WHERE name = 'audit';
    CREATE TRIGGER items_count_insert AFTER INSERT ON items
    BEGIN
        UPDATE counters SET n = n + 1,
            bytes_left = bytes_left + max(NEW.size - NEW.confirmed_offset, 0)
        WHERE name = NEW.state;
    END;
    CREATE TRIGGER items_count_delete AFTER DELETE ON items
    BEGIN
        UPDATE counters SET n = n - 1,
            bytes_left = bytes_left - max(OLD.size - OLD.confirmed_offset, 0)
        WHERE name = OLD.state;
    END;
    CREATE TRIGGER items_count_update AFTER UPDATE OF state, size, confirmed_offset ON items
    WHEN OLD.state IS NOT NEW.state OR OLD.size IS NOT NEW.size
        OR OLD.confirmed_offset IS NOT NEW.confirmed_offset
    BEGIN
        UPDATE counters SET n = n - 1,
            bytes_left = bytes_left - max(OLD.size - OLD.confirmed_offset, 0)
        WHERE name = OLD.state;
        UPDATE counters SET n = n + 1,
            bytes_left = bytes_left + max(NEW.size - NEW.confirmed_offset, 0)
        WHERE name = NEW.state;
    END;
    CREATE TRIGGER audit_count_insert AFTER INSERT ON audit
    BEGIN
        UPDATE counters SET n = n + 1 WHERE name = 'audit';
    END;
    CREATE TRIGGER audit_count_delete AFTER DELETE ON audit
    BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'audit';
    END;
    CREATE INDEX items_next_due ON items (next_attempt_at) WHERE state IN ('pending', 'failed');
    CREATE INDEX audit_finished ON audit (finished_at);
    CREATE TABLE settings (
        id                   INTEGER PRIMARY KEY CHECK (id = 1),
        audit_retention_days INTEGER NOT NULL DEFAULT 400
            CHECK (audit_retention_days BETWEEN 1 AND 36500),
        vacuum_attempts      INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO settings (id) VALUES (1);",
    // v10: `items_state_id`: a page of one state's items (`list(state, after_id, limit)`) is
    // one range of this index, at 1,000 rows as at 1,000,000; `items_state (state, region)`
    // keeps ids in order only within a region, so such a page read and sorted every row of
    // the state.
    "CREATE INDEX items_state_id ON items (state, id);",
    // v11: residency anchored in the firmware root and the account (issue 21).
    // `root_chain`: the roots above the firmware root that the stored root was reached
    // through, kept small (the roots whose root keys or threshold changed, plus the newest),
    // so a firmware root older than the stored one can verify it at open.
    // `trust.chain_from`: the lowest root version from which that chain is complete; a file
    // from before this step has no chain, so it starts at the root in force and a firmware
    // root below it re-walks the mirrors before the stored root is trusted again.
    // `trust.trust_reset`: why the firmware root last replaced what the file held (tampered,
    // restored or planted trust), shown to the app until a config is accepted again.
    // `account_countries`: the country of each account, by its stamp (never the id), so a
    // new account never inherits the previous account's country.
    // The v3 trigger bumps a generation nobody bumped; at i64::MAX its `+ 1`
    // would turn the column into a REAL (every open failing after): it now
    // wraps, as `store::save` does.
    "DROP TRIGGER trust_generation_bump;
    CREATE TRIGGER trust_generation_bump AFTER UPDATE ON trust
    WHEN NEW.generation = OLD.generation
    BEGIN
        UPDATE trust SET generation =
            CASE WHEN OLD.generation < 9223372036854775807 THEN OLD.generation + 1 ELSE 1 END
        WHERE id = NEW.id;
    END;
    CREATE TABLE root_chain (
        version  INTEGER PRIMARY KEY,
        envelope BLOB NOT NULL,
        changed  INTEGER NOT NULL CHECK (changed IN (0, 1))
    );
    ALTER TABLE trust ADD COLUMN chain_from INTEGER NOT NULL DEFAULT -1;
    ALTER TABLE trust ADD COLUMN trust_reset TEXT;
    CREATE TABLE account_countries (
        stamp   BLOB PRIMARY KEY,
        country TEXT NOT NULL
    );",
    // v12: the user's backup rules (issue 25). `items.network_rule` (`NetworkRule`'s code:
    // 0 any, 1 not_roaming, 2 unmetered) and `items.charging_only`: when the item may go;
    // existing items keep today's behaviour (any network, charging or not). The per-queue
    // default for items enqueued without a rule is in `settings`. `rule_counters`: for the
    // active items (pending, uploading, failed), `n` and `bytes_left` per rule class
    // (network_rule, charging_only), kept by triggers beside the v9 ones (which stay as
    // they are) so `stats` says in O(1) how much waits for Wi-Fi, a home network or the
    // charger; initialised here from the rows (all in class (0, 0)).
    "ALTER TABLE items ADD COLUMN network_rule INTEGER NOT NULL DEFAULT 0
        CHECK (network_rule IN (0, 1, 2));
    ALTER TABLE items ADD COLUMN charging_only INTEGER NOT NULL DEFAULT 0
        CHECK (charging_only IN (0, 1));
    ALTER TABLE settings ADD COLUMN default_network_rule INTEGER NOT NULL DEFAULT 0
        CHECK (default_network_rule IN (0, 1, 2));
    ALTER TABLE settings ADD COLUMN default_charging_only INTEGER NOT NULL DEFAULT 0
        CHECK (default_charging_only IN (0, 1));
    CREATE TABLE rule_counters (
        network_rule  INTEGER NOT NULL,
        charging_only INTEGER NOT NULL,
        n             INTEGER NOT NULL,
        bytes_left    INTEGER NOT NULL,
        PRIMARY KEY (network_rule, charging_only)
    ) WITHOUT ROWID;
    INSERT INTO rule_counters (network_rule, charging_only, n, bytes_left) VALUES
        (0, 0, 0, 0), (0, 1, 0, 0), (1, 0, 0, 0), (1, 1, 0, 0), (2, 0, 0, 0), (2, 1, 0, 0);
    UPDATE rule_counters SET
        n = (SELECT count(*) FROM items WHERE state IN ('pending', 'uploading', 'failed')
               AND network_rule = rule_counters.network_rule
               AND charging_only = rule_counters.charging_only),
        bytes_left = (SELECT coalesce(sum(max(size - confirmed_offset, 0)), 0) FROM items
                      WHERE state IN ('pending', 'uploading', 'failed')
                        AND network_rule = rule_counters.network_rule
                        AND charging_only = rule_counters.charging_only);
    CREATE TRIGGER items_rule_count_insert AFTER INSERT ON items
    WHEN NEW.state IN ('pending', 'uploading', 'failed')
    BEGIN
        UPDATE rule_counters SET n = n + 1,
            bytes_left = bytes_left + max(NEW.size - NEW.confirmed_offset, 0)
        WHERE network_rule = NEW.network_rule AND charging_only = NEW.charging_only;
    END;
    CREATE TRIGGER items_rule_count_delete AFTER DELETE ON items
    WHEN OLD.state IN ('pending', 'uploading', 'failed')
    BEGIN
        UPDATE rule_counters SET n = n - 1,
            bytes_left = bytes_left - max(OLD.size - OLD.confirmed_offset, 0)
        WHERE network_rule = OLD.network_rule AND charging_only = OLD.charging_only;
    END;
    CREATE TRIGGER items_rule_count_update
    AFTER UPDATE OF state, size, confirmed_offset, network_rule, charging_only ON items
    WHEN OLD.state IS NOT NEW.state OR OLD.size IS NOT NEW.size
        OR OLD.confirmed_offset IS NOT NEW.confirmed_offset
        OR OLD.network_rule IS NOT NEW.network_rule OR OLD.charging_only IS NOT NEW.charging_only
    BEGIN
        UPDATE rule_counters SET n = n - 1,
            bytes_left = bytes_left - max(OLD.size - OLD.confirmed_offset, 0)
        WHERE network_rule = OLD.network_rule AND charging_only = OLD.charging_only
          AND OLD.state IN ('pending', 'uploading', 'failed');
        UPDATE rule_counters SET n = n + 1,
            bytes_left = bytes_left + max(NEW.size - NEW.confirmed_offset, 0)
        WHERE network_rule = NEW.network_rule AND charging_only = NEW.charging_only
          AND NEW.state IN ('pending', 'uploading', 'failed');
    END;",
];

/// The schema version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Reads the schema version without writing anything: `SchemaTooNew` if a
/// newer build wrote the file, `StorageCorrupt` if the version is negative.
/// [`super::Db`] calls it before any pragma that could rewrite the file.
pub fn check_version(conn: &Connection) -> Result<i64> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > CURRENT_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: CURRENT_VERSION,
        });
    }
    if found < 0 {
        return Err(Error::Storage {
            kind: crate::ErrorKind::StorageCorrupt,
            reason: "negative schema version".into(),
        });
    }
    Ok(found)
}

/// Brings the database to [`CURRENT_VERSION`]. Fails with `SchemaTooNew`
/// (touching nothing) if a newer build wrote it.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let found = check_version(conn)?;
    for (i, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Re-check under the write lock: another process may have migrated meanwhile.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// How often opening a file made before v9 tries the one-time `VACUUM` that turns on
/// incremental auto-vacuum before giving up (it needs the write lock and free space for a
/// copy of the file; a file that keeps failing must not pay for it at every open).
const VACUUM_TRIES: i64 = 3;

/// Turns on incremental auto-vacuum (so pruned audit rows give their pages back to the file
/// system) in a file created without it, by the one-time `VACUUM` that such a switch needs.
/// A new file is created with it ([`super::Db`] sets the pragma before any table exists), so
/// this does nothing there, nor on any later open of a switched file. Best effort: `VACUUM`
/// cannot run inside a transaction and may meet another connection's lock or a full disk;
/// the file stays as it was (its free pages are still reused) and a later open tries again,
/// at most [`VACUUM_TRIES`] times in all, counted in `settings` before each try.
pub fn enable_incremental_vacuum(conn: &Connection) {
    let mode: i64 = match conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)) {
        Ok(m) => m,
        Err(e) => return log::warn!("auto_vacuum unreadable ({})", Error::from(e).kind()),
    };
    if mode == 2 {
        return;
    }
    let tried = conn.execute(
        "UPDATE settings SET vacuum_attempts = vacuum_attempts + 1 WHERE vacuum_attempts < ?1",
        [VACUUM_TRIES],
    );
    match tried {
        Ok(1) => {}
        Ok(_) => return,
        Err(e) => return log::warn!("vacuum not tried ({})", Error::from(e).kind()),
    }
    let switched = conn.execute_batch("PRAGMA auto_vacuum = 2; VACUUM;");
    if let Err(e) = switched {
        return log::warn!(
            "one-time VACUUM failed ({}); tried again at a later open",
            Error::from(e).kind()
        );
    }
    // VACUUM wrote the whole file into the WAL: give that space back now.
    if let Err(e) = checkpoint_truncate(conn) {
        log::warn!("checkpoint after VACUUM failed ({})", e.kind());
    }
}

/// Copies the WAL into the database and truncates it to zero bytes
/// (`wal_checkpoint(TRUNCATE)`); `Ok(false)` when a reader or writer of another connection
/// kept it from finishing (the WAL is then bounded by `journal_size_limit` anyway).
pub fn checkpoint_truncate(conn: &Connection) -> Result<bool> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    Ok(busy == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_db_reaches_current_version_and_is_idempotent() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, CURRENT_VERSION);
    }

    #[test]
    fn newer_schema_is_refused_untouched() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
        let e = migrate(&mut c).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::SchemaTooNew);
        let tables: i64 = c
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 0);
    }
}
