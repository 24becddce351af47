//! Requests to a cluster's apiserver: one HTTP client per command over
//! the kubeconfig's target, every request bounded by its own deadline and
//! the command's, answers turned into [`Error`] kinds from the apiserver's
//! Status. Discovery is per group-version, on first need, remembered.

use super::kubeconfig::{Credentials, Target};
use super::object::{discovery_path, ApiResource, ObjectRef, FIELD_MANAGER};
use super::{Error, ErrorKind, Result};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One request's deadline, unless the command's ends first.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests in flight at once within one stage.
const PARALLEL: usize = 16;
/// The largest answer read (a list of a big namespace's objects).
const MAX_BODY: usize = 64 << 20;

/// How an apply is made.
#[derive(Debug, Clone, Copy, Default)]
pub struct Apply {
    /// The server's dry run: nothing is persisted.
    pub dry_run: bool,
    /// Take fields other managers own (`--force-conflicts`).
    pub force: bool,
}

/// A cluster, opened for one command.
pub struct Cluster {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    server: String,
    authorization: Option<String>,
    /// The context's name, for messages.
    pub context: String,
    /// The namespace of the release (`-n`, else the context's).
    pub namespace: String,
    deadline: Instant,
    budget: Duration,
    /// Discovered kinds of each group-version.
    kinds: RefCell<HashMap<String, Vec<ApiResource>>>,
}

impl Cluster {
    /// Sets up the client for `target`; nothing is sent yet. `deadline`
    /// ends every request (`--timeout`, counted from the command's start).
    pub fn open(target: Target, deadline: Instant, budget: Duration) -> Result<Cluster> {
        let setup =
            |what: &str, e: &dyn std::fmt::Display| Error::new(ErrorKind::Config, format!("{what} of context {} ({}): {e}", target.context, target.origin));
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("opm/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if !target.roots.is_empty() {
            let mut roots = Vec::new();
            for pem in &target.roots {
                roots.extend(reqwest::Certificate::from_pem_bundle(pem).map_err(|e| setup("cannot read the certificate authority", &e))?);
            }
            builder = builder.tls_certs_only(roots);
        }
        if target.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(pem) = &target.identity {
            builder = builder.identity(reqwest::Identity::from_pem(pem).map_err(|e| setup("cannot read the client certificate", &e))?);
        }
        if let Some(name) = &target.tls_server_name {
            return Err(setup(
                "tls-server-name",
                &format!("{name:?} is set, and opm cannot check a certificate against another name than the server's yet: use a server URL with that name"),
            ));
        }
        if let Some(proxy) = &target.proxy_url {
            builder = builder.proxy(reqwest::Proxy::all(proxy).map_err(|e| setup("cannot use proxy-url", &e))?);
        }
        let http = builder.build().map_err(|e| setup("cannot set up the HTTP client", &e))?;
        let authorization = match &target.credentials {
            Credentials::None => None,
            Credentials::Bearer(token) => Some(format!("Bearer {token}")),
            Credentials::Basic { username, password } => {
                use base64::Engine as _;
                Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))))
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| setup("cannot start the runtime", &e))?;
        Ok(Cluster {
            rt,
            http,
            server: target.server.trim_end_matches('/').to_string(),
            authorization,
            context: target.context,
            namespace: target.namespace,
            deadline,
            budget,
            kinds: RefCell::new(HashMap::new()),
        })
    }

    /// Runs cluster work to completion.
    pub fn block_on<F: std::future::Future>(&self, work: F) -> F::Output {
        self.rt.block_on(work)
    }

    /// When the command's time (--timeout) is up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Sends one request and reads its JSON answer; a 404 is None.
    pub async fn send(&self, method: reqwest::Method, path: &str, content_type: Option<&str>, body: Option<Vec<u8>>) -> Result<Option<Value>> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(self.out_of_time());
        }
        let limit = REQUEST_TIMEOUT.min(remaining);
        let what = format!("{method} {path}");
        let mut req = self.http.request(method, format!("{}{path}", self.server)).header(http::header::ACCEPT, "application/json");
        if let Some(a) = &self.authorization {
            req = req.header(http::header::AUTHORIZATION, a);
        }
        if let (Some(ct), Some(body)) = (content_type, body) {
            req = req.header(http::header::CONTENT_TYPE, ct).body(body);
        }
        let exchange = async {
            let resp = req.send().await?;
            let status = resp.status();
            let mut body = Vec::new();
            let mut resp = resp;
            while let Some(chunk) = resp.chunk().await? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Ok(None);
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>(Some((status, body)))
        };
        let started = Instant::now();
        let answered = tokio::time::timeout(limit, exchange).await;
        if let Ok(Ok(Some((status, _)))) = &answered {
            tracing::debug!("{what}: {} in {} ms", status.as_u16(), started.elapsed().as_millis());
        }
        let (status, body) = match answered {
            Err(_) if limit < REQUEST_TIMEOUT => return Err(self.out_of_time()),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Unreachable,
                    format!("the cluster at {} (context {}) did not answer {what} within {} s", self.server, self.context, limit.as_secs()),
                ))
            }
            Ok(Err(e)) => return Err(self.unreachable(&e)),
            Ok(Ok(None)) => {
                return Err(Error::new(ErrorKind::Other, format!("the answer to {what} is larger than {} MiB, the most opm reads", MAX_BODY >> 20)))
            }
            Ok(Ok(Some(answer))) => answer,
        };
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        if status.is_success() {
            return json.map(Some).ok_or_else(|| Error::new(ErrorKind::Other, format!("{} answered {what} with something that is not JSON", self.server)));
        }
        Err(self.refused(status.as_u16(), &what, json.as_ref()))
    }

    /// What the apiserver's Status says, as an error of its kind.
    fn refused(&self, code: u16, what: &str, status: Option<&Value>) -> Error {
        let message = status.and_then(|s| s["message"].as_str()).unwrap_or("").to_string();
        let (kind, said) = match code {
            401 => (
                ErrorKind::Unauthorized,
                format!("the cluster rejected the credentials of context {} (401 Unauthorized): check the kubeconfig's user", self.context),
            ),
            // "cannot VERB resource ...": a permission; else (a namespace
            // being deleted, a policy) the apiserver's words say why.
            403 if message.contains(" cannot ") => {
                (ErrorKind::Forbidden, format!("forbidden (403): {message}: ask for that permission or use another --context"))
            }
            403 => (ErrorKind::Forbidden, format!("forbidden (403): {message}")),
            409 => (ErrorKind::Conflict, message),
            400 | 422 => (ErrorKind::Invalid, message),
            429 | 500..=599 => (ErrorKind::Unreachable, format!("the cluster failed {what} ({code}): {message}")),
            _ => (ErrorKind::Other, format!("the cluster refused {what} ({code}): {message}")),
        };
        Error::new(kind, said)
    }

    fn unreachable(&self, e: &reqwest::Error) -> Error {
        let mut cause = String::new();
        let mut source: Option<&dyn std::error::Error> = Some(e);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        Error::new(ErrorKind::Unreachable, format!("cannot reach the cluster at {} (context {}): {cause}", self.server, self.context))
    }

    /// The command's budget ran out while the cluster was asked: it is
    /// as good as unreachable.
    fn out_of_time(&self) -> Error {
        Error::new(
            ErrorKind::Unreachable,
            format!("no answer from the cluster at {} (context {}) within the command's --timeout of {} s", self.server, self.context, self.budget.as_secs()),
        )
    }

    /// How `kind` of `api_version` is served, from the group-version's
    /// discovery (read once). NotFound when the cluster does not serve it.
    pub async fn resource(&self, api_version: &str, kind: &str) -> Result<ApiResource> {
        let known = self.kinds.borrow().get(api_version).cloned();
        let kinds = match known {
            Some(k) => k,
            None => {
                let list = self.send(reqwest::Method::GET, &discovery_path(api_version), None, None).await?;
                let kinds = parse_resources(api_version, list.as_ref());
                self.kinds.borrow_mut().insert(api_version.to_string(), kinds.clone());
                kinds
            }
        };
        kinds.into_iter().find(|r| r.kind == kind).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, format!("the cluster does not serve kind {kind} of {api_version} (is its CustomResourceDefinition installed?)"))
        })
    }

    /// Forgets what discovery said of `api_version` (a CRD was just
    /// established).
    pub fn forget(&self, api_version: &str) {
        self.kinds.borrow_mut().remove(api_version);
    }

    /// The live object, None if it does not exist.
    pub async fn get(&self, r: &ObjectRef) -> Result<Option<Value>> {
        let res = self.resource(&r.api_version, &r.kind).await?;
        self.send(reqwest::Method::GET, &res.path(r), None, None).await
    }

    /// The live object, None if it does not exist or its kind is not (or
    /// no longer) served.
    pub async fn find(&self, r: &ObjectRef) -> Result<Option<Value>> {
        match self.get(r).await {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            other => other,
        }
    }

    /// A list of a kind in a namespace (or everywhere when cluster-scoped),
    /// filtered by a label selector.
    pub async fn list(&self, api_version: &str, kind: &str, namespace: &str, selector: &str) -> Result<Vec<Value>> {
        let res = self.resource(api_version, kind).await?;
        let path = format!("{}?labelSelector={}", res.collection(namespace), urlencode(selector));
        let list = self.send(reqwest::Method::GET, &path, None, None).await?;
        Ok(list.and_then(|mut l| l["items"].as_array_mut().map(std::mem::take)).unwrap_or_default())
    }

    /// The newest warning event about an object ("BackOff: Back-off
    /// restarting failed container"), if there is one.
    pub async fn last_warning(&self, kind: &str, namespace: &str, name: &str) -> Result<Option<String>> {
        let selector = format!("involvedObject.kind={kind},involvedObject.name={name},type=Warning");
        let path = format!("/api/v1/namespaces/{namespace}/events?fieldSelector={}", urlencode(&selector));
        let list = self.send(reqwest::Method::GET, &path, None, None).await?;
        let events = list.as_ref().and_then(|l| l["items"].as_array()).map(Vec::as_slice).unwrap_or_default();
        let when =
            |e: &Value| e["lastTimestamp"].as_str().or(e["eventTime"].as_str()).or(e["metadata"]["creationTimestamp"].as_str()).unwrap_or("").to_string();
        Ok(events.iter().max_by_key(|e| when(e)).map(|e| format!("{}: {}", e["reason"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or("").trim())))
    }

    /// Server-side apply of `object` as opm's field manager.
    pub async fn apply(&self, object: &Value, how: Apply) -> Result<Value> {
        let r = ObjectRef::of(object).ok_or_else(|| Error::new(ErrorKind::Invalid, "an object without apiVersion, kind or metadata.name"))?;
        let res = self.resource(&r.api_version, &r.kind).await?;
        let mut path = format!("{}?fieldManager={FIELD_MANAGER}", res.path(&r));
        if how.force {
            path += "&force=true";
        }
        if how.dry_run {
            path += "&dryRun=All";
        }
        let body = serde_json::to_vec(object).expect("a JSON value serializes");
        let applied = self.send(reqwest::Method::PATCH, &path, Some("application/apply-patch+yaml"), Some(body)).await;
        match applied {
            Ok(Some(v)) => Ok(v),
            // Its namespace does not exist.
            Ok(None) => Err(Error::new(ErrorKind::NotFound, format!("cannot apply {r}: namespace {} does not exist", r.namespace))),
            Err(e) => Err(Error::new(e.kind, format!("{r}: {}", e.message))),
        }
    }

    /// Deletes an object (its dependents in the background); false when
    /// it was gone already.
    pub async fn delete(&self, r: &ObjectRef) -> Result<bool> {
        let res = match self.resource(&r.api_version, &r.kind).await {
            Ok(res) => res,
            // A kind no longer served has no objects left.
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let body =
            serde_json::to_vec(&serde_json::json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})).expect("serializes");
        let deleted = self.send(reqwest::Method::DELETE, &res.path(r), Some("application/json"), Some(body)).await;
        deleted.map(|v| v.is_some()).map_err(|e| Error::new(e.kind, format!("cannot delete {r}: {}", e.message)))
    }

    /// Creates an object; None when one of that name exists already
    /// (it is left as it is).
    pub async fn create(&self, object: &Value) -> Result<Option<Value>> {
        let r = ObjectRef::of(object).ok_or_else(|| Error::new(ErrorKind::Invalid, "an object without apiVersion, kind or metadata.name"))?;
        let res = self.resource(&r.api_version, &r.kind).await?;
        let body = serde_json::to_vec(object).expect("serializes");
        match self.send(reqwest::Method::POST, &res.collection(&r.namespace), Some("application/json"), Some(body)).await {
            Err(e) if e.kind == ErrorKind::Conflict => Ok(None),
            Err(e) => Err(e),
            Ok(v) => v.map(Some).ok_or_else(|| Error::new(ErrorKind::NotFound, format!("cannot create {r}: namespace {} does not exist", r.namespace))),
        }
    }

    /// Replaces a whole object at the resourceVersion it carries: a 409
    /// (someone wrote it since it was read) is a Conflict.
    pub async fn replace(&self, object: &Value) -> Result<Value> {
        let r = ObjectRef::of(object).ok_or_else(|| Error::new(ErrorKind::Invalid, "an object without apiVersion, kind or metadata.name"))?;
        let res = self.resource(&r.api_version, &r.kind).await?;
        let body = serde_json::to_vec(object).expect("serializes");
        let put = self.send(reqwest::Method::PUT, &res.path(&r), Some("application/json"), Some(body)).await?;
        put.ok_or_else(|| Error::new(ErrorKind::NotFound, format!("{r} vanished while it was written")))
    }

    /// Runs `work` over `items`, at most [`PARALLEL`] at once, answers in
    /// the items' order.
    pub async fn each<'a, T, O, F, Fut>(&'a self, items: &'a [T], work: F) -> Vec<O>
    where
        F: Fn(&'a T) -> Fut,
        Fut: std::future::Future<Output = O> + 'a,
    {
        use futures_util::stream::{self, StreamExt as _};
        stream::iter(items.iter().map(work)).buffered(PARALLEL).collect().await
    }
}

/// The kinds of an APIResourceList (subresources such as `pods/status`
/// left out).
fn parse_resources(api_version: &str, list: Option<&Value>) -> Vec<ApiResource> {
    let Some(resources) = list.and_then(|l| l["resources"].as_array()) else {
        return Vec::new();
    };
    resources
        .iter()
        .filter_map(|r| {
            let plural = r["name"].as_str().filter(|n| !n.contains('/'))?;
            Some(ApiResource {
                api_version: api_version.to_string(),
                kind: r["kind"].as_str()?.to_string(),
                plural: plural.to_string(),
                namespaced: r["namespaced"].as_bool()?,
            })
        })
        .collect()
}

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn discovery_keeps_kinds_not_subresources() {
        let list = json!({"resources": [
            {"name": "deployments", "kind": "Deployment", "namespaced": true},
            {"name": "deployments/status", "kind": "Deployment", "namespaced": true},
        ]});
        let got = parse_resources("apps/v1", Some(&list));
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].plural.as_str(), got[0].namespaced), ("deployments", true));
        assert_eq!(urlencode("a=b,c"), "a%3Db%2Cc");
    }
}
