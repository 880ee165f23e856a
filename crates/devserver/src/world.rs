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
use cloudsync::config::model::{format_time, unix_secs};
use cloudsync::config::sign::{root_payload, sign_envelope, SigningKey};
use cloudsync::config::{CONFIG_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE};
use cloudsync::net::UploadOptions;
use cloudsync::AgentOptions;

/// How one region's server is set up.
#[derive(Debug, Clone)]
pub struct RegionSetup {
    /// Region id (`in`, `sg`, ...).
    pub id: String,
    /// Address its server listens on (each standard region gets its own
    /// loopback address; `0.0.0.0` listens on every interface).
    pub addr: Ipv4Addr,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// The host clients use to reach it (`None`: `addr`): an IPv4 literal or
    /// a DNS name, e.g. `10.0.2.2` for an emulator. It goes into the
    /// config's URL and `allowed_hosts`, the certificate's SANs and, if an IP
    /// address, the region's `networks`.
    pub public_host: Option<String>,
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
    /// See [`ServerOptions::dedupe_by_key`] (off: a plain tus server that ignores
    /// the idempotency key).
    pub dedupe_by_key: bool,
    /// See [`ServerOptions::max_body`].
    pub max_body: Option<u64>,
    /// See [`ServerOptions::body_rate`].
    pub body_rate: Option<u64>,
    /// See [`ServerOptions::idle_close`].
    pub idle_close: Option<std::time::Duration>,
    /// See [`ServerOptions::bearer_token`]; the config then declares
    /// `"auth": "bearer"` for the region's service.
    pub bearer_token: Option<String>,
    /// Log one line per request to stderr, labelled with the region id (see
    /// [`ServerOptions::request_log`]).
    pub log_requests: bool,
}

impl RegionSetup {
    /// Defaults: checksum and termination on, absolute Locations, the idempotency
    /// key honoured, the server's other modes off.
    pub fn new(id: &str, addr: Ipv4Addr) -> RegionSetup {
        RegionSetup {
            id: id.into(),
            addr,
            port: 0,
            public_host: None,
            checksum: true,
            termination: true,
            relative_location: false,
            require_filetype: false,
            conflict_while_locked: false,
            reject_expect: false,
            dedupe_by_key: true,
            max_body: None,
            body_rate: None,
            idle_close: None,
            bearer_token: None,
            log_requests: false,
        }
    }

    /// The host clients use: [`RegionSetup::public_host`], else the address.
    pub fn host(&self) -> String {
        self.public_host
            .clone()
            .unwrap_or_else(|| self.addr.to_string())
    }
}

/// A server certificate of `ca` for `host` (an IP literal or a DNS name),
/// also valid for `bind` when it is a specific address.
pub(crate) fn issue_for(ca: &TestCa, host: &str, bind: Ipv4Addr) -> super::LeafCert {
    let mut ips: Vec<IpAddr> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    match host.parse::<IpAddr>() {
        Ok(ip) => ips.push(ip),
        Err(_) => names.push(host),
    }
    if !bind.is_unspecified() && !ips.contains(&IpAddr::V4(bind)) {
        ips.push(IpAddr::V4(bind));
    }
    ca.issue(&names, &ips)
}

/// A region's `networks` for `host`: its /32 (or /128) if it is an IP
/// literal, none for a DNS name (its addresses are not known here).
fn networks_for(host: &str) -> Vec<String> {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => vec![format!("{ip}/32")],
        Ok(IpAddr::V6(ip)) => vec![format!("{ip}/128")],
        Err(_) => vec![],
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
            &root_payload(1, ROOT_EXPIRES, &[&root_key], 1, &[&config_key], 1),
            &[&root_key],
        );
        let mut servers = BTreeMap::new();
        let mut setups = BTreeMap::new();
        let mut pins = BTreeMap::new();
        for r in regions {
            let leaf = issue_for(&ca, &r.host(), r.addr);
            pins.insert(r.id.clone(), leaf.spki_sha256_b64());
            let mut opts = ServerOptions::new(
                SocketAddr::new(IpAddr::V4(r.addr), r.port),
                leaf,
                dir.join(&r.id),
                r.host(),
            );
            opts.checksum = r.checksum;
            opts.termination = r.termination;
            opts.relative_location = r.relative_location;
            opts.require_filetype = r.require_filetype;
            opts.conflict_while_locked = r.conflict_while_locked;
            opts.reject_expect = r.reject_expect;
            opts.dedupe_by_key = r.dedupe_by_key;
            opts.max_body = r.max_body;
            opts.body_rate = r.body_rate;
            opts.idle_close = r.idle_close;
            opts.bearer_token = r.bearer_token.clone();
            opts.request_log = r.log_requests.then(|| r.id.clone());
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

    /// `https://<host>:<port>/files/` of a region's server (`host`: see
    /// [`RegionSetup::host`]).
    pub fn url(&self, region: &str) -> String {
        self.servers[region].base_url()
    }

    /// `host:port` of a region's server (its `allowed_hosts` entry).
    pub fn host_port(&self, region: &str) -> String {
        let host = crate::state::host_for_url(&self.setups[region].host());
        format!("{host}:{}", self.servers[region].port())
    }

    /// The config payload: each region allows only its own server, pins its
    /// key, restricts peers to its own address (when its host is an IP
    /// literal) and trusts the world's CA (`ca_certs`, so any client of the
    /// config reaches it without extra trust); its service declares
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
                    "networks": networks_for(&setup.host()),
                    "ca_certs": [self.ca.cert_pem()],
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
            retry: cloudsync::queue::RetryPolicy {
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
        self.write_ready_file_full(ready, None, &[])
    }

    /// Writes the ready file and the files it names: the config and root
    /// (payload, envelope) given, the CA, the world's signing keys, and the
    /// `extra` top-level fields (the `mirror` object when there is one,
    /// [`World::write_ready_file_with`]; the `admin` URL).
    pub(crate) fn write_ready(
        &self,
        ready: &Path,
        (config_payload, config_envelope): (serde_json::Value, Vec<u8>),
        (root_payload, root_envelope): (serde_json::Value, Vec<u8>),
        extra: &[(&str, serde_json::Value)],
    ) -> io::Result<()> {
        let file = |name: &str| self.dir.join(name);
        let pretty = |v: &serde_json::Value| serde_json::to_vec_pretty(v).expect("JSON");
        std::fs::write(file("root.json"), root_envelope)?;
        std::fs::write(file("config.json"), config_envelope)?;
        std::fs::write(file("ca.pem"), self.ca.cert_pem())?;
        std::fs::write(file("root-payload.json"), pretty(&root_payload))?;
        std::fs::write(file("config-payload.json"), pretty(&config_payload))?;
        write_private(&file("root.key"), &self.root_key.to_file_text())?;
        write_private(&file("config.key"), &self.config_key.to_file_text())?;
        let regions: serde_json::Map<String, serde_json::Value> = self
            .servers
            .iter()
            .map(|(id, s)| {
                let auth = if self.setups[id].bearer_token.is_some() { "bearer" } else { "none" };
                (id.clone(), serde_json::json!({"port": s.port(), "addr": s.addr().ip().to_string(), "host": self.setups[id].host(), "url": self.url(id), "auth": auth}))
            })
            .collect();
        let mut v = serde_json::json!({
            "root": file("root.json"), "config": file("config.json"), "ca_pem": file("ca.pem"),
            "root_payload": file("root-payload.json"), "config_payload": file("config-payload.json"),
            "root_key": file("root.key"), "config_key": file("config.key"),
            "regions": regions,
        });
        for (name, value) in extra {
            v[*name] = value.clone();
        }
        let tmp = ready.with_extension("tmp");
        std::fs::write(&tmp, pretty(&v))?;
        std::fs::rename(tmp, ready)
    }

    /// The payload of [`World::root_envelope`] (root v1, no `sources`).
    pub fn root_payload_bytes(&self) -> Vec<u8> {
        root_payload(
            1,
            ROOT_EXPIRES,
            &[&self.root_key],
            1,
            &[&self.config_key],
            1,
        )
    }
}

/// When the world's roots expire.
pub(crate) const ROOT_EXPIRES: &str = "2099-01-01T00:00:00Z";

/// Writes a key file readable by its owner only.
pub(crate) fn write_private(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        // A file left by an earlier run keeps its mode through open(): set it.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    opts.open(path)?.write_all(text.as_bytes())
}
