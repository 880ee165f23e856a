//! Host names: `allowed_hosts` rules and the hosts of URLs.
//!
//! A host in the config (a rule, or the host of a service `url`) is either an
//! IP literal (IPv4 dotted decimal, IPv6 in brackets) or an ASCII LDH name:
//!
//! * labels of letters, digits and hyphens, no hyphen first or last, 1..=63
//!   bytes each (so no empty label: no leading, doubled or trailing dot — the
//!   FQDN form `example.net.` is rejected too: write hosts without it);
//! * at most 253 bytes in all; lower-cased on parse;
//! * the last label is not a number (all digits, or `0x` + hex): browsers (the
//!   WHATWG URL host parser) read such a host as an IPv4 address in some
//!   form, so a name ending in one is either an IP literal in disguise or
//!   invalid. Only a real IP literal may end in a number;
//! * a `*.` rule matches proper subdomains of a name of at least two labels
//!   (`*.com` is refused; the public suffix list is not consulted), never an
//!   IP address, and never a host with an empty or non-LDH label.
//!
//! Non-ASCII hosts are rejected: IDN hosts must be written in punycode
//! (`xn--...`) in the config. Request URLs go through the `http` crate's URI
//! parser, which accepts only ASCII in an authority (it does not map IDNs, it
//! refuses them), so every host we compare is ASCII and matching stays
//! byte-wise after lower-casing.
//!
//! Errors name the broken rule, never the host (errors must not echo config
//! contents).

use std::net::{IpAddr, Ipv6Addr};

use crate::error::{Error, Result};

/// Longest host name (bytes, without a trailing dot).
const MAX_HOST: usize = 253;
/// Longest label (bytes).
const MAX_LABEL: usize = 63;

/// One `allowed_hosts` entry: a host name or IP literal, optionally `*.` for
/// any subdomain (never the apex), optionally `:port` (443 when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    wildcard: bool,
    host: String,
    port: u16,
}

impl HostRule {
    /// Parses one rule.
    pub fn parse(s: &str) -> Result<HostRule> {
        let bad = || Error::InvalidEndpoint("allowed_hosts entry is not host[:port]");
        if s.is_empty()
            || s.len() > 300
            || s.chars().any(|c| c.is_whitespace() || c == '/' || c == '@')
        {
            return Err(bad());
        }
        if !s.is_ascii() {
            return Err(not_ascii());
        }
        let (wildcard, rest) = match s.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (host, port) = split_host_port(rest).ok_or_else(bad)?;
        if host.is_empty() || host.contains('*') {
            return Err(bad());
        }
        let host = host.to_ascii_lowercase();
        if wildcard {
            check_wildcard_apex(&host)?;
        } else {
            check_host(&host)?;
        }
        Ok(HostRule {
            wildcard,
            host,
            port: port.unwrap_or(443),
        })
    }

    /// Whether `host:port` passes this rule. `host` must be lowercase, IPv6 without brackets.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        if !self.wildcard {
            return host == self.host;
        }
        // Defense in depth: parse keeps numeric tails out of wildcard rules,
        // so no IP literal can end in the apex; refuse them here anyway.
        if host.parse::<IpAddr>().is_ok() || host.len() > MAX_HOST {
            return false;
        }
        // A proper subdomain: one or more valid labels before ".apex".
        host.strip_suffix(self.host.as_str())
            .and_then(|prefix| prefix.strip_suffix('.'))
            .is_some_and(|prefix| prefix.split('.').all(|l| check_label(l).is_ok()))
    }
}

/// The host of a URL authority as the `http` crate gives it (IPv6 in
/// brackets), checked like a config host: returned lower-cased, IPv6 without
/// brackets.
pub(crate) fn url_host(raw: &str) -> Result<String> {
    if let Some(inner) = raw.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .filter(|h| h.parse::<Ipv6Addr>().is_ok())
            .map(str::to_ascii_lowercase)
            .ok_or(Error::InvalidEndpoint("URL host is not an IPv6 literal"));
    }
    if raw.contains(':') {
        return Err(Error::InvalidEndpoint("URL host is not an IPv6 literal"));
    }
    if !raw.is_ascii() {
        return Err(not_ascii());
    }
    let host = raw.to_ascii_lowercase();
    check_host(&host)?;
    Ok(host)
}

fn not_ascii() -> Error {
    Error::InvalidEndpoint("host is not ASCII (write IDNs in punycode)")
}

/// A non-wildcard host: an IP literal, or an LDH name.
fn check_host(host: &str) -> Result<()> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    check_name(host, MAX_HOST)
}

/// The name after `*.`: an LDH name of two or more labels, not an IP literal
/// (nor its tail: the last label is not numeric), short enough that
/// `x.<apex>` still fits in 253 bytes.
fn check_wildcard_apex(apex: &str) -> Result<()> {
    if apex.parse::<IpAddr>().is_ok() {
        return Err(Error::InvalidEndpoint("wildcard on an IP literal"));
    }
    check_name(apex, MAX_HOST - 2)?;
    if !apex.contains('.') {
        return Err(Error::InvalidEndpoint(
            "wildcard needs at least two labels after *.",
        ));
    }
    Ok(())
}

/// An LDH host name of at most `max` bytes whose last label is not numeric.
fn check_name(name: &str, max: usize) -> Result<()> {
    if !name.is_ascii() {
        return Err(not_ascii());
    }
    if name.len() > max {
        return Err(Error::InvalidEndpoint("host name is too long"));
    }
    for label in name.split('.') {
        check_label(label)?;
    }
    if name.rsplit('.').next().is_some_and(is_numeric_label) {
        return Err(Error::InvalidEndpoint(
            "host name ends in a number but is not an IP address",
        ));
    }
    Ok(())
}

/// One LDH label: 1..=63 letters, digits and inner hyphens.
fn check_label(label: &str) -> Result<()> {
    if label.is_empty() {
        return Err(Error::InvalidEndpoint("host name has an empty label"));
    }
    if label.len() > MAX_LABEL {
        return Err(Error::InvalidEndpoint("host name label is longer than 63"));
    }
    let ldh = label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ldh || label.starts_with('-') || label.ends_with('-') {
        return Err(Error::InvalidEndpoint(
            "host name label is not letters, digits and inner hyphens",
        ));
    }
    Ok(())
}

/// WHATWG's "ends in a number" test for one label: all digits, or `0x`
/// followed by hex digits (possibly none).
fn is_numeric_label(label: &str) -> bool {
    let hex = label
        .get(..2)
        .filter(|p| p.eq_ignore_ascii_case("0x"))
        .map(|_| &label[2..]);
    match hex {
        Some(h) => h.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// Splits `host[:port]` / `[v6][:port]`; returns the bare host.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        h.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(parse_port(p.strip_prefix(':')?)?),
        };
        return Some((h, port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(parse_port(p)?))),
        Some(_) => None, // bare IPv6 without brackets is ambiguous
        None => Some((s, None)),
    }
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|&p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn kind(s: &str) -> ErrorKind {
        HostRule::parse(s).unwrap_err().kind()
    }

    #[test]
    fn host_rules() {
        let r = HostRule::parse("*.storage.in.example.net:8443").unwrap();
        assert!(r.allows("a.storage.in.example.net", 8443));
        assert!(r.allows("x.y.storage.in.example.net", 8443));
        assert!(!r.allows("storage.in.example.net", 8443), "never the apex");
        assert!(!r.allows("a.storage.in.example.net", 443));
        assert!(!r.allows("evilstorage.in.example.net", 8443));
        assert!(!r.allows(".storage.in.example.net", 8443));
        let r = HostRule::parse("Backup.IN.example.net").unwrap();
        assert!(r.allows("backup.in.example.net", 443));
        assert!(
            !r.allows("backup.in.example.net", 8443),
            "no port means 443 only"
        );
        let r = HostRule::parse("[::1]:9000").unwrap();
        assert!(r.allows("::1", 9000));
        for bad in [
            "",
            "a b",
            "host:0",
            "host:99999",
            "host:",
            "*.1.2.3.4",
            "::1",
            "u@h",
            "h/p",
            "*",
        ] {
            assert_eq!(kind(bad), ErrorKind::InvalidEndpoint, "{bad}");
        }
    }

    #[test]
    fn wildcard_needs_two_labels() {
        for bad in ["*.com", "*.net:8443", "*.localhost"] {
            assert_eq!(kind(bad), ErrorKind::InvalidEndpoint, "{bad}");
        }
        let r = HostRule::parse("*.example.net").unwrap();
        assert!(r.allows("a.example.net", 443));
    }

    #[test]
    fn wildcard_never_covers_an_ip_literal() {
        for bad in [
            "*.0.0.9:8443",
            "*.0.9",
            "*.9",
            "*.1.2.3.4",
            "*.example.0x7f",
            "*.example.0x",
            "*.a.0XFF",
            "*.a.123",
            "*.[::1]:443",
        ] {
            assert_eq!(kind(bad), ErrorKind::InvalidEndpoint, "{bad}");
        }
        // Defense in depth: even a rule that got past parse never matches an IP.
        let forged = HostRule {
            wildcard: true,
            host: "0.0.9".into(),
            port: 8443,
        };
        assert!(!forged.allows("127.0.0.9", 8443));
        let forged_v6 = HostRule {
            wildcard: true,
            host: "1".into(),
            port: 443,
        };
        assert!(!forged_v6.allows("::ffff:1.2.3.1", 443));
        assert!(!forged_v6.allows("1.2.3.1", 443));
    }

    #[test]
    fn empty_labels_are_rejected() {
        for bad in [
            "..example.net",
            "*..example.net",
            "x..example.net",
            "example.net.",
            ".example.net",
            "*.example.net.",
            "*.example.net.:8443",
            "*.",
            "*..",
            "a.:443",
        ] {
            assert_eq!(kind(bad), ErrorKind::InvalidEndpoint, "{bad}");
        }
    }

    #[test]
    fn wildcard_match_needs_nonempty_ldh_labels() {
        let r = HostRule::parse("*.storage.in.example.net").unwrap();
        for bad in [
            "a..storage.in.example.net",
            "..storage.in.example.net",
            "a_b.storage.in.example.net",
            "-a.storage.in.example.net",
            "a%2e.storage.in.example.net",
        ] {
            assert!(!r.allows(bad, 443), "{bad}");
        }
    }

    #[test]
    fn labels_are_ldh() {
        for bad in [
            "a_b.example.net",
            "-a.example.net",
            "a-.example.net",
            "*.-a.example.net",
            "a.example-.net",
            "a%41.example.net",
            "a!.example.net",
            "bücher.example",
            "*.bücher.example",
            "例え.jp",
        ] {
            assert_eq!(kind(bad), ErrorKind::InvalidEndpoint, "{bad}");
        }
        let r = HostRule::parse("XN--Bcher-KVA.Example").unwrap();
        assert!(r.allows("xn--bcher-kva.example", 443), "lower-cased");
        assert!(
            HostRule::parse("a-b--c.example.net").is_ok(),
            "inner hyphens"
        );
        assert!(HostRule::parse("localhost:8080").is_ok());
    }

    #[test]
    fn numeric_tail_only_for_ip_literals() {
        for bad in [
            "1.2.3",
            "127.1",
            "0x7f.0.0.1",
            "127.0.0.01",
            "256.0.0.1",
            "example.42",
            "example.0x2a",
            "1.2.3.4.5",
        ] {
            // std's parser is strict (four decimal parts, no leading zeros).
            assert!(bad.parse::<IpAddr>().is_err(), "{bad}");
            assert_eq!(kind(bad), ErrorKind::InvalidEndpoint, "{bad}");
        }
        assert!(HostRule::parse("1.2.3.example.net").is_ok());
        assert!(HostRule::parse("0x.example.net").is_ok());
    }

    #[test]
    fn positives() {
        let r = HostRule::parse("*.backup.example.net").unwrap();
        assert!(r.allows("eu1.backup.example.net", 443));
        let r = HostRule::parse("b.in.test:8443").unwrap();
        assert!(r.allows("b.in.test", 8443));
        let r = HostRule::parse("127.0.0.2:8443").unwrap();
        assert!(r.allows("127.0.0.2", 8443));
        let r = HostRule::parse("[::1]:443").unwrap();
        assert!(r.allows("::1", 443));
        let r = HostRule::parse("xn--bcher-kva.example").unwrap();
        assert!(r.allows("xn--bcher-kva.example", 443));
    }

    fn name_of_len(total: usize) -> String {
        // 63-byte labels separated by dots, then a shorter alphabetic tail.
        let mut s = String::new();
        while total - s.len() > 64 {
            s.push_str(&"a".repeat(63));
            s.push('.');
        }
        s.push_str(&"b".repeat(total - s.len()));
        assert_eq!(s.len(), total);
        s
    }

    #[test]
    fn label_and_name_lengths() {
        let l63 = "a".repeat(63);
        let l64 = "a".repeat(64);
        assert!(HostRule::parse(&format!("{l63}.example.net")).is_ok());
        assert!(HostRule::parse(&format!("*.{l63}.example.net")).is_ok());
        assert_eq!(
            kind(&format!("{l64}.example.net")),
            ErrorKind::InvalidEndpoint
        );
        assert_eq!(
            kind(&format!("*.{l64}.example.net")),
            ErrorKind::InvalidEndpoint
        );
        assert!(HostRule::parse(&name_of_len(253)).is_ok());
        assert!(HostRule::parse(&format!("{}:8443", name_of_len(253))).is_ok());
        assert_eq!(kind(&name_of_len(254)), ErrorKind::InvalidEndpoint);
        // A wildcard apex must leave room for one more label.
        assert!(HostRule::parse(&format!("*.{}", name_of_len(251))).is_ok());
        assert_eq!(
            kind(&format!("*.{}", name_of_len(252))),
            ErrorKind::InvalidEndpoint
        );
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("B.In.Test").unwrap(), "b.in.test");
        assert_eq!(url_host("[::1]").unwrap(), "::1");
        assert_eq!(url_host("127.0.0.2").unwrap(), "127.0.0.2");
        for bad in [
            "",
            "[::1",
            "[1.2.3.4]",
            "::1",
            "a..b.example",
            "example.net.",
            ".example.net",
            "a_b.example",
            "127.0.0.01",
            "1.2.3",
            "bücher.example",
        ] {
            assert_eq!(
                url_host(bad).unwrap_err().kind(),
                ErrorKind::InvalidEndpoint,
                "{bad}"
            );
        }
    }
}
