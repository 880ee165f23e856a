//! The signed mirrors a root lists (`sources`): where the agent fetches the
//! next roots and the current config. They are guarded like a region: https
//! only, host rules from the URLs themselves, optional `pins` and `ca_certs`,
//! so a fetch can reach nothing but the hosts the root's signers named.

use std::str::FromStr;
use std::sync::Arc;

use ureq::http::Uri;

use super::{host, host_port, parse_guarded, GuardedUrl, Region};
use crate::config::model::SourcesSpec;
use crate::error::{Error, Result};

/// Most mirrors a root may list.
pub const MAX_SOURCES: usize = 8;

/// The validated `sources` of a root.
#[derive(Clone)]
pub struct Sources {
    rules: Arc<Region>,
    bases: Vec<GuardedUrl>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("mirrors", &self.bases.len())
            .finish()
    }
}

impl Sources {
    /// Validates the root's `sources`: 1..=8 https base URLs ending in `/`,
    /// without query, userinfo or fragment; pins and CA certificates as a
    /// region's.
    pub(crate) fn from_spec(spec: &SourcesSpec) -> Result<Sources> {
        if spec.urls.is_empty() || spec.urls.len() > MAX_SOURCES {
            return Err(Error::InvalidEndpoint("sources must list 1..=8 URLs"));
        }
        let mut hosts = Vec::with_capacity(spec.urls.len());
        for url in &spec.urls {
            let uri =
                Uri::from_str(url).map_err(|_| Error::InvalidEndpoint("URL does not parse"))?;
            let authority = uri
                .authority()
                .ok_or(Error::InvalidEndpoint("URL has no host"))?;
            let h = host::url_host(authority.host())?;
            hosts.push(host_port(&h, authority.port_u16().unwrap_or(443)));
        }
        let rules = Region::from_rules("sources", &hosts, &spec.pins, &[], &spec.ca_certs)?;
        let bases = spec
            .urls
            .iter()
            .map(|u| {
                let g = parse_guarded(&rules, u)?;
                if !g.uri().path().ends_with('/') || g.uri().query().is_some() {
                    return Err(Error::InvalidEndpoint(
                        "a source URL must end in / and have no query",
                    ));
                }
                Ok(g)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Sources {
            rules: Arc::new(rules),
            bases,
        })
    }

    /// The mirrors' base URLs, in the order to try them.
    pub fn bases(&self) -> &[GuardedUrl] {
        &self.bases
    }

    /// The host rules, pins and anchors every fetch is checked against.
    pub(crate) fn rules(&self) -> &Arc<Region> {
        &self.rules
    }

    /// `base` joined with a relative path of the layout (`config.json`,
    /// `root/7.json`), guarded again.
    pub(crate) fn url(&self, base: &GuardedUrl, rel: &str) -> Result<GuardedUrl> {
        parse_guarded(&self.rules, &format!("{}{rel}", base.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(urls: &[&str]) -> SourcesSpec {
        SourcesSpec {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            pins: vec![],
            ca_certs: vec![],
        }
    }

    #[test]
    fn mirrors_are_guarded_like_regions() {
        let s = Sources::from_spec(&spec(&[
            "https://cdn.example.net/cloudsync/",
            "https://127.0.0.9:8443/m/",
        ]))
        .unwrap();
        assert_eq!(s.bases().len(), 2);
        let u = s.url(&s.bases()[0], "root/3.json").unwrap();
        assert_eq!(u.as_str(), "https://cdn.example.net/cloudsync/root/3.json");
        assert_eq!(u.host_port(), "cdn.example.net:443");
        for (bad, why) in [
            ("http://cdn.example.net/c/", "URL is not https"),
            (
                "https://cdn.example.net/c",
                "a source URL must end in / and have no query",
            ),
            (
                "https://cdn.example.net/c/?x=1",
                "a source URL must end in / and have no query",
            ),
            ("https://u@cdn.example.net/c/", "URL has userinfo"),
            (
                "https://cdn..example.net/c/",
                "host name has an empty label",
            ),
        ] {
            let e = Sources::from_spec(&spec(&[bad])).unwrap_err();
            assert_eq!(e.to_string(), format!("invalid endpoint: {why}"), "{bad}");
        }
        let e = Sources::from_spec(&spec(&[])).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidEndpoint);
    }
}
