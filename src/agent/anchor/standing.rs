//! What a [`super::super::trust::Trust`] records of the anchor: how the
//! stored root stands against the firmware root, and the changes to the
//! stored chain written with the trust row.

use rusqlite::Transaction;

use crate::config::store::{self, ChainRow};
use crate::config::TrustedRoot;
use crate::error::Result;

/// How the trust read from the file stands against the firmware root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Vouched for by the firmware root: uploads and trust changes allowed.
    Anchored,
    /// The stored root is newer than the firmware root and its chain is not
    /// known yet: reads only until a refresh re-walks it.
    Unverified,
    /// Opened without a firmware root: reads only.
    NoAnchor,
}

/// Changes to the stored chain, written together with the trust row.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChainOps {
    /// Drop every stored row first (the anchor replaced the stored root).
    pub(super) clear: bool,
    /// Drop the rows at or below this version (the anchor vouches for them).
    pub(super) prune_to: Option<u64>,
    /// Roots to append, oldest first.
    pub(super) push: Vec<ChainRow>,
}

impl ChainOps {
    /// Records the rotation `from` → `to` (verified by the caller).
    pub(crate) fn record(&mut self, from: &TrustedRoot, to: &TrustedRoot) {
        self.push.push(ChainRow {
            version: to.version(),
            envelope: to.envelope().to_vec(),
            changed: !from.same_root_role(to),
        });
    }

    /// Writes the recorded changes and forgets them.
    pub(crate) fn flush(&mut self, tx: &Transaction<'_>) -> Result<()> {
        let ops = std::mem::take(self);
        if ops.clear {
            tx.execute("DELETE FROM root_chain", [])?;
        }
        if let Some(v) = ops.prune_to {
            store::prune_chain(tx, v)?;
        }
        for row in &ops.push {
            store::push_chain(tx, row)?;
        }
        Ok(())
    }
}
