//! GETs of signed metadata from the root's mirrors (`sources`): the same
//! guarded transport as uploads (host rules, pins, anchors, no redirects, no
//! proxy, paced sockets), with a body cap and conditional requests. A request
//! carries no account, token, cookie, device id or queue data: only what
//! HTTP needs (`Host`, `User-Agent`, `Accept`) and the validators of the
//! copy already held, so a global CDN may serve it.

use std::sync::Arc;
use std::time::Duration;

use super::http::{Guarded, IoControl};
use super::pacing::GRACE;
use super::UploadOptions;
use crate::error::{Error, Result};
use crate::region::{GuardedUrl, Sources};

/// Largest document accepted from a mirror: 1 MiB. Real roots and configs
/// are a few KiB; the cap bounds memory and what a hostile mirror can make
/// the phone download.
pub const MAX_DOCUMENT: u64 = 1024 * 1024;

/// Cache validators of a document (`ETag`, `Last-Modified`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// `ETag`, verbatim.
    pub etag: Option<String>,
    /// `Last-Modified`, verbatim.
    pub last_modified: Option<String>,
}

/// What a mirror answered.
#[derive(Debug)]
pub enum Fetched {
    /// 200: the document and its validators.
    Document(Vec<u8>, Validators),
    /// 304: the copy held is current.
    NotModified,
    /// 404/410: there is no such document (the end of the root chain).
    Missing,
}

/// A client of the mirrors of one root.
pub(crate) struct SourceHttp {
    net: Guarded,
    request_timeout: Duration,
}

impl SourceHttp {
    pub(crate) fn new(
        sources: &Sources,
        opts: &UploadOptions,
        ctl: IoControl,
    ) -> Result<SourceHttp> {
        Ok(SourceHttp {
            net: Guarded::new(Arc::clone(sources.rules()), opts, ctl)?,
            request_timeout: opts.request_timeout,
        })
    }

    /// `GET url`, conditional on `held` when given.
    pub(crate) fn get(&self, url: &GuardedUrl, held: Option<&Validators>) -> Result<Fetched> {
        self.net.reset_refusal();
        if self.net.ctl.stopped() {
            return Err(Error::Cancelled);
        }
        let mut req = ureq::http::Request::builder()
            .method("GET")
            .uri(url.uri().clone())
            .header("Accept", "application/json");
        if let Some(v) = held {
            if let Some(e) = &v.etag {
                req = req.header("If-None-Match", e.as_str());
            }
            if let Some(m) = &v.last_modified {
                req = req.header("If-Modified-Since", m.as_str());
            }
        }
        let req = req
            .body(())
            .map_err(|_| Error::Internal("request build failed".into()))?;
        let limit = (self.net.ctl.remaining() + GRACE).min(self.request_timeout);
        let req = self
            .net
            .agent
            .configure_request(req)
            .timeout_global(Some(limit))
            .build();
        let mut r = self.net.agent.run(req).map_err(|e| self.net.classify(e))?;
        let status = r.status().as_u16();
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        match status {
            200 => {
                let validators = Validators {
                    etag: header("etag"),
                    last_modified: header("last-modified"),
                };
                let body = r
                    .body_mut()
                    .with_config()
                    .limit(MAX_DOCUMENT + 1)
                    .read_to_vec()
                    .map_err(|e| match e {
                        ureq::Error::BodyExceedsLimit(_) => {
                            Error::malformed("source document", "larger than 1 MiB")
                        }
                        e => self.net.classify(e),
                    })?;
                if body.len() as u64 > MAX_DOCUMENT {
                    return Err(Error::malformed("source document", "larger than 1 MiB"));
                }
                Ok(Fetched::Document(body, validators))
            }
            304 if held.is_some() => Ok(Fetched::NotModified),
            // Not a redirect (nothing to follow): a broken answer.
            304 => Err(Error::Protocol("304 to an unconditional request".into())),
            404 | 410 => Ok(Fetched::Missing),
            300..=399 => Err(Error::Residency("redirect refused")),
            408 | 429 | 500..=599 => Err(Error::ServerStatus(format!(
                "source answered HTTP {status}"
            ))),
            _ => Err(Error::Protocol(format!(
                "source answered unexpected HTTP {status}"
            ))),
        }
    }
}
