//! A connection's stream: the TCP socket under rustls, what the loop does
//! after a request, and cutting or closing it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::http;

/// The TCP socket as rustls sees it: reads go through a large buffer, writes go straight
/// to the socket.
pub(crate) struct Sock {
    pub(crate) reader: BufReader<TcpStream>,
    pub(crate) writer: TcpStream,
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// The TLS stream a connection's HTTP layer reads from and writes to.
pub(crate) type TlsStream = rustls::StreamOwned<rustls::ServerConnection, Sock>;

/// What the connection loop does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Read the next request.
    KeepAlive,
    /// Close gracefully (close_notify, FIN, drain what the client still sends).
    Close,
    /// Close abruptly, no answer.
    Abort,
}

/// Whether a read on the stream would return promptly: decrypted bytes are waiting, raw
/// bytes are buffered, or the kernel has data (or EOF) for the socket.
pub(crate) fn data_ready(stream: &mut TlsStream) -> bool {
    match stream.conn.process_new_packets() {
        Ok(state) if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() => return true,
        Ok(_) => {}
        Err(_) => return true, // the next read reports the error at once
    }
    if !stream.sock.reader.buffer().is_empty() {
        return true;
    }
    let tcp = &stream.sock.writer;
    if tcp.set_nonblocking(true).is_err() {
        return true;
    }
    let ready = !matches!(tcp.peek(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    if tcp.set_nonblocking(false).is_err() {
        log::warn!("devserver: cannot make socket blocking again");
    }
    ready
}

/// Cuts a connection at once (no answer, no close_notify).
pub(crate) fn cut(conn: &http::Conn<TlsStream>) {
    let _ = conn.stream_ref().sock.writer.shutdown(Shutdown::Both);
}

/// close_notify + FIN, then read and discard what the client still sends for a moment, so
/// the kernel doesn't answer unread data with a RST that could destroy our last response.
pub(crate) fn graceful_close(mut conn: http::Conn<TlsStream>) {
    let stream = conn.stream_mut();
    stream.conn.send_close_notify();
    let _ = stream.flush();
    let sock = &mut stream.sock;
    let _ = sock.writer.shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut drained = 0usize;
    let _ = sock
        .writer
        .set_read_timeout(Some(Duration::from_millis(250)));
    while Instant::now() < deadline && drained < 64 * 1024 * 1024 {
        let n = match sock.reader.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(b) => b.len(),
        };
        sock.reader.consume(n);
        drained += n;
    }
}
