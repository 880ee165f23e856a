//! Static files for a root's mirrors ([`ServerOptions::sources_dir`]): `GET` /
//! `HEAD` of `/sources/<rel>` served from a directory, read on every request
//! (so publishing a new root or config while running is writing a file there:
//! write it aside, then rename it into place). Answers carry an `ETag` and a
//! `Last-Modified`; a matching `If-None-Match` (or, without one, an equal
//! `If-Modified-Since`) gets 304. Every request head is recorded
//! ([`TusServer::source_requests`]), so tests can assert what a mirror sees.
//!
//! [`ServerOptions::sources_dir`]: super::ServerOptions::sources_dir
//! [`TusServer::source_requests`]: super::TusServer::source_requests

use std::path::Path;

use crate::http::{Body, Request, Response};
use crate::options::Fault;
use crate::reply::{error, finish, Conn};
use crate::state::{lock, Shared};
use crate::stream::Outcome;

/// Path prefix of the mirror files.
pub const SOURCES_PREFIX: &str = "/sources/";

pub use crate::options::SourceRequest;

/// `Sun, 06 Nov 1994 08:49:37 GMT` for `secs` since the epoch (RFC 9110 IMF-fixdate).
pub fn http_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WD[days.rem_euclid(7) as usize],
        MON[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Records a request under [`SOURCES_PREFIX`], before any fault applies
/// (a delayed, redirected or failed request was still seen).
pub(super) fn record(shared: &Shared, req: &Request) {
    lock(&shared.source_requests).push(SourceRequest {
        method: req.method.clone(),
        path: req.path.clone(),
        headers: req
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect(),
    });
}

/// Answers a request under [`SOURCES_PREFIX`] from `dir` (recorded already).
pub(super) fn serve(
    shared: &Shared,
    conn: &mut Conn,
    req: &Request,
    body: &mut Body,
    dir: &Path,
) -> Outcome {
    let method = req.method.to_ascii_uppercase();
    if method != "GET" && method != "HEAD" {
        return finish(
            conn,
            req,
            body,
            error(405, "method not allowed").header("Allow", "GET, HEAD"),
        );
    }
    let rel = &req.path[SOURCES_PREFIX.len()..];
    let safe = !rel.is_empty()
        && rel
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    let file = dir.join(rel);
    let (Some(bytes), true) = (std::fs::read(&file).ok(), safe) else {
        return finish(conn, req, body, error(404, "no such document"));
    };
    let modified = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let etag = format!("\"{}\"", hex::encode(&digest.as_ref()[..16]));
    let last_modified = http_date(modified);
    let fresh = match req.header("If-None-Match") {
        Some(tags) => tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"),
        None => req.header("If-Modified-Since") == Some(last_modified.as_str()),
    };
    let resp = Response::new(if fresh { 304 } else { 200 })
        .header("ETag", etag)
        .header("Last-Modified", last_modified)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "max-age=60");
    if fresh {
        return finish(conn, req, body, resp);
    }
    let mut resp = resp;
    resp.body = bytes;
    if let Some(Fault::TruncateBody(n)) = shared.take_fault(|f| matches!(f, Fault::TruncateBody(_)))
    {
        // The full Content-Length, fewer bytes, then the connection is cut.
        let mut wire = resp.to_bytes();
        let head = wire.len() - resp.body.len();
        wire.truncate(head + (n as usize).min(resp.body.len()));
        conn.last_status = Some(resp.status);
        let _ = conn.write_all_flush(&wire);
        return Outcome::Abort;
    }
    finish(conn, req, body, resp)
}

#[cfg(test)]
mod tests {
    use super::http_date;

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
