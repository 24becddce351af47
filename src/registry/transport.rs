//! OCI transport: every byte opm sends to or reads from a registry goes
//! through here (oci-client over reqwest), with credentials, timeouts,
//! retries and errors of a kind. It knows OCI, not CUE modules.

use super::auth;
use futures_util::StreamExt as _;
use super::error::{Error, ErrorKind};
use crate::cue::Location;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client as OciClient, Reference, RegistryOperation};
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Tries of an idempotent request: the first and three retries.
const ATTEMPTS: u32 = 4;

/// A manifest as the registry stores it.
#[derive(Clone)]
pub struct Manifest {
    pub data: Vec<u8>,
    pub digest: String,
}

type Result<T> = std::result::Result<T, Error>;

/// A connection pool per registry host, with that host's credentials,
/// and what this run has already learnt from each registry.
#[derive(Default)]
pub struct Transport {
    /// Held while a host is first set up, so that parallel requests to a
    /// new host run its credential helper and its probe once.
    hosts: tokio::sync::Mutex<HashMap<String, Host>>,
    /// (host, repository, push) authorized in this run.
    authorized: Mutex<HashSet<(String, String, bool)>>,
    /// Manifests by (host, repository, tag), each fetched once per run.
    manifests: Mutex<HashMap<(String, String, String), Option<Manifest>>>,
}

#[derive(Clone)]
struct Host {
    client: OciClient,
    /// The user's credentials (what error messages speak of).
    auth: RegistryAuth,
    /// What oci-client is given. oci-client checks `/v2/` again before
    /// every request when a registry asks for no credentials at all; such
    /// hosts get an empty bearer token, which oci-client sends without
    /// asking and which a registry without authentication ignores.
    wire: RegistryAuth,
}

impl Transport {
    async fn host(&self, loc: &Location) -> Result<Host> {
        let mut hosts = self.hosts.lock().await;
        if let Some(h) = hosts.get(&loc.host) {
            return Ok(h.clone());
        }
        let auth = auth::for_host(&loc.host)?;
        crate::ui::verbose(&format!("credentials for {}: {}", loc.host, auth::source(&loc.host)));
        let mut wire = auth.clone();
        if matches!(auth, RegistryAuth::Anonymous) {
            let probe = client(loc)?;
            let latest = reference(loc, "latest");
            let challenge = retry("GET /v2/ (authentication probe)", loc, &auth, || probe.auth(&latest, &auth, RegistryOperation::Pull)).await?;
            if challenge.is_none() {
                wire = RegistryAuth::Bearer(String::new());
            }
        }
        let host = Host { client: client(loc)?, auth, wire };
        hosts.insert(loc.host.clone(), host.clone());
        Ok(host)
    }

    /// Authenticates for `op` on the repository of `loc`, once per run (a
    /// token exchange when the registry asks for one). oci-client drops
    /// token-exchange failures on its own request paths, so this is done
    /// first and its failure reported as rejected credentials.
    async fn authorized(&self, loc: &Location, op: RegistryOperation) -> Result<Host> {
        let host = self.host(loc).await?;
        let key = (loc.host.clone(), loc.repository.clone(), matches!(op, RegistryOperation::Push));
        if self.authorized.lock().expect("authorized set").contains(&key) {
            return Ok(host);
        }
        let reference = reference(loc, "latest");
        retry(if matches!(op, RegistryOperation::Push) { "authorize push" } else { "authorize pull" }, loc, &host.auth, || host.client.auth(&reference, &host.wire, op)).await?;
        self.authorized.lock().expect("authorized set").insert(key);
        Ok(host)
    }

    /// Every tag of the repository of `loc`. Pages through the list and
    /// stops when a page brings nothing new, for registries that ignore
    /// `n` and `last`.
    pub async fn tags(&self, loc: &Location) -> Result<Vec<String>> {
        let host = self.authorized(loc, RegistryOperation::Pull).await?;
        let reference = reference(loc, "latest");
        let mut tags: Vec<String> = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = retry("GET tags/list", loc, &host.auth, || {
                host.client.list_tags(&reference, &host.wire, Some(1000), last.as_deref())
            })
            .await;
            let page = match page {
                Ok(page) => page,
                // A repository that does not exist has no versions.
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(tags),
                Err(e) => return Err(e),
            };
            let before = tags.len();
            for tag in page.tags {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            if tags.len() == before {
                return Ok(tags);
            }
            last = tags.last().cloned();
        }
    }

    /// The manifest tagged `loc.tag`, or None when there is no such tag.
    /// Fetched once per run.
    pub async fn manifest(&self, loc: &Location) -> Result<Option<Manifest>> {
        let key = (loc.host.clone(), loc.repository.clone(), loc.tag.clone());
        if let Some(m) = self.manifests.lock().expect("manifest memo").get(&key) {
            return Ok(m.clone());
        }
        let host = self.authorized(loc, RegistryOperation::Pull).await?;
        let reference = reference(loc, &loc.tag);
        let got = retry(&format!("GET manifests/{}", loc.tag), loc, &host.auth, || {
            host.client.pull_manifest_raw(&reference, &host.wire, &[MANIFEST_MEDIA_TYPE])
        })
        .await;
        let manifest = match got {
            Ok((data, digest)) => Some(Manifest { data: data.to_vec(), digest }),
            Err(e) if e.kind == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        self.manifests.lock().expect("manifest memo").insert(key, manifest.clone());
        Ok(manifest)
    }

    /// A blob, checked against its digest.
    pub async fn blob(&self, loc: &Location, digest: &str, progress: Option<&indicatif::ProgressBar>) -> Result<Vec<u8>> {
        let host = self.authorized(loc, RegistryOperation::Pull).await?;
        let reference = reference(loc, "latest");
        let data = retry(&format!("GET blobs/{}", short(digest)), loc, &host.auth, || async {
            let mut out = Counted { data: Vec::new(), progress: progress.cloned() };
            host.client.pull_blob(&reference, digest, &mut out).await.map(|()| out.data)
        })
        .await?;
        if sha256(&data) != digest {
            return Err(Error::new(ErrorKind::Corrupt, format!("blob {digest} from {} does not match its digest", loc.host)));
        }
        Ok(data)
    }

    /// Uploads a blob unless the repository has it already, in chunks that
    /// `progress` counts as they go.
    pub async fn push_blob(&self, loc: &Location, data: &[u8], digest: &str, progress: &indicatif::ProgressBar) -> Result<()> {
        let host = self.authorized(loc, RegistryOperation::Push).await?;
        let reference = reference(loc, "latest");
        if retry(&format!("HEAD blobs/{}", short(digest)), loc, &host.auth, || host.client.blob_exists(&reference, digest)).await? {
            progress.inc(data.len() as u64);
            return Ok(());
        }
        let start = progress.position();
        retry(&format!("PUT blobs/{}", short(digest)), loc, &host.auth, || {
            progress.set_position(start);
            let bar = progress.clone();
            let chunks: Vec<bytes::Bytes> = data.chunks(256 << 10).map(bytes::Bytes::copy_from_slice).collect();
            let stream = futures_util::stream::iter(chunks).map(move |c| {
                bar.inc(c.len() as u64);
                Ok(c)
            });
            host.client.push_blob_stream(&reference, stream, digest, Some(data.len() as u64))
        })
        .await?;
        Ok(())
    }

    /// Uploads a manifest under `loc.tag`, with its media type set.
    pub async fn push_manifest(&self, loc: &Location, data: &[u8], media_type: &str) -> Result<()> {
        let host = self.authorized(loc, RegistryOperation::Push).await?;
        let reference = reference(loc, &loc.tag);
        let content_type = http::HeaderValue::from_str(media_type)
            .map_err(|_| Error::new(ErrorKind::Other, format!("invalid media type {media_type:?}")))?;
        retry(&format!("PUT manifests/{}", loc.tag), loc, &host.auth, || {
            host.client.push_manifest_raw(&reference, data.to_vec(), content_type.clone())
        })
        .await?;
        // What this run reads of the tag from now on.
        let key = (loc.host.clone(), loc.repository.clone(), loc.tag.clone());
        self.manifests.lock().expect("manifest memo").insert(key, Some(Manifest { data: data.to_vec(), digest: sha256(data) }));
        Ok(())
    }
}

/// A client for the registry of `loc`.
fn client(loc: &Location) -> Result<OciClient> {
    ensure_tls_roots()?;
    let config = ClientConfig {
        protocol: if loc.insecure { ClientProtocol::Http } else { ClientProtocol::Https },
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        ..ClientConfig::default()
    };
    OciClient::try_from(config)
        .map_err(|e| Error::new(ErrorKind::Other, format!("cannot set up a client for registry {}: {}", loc.host, one_line(&e.to_string()))))
}

/// TLS trusts the system's roots (SSL_CERT_FILE and SSL_CERT_DIR
/// honoured). A machine or container with none gets the Mozilla roots
/// built into opm, so that it still reaches public registries. They are
/// handed over as SSL_CERT_FILE, written to a private temporary directory:
/// oci-client builds a default HTTP client next to every configured one,
/// and that one reads the system's roots only (and panics without any).
fn ensure_tls_roots() -> Result<()> {
    static ROOTS: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    let done = ROOTS.get_or_init(|| {
        if !rustls_native_certs::load_native_certs().certs.is_empty() {
            return Ok(());
        }
        let mut pem = String::new();
        for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            use base64::Engine as _;
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

fn reference(loc: &Location, tag: &str) -> Reference {
    Reference::with_tag(loc.host.clone(), loc.repository.clone(), tag.to_string())
}

/// The OCI digest of `data`: `sha256:<hex>`.
pub fn sha256(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Runs an idempotent request, retrying on 429, 502, 503, 504 and broken
/// connections with a bounded exponential backoff (0.5 s, 1 s, 2 s; a 429's
/// Retry-After instead, up to a minute), and turns the final error into
/// one a person can act on.
async fn retry<T, F, Fut>(what: &str, loc: &Location, auth: &RegistryAuth, mut request: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, OciDistributionError>>,
{
    let started = std::time::Instant::now();
    let log = |outcome: &str, retries: u32| {
        let retried = if retries == 0 { String::new() } else { format!(", {retries} retr{}", if retries == 1 { "y" } else { "ies" }) };
        crate::ui::verbose(&format!("{what} {}/{} -> {outcome} in {} ms{retried}", loc.host, loc.repository, started.elapsed().as_millis()));
    };
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match request().await {
            Ok(value) => {
                log("ok", attempt - 1);
                return Ok(value);
            }
            Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                let wait = match (status_of(&e), url_of(&e)) {
                    (Some(429), Some(url)) => retry_after(url).await.unwrap_or(delay),
                    _ => delay,
                };
                tokio::time::sleep(wait).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => {
                let e = explain(loc, auth, &e);
                log(&format!("failed ({})", e.message), attempt - 1);
                return Err(e);
            }
        }
    }
}

fn url_of(e: &OciDistributionError) -> Option<&str> {
    match e {
        OciDistributionError::ServerError { url, .. } | OciDistributionError::RegistryError { url, .. } => Some(url),
        _ => None,
    }
}

/// How long a rate-limiting registry asks clients to wait. oci-client keeps
/// response headers to itself, so the same URL is asked again (HEAD) and
/// its Retry-After (in seconds) read; at most a minute.
async fn retry_after(url: &str) -> Option<Duration> {
    let client = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).build().ok()?;
    let response = client.head(url).send().await.ok()?;
    let seconds: u64 = response.headers().get(http::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(60)))
}

fn status_of(e: &OciDistributionError) -> Option<u16> {
    match e {
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::UnauthorizedError { .. } => Some(401),
        OciDistributionError::RequestError(e) => e.status().map(|s| s.as_u16()),
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().find_map(|err| match err.code {
                OciErrorCode::Unauthorized => Some(401),
                OciErrorCode::Denied => Some(403),
                OciErrorCode::NameUnknown
                | OciErrorCode::ManifestUnknown
                | OciErrorCode::BlobUnknown
                | OciErrorCode::NotFound => Some(404),
                OciErrorCode::Toomanyrequests => Some(429),
                _ => None,
            })
        }
        OciDistributionError::ImageManifestNotFoundError(_) => Some(404),
        OciDistributionError::AuthenticationFailure(_) => Some(401),
        _ => None,
    }
}

fn is_transient(e: &OciDistributionError) -> bool {
    match status_of(e) {
        Some(code) => matches!(code, 429 | 502 | 503 | 504),
        None => matches!(e, OciDistributionError::RequestError(r) if r.is_timeout() || (r.is_request() && !r.is_connect())),
    }
}

/// One line with the cause and the fix, and its kind: unreachable,
/// unauthorized, denied, not found, rate limited or other. No secret is in it:
/// oci-client's errors carry server bodies, never our credentials.
fn explain(loc: &Location, auth: &RegistryAuth, e: &OciDistributionError) -> Error {
    let host = &loc.host;
    let repo = format!("{host}/{}", loc.repository);
    if let OciDistributionError::RequestError(r) = e {
        let mut causes = String::new();
        let mut source: Option<&dyn std::error::Error> = Some(r);
        while let Some(err) = source {
            causes.push_str(&err.to_string());
            source = err.source();
        }
        if causes.contains("certificate") {
            return Error::new(
                ErrorKind::Unreachable,
                format!("the TLS certificate of registry {host} is not trusted: add its CA to the system's trust store (or point SSL_CERT_FILE at it)"),
            );
        }
        if causes.contains("dns error") || causes.contains("failed to lookup address") {
            return Error::new(
                ErrorKind::Unreachable,
                format!("cannot resolve registry host {} (name lookup failed): check the name, /etc/hosts and /etc/resolv.conf", host_name(host)),
            );
        }
        if r.is_connect() || r.is_timeout() {
            let scheme = if loc.insecure { "http" } else { "https" };
            let why = if r.is_timeout() { "timed out" } else { "connection failed" };
            return Error::new(
                ErrorKind::Unreachable,
                format!("cannot reach registry {host} over {scheme} ({why}): check that it is running and the routing ('opm config show')"),
            );
        }
    }
    let anonymous = matches!(auth, RegistryAuth::Anonymous);
    match status_of(e) {
        Some(401) if anonymous => Error::new(
            ErrorKind::Unauthorized,
            format!("registry {host} requires authentication: run 'docker login {host}'"),
        ),
        Some(401) => Error::new(
            ErrorKind::Unauthorized,
            format!("credentials for {host} were rejected: run 'docker login {host}'"),
        ),
        Some(403) => Error::new(
            ErrorKind::Denied,
            format!("access to {repo} was denied: the credentials for {host} lack permission"),
        ),
        Some(404) => Error::new(ErrorKind::NotFound, format!("{repo}: not found")),
        Some(429) => Error::new(ErrorKind::RateLimited, format!("registry {host} answered HTTP 429 for {repo}")),
        Some(code) => Error::new(ErrorKind::Other, format!("registry {host} answered HTTP {code} for {repo}")),
        None => Error::new(ErrorKind::Other, format!("registry {host}: {}", one_line(&e.to_string()))),
    }
}

/// A blob as it arrives, counted on a progress bar.
struct Counted {
    data: Vec<u8>,
    progress: Option<indicatif::ProgressBar>,
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.data.extend_from_slice(buf);
        if let Some(bar) = &this.progress {
            bar.inc(buf.len() as u64);
        }
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The first 12 hex digits of a digest, for logs.
fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// `host` without its port.
fn host_name(host: &str) -> &str {
    if let Some(ipv6) = host.strip_prefix('[') {
        return ipv6.split(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(name, _)| name)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
