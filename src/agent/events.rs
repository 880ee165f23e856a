//! What a run tells the app as it goes: one listener receives progress and
//! the per-item events, each completion exactly once.

use crate::error::ErrorKind;
use crate::upload::Progress;

/// One event of a run, delivered on the run's thread. Returning `false`
/// from the listener cancels the run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunEvent {
    /// An item was claimed and its upload attempt begins.
    Started {
        /// Item id.
        item_id: i64,
        /// Its size in bytes as enqueued.
        size: u64,
    },
    /// Bytes of the item in flight (at most one per MiB sent, and the last).
    Progress(Progress),
    /// The server confirmed the whole item; it left the queue (audit row written).
    Done {
        /// Item id.
        item_id: i64,
        /// Its size in bytes.
        bytes: u64,
    },
    /// The attempt failed; the item waits for a retry or went `dead`.
    Failed {
        /// Item id.
        item_id: i64,
        /// Why.
        kind: ErrorKind,
        /// Whether it gave up for good (`dead`).
        dead: bool,
        /// When it is due again (ms since the epoch; `None` when dead).
        next_attempt_at: Option<i64>,
    },
    /// The item in flight is held: the region or the account changed during
    /// its upload (it keeps its session for when they come back).
    Held {
        /// Item id.
        item_id: i64,
    },
}

crate::codes::coded_enum! {
    /// The kind of a [`RunEvent`] (the C `cs_event.type`, the Java listener
    /// method).
    pub enum EventKind, c_prefix "CS_EVENT_" {
        /// [`RunEvent::Started`].
        Started = 0, "started";
        /// [`RunEvent::Progress`].
        Progress = 1, "progress";
        /// [`RunEvent::Done`].
        Done = 2, "done";
        /// [`RunEvent::Failed`].
        Failed = 3, "failed";
        /// [`RunEvent::Held`].
        Held = 4, "held";
    }
}

impl RunEvent {
    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            RunEvent::Started { .. } => EventKind::Started,
            RunEvent::Progress(_) => EventKind::Progress,
            RunEvent::Done { .. } => EventKind::Done,
            RunEvent::Failed { .. } => EventKind::Failed,
            RunEvent::Held { .. } => EventKind::Held,
        }
    }
}

/// Forwards an item's byte progress as events, remembering how far it was
/// reported so that its completion is reported once.
pub(crate) struct ProgressRelay<'l> {
    listener: &'l mut dyn FnMut(&RunEvent) -> bool,
    reported: Option<(i64, u64)>,
}

impl<'l> ProgressRelay<'l> {
    pub(crate) fn new(listener: &'l mut dyn FnMut(&RunEvent) -> bool) -> Self {
        ProgressRelay {
            listener,
            reported: None,
        }
    }

    /// Forwards `p` unless it repeats what was already reported.
    pub(crate) fn progress(&mut self, p: Progress) -> bool {
        if self.reported == Some((p.item_id, p.sent)) {
            return true;
        }
        self.reported = Some((p.item_id, p.sent));
        (self.listener)(&RunEvent::Progress(p))
    }

    /// Delivers any other event.
    pub(crate) fn event(&mut self, e: RunEvent) -> bool {
        (self.listener)(&e)
    }
}
