//! A config mirror for a loopback [`World`]: a TLS server of the world's CA
//! serving a directory under `/sources/`, and roots that list mirrors as
//! their `sources`. Tests, the demo and `cloudsync dev-server` use it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::world::World;
use super::{ServerOptions, TusServer};
use cloudsync::config::sign::{root_payload, sign_envelope};
use cloudsync::config::ROOT_PAYLOAD_TYPE;

/// A running mirror.
pub struct Mirror {
    /// The server (its uploads are unused; see [`TusServer::source_requests`]).
    pub server: TusServer,
    /// The directory it serves.
    pub dir: PathBuf,
    /// Base64 SPKI SHA-256 of its certificate (for `sources.pins`).
    pub pin: String,
}

impl Mirror {
    /// The base URL a root lists: `https://<addr>:<port>/sources/`.
    pub fn url(&self) -> String {
        self.server.sources_url()
    }

    /// Publishes `bytes` as `rel` (e.g. `config.json`, `root/2.json`):
    /// written aside, then renamed into place, so no request sees half of it.
    pub fn publish(&self, rel: &str, bytes: &[u8]) -> io::Result<()> {
        publish(&self.dir, rel, bytes)
    }

    /// Removes `rel` (a 404 from then on).
    pub fn unpublish(&self, rel: &str) -> io::Result<()> {
        std::fs::remove_file(self.dir.join(rel))
    }
}

/// Writes `dir/rel` atomically (a temporary file renamed into place).
pub fn publish(dir: &Path, rel: &str, bytes: &[u8]) -> io::Result<()> {
    let target = dir.join(rel);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = target.with_extension("tmp~");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &target)
}

impl World {
    /// Starts a mirror on `addr` (its own loopback address), its certificate
    /// from the world's CA, serving `<world dir>/<name>/`.
    pub fn start_mirror(&self, addr: Ipv4Addr, name: &str) -> io::Result<Mirror> {
        self.start_mirror_at(addr, 0, &addr.to_string(), name)
    }

    /// [`World::start_mirror`] listening on `addr:port` (port 0: any free
    /// one), reached by clients as `host` (an IPv4 literal or a DNS name,
    /// in its URL and its certificate).
    pub fn start_mirror_at(
        &self,
        addr: Ipv4Addr,
        port: u16,
        host: &str,
        name: &str,
    ) -> io::Result<Mirror> {
        let leaf = super::world::issue_for(&self.ca, host, addr);
        let pin = leaf.spki_sha256_b64();
        let dir = self.dir().join(name);
        std::fs::create_dir_all(dir.join("root"))?;
        let mut opts = ServerOptions::new(
            SocketAddr::new(IpAddr::V4(addr), port),
            leaf,
            self.dir().join(format!("{name}-uploads")),
            host.to_string(),
        );
        opts.sources_dir = Some(dir.clone());
        // Logged, labelled with its name, when the regions' servers are.
        let logged = self.setups.values().any(|s| s.log_requests);
        opts.request_log = logged.then(|| name.to_string());
        Ok(Mirror {
            server: TusServer::start(opts)?,
            dir,
            pin,
        })
    }

    /// The root payload of `version` with the world's keys (each role
    /// threshold 1) and `sources` (`{"urls": [...], "pins": [...], "ca_certs": [...]}`).
    pub fn root_payload_with_sources(
        &self,
        version: u64,
        sources: serde_json::Value,
    ) -> serde_json::Value {
        let base = root_payload(
            version,
            super::world::ROOT_EXPIRES,
            &[&self.root_key],
            1,
            &[&self.config_key],
            1,
        );
        let mut payload: serde_json::Value = serde_json::from_slice(&base).expect("JSON");
        payload["sources"] = sources;
        payload
    }

    /// Signs a root payload with the world's root key (which vouches for
    /// every version, so any two consecutive ones chain).
    pub fn sign_root(&self, payload: &serde_json::Value) -> Vec<u8> {
        sign_envelope(
            ROOT_PAYLOAD_TYPE,
            &serde_json::to_vec(payload).expect("JSON"),
            &[&self.root_key],
        )
    }

    /// A root of `version` with the world's keys, listing `urls` (and
    /// `pins`) as its `sources`, signed by the world's root key.
    pub fn root_with_sources(&self, version: u64, urls: &[String], pins: &[String]) -> Vec<u8> {
        let sources = serde_json::json!({"urls": urls, "pins": pins});
        self.sign_root(&self.root_payload_with_sources(version, sources))
    }

    /// Sets up `mirror` for `cloudsync dev-server --mirror`: publishes
    /// `config` as its `config.json`. Returns the root v1 payload listing the
    /// mirror (its URL, its pin and the world's CA, so an agent needs no
    /// extra trust to reach it) and the ready file's `mirror` object, which
    /// also names the payloads and keys [`World::write_ready_file_with`]
    /// writes into the world dir.
    pub fn prepare_mirror(
        &self,
        mirror: &Mirror,
        config: &[u8],
    ) -> io::Result<(serde_json::Value, serde_json::Value)> {
        let sources = serde_json::json!({
            "urls": [mirror.url()], "pins": [mirror.pin], "ca_certs": [self.ca.cert_pem()],
        });
        let root_payload = self.root_payload_with_sources(1, sources);
        let file = |name: &str| self.dir().join(name);
        mirror.publish("config.json", config)?;
        let info = serde_json::json!({
            "url": mirror.url(),
            "dir": mirror.dir,
            "pin": mirror.pin,
            "root_payload": file("root-payload.json"),
            "config_payload": file("config-payload.json"),
            "root_key": file("root.key"),
            "config_key": file("config.key"),
        });
        Ok((root_payload, info))
    }
}

impl World {
    /// [`World::write_ready_file`], with a mirror: `root.json` is then a root
    /// v1 whose `sources` list `mirror`, which serves the very `config.json`
    /// written here, and the ready file has a `mirror` object (see
    /// [`World::prepare_mirror`]).
    ///
    /// With or without a mirror it also writes what it takes to sign more
    /// under the same root: `root-payload.json` and `config-payload.json`
    /// (the payloads in force, to edit and re-sign) and `root.key` /
    /// `config.key` (the world's throwaway signing keys, mode 0600), named
    /// by the ready file's `root_payload`, `config_payload`, `root_key` and
    /// `config_key`.
    pub fn write_ready_file_with(&self, ready: &Path, mirror: Option<&Mirror>) -> io::Result<()> {
        self.write_ready_file_full(ready, mirror, &[])
    }

    /// [`World::write_ready_file_with`], the ready file also holding the
    /// top-level fields `extra` (e.g. `cloudsync dev-server --admin`'s
    /// `admin` URL).
    pub fn write_ready_file_full(
        &self,
        ready: &Path,
        mirror: Option<&Mirror>,
        extra: &[(&str, serde_json::Value)],
    ) -> io::Result<()> {
        let Some(m) = mirror else {
            // One envelope for both places: a v1 signed twice would differ in
            // `issued_at`, and the same version with other bytes is a rollback.
            let config_payload = self.config_json(1);
            let config_envelope = self.sign_config(&config_payload);
            let root_payload = serde_json::from_slice(&self.root_payload_bytes()).expect("JSON");
            let root = (root_payload, self.root_envelope.clone());
            return self.write_ready(ready, (config_payload, config_envelope), root, extra);
        };
        // One envelope for both places: the mirror serves the config written here.
        let config_payload = self.config_json(1);
        let config_envelope = self.sign_config(&config_payload);
        let (payload, info) = self.prepare_mirror(m, &config_envelope)?;
        let envelope = self.sign_root(&payload);
        self.write_ready(
            ready,
            (config_payload, config_envelope),
            (payload, envelope),
            &[extra, &[("mirror", info)]].concat(),
        )
    }
}
