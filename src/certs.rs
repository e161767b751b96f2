//! The certificates servers present, seen as rustls verifies them: a verifier that delegates
//! every decision to webpki and, when a certificate passes, notes its summary under the name
//! it was verified for. hyper-rustls keeps the TLS session to itself, so this is where a
//! hop's record learns which certificate its connection had.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::record::CertSummary;

/// Names whose certificate is remembered at most; past it the notes start over (a
/// connection kept alive past that loses its hop's certificate, nothing else).
const KEEP: usize = 4096;

/// Certificates by the server name they were verified for, newest per name.
#[derive(Default)]
pub struct CertLog {
    seen: Mutex<HashMap<String, CertSummary>>,
}

impl CertLog {
    pub fn get(&self, name: &str) -> Option<CertSummary> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&name.to_ascii_lowercase()).cloned()
    }

    fn note(&self, name: String, summary: CertSummary) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= KEEP && !seen.contains_key(&name) {
            seen.clear();
        }
        seen.insert(name, summary);
    }
}

/// webpki's verdicts, with a note of each certificate that passed.
#[derive(Debug)]
pub struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    log: Arc<CertLog>,
}

impl std::fmt::Debug for CertLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertLog")
    }
}

impl Recording {
    pub fn new(inner: Arc<dyn ServerCertVerifier>, log: Arc<CertLog>) -> Recording {
        Recording { inner, log }
    }
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if let Some(summary) = CertSummary::of_der(end_entity) {
            let name = match server_name {
                ServerName::DnsName(d) => d.as_ref().to_ascii_lowercase(),
                ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                _ => return Ok(verified),
            };
            self.log.note(name, summary);
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
