//! The admin channel's HTTP/1.1, as little of it as its clients need: one
//! request per connection (`Content-Length` bodies only), one JSON answer,
//! then the connection is closed.

use std::io::{self, BufRead, BufReader, Read, Write};

/// Longest request head (request line and header fields) read.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body read.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// One parsed request.
#[derive(Debug)]
pub(crate) struct Request {
    /// Method, as sent.
    pub method: String,
    /// Path (a query is kept: no route has one, so it is a 404).
    pub path: String,
    /// Header fields, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read: the status to answer, or nothing to
/// answer (the peer went away or was too slow).
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Answer this status with this message.
    Status(u16, &'static str),
    /// An I/O error (a timeout included): close without an answer.
    Io(io::Error),
}

/// Reads one request from `stream`.
pub(crate) fn read_request(stream: impl Read) -> Result<Request, ReadError> {
    let mut r = BufReader::new(stream.take((MAX_HEAD + MAX_BODY + 1) as u64));
    let mut head_len = 0;
    let mut line = String::new();
    let mut next_line = |r: &mut BufReader<_>, line: &mut String| -> Result<(), ReadError> {
        line.clear();
        let n = r.read_line(line).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => ReadError::Status(400, "request head is not UTF-8"),
            _ => ReadError::Io(e),
        })?;
        head_len += n;
        if n == 0 || !line.ends_with('\n') {
            return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        if head_len > MAX_HEAD {
            return Err(ReadError::Status(431, "request head too large"));
        }
        Ok(())
    };
    next_line(&mut r, &mut line)?;
    let mut parts = line.trim_end().split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Status(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !path.starts_with('/') {
        return Err(ReadError::Status(400, "malformed request line"));
    }
    let (method, path) = (method.to_string(), path.to_string());
    let mut headers = Vec::new();
    loop {
        next_line(&mut r, &mut line)?;
        let field = line.trim_end_matches(['\r', '\n']);
        if field.is_empty() {
            break;
        }
        let (name, value) = field
            .split_once(':')
            .ok_or(ReadError::Status(400, "malformed header field"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut req = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if req.header("transfer-encoding").is_some() {
        return Err(ReadError::Status(411, "send a Content-Length body"));
    }
    let len = match req.header("content-length") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ReadError::Status(400, "bad Content-Length"))?,
    };
    if len > MAX_BODY {
        return Err(ReadError::Status(413, "request body too large"));
    }
    req.body.resize(len, 0);
    r.read_exact(&mut req.body).map_err(ReadError::Io)?;
    Ok(req)
}

/// Writes a complete answer (`Connection: close`): `body` as JSON, or no
/// body for a 204.
pub(crate) fn write_response(
    mut stream: impl Write,
    status: u16,
    extra: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> io::Result<()> {
    let body = body.map(|b| serde_json::to_vec(b).expect("a JSON value serializes"));
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Cache-Control: no-store\r\nConnection: close\r\n");
    match &body {
        Some(b) => head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            b.len()
        )),
        None => head.push_str("Content-Length: 0\r\n\r\n"),
    }
    stream.write_all(head.as_bytes())?;
    if let Some(b) = body {
        stream.write_all(&b)?;
    }
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "",
    }
}
