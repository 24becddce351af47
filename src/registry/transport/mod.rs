//! OCI transport: every byte opm sends to or reads from a registry goes
//! through here, the distribution API over reqwest, with credentials
//! (Basic, and Docker's token auth with tokens per repository, renewed
//! when they expire), deadlines, retries, size caps and errors of a kind.
//! It knows OCI, not CUE modules.
//!
//! Bounds: connect 10 s; 15 s without a byte fails a try; each request,
//! body included, 60 s (`OPM_REQUEST_TIMEOUT`; blobs: plus a second per
//! 64 KiB); every request of a command within the command's time budget
//! (`--timeout`, default 2 minutes).
//! Requests that can be repeated are tried up to 4 times on 429, 500,
//! 502, 503, 504 and a broken or truncated body; a try that stalls (no
//! byte for 15 s, or past its deadline) is tried once more only.
//!
//! Here: the [`Transport`], how a request is sent and tried, and what is
//! read (tags, manifests, blobs); push.rs uploads; authorize.rs what each
//! host asks for and the tokens; retry.rs tries, deadlines and the budget;
//! explain.rs faults in the user's words; tls.rs the roots TLS trusts;
//! probe.rs `opm registry check`.

mod authorize;
mod explain;
mod probe;
mod push;
mod retry;
mod tls;

pub use authorize::Challenge;
pub use explain::redact_url;
pub use probe::Step;
pub use retry::{Limits, DEFAULT_BUDGET};

use super::auth::{self, Credentials};
use super::error::{Error, ErrorKind};
use crate::cue::Location;
use crate::registry::Progress;
use authorize::{Access, Host};
use explain::one_line;
use retry::{attempts, read_all, status_fault, Fault};
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A try that receives no byte for this long has stalled.
const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// One request, body included, by default (small documents; blobs get
/// more): `OPM_REQUEST_TIMEOUT` changes it.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The slowest transfer a blob's deadline allows for, in bytes a second.
const MIN_RATE: u64 = 64 << 10;

/// Caps on what a registry may send (other registry clients cap manifests
/// at 4 MiB too).
pub const MAX_MANIFEST: u64 = 4 << 20;
const MAX_DOCUMENT: u64 = 4 << 20;
const MAX_TAG_PAGES: usize = 100;
const MAX_TAGS: usize = 100_000;

/// A manifest as the registry stores it.
#[derive(Clone)]
pub struct Manifest {
    pub data: Vec<u8>,
    pub digest: String,
}

type Result<T> = std::result::Result<T, Error>;

/// (host, repository, tag or digest): what the per-run memories are keyed by.
type Key3 = (String, String, String);
/// A bearer token being fetched or fetched, by (host, scope).
type Tokens = HashMap<(String, String), Arc<tokio::sync::OnceCell<String>>>;

/// A connection pool shared by every registry host, each host's
/// credentials and authentication scheme, tokens per repository, and
/// what this run has already read.
pub struct Transport {
    limits: Limits,
    http: OnceLock<reqwest::Client>,
    /// Held while a host is first set up, so that parallel requests to a
    /// new host read its credentials once.
    hosts: tokio::sync::Mutex<HashMap<String, Arc<Host>>>,
    /// Bearer tokens by (host, scope), each fetched once (renewed when a
    /// registry says it expired).
    tokens: Mutex<Tokens>,
    /// Manifests by (host, repository, tag), each fetched once per run.
    manifests: Mutex<HashMap<Key3, Option<Manifest>>>,
    /// Blobs known to exist by (host, repository, digest).
    present: Mutex<HashSet<(String, String, String)>>,
    /// Held while a blob is checked and uploaded, by (host, repository,
    /// digest): one upload of a blob at a time. Two at once make
    /// distribution rewrite the repository's link to it, and a manifest
    /// that names it, checked in between, is refused (HTTP 400).
    uploads: Mutex<HashMap<Key3, Arc<tokio::sync::Mutex<()>>>>,
    /// Small blobs this run has read (module files, signature payloads),
    /// each fetched once.
    small: Mutex<HashMap<(String, String, String), Vec<u8>>>,
}

/// Blobs up to this size are kept for the rest of the run.
const SMALL_BLOB: u64 = 1 << 20;

/// A request, built again for each attempt.
struct Request<'a> {
    method: reqwest::Method,
    /// A path under the host (`/v2/...`) or a whole URL (upload locations).
    url: String,
    access: Access,
    headers: Vec<(http::HeaderName, String)>,
    body: Option<&'a [u8]>,
    /// Counts the bytes of an upload body as they go.
    progress: Option<&'a Progress>,
}

impl Transport {
    pub fn new(limits: Limits) -> Transport {
        Transport {
            limits,
            http: Default::default(),
            hosts: Default::default(),
            tokens: Default::default(),
            manifests: Default::default(),
            present: Default::default(),
            uploads: Default::default(),
            small: Default::default(),
        }
    }

    fn http(&self) -> Result<&reqwest::Client> {
        if let Some(c) = self.http.get() {
            return Ok(c);
        }
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls::config())
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("opm/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| Error::new(ErrorKind::Other, format!("cannot set up the HTTP client: {}", one_line(&e.without_url().to_string()))))?;
        Ok(self.http.get_or_init(|| client))
    }

    /// The host of `loc`, set up on first use: its credentials (a
    /// credential helper runs once). What it asks for is learnt from the
    /// first request's answer.
    async fn host(&self, loc: &Location) -> Result<Arc<Host>> {
        let mut hosts = self.hosts.lock().await;
        if let Some(h) = hosts.get(&loc.host) {
            return Ok(h.clone());
        }
        let credentials = auth::for_host(&loc.host, self.limits.deadline)?;
        tracing::debug!("credentials for {}: {}", loc.host, auth::source(&loc.host));
        let base = format!("{}://{}", if loc.insecure { "http" } else { "https" }, loc.host);
        let host = Arc::new(Host { base, credentials, challenge: Mutex::new(None), version_told: Default::default() });
        hosts.insert(loc.host.clone(), host.clone());
        Ok(host)
    }

    /// Sends a request and returns the response if it is a success;
    /// anything else is a fault. A 401 that says what the registry wants
    /// (the first one, or a push needing more than a pull) is answered
    /// with that; a bearer token the registry rejects is renewed once.
    async fn send(&self, loc: &Location, host: &Host, req: &Request<'_>) -> std::result::Result<reqwest::Response, Fault> {
        let http = self.http()?;
        let url = if req.url.starts_with("http://") || req.url.starts_with("https://") { req.url.clone() } else { format!("{}{}", host.base, req.url) };
        let mut renew = false;
        for pass in 0..3 {
            let mut builder = http.request(req.method.clone(), &url);
            if let Some(a) = self.authorization(host, loc, req.access, renew).await? {
                builder = builder.header(http::header::AUTHORIZATION, a);
            }
            for (k, v) in &req.headers {
                builder = builder.header(k, v);
            }
            if let Some(body) = req.body {
                builder = builder.header(http::header::CONTENT_LENGTH, body.len());
                builder = match req.progress {
                    Some(bar) => {
                        let bar = bar.clone();
                        let chunks: Vec<bytes::Bytes> = body.chunks(256 << 10).map(bytes::Bytes::copy_from_slice).collect();
                        builder.body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks.into_iter().map(move |c| {
                            bar.inc(c.len() as u64);
                            Ok::<_, std::io::Error>(c)
                        }))))
                    }
                    None => builder.body(body.to_vec()),
                };
            }
            let r = builder.send().await?;
            if !host.version_told.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::debug!("{} answers in {:?}", loc.host, r.version());
            }
            if r.status() == reqwest::StatusCode::UNAUTHORIZED && pass < 2 {
                if host.learn(loc, &r) {
                    continue;
                }
                let bearer = matches!(host.challenge(), Some(Challenge::Bearer { .. })) && !matches!(host.credentials, Credentials::AccessToken(_));
                if bearer && !renew {
                    // An expired token: a new one, once.
                    renew = true;
                    continue;
                }
            }
            if r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND && req.method == reqwest::Method::HEAD {
                return Ok(r);
            }
            return Err(status_fault(r).await);
        }
        unreachable!("the last pass returns")
    }

    /// Runs one request with retries, reading its answer with `read`.
    async fn run<T, F, Fut>(&self, what: &str, loc: &Location, req: Request<'_>, deadline: Duration, read: F) -> Result<T>
    where
        F: Fn(reqwest::Response) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, Fault>>,
    {
        let host = self.host(loc).await?;
        let (req, read, host) = (&req, &read, &host);
        attempts(&self.limits, what, loc, &host.credentials, || async move {
            self.limits
                .within(deadline, async {
                    let r = self.send(loc, host, req).await?;
                    read(r).await
                })
                .await?
        })
        .await
    }

    /// Every tag of the repository of `loc`, following `Link` pages (or
    /// asking from the last tag, for registries that send none) until a
    /// page brings nothing new; at most 100 pages and 100,000 tags.
    pub async fn tags(&self, loc: &Location) -> Result<Vec<String>> {
        let mut tags: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut url = format!("/v2/{}/tags/list?n=1000", loc.repository);
        for _ in 0..MAX_TAG_PAGES {
            let req = Request { method: reqwest::Method::GET, url: url.clone(), access: Access::Pull, headers: vec![], body: None, progress: None };
            let page = self
                .run("GET tags/list", loc, req, self.limits.request, |r| async move {
                    let next = r.headers().get(http::header::LINK).and_then(|v| v.to_str().ok()).and_then(next_link);
                    let body = read_all(r, MAX_DOCUMENT, None).await?;
                    #[derive(serde::Deserialize)]
                    struct Page {
                        #[serde(default)]
                        tags: Option<Vec<String>>,
                    }
                    let page: Page = serde_json::from_slice(&body).map_err(|_| Fault::Malformed("the tag list is not JSON".into()))?;
                    Ok((page.tags.unwrap_or_default(), next))
                })
                .await;
            let (page, next) = match page {
                Ok(p) => p,
                // A repository that does not exist has no versions.
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(tags),
                Err(e) => return Err(e),
            };
            let before = tags.len();
            for tag in page {
                if seen.insert(tag.clone()) {
                    tags.push(tag);
                }
            }
            if tags.len() > MAX_TAGS {
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!("{}/{} lists more than {MAX_TAGS} tags: opm reads no more (a registry that pages forever?)", loc.host, loc.repository),
                ));
            }
            if tags.len() == before {
                return Ok(tags);
            }
            url = match next {
                Some(next) => next,
                None => match tags.last() {
                    Some(last) => format!("/v2/{}/tags/list?n=1000&last={}", loc.repository, percent(last)),
                    None => return Ok(tags),
                },
            };
        }
        Err(Error::new(
            ErrorKind::Limit,
            format!(
                "the tag list of {}/{} goes on for more than {MAX_TAG_PAGES} pages: opm reads no more (a registry that pages forever?)",
                loc.host, loc.repository
            ),
        ))
    }

    /// The manifest tagged `loc.tag`, or None when there is no such tag.
    /// Fetched once per run; at most 4 MiB.
    pub async fn manifest(&self, loc: &Location) -> Result<Option<Manifest>> {
        let key = (loc.host.clone(), loc.repository.clone(), loc.tag.clone());
        if let Some(m) = self.manifests.lock().expect("manifest memo").get(&key) {
            return Ok(m.clone());
        }
        let req = Request {
            method: reqwest::Method::GET,
            url: format!("/v2/{}/manifests/{}", loc.repository, loc.tag),
            access: Access::Pull,
            headers: vec![(http::header::ACCEPT, MANIFEST_MEDIA_TYPE.to_string())],
            body: None,
            progress: None,
        };
        let got = self.run(&format!("GET manifests/{}", loc.tag), loc, req, self.limits.request, |r| read_all(r, MAX_MANIFEST, None)).await;
        let manifest = match got {
            Ok(data) => Some(Manifest { digest: sha256(&data), data }),
            Err(e) if e.kind == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        self.manifests.lock().expect("manifest memo").insert(key, manifest.clone());
        Ok(manifest)
    }

    /// A blob of the declared `size`, checked against its digest as it
    /// arrives (a truncated or altered body is fetched again).
    pub async fn blob(&self, loc: &Location, digest: &str, size: u64, progress: Option<&Progress>) -> Result<Vec<u8>> {
        let key = (loc.host.clone(), loc.repository.clone(), digest.to_string());
        if let Some(data) = self.small.lock().expect("blob memo").get(&key) {
            if let Some(p) = progress {
                p.inc(data.len() as u64);
            }
            return Ok(data.clone());
        }
        let req = Request {
            method: reqwest::Method::GET,
            url: format!("/v2/{}/blobs/{digest}", loc.repository),
            access: Access::Pull,
            headers: vec![],
            body: None,
            progress: None,
        };
        let deadline = self.limits.request + Duration::from_secs(size / MIN_RATE);
        let start = progress.map(|p| p.position());
        let data = self
            .run(&format!("GET blobs/{}", short(digest)), loc, req, deadline, |r| async move {
                if let (Some(p), Some(s)) = (progress, start) {
                    p.set_position(s);
                }
                let data = read_all(r, size, progress).await.map_err(|f| match f {
                    Fault::TooLarge { .. } => Fault::Mismatch(format!("blob {digest} is larger than its manifest says ({size} bytes)")),
                    f => f,
                })?;
                if data.len() as u64 != size {
                    return Err(Fault::Mismatch(format!("blob {digest} arrived with {} of its {size} bytes", data.len())));
                }
                if sha256(&data) != digest {
                    return Err(Fault::Mismatch(format!("blob {digest} does not match its digest")));
                }
                Ok(data)
            })
            .await
            .map_err(|e| match e.kind {
                ErrorKind::NotFound => Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "blob {digest} is missing from {}/{} although a manifest names it (the registry lost it, or it was never pushed)",
                        loc.host, loc.repository
                    ),
                ),
                _ => e,
            })?;
        if size <= SMALL_BLOB {
            self.small.lock().expect("blob memo").insert(key, data.clone());
        }
        Ok(data)
    }
}

/// The next page of a `Link: <url>; rel="next"` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find(|l| l.contains("rel=\"next\"")).and_then(|l| Some(l.split_once('<')?.1.split_once('>')?.0.to_string()))
}

fn percent(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// The OCI digest of `data`: `sha256:<hex>`.
pub fn sha256(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The first 12 hex digits of a digest, for logs.
fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse() {
        assert_eq!(next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(), Some("/v2/a/tags/list?n=2&last=b"));
        assert_eq!(next_link(""), None);
    }
}
