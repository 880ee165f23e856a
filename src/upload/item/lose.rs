//! When the file or the server's upload goes away under an upload: checking
//! the version before each chunk, restarting a changed file, and dropping a
//! session the server lost or that must be abandoned.

use super::*;

impl ItemUpload<'_, '_> {
    /// Fails the pass unless the file is still the version being sent.
    pub(super) fn ensure_same(&mut self, src: &Source<'_>, s: &Session) -> Step<()> {
        let mut state = src.state()?;
        if state == SourceState::Gone {
            // Some writers delete the file before they put the new version in
            // place (older AtomicFile saves): look again before giving up.
            self.pause(REAPPEAR_PAUSES)?;
            state = src.state()?;
        }
        match state {
            SourceState::Same => Ok(()),
            SourceState::Changed => self.restart_changed(src, s),
            // Not all of it is on the server, and nothing can send the rest.
            SourceState::Gone => {
                self.abandon(src, &s.url)?;
                Err(Error::SourceGone.into())
            }
        }
    }

    /// The server may hold a mix of two versions: throw its copy away, start over.
    pub(super) fn restart_changed<T>(&mut self, src: &Source<'_>, s: &Session) -> Step<T> {
        self.abandon(src, &s.url)?;
        Err(Interrupt::Restart(Restart::SourceChanged))
    }

    /// Drops a session the server lost (nothing to terminate) or refuses (terminated).
    pub(super) fn lose(&mut self, src: &Source<'_>, url: &GuardedUrl, head: Head) -> Step<()> {
        match head {
            Head::Unusable => self.abandon(src, url),
            _ => self.forget(src),
        }
    }

    /// Terminates a session (where the server offers it) and forgets it.
    pub(super) fn abandon(&mut self, src: &Source<'_>, url: &GuardedUrl) -> Step<()> {
        // Not even a DELETE once the region is no longer approved (the URL may
        // carry a token); the orphan then expires on the server.
        if self.caps.termination && self.stop.check().is_ok() {
            if let Err(f) = self.http.tus_delete(url) {
                log::info!(
                    "item {}: terminating the old upload failed ({})",
                    self.item.id,
                    f.error.kind()
                );
            }
        }
        self.forget(src)
    }

    /// Clears the stored session and its key (the count stays).
    pub(super) fn forget(&mut self, src: &Source<'_>) -> Step<()> {
        self.ledger
            .session(self.item.id, None, src.print(), 0, self.counted)?;
        self.key = None;
        Ok(())
    }
}
