//! The certificates TLS trusts.

use super::Result;
use crate::registry::error::{Error, ErrorKind};
use base64::Engine as _;
use std::sync::OnceLock;

/// TLS trusts the system's roots (SSL_CERT_FILE and SSL_CERT_DIR
/// honoured). A machine or container with none gets the Mozilla roots
/// built into opm, handed over as SSL_CERT_FILE in a private temporary
/// directory, so that it still reaches public registries.
pub(super) fn ensure_tls_roots() -> Result<()> {
    static ROOTS: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let done = ROOTS.get_or_init(|| {
        if !rustls_native_certs::load_native_certs().certs.is_empty() {
            return Ok(());
        }
        let mut pem = String::new();
        for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
            pem += "-----BEGIN CERTIFICATE-----\n";
            for line in b64.as_bytes().chunks(64) {
                pem += std::str::from_utf8(line).expect("base64 is ASCII");
                pem += "\n";
            }
            pem += "-----END CERTIFICATE-----\n";
        }
        // A directory of this process's own (mode 0700): no other user can
        // plant or change the roots opm trusts. Kept until the process ends.
        let dir = tempfile::Builder::new().prefix("opm-roots-").tempdir().map_err(|e| {
            format!("this system has no CA certificates, and opm cannot write its own to the temporary directory ({e}): point SSL_CERT_FILE at a CA bundle")
        })?;
        let file = dir.path().join("roots.pem");
        std::fs::write(&file, pem.as_bytes()).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        std::mem::forget(dir);
        // Set before the first HTTP client exists; nothing else of opm
        // reads the environment concurrently.
        std::env::set_var("SSL_CERT_FILE", &file);
        Ok(())
    });
    done.clone().map_err(|why| Error::new(ErrorKind::Unreachable, why))
}
