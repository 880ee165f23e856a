//! The upload sessions of removed items, ended on the server (`DELETE`) by
//! the next run of their region and account.

use super::Mandate;
use crate::agent::Agent;
use crate::error::{Error, ErrorKind, Result};
use crate::net::http::RegionHttp;
use crate::queue::ops;
use crate::upload::Stop;

impl Agent {
    /// Sends queued `DELETE`s for removed items of the approved region and
    /// the current account, with the credentials of the item's service. A
    /// `DELETE` carries an upload URL (it may hold a token), so each waits
    /// for the trust check like a buffer of bytes; `Ok(Err(why))` when the
    /// region or the account changed.
    pub(super) fn process_terminations(
        &self,
        http: &RegionHttp<'_>,
        m: &Mandate<'_>,
        stop: &Stop<'_>,
    ) -> Result<std::result::Result<(), Error>> {
        let pending = ops::terminations(self.lock().db.conn(), m.region.id(), m.stamp())?;
        for t in pending {
            if let Err(e) = (stop.still_approved)() {
                return Ok(Err(e));
            }
            // Guarded again: the URL was read back from disk. A row from
            // before schema v5 names no service: it goes anonymous, as it was made.
            if let Ok(u) = m.region.guard(&t.url) {
                let client = http.service(t.service.as_deref().unwrap_or(""));
                if let Err(f) = client.tus_delete(&u) {
                    if matches!(
                        f.error.kind(),
                        ErrorKind::Network
                            | ErrorKind::Cancelled
                            | ErrorKind::Unauthorized
                            | ErrorKind::NoAccount
                    ) {
                        continue; // try again next run
                    }
                }
            }
            self.lock().db.write(|tx| ops::drop_termination(tx, t.id))?;
        }
        Ok(Ok(()))
    }
}
