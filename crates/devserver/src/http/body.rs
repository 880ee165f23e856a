//! Request bodies: Content-Length or chunked, streamed straight into the
//! caller's buffer.

use std::io::{self, Read, Write};

use std::sync::atomic::Ordering;

use super::{Conn, Framing};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Done,
}

/// Incremental reader for one request body.
#[derive(Debug)]
pub(crate) struct Body {
    kind: BodyKind,
    /// Body (payload) bytes delivered so far.
    pub delivered: u64,
}

#[derive(Debug)]
enum BodyKind {
    Length(u64),
    Chunked(ChunkState),
}

impl Body {
    /// A reader for a body with the given framing.
    pub fn new(framing: Framing) -> Self {
        Body {
            kind: match framing {
                Framing::Length(n) => BodyKind::Length(n),
                Framing::Chunked => BodyKind::Chunked(ChunkState::Size),
            },
            delivered: 0,
        }
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        matches!(
            self.kind,
            BodyKind::Length(0) | BodyKind::Chunked(ChunkState::Done)
        )
    }

    /// Bytes still to come, if known.
    pub fn remaining_hint(&self) -> Option<u64> {
        match self.kind {
            BodyKind::Length(n) => Some(n),
            BodyKind::Chunked(ChunkState::Done) => Some(0),
            BodyKind::Chunked(_) => None,
        }
    }

    /// Reads body bytes into `out`. Returns 0 once the body is complete; a peer that goes
    /// away early is an `UnexpectedEof` error; broken chunked framing is `InvalidData`.
    pub fn read<S: Read + Write>(
        &mut self,
        conn: &mut Conn<S>,
        out: &mut [u8],
    ) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.kind {
                BodyKind::Length(0) => return Ok(0),
                BodyKind::Length(remaining) => {
                    let want = clamp(out.len(), *remaining);
                    let n = conn.read_some(&mut out[..want])?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    *remaining -= n as u64;
                    self.delivered += n as u64;
                    conn.body_seen += n as u64;
                    conn.body_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(n);
                }
                BodyKind::Chunked(state) => match *state {
                    ChunkState::Done => return Ok(0),
                    ChunkState::Size => {
                        let line = conn.read_line()?;
                        let size = parse_chunk_size(&line)?;
                        *state = if size == 0 {
                            // Trailer section: skip fields up to the empty line.
                            loop {
                                if conn.read_line()?.is_empty() {
                                    break;
                                }
                            }
                            ChunkState::Done
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                    ChunkState::Data(left) => {
                        let want = clamp(out.len(), left);
                        let n = conn.read_some(&mut out[..want])?;
                        if n == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                        let left = left - n as u64;
                        *state = if left == 0 {
                            ChunkState::DataEnd
                        } else {
                            ChunkState::Data(left)
                        };
                        self.delivered += n as u64;
                        conn.body_seen += n as u64;
                        conn.body_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        return Ok(n);
                    }
                    ChunkState::DataEnd => {
                        if !conn.read_line()?.is_empty() {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "chunk data not followed by CRLF",
                            ));
                        }
                        *state = ChunkState::Size;
                    }
                },
            }
        }
    }

    /// Reads and throws away the rest of the body, up to `limit` bytes. Returns whether
    /// the body was fully consumed.
    pub fn discard<S: Read + Write>(&mut self, conn: &mut Conn<S>, limit: u64) -> bool {
        if self.remaining_hint().is_some_and(|r| r > limit) {
            return false;
        }
        let mut scratch = vec![0u8; 64 * 1024];
        let start = self.delivered;
        loop {
            if self.delivered - start > limit {
                return false;
            }
            match self.read(conn, &mut scratch) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }
}

fn clamp(len: usize, remaining: u64) -> usize {
    usize::try_from(remaining).map_or(len, |r| r.min(len))
}

fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad chunk size line");
    let size_part = match line.iter().position(|&b| b == b';') {
        Some(i) => &line[..i],
        None => line,
    };
    let text = std::str::from_utf8(size_part).map_err(|_| bad())?.trim();
    if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    u64::from_str_radix(text, 16).map_err(|_| bad())
}
