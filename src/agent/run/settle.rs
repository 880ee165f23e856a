//! Writing the outcome of one attempt to the queue: done (with its audit
//! record), failed (retry or dead), or put back because the run stops.

use std::sync::atomic::Ordering;

use super::{Mandate, RunReport, Settled, StopReason};
use crate::agent::events::RunEvent;
use crate::agent::hold::unclaim_fenced;
use crate::agent::Agent;
use crate::error::{Error, ErrorKind, Result};
use crate::net::http::{Failure, TusResult};
use crate::queue::ops::{self, now_ms, ItemRow};
use crate::queue::{AuditRecord, State};
use crate::upload::Finished;

impl Agent {
    /// Writes the outcome of one attempt to the queue.
    // Long: one match over every way an attempt ends, each arm the rule for that end.
    pub(super) fn settle(
        &self,
        m: &Mandate<'_>,
        item: &ItemRow,
        attempt: TusResult<Finished>,
        report: &mut RunReport,
    ) -> Result<(Settled, Option<RunEvent>)> {
        let mut g = self.lock();
        let failure = match attempt {
            Ok(done) => {
                let rec = AuditRecord {
                    id: 0,
                    item_id: item.id,
                    service: item.service.clone(),
                    region: m.region.id().to_string(),
                    host: done.host,
                    peer_ip: done.peer_ip.map(|ip| ip.to_string()),
                    bytes: done.bytes,
                    sent_bytes: Some(done.sent_bytes),
                    sha256: hex::encode(done.sha256),
                    finished_at: now_ms(),
                };
                // Written only while this run still owns the queue; Busy ends the run.
                g.db.write(|tx| {
                    ops::check_lease(tx, m.owner)?;
                    ops::complete(tx, &rec, done.meta)
                })?;
                log::info!("item {} uploaded ({} bytes)", item.id, done.bytes);
                report.uploaded += 1;
                report.bytes += done.bytes;
                let event = RunEvent::Done {
                    item_id: item.id,
                    bytes: done.bytes,
                };
                return Ok((Settled::Next, Some(event)));
            }
            Err(f) => f,
        };
        let stopped = match failure.error {
            // Not the item's fault: it waits (held, if it was) and keeps its session.
            Error::RegionChanged => StopReason::RegionChanged,
            Error::AccountChanged => StopReason::AccountChanged,
            Error::Cancelled if self.cancel.load(Ordering::SeqCst) => StopReason::Cancelled,
            Error::Cancelled => StopReason::TimeUp,
            // Another runner took the queue over (our lease lapsed): its
            // items are not ours to write any more.
            Error::Busy => return Err(Error::Busy),
            // Credentials, not data: no attempt is charged to the item; the
            // run ends with the typed error so the app can refresh them.
            e @ (Error::Unauthorized(_) | Error::NoAccount) => {
                g.db.write(|tx| unclaim_fenced(tx, m.owner, item.id))?;
                log::warn!("item {}: {}; run stopped", item.id, e.kind());
                return Err(e);
            }
            // Removed during its upload; any new session was queued for termination.
            Error::NotFound => return Ok((Settled::Next, None)),
            // This run's own database failed: not the item's fault.
            e @ Error::Storage { .. } => {
                return Err(self.storage_failed(&mut g, m.owner, item.id, e))
            }
            _ => {
                let event = self.record_failure(&mut g, m, item, failure, report)?;
                return Ok((Settled::Next, event));
            }
        };
        match g.db.write(|tx| unclaim_fenced(tx, m.owner, item.id)) {
            // Superseded: the new owner reclaimed the item already.
            Err(Error::Busy) => {}
            // Locked by another connection past the deadline: the item stays
            // `uploading`; the next run reclaims it at once (this run's lock
            // is gone by then), or when this run's lease ends.
            Err(e) if e.kind() == ErrorKind::Busy => {
                log::warn!("item {}: unclaim left to the next run (busy)", item.id);
            }
            other => other?,
        }
        // Held in flight: the region or account moved while it was sent.
        let held = ops::get(g.db.conn(), item.id).is_ok_and(|row| row.state == State::Held);
        let event = held.then_some(RunEvent::Held { item_id: item.id });
        Ok((Settled::Stop(stopped), event))
    }

    fn record_failure(
        &self,
        g: &mut crate::agent::Inner,
        m: &Mandate<'_>,
        item: &ItemRow,
        Failure { error, retry_after }: Failure,
        report: &mut RunReport,
    ) -> Result<Option<RunEvent>> {
        let permanent = matches!(
            error.kind(),
            ErrorKind::Rejected | ErrorKind::InvalidArgument
        ) || matches!(error, Error::SourceIo(k) if k == std::io::ErrorKind::NotFound)
            // Deleted mid-upload before the server held all of it: nothing can finish it.
            || matches!(error, Error::SourceGone);
        let (kind, msg) = (error.kind().name(), error.to_string());
        let reason = if msg.starts_with(kind) {
            msg
        } else {
            format!("{kind}: {msg}")
        };
        let policy = &self.options.retry;
        let st = g.db.write(|tx| {
            ops::check_lease(tx, m.owner)?;
            ops::fail(
                tx,
                item.id,
                &reason,
                permanent,
                retry_after,
                policy,
                now_ms(),
            )
        });
        let st = match st {
            Err(Error::NotFound) => return Ok(None), // removed meanwhile
            other => other?,
        };
        log::warn!("item {} failed ({}), now {}", item.id, error.kind(), st);
        report.failed += 1;
        let dead = st == State::Dead;
        if dead {
            report.dead += 1;
        }
        let next_attempt_at = match dead {
            true => None,
            false => ops::next_attempt_of(g.db.conn(), item.id)?,
        };
        Ok(Some(RunEvent::Failed {
            item_id: item.id,
            kind: error.kind(),
            dead,
            next_attempt_at,
        }))
    }
}
