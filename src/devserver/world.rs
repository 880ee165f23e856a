//! A whole loopback "world" for tests, the demo and benchmarks: a throwaway
//! CA, one tus server per region on its own loopback address, throwaway root
//! and config keys, and a signed config that points each region at its server
//! (with pins and networks, so every residency check is exercised).

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{ServerOptions, TestCa, TusServer};
use crate::config::model::{format_time, unix_secs};
use crate::config::sign::{root_payload, sign_envelope, SigningKey};
use crate::config::{CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};
use crate::upload::UploadOptions;
use crate::AgentOptions;

/// How one region's server is set up.
#[derive(Debug, Clone)]
pub struct RegionSetup {
    /// Region id (`in`, `sg`, ...).
    pub id: String,
    /// Loopback address of its server (each region gets its own).
    pub addr: Ipv4Addr,
    /// Offer the checksum extension.
    pub checksum: bool,
    /// Offer termination.
    pub termination: bool,
    /// Answer relative `Location`s.
    pub relative_location: bool,
    /// See [`ServerOptions::require_filetype`].
    pub require_filetype: bool,
    /// See [`ServerOptions::conflict_while_locked`].
    pub conflict_while_locked: bool,
    /// See [`ServerOptions::reject_expect`].
    pub reject_expect: bool,
    /// See [`ServerOptions::idle_close`].
    pub idle_close: Option<std::time::Duration>,
    /// See [`ServerOptions::bearer_token`]; the config then declares
    /// `"auth": "bearer"` for the region's service.
    pub bearer_token: Option<String>,
}

impl RegionSetup {
    /// Defaults: checksum and termination on, absolute Locations, the server's other
    /// modes off.
    pub fn new(id: &str, addr: Ipv4Addr) -> RegionSetup {
        RegionSetup {
            id: id.into(),
            addr,
            checksum: true,
            termination: true,
            relative_location: false,
            require_filetype: false,
            conflict_while_locked: false,
            reject_expect: false,
            idle_close: None,
            bearer_token: None,
        }
    }
}

/// The standard regions: `in`, `sg`, `us`, `br` on 127.0.0.2..5.
pub fn standard_regions(ids: &[&str]) -> Vec<RegionSetup> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| RegionSetup::new(id, Ipv4Addr::new(127, 0, 0, 2 + i as u8)))
        .collect()
}

/// A running loopback world.
pub struct World {
    /// The throwaway CA every server's certificate chains to.
    pub ca: TestCa,
    /// Root signing key.
    pub root_key: SigningKey,
    /// Config signing key.
    pub config_key: SigningKey,
    /// Root envelope (the "firmware" root).
    pub root_envelope: Vec<u8>,
    /// Servers by region id.
    pub servers: BTreeMap<String, TusServer>,
    /// Region setups by id.
    pub setups: BTreeMap<String, RegionSetup>,
    /// Base SPKI pins by region (the leaf key of its server).
    pub pins: BTreeMap<String, String>,
    dir: PathBuf,
}

impl World {
    /// Starts one server per region under `dir` (uploads land in `dir/<region>/`).
    pub fn start(dir: &Path, regions: Vec<RegionSetup>) -> io::Result<World> {
        let ca = TestCa::new("cloudsync loopback test CA");
        let root_key = SigningKey::generate().map_err(io::Error::other)?;
        let config_key = SigningKey::generate().map_err(io::Error::other)?;
        let root_envelope = sign_envelope(
            ROOT_PAYLOAD_TYPE,
            &root_payload(
                1,
                "2099-01-01T00:00:00Z",
                &[&root_key],
                1,
                &[&config_key],
                1,
            ),
            &[&root_key],
        );
        let mut servers = BTreeMap::new();
        let mut setups = BTreeMap::new();
        let mut pins = BTreeMap::new();
        for r in regions {
            let ip = IpAddr::V4(r.addr);
            let leaf = ca.issue(&[], &[ip]);
            pins.insert(r.id.clone(), leaf.spki_sha256_b64());
            let mut opts = ServerOptions::new(
                SocketAddr::new(ip, 0),
                leaf,
                dir.join(&r.id),
                r.addr.to_string(),
            );
            opts.checksum = r.checksum;
            opts.termination = r.termination;
            opts.relative_location = r.relative_location;
            opts.require_filetype = r.require_filetype;
            opts.conflict_while_locked = r.conflict_while_locked;
            opts.reject_expect = r.reject_expect;
            opts.idle_close = r.idle_close;
            opts.bearer_token = r.bearer_token.clone();
            servers.insert(r.id.clone(), TusServer::start(opts)?);
            setups.insert(r.id.clone(), r);
        }
        Ok(World {
            ca,
            root_key,
            config_key,
            root_envelope,
            servers,
            setups,
            pins,
            dir: dir.to_path_buf(),
        })
    }

    /// The directory the world's servers keep their files in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `https://<addr>:<port>/files/` of a region's server.
    pub fn url(&self, region: &str) -> String {
        let s = &self.servers[region];
        format!("https://{}:{}/files/", s.addr().ip(), s.port())
    }

    /// `addr:port` of a region's server (its `allowed_hosts` entry).
    pub fn host_port(&self, region: &str) -> String {
        let s = &self.servers[region];
        format!("{}:{}", s.addr().ip(), s.port())
    }

    /// The config payload: each region allows only its own server, pins its
    /// key and restricts peers to its own address; its service declares
    /// `"auth": "bearer"` if its server requires a token. Countries: each region's
    /// upper-case id maps to it; `*` maps to the first region.
    pub fn config_json(&self, version: u64) -> serde_json::Value {
        let now = unix_secs(SystemTime::now());
        let mut regions = serde_json::Map::new();
        let mut countries = serde_json::Map::new();
        for (id, setup) in &self.setups {
            let mut service = serde_json::json!({"url": self.url(id), "protocol": "tus"});
            if setup.bearer_token.is_some() {
                service["auth"] = "bearer".into();
            }
            regions.insert(
                id.clone(),
                serde_json::json!({
                    "services": {"backup": service},
                    "allowed_hosts": [self.host_port(id)],
                    "pins": [self.pins[id]],
                    "networks": [format!("{}/32", setup.addr)],
                }),
            );
            countries.insert(
                id.to_ascii_uppercase(),
                serde_json::Value::String(id.clone()),
            );
        }
        if let Some(first) = self.setups.keys().next() {
            countries.insert("*".into(), serde_json::Value::String(first.clone()));
        }
        serde_json::json!({
            "version": version,
            "issued_at": format_time(now.saturating_sub(3600)),
            "expires_at": format_time(now + 30 * 24 * 3600),
            "countries": countries,
            "regions": regions,
        })
    }

    /// Signs a config payload with the world's config key.
    pub fn sign_config(&self, payload: &serde_json::Value) -> Vec<u8> {
        sign_envelope(
            CONFIG_PAYLOAD_TYPE,
            &serde_json::to_vec(payload).expect("JSON"),
            &[&self.config_key],
        )
    }

    /// The standard signed config, version `version`.
    pub fn config_envelope(&self, version: u64) -> Vec<u8> {
        self.sign_config(&self.config_json(version))
    }

    /// Upload options that trust only the world's CA.
    pub fn upload_options(&self) -> UploadOptions {
        UploadOptions {
            extra_roots: vec![rustls::pki_types::CertificateDer::from(self.ca.cert_der())],
            no_public_roots: true,
            chunk_size: 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(20),
        }
    }

    /// Agent options for this world (fast retries for tests).
    pub fn agent_options(&self) -> AgentOptions {
        AgentOptions {
            upload: self.upload_options(),
            retry: crate::queue::RetryPolicy {
                base: Duration::from_millis(1),
                cap: Duration::from_millis(5),
                max_attempts: 5,
            },
            ..Default::default()
        }
    }

    /// Bytes of user data each region's server received (decrypted HTTP bytes).
    pub fn bytes_by_region(&self) -> BTreeMap<String, u64> {
        self.servers
            .iter()
            .map(|(id, s)| (id.clone(), s.stats().app_bytes_received))
            .collect()
    }

    /// Writes `root.json`, `config.json`, `ca.pem` into the world dir and a
    /// ready file describing them (the contract of `cloudsync dev-server`).
    pub fn write_ready_file(&self, ready: &Path) -> io::Result<()> {
        self.write_ready_file_with(ready, None)
    }

    /// [`World::write_ready_file`], with a mirror: `root.json` is then a root
    /// v1 whose `sources` list `mirror`, which serves the very `config.json`
    /// written here, and the ready file has a `mirror` object (see
    /// [`World::prepare_mirror`]).
    pub fn write_ready_file_with(
        &self,
        ready: &Path,
        mirror: Option<&super::mirror::Mirror>,
    ) -> io::Result<()> {
        let root = self.dir.join("root.json");
        let config = self.dir.join("config.json");
        let ca = self.dir.join("ca.pem");
        // One envelope for both places: a v1 signed twice would differ in
        // `issued_at`, and the same version with other bytes is a rollback.
        let config_payload = self.config_json(1);
        let config_envelope = self.sign_config(&config_payload);
        let (root_envelope, mirror) = match mirror {
            Some(m) => {
                let (r, info) = self.prepare_mirror(m, &config_payload, &config_envelope)?;
                (r, Some(info))
            }
            None => (self.root_envelope.clone(), None),
        };
        std::fs::write(&root, root_envelope)?;
        std::fs::write(&config, config_envelope)?;
        std::fs::write(&ca, self.ca.cert_pem())?;
        let regions: serde_json::Map<String, serde_json::Value> = self
            .servers
            .iter()
            .map(|(id, s)| {
                let auth = if self.setups[id].bearer_token.is_some() { "bearer" } else { "none" };
                (id.clone(), serde_json::json!({"port": s.port(), "addr": s.addr().ip().to_string(), "url": self.url(id), "auth": auth}))
            })
            .collect();
        let mut v = serde_json::json!({
            "root": root, "config": config, "ca_pem": ca, "regions": regions,
        });
        if let Some(m) = mirror {
            v["mirror"] = m;
        }
        let tmp = ready.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&v).expect("JSON"))?;
        std::fs::rename(tmp, ready)
    }
}
