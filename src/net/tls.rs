//! TLS for a region: WebPKI verification (Mozilla's roots plus the region's
//! `ca_certs`), then the region's SPKI pins, matched on the chain WebPKI
//! actually verified. The ring provider is named explicitly, so no
//! process-wide default is consulted.

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore};

use super::UploadOptions;
use crate::error::{Error, Result};
use crate::region::Region;

/// Why the guard refused a connection (read back after a failed request).
pub(crate) type Refusal = Arc<Mutex<Option<&'static str>>>;

/// The ring provider, explicitly: no process-wide default is consulted.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// WebPKI verification (Mozilla roots + the region's `ca_certs`), then pins.
struct PinningVerifier {
    inner: Arc<WebPkiServerVerifier>,
    roots: Arc<RootCertStore>,
    pins: Vec<[u8; 32]>,
    refusal: Refusal,
}

impl PinningVerifier {
    /// Pins are matched on the chain WebPKI actually *verified* (leaf,
    /// intermediates, trust anchor), never on whatever extra certificates a
    /// server presents: appending the pinned certificate to a chain that
    /// verifies through another CA must not satisfy the pin.
    fn verified_path_matches_pin(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> bool {
        let Ok(ee) = webpki::EndEntityCert::try_from(end_entity) else {
            return false;
        };
        let algs = rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all;
        let pins = &self.pins;
        let hit = |der: &[u8]| {
            let d = ring::digest::digest(&ring::digest::SHA256, der);
            pins.iter().any(|p| p.as_slice() == d.as_ref())
        };
        // webpki may build several paths; accept if any verified path carries a pin.
        let check = |path: &webpki::VerifiedPath<'_>| -> std::result::Result<(), webpki::Error> {
            let found = hit(path.end_entity().subject_public_key_info().as_ref())
                || path
                    .intermediate_certificates()
                    .any(|c| hit(c.subject_public_key_info().as_ref()))
                || hit(webpki::spki_for_anchor(path.anchor()).as_ref());
            if found {
                Ok(())
            } else {
                Err(webpki::Error::UnknownIssuer)
            }
        };
        ee.verify_for_usage(
            algs,
            &self.roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            Some(&check),
        )
        .is_ok()
    }
}

impl fmt::Debug for PinningVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinningVerifier")
            .field("pins", &self.pins.len())
            .finish()
    }
}

/// SHA-256 of the DER SubjectPublicKeyInfo of a certificate.
pub fn spki_sha256(cert: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let spki = parsed.subject_public_key_info();
    let d = ring::digest::digest(&ring::digest::SHA256, spki.as_ref());
    d.as_ref().try_into().ok()
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let ok =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        if self.pins.is_empty() {
            return Ok(ok);
        }
        if self.verified_path_matches_pin(end_entity, intermediates, now) {
            Ok(ok)
        } else {
            *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) =
                Some("certificate chain matches no pin");
            Err(rustls::Error::General(
                "certificate chain matches no pin".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

pub(crate) fn tls_config(
    region: &Region,
    opts: &UploadOptions,
    refusal: Refusal,
) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    if !opts.no_public_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    // The region's own CAs are trusted for this region's agent only.
    for c in opts.extra_roots.iter().chain(region.ca_certs()) {
        roots.add(c.clone()).map_err(|_| {
            Error::malformed("config", "ca_certs entry is not a usable trust anchor")
        })?;
    }
    let roots = Arc::new(roots);
    let inner = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|_| Error::Internal("no trust anchors for this region".into()))?;
    let verifier = PinningVerifier {
        inner,
        roots,
        pins: region.pins().to_vec(),
        refusal,
    };
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|_| Error::Internal("TLS provider rejected default versions".into()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
    use std::net::IpAddr;
    use std::sync::Mutex;

    /// A CA made with `rcgen` (the dev server's `TestCa` lives in a crate
    /// that depends on this one, so a unit test cannot use it).
    struct TestCa(CertifiedIssuer<'static, KeyPair>);

    /// A leaf certificate and its SPKI's SHA-256, as a config pins it.
    struct Leaf {
        chain_der: Vec<Vec<u8>>,
        spki_sha256: [u8; 32],
    }

    impl TestCa {
        fn new(_name: &str) -> TestCa {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            TestCa(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
        }

        fn cert_der(&self) -> Vec<u8> {
            self.0.der().to_vec()
        }

        fn issue(&self, _dns: &[&str], ips: &[IpAddr]) -> Leaf {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
            let cert = params.signed_by(&key, &self.0).unwrap();
            let spki = ring::digest::digest(
                &ring::digest::SHA256,
                &rcgen::PublicKeyData::subject_public_key_info(&key),
            );
            Leaf {
                chain_der: vec![cert.der().to_vec()],
                spki_sha256: spki.as_ref().try_into().unwrap(),
            }
        }
    }

    impl Leaf {
        fn spki_sha256_b64(&self) -> String {
            base64::engine::general_purpose::STANDARD.encode(self.spki_sha256)
        }
    }

    fn verifier(ca: &TestCa, pins: Vec<[u8; 32]>) -> PinningVerifier {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(ca.cert_der())).unwrap();
        let roots = Arc::new(roots);
        let inner = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .unwrap();
        PinningVerifier {
            inner,
            roots,
            pins,
            refusal: Arc::new(Mutex::new(None)),
        }
    }

    fn pin(b64: &str) -> [u8; 32] {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
            .try_into()
            .unwrap()
    }

    #[test]
    fn pins_match_only_the_verified_path() {
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let ca = TestCa::new("test CA");
        let ours = ca.issue(&[], &[ip]);
        let pinned = ca.issue(&[], &["127.0.0.3".parse().unwrap()]);
        let name = ServerName::IpAddress(ip.into());
        let leaf = CertificateDer::from(ours.chain_der[0].clone());
        let now = UnixTime::now();
        // The pinned certificate appended as a bogus "intermediate" must not satisfy the pin.
        let v = verifier(&ca, vec![pin(&pinned.spki_sha256_b64())]);
        let extra = [CertificateDer::from(pinned.chain_der[0].clone())];
        assert!(v
            .verify_server_cert(&leaf, &extra, &name, &[], now)
            .is_err());
        // The leaf's own key pins; so does the trust anchor's (servers never send the root).
        let v = verifier(&ca, vec![pin(&ours.spki_sha256_b64())]);
        assert!(v.verify_server_cert(&leaf, &[], &name, &[], now).is_ok());
        let ca_der = CertificateDer::from(ca.cert_der());
        let anchor = webpki::anchor_from_trusted_cert(&ca_der).unwrap();
        let ca_pin = ring::digest::digest(
            &ring::digest::SHA256,
            webpki::spki_for_anchor(&anchor).as_ref(),
        );
        let v = verifier(&ca, vec![ca_pin.as_ref().try_into().unwrap()]);
        assert!(v.verify_server_cert(&leaf, &[], &name, &[], now).is_ok());
    }
}
