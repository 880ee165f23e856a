//! The uploads a dev server holds, and the `Upload-Metadata` encoding.

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine as _;

use super::UploadInfo;

/// Decoded `Upload-Metadata`: keys in order, values optional.
pub(crate) type Metadata = Vec<(String, Option<Vec<u8>>)>;

/// One upload.
#[derive(Debug)]
pub(crate) struct Upload {
    pub(super) seq: u64,
    pub(super) length: u64,
    pub(super) offset: u64,
    pub(super) metadata: Metadata,
    pub(super) path: PathBuf,
    pub(super) complete: bool,
    pub(super) forgotten: bool,
    /// Connection currently writing a PATCH body into it.
    pub(super) writer: Option<u64>,
    /// See [`UploadInfo::body_bytes_received`].
    pub(super) received: u64,
}

impl Upload {
    pub(super) fn meta(&self, key: &str) -> Option<&Option<Vec<u8>>> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// All uploads, by id.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(super) uploads: HashMap<String, Upload>,
    /// The upload each idempotency key made (a lookup per `POST`, not a scan).
    pub(super) by_key: HashMap<String, String>,
    pub(super) next_seq: u64,
}

impl Store {
    pub(super) fn live(&self, id: &str) -> Option<&Upload> {
        self.uploads.get(id).filter(|u| !u.forgotten)
    }

    pub(super) fn live_mut(&mut self, id: &str) -> Option<&mut Upload> {
        self.uploads.get_mut(id).filter(|u| !u.forgotten)
    }

    fn info_of(id: &str, u: &Upload) -> UploadInfo {
        UploadInfo {
            id: id.to_string(),
            length: Some(u.length),
            offset: u.offset,
            metadata: u.metadata.clone(),
            path: u.path.clone(),
            complete: u.complete,
            forgotten: u.forgotten,
            body_bytes_received: u.received,
        }
    }

    /// Every upload, oldest first.
    pub fn infos(&self) -> Vec<UploadInfo> {
        let mut all: Vec<(&String, &Upload)> = self.uploads.iter().collect();
        all.sort_by_key(|(_, u)| u.seq);
        all.into_iter()
            .map(|(id, u)| Self::info_of(id, u))
            .collect()
    }

    /// One upload.
    pub fn info(&self, id: &str) -> Option<UploadInfo> {
        self.uploads.get(id).map(|u| Self::info_of(id, u))
    }

    /// Where an upload's bytes are stored.
    pub fn path_of(&self, id: &str) -> Option<PathBuf> {
        self.uploads.get(id).map(|u| u.path.clone())
    }

    /// Marks every upload as lost.
    pub fn forget_all(&mut self) {
        for u in self.uploads.values_mut() {
            u.forgotten = true;
        }
    }

    /// Sets an upload's offset (while its writer holds it). With `may_complete`, an upload
    /// whose offset reached its length is marked complete. Returns whether it completed
    /// just now, or `None` if the upload disappeared (terminated).
    pub(super) fn set_offset(&mut self, id: &str, offset: u64, may_complete: bool) -> Option<bool> {
        let u = self.uploads.get_mut(id)?;
        u.offset = offset;
        if may_complete && !u.complete && u.offset == u.length {
            u.complete = true;
            return Some(true);
        }
        Some(false)
    }
}

pub(super) fn b64() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::STANDARD
}

/// Parses `Upload-Metadata`: comma-separated `key[ base64value]` pairs.
pub(crate) fn parse_metadata(header: &str) -> Result<Metadata, &'static str> {
    let mut out: Metadata = Vec::new();
    for pair in header.split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let mut parts = pair.split(' ').filter(|s| !s.is_empty());
        let key = parts.next().ok_or("empty metadata pair")?;
        if !key.is_ascii() {
            return Err("metadata key is not ASCII");
        }
        let value = match parts.next() {
            None => None,
            Some(v) => Some(
                b64()
                    .decode(v)
                    .map_err(|_| "metadata value is not base64")?,
            ),
        };
        if parts.next().is_some() {
            return Err("metadata pair has more than two parts");
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err("duplicate metadata key");
        }
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// Encodes metadata back into an `Upload-Metadata` value.
pub(crate) fn encode_metadata(md: &[(String, Option<Vec<u8>>)]) -> String {
    md.iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k} {}", b64().encode(v)),
            None => k.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}
