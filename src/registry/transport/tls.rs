//! The certificates TLS trusts, read on the first TLS handshake: a run
//! that talks only to plain-HTTP registries (or to none) never reads the
//! system's certificate store, which costs about 10 ms.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::{Arc, OnceLock};

/// The TLS configuration of the registry client. It trusts the system's
/// roots (SSL_CERT_FILE and SSL_CERT_DIR honoured); a machine or
/// container with none gets the Mozilla roots built into opm instead, so
/// that it still reaches public registries.
pub(super) fn config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = Arc::new(SystemRoots { provider: provider.clone(), verifier: OnceLock::new() });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default crypto provider supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(roots)
        .with_no_client_auth();
    // HTTP/2 where the registry speaks it: every request of a get shares
    // one connection, whose TCP and TLS handshakes are paid once, instead
    // of a new connection (two more round trips) for each parallel request.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// rustls's own certificate check (as rustls-platform-verifier does it on
/// Linux), its roots read when the first certificate is checked.
#[derive(Debug)]
struct SystemRoots {
    provider: Arc<CryptoProvider>,
    verifier: OnceLock<Result<Arc<WebPkiServerVerifier>, rustls::Error>>,
}

impl SystemRoots {
    fn verifier(&self) -> Result<&WebPkiServerVerifier, rustls::Error> {
        let built = self.verifier.get_or_init(|| {
            let mut store = RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                store.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("cannot load the CA certificates: {e}")))
        });
        built.as_deref().map_err(Clone::clone)
    }
}

impl ServerCertVerifier for SystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    // The handshake's signatures need no roots: checked as WebPKI checks them.
    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
