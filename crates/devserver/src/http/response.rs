//! Small responses (tus responses have empty or tiny bodies).

/// A small response (tus responses have empty or tiny bodies).
pub(crate) struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields (besides the framing ones this type adds).
    pub headers: Vec<(&'static str, String)>,
    /// Body (sent unless the status forbids one or `head_request`).
    pub body: Vec<u8>,
    /// Adds `Connection: close`.
    pub close: bool,
    /// The response answers a HEAD request: no body and no Content-Length.
    pub head_request: bool,
}

impl Response {
    /// A response with the given status and no body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
            head_request: false,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets a plain-text body.
    pub fn text(mut self, body: &str) -> Self {
        self.body = format!("{body}\n").into_bytes();
        self.headers
            .push(("Content-Type", "text/plain; charset=utf-8".to_string()));
        self
    }

    fn body_allowed(&self) -> bool {
        !(self.status < 200 || self.status == 204 || self.status == 304 || self.head_request)
    }

    /// Serialises status line, headers and body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(
            format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status)).as_bytes(),
        );
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let body_allowed = self.body_allowed();
        if body_allowed {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if body_allowed {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Reason phrase for the status codes this server uses.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        423 => "Locked",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        460 => "Checksum Mismatch",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
