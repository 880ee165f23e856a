//! The trust at open: the stored row judged against the firmware root.

use rusqlite::{Connection, Transaction};

use super::Trust;
use crate::config::store;
use crate::config::TrustedRoot;
use crate::error::{Error, Result};

/// The trust at open, read without the write lock: `None` without a trust
/// row (a new file); else the stored row judged against the firmware root
/// and whether that judgement changes what is stored (then the open writes
/// it with [`open_trust`]).
pub(crate) fn read_trust(
    conn: &Connection,
    firmware: Option<&TrustedRoot>,
) -> Result<Option<(Trust, bool)>> {
    let Some(stored) = store::load(conn)? else {
        return Ok(None);
    };
    Trust::load_anchored(conn, &stored, firmware).map(Some)
}

/// The trust at open: the stored row judged against the firmware root
/// (`super::anchor`). Runs inside the open's write transaction, taken only
/// when [`read_trust`] found something to write, and writes only what the
/// anchor changed (decided again under the lock). A new file trusts the firmware root even
/// when it has expired: a refresh from its mirrors may catch up (TUF), and
/// nothing uploads under an expired root meanwhile.
pub(crate) fn open_trust(
    tx: &Transaction<'_>,
    firmware: Option<&TrustedRoot>,
    wall: u64,
) -> Result<Trust> {
    let Some(stored) = store::load(tx)? else {
        let root = firmware.ok_or(Error::NoConfig)?;
        let mut t = Trust::new(root.clone());
        t.chain_from = root.version();
        t.generation = store::save(tx, &t.stored(), None)?;
        return Ok(t);
    };
    let (mut t, dirty) = Trust::load_anchored(tx, &stored, firmware)?;
    if dirty {
        t.generation = store::save(tx, &t.stored(), Some(stored.generation))?;
        t.chain_ops.flush(tx)?;
        t.reconcile_items(tx, wall.max(t.clock_floor))?;
    }
    Ok(t)
}
