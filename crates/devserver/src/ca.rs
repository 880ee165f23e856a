//! A throwaway certificate authority for the dev server, the demo and tests.
//!
//! Everything here is generated in memory with `rcgen` (ECDSA P-256): a self-signed
//! CA and leaf certificates for server names and IP addresses signed by it.

use std::net::IpAddr;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

/// A self-signed test certificate authority that can issue server (leaf) certificates.
///
/// Never use it for anything but tests, demos and benchmarks: the private key lives in
/// process memory and is thrown away with the value.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A leaf (server) certificate issued by a [`TestCa`], with its private key.
#[derive(Clone)]
pub struct LeafCert {
    /// DER certificates: the leaf first, then the CA certificate that signed it.
    pub chain_der: Vec<Vec<u8>>,
    /// The leaf's private key as PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// The leaf certificate alone, PEM encoded.
    pub cert_pem: String,
    /// The leaf's private key, PKCS#8 PEM encoded.
    pub key_pem: String,
}

impl std::fmt::Debug for LeafCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafCert")
            .field("chain_len", &self.chain_der.len())
            .field("spki_sha256_b64", &self.spki_sha256_b64())
            .finish_non_exhaustive()
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    // Positive and non-zero as RFC 5280 asks.
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

impl TestCa {
    /// Creates a new self-signed CA whose subject common name is `name`.
    ///
    /// Panics only if the key or certificate cannot be generated (which would be a bug).
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generating an ECDSA P-256 CA key");
        let mut params =
            CertificateParams::new(Vec::<String>::new()).expect("empty SAN list is valid");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "cloudsync devserver test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-signing the test CA");
        TestCa { issuer }
    }

    /// The CA certificate, PEM encoded (to hand to clients as a trust anchor).
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate, DER encoded.
    pub fn cert_der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A rustls root store that trusts exactly this CA.
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(self.cert_der()))
            .expect("the test CA certificate is a valid trust anchor");
        roots
    }

    /// Issues a server certificate signed by this CA, valid for the given DNS names and IP
    /// addresses (subject alternative names). The common name is the first DNS name (or
    /// the first IP address).
    ///
    /// Panics if a DNS name is not a valid IA5 string (test helper: names are literals).
    pub fn issue(&self, dns_names: &[&str], ips: &[IpAddr]) -> LeafCert {
        let key = KeyPair::generate().expect("generating an ECDSA P-256 leaf key");
        let mut params =
            CertificateParams::new(Vec::<String>::new()).expect("empty SAN list is valid");
        let mut sans = Vec::with_capacity(dns_names.len() + ips.len());
        for name in dns_names {
            let ia5 = (*name)
                .to_string()
                .try_into()
                .expect("DNS names given to TestCa::issue are ASCII");
            sans.push(SanType::DnsName(ia5));
        }
        for ip in ips {
            sans.push(SanType::IpAddress(*ip));
        }
        params.subject_alt_names = sans;
        let cn = dns_names
            .first()
            .map(|s| (*s).to_string())
            .or_else(|| ips.first().map(|ip| ip.to_string()))
            .unwrap_or_else(|| "cloudsync devserver".to_string());
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signing the leaf certificate with the test CA");
        LeafCert {
            chain_der: vec![cert.der().to_vec(), self.cert_der()],
            key_der: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl LeafCert {
    /// base64 (standard, padded) of SHA-256 over the leaf's DER SubjectPublicKeyInfo, the
    /// usual public-key pin format (as in HPKP / curl's `--pinnedpubkey sha256//...`).
    pub fn spki_sha256_b64(&self) -> String {
        let leaf = self
            .chain_der
            .first()
            .expect("a LeafCert chain holds at least the leaf");
        let spki = spki_of_certificate(leaf).expect("the leaf is a well-formed X.509 certificate");
        let digest = ring::digest::digest(&ring::digest::SHA256, spki);
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    }

    /// The certificate chain in the form rustls wants.
    pub fn rustls_chain(&self) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        self.chain_der
            .iter()
            .map(|c| rustls::pki_types::CertificateDer::from(c.clone()))
            .collect()
    }

    /// The private key in the form rustls wants.
    pub fn rustls_key(&self) -> rustls::pki_types::PrivateKeyDer<'static> {
        rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
            self.key_der.clone(),
        ))
    }
}

/// One parsed DER TLV.
struct Tlv<'a> {
    tag: u8,
    /// The whole TLV (header and content).
    whole: &'a [u8],
    /// What follows it.
    rest: &'a [u8],
    /// The content octets.
    content: &'a [u8],
}

/// Parses one DER TLV at the start of `input`.
fn der_tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let tag = *input.first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags never occur in the fields we walk
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*input.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    if end > input.len() {
        return None;
    }
    Some(Tlv {
        tag,
        whole: &input[..end],
        rest: &input[end..],
        content: &input[header..end],
    })
}

/// Extracts the DER SubjectPublicKeyInfo (whole TLV) from a DER X.509 certificate.
pub(crate) fn spki_of_certificate(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    let certificate = der_tlv(cert).filter(|t| t.tag == SEQUENCE)?;
    let tbs = der_tlv(certificate.content).filter(|t| t.tag == SEQUENCE)?;
    let mut fields = tbs.content;
    // Optional [0] EXPLICIT version.
    let first = der_tlv(fields)?;
    if first.tag == 0xa0 {
        fields = first.rest;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        fields = der_tlv(fields)?.rest;
    }
    let spki = der_tlv(fields).filter(|t| t.tag == SEQUENCE)?;
    Some(spki.whole)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData as _;

    #[test]
    fn spki_pin_matches_key() {
        let ca = TestCa::new("unit CA");
        let leaf = ca.issue(&["backup.in.test"], &["127.0.0.1".parse().unwrap()]);
        let key = KeyPair::try_from(leaf.key_der.as_slice()).unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode(
            ring::digest::digest(&ring::digest::SHA256, &key.subject_public_key_info()).as_ref(),
        );
        assert_eq!(leaf.spki_sha256_b64(), expected);
        assert_eq!(leaf.chain_der.len(), 2);
        assert_eq!(leaf.chain_der[1], ca.cert_der());
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn leaf_verifies_against_ca() {
        use rustls::client::danger::ServerCertVerifier as _;
        let ca = TestCa::new("unit CA");
        let leaf = ca.issue(&["backup.in.test"], &["127.0.0.1".parse().unwrap()]);
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(ca.root_store()),
            provider,
        )
        .build()
        .unwrap();
        let chain = leaf.rustls_chain();
        let now = rustls::pki_types::UnixTime::now();
        for name in ["backup.in.test", "127.0.0.1"] {
            let sn = rustls::pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(&chain[0], &chain[1..], &sn, &[], now)
                .unwrap();
        }
        let other = rustls::pki_types::ServerName::try_from("other.in.test").unwrap();
        assert!(verifier
            .verify_server_cert(&chain[0], &chain[1..], &other, &[], now)
            .is_err());
    }
}
