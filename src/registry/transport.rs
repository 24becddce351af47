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

use super::auth::{self, Credentials};
use super::error::{Error, ErrorKind};
use crate::cue::Location;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A try that receives no byte for this long has stalled.
const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// One request, body included, by default (small documents; blobs get
/// more): `OPM_REQUEST_TIMEOUT` changes it.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
static REQUEST_LIMIT: OnceLock<Duration> = OnceLock::new();

fn request_timeout() -> Duration {
    *REQUEST_LIMIT.get_or_init(|| DEFAULT_REQUEST_TIMEOUT)
}
/// The slowest transfer a blob's deadline allows for, in bytes a second.
const MIN_RATE: u64 = 64 << 10;
/// Tries of an idempotent request: the first and three retries.
const ATTEMPTS: u32 = 4;
/// Tries of a request that stalls: a registry that drips or hangs once
/// likely does again, and each such try costs a whole deadline.
const STALLED_ATTEMPTS: u32 = 2;
/// A Retry-After longer than this is not waited for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The default time budget of a command.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(120);

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

static DEADLINE: OnceLock<Instant> = OnceLock::new();
static BUDGET: OnceLock<Duration> = OnceLock::new();

/// Sets the limits of this command (once, before any request).
pub(super) fn set_limits(limits: super::Limits) {
    let _ = REQUEST_LIMIT.set(limits.request);
    let _ = BUDGET.set(limits.budget);
    let _ = DEADLINE.set(limits.deadline);
}

/// When the command's time budget ends.
pub(super) fn deadline() -> Instant {
    *DEADLINE.get_or_init(|| Instant::now() + DEFAULT_BUDGET)
}

/// The budget as the user gave it, for messages.
fn budget_secs() -> u64 {
    BUDGET.get().copied().unwrap_or(DEFAULT_BUDGET).as_secs()
}

/// A connection pool shared by every registry host, each host's
/// credentials and authentication scheme, tokens per repository, and
/// what this run has already read.
#[derive(Default)]
pub struct Transport {
    http: OnceLock<reqwest::Client>,
    /// Held while a host is first set up, so that parallel requests to a
    /// new host read its credentials and probe it once.
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

struct Host {
    /// `http://host` or `https://host`.
    base: String,
    credentials: Credentials,
    /// What the registry asked for, learnt from its first 401 (no probe
    /// round trip before the first real request); None until then.
    challenge: Mutex<Option<Challenge>>,
}

impl Host {
    fn challenge(&self) -> Option<Challenge> {
        self.challenge.lock().expect("challenge").clone()
    }

    /// Records what a 401 asked for; whether that is news.
    fn learn(&self, loc: &Location, r: &reqwest::Response) -> bool {
        let header = r.headers().get(http::header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let learnt = parse_challenge(header);
        let mut current = self.challenge.lock().expect("challenge");
        if current.as_ref() == Some(&learnt) {
            return false;
        }
        crate::ui::verbose(&format!("{} asks for {}", loc.host, describe_challenge(&learnt)));
        *current = Some(learnt);
        true
    }
}

fn describe_challenge(c: &Challenge) -> String {
    match c {
        Challenge::None => "no authentication".to_string(),
        Challenge::Basic => "Basic authentication".to_string(),
        Challenge::Bearer { realm, .. } => format!("bearer tokens from {}", redact_url(realm)),
    }
}

/// One step of `opm registry check`.
pub struct Step {
    pub name: &'static str,
    pub millis: u128,
    pub detail: String,
    pub error: Option<Error>,
}

/// What the registry's `GET /v2/` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    None,
    Basic,
    Bearer { realm: String, service: Option<String> },
}

/// What a request needs permission for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Pull,
    Push,
}

/// What went wrong with one attempt, before it is explained.
enum Fault {
    Status {
        code: u16,
        error_code: Option<String>,
        retry_after: Option<Duration>,
    },
    Network(reqwest::Error),
    /// The request's own deadline (not the command's budget).
    Deadline(Duration),
    /// The command's time budget ran out.
    Budget,
    TooLarge {
        limit: u64,
    },
    /// A body that does not match its digest or declared size.
    Mismatch(String),
    /// The answer makes no sense (malformed JSON, no upload location).
    Malformed(String),
    /// Already explained (credentials, token service).
    Final(Error),
}

impl Fault {
    /// A try that stalled: no byte for the read timeout, or past its deadline.
    fn is_stall(&self) -> bool {
        match self {
            Fault::Deadline(_) => true,
            Fault::Network(e) => e.is_timeout(),
            _ => false,
        }
    }

    fn is_transient(&self) -> bool {
        match self {
            Fault::Status { code, .. } => matches!(code, 429 | 500 | 502 | 503 | 504),
            // A refused connection is a registry that is down: said at once.
            Fault::Network(e) => !e.is_connect() && !is_certificate(e) && !is_dns(e),
            Fault::Deadline(_) | Fault::Mismatch(_) => true,
            Fault::Budget | Fault::TooLarge { .. } | Fault::Malformed(_) | Fault::Final(_) => false,
        }
    }
}

impl From<reqwest::Error> for Fault {
    fn from(e: reqwest::Error) -> Fault {
        Fault::Network(e)
    }
}

impl From<Error> for Fault {
    fn from(e: Error) -> Fault {
        Fault::Final(e)
    }
}

/// A request, built again for each attempt.
struct Request<'a> {
    method: reqwest::Method,
    /// A path under the host (`/v2/...`) or a whole URL (upload locations).
    url: String,
    access: Access,
    headers: Vec<(http::HeaderName, String)>,
    body: Option<&'a [u8]>,
    /// Counts the bytes of an upload body as they go.
    progress: Option<&'a indicatif::ProgressBar>,
}

impl Transport {
    fn http(&self) -> Result<&reqwest::Client> {
        if let Some(c) = self.http.get() {
            return Ok(c);
        }
        ensure_tls_roots()?;
        let client = reqwest::Client::builder()
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
        let credentials = auth::for_host(&loc.host, deadline())?;
        crate::ui::verbose(&format!("credentials for {}: {}", loc.host, auth::source(&loc.host)));
        let base = format!("{}://{}", if loc.insecure { "http" } else { "https" }, loc.host);
        let host = Arc::new(Host { base, credentials, challenge: Mutex::new(None) });
        hosts.insert(loc.host.clone(), host.clone());
        Ok(host)
    }

    /// `GET /v2/`: what the registry asks for, for `opm registry check`
    /// (commands learn it from their first request instead).
    async fn probe(&self, loc: &Location, host: &Host) -> Result<Challenge> {
        let http = self.http()?;
        let base = &host.base;
        let challenge = attempts("GET /v2/ (authentication probe)", loc, &host.credentials, || async {
            let r = limited(request_timeout(), http.get(format!("{base}/v2/")).send()).await??;
            if r.status() == reqwest::StatusCode::UNAUTHORIZED {
                host.learn(loc, &r);
                return Ok(host.challenge().unwrap_or(Challenge::None));
            }
            if r.status().is_success() {
                return Ok(Challenge::None);
            }
            Err(status_fault(r).await)
        })
        .await?;
        *host.challenge.lock().expect("challenge") = Some(challenge.clone());
        Ok(challenge)
    }

    /// `opm registry check`: each step of reaching the repository of
    /// `loc`, timed: the probe (with credentials read), the pull token and
    /// a pull request (the tag list), and with `push` the push token and
    /// an upload session opened and cancelled (nothing is written). Stops
    /// at the first step that fails.
    pub async fn check(&self, loc: &Location, push: bool) -> Vec<Step> {
        let mut steps = Vec::new();
        let timed = Instant::now();
        let probed = match self.host(loc).await {
            Ok(h) => self.probe(loc, &h).await.map(|c| (h, c)),
            Err(e) => Err(e),
        };
        let (host, challenge) = match probed {
            Ok(hc) => hc,
            Err(e) => {
                steps.push(Step { name: "reach", millis: timed.elapsed().as_millis(), detail: String::new(), error: Some(e) });
                return steps;
            }
        };
        steps.push(Step {
            name: "reach",
            millis: timed.elapsed().as_millis(),
            detail: format!("{}, asks for {}", host.base, describe_challenge(&challenge)),
            error: None,
        });
        let bearer = matches!(challenge, Challenge::Bearer { .. }) && !matches!(host.credentials, Credentials::AccessToken(_));
        for (access, wanted) in [(Access::Pull, true), (Access::Push, push)] {
            if !wanted {
                continue;
            }
            let what = if access == Access::Push { "push" } else { "pull" };
            if bearer {
                let t = Instant::now();
                let got = self.authorization(&host, loc, access, false).await.map_err(|f| explain(loc, &host.credentials, &format!("{what} token"), f));
                let failed = got.is_err();
                steps.push(Step {
                    name: if access == Access::Push { "push token" } else { "pull token" },
                    millis: t.elapsed().as_millis(),
                    detail: String::new(),
                    error: got.err(),
                });
                if failed {
                    return steps;
                }
            }
            let t = Instant::now();
            let result = if access == Access::Pull {
                let req = Request {
                    method: reqwest::Method::GET,
                    url: format!("/v2/{}/tags/list?n=1", loc.repository),
                    access,
                    headers: vec![],
                    body: None,
                    progress: None,
                };
                match self.run("GET tags/list", loc, req, request_timeout(), |_| async { Ok(()) }).await {
                    // Authorized: the repository just does not exist yet.
                    Err(e) if e.kind == ErrorKind::NotFound => {
                        Ok("allowed (nothing is tagged at exactly this path; modules under a prefix have repositories of their own)".to_string())
                    }
                    other => other.map(|()| "allowed".to_string()),
                }
            } else {
                let post = Request {
                    method: reqwest::Method::POST,
                    url: format!("/v2/{}/blobs/uploads/", loc.repository),
                    access,
                    headers: vec![],
                    body: None,
                    progress: None,
                };
                let base = host.base.clone();
                match self
                    .run("POST blobs/uploads (opened, then cancelled)", loc, post, request_timeout(), |r| async move {
                        Ok(r.headers().get(http::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string))
                    })
                    .await
                {
                    Ok(location) => {
                        if let (Some(location), Ok(http)) = (location, self.http()) {
                            let url = if location.starts_with('/') { format!("{base}{location}") } else { location };
                            let mut cancel = http.delete(url);
                            if let Ok(Some(a)) = self.authorization(&host, loc, Access::Push, false).await {
                                cancel = cancel.header(http::header::AUTHORIZATION, a);
                            }
                            let _ = limited(request_timeout(), cancel.send()).await;
                        }
                        Ok("allowed (an upload was opened and cancelled)".to_string())
                    }
                    Err(e) => Err(e),
                }
            };
            let failed = result.is_err();
            let (detail, error) = match result {
                Ok(d) => (d, None),
                Err(e) => (String::new(), Some(e)),
            };
            steps.push(Step { name: what, millis: t.elapsed().as_millis(), detail, error });
            if failed {
                return steps;
            }
        }
        steps
    }

    /// The Authorization header for a request, if the host wants one.
    /// Until the registry has said what it wants, Basic credentials go
    /// along unasked (saving a round trip where they are wanted).
    async fn authorization(&self, host: &Host, loc: &Location, access: Access, renew: bool) -> std::result::Result<Option<String>, Fault> {
        let basic = |user: &str, password: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        match (host.challenge(), &host.credentials) {
            (None, Credentials::Basic { user, password }) => Ok(Some(basic(user, password))),
            (None, _) | (Some(Challenge::None), _) | (Some(Challenge::Basic), Credentials::Anonymous) => Ok(None),
            (Some(Challenge::Basic), Credentials::Basic { user, password }) => Ok(Some(basic(user, password))),
            (Some(Challenge::Basic), _) => Ok(None),
            (_, Credentials::AccessToken(token)) => Ok(Some(format!("Bearer {token}"))),
            (Some(Challenge::Bearer { realm, service }), creds) => {
                let scope = format!("repository:{}:{}", loc.repository, if access == Access::Push { "pull,push" } else { "pull" });
                let key = (loc.host.clone(), scope.clone());
                let cell = {
                    let mut tokens = self.tokens.lock().expect("token map");
                    if renew {
                        tokens.remove(&key);
                    }
                    tokens.entry(key).or_default().clone()
                };
                let token = cell.get_or_try_init(|| self.fetch_token(loc, &realm, service.as_deref(), std::slice::from_ref(&scope), creds)).await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// One token for pulling from every repository of `locs` that has
    /// none yet, on hosts known to use tokens: one round trip to the token
    /// service instead of one per repository (Docker's token protocol
    /// takes several scopes). A failure here is left to the requests
    /// themselves, which ask per repository.
    pub async fn preauthorize(&self, locs: &[Location]) {
        let mut by_host: HashMap<String, Vec<&Location>> = HashMap::new();
        for loc in locs {
            by_host.entry(loc.host.clone()).or_default().push(loc);
        }
        for (host_name, locs) in by_host {
            let Some(host) = self.hosts.lock().await.get(&host_name).cloned() else { continue };
            let Some(Challenge::Bearer { realm, service }) = host.challenge() else { continue };
            if matches!(host.credentials, Credentials::AccessToken(_)) {
                continue;
            }
            let scopes: Vec<String> = {
                let tokens = self.tokens.lock().expect("token map");
                let mut scopes: Vec<String> = locs
                    .iter()
                    .map(|l| format!("repository:{}:pull", l.repository))
                    .filter(|s| tokens.get(&(host_name.clone(), s.clone())).is_none_or(|c| c.get().is_none()))
                    .collect();
                scopes.sort();
                scopes.dedup();
                scopes
            };
            if scopes.len() < 2 {
                continue;
            }
            let Ok(token) = self.fetch_token(locs[0], &realm, service.as_deref(), &scopes, &host.credentials).await else { continue };
            let mut tokens = self.tokens.lock().expect("token map");
            for scope in scopes {
                let cell = tokens.entry((host_name.clone(), scope)).or_default();
                let _ = cell.set(token.clone());
            }
        }
    }

    /// Asks the registry's token service for a token (Docker's token
    /// protocol; identity tokens through OAuth2's refresh grant).
    async fn fetch_token(
        &self,
        loc: &Location,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        creds: &Credentials,
    ) -> std::result::Result<String, Fault> {
        let http = self.http()?;
        let mut query: Vec<(&str, &str)> = scopes.iter().map(|s| ("scope", s.as_str())).collect();
        if let Some(s) = service {
            query.push(("service", s));
        }
        let what = match scopes {
            [one] => format!("token for {one}"),
            many => format!("token for {} repositories", many.len()),
        };
        attempts(&what, loc, creds, || async {
            let request = match creds {
                Credentials::RefreshToken(refresh) => {
                    let mut form = query.clone();
                    form.extend([("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("client_id", "opm")]);
                    http.post(realm).form(&form)
                }
                Credentials::Basic { user, password } => http.get(realm).query(&query).basic_auth(user, Some(password)),
                _ => http.get(realm).query(&query),
            };
            let r = limited(request_timeout(), request.send()).await??;
            if !r.status().is_success() {
                return Err(status_fault(r).await);
            }
            let body = limited(request_timeout(), read_all(r, MAX_DOCUMENT, None)).await??;
            #[derive(serde::Deserialize)]
            struct Answer {
                #[serde(default)]
                token: String,
                #[serde(default)]
                access_token: String,
            }
            let a: Answer = serde_json::from_slice(&body).map_err(|_| Fault::Malformed("the token service's answer is not a token".into()))?;
            let token = if a.token.is_empty() { a.access_token } else { a.token };
            if token.is_empty() {
                return Err(Fault::Malformed("the token service's answer holds no token".into()));
            }
            Ok(token)
        })
        .await
        .map_err(Fault::Final)
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
        attempts(what, loc, &host.credentials, || async move {
            limited(deadline, async {
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
                .run("GET tags/list", loc, req, request_timeout(), |r| async move {
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
        let got = self.run(&format!("GET manifests/{}", loc.tag), loc, req, request_timeout(), |r| read_all(r, MAX_MANIFEST, None)).await;
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
    pub async fn blob(&self, loc: &Location, digest: &str, size: u64, progress: Option<&indicatif::ProgressBar>) -> Result<Vec<u8>> {
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
        let deadline = request_timeout() + Duration::from_secs(size / MIN_RATE);
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

    /// Whether the repository of `loc` has a blob (asked with the push
    /// scope: only a pusher wants to know).
    pub async fn has_blob(&self, loc: &Location, digest: &str) -> Result<bool> {
        let key = (loc.host.clone(), loc.repository.clone(), digest.to_string());
        if self.present.lock().expect("blob set").contains(&key) {
            return Ok(true);
        }
        let head = Request {
            method: reqwest::Method::HEAD,
            url: format!("/v2/{}/blobs/{digest}", loc.repository),
            access: Access::Push,
            headers: vec![],
            body: None,
            progress: None,
        };
        let exists = self.run(&format!("HEAD blobs/{}", short(digest)), loc, head, request_timeout(), |r| async move { Ok(r.status().is_success()) }).await?;
        if exists {
            self.present.lock().expect("blob set").insert(key);
        }
        Ok(exists)
    }

    /// Uploads a blob unless the repository has it already (one POST and
    /// one PUT, tried again as a pair), counted on `progress`.
    pub async fn push_blob(&self, loc: &Location, data: &[u8], digest: &str, progress: &indicatif::ProgressBar) -> Result<()> {
        if !self.push_blob_from(loc, digest, progress, || async { Ok(data) }).await? {
            progress.inc(data.len() as u64);
        }
        Ok(())
    }

    /// Uploads the blob that `data` yields (asked for only when the
    /// repository lacks it, so a copy fetches only what is missing), one
    /// upload of each blob at a time. Whether it was uploaded.
    pub async fn push_blob_from<D, F, Fut>(&self, loc: &Location, digest: &str, progress: &indicatif::ProgressBar, data: F) -> Result<bool>
    where
        D: AsRef<[u8]>,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<D>>,
    {
        let key = (loc.host.clone(), loc.repository.clone(), digest.to_string());
        let lock = self.uploads.lock().expect("upload locks").entry(key.clone()).or_default().clone();
        let _held = lock.lock().await;
        if self.has_blob(loc, digest).await? {
            return Ok(false);
        }
        let data = data().await?;
        let data = data.as_ref();
        let start = progress.position();
        let host = self.host(loc).await?;
        let deadline = request_timeout() + Duration::from_secs(data.len() as u64 / MIN_RATE);
        let host_ref = &host;
        attempts(&format!("PUT blobs/{}", short(digest)), loc, &host.credentials, || async move {
            progress.set_position(start);
            limited(deadline, async {
                let post = Request {
                    method: reqwest::Method::POST,
                    url: format!("/v2/{}/blobs/uploads/", loc.repository),
                    access: Access::Push,
                    headers: vec![],
                    body: None,
                    progress: None,
                };
                let r = self.send(loc, host_ref, &post).await?;
                let location = r
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| Fault::Malformed("the registry gave no upload location".into()))?
                    .to_string();
                let location = if location.starts_with('/') { format!("{}{location}", host_ref.base) } else { location };
                let sep = if location.contains('?') { '&' } else { '?' };
                let put = Request {
                    method: reqwest::Method::PUT,
                    url: format!("{location}{sep}digest={digest}"),
                    access: Access::Push,
                    headers: vec![(http::header::CONTENT_TYPE, "application/octet-stream".into())],
                    body: Some(data),
                    progress: Some(progress),
                };
                self.send(loc, host_ref, &put).await?;
                Ok(())
            })
            .await?
        })
        .await?;
        self.present.lock().expect("blob set").insert(key);
        Ok(true)
    }

    /// Uploads a manifest under `loc.tag`, with its media type set.
    pub async fn push_manifest(&self, loc: &Location, data: &[u8], media_type: &str) -> Result<()> {
        let req = Request {
            method: reqwest::Method::PUT,
            url: format!("/v2/{}/manifests/{}", loc.repository, loc.tag),
            access: Access::Push,
            headers: vec![(http::header::CONTENT_TYPE, media_type.to_string())],
            body: Some(data),
            progress: None,
        };
        self.run(&format!("PUT manifests/{}", loc.tag), loc, req, request_timeout(), |_| async { Ok(()) }).await?;
        // What this run reads of the tag from now on.
        let key = (loc.host.clone(), loc.repository.clone(), loc.tag.clone());
        self.manifests.lock().expect("manifest memo").insert(key, Some(Manifest { data: data.to_vec(), digest: sha256(data) }));
        Ok(())
    }
}

/// Runs `attempt` until it succeeds, fails for good, or runs out of tries
/// or of the command's budget, waiting between tries (0.5 s, 1 s, 2 s; a
/// 429's Retry-After up to a minute), then explains the last fault. Each
/// request is logged with --verbose.
async fn attempts<T, F, Fut>(what: &str, loc: &Location, creds: &Credentials, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, Fault>>,
{
    let started = Instant::now();
    let log = |outcome: &str, retries: u32| {
        let retried = if retries == 0 { String::new() } else { format!(", {retries} retr{}", if retries == 1 { "y" } else { "ies" }) };
        crate::ui::verbose(&format!("{what} {}/{} -> {outcome} in {} ms{retried}", loc.host, loc.repository, started.elapsed().as_millis()));
    };
    let mut delay = Duration::from_millis(500);
    let mut tries = 1;
    loop {
        let fault = match attempt().await {
            Ok(value) => {
                log("ok", tries - 1);
                return Ok(value);
            }
            Err(f) => f,
        };
        let remaining = deadline().saturating_duration_since(Instant::now());
        let wait = match &fault {
            Fault::Status { code: 429, retry_after: Some(after), .. } => *after,
            _ => delay,
        };
        let limit = if fault.is_stall() { STALLED_ATTEMPTS } else { ATTEMPTS };
        if tries < limit && fault.is_transient() && wait <= MAX_RETRY_AFTER && wait < remaining {
            crate::ui::verbose(&format!("{what} {}/{}: {}; trying again in {} ms", loc.host, loc.repository, describe(&fault), wait.as_millis()));
            tokio::time::sleep(wait).await;
            delay *= 2;
            tries += 1;
            continue;
        }
        let mut e = explain(loc, creds, what, fault);
        if tries > 1 && matches!(e.kind, ErrorKind::Unreachable | ErrorKind::Corrupt | ErrorKind::Other) {
            e.message += &format!(" (after {tries} tries)");
        }
        log(&format!("failed ({})", e.message), tries - 1);
        return Err(e);
    }
}

/// Runs `work` within `limit` and the command's budget.
async fn limited<T>(limit: Duration, work: impl std::future::Future<Output = T>) -> std::result::Result<T, Fault> {
    let remaining = deadline().saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(Fault::Budget);
    }
    let budget_first = remaining < limit;
    match tokio::time::timeout(limit.min(remaining), work).await {
        Ok(v) => Ok(v),
        Err(_) if budget_first => Err(Fault::Budget),
        Err(_) => Err(Fault::Deadline(limit)),
    }
}

/// Reads a body up to `cap` bytes (refusing a larger one before reading
/// it, when the registry says its length), counting on `progress`.
async fn read_all(mut r: reqwest::Response, cap: u64, progress: Option<&indicatif::ProgressBar>) -> std::result::Result<Vec<u8>, Fault> {
    if r.content_length().is_some_and(|n| n > cap) {
        return Err(Fault::TooLarge { limit: cap });
    }
    let mut data = Vec::with_capacity(r.content_length().unwrap_or(0).min(cap) as usize);
    while let Some(chunk) = r.chunk().await? {
        if (data.len() + chunk.len()) as u64 > cap {
            return Err(Fault::TooLarge { limit: cap });
        }
        data.extend_from_slice(&chunk);
        if let Some(p) = progress {
            p.inc(chunk.len() as u64);
        }
    }
    Ok(data)
}

/// A non-success answer as a fault: its status, the OCI error code of its
/// body and a Retry-After in seconds or as an HTTP date.
async fn status_fault(r: reqwest::Response) -> Fault {
    let code = r.status().as_u16();
    let retry_after = r.headers().get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    let body = read_all(r, 64 << 10, None).await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        errors: Vec<ErrorBody>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        code: String,
    }
    let error_code = serde_json::from_slice::<Envelope>(&body).ok().and_then(|e| e.errors.into_iter().next()).map(|e| e.code).filter(|c| !c.is_empty());
    Fault::Status { code, error_code, retry_after }
}

fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate(v.trim())?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form of HTTP
/// dates servers send.
fn httpdate(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else { return None };
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].iter().position(|m| m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else { return None };
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + h * 3600 + m * 60 + sec;
    u64::try_from(secs).ok().map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

/// Parses `WWW-Authenticate: Bearer realm="...",service="..."` (or Basic).
fn parse_challenge(header: &str) -> Challenge {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Challenge::Basic;
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Challenge::Basic;
    }
    let mut realm = String::new();
    let mut service = None;
    let mut rest = params;
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, tail) = match after.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').unwrap_or((quoted, "")),
            None => after.split_once(',').unwrap_or((after, "")),
        };
        match key.as_str() {
            "realm" => realm = value.to_string(),
            "service" => service = Some(value.to_string()),
            _ => {}
        }
        rest = tail.trim_start_matches(',');
    }
    Challenge::Bearer { realm, service }
}

/// The next page of a `Link: <url>; rel="next"` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find(|l| l.contains("rel=\"next\"")).and_then(|l| Some(l.split_once('<')?.1.split_once('>')?.0.to_string()))
}

fn percent(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// A fault in a few words, for --verbose.
fn describe(f: &Fault) -> String {
    match f {
        Fault::Status { code, .. } => format!("HTTP {code}"),
        Fault::Network(e) => one_line(&error_text(e)),
        Fault::Deadline(d) => format!("no complete answer within {} s", d.as_secs()),
        Fault::Budget => "the time budget ran out".into(),
        Fault::TooLarge { limit } => format!("larger than {} MiB", limit >> 20),
        Fault::Mismatch(why) | Fault::Malformed(why) => why.clone(),
        Fault::Final(e) => e.message.clone(),
    }
}

/// A network error and its causes, without the URL (upload URLs carry the
/// registry's state, and any URL may carry a query).
fn error_text(e: &reqwest::Error) -> String {
    let mut out = e.to_string().split(" for url (").next().unwrap_or_default().to_string();
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        out.push_str(": ");
        out.push_str(&err.to_string());
        source = err.source();
    }
    out
}

fn is_certificate(e: &reqwest::Error) -> bool {
    error_text(e).contains("certificate")
}

fn is_dns(e: &reqwest::Error) -> bool {
    let s = error_text(e);
    s.contains("dns error") || s.contains("failed to lookup address")
}

/// One line with the cause and the fix, and its kind. No secret is in it:
/// bodies and URLs of the registry are not quoted, our credentials never.
fn explain(loc: &Location, creds: &Credentials, what: &str, fault: Fault) -> Error {
    let host = &loc.host;
    let repo = format!("{host}/{}", loc.repository);
    let anonymous = matches!(creds, Credentials::Anonymous);
    match fault {
        Fault::Final(e) => e,
        Fault::Budget => Error::new(
            ErrorKind::Unreachable,
            format!("{what} from {repo} did not finish within the command's time budget ({} s): raise it with --timeout (or OPM_TIMEOUT) if the registry is just slow", budget_secs()),
        ),
        Fault::Deadline(limit) => Error::new(
            ErrorKind::Unreachable,
            format!("{what} from {repo} did not complete within {} s (opm's limit for one request, OPM_REQUEST_TIMEOUT): the registry or the network is stalling", limit.as_secs()),
        ),
        Fault::TooLarge { limit } => Error::new(
            ErrorKind::Limit,
            format!("{what} from {repo} is larger than {} MiB, the most opm accepts: not a CUE module artifact", limit >> 20),
        ),
        Fault::Mismatch(why) => Error::new(ErrorKind::Corrupt, format!("{why} from {repo}")),
        Fault::Malformed(why) => Error::new(ErrorKind::Other, format!("registry {host}: {why}")),
        Fault::Network(e) => {
            if is_certificate(&e) {
                return Error::new(
                    ErrorKind::Unreachable,
                    format!("the TLS certificate of registry {host} is not trusted: add its CA to the system's trust store (or point SSL_CERT_FILE at it)"),
                );
            }
            if is_dns(&e) {
                return Error::new(
                    ErrorKind::Unreachable,
                    format!("cannot resolve registry host {} (name lookup failed): check the name, /etc/hosts and /etc/resolv.conf", host_name(host)),
                );
            }
            if e.is_connect() {
                let scheme = if loc.insecure { "http" } else { "https" };
                return Error::new(
                    ErrorKind::Unreachable,
                    format!("cannot reach registry {host} over {scheme} (connection failed): check that it is running and the routing ('opm config show')"),
                );
            }
            let why = if e.is_timeout() { format!("a read timed out ({} s without a byte)", READ_TIMEOUT.as_secs()) } else { one_line(&error_text(&e)) };
            Error::new(ErrorKind::Unreachable, format!("{what} from {repo}: the connection broke ({why})"))
        }
        Fault::Status { code, error_code, retry_after } => match code {
            401 if anonymous => Error::new(ErrorKind::Unauthorized, format!("registry {host} requires authentication for {repo}: run 'docker login {host}'")),
            401 => Error::new(ErrorKind::Unauthorized, format!("credentials for {host} were rejected: run 'docker login {host}'")),
            403 if anonymous => Error::new(ErrorKind::Denied, format!("access to {repo} was denied to anonymous requests: run 'docker login {host}'")),
            403 => Error::new(ErrorKind::Denied, format!("access to {repo} was denied: the credentials for {host} lack permission")),
            404 => {
                let what_missing = match error_code.as_deref() {
                    Some("BLOB_UNKNOWN") => "blob not found",
                    Some("MANIFEST_UNKNOWN") => "manifest not found",
                    Some("NAME_UNKNOWN") => "repository not found",
                    _ => "not found",
                };
                Error::new(ErrorKind::NotFound, format!("{repo}: {what_missing} ({what})"))
            }
            429 => {
                let when = match retry_after {
                    Some(after) => {
                        let at = chrono_free_utc(SystemTime::now() + after);
                        format!(": it asks to wait {} s, try again after {at}", after.as_secs())
                    }
                    None => ": try again later".into(),
                };
                Error::new(ErrorKind::RateLimited, format!("registry {host} is rate limiting requests ({what}, HTTP 429){when}"))
            }
            code => Error::new(ErrorKind::Other, format!("registry {host} answered HTTP {code} to {what} for {repo}")),
        },
    }
}

/// `HH:MM:SS UTC` of a time.
fn chrono_free_utc(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() % 86400;
    format!("{:02}:{:02}:{:02} UTC", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A URL without its query and userinfo, for messages.
pub fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if path.is_empty() {
                format!("{scheme}://{authority}")
            } else {
                format!("{scheme}://{authority}/{path}")
            }
        }
        None => url.to_string(),
    }
}

/// TLS trusts the system's roots (SSL_CERT_FILE and SSL_CERT_DIR
/// honoured). A machine or container with none gets the Mozilla roots
/// built into opm, handed over as SSL_CERT_FILE in a private temporary
/// directory, so that it still reaches public registries.
fn ensure_tls_roots() -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_links_parse() {
        assert_eq!(
            parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#),
            Challenge::Bearer { realm: "https://auth.example/token".into(), service: Some("registry.example".into()) }
        );
        assert_eq!(parse_challenge(r#"Basic realm="Registry""#), Challenge::Basic);
        assert_eq!(next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(), Some("/v2/a/tags/list?n=2&last=b"));
        assert_eq!(next_link(""), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(httpdate("Sun, 06 Nov 1994 08:49:37 GMT"), Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784111777)));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn urls_lose_queries_and_userinfo() {
        assert_eq!(redact_url("http://u:pw@h:5000/v2/x/blobs/uploads/abc?_state=SECRET"), "http://h:5000/v2/x/blobs/uploads/abc");
        assert_eq!(redact_url("https://auth.example/token?scope=x"), "https://auth.example/token");
    }
}
