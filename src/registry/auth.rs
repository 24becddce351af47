//! Registry credentials from Docker's config (`~/.docker/config.json`, or
//! `$DOCKER_CONFIG/config.json`): `auths` entries (base64 `auth`,
//! username/password, identity tokens), `credsStore` and `credHelpers`.
//! opm has no login command: `docker login` (or `oras login`) writes them.
//!
//! Secrets never reach a message: errors name the host and the helper only.

use super::error::{Error, ErrorKind};
use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;
use std::path::PathBuf;

fn config_file() -> PathBuf {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker"));
    dir.join("config.json")
}

/// The credentials for `host` (`host` or `host:port`), anonymous when the
/// Docker config has none for it.
pub fn for_host(host: &str) -> Result<RegistryAuth, Error> {
    let fail = |message: String| Error::new(ErrorKind::Credentials, message);
    let path = config_file();
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryAuth::Anonymous),
        Err(e) => return Err(fail(format!("cannot read {}: {e}", path.display()))),
    };
    // The crate says only "Unable to read config" for a malformed file.
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&text) {
        return Err(fail(format!("malformed Docker config {}: {e}; fix it or run 'docker login {host}'", path.display()),
        ));
    }
    match docker_credential::get_credential_from_reader(text.as_slice(), host) {
        Ok(DockerCredential::UsernamePassword(user, password)) => Ok(RegistryAuth::Basic(user, password)),
        // An identity token goes where the password would, as docker's
        // credential helpers hand it over (user "<token>").
        Ok(DockerCredential::IdentityToken(token)) => Ok(RegistryAuth::Basic("<token>".into(), token)),
        Err(CredentialRetrievalError::NoCredentialConfigured) => Ok(RegistryAuth::Anonymous),
        Err(CredentialRetrievalError::HelperFailure { helper, .. }) => Err(fail(format!("the credential helper {helper} failed for {host}: run 'docker login {host}' or check the helper"),
        )),
        Err(CredentialRetrievalError::HelperCommunicationError) => Err(fail(format!("cannot run the credential helper named in {} for {host}: is it installed and on PATH?", path.display()),
        )),
        Err(CredentialRetrievalError::MalformedHelperResponse) => Err(fail(format!("the credential helper for {host} gave a malformed answer"),
        )),
        Err(CredentialRetrievalError::CredentialDecodingError) | Err(CredentialRetrievalError::CredentialMismatchError) => {
            Err(fail(format!("malformed credentials for {host} in {}: run 'docker login {host}'", path.display()),
            ))
        }
        Err(e) => Err(fail(format!("cannot read credentials for {host} from {}: {e}", path.display()))),
    }
}

/// Where the credentials for `host` come from, for `--verbose`: the
/// helper or file that holds them, never the secret.
pub fn source(host: &str) -> String {
    let path = config_file();
    let Ok(text) = std::fs::read(&path) else { return "none (no Docker config): anonymous".into() };
    let Ok(config) = serde_json::from_slice::<serde_json::Value>(&text) else { return format!("{} (malformed)", path.display()) };
    if let Some(helper) = config["credHelpers"][host].as_str() {
        return format!("credential helper docker-credential-{helper} (credHelpers in {})", path.display());
    }
    if config["auths"].get(host).is_some() {
        return format!("the auths entry in {}", path.display());
    }
    if let Some(store) = config["credsStore"].as_str() {
        return format!("credential store docker-credential-{store} (credsStore in {})", path.display());
    }
    format!("none in {}: anonymous", path.display())
}
