//! The backup rules stored with the items (issue 25, schema v12): changing
//! an item's rule, the queue's default rule, and reading a rule's columns.

use rusqlite::{params, Connection, Transaction};

use crate::error::{Error, Result};
use crate::queue::BackupRule;

/// Sets item `id`'s rule (`NotFound` if it is not in the queue), in any
/// state (runs apply rules from issue 25 part 2 on; DESIGN.md §7).
pub fn set_rule(tx: &Transaction<'_>, id: i64, rule: BackupRule) -> Result<()> {
    let (network_rule, charging_only) = rule.to_columns();
    let n = tx.execute(
        "UPDATE items SET network_rule = ?2, charging_only = ?3 WHERE id = ?1",
        params![id, network_rule, charging_only],
    )?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// The rule an item enqueued without one gets (`BackupRule::default()`
/// until [`set_default_rule`] changes it).
pub fn default_rule(conn: &Connection) -> Result<BackupRule> {
    let (n, c): (i64, i64) = conn
        .prepare_cached(
            "SELECT default_network_rule, default_charging_only FROM settings WHERE id = 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    BackupRule::from_columns(n, c).ok_or_else(|| Error::Internal("unknown default rule".into()))
}

/// Sets the queue's default rule, for items enqueued later without a rule
/// (every handle and process on the file); queued items keep theirs.
pub fn set_default_rule(tx: &Transaction<'_>, rule: BackupRule) -> Result<()> {
    let (network_rule, charging_only) = rule.to_columns();
    tx.execute(
        "UPDATE settings SET default_network_rule = ?1, default_charging_only = ?2 WHERE id = 1",
        params![network_rule, charging_only],
    )?;
    Ok(())
}

/// The rule in columns `i` (network_rule) and `i + 1` (charging_only) of a
/// row; a code this build does not know is a conversion error, not a guess.
pub(super) fn rule_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<BackupRule> {
    BackupRule::from_columns(r.get(i)?, r.get(i + 1)?).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Integer,
            "unknown network rule".into(),
        )
    })
}
