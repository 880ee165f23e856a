//! Unit tests of the HTTP/1.1 subset.

use super::*;
use std::io::Cursor;

/// A Read+Write over an in-memory input, delivering at most `step` bytes per read.
struct Mem {
    input: Cursor<Vec<u8>>,
    step: usize,
    written: Vec<u8>,
}

impl Read for Mem {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step);
        self.input.read(&mut buf[..n])
    }
}

impl Write for Mem {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn conn(input: &[u8], step: usize) -> Conn<Mem> {
    Conn::new(
        Mem {
            input: Cursor::new(input.to_vec()),
            step,
            written: Vec::new(),
        },
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    )
}

fn read_body(c: &mut Conn<Mem>, req: &Request) -> io::Result<Vec<u8>> {
    let mut body = Body::new(req.framing().unwrap());
    let mut out = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        let n = body.read(c, &mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn parses_pipelined_requests_with_both_framings() {
    let input = b"\r\nPATCH /files/ab?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
PATCH https://h:1/files/cd HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\n";
    for step in [1, 3, 1000] {
        let mut c = conn(input, step);
        let r1 = c.read_head().unwrap().unwrap();
        assert_eq!(r1.method, "PATCH");
        assert_eq!(r1.path, "/files/ab");
        assert!(r1.keep_alive());
        assert_eq!(read_body(&mut c, &r1).unwrap(), b"hello");
        let r2 = c.read_head().unwrap().unwrap();
        assert_eq!(r2.path, "/files/cd");
        assert!(!r2.keep_alive());
        assert_eq!(r2.framing().unwrap(), Framing::Chunked);
        assert_eq!(
            read_body(&mut c, &r2).unwrap(),
            b"abc0123456789abcdef".to_vec()
        );
        assert!(c.read_head().unwrap().is_none());
    }
}

#[test]
fn rejects_malformed_and_oversized() {
    let mut c = conn(b"GARBAGE\r\n\r\n", 100);
    assert!(matches!(c.read_head(), Err(HeadError::Malformed(_))));
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
    let mut c = conn(&big, 10_000);
    assert!(matches!(c.read_head(), Err(HeadError::TooLarge)));
    let mut c = conn(b"GET / HTTP/1.1\r\nHost", 100);
    assert!(matches!(c.read_head(), Err(HeadError::Io(_))));
    let mut c = conn(
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        100,
    );
    assert!(c.read_head().unwrap().unwrap().framing().is_err());
    let mut c = conn(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        100,
    );
    let r = c.read_head().unwrap().unwrap();
    assert_eq!(
        read_body(&mut c, &r).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
}

#[test]
fn truncated_body_is_unexpected_eof() {
    let mut c = conn(b"PATCH / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 100);
    let r = c.read_head().unwrap().unwrap();
    assert_eq!(
        read_body(&mut c, &r).unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );
}

#[test]
fn response_framing() {
    let r = Response::new(204)
        .header("Tus-Resumable", "1.0.0")
        .to_bytes();
    assert_eq!(
        r,
        b"HTTP/1.1 204 No Content\r\nTus-Resumable: 1.0.0\r\n\r\n".to_vec()
    );
    let mut r = Response::new(404).text("nope");
    r.close = true;
    let s = String::from_utf8(r.to_bytes()).unwrap();
    assert!(s.contains("Content-Length: 5\r\n"));
    assert!(s.contains("Connection: close\r\n"));
    assert!(s.ends_with("\r\n\r\nnope\n"));
}
