//! Sending: the PATCH loop of one session, and what it does when the server
//! or the network gets in the way (cuts, locks, refused chunks, a 413).

use std::time::{Duration, Instant};

use super::{
    Head, Interrupt, ItemUpload, Reading, Restart, Session, Step, LOCK_PAUSE, MAX_LOCK_WAITS,
    MAX_RESUMES, MIN_CHUNK,
};
use crate::error::{AuthFailure, Error, Result};
use crate::net::http::BodyCap;
use crate::region::GuardedUrl;
use crate::upload::source::Source;
use crate::upload::tus::{HeadResult, PatchOutcome};

impl ItemUpload<'_, '_> {
    /// PATCHes from the session's offset to the end.
    pub(super) fn send(
        &mut self,
        src: &mut Source<'_>,
        s: &mut Session,
        r: &mut Reading,
    ) -> Step<()> {
        let size = src.meta().size;
        let (mut resumes, mut lock_waits) = (0u32, 0u32);
        // A refused PATCH is sent once more with a new token, then the run stops.
        let mut refreshed = false;
        while s.offset < size {
            self.stop.check()?;
            let offset = s.offset;
            let feed = self.feed_at(src, r, offset)?;
            // After a partial chunk, send up to the next boundary: the reader
            // cuts the same aligned chunks.
            let len = feed.chunks().end_from(offset) - offset;
            let checksum = if self.caps.checksum_sha256 {
                match feed.hold_chunk(self.stop) {
                    Ok(end) => end.digest,
                    Err(e) => return self.read_failed(src, Some(s), e),
                }
            } else {
                None
            };
            // Before the first byte and after every chunk (a held chunk has been read by now).
            self.ensure_same(src, s)?;
            // Counted (on storage) before a byte of it goes out.
            self.count_body(offset, len)?;
            let feed = r.feed.as_mut().expect("positioned above");
            let expect = (s.resumed || self.ask_first) && !self.no_expect;
            let (outcome, sent, failure) = {
                let progress = &mut *self.progress;
                let mut body = feed.body(len, self.stop, progress, self.item.id);
                let outcome =
                    self.http
                        .tus_patch(&s.url, offset, len, checksum.as_ref(), expect, &mut body);
                (outcome, body.sent, body.failure.take())
            };
            // The count on storage already holds them (and at most the
            // unsent rest of this body, corrected when the attempt ends).
            self.sent += sent;
            if let Some(e) = failure {
                // The body ended for a reason of ours, not the network's.
                return self.read_failed(src, Some(s), e);
            }
            match outcome {
                Ok(PatchOutcome::Offset(new)) => {
                    check_advance(offset, len, new)?;
                    if new == offset + len {
                        // The whole chunk is confirmed: a resume rebuilds the hash from here.
                        match feed.take_end(self.stop) {
                            Ok(end) => r.mark = end.mark,
                            Err(e) => return self.read_failed(src, Some(s), e),
                        }
                    }
                    s.offset = new;
                    s.resumed = false;
                    lock_waits = 0;
                    refreshed = false;
                    if self.ask_first && len >= self.chunks(src).len {
                        // A body of the new size got through: the limit is learnt.
                        self.ask_first = false;
                        self.http.http().set_body_cap(
                            &s.url.host_port(),
                            BodyCap {
                                chunk: self.chunk,
                                proven: true,
                            },
                        );
                    }
                    // Record what the server confirmed before anything else, even a
                    // cancel, with the next body counted in (one durable commit per
                    // chunk boundary); the last chunk's is the settlement's to record
                    // (a crash before it resumes with a HEAD that finds everything there).
                    if new < size {
                        let next = self.sent + self.body_len(src, new);
                        self.ledger
                            .progress(self.item.id, new, next.max(self.counted), true)?;
                        self.counted = next.max(self.counted);
                    }
                }
                Ok(PatchOutcome::Gone) => {
                    self.forget(src)?;
                    return Err(Interrupt::Restart(Restart::SessionLost));
                }
                Ok(PatchOutcome::Conflict | PatchOutcome::Locked) => {
                    // Ask the server where it is and go on from there; if it has
                    // not moved, a request of ours still holds its lock: pause.
                    lock_waits += 1;
                    if lock_waits > MAX_LOCK_WAITS {
                        return Err(Error::Protocol(
                            "the server keeps refusing the offset it reports".into(),
                        )
                        .into());
                    }
                    self.reread(src, s)?;
                    if s.offset == offset {
                        self.pause(lock_waits - 1)?;
                    }
                }
                Ok(PatchOutcome::ExpectRefused) => self.no_expect = true,
                Ok(PatchOutcome::Unauthorized(status)) if refreshed => {
                    return Err(Error::Unauthorized(AuthFailure::Status(status)).into());
                }
                Ok(PatchOutcome::Unauthorized(_)) => {
                    refreshed = true;
                    self.http.refresh_credentials()?;
                    // The server stored nothing of a refused request; the
                    // next one asks before it sends its body again.
                    s.resumed = true;
                }
                Ok(PatchOutcome::ChecksumMismatch) => {
                    self.ensure_same(src, s)?;
                    resumes += 1;
                    if resumes > MAX_RESUMES {
                        return Err(Error::Network("checksum mismatch persists".into()).into());
                    }
                    self.reread(src, s)?;
                }
                Err(f) if matches!(f.error, Error::Network(_)) => {
                    self.stop.check()?;
                    if expect && sent == 0 {
                        // Perhaps a server (or middlebox) that chokes on
                        // `Expect`: the rest of this attempt goes without.
                        self.no_expect = true;
                    }
                    resumes += 1;
                    if resumes > MAX_RESUMES {
                        return Err(f.into());
                    }
                    // A dropped connection: the server keeps what arrived.
                    self.reread(src, s)?;
                }
                // A body limit in front of the server (nginx's default is
                // 1 MiB): smaller chunks, from the same offset. Only a PATCH
                // of the smallest size refused is the file's fault.
                // The next body asks `Expect: 100-continue` first, so a limit
                // still below it costs a round trip, not the body; the run's
                // later items start at the smaller size.
                Err(f) if matches!(f.error, Error::Rejected(413)) && len > MIN_CHUNK => {
                    self.chunk = (len / 2).max(MIN_CHUNK);
                    self.ask_first = true;
                    self.http.http().set_body_cap(
                        &s.url.host_port(),
                        BodyCap {
                            chunk: self.chunk,
                            proven: false,
                        },
                    );
                    log::info!(
                        "item {}: PATCH too large; chunks of {} bytes",
                        self.item.id,
                        self.chunk
                    );
                }
                Err(f) => return Err(f.into()),
            }
        }
        Ok(())
    }

    /// Re-reads the server's offset after a cut, a 409 or a checksum mismatch.
    pub(super) fn reread(&mut self, src: &Source<'_>, s: &mut Session) -> Step<()> {
        match self.head(&s.url, src.meta().size)? {
            Head::At(offset) => {
                s.offset = offset;
                s.resumed = true;
                self.note_offset(offset)?;
                Ok(())
            }
            lost => {
                self.lose(src, &s.url, lost)?;
                Err(Interrupt::Restart(Restart::SessionLost))
            }
        }
    }

    /// `HEAD`, pausing while the server answers 423 (locked).
    pub(super) fn head(&mut self, url: &GuardedUrl, size: u64) -> Step<Head> {
        let mut waits = 0;
        loop {
            match self.http.tus_head(url)? {
                HeadResult::Offset(offset, len)
                    if offset <= size && len.is_none_or(|l| l == size) =>
                {
                    return Ok(Head::At(offset))
                }
                HeadResult::Offset(..) => {
                    log::warn!("item {}: the server describes another upload", self.item.id);
                    return Ok(Head::Unusable);
                }
                HeadResult::Gone => return Ok(Head::Gone),
                HeadResult::Unusable(status) => {
                    log::info!(
                        "item {}: the server refuses the upload URL (HTTP {status})",
                        self.item.id
                    );
                    return Ok(Head::Unusable);
                }
                HeadResult::Locked if waits < MAX_LOCK_WAITS => {
                    self.pause(waits)?;
                    waits += 1;
                }
                HeadResult::Locked => {
                    return Err(
                        Error::Network("the upload stays locked on the server".into()).into(),
                    )
                }
            }
        }
    }

    /// Waits `LOCK_PAUSE · 2^n`, checking the stop conditions every 50 ms.
    pub(super) fn pause(&self, n: u32) -> Step<()> {
        let until = Instant::now() + LOCK_PAUSE * 2u32.saturating_pow(n.min(10));
        loop {
            self.stop.check()?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }
}

/// The server may confirm less than was sent, never more, and never go back.
fn check_advance(offset: u64, len: u64, new: u64) -> Result<()> {
    let why = if new > offset + len {
        "offset jumped past what was sent"
    } else if new < offset {
        "PATCH answered an offset before the one it was sent at"
    } else if new == offset && len > 0 {
        "PATCH stored none of the bytes sent"
    } else {
        return Ok(());
    };
    Err(Error::Protocol(why.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_that_do_not_add_up_say_what_happened() {
        assert!(check_advance(100, 50, 150).is_ok());
        assert!(
            check_advance(100, 50, 120).is_ok(),
            "less than sent is fine"
        );
        assert!(check_advance(0, 0, 0).is_ok(), "an empty body");
        let msg = |new| check_advance(100, 50, new).unwrap_err().to_string();
        assert_eq!(msg(151), "protocol: offset jumped past what was sent");
        assert_eq!(
            msg(99),
            "protocol: PATCH answered an offset before the one it was sent at"
        );
        assert_eq!(msg(100), "protocol: PATCH stored none of the bytes sent");
    }
}
