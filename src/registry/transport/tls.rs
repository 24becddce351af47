//! The certificates TLS trusts.

use super::Result;
use crate::registry::error::{Error, ErrorKind};
use std::sync::OnceLock;

/// TLS trusts the system's roots (SSL_CERT_FILE and SSL_CERT_DIR
/// honoured). A machine or container with none gets the Mozilla roots
/// built into opm instead (handed to the HTTP client, never through the
/// environment), so that it still reaches public registries.
pub(super) fn with_roots(builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder> {
    static SYSTEM_HAS_ROOTS: OnceLock<bool> = OnceLock::new();
    if *SYSTEM_HAS_ROOTS.get_or_init(|| !rustls_native_certs::load_native_certs().certs.is_empty()) {
        return Ok(builder);
    }
    let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| reqwest::Certificate::from_der(der.as_ref()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::new(ErrorKind::Other, format!("cannot load the CA certificates built into opm: {e}")))?;
    Ok(builder.tls_certs_only(roots))
}
