//! tus 1.0.0 client requests (core, creation, checksum, termination):
//! <https://tus.io/protocols/resumable-upload>. Every function takes a
//! [`GuardedUrl`]; every `Location` is resolved and guarded before use.

use std::io::Read;
use std::time::Duration;

use base64::Engine as _;
use ureq::http::Response;
use ureq::Body;

use crate::error::{AuthFailure, Error, Result};
use crate::net::http::{Credential, Failure, RegionHttp, TusResult};
use crate::region::GuardedUrl;

const TUS_VERSION: &str = "1.0.0";

/// What the server offers (from `OPTIONS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `creation` extension.
    pub creation: bool,
    /// `checksum` extension with `sha256`.
    pub checksum_sha256: bool,
    /// `termination` extension.
    pub termination: bool,
    /// `Tus-Max-Size`.
    pub max_size: Option<u64>,
}

/// Outcome of `HEAD` on an upload URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadResult {
    /// The upload exists at this offset (with the declared length, if sent).
    Offset(u64, Option<u64>),
    /// 404/410: the server no longer has it.
    Gone,
    /// 423: another request (typically our own cut one) still holds the upload.
    Locked,
    /// Any other 4xx but 401/403 (auth), 408 and 429 (retry later): the server
    /// refuses this URL — say, it wants metadata the upload was created
    /// without. The URL is of no use any more; a fresh upload may be accepted.
    Unusable(u16),
}

fn header<'a>(r: &'a Response<Body>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

fn parse_u64(r: &Response<Body>, name: &str) -> Result<Option<u64>> {
    match header(r, name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Error::Protocol(format!("{name} is not a number"))),
    }
}

fn retry_after(r: &Response<Body>) -> Option<Duration> {
    // Only the delta-seconds form; an HTTP date falls back to our own backoff.
    header(r, "retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Maps statuses that end an attempt. 2xx returns `Ok`.
fn check_status(r: &Response<Body>, what: &str) -> TusResult<()> {
    let s = r.status().as_u16();
    match s {
        200..=299 => Ok(()),
        300..=399 => Err(Error::Residency("redirect refused").into()),
        429 | 500..=599 => Err(Failure {
            error: Error::ServerStatus(format!("{what}: HTTP {s}")),
            retry_after: retry_after(r),
        }),
        408 => Err(Error::ServerStatus(format!("{what}: HTTP {s}")).into()),
        // Auth, not data: the run stops and no item is charged an attempt.
        401 | 403 => Err(Error::Unauthorized(AuthFailure::Status(s)).into()),
        400..=499 => Err(Error::Rejected(s).into()),
        _ => Err(Error::Protocol(format!("{what}: unexpected HTTP {s}")).into()),
    }
}

fn drain(mut r: Response<Body>) {
    // Small bodies only: keeps the connection reusable; errors are irrelevant.
    let _ = std::io::copy(
        &mut r.body_mut().as_reader().take(64 * 1024),
        &mut std::io::sink(),
    );
}

fn is_auth_refusal(r: &Response<Body>) -> bool {
    matches!(r.status().as_u16(), 401 | 403)
}

/// tus requests to one service of the run's region, carrying the
/// credentials its signed config declares.
pub struct ServiceClient<'a> {
    http: &'a RegionHttp<'a>,
    credential: Credential<'a>,
}

impl<'r> RegionHttp<'r> {
    /// The client for `service` of this region.
    pub fn service<'a>(&'a self, service: &'a str) -> ServiceClient<'a>
    where
        'r: 'a,
    {
        ServiceClient {
            http: self,
            credential: Credential::of(self.region(), service),
        }
    }
}

impl ServiceClient<'_> {
    /// The region's transport (guard, peers).
    pub fn http(&self) -> &RegionHttp<'_> {
        self.http
    }

    /// Asks the provider for a new token now (after a refused `PATCH`, whose
    /// body cannot be sent twice from one reader).
    pub(crate) fn refresh_credentials(&self) -> TusResult<()> {
        if let Credential::Bearer { service, .. } = self.credential {
            self.http.refresh_token(service)?;
        }
        Ok(())
    }

    fn send_empty_as(
        &self,
        method: &str,
        url: &GuardedUrl,
        headers: &[(&str, String)],
        credential: Credential<'_>,
    ) -> TusResult<Response<Body>> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(url.uri().clone());
        req = req.header("Tus-Resumable", TUS_VERSION);
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(())
            .map_err(|_| Error::Internal("request build failed".into()))?;
        self.http.send(url, req, true, credential)
    }

    /// A request without a body, with the service's credentials: a 401/403
    /// asks the provider for a new token and sends it once more.
    fn send_empty(
        &self,
        method: &str,
        url: &GuardedUrl,
        headers: &[(&str, String)],
    ) -> TusResult<Response<Body>> {
        let r = self.send_empty_as(method, url, headers, self.credential)?;
        if !is_auth_refusal(&r) || self.credential == Credential::Anonymous {
            return Ok(r);
        }
        drain(r);
        self.send_empty_as(method, url, headers, self.credential.refreshed())
    }

    /// `OPTIONS`: what the server supports. It carries no user data, so it
    /// goes without credentials unless the server asks for them.
    pub fn tus_options(&self, endpoint: &GuardedUrl) -> TusResult<Capabilities> {
        let mut r = self.send_empty_as("OPTIONS", endpoint, &[], Credential::Anonymous)?;
        if is_auth_refusal(&r) && self.credential != Credential::Anonymous {
            drain(r);
            r = self.send_empty("OPTIONS", endpoint, &[])?;
        }
        check_status(&r, "OPTIONS")?;
        let ext = header(&r, "tus-extension")
            .unwrap_or("")
            .to_ascii_lowercase();
        let exts: Vec<&str> = ext.split(',').map(str::trim).collect();
        let algos = header(&r, "tus-checksum-algorithm")
            .unwrap_or("")
            .to_ascii_lowercase();
        let caps = Capabilities {
            creation: exts.contains(&"creation"),
            checksum_sha256: exts.contains(&"checksum")
                && algos.split(',').any(|a| a.trim() == "sha256"),
            termination: exts.contains(&"termination"),
            max_size: parse_u64(&r, "tus-max-size")?,
        };
        drain(r);
        Ok(caps)
    }

    /// `POST` creation with an idempotency key (the `Idempotency-Key` header
    /// of the IETF httpapi draft, a structured-field string). Returns the
    /// guarded upload URL and, if the server answered with the upload an
    /// earlier request with the same key made, its offset.
    pub fn tus_create(
        &self,
        endpoint: &GuardedUrl,
        length: u64,
        key: &str,
        metadata: &[(&str, &[u8])],
    ) -> TusResult<(GuardedUrl, u64)> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let meta = metadata
            .iter()
            .map(|(k, v)| format!("{k} {}", b64.encode(v)))
            .collect::<Vec<_>>()
            .join(",");
        let r = self.send_empty(
            "POST",
            endpoint,
            &[
                ("Upload-Length", length.to_string()),
                ("Upload-Metadata", meta),
                ("Idempotency-Key", format!("\"{key}\"")),
                ("Content-Length", "0".into()),
            ],
        )?;
        check_status(&r, "POST")?;
        if r.status().as_u16() != 201 {
            return Err(Error::Protocol(format!(
                "POST answered {} instead of 201",
                r.status().as_u16()
            ))
            .into());
        }
        let loc = header(&r, "location")
            .ok_or_else(|| Error::Protocol("POST answered without Location".into()))?;
        // The Location is a URL the server hands back: guard it before anything connects to it.
        let url = self.http.region().resolve(endpoint, loc)?;
        let offset = parse_u64(&r, "upload-offset")?.unwrap_or(0);
        drain(r);
        Ok((url, offset))
    }

    /// `HEAD`: the server's offset for an upload.
    pub fn tus_head(&self, url: &GuardedUrl) -> TusResult<HeadResult> {
        let r = self.send_empty("HEAD", url, &[])?;
        match r.status().as_u16() {
            404 | 410 => return Ok(HeadResult::Gone),
            423 => return Ok(HeadResult::Locked),
            s @ 400..=499 if !matches!(s, 401 | 403 | 408 | 429) => {
                return Ok(HeadResult::Unusable(s))
            }
            _ => {}
        }
        check_status(&r, "HEAD")?;
        let off = parse_u64(&r, "upload-offset")?
            .ok_or_else(|| Error::Protocol("HEAD without Upload-Offset".into()))?;
        let len = parse_u64(&r, "upload-length")?;
        Ok(HeadResult::Offset(off, len))
    }

    /// `PATCH` of `len` bytes read from `body` at `offset`. Returns the new offset.
    ///
    /// With `expect_continue` the request asks `Expect: 100-continue` and sends
    /// its body only once the server agreed: a server that refuses the offset
    /// (409, its lock still held by our own cut request) costs a round trip,
    /// not a chunk. (A server that ignores it gets the body after ureq's short
    /// wait.)
    pub fn tus_patch(
        &self,
        url: &GuardedUrl,
        offset: u64,
        len: u64,
        checksum: Option<&[u8; 32]>,
        expect_continue: bool,
        body: &mut dyn Read,
    ) -> TusResult<PatchOutcome> {
        let mut req = ureq::http::Request::builder()
            .method("PATCH")
            .uri(url.uri().clone())
            .header("Tus-Resumable", TUS_VERSION)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .header("Content-Length", len.to_string());
        if let Some(sum) = checksum {
            let b64 = base64::engine::general_purpose::STANDARD.encode(sum);
            req = req.header("Upload-Checksum", format!("sha256 {b64}"));
        }
        if expect_continue && len > 0 {
            req = req.header("Expect", "100-continue");
        }
        let req = req
            .body(ureq::SendBody::from_reader(body))
            .map_err(|_| Error::Internal("request build failed".into()))?;
        // Bounded by the run's deadline and the per-read/write limits only: a
        // slow link may need long for a large chunk, but never silence.
        let r = self.http.send(url, req, false, self.credential)?;
        match r.status().as_u16() {
            s @ (401 | 403) if self.credential != Credential::Anonymous => {
                return Ok(PatchOutcome::Unauthorized(s))
            }
            404 | 410 => return Ok(PatchOutcome::Gone),
            409 => return Ok(PatchOutcome::Conflict),
            423 => return Ok(PatchOutcome::Locked),
            417 if expect_continue && len > 0 => return Ok(PatchOutcome::ExpectRefused),
            460 | 417 => return Ok(PatchOutcome::ChecksumMismatch),
            _ => {}
        }
        check_status(&r, "PATCH")?;
        let off = parse_u64(&r, "upload-offset")?
            .ok_or_else(|| Error::Protocol("PATCH without Upload-Offset".into()))?;
        drain(r);
        Ok(PatchOutcome::Offset(off))
    }

    /// `DELETE` (termination).
    pub fn tus_delete(&self, url: &GuardedUrl) -> TusResult<()> {
        let r = self.send_empty("DELETE", url, &[])?;
        if matches!(r.status().as_u16(), 404 | 410) {
            return Ok(());
        }
        check_status(&r, "DELETE")?;
        drain(r);
        Ok(())
    }
}

/// Outcome of a `PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOutcome {
    /// Accepted; the server's new offset.
    Offset(u64),
    /// 404/410: the upload is gone.
    Gone,
    /// 409: our offset disagrees with the server's.
    Conflict,
    /// 423: another request still holds the upload.
    Locked,
    /// 460/417: the chunk's checksum did not match.
    ChecksumMismatch,
    /// 417 to `Expect: 100-continue`: nothing was sent; ask again without it.
    ExpectRefused,
    /// 401/403 with credentials: refresh them and send again, once.
    Unauthorized(u16),
}
