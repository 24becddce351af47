//! Registry credentials from the files cue reads them from (its ociauth),
//! merged in this order, earlier entries winning per host:
//! `$DOCKER_AUTH_CONFIG` (inline JSON), `$DOCKER_CONFIG/config.json` (else
//! `~/.docker/config.json`), `$XDG_RUNTIME_DIR/containers/auth.json`
//! (podman's). Each may hold `auths` entries (base64 `auth`,
//! username/password, identity and registry tokens), `credsStore` and
//! `credHelpers`. opm has no login command: `docker login`, `podman
//! login` or `oras login` write them.
//!
//! Secrets never reach a message: errors name the host, the file and the
//! helper only. A helper that does not answer in time is killed.

use super::error::{Error, ErrorKind};
use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a credential helper may take (less when the command's time
/// budget ends sooner).
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);
/// A config file larger than this is not a credentials file.
const MAX_CONFIG: u64 = 4 << 20;

/// What opm presents to a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic {
        user: String,
        password: String,
    },
    /// An identity token (OAuth2 refresh token), exchanged for access
    /// tokens at the registry's token service.
    RefreshToken(String),
    /// A registry token, sent as the bearer token itself.
    AccessToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, not even in a debug print.
        f.write_str(match self {
            Credentials::Anonymous => "anonymous",
            Credentials::Basic { .. } => "basic",
            Credentials::RefreshToken(_) => "identity token",
            Credentials::AccessToken(_) => "registry token",
        })
    }
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigData {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: String,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Default, Clone, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    identitytoken: String,
    #[serde(default)]
    registrytoken: String,
}

/// A config source: its name for messages, and its bytes (None: absent).
struct Source {
    name: String,
    data: Option<Vec<u8>>,
}

fn sources() -> Result<Vec<Source>, Error> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let mut out = Vec::new();
    if let Some(inline) = env("DOCKER_AUTH_CONFIG") {
        out.push(Source { name: "$DOCKER_AUTH_CONFIG".into(), data: Some(inline.to_string_lossy().into_owned().into_bytes()) });
    }
    let mut files = Vec::new();
    match env("DOCKER_CONFIG") {
        Some(dir) => files.push(PathBuf::from(dir).join("config.json")),
        None => files.extend(env("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))),
    }
    files.extend(env("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("containers/auth.json")));
    for path in files {
        let name = path.display().to_string();
        let data = crate::files::read_regular(&path, MAX_CONFIG, "the credentials file").map_err(|e| credentials(format!("{e:#}")))?;
        out.push(Source { name, data });
    }
    Ok(out)
}

fn credentials(message: String) -> Error {
    Error::new(ErrorKind::Credentials, message)
}

/// The merged configuration, and where each host's entry came from.
struct Merged {
    data: ConfigData,
    origin: BTreeMap<String, String>,
    store_origin: String,
}

fn merged(host: &str) -> Result<Merged, Error> {
    let mut m = Merged { data: ConfigData::default(), origin: BTreeMap::new(), store_origin: String::new() };
    for source in sources()? {
        let Some(data) = source.data.filter(|d| !d.is_empty()) else { continue };
        let file: ConfigData = serde_json::from_slice(&data)
            .map_err(|e| credentials(format!("malformed Docker config {}: {e}; fix it or run 'docker login {host}'", source.name)))?;
        for (key, entry) in file.auths {
            // `https://host/v1/` and the like name the host.
            let key = url_host(&key).to_string();
            if !m.data.auths.contains_key(&key) {
                m.origin.insert(format!("auths/{key}"), source.name.clone());
                m.data.auths.insert(key, entry);
            }
        }
        for (key, helper) in file.cred_helpers {
            if !m.data.cred_helpers.contains_key(&key) {
                m.origin.insert(format!("helpers/{key}"), source.name.clone());
                m.data.cred_helpers.insert(key, helper);
            }
        }
        if m.data.creds_store.is_empty() && !file.creds_store.is_empty() {
            m.data.creds_store = file.creds_store;
            m.store_origin = source.name.clone();
        }
    }
    Ok(m)
}

/// The host of a registry URL, as docker's ConvertToHostname.
fn url_host(key: &str) -> &str {
    let rest = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

/// The credentials for `host` (`host` or `host:port`), anonymous when no
/// source has any for it. `deadline` bounds a credential helper.
pub fn for_host(host: &str, deadline: Instant) -> Result<Credentials, Error> {
    let m = merged(host)?;
    let (helper, explicit) = match m.data.cred_helpers.get(host) {
        Some(h) => (h.clone(), true),
        None => (m.data.creds_store.clone(), false),
    };
    if !helper.is_empty() {
        match run_helper(&helper, host, deadline) {
            Ok(Some(creds)) => return Ok(creds),
            Ok(None) => {}
            // A default store that is not installed is common (cue#2934).
            Err(HelperError::NotFound) if !explicit => {}
            Err(HelperError::NotFound) => {
                return Err(credentials(format!("cannot run the credential helper docker-credential-{helper} named for {host}: is it installed and on PATH?")))
            }
            Err(HelperError::Failed(why)) => {
                return Err(credentials(format!(
                    "the credential helper docker-credential-{helper} failed for {host} ({why}): run 'docker login {host}' or check the helper"
                )))
            }
        }
    }
    let Some(entry) = m.data.auths.get(host) else { return Ok(Credentials::Anonymous) };
    let origin = m.origin.get(&format!("auths/{host}")).cloned().unwrap_or_default();
    let malformed = || credentials(format!("malformed credentials for {host} in {origin}: run 'docker login {host}'"));
    if !entry.identitytoken.is_empty() {
        return Ok(Credentials::RefreshToken(entry.identitytoken.clone()));
    }
    if !entry.registrytoken.is_empty() {
        return Ok(Credentials::AccessToken(entry.registrytoken.clone()));
    }
    let (user, password) = if !entry.auth.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD.decode(entry.auth.trim()).map_err(|_| malformed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (u, p) = decoded.split_once(':').ok_or_else(malformed)?;
        (u.to_string(), p.to_string())
    } else {
        (entry.username.clone(), entry.password.clone())
    };
    if user.is_empty() && password.is_empty() {
        return Ok(Credentials::Anonymous);
    }
    Ok(Credentials::Basic { user, password })
}

enum HelperError {
    NotFound,
    Failed(String),
}

/// Runs `docker-credential-NAME get` for `host`, bounded by `deadline`
/// (crate::process: killed whole at the limit, and when the helper has
/// answered but something it started still holds its output open).
/// None: the helper has no credentials for the host.
fn run_helper(name: &str, host: &str, deadline: Instant) -> Result<Option<Credentials>, HelperError> {
    use crate::process::RunError;
    let program = format!("docker-credential-{name}");
    let mut helper = std::process::Command::new(&program);
    helper.arg("get").stderr(std::process::Stdio::null());
    let limit = deadline.saturating_duration_since(Instant::now()).min(HELPER_TIMEOUT);
    let finished = crate::process::run(helper, host.as_bytes(), limit, 1 << 20).map_err(|e| match e {
        RunError::NotFound => HelperError::NotFound,
        RunError::Failed(why) => HelperError::Failed(why),
        RunError::TimedOut(limit) => {
            let budget = if limit < HELPER_TIMEOUT { " (the command's time budget, --timeout)" } else { "" };
            HelperError::Failed(format!("no answer within {} s{budget}; it was stopped", limit.as_secs_f32().round()))
        }
    })?;
    let (out, status) = (finished.stdout, finished.status);
    if !status.success() {
        // The helpers' own words for "nothing stored for this host".
        if String::from_utf8_lossy(&out).contains("credentials not found") {
            return Ok(None);
        }
        return Err(HelperError::Failed(format!("exit status {}", status.code().unwrap_or(-1))));
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        #[serde(default)]
        username: String,
        #[serde(default)]
        secret: String,
    }
    let answer: Answer = serde_json::from_slice(&out).map_err(|_| HelperError::Failed("a malformed answer".into()))?;
    Ok(Some(if answer.username == "<token>" {
        Credentials::RefreshToken(answer.secret)
    } else {
        Credentials::Basic { user: answer.username, password: answer.secret }
    }))
}

/// Whether an executable named `program` is in a directory of PATH.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
    })
}

/// Where the credentials for `host` come from, for `--verbose` and
/// `opm registry check`: the helper or file that holds them, never the
/// secret.
pub fn source(host: &str) -> String {
    let m = match merged(host) {
        Ok(m) => m,
        Err(e) => return format!("unreadable ({})", e.message),
    };
    if let Some(helper) = m.data.cred_helpers.get(host) {
        let origin = m.origin.get(&format!("helpers/{host}")).cloned().unwrap_or_default();
        return format!("credential helper docker-credential-{helper} (credHelpers in {origin})");
    }
    if !m.data.creds_store.is_empty() {
        let program = format!("docker-credential-{}", m.data.creds_store);
        if !on_path(&program) {
            // As cue does, a default store that is not installed is skipped.
            let then = if m.data.auths.contains_key(host) { "the auths entry is used" } else { "anonymous" };
            return format!("none from the credential store: {program} (credsStore in {}) is not on PATH, so {then}", m.store_origin);
        }
        let also = if m.data.auths.contains_key(host) { ", else the auths entry" } else { "" };
        return format!("credential store {program} (credsStore in {}{also})", m.store_origin);
    }
    if m.data.auths.contains_key(host) {
        return format!("the auths entry in {}", m.origin.get(&format!("auths/{host}")).cloned().unwrap_or_default());
    }
    "none: anonymous".into()
}
