//! A raw TLS + HTTP/1.1 client and a throwaway server environment for the unit tests.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use crate::{ServerOptions, TestCa, TusServer};

pub(super) const HOST: &str = "backup.in.test";

pub(super) fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub(super) fn sha256_b64(data: &[u8]) -> String {
    b64(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

pub(super) struct Env {
    pub(super) ca: TestCa,
    pub(super) server: TusServer,
    pub(super) _dir: tempfile::TempDir,
}

pub(super) fn env_with(tweak: impl FnOnce(&mut ServerOptions)) -> Env {
    let ca = TestCa::new("devserver test CA");
    let leaf = ca.issue(&[HOST], &["127.0.0.1".parse().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ServerOptions::new(
        "127.0.0.1:0".parse().unwrap(),
        leaf,
        dir.path().join("uploads"),
        HOST,
    );
    tweak(&mut opts);
    let server = TusServer::start(opts).unwrap();
    Env {
        ca,
        server,
        _dir: dir,
    }
}

pub(super) fn env() -> Env {
    env_with(|_| {})
}

#[derive(Debug)]
pub(super) struct Resp {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Resp {
    pub(super) fn h(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub(super) struct Client {
    pub(super) tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    pub(super) buf: Vec<u8>,
}

impl Client {
    pub(super) fn connect(env: &Env) -> Client {
        Client::connect_to(env.server.addr(), env.ca.root_store(), HOST)
    }

    /// A connection to `addr` trusting `roots`, checking the certificate for `name`.
    pub(super) fn connect_to(
        addr: std::net::SocketAddr,
        roots: rustls::RootCertStore,
        name: &str,
    ) -> Client {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client {
            tls: rustls::StreamOwned::new(conn, tcp),
            buf: Vec::new(),
        }
    }

    pub(super) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tls.write_all(bytes)?;
        self.tls.flush()
    }

    pub(super) fn send_head(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.send(head.as_bytes()).unwrap();
    }

    /// Sends a request with a Content-Length body and reads the answer.
    pub(super) fn req(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let len = body.len().to_string();
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if !body.is_empty() || method == "PATCH" || method == "POST" {
            all.push(("Content-Length", &len));
        }
        self.send_head(method, path, &all);
        self.send(body).unwrap();
        self.read_response(method == "HEAD").unwrap()
    }

    pub(super) fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let n = self.tls.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    pub(super) fn read_response(&mut self, head_request: bool) -> io::Result<Resp> {
        loop {
            let end = loop {
                if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i;
                }
                if self.fill()? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            };
            let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
            self.buf.drain(..end + 4);
            let mut lines = head.split("\r\n");
            let status: u16 = lines.next().unwrap()[9..12].parse().unwrap();
            let headers: Vec<(String, String)> = lines
                .map(|l| {
                    let (n, v) = l.split_once(':').unwrap();
                    (n.to_string(), v.trim().to_string())
                })
                .collect();
            if status == 100 {
                continue;
            }
            let mut resp = Resp {
                status,
                headers,
                body: Vec::new(),
            };
            if !head_request && status != 204 {
                let len: usize = resp.h("Content-Length").unwrap().parse().unwrap();
                while self.buf.len() < len {
                    if self.fill()? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                resp.body = self.buf.drain(..len).collect();
            }
            assert_eq!(resp.h("Tus-Resumable"), Some("1.0.0"), "{resp:?}");
            return Ok(resp);
        }
    }

    /// Whether the server closed the connection (EOF or reset) without more data.
    pub(super) fn closed(&mut self) -> bool {
        match self.fill() {
            Ok(0) | Err(_) => true,
            Ok(_) => false,
        }
    }

    pub(super) fn create(&mut self, length: u64, metadata: Option<&str>) -> Resp {
        let len = length.to_string();
        let mut h = vec![("Tus-Resumable", "1.0.0"), ("Upload-Length", len.as_str())];
        if let Some(md) = metadata {
            h.push(("Upload-Metadata", md));
        }
        self.req("POST", "/files/", &h, b"")
    }

    pub(super) fn patch(
        &mut self,
        path: &str,
        offset: u64,
        data: &[u8],
        extra: &[(&str, &str)],
    ) -> Resp {
        let off = offset.to_string();
        let mut h = vec![
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", off.as_str()),
            ("Content-Type", "application/offset+octet-stream"),
        ];
        h.extend_from_slice(extra);
        self.req("PATCH", path, &h, data)
    }

    pub(super) fn head(&mut self, path: &str) -> Resp {
        self.req("HEAD", path, &[("Tus-Resumable", "1.0.0")], b"")
    }
}

pub(super) fn path_of(location: &str) -> String {
    match location.find("/files/") {
        Some(i) => location[i..].to_string(),
        None => location.to_string(),
    }
}

pub(super) fn id_of(location: &str) -> String {
    location.rsplit('/').next().unwrap().to_string()
}

pub(super) fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}
