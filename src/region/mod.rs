//! Regions: validated endpoints and host rules, country → region selection,
//! and the residency guard that turns a URL string into a [`GuardedUrl`].
//!
//! The chain of types is the invariant: a [`Region`] exists only inside a
//! [`VerifiedConfig`](crate::config::VerifiedConfig); an [`ApprovedRegion`] only comes out of
//! [`select`]; a [`GuardedUrl`] only comes out of [`ApprovedRegion::guard`]
//! or [`ApprovedRegion::resolve`]; and the uploader takes nothing else.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use ureq::http::Uri;

use crate::config::model::RegionSpec;
use crate::error::{Error, Result};

mod host;
mod select;
mod sources;

pub use sources::{Sources, MAX_SOURCES};

pub use host::HostRule;
pub use select::select;

/// A CIDR block from a region's `networks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `a.b.c.d/n` or `v6/n`.
    pub fn parse(s: &str) -> Result<IpNet> {
        let bad = || Error::InvalidEndpoint("networks entry is not a CIDR block");
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr = IpAddr::from_str(a).map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max || p.starts_with('+') {
            return Err(bad());
        }
        Ok(IpNet { addr, prefix })
    }

    /// Whether `ip` is inside the block (IPv4-mapped IPv6 peers match IPv4 blocks).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// How a service authenticates, as its signed config declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// Anonymous requests.
    None,
    /// `Authorization: Bearer <token>`, the token from the app's provider.
    Bearer,
}

impl AuthScheme {
    fn parse(s: Option<&str>) -> Result<AuthScheme> {
        match s {
            None | Some("none") => Ok(AuthScheme::None),
            Some("bearer") => Ok(AuthScheme::Bearer),
            // An unknown scheme could mean credentials the client would not send
            // (or send wrongly): refuse the config rather than guess.
            Some(_) => Err(Error::InvalidEndpoint("unknown service auth scheme")),
        }
    }
}

/// A service endpoint of a region (already checked against the region's host rules).
#[derive(Debug, Clone)]
pub struct Service {
    url: String,
    auth: AuthScheme,
}

impl Service {
    /// The endpoint URL (a creation URL for tus).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How requests to this service authenticate.
    pub fn auth(&self) -> AuthScheme {
        self.auth
    }
}

/// A validated region of a verified config.
#[derive(Clone)]
pub struct Region {
    id: String,
    services: BTreeMap<String, Service>,
    hosts: Vec<HostRule>,
    pins: Vec<[u8; 32]>,
    networks: Vec<IpNet>,
    ca_certs: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Endpoints and pins stay out of Debug output (it reaches logs).
        f.debug_struct("Region")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Region {
    /// Validates the host rules, pins, networks and trust anchors of a region
    /// (no services yet).
    pub(crate) fn from_rules(
        id: &str,
        allowed_hosts: &[String],
        pins: &[String],
        networks: &[String],
        ca_certs: &[String],
    ) -> Result<Region> {
        if id.is_empty() || id.len() > 64 {
            return Err(Error::malformed(
                "config",
                "region id must be 1..=64 characters",
            ));
        }
        if allowed_hosts.is_empty() {
            return Err(Error::InvalidEndpoint("region has no allowed_hosts"));
        }
        let hosts = allowed_hosts
            .iter()
            .map(|h| HostRule::parse(h))
            .collect::<Result<Vec<_>>>()?;
        let pins = pins
            .iter()
            .map(|p| {
                base64::engine::general_purpose::STANDARD
                    .decode(p)
                    .ok()
                    .and_then(|v| <[u8; 32]>::try_from(v).ok())
                    .ok_or_else(|| Error::malformed("config", "pin is not base64 of 32 bytes"))
            })
            .collect::<Result<Vec<_>>>()?;
        let networks = networks
            .iter()
            .map(|n| IpNet::parse(n))
            .collect::<Result<Vec<_>>>()?;
        let ca_certs = ca_certs
            .iter()
            .map(|pem| {
                let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
                    Error::malformed("config", "ca_certs entry is not a PEM certificate")
                })?;
                webpki::anchor_from_trusted_cert(&der).map_err(|_| {
                    Error::malformed("config", "ca_certs entry is not a usable trust anchor")
                })?;
                Ok(der)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Region {
            id: id.to_string(),
            services: BTreeMap::new(),
            hosts,
            pins,
            networks,
            ca_certs,
        })
    }

    /// Validates a region from the config payload.
    pub(crate) fn from_spec(id: &str, spec: &RegionSpec) -> Result<Region> {
        let mut region = Region::from_rules(
            id,
            &spec.allowed_hosts,
            &spec.pins,
            &spec.networks,
            &spec.ca_certs,
        )?;
        for (name, svc) in &spec.services {
            if svc.protocol != "tus" {
                return Err(Error::InvalidEndpoint("unsupported service protocol"));
            }
            let auth = AuthScheme::parse(svc.auth.as_deref())?;
            // Every endpoint must pass its own region's rules, or the whole config is rejected.
            let guarded = parse_guarded(&region, &svc.url)?;
            if guarded.uri.path_and_query().is_none() {
                return Err(Error::InvalidEndpoint("service URL has no path"));
            }
            region.services.insert(
                name.clone(),
                Service {
                    url: svc.url.clone(),
                    auth,
                },
            );
        }
        if region.services.is_empty() {
            return Err(Error::InvalidEndpoint("region has no services"));
        }
        Ok(region)
    }

    /// The region id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Service names and endpoints.
    pub fn services(&self) -> &BTreeMap<String, Service> {
        &self.services
    }

    /// Whether `host:port` passes one of the region's `allowed_hosts`.
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.hosts.iter().any(|r| r.allows(&host, port))
    }

    /// Whether a resolved peer address is acceptable (always, when no `networks` are listed).
    pub fn allows_peer(&self, ip: IpAddr) -> bool {
        self.networks.is_empty() || self.networks.iter().any(|n| n.contains(ip))
    }

    /// SPKI SHA-256 pins (empty: no pinning).
    pub fn pins(&self) -> &[[u8; 32]] {
        &self.pins
    }

    /// Extra trust anchors for this region only.
    pub fn ca_certs(&self) -> &[CertificateDer<'static>] {
        &self.ca_certs
    }
}

/// The region this account may upload to, under a verified, unexpired config.
/// Only [`select`] makes one.
#[derive(Debug, Clone)]
pub struct ApprovedRegion {
    region: Arc<Region>,
    config_version: u64,
}

impl ApprovedRegion {
    /// Region id (e.g. `in`).
    pub fn id(&self) -> &str {
        &self.region.id
    }

    /// The validated region.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Version of the config that approved it.
    pub fn config_version(&self) -> u64 {
        self.config_version
    }

    /// The guarded endpoint of `service`.
    pub fn endpoint(&self, service: &str) -> Result<GuardedUrl> {
        let svc = self
            .region
            .services
            .get(service)
            .ok_or(Error::InvalidArgument(
                "service not offered by the approved region",
            ))?;
        self.guard(&svc.url)
    }

    /// The residency guard: checks an absolute URL against this region before
    /// anything may connect to it.
    pub fn guard(&self, url: &str) -> Result<GuardedUrl> {
        parse_guarded(&self.region, url).map_err(|e| match e {
            Error::InvalidEndpoint(why) => Error::Residency(why),
            other => other,
        })
    }

    /// Resolves a server-supplied `Location` (absolute, scheme-relative,
    /// absolute-path or relative) against `base`, then guards it.
    pub fn resolve(&self, base: &GuardedUrl, location: &str) -> Result<GuardedUrl> {
        if location.is_empty() || location.chars().any(|c| c.is_control() || c == ' ') {
            return Err(Error::Protocol(
                "Location header is empty or has control characters".into(),
            ));
        }
        let authority = base.uri.authority().map(|a| a.as_str()).unwrap_or("");
        let absolute = if has_scheme(location) {
            location.to_string()
        } else if let Some(rest) = location.strip_prefix("//") {
            format!("https://{rest}")
        } else if location.starts_with('/') {
            format!("https://{authority}{location}")
        } else {
            let path = base.uri.path();
            let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(0)];
            let dir = if dir.is_empty() { "/" } else { dir };
            format!("https://{authority}{dir}{location}")
        };
        self.guard(&absolute)
    }
}

fn has_scheme(s: &str) -> bool {
    match s.find(':') {
        Some(i) if i > 0 => {
            let scheme = &s[..i];
            scheme.as_bytes()[0].is_ascii_alphabetic()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
                && !s[..i].contains('/')
        }
        _ => false,
    }
}

pub(crate) fn parse_guarded(region: &Region, url: &str) -> Result<GuardedUrl> {
    if url.len() > 4096 || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::InvalidEndpoint(
            "URL has whitespace or control characters",
        ));
    }
    if !url.starts_with("https://") {
        return Err(Error::InvalidEndpoint("URL is not https"));
    }
    if url.contains('#') {
        return Err(Error::InvalidEndpoint("URL has a fragment"));
    }
    let uri = Uri::from_str(url).map_err(|_| Error::InvalidEndpoint("URL does not parse"))?;
    let authority = uri
        .authority()
        .ok_or(Error::InvalidEndpoint("URL has no host"))?;
    if authority.as_str().contains('@') {
        return Err(Error::InvalidEndpoint("URL has userinfo"));
    }
    if authority.host().is_empty() {
        return Err(Error::InvalidEndpoint("URL has no host"));
    }
    // The same LDH / IP-literal checks as host rules (see `host`).
    let host = host::url_host(authority.host())?;
    let port = match authority.port() {
        Some(p) => p
            .as_str()
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or(Error::InvalidEndpoint("URL has a bad port"))?,
        None => 443,
    };
    if !region.allows_host(&host, port) {
        return Err(Error::InvalidEndpoint(
            "host is not in the region's allowed_hosts",
        ));
    }
    Ok(GuardedUrl {
        uri,
        host,
        port,
        region_id: region.id.clone(),
    })
}

/// `host:port` (IPv6 hosts in brackets): the key under which audit rows and
/// the connector's peer map name an endpoint.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A URL that passed the residency guard of one region. Only the guard makes
/// these, and the uploader accepts nothing else.
#[derive(Clone, PartialEq, Eq)]
pub struct GuardedUrl {
    uri: Uri,
    host: String,
    port: u16,
    region_id: String,
}

impl GuardedUrl {
    /// The full URL (may carry tokens: never log it).
    pub fn as_str(&self) -> String {
        self.uri.to_string()
    }

    /// The parsed URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Lowercase host (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Port (443 when the URL has none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, safe to log and audit (no path, no query).
    pub fn host_port(&self) -> String {
        host_port(&self.host, self.port)
    }

    /// The region whose guard approved it.
    pub fn region_id(&self) -> &str {
        &self.region_id
    }
}

impl fmt::Debug for GuardedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths can carry upload ids and tokens: only host:port is shown.
        write!(f, "GuardedUrl({})", self.host_port())
    }
}

/// Validates a country code as given by the app: two ASCII letters, upper-cased.
pub fn normalize_country(cc: &str) -> Result<String> {
    if cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(cc.to_ascii_uppercase())
    } else {
        Err(Error::InvalidArgument(
            "country must be an ISO 3166-1 alpha-2 code",
        ))
    }
}

#[cfg(test)]
mod tests;
