//! Just enough HTTP/1.1 for a tus server: request heads, request bodies (Content-Length or
//! chunked), and small responses. Bodies are streamed straight into the caller's buffer.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Largest accepted request head (request line plus headers).
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Largest accepted chunk-size or trailer line in a chunked body.
const MAX_LINE: usize = 4096;
/// Size of the connection's read-ahead buffer (a head never exceeds [`MAX_HEAD`]).
const BUF_SIZE: usize = MAX_HEAD + 32 * 1024;

/// Why a request head could not be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// Transport failed or the peer went away mid-head.
    Io(io::Error),
    /// Syntax error: answer 400 and close.
    Malformed(&'static str),
    /// Head larger than [`MAX_HEAD`]: answer 431 and close.
    TooLarge,
}

impl From<io::Error> for HeadError {
    fn from(e: io::Error) -> Self {
        HeadError::Io(e)
    }
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// Method as sent (tus methods are upper case).
    pub method: String,
    /// Request target with any scheme/authority and query removed.
    pub path: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length` (or no body at all: length 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl Request {
    /// First value of a header, case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn connection_has(&self, token: &str) -> bool {
        self.headers_named("connection")
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection may stay open after this request.
    pub fn keep_alive(&self) -> bool {
        if self.minor == 0 {
            self.connection_has("keep-alive")
        } else {
            !self.connection_has("close")
        }
    }

    /// Whether the client waits for `100 Continue` before sending the body.
    pub fn expects_continue(&self) -> bool {
        self.minor >= 1
            && self
                .header("expect")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
    }

    /// The body framing, or an error message for a 400.
    pub fn framing(&self) -> Result<Framing, &'static str> {
        let mut te = self.headers_named("transfer-encoding").peekable();
        if te.peek().is_some() {
            let codings: Vec<&str> = te
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if codings.len() != 1 || !codings[0].eq_ignore_ascii_case("chunked") {
                return Err("unsupported Transfer-Encoding");
            }
            if self.header("content-length").is_some() {
                return Err("both Content-Length and Transfer-Encoding");
            }
            return Ok(Framing::Chunked);
        }
        let mut length: Option<u64> = None;
        for v in self.headers_named("content-length") {
            for part in v.split(',') {
                let n = parse_u64(part.trim()).ok_or("invalid Content-Length")?;
                if length.is_some_and(|l| l != n) {
                    return Err("conflicting Content-Length");
                }
                length = Some(n);
            }
        }
        Ok(Framing::Length(length.unwrap_or(0)))
    }
}

/// Parses a non-negative decimal integer (digits only, no sign, no spaces).
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a complete head (without the final empty line).
fn parse_head(head: &[u8]) -> Result<Request, HeadError> {
    let text = std::str::from_utf8(head).map_err(|_| HeadError::Malformed("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(HeadError::Malformed("empty head"))?;
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(HeadError::Malformed("bad request line")),
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(HeadError::Malformed("bad method"));
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err(HeadError::Malformed("unsupported HTTP version")),
    };
    let path = origin_path(target).ok_or(HeadError::Malformed("bad request target"))?;
    let mut headers = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            return Err(HeadError::Malformed("obsolete header line folding"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(HeadError::Malformed("header line without colon"))?;
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(HeadError::Malformed("bad header name"));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(HeadError::Malformed("bad header value"));
        }
        headers.push((
            name.to_string(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
    Ok(Request {
        method: method.to_string(),
        path,
        minor,
        headers,
    })
}

/// Reduces a request target to its path: strips `scheme://authority` (absolute form),
/// the query and the fragment.
fn origin_path(target: &str) -> Option<String> {
    let rest = if target.starts_with('/') {
        target
    } else if target == "*" {
        return Some("*".to_string());
    } else {
        let after_scheme = target.split_once("://")?.1;
        match after_scheme.find('/') {
            Some(i) => &after_scheme[i..],
            None => "/",
        }
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// A buffered HTTP connection over any byte stream (here: a rustls stream).
pub(crate) struct Conn<S> {
    stream: S,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    app_bytes: Arc<AtomicU64>,
    body_bytes: Arc<AtomicU64>,
    /// Request body bytes delivered on this connection (for the request log).
    pub body_seen: u64,
    /// The status of the last response sent on this connection (for the request log).
    pub last_status: Option<u16>,
}

impl<S: Read + Write> Conn<S> {
    /// Wraps a stream; every byte read from it is added to `app_bytes`, every request body
    /// byte delivered to `body_bytes`.
    pub fn new(stream: S, app_bytes: Arc<AtomicU64>, body_bytes: Arc<AtomicU64>) -> Self {
        Conn {
            stream,
            buf: vec![0u8; BUF_SIZE].into_boxed_slice(),
            pos: 0,
            end: 0,
            app_bytes,
            body_bytes,
            body_seen: 0,
            last_status: None,
        }
    }

    /// Whether bytes read ahead from the stream are waiting in this connection's buffer.
    pub fn has_buffered(&self) -> bool {
        self.pos < self.end
    }

    /// The underlying stream.
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The underlying stream.
    pub fn stream_ref(&self) -> &S {
        &self.stream
    }

    fn raw_read(stream: &mut S, app_bytes: &AtomicU64, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match stream.read(out) {
                Ok(n) => {
                    app_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads more bytes into the buffer (compacting first if needed). Returns 0 at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let n = Self::raw_read(&mut self.stream, &self.app_bytes, &mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Reads the next request head. `Ok(None)` means the peer closed the connection
    /// cleanly between requests.
    pub fn read_head(&mut self) -> Result<Option<Request>, HeadError> {
        let mut scanned = 0usize;
        loop {
            // Tolerate empty lines before the request line (RFC 9112 section 2.2).
            while self.end - self.pos >= 2 && &self.buf[self.pos..self.pos + 2] == b"\r\n" {
                self.pos += 2;
                scanned = 0;
            }
            let avail = &self.buf[self.pos..self.end];
            let from = scanned.saturating_sub(3);
            if let Some(i) = find(&avail[from..], b"\r\n\r\n") {
                let head_len = from + i;
                let req = parse_head(&avail[..head_len]);
                self.pos += head_len + 4;
                return req.map(Some);
            }
            scanned = avail.len();
            if scanned >= MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            if self.fill()? == 0 {
                return if self.pos == self.end {
                    Ok(None)
                } else {
                    Err(HeadError::Io(io::ErrorKind::UnexpectedEof.into()))
                };
            }
        }
    }

    /// Reads one CRLF-terminated line (chunked framing), without the line ending.
    fn read_line(&mut self) -> io::Result<Vec<u8>> {
        let mut scanned = 0usize;
        loop {
            let avail = &self.buf[self.pos..self.end];
            if let Some(i) = avail[scanned..].iter().position(|&b| b == b'\n') {
                let line_end = scanned + i;
                let mut line = avail[..line_end].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.pos += line_end + 1;
                return Ok(line);
            }
            scanned = avail.len();
            if scanned > MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunked line too long",
                ));
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Reads up to `out.len()` bytes: buffered bytes first, otherwise straight from the
    /// stream into `out` (no extra copy). Returns 0 at EOF.
    fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pos < self.end {
            let n = out.len().min(self.end - self.pos);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        Self::raw_read(&mut self.stream, &self.app_bytes, out)
    }

    /// Writes all bytes and flushes.
    pub fn write_all_flush(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends `100 Continue`.
    pub fn send_continue(&mut self) -> io::Result<()> {
        self.write_all_flush(b"HTTP/1.1 100 Continue\r\n\r\n")
    }

    /// Writes a complete response.
    pub fn send(&mut self, resp: &Response) -> io::Result<()> {
        self.last_status = Some(resp.status);
        self.write_all_flush(&resp.to_bytes())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

mod body;
mod response;
#[cfg(test)]
mod tests;

pub(crate) use body::Body;
pub(crate) use response::Response;
