//! Unit tests of the residency guard: regions, host rules, guarded URLs.
use super::*;

fn region(hosts: &[&str], nets: &[&str]) -> Region {
    let spec: RegionSpec = serde_json::from_value(serde_json::json!({
        "services": {"backup": {"url": format!("https://{}/files/", hosts[0].trim_start_matches("*.")
            .replace("storage", "a.storage")), "protocol": "tus"}},
        "allowed_hosts": hosts, "networks": nets,
    }))
    .unwrap();
    Region::from_spec("in", &spec).unwrap()
}

fn spec(hosts: &[&str], url: &str) -> Result<Region> {
    let spec: RegionSpec = serde_json::from_value(serde_json::json!({
        "services": {"backup": {"url": url, "protocol": "tus"}},
        "allowed_hosts": hosts,
    }))
    .unwrap();
    Region::from_spec("in", &spec)
}

#[test]
fn service_auth_schemes() {
    let with = |auth: serde_json::Value| {
        let spec: RegionSpec = serde_json::from_value(serde_json::json!({
            "services": {"backup": {"url": "https://b.in.test/files/", "protocol": "tus", "auth": auth}},
            "allowed_hosts": ["b.in.test"],
        }))
        .unwrap();
        Region::from_spec("in", &spec)
    };
    let auth = |r: Region| r.services()["backup"].auth();
    assert_eq!(
        auth(with(serde_json::Value::Null).unwrap()),
        AuthScheme::None
    );
    assert_eq!(auth(with("none".into()).unwrap()), AuthScheme::None);
    assert_eq!(auth(with("bearer".into()).unwrap()), AuthScheme::Bearer);
    for bad in ["Bearer", "basic", "", "bearer "] {
        let e = with(bad.into()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidEndpoint, "{bad:?}");
        assert!(!e.to_string().contains(bad) || bad.is_empty(), "{e}");
    }
    // Absent altogether (configs signed before the field): none.
    assert_eq!(
        auth(spec(&["b.in.test"], "https://b.in.test/files/").unwrap()),
        AuthScheme::None
    );
}

#[test]
fn service_url_hosts_are_checked_like_rules() {
    let wild = ["*.storage.in.example.net:8443"];
    let long = format!("https://{}.storage.in.example.net:8443/f/", "a".repeat(64));
    for (hosts, url) in [
        (&wild[..], "https://a..storage.in.example.net:8443/f/"),
        (&wild[..], "https://a_b.storage.in.example.net:8443/f/"),
        (&wild[..], "https://-a.storage.in.example.net:8443/f/"),
        (&wild[..], "https://a.storage.in.example.net.:8443/f/"),
        (&wild[..], long.as_str()),
        (
            &["backup.in.example.net"],
            "https://backup.in.example.net./f/",
        ),
        (&["backup.in.example.net"], "https://b\u{fc}cher.example/f/"),
        (&["*.0.0.9:8443"], "https://127.0.0.9:8443/f/"),
        (&["127.0.0.9"], "https://127.0.0.09/f/"),
        (&["127.0.0.9"], "https://[127.0.0.9]/f/"),
        // The service must also pass its own region's rules (unchanged).
        (
            &["backup.in.example.net"],
            "https://backup.sg.example.net/f/",
        ),
    ] {
        let e = spec(hosts, url).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidEndpoint, "{url}");
        assert!(!e.to_string().contains("example"), "{e}");
    }
    for (hosts, url) in [
        (&wild[..], "https://eu1.storage.in.example.net:8443/f/"),
        (&["b.in.test:8443"], "https://B.IN.test:8443/f/"),
        (&["127.0.0.2:8443"], "https://127.0.0.2:8443/f/"),
        (&["[::1]:443"], "https://[::1]/f/"),
        (
            &["xn--bcher-kva.example"],
            "https://xn--bcher-kva.example/f/",
        ),
    ] {
        assert!(spec(hosts, url).is_ok(), "{url}");
    }
}

#[test]
fn guard_refuses_malformed_hosts_as_residency() {
    let r = region(&["*.storage.in.example.net:8443"], &[]);
    let a = ApprovedRegion {
        region: Arc::new(r),
        config_version: 1,
    };
    for evil in [
        "https://x..storage.in.example.net:8443/u/1",
        "https://x.storage.in.example.net.:8443/u/1",
        "https://x_y.storage.in.example.net:8443/u/1",
    ] {
        assert_eq!(
            a.guard(evil).unwrap_err().kind(),
            crate::ErrorKind::Residency,
            "{evil}"
        );
    }
    assert!(a.guard("https://x.storage.in.example.net:8443/u/1").is_ok());
}

#[test]
fn cidr() {
    let n = IpNet::parse("203.0.113.0/24").unwrap();
    assert!(n.contains("203.0.113.7".parse().unwrap()));
    assert!(n.contains("::ffff:203.0.113.7".parse().unwrap()));
    assert!(!n.contains("203.0.114.1".parse().unwrap()));
    assert!(IpNet::parse("0.0.0.0/0")
        .unwrap()
        .contains("8.8.8.8".parse().unwrap()));
    assert!(IpNet::parse("::1/128")
        .unwrap()
        .contains("::1".parse().unwrap()));
    for bad in ["1.2.3.4", "1.2.3.4/33", "x/8", "1.2.3.4/+8", "::/129"] {
        assert!(IpNet::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn guard_and_resolve() {
    let r = region(
        &["backup.in.example.net", "*.storage.in.example.net:8443"],
        &[],
    );
    let a = ApprovedRegion {
        region: Arc::new(r),
        config_version: 1,
    };
    let base = a.guard("https://backup.in.example.net/files/").unwrap();
    assert_eq!(base.host_port(), "backup.in.example.net:443");
    let abs = a.resolve(&base, "/files/abc").unwrap();
    assert_eq!(abs.as_str(), "https://backup.in.example.net/files/abc");
    let rel = a.resolve(&base, "abc?x=1").unwrap();
    assert_eq!(rel.as_str(), "https://backup.in.example.net/files/abc?x=1");
    let other = a
        .resolve(&base, "https://eu.storage.in.example.net:8443/u/1")
        .unwrap();
    assert_eq!(other.port(), 8443);
    for evil in [
        "https://backup.sg.example.net/files/x",
        "//backup.sg.example.net/files/x",
        "http://backup.in.example.net/files/x",
        "https://user@backup.in.example.net/files/x",
        "https://backup.in.example.net:444/files/x",
        "https://backup.in.example.net.evil.com/x",
        "ftp://backup.in.example.net/x",
    ] {
        let e = a.resolve(&base, evil).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Residency, "{evil}");
    }
    assert_eq!(
        a.resolve(&base, "a\r\nb").unwrap_err().kind(),
        crate::ErrorKind::Protocol
    );
}

#[test]
fn networks_check_peers() {
    let r = region(&["backup.in.example.net"], &["127.0.0.0/8"]);
    assert!(r.allows_peer("127.0.0.2".parse().unwrap()));
    assert!(!r.allows_peer("10.0.0.1".parse().unwrap()));
    let open = region(&["backup.in.example.net"], &[]);
    assert!(open.allows_peer("10.0.0.1".parse().unwrap()));
}

#[test]
fn countries() {
    assert_eq!(normalize_country("in").unwrap(), "IN");
    for bad in ["", "IND", "I1", "ü"] {
        assert!(normalize_country(bad).is_err());
    }
}
