//! What `status` shows, at the same cost for a thousand items as for a
//! million: counts per state, audit rows and bytes left come from the
//! `counters` table (schema v9), which triggers keep in the very transaction
//! that inserts, deletes or changes the rows they count, whatever statement
//! does it; `next_due_at` is one seek in the `items_next_due` index. The old
//! full count is kept as [`stats_by_scan`], the reference the tests compare
//! the counters with. The active items by backup rule class come from
//! `rule_counters` (schema v12), kept the same way.

use rusqlite::Connection;
use serde::Serialize;

use crate::error::Result;
use crate::queue::{BackupRule, NetworkRule, State};

/// Counts per state and bytes still to send.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    /// Waiting items.
    pub pending: u64,
    /// Items claimed by a runner.
    pub uploading: u64,
    /// Items waiting for a retry.
    pub failed: u64,
    /// Items that gave up.
    pub dead: u64,
    /// Items of another region.
    pub held: u64,
    /// Finished uploads still in the audit trail (rows older than the audit
    /// retention are pruned, and no longer counted).
    pub done: u64,
    /// Bytes of pending/uploading/failed items not yet confirmed.
    pub pending_bytes: u64,
    /// When the next pending or failed item is due, ms since the epoch (in
    /// the past: due now); `None` when none waits.
    pub next_due_at: Option<i64>,
    /// The pending/uploading/failed items by what their backup rule needs.
    pub rules: RuleStats,
}

/// A number of items and their bytes not yet confirmed.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Backlog {
    /// Items.
    pub items: u64,
    /// Bytes of theirs not yet confirmed (`pending_bytes`' measure).
    pub bytes: u64,
}

impl Backlog {
    fn add(&mut self, other: Backlog) {
        self.items = self.items.saturating_add(other.items);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// The active (pending, uploading, failed) items by what their backup rule
/// needs, whatever the phone's state: the three overlap (an item that needs
/// Wi-Fi and the charger is in `unmetered` and in `charging`); the items of
/// each rule class are in [`RuleStats::class`]. What waits, and why, for a
/// given phone state is part 2 of issue 25 (not built yet).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RuleStats {
    /// Items whose rule needs an unmetered network.
    pub unmetered: Backlog,
    /// Items whose rule is `not_roaming`.
    pub not_roaming: Backlog,
    /// Items that go only while the phone charges.
    pub charging: Backlog,
    /// Per class, at [`RuleStats::slot`].
    #[serde(skip)]
    classes: [Backlog; 6],
}

impl RuleStats {
    /// The active items whose rule is `rule`.
    pub fn class(&self, rule: BackupRule) -> Backlog {
        self.classes[Self::slot(rule)]
    }

    fn slot(rule: BackupRule) -> usize {
        rule.network.code() as usize * 2 + usize::from(rule.charging_only)
    }

    /// One row of `rule_counters` (or of the scan); a class this build does
    /// not know is left out.
    fn put(&mut self, network_rule: i64, charging_only: i64, n: i64, bytes_left: i64) {
        let Some(rule) = BackupRule::from_columns(network_rule, charging_only) else {
            return;
        };
        let b = Backlog {
            items: n.max(0) as u64,
            bytes: bytes_left.max(0) as u64,
        };
        self.classes[Self::slot(rule)].add(b);
        match rule.network {
            NetworkRule::Unmetered => self.unmetered.add(b),
            NetworkRule::NotRoaming => self.not_roaming.add(b),
            NetworkRule::Any => {}
        }
        if rule.charging_only {
            self.charging.add(b);
        }
    }

    /// Reads rows of (network_rule, charging_only, n, bytes_left).
    fn read(conn: &Connection, sql: &str) -> Result<RuleStats> {
        let mut s = RuleStats::default();
        let mut st = conn.prepare_cached(sql)?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        for row in rows {
            let (network_rule, charging_only, n, bytes_left) = row?;
            s.put(network_rule, charging_only, n, bytes_left);
        }
        Ok(s)
    }
}

impl QueueStats {
    /// One row of the counters table: a state's name (`audit` for the
    /// done items the audit table holds). A name this build does not know
    /// (a newer schema's) is left out.
    fn put(&mut self, name: &str, n: i64, bytes_left: i64) {
        let state = match name {
            "audit" => Some(State::Done),
            _ => State::from_name(name),
        };
        let Some(state) = state else { return };
        let n = n.max(0) as u64;
        let slot = match state {
            State::Pending => &mut self.pending,
            State::Uploading => &mut self.uploading,
            State::Failed => &mut self.failed,
            State::Dead => &mut self.dead,
            State::Held => &mut self.held,
            State::Done => &mut self.done,
        };
        *slot = n;
        if matches!(state, State::Pending | State::Uploading | State::Failed) {
            self.pending_bytes = self.pending_bytes.saturating_add(bytes_left.max(0) as u64);
        }
    }
}

/// Queue statistics from the counters: six rows of a small table, six of
/// another and one index seek, whatever the size of the queue and the audit
/// trail.
pub fn stats(conn: &Connection) -> Result<QueueStats> {
    let mut s = QueueStats::default();
    let mut st = conn.prepare_cached("SELECT name, n, bytes_left FROM counters")?;
    let rows = st.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get(2)?))
    })?;
    for row in rows {
        let (name, n, bytes_left) = row?;
        s.put(&name, n, bytes_left);
    }
    s.next_due_at = next_due_at(conn)?;
    s.rules = RuleStats::read(
        conn,
        "SELECT network_rule, charging_only, n, bytes_left FROM rule_counters",
    )?;
    Ok(s)
}

/// The same numbers counted from the rows themselves (a scan of `items` and
/// of `audit`): what [`stats`] must always equal. For tests and diagnostics;
/// its cost grows with the tables.
pub fn stats_by_scan(conn: &Connection) -> Result<QueueStats> {
    let mut s = QueueStats::default();
    let mut st = conn.prepare(
        "SELECT state, count(*), coalesce(sum(max(size - confirmed_offset, 0)), 0)
         FROM items GROUP BY state",
    )?;
    let rows = st.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get(2)?))
    })?;
    for row in rows {
        let (state, n, bytes_left) = row?;
        s.put(&state, n, bytes_left);
    }
    let audit: i64 = conn.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))?;
    s.put("audit", audit, 0);
    s.next_due_at = next_due_at(conn)?;
    s.rules = RuleStats::read(
        conn,
        "SELECT network_rule, charging_only, count(*),
                coalesce(sum(max(size - confirmed_offset, 0)), 0)
         FROM items WHERE state IN ('pending', 'uploading', 'failed')
         GROUP BY network_rule, charging_only",
    )?;
    Ok(s)
}

/// `min(next_attempt_at)` of pending and failed items, one seek in the
/// partial index `items_next_due` (O(log n)). Named, because the planner
/// without `ANALYZE` statistics would rather walk `items_state`.
const NEXT_DUE_SQL: &str = "SELECT min(next_attempt_at) FROM items INDEXED BY items_next_due
     WHERE state IN ('pending','failed')";

fn next_due_at(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(NEXT_DUE_SQL)?
        .query_row([], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_due_at_is_an_index_seek() {
        let db = crate::queue::Db::open_in_memory().unwrap();
        let plan: String = db
            .conn()
            .query_row(&format!("EXPLAIN QUERY PLAN {NEXT_DUE_SQL}"), [], |r| {
                r.get(3)
            })
            .unwrap();
        assert!(plan.starts_with("SEARCH items USING"), "{plan}");
        assert!(plan.contains("INDEX items_next_due"), "{plan}");
    }
}
