//! One item's upload (DESIGN.md §8): resume the stored session or create one,
//! PATCH the chunks from the server's offset, and start over from a clean read
//! when the file changes or the server loses (or refuses) the session.
//!
//! The file is read once per pass, by the pipeline (`super::pipeline`): the
//! bytes sent, the chunk checksums and the whole-file hash of the audit all
//! come from that read. A creation request carries an idempotency key that
//! the queue holds durably (with the file's fingerprint) before the request
//! is sent, so a crash or a power cut before its answer is stored retries
//! with the same key; the session URL is durable before the first `PATCH`
//! (DESIGN.md §7).
//!
//! The item's sent-bytes count (the audit's `sent_bytes`) covers every body
//! byte of every attempt, run and session: a body is counted, durably, before
//! it goes out, and the count is corrected when the attempt ends (see
//! `count.rs`).
//!
//! Within one attempt: at most [`MAX_RESTARTS`] fresh starts, [`MAX_RESUMES`]
//! resumes after a dropped connection or a checksum mismatch, and
//! [`MAX_LOCK_WAITS`] short pauses while the server still holds the upload's
//! lock for a request of ours it has not let go of. Past those the attempt
//! fails and the queue's backoff spaces the next one.

use std::path::Path;
use std::time::Duration;

use super::mime;
use super::pipeline::{Chunks, Feed, Mark, Plan};
use super::source::{Source, SourceState};
use super::tus::{Capabilities, ServiceClient};
use super::{Finished, Ledger, Progress, Stop};
use crate::error::{Error, Result};
use crate::net::http::{Failure, TusResult};
use crate::net::UploadOptions;
use crate::queue::ops::{ItemRow, SourcePrint};
use crate::region::GuardedUrl;

/// The largest chunk sent to a server that verifies checksums: `Upload-Checksum`
/// is a header, so the chunk is read and hashed before its PATCH starts, and
/// two chunks are in memory at once (the one sent, the next one read).
const MAX_HELD_CHUNK: u64 = 8 * 1024 * 1024;

/// Fresh starts within one attempt (a file that keeps changing fails it).
/// How long a vanished source is waited for (`pause(2)`: 0.4 s) before it
/// counts as deleted.
const REAPPEAR_PAUSES: u32 = 2;

/// The smallest chunk a 413 on `PATCH` halves the chunk size down to.
const MIN_CHUNK: u64 = 256 * 1024;

const MAX_RESTARTS: u32 = 2;
/// Resumes of one session after a dropped connection or a checksum mismatch.
const MAX_RESUMES: u32 = 3;
/// 409/423 answers in a row before the attempt gives up.
const MAX_LOCK_WAITS: u32 = 5;
/// First pause while the server holds the upload's lock; it doubles each time
/// (0.1 s to 1.6 s, about 3 s in all: a server notices a dead connection by then).
const LOCK_PAUSE: Duration = Duration::from_millis(100);

/// Why the current pass is abandoned for a fresh one.
#[derive(Debug, Clone, Copy)]
enum Restart {
    /// The file was written to, truncated or replaced: the bytes sent may mix versions.
    SourceChanged,
    /// The server lost the upload, or refuses its URL.
    SessionLost,
}

impl Restart {
    fn what(self) -> &'static str {
        match self {
            Restart::SourceChanged => "source changed during upload",
            Restart::SessionLost => "upload lost or refused by the server",
        }
    }

    fn into_failure(self) -> Failure {
        match self {
            Restart::SourceChanged => Error::SourceChanged.into(),
            Restart::SessionLost => {
                Error::Network("the server keeps losing the upload; will start over".into()).into()
            }
        }
    }
}

/// What ends a pass early.
enum Interrupt {
    Restart(Restart),
    Fail(Failure),
}

impl From<Failure> for Interrupt {
    fn from(f: Failure) -> Interrupt {
        Interrupt::Fail(f)
    }
}

impl From<Error> for Interrupt {
    fn from(e: Error) -> Interrupt {
        Interrupt::Fail(e.into())
    }
}

type Step<T> = std::result::Result<T, Interrupt>;

/// The upload session in progress.
struct Session {
    url: GuardedUrl,
    /// Bytes the server confirmed.
    offset: u64,
    /// The offset came from the server (HEAD, a POST that resumed, a 409), not
    /// from our last PATCH: the next PATCH may race a cut request of ours that
    /// the server has not let go of yet, so it asks before sending its body.
    resumed: bool,
}

/// The pass's read of the file: the pipeline feeding the bodies, and the hash
/// state at the last chunk boundary the server confirmed (where a resume
/// rebuilds it from).
struct Reading {
    feed: Option<Feed>,
    mark: Mark,
}

/// What a `HEAD` says about a session.
enum Head {
    At(u64),
    Gone,
    /// Refused (a 4xx), or describing another upload: terminate it, start afresh.
    Unusable,
}

/// Uploads one item of the region `http` serves. The caller has claimed it.
#[allow(clippy::too_many_arguments)]
pub fn upload_item(
    http: &ServiceClient<'_>,
    caps: &Capabilities,
    endpoint: &GuardedUrl,
    item: &ItemRow,
    opts: &UploadOptions,
    ledger: &mut dyn Ledger,
    stop: &Stop<'_>,
    progress: &mut dyn FnMut(Progress) -> bool,
) -> TusResult<Finished> {
    // A body limit a 413 taught this run about the server: start below it,
    // and ask before the first body until one of that size got through.
    let cap = http.http().body_cap(&endpoint.host_port());
    let mut up = ItemUpload {
        http,
        caps,
        endpoint,
        item,
        chunk: cap
            .map_or(opts.chunk_size, |c| c.chunk.min(opts.chunk_size))
            .max(1),
        ledger,
        stop,
        progress,
        try_stored: item.upload_url.is_some(),
        no_expect: false,
        ask_first: cap.is_some_and(|c| !c.proven),
        key: item.upload_key.clone().zip(item.upload_print),
        sent: item.upload_sent,
        counted: item.upload_sent,
    };
    let out = up.run();
    if out.is_err() {
        // The count held a body that did not (all) go out: correct it. A
        // failure here leaves an over-count of at most that body's tail.
        up.correct_count();
    }
    out
}

impl ItemUpload<'_, '_> {
    fn run(&mut self) -> TusResult<Finished> {
        let mut restarts = 0;
        // Kept across a restart for a lost session: the file is the same.
        let mut src: Option<Source<'_>> = None;
        loop {
            let step = match src.as_mut() {
                Some(open) => self.pass(open),
                None => match self.open() {
                    Ok(open) => self.pass(src.insert(open)),
                    Err(e) => Err(e),
                },
            };
            match step {
                Ok(done) => return Ok(done),
                Err(Interrupt::Fail(f)) => return Err(f),
                Err(Interrupt::Restart(why)) if restarts < MAX_RESTARTS => {
                    restarts += 1;
                    if matches!(why, Restart::SourceChanged) {
                        src = None;
                    }
                    log::info!(
                        "item {}: {}; starting over from a clean read",
                        self.item.id,
                        why.what()
                    );
                }
                Err(Interrupt::Restart(why)) => return Err(why.into_failure()),
            }
        }
    }
}

struct ItemUpload<'a, 's> {
    http: &'a ServiceClient<'a>,
    caps: &'a Capabilities,
    endpoint: &'a GuardedUrl,
    item: &'a ItemRow,
    chunk: u64,
    ledger: &'a mut dyn Ledger,
    stop: &'a Stop<'s>,
    progress: &'a mut dyn FnMut(Progress) -> bool,
    /// The session stored in the queue is tried once, by the first pass.
    try_stored: bool,
    /// `Expect: 100-continue` failed once: later bodies go at once.
    no_expect: bool,
    /// A 413 refused a body: the next ones ask `Expect: 100-continue` (a
    /// refusal then costs a round trip, not a body) until one of the new
    /// size gets through.
    ask_first: bool,
    /// The idempotency key the queue holds and the source version it is for.
    key: Option<(String, SourcePrint)>,
    /// Body bytes sent for the item: every attempt, run and session.
    sent: u64,
    /// The count the queue holds: `sent` plus, at most, the body in flight
    /// (counted before it goes out). Raised only by durable commits.
    counted: u64,
}

impl<'a> ItemUpload<'a, '_> {
    /// Opens the file and takes its fingerprint (nothing is read yet).
    fn open(&self) -> Step<Source<'a>> {
        match Source::open(Path::new(&self.item.path), self.caps.max_size) {
            Err(Error::SourceChanged) => Err(Interrupt::Restart(Restart::SourceChanged)),
            other => Ok(other?),
        }
    }

    /// One upload session, from its creation (or resumption) to the server's
    /// last confirmation.
    fn pass(&mut self, src: &mut Source<'_>) -> Step<Finished> {
        self.stop.check()?;
        let mut r = Reading {
            feed: None,
            mark: Mark::start(),
        };
        let stored = if std::mem::take(&mut self.try_stored) {
            self.resume_stored(src)?
        } else {
            None
        };
        let mut s = match stored {
            Some(s) => s,
            None => self.create(src, &mut r)?,
        };
        self.send(src, &mut s, &mut r)?;
        self.finish(src, &s, &mut r)
    }

    /// How the file is cut into bodies: held chunks are bounded.
    fn chunks(&self, src: &Source<'_>) -> Chunks {
        let len = if self.caps.checksum_sha256 {
            self.chunk.min(MAX_HELD_CHUNK)
        } else {
            self.chunk
        };
        Chunks {
            len,
            size: src.meta().size,
        }
    }

    /// The pipeline positioned at `offset` with the current chunking; a new
    /// one (from the last mark at or before `offset`) if the old one is
    /// elsewhere: after a cut, a refused chunk, a smaller chunk size.
    fn feed_at<'r>(
        &self,
        src: &Source<'_>,
        r: &'r mut Reading,
        offset: u64,
    ) -> Result<&'r mut Feed> {
        let chunks = self.chunks(src);
        // Only a feed that has handed out nothing of its current chunk: a
        // partly sent chunk has another digest, a fully sent one a stale end.
        let fits = r
            .feed
            .as_ref()
            .is_some_and(|f| f.untouched_at(offset) && f.chunks() == chunks);
        if !fits {
            // The old reader stops before the new one starts.
            r.feed = None;
            if r.mark.at > offset {
                r.mark = Mark::start();
            }
            let digests = self.caps.checksum_sha256;
            let plan = Plan {
                mark: r.mark.clone(),
                send_from: offset,
                chunks,
                digests,
                blocks: if digests {
                    Plan::holding(chunks.len)
                } else {
                    Plan::streaming()
                },
            };
            r.feed = Some(Feed::start(src.file(), plan)?);
        }
        Ok(r.feed.as_mut().expect("set above"))
    }

    /// A read that found the file shorter than its fingerprint: with a
    /// session, terminate it and start over; without one, just start over.
    fn read_failed<T>(&mut self, src: &Source<'_>, s: Option<&Session>, e: Error) -> Step<T> {
        match (e, s) {
            (Error::SourceChanged, Some(s)) => self.restart_changed(src, s),
            (Error::SourceChanged, None) => Err(Interrupt::Restart(Restart::SourceChanged)),
            (e, _) => Err(e.into()),
        }
    }

    /// The key for a creation request for `print`: the one the queue holds
    /// for this very version (made at enqueue, or one a crash or a power cut
    /// may have cut short), or a new random one, on storage before it is used.
    fn creation_key(&mut self, print: &SourcePrint) -> Step<String> {
        if let Some((key, _)) = self.key.as_ref().filter(|(_, p)| p == print) {
            return Ok(key.clone());
        }
        let key = super::new_key()?;
        self.ledger.key(self.item.id, &key, print)?;
        self.key = Some((key.clone(), *print));
        Ok(key)
    }

    /// Resumes the stored session only if it was made for exactly this content
    /// and its URL still passes the guard (it was read back from disk).
    fn resume_stored(&mut self, src: &Source<'_>) -> Step<Option<Session>> {
        let item = self.item;
        let Some(stored) = item.upload_url.as_deref() else {
            return Ok(None);
        };
        let url = match self.http.http().region().guard(stored) {
            Ok(url) => url,
            Err(e) => {
                log::warn!(
                    "item {}: stored upload URL refused by the guard ({})",
                    item.id,
                    e.kind()
                );
                self.forget(src)?;
                return Ok(None);
            }
        };
        let meta = src.meta();
        // The whole fingerprint: a session made for another version (or by a
        // build that kept no fingerprint) never gets these bytes.
        if item.upload_print.as_ref() != Some(src.print()) {
            log::info!(
                "item {}: source changed since its upload began; restarting",
                item.id
            );
            self.abandon(src, &url)?;
            return Ok(None);
        }
        match self.head(&url, meta.size)? {
            Head::At(offset) => Ok(Some(Session {
                url,
                offset,
                resumed: true,
            })),
            lost => {
                log::info!(
                    "item {}: stored upload lost or refused; creating a new one",
                    item.id
                );
                self.lose(src, &url, lost)?;
                Ok(None)
            }
        }
    }

    /// `POST`, with the metadata the common tus clients send and the
    /// idempotency key. The file's read starts first, so it overlaps the
    /// request's round trip.
    fn create(&mut self, src: &Source<'_>, r: &mut Reading) -> Step<Session> {
        let print = *src.print();
        let key = self.creation_key(&print)?;
        let size = print.meta.size;
        let feed = self.feed_at(src, r, 0)?;
        // A file of one chunk to a server that verifies checksums is read whole
        // before its PATCH anyway: its hash is known in time to send it along
        // (a deduplicating server may then already hold it).
        let sha = if self.caps.checksum_sha256 && size > 0 && feed.chunks().end_from(0) == size {
            let whole = match feed.hold_chunk(self.stop) {
                Ok(end) => end.mark.clone(),
                Err(e) => return self.read_failed(src, None, e),
            };
            let sha = whole.digest_of(size).map(hex::encode);
            // Kept: if the server already holds it all, nothing is read again.
            r.mark = whole;
            sha
        } else {
            None
        };
        let path = Path::new(&self.item.path);
        let (name, filetype) = (mime::filename(path), mime::filetype(path));
        let id = self.item.id.to_string();
        let mut md: Vec<(&str, &[u8])> = vec![
            ("filename", name.as_bytes()),
            ("filetype", filetype.as_bytes()),
            ("item", id.as_bytes()),
            ("key", key.as_bytes()),
        ];
        if let Some(sha) = sha.as_ref() {
            md.push(("sha256", sha.as_bytes()));
        }
        self.stop.check()?;
        let (url, offset) = self.http.tus_create(self.endpoint, size, &key, &md)?;
        if offset > size {
            return Err(
                Error::Protocol("POST answered an offset beyond the upload length".into()).into(),
            );
        }
        // What the server can hold of ours: nothing, even under a key sent
        // before (no PATCH goes out before the URL its POST answered is on
        // storage, and only a new key replaces a stored URL); all of it only
        // if it was told the content's hash. Anything else is bytes of
        // unknown content: refused before the URL is stored.
        let claims_all = offset == size && size > 0;
        let earned = if claims_all {
            sha.is_some()
        } else {
            offset == 0
        };
        if !earned {
            return self.refuse_claim(src, &url);
        }
        let confirmed = if claims_all { 0 } else { offset };
        // On storage before anything else: a crash or a power cut after this
        // line resumes this very upload. The first body is counted in the
        // same commit, which is also the one before it goes out.
        let first = if claims_all {
            0
        } else {
            self.body_len(src, offset)
        };
        let count = self.counted.max(self.sent + first);
        self.ledger
            .session(self.item.id, Some(&url), &print, confirmed, count)?;
        self.counted = count;
        let mut s = Session {
            url,
            offset,
            resumed: offset > 0,
        };
        if claims_all {
            self.confirm_complete(src, &mut s)?;
        }
        Ok(s)
    }

    /// A creation answered with bytes it cannot hold: the key is dropped first
    /// (a crash after this never sends it again), then the upload terminated.
    fn refuse_claim<T>(&mut self, src: &Source<'_>, url: &GuardedUrl) -> Step<T> {
        log::warn!(
            "item {}: the server claims to hold content it was not sent",
            self.item.id
        );
        self.forget(src)?;
        self.abandon(src, url)?;
        Err(Error::Protocol("the server claims to hold content it was not sent".into()).into())
    }

    /// A creation answered "already complete" for the content's hash: a HEAD
    /// must confirm it; if it does not, upload from the offset it gives.
    fn confirm_complete(&mut self, src: &Source<'_>, s: &mut Session) -> Step<()> {
        let size = src.meta().size;
        match self.head(&s.url, size)? {
            Head::At(offset) => {
                if offset == size {
                    log::info!("item {}: the server already holds all of it", self.item.id);
                } else {
                    log::info!(
                        "item {}: creation claimed complete, but the server holds {offset} of {size} bytes",
                        self.item.id
                    );
                }
                s.offset = offset;
                self.note_offset(offset)?;
                Ok(())
            }
            lost => {
                self.lose(src, &s.url, lost)?;
                Err(Interrupt::Restart(Restart::SessionLost))
            }
        }
    }

    /// The last check before an upload is declared done.
    fn finish(&mut self, src: &mut Source<'_>, s: &Session, r: &mut Reading) -> Step<Finished> {
        // The digest first: if it has to read the file, the check below covers
        // that read too.
        let sha256 = match self.whole_digest(src, r) {
            Ok(sha) => sha,
            Err(e) => return self.read_failed(src, Some(s), e),
        };
        match src.state()? {
            SourceState::Same => {}
            // Deleting a file does not change its bytes: the server holds all of them.
            SourceState::Gone if src.content_intact() => log::info!(
                "item {}: source deleted after the server confirmed all of it",
                self.item.id
            ),
            SourceState::Gone => {
                self.abandon(src, &s.url)?;
                return Err(Error::SourceGone.into());
            }
            SourceState::Changed => return self.restart_changed(src, s),
        }
        let meta = src.meta();
        let _ = (self.progress)(Progress {
            item_id: self.item.id,
            sent: meta.size,
            total: meta.size,
        });
        Ok(Finished {
            host: s.url.host_port(),
            peer_ip: self.http.http().peer_ip(&s.url.host_port()),
            bytes: meta.size,
            sent_bytes: self.sent,
            sha256,
            meta,
        })
    }

    /// SHA-256 of the whole content: from the pass's read when it sent the
    /// last chunk, otherwise by reading on from the last mark (the server
    /// held bytes this pass did not send: a resume, or a creation that found
    /// the upload complete).
    fn whole_digest(&self, src: &Source<'_>, r: &mut Reading) -> Result<[u8; 32]> {
        let size = src.meta().size;
        if let Some(sha) = r.mark.digest_of(size) {
            return Ok(sha);
        }
        let end = self.feed_at(src, r, size)?.take_end(self.stop)?;
        r.feed = None;
        end.mark
            .digest_of(size)
            .ok_or_else(|| Error::Protocol("source reader out of step".into()))
    }
}

mod count;
mod lose;
mod send;
