//! Signing module versions in cosign's format: `opm mod publish --sign`
//! and `opm mod sign` (for versions already published, by cue or opm).

use crate::context::Context;
use crate::cue::Location;
use crate::error::{fail, Kind};
use crate::module::{semver, ModuleVersion};
use crate::registry::{self, Client};
use crate::trust::{self, SigningKey};
use crate::ui;
use base64::Engine as _;
use serde::Serialize;
use std::path::Path;

/// The environment variable cosign reads the private key's password from.
const PASSWORD_VAR: &str = "COSIGN_PASSWORD";

pub struct SignOptions {
    /// `module@vX.Y.Z`
    pub target: String,
    pub key: std::path::PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Signed {
    pub module: String,
    pub version: String,
    /// The manifest digest signed.
    pub digest: String,
    /// host/repository:sha256-<hex>.sig, where cosign finds it.
    pub signature: String,
    /// The key's fingerprint (SHA-256 of its public point).
    pub key: String,
    /// false: the same signature was there already.
    pub added: bool,
}

/// Opens a cosign private key: the password from COSIGN_PASSWORD, else
/// asked on the terminal. Done before anything is pushed, so that a wrong
/// password changes nothing.
pub fn open_key(path: &Path) -> anyhow::Result<SigningKey> {
    let password = match std::env::var(PASSWORD_VAR) {
        Ok(p) => p,
        Err(_) => ui::secret(&format!("Enter password for private key {}: ", path.display()))?
            .ok_or_else(|| fail(Kind::Other, format!("the private key {} needs its password: set {PASSWORD_VAR} (no terminal to ask on)", path.display())))?,
    };
    SigningKey::load(path, password.as_bytes())
}

/// Signs the manifest `digest` of the version at `loc` and stores the
/// signature beside it.
/// A version this key signed already is left as it is (as cosign does).
pub fn attach(client: &Client, mv: &ModuleVersion, loc: &Location, digest: &str, key: &SigningKey) -> anyhow::Result<Signed> {
    let existing = client.block_on(client.signatures_at(loc, digest))?;
    let public = key.public();
    let added = !existing.iter().any(|s| public.vouches(digest, s) == Some(true));
    if added {
        let payload = trust::payload(&registry::signed_reference(loc), digest);
        let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&payload)?);
        client.block_on(client.attach_signature(loc, digest, &payload, &signature))?;
    }
    let at = registry::signature_location(loc, digest);
    Ok(Signed {
        module: mv.base().to_string(),
        version: mv.version().to_string(),
        digest: digest.to_string(),
        signature: format!("{}/{}:{}", at.host, at.repository, at.tag),
        key: key.fingerprint(),
        added,
    })
}

/// `opm mod sign MODULE@VERSION --key KEY`.
pub fn sign(ctx: &Context, opts: &SignOptions) -> anyhow::Result<Signed> {
    let (base, version) = opts
        .target
        .rsplit_once('@')
        .filter(|(_, v)| semver::is_canonical(v))
        .ok_or_else(|| fail(Kind::Other, format!("{}: name one published version, as MODULE@vX.Y.Z", opts.target)))?;
    let base = crate::module::base_path(base);
    crate::cue::check_module_path(base).map_err(crate::error::Failure::from)?;
    if ctx.offline() {
        return Err(fail(Kind::Other, "--offline: signing stores the signature in the registry"));
    }
    let key = open_key(&opts.key)?;
    let mv = ModuleVersion::new(base, version);
    let client = ctx.client()?;
    let loc = client.locate(&mv)?;
    let (manifest, _) = client.block_on(client.manifest(&mv, false))?;
    attach(client, &mv, &loc, &manifest.digest, &key)
}
