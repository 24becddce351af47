//! Where a cluster is and how to reach it, found as kubectl finds it
//! (client-go's clientcmd): `--kubeconfig` alone, else the files of
//! `$KUBECONFIG` merged (the first file to name a cluster, user or context
//! wins it, and the first to set current-context sets it), else
//! `~/.kube/config`; when none of them holds anything, the pod's service
//! account (in-cluster). Relative paths in a file resolve against that
//! file's directory. Users authenticate with a token, a token file, a
//! username and password, a client certificate or an exec plugin.
//!
//! Secrets never reach a message or a debug print: errors name the
//! context, cluster, user, plugin and file only.

use super::error::{Error, ErrorKind, Result};
use crate::process::RunError;
use base64::Engine as _;
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A kubeconfig larger than this is not one.
const MAX_KUBECONFIG: u64 = 4 << 20;
/// Certificates, keys and tokens are small.
const MAX_PEM: u64 = 1 << 20;
const MAX_TOKEN: u64 = 1 << 20;
/// How long an exec plugin may take (less when the command's time budget
/// ends sooner).
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_EXEC_ANSWER: u64 = 1 << 20;
/// Where a pod's service account is mounted.
const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ExecCredential versions client-go still speaks (v1alpha1 is gone).
const EXEC_API_VERSIONS: [&str; 2] = ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"];
/// The cluster extension handed to an exec plugin as `spec.cluster.config`.
const EXEC_EXTENSION: &str = "client.authentication.k8s.io/exec";

/// What the command line chose (--kubeconfig, --context, -n/--namespace).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
}

/// Where a cluster is and the credentials to reach it.
#[derive(Clone)]
pub struct Target {
    /// The apiserver's URL without a trailing slash; a path prefix (a proxy
    /// in front of the apiserver) is kept.
    pub server: String,
    /// The context's name; "in-cluster" for a pod's service account.
    pub context: String,
    /// --namespace, else the context's, else "default" (in-cluster: the
    /// service account's).
    pub namespace: String,
    /// The CA bundles (PEM, each one or more certificates) to trust; empty:
    /// the system's roots.
    pub roots: Vec<Vec<u8>>,
    /// insecure-skip-tls-verify: the server's certificate is not checked.
    pub insecure: bool,
    /// The name to verify the server's certificate against, when it is not
    /// the URL's host.
    pub tls_server_name: Option<String>,
    /// The client certificate(s) then the private key, PEM.
    pub identity: Option<Vec<u8>>,
    pub credentials: Credentials,
    pub proxy_url: Option<String>,
    /// Where this came from, for messages: the file(s) read, or the
    /// in-cluster service account.
    pub origin: String,
}

/// What is presented to the apiserver besides a client certificate.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    Bearer(String),
    Basic { username: String, password: String },
}

const REDACTED: &str = "<redacted>";

/// Stands for a secret in a debug print.
struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, not even in a debug print.
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Bearer(_) => f.debug_tuple("Bearer").field(&Redacted).finish(),
            Credentials::Basic { username, .. } => f.debug_struct("Basic").field("username", username).field("password", &Redacted).finish(),
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("server", &without_userinfo(&self.server))
            .field("context", &self.context)
            .field("namespace", &self.namespace)
            .field("roots", &format_args!("{} PEM bundle(s)", self.roots.len()))
            .field("insecure", &self.insecure)
            .field("tls_server_name", &self.tls_server_name)
            .field("identity", &self.identity.as_ref().map(|_| Redacted))
            .field("credentials", &self.credentials)
            .field("proxy_url", &self.proxy_url.as_deref().map(without_userinfo))
            .field("origin", &self.origin)
            .finish()
    }
}

/// A URL with any `user:password@` replaced.
fn without_userinfo(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some(at) = authority.rfind('@') {
            return format!("{scheme}://{REDACTED}@{}", &rest[at + 1..]);
        }
    }
    url.to_string()
}

/// The cluster `selection` names, and how to reach it. `deadline` bounds an
/// exec plugin.
pub fn load(selection: &Selection, deadline: Instant) -> Result<Target> {
    load_from(selection, Some(deadline), &|name| std::env::var_os(name), Path::new(SERVICE_ACCOUNT))
}

/// The namespace a command works in: --namespace, else the context's, else
/// "default". No credential is read and no exec plugin runs: this is known
/// before anything is trusted or sent.
pub fn namespace(selection: &Selection) -> Result<String> {
    if let Some(ns) = selection.namespace.as_ref().filter(|n| !n.is_empty()) {
        return Ok(ns.clone());
    }
    Ok(load_from(selection, None, &|name| std::env::var_os(name), Path::new(SERVICE_ACCOUNT))?.namespace)
}

/// [`load`] with the environment and the service account's directory
/// given, so that tests need not change the process's. Without a deadline
/// the user's credentials are left out (never read, no plugin run).
fn load_from(selection: &Selection, deadline: Option<Instant>, env: &dyn Fn(&str) -> Option<OsString>, service_account: &Path) -> Result<Target> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let wanted_context = selection.context.as_deref().filter(|c| !c.is_empty());
    let files = kubeconfig_files(selection, &env);
    let merged = merge(&files)?;
    // As kubectl: a pod's service account when the kubeconfig holds nothing
    // (and no context was asked for by name).
    if merged.holds_nothing() && wanted_context.is_none() {
        if let Some(target) = in_cluster(selection, &env, service_account)? {
            return Ok(target);
        }
    }
    if merged.read.is_empty() {
        let list = files.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        let why = match (files.named_by, files.paths.len()) {
            ("KUBECONFIG", 0) => "KUBECONFIG names no file".to_string(),
            ("KUBECONFIG", _) => format!("no file of KUBECONFIG exists: {list}"),
            (_, 0) => "neither KUBECONFIG nor HOME is set".to_string(),
            _ => format!("{list} does not exist"),
        };
        return Err(config(format!("no kubeconfig found ({why}) and not inside a cluster: pass --kubeconfig FILE or set KUBECONFIG")));
    }
    from_kubeconfig(selection, wanted_context, &merged, deadline)
}

fn config(message: String) -> Error {
    Error::new(ErrorKind::Config, message)
}

fn unauthorized(message: String) -> Error {
    Error::new(ErrorKind::Unauthorized, message)
}

/// The files to read, in order, and what named them (for messages).
struct Files {
    paths: Vec<PathBuf>,
    named_by: &'static str,
    /// --kubeconfig: the one file must exist.
    explicit: bool,
}

fn kubeconfig_files(selection: &Selection, env: &dyn Fn(&str) -> Option<OsString>) -> Files {
    if let Some(path) = selection.kubeconfig.as_ref().filter(|p| !p.as_os_str().is_empty()) {
        return Files { paths: vec![path.clone()], named_by: "--kubeconfig", explicit: true };
    }
    if let Some(list) = env("KUBECONFIG") {
        let mut paths: Vec<PathBuf> = Vec::new();
        for path in std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()) {
            // A file named twice is read once.
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        return Files { paths, named_by: "KUBECONFIG", explicit: false };
    }
    let paths = env("HOME").map(|home| PathBuf::from(home).join(".kube/config")).into_iter().collect();
    Files { paths, named_by: "HOME", explicit: false }
}

/// An entry of the merged kubeconfig and the file that defined it.
struct Entry<T> {
    value: T,
    file: PathBuf,
}

impl<T> Entry<T> {
    /// `path` as written in this entry's file: relative to its directory.
    fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            return path.to_path_buf();
        }
        self.file.parent().unwrap_or(Path::new("")).join(path)
    }
}

/// The kubeconfig files merged as kubectl merges them.
#[derive(Default)]
struct Merged {
    clusters: BTreeMap<String, Entry<RawCluster>>,
    users: BTreeMap<String, Entry<RawUser>>,
    contexts: BTreeMap<String, Entry<RawContext>>,
    current_context: Option<Entry<String>>,
    /// The files that exist, in order.
    read: Vec<PathBuf>,
}

impl Merged {
    fn holds_nothing(&self) -> bool {
        self.clusters.is_empty() && self.users.is_empty() && self.contexts.is_empty() && self.current_context.is_none()
    }

    /// The files read, for messages.
    fn origin(&self) -> String {
        self.read.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}

fn merge(files: &Files) -> Result<Merged> {
    let mut merged = Merged::default();
    for path in &files.paths {
        let Some(file) = read_kubeconfig(path)? else {
            if files.explicit {
                return Err(config(format!("the kubeconfig {} (--kubeconfig) does not exist", path.display())));
            }
            // As kubectl: a file of KUBECONFIG that does not exist is skipped.
            continue;
        };
        merged.read.push(path.clone());
        add(&mut merged.clusters, file.clusters.into_iter().map(|c| (c.name, c.cluster)), path, "cluster")?;
        add(&mut merged.users, file.users.into_iter().map(|u| (u.name, u.user)), path, "user")?;
        add(&mut merged.contexts, file.contexts.into_iter().map(|c| (c.name, c.context)), path, "context")?;
        if merged.current_context.is_none() && !file.current_context.is_empty() {
            merged.current_context = Some(Entry { value: file.current_context, file: path.clone() });
        }
    }
    Ok(merged)
}

/// Adds one file's entries: a name already defined by an earlier file
/// keeps its first definition; a name twice in one file is refused, as
/// kubectl does.
fn add<T>(map: &mut BTreeMap<String, Entry<T>>, entries: impl Iterator<Item = (String, T)>, file: &Path, what: &str) -> Result<()> {
    let mut seen = BTreeSet::new();
    for (name, value) in entries {
        if !seen.insert(name.clone()) {
            return Err(config(format!("cannot read kubeconfig {}: two {what}s are named {name:?}", file.display())));
        }
        map.entry(name).or_insert_with(|| Entry { value, file: file.to_path_buf() });
    }
    Ok(())
}

/// A kubeconfig file; None when it does not exist.
fn read_kubeconfig(path: &Path) -> Result<Option<RawConfig>> {
    let Some(data) = crate::files::read_regular(path, MAX_KUBECONFIG, "kubeconfig").map_err(|e| config(format!("{e:#}")))? else {
        return Ok(None);
    };
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(RawConfig::default()));
    }
    // An empty document (only comments) is null.
    let file: Option<RawConfig> =
        serde_yaml::from_slice(&data).map_err(|e| config(format!("cannot read kubeconfig {}: {}", path.display(), yaml_error(&e))))?;
    Ok(Some(file.unwrap_or_default()))
}

/// serde_yaml's error on one line, without the values it quotes (a token
/// in the wrong place would be one).
fn yaml_error(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    let (mut out, mut quoted, mut escaped) = (String::new(), false, false);
    for c in line.chars() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    quoted = false;
                    out.push_str("…\"");
                }
                _ => {}
            }
        } else {
            quoted = c == '"';
            out.push(c);
        }
    }
    out
}

/// Maps a YAML null (`users: null`, as kubectl itself writes) to the
/// default.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> std::result::Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

// The file's shape (k8s.io/client-go/tools/clientcmd/api/v1); what opm
// does not use (preferences, extensions but the exec one) is ignored.

#[derive(Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawConfig {
    #[serde(default, deserialize_with = "nullable")]
    clusters: Vec<NamedCluster>,
    #[serde(default, deserialize_with = "nullable")]
    users: Vec<NamedUser>,
    #[serde(default, deserialize_with = "nullable")]
    contexts: Vec<NamedContext>,
    #[serde(default, deserialize_with = "nullable")]
    current_context: String,
}

#[derive(Deserialize)]
struct NamedCluster {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    cluster: RawCluster,
}

#[derive(Deserialize)]
struct NamedUser {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    user: RawUser,
}

#[derive(Deserialize)]
struct NamedContext {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    context: RawContext,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawCluster {
    #[serde(default, deserialize_with = "nullable")]
    server: String,
    #[serde(default, deserialize_with = "nullable")]
    certificate_authority: String,
    #[serde(default, deserialize_with = "nullable")]
    certificate_authority_data: String,
    #[serde(default, deserialize_with = "nullable")]
    insecure_skip_tls_verify: bool,
    #[serde(default, deserialize_with = "nullable")]
    tls_server_name: String,
    #[serde(default, deserialize_with = "nullable")]
    proxy_url: String,
    #[serde(default, deserialize_with = "nullable")]
    extensions: Vec<RawExtension>,
}

#[derive(Default, Deserialize)]
struct RawExtension {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default)]
    extension: serde_yaml::Value,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawUser {
    #[serde(default, deserialize_with = "nullable")]
    client_certificate: String,
    #[serde(default, deserialize_with = "nullable")]
    client_certificate_data: String,
    #[serde(default, deserialize_with = "nullable")]
    client_key: String,
    #[serde(default, deserialize_with = "nullable")]
    client_key_data: String,
    #[serde(default, deserialize_with = "nullable")]
    token: String,
    #[serde(default, deserialize_with = "nullable", rename = "tokenFile")]
    token_file: String,
    #[serde(default, deserialize_with = "nullable")]
    username: String,
    #[serde(default, deserialize_with = "nullable")]
    password: String,
    #[serde(default, deserialize_with = "nullable", rename = "as")]
    impersonate: String,
    #[serde(default, deserialize_with = "nullable", rename = "as-uid")]
    impersonate_uid: String,
    #[serde(default, deserialize_with = "nullable", rename = "as-groups")]
    impersonate_groups: Vec<String>,
    #[serde(default, deserialize_with = "nullable", rename = "as-user-extra")]
    impersonate_extra: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    auth_provider: Option<RawAuthProvider>,
    #[serde(default)]
    exec: Option<RawExec>,
}

#[derive(Default, Deserialize)]
struct RawAuthProvider {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawExec {
    #[serde(default, deserialize_with = "nullable")]
    command: String,
    #[serde(default, deserialize_with = "nullable")]
    args: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    env: Vec<RawExecEnv>,
    #[serde(default, deserialize_with = "nullable")]
    api_version: String,
    #[serde(default, deserialize_with = "nullable")]
    install_hint: String,
    #[serde(default, deserialize_with = "nullable")]
    provide_cluster_info: bool,
    // interactiveMode is not read: a plugin never gets a terminal from opm
    // (stdin is empty and spec.interactive is false).
}

#[derive(Default, Deserialize)]
struct RawExecEnv {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    value: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawContext {
    #[serde(default, deserialize_with = "nullable")]
    cluster: String,
    #[serde(default, deserialize_with = "nullable")]
    user: String,
    #[serde(default, deserialize_with = "nullable")]
    namespace: String,
}

/// The target of the context chosen in the merged kubeconfig.
fn from_kubeconfig(selection: &Selection, wanted: Option<&str>, merged: &Merged, deadline: Option<Instant>) -> Result<Target> {
    let origin = merged.origin();
    let (name, named_by) = match (wanted, &merged.current_context) {
        (Some(name), _) => (name, "--context".to_string()),
        (None, Some(current)) => (current.value.as_str(), format!("current-context in {}", current.file.display())),
        (None, None) => return Err(config(format!("no context in {origin}: pass --context NAME or set current-context (kubectl config use-context NAME)"))),
    };
    let context = merged.contexts.get(name).ok_or_else(|| config(format!("the context {name:?} ({named_by}) is not defined in {origin}")))?;
    let at = context.file.display();
    let cluster_name = &context.value.cluster;
    if cluster_name.is_empty() {
        return Err(config(format!("the context {name:?} (in {at}) names no cluster")));
    }
    let cluster = merged
        .clusters
        .get(cluster_name)
        .ok_or_else(|| config(format!("the cluster {cluster_name:?} of context {name:?} (in {at}) is not defined in {origin}")))?;
    let user = match context.value.user.as_str() {
        "" => None,
        user => {
            Some((user, merged.users.get(user).ok_or_else(|| config(format!("the user {user:?} of context {name:?} (in {at}) is not defined in {origin}")))?))
        }
    };
    let reach = cluster_part(cluster_name, cluster)?;
    // A bare host:port is https when anything of TLS is set (client-go's rule).
    let client_certificate = user.is_some_and(|(_, u)| !u.value.client_certificate.is_empty() || !u.value.client_certificate_data.is_empty());
    let server = server_url(&cluster.value.server, !reach.roots.is_empty() || reach.insecure || client_certificate)
        .ok_or_else(|| config(format!("the server of cluster {cluster_name:?} (in {}) is not a URL or a host:port pair", cluster.file.display())))?;
    let (credentials, identity) = match (user, deadline) {
        (Some((user, entry)), Some(deadline)) => user_part(user, entry, cluster, &reach, deadline)?,
        _ => (Credentials::None, None),
    };
    let namespace = [selection.namespace.as_deref(), Some(context.value.namespace.as_str())].into_iter().flatten().find(|n| !n.is_empty());
    Ok(Target {
        server,
        context: name.to_string(),
        namespace: namespace.unwrap_or("default").to_string(),
        roots: reach.roots,
        insecure: reach.insecure,
        tls_server_name: reach.tls_server_name,
        identity,
        credentials,
        proxy_url: reach.proxy_url,
        origin,
    })
}

/// How a cluster is reached, apart from its URL (whose scheme may depend on
/// the user's certificate).
struct Reach {
    roots: Vec<Vec<u8>>,
    insecure: bool,
    tls_server_name: Option<String>,
    proxy_url: Option<String>,
}

fn cluster_part(name: &str, entry: &Entry<RawCluster>) -> Result<Reach> {
    let c = &entry.value;
    let at = entry.file.display();
    if c.server.trim().is_empty() {
        return Err(config(format!("the cluster {name:?} (in {at}) has no server")));
    }
    let whose = format!("of cluster {name:?} (in {at})");
    let roots = match (c.certificate_authority.as_str(), c.certificate_authority_data.as_str()) {
        ("", "") => Vec::new(),
        ("", data) => vec![decode_data(data, &format!("the certificate-authority-data {whose}"))?],
        (file, "") => vec![read_pem(&entry.resolve(file), &format!("the certificate-authority {whose}"))?],
        _ => return Err(config(format!("both certificate-authority and certificate-authority-data are set {whose}: keep one"))),
    };
    if roots.iter().any(|pem| !is_pem(pem)) {
        return Err(config(format!("the certificate authority {whose} is not a PEM certificate")));
    }
    if c.insecure_skip_tls_verify && !roots.is_empty() {
        // client-go refuses the pair too.
        return Err(config(format!("the cluster {name:?} (in {at}) sets both insecure-skip-tls-verify and a certificate-authority: keep one")));
    }
    let proxy_url = match c.proxy_url.as_str() {
        "" => None,
        url => {
            let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
            if !["http", "https", "socks5"].contains(&scheme.as_str()) {
                return Err(config(format!("the proxy-url of cluster {name:?} (in {at}) is not an http, https or socks5 URL")));
            }
            Some(url.to_string())
        }
    };
    Ok(Reach { roots, insecure: c.insecure_skip_tls_verify, tls_server_name: Some(c.tls_server_name.clone()).filter(|s| !s.is_empty()), proxy_url })
}

/// The apiserver's URL from a kubeconfig's `server`: without a trailing
/// slash; a bare host:port gets https when TLS is configured, else http
/// (client-go's DefaultServerURL). None: neither a URL nor a host:port.
fn server_url(server: &str, tls: bool) -> Option<String> {
    let server = server.trim();
    let url = match server.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            if !(scheme == "https" || scheme == "http") || rest.is_empty() || rest.starts_with('/') {
                return None;
            }
            format!("{scheme}://{rest}")
        }
        None => {
            // A path needs a scheme.
            if server.split_once('/').is_some_and(|(_, path)| !path.is_empty()) {
                return None;
            }
            format!("{}://{server}", if tls { "https" } else { "http" })
        }
    };
    Some(url.trim_end_matches('/').to_string())
}

fn is_pem(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

/// A `-data` field: base64 of the bytes (whitespace allowed, as Go's
/// decoder allows line breaks).
fn decode_data(data: &str, what: &str) -> Result<Vec<u8>> {
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| config(format!("{what} is not base64")))
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>> {
    crate::files::read_regular(path, MAX_PEM, what)
        .map_err(|e| config(format!("{e:#}")))?
        .ok_or_else(|| config(format!("{what} names {}, which does not exist", path.display())))
}

/// The credentials and client certificate of a user.
fn user_part(name: &str, entry: &Entry<RawUser>, cluster: &Entry<RawCluster>, reach: &Reach, deadline: Instant) -> Result<(Credentials, Option<Vec<u8>>)> {
    let u = &entry.value;
    let at = entry.file.display();
    let whose = format!("of user {name:?} (in {at})");
    if let Some(provider) = &u.auth_provider {
        return Err(config(format!("the auth-provider {} {whose} is not supported; use an exec plugin (kubectl's own advice since 1.26)", provider.name)));
    }
    if !u.impersonate.is_empty() || !u.impersonate_uid.is_empty() || !u.impersonate_groups.is_empty() || !u.impersonate_extra.is_empty() {
        // Dropping it would act as the user itself, not as the one named.
        return Err(config(format!("the user {name:?} (in {at}) impersonates another (as, as-uid, as-groups, as-user-extra); opm does not support that")));
    }
    let (token, basic) = (!u.token.is_empty() || !u.token_file.is_empty(), !u.username.is_empty() || !u.password.is_empty());
    if token && basic {
        // client-go refuses the pair too.
        return Err(config(format!("the user {name:?} (in {at}) has more than one authentication method (token, basic); only one is allowed")));
    }
    let identity = client_identity(u, entry, &whose)?;
    let credentials = if !u.token_file.is_empty() {
        // client-go reads the file, and keeps the inline token only for
        // when the file cannot be read.
        match read_token(&entry.resolve(&u.token_file), &format!("the tokenFile {whose}")) {
            Ok(token) => Credentials::Bearer(token),
            Err(_) if !u.token.is_empty() => Credentials::Bearer(u.token.clone()),
            Err(e) => return Err(e),
        }
    } else if !u.token.is_empty() {
        Credentials::Bearer(u.token.clone())
    } else if basic {
        Credentials::Basic { username: u.username.clone(), password: u.password.clone() }
    } else {
        Credentials::None
    };
    match &u.exec {
        // As client-go: credentials in the file are used before a plugin.
        Some(exec) if credentials == Credentials::None && identity.is_none() => run_exec(exec, name, entry, cluster, reach, deadline),
        _ => Ok((credentials, identity)),
    }
}

/// The client certificate(s) and key of a user, PEM, one after the other.
fn client_identity(u: &RawUser, entry: &Entry<RawUser>, whose: &str) -> Result<Option<Vec<u8>>> {
    let part = |file: &str, data: &str, field: &str| -> Result<Option<Vec<u8>>> {
        match (file, data) {
            ("", "") => Ok(None),
            ("", data) => decode_data(data, &format!("the {field}-data {whose}")).map(Some),
            (file, "") => read_pem(&entry.resolve(file), &format!("the {field} {whose}")).map(Some),
            _ => Err(config(format!("both {field} and {field}-data are set {whose}: keep one"))),
        }
    };
    let certificate = part(&u.client_certificate, &u.client_certificate_data, "client-certificate")?;
    let Some(mut identity) = certificate else { return Ok(None) };
    let key = part(&u.client_key, &u.client_key_data, "client-key")?
        .ok_or_else(|| config(format!("a client certificate is set {whose} without its key: set client-key or client-key-data")))?;
    if !is_pem(&identity) || !is_pem(&key) {
        return Err(config(format!("the client certificate or key {whose} is not PEM")));
    }
    if !identity.ends_with(b"\n") {
        identity.push(b'\n');
    }
    identity.extend_from_slice(&key);
    Ok(Some(identity))
}

/// A token file's token, trimmed.
fn read_token(path: &Path, what: &str) -> Result<String> {
    let data = crate::files::read_regular(path, MAX_TOKEN, what)
        .map_err(|e| config(format!("{e:#}")))?
        .ok_or_else(|| config(format!("{what} names {}, which does not exist", path.display())))?;
    let token = String::from_utf8(data).map_err(|_| config(format!("{what} ({}) is not text", path.display())))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(config(format!("{what} ({}) is empty", path.display())));
    }
    Ok(token.to_string())
}

/// Runs a user's exec plugin (client-go's credential plugins) and reads the
/// ExecCredential it prints.
fn run_exec(
    exec: &RawExec,
    name: &str,
    entry: &Entry<RawUser>,
    cluster: &Entry<RawCluster>,
    reach: &Reach,
    deadline: Instant,
) -> Result<(Credentials, Option<Vec<u8>>)> {
    let at = entry.file.display();
    if exec.command.is_empty() {
        return Err(config(format!("the exec plugin of user {name:?} (in {at}) names no command")));
    }
    let plugin = format!("the exec plugin {} of user {name:?} (in {at})", exec.command);
    let api_version = exec.api_version.as_str();
    if !EXEC_API_VERSIONS.contains(&api_version) {
        let has = if api_version.is_empty() { "no apiVersion".to_string() } else { format!("apiVersion {api_version:?}") };
        return Err(config(format!("{plugin} has {has}; opm supports {}", EXEC_API_VERSIONS.join(" and "))));
    }
    if exec.env.iter().any(|v| v.name.is_empty()) {
        return Err(config(format!("{plugin} has an env entry without a name")));
    }
    // A command with a slash is a path, relative to the kubeconfig; a bare
    // name is looked up on PATH.
    let command = if exec.command.contains('/') { entry.resolve(&exec.command) } else { PathBuf::from(&exec.command) };
    let mut spec = serde_json::json!({ "interactive": false });
    if exec.provide_cluster_info {
        spec["cluster"] = exec_cluster(cluster, reach);
    }
    let info = serde_json::json!({ "apiVersion": api_version, "kind": "ExecCredential", "spec": spec });
    let mut cmd = std::process::Command::new(&command);
    cmd.args(&exec.args).env("KUBERNETES_EXEC_INFO", info.to_string()).stderr(std::process::Stdio::null());
    for var in &exec.env {
        cmd.env(&var.name, &var.value);
    }
    let limit = deadline.saturating_duration_since(Instant::now()).min(EXEC_TIMEOUT);
    let done = match crate::process::run(cmd, b"", limit, MAX_EXEC_ANSWER) {
        Ok(done) => done,
        Err(RunError::NotFound) => {
            let hint = exec.install_hint.split_whitespace().collect::<Vec<_>>().join(" ");
            let hint = if hint.is_empty() { String::new() } else { format!(" ({hint})") };
            return Err(unauthorized(format!("{plugin} was not found: is it installed and on PATH?{hint}")));
        }
        Err(RunError::Failed(why)) => return Err(unauthorized(format!("cannot run {plugin}: {why}"))),
        Err(RunError::TimedOut(limit)) => {
            let budget = if limit < EXEC_TIMEOUT { " (the command's time budget, --timeout)" } else { "" };
            return Err(unauthorized(format!("{plugin} gave no answer within {} s{budget}; it was stopped", limit.as_secs_f32().round())));
        }
    };
    if !done.status.success() {
        use std::os::unix::process::ExitStatusExt as _;
        let how = match (done.status.code(), done.status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "no exit status".to_string(),
        };
        // Its own words are not repeated (they may hold a secret).
        return Err(unauthorized(format!("{plugin} failed: {how}; run it yourself to see why")));
    }
    exec_answer(&done.stdout, api_version, &plugin)
}

/// `spec.cluster` of the ExecCredential given to a plugin that asks for it
/// (provideClusterInfo).
fn exec_cluster(cluster: &Entry<RawCluster>, reach: &Reach) -> serde_json::Value {
    let c = &cluster.value;
    let mut out = serde_json::json!({ "server": c.server });
    if let Some(sni) = &reach.tls_server_name {
        out["tls-server-name"] = sni.clone().into();
    }
    if reach.insecure {
        out["insecure-skip-tls-verify"] = true.into();
    }
    if !reach.roots.is_empty() {
        out["certificate-authority-data"] = base64::engine::general_purpose::STANDARD.encode(reach.roots.concat()).into();
    }
    if let Some(proxy) = &reach.proxy_url {
        out["proxy-url"] = proxy.clone().into();
    }
    // An extension JSON cannot say (YAML's non-string keys) is left out.
    if let Some(config) = c.extensions.iter().find(|e| e.name == EXEC_EXTENSION).and_then(|e| serde_json::to_value(&e.extension).ok()) {
        out["config"] = config;
    }
    out
}

/// What an exec plugin printed: a token, a client certificate, or both.
fn exec_answer(stdout: &[u8], api_version: &str, plugin: &str) -> Result<(Credentials, Option<Vec<u8>>)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ExecCredential {
        #[serde(default)]
        api_version: String,
        #[serde(default)]
        kind: String,
        #[serde(default)]
        status: Option<Status>,
    }
    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Status {
        #[serde(default, deserialize_with = "nullable")]
        token: String,
        #[serde(default, deserialize_with = "nullable")]
        client_certificate_data: String,
        #[serde(default, deserialize_with = "nullable")]
        client_key_data: String,
    }
    let bad = |why: &str| unauthorized(format!("{plugin} {why}"));
    // serde's words would quote what it printed.
    let answer: ExecCredential = serde_json::from_slice(stdout).map_err(|_| bad("printed no ExecCredential (malformed JSON)"))?;
    if answer.kind != "ExecCredential" {
        return Err(bad("printed something other than an ExecCredential"));
    }
    if answer.api_version != api_version {
        return Err(bad(&format!("answered in another apiVersion than the {api_version} it is configured with")));
    }
    let status = answer.status.ok_or_else(|| bad("returned no status"))?;
    let (cert, key) = (status.client_certificate_data, status.client_key_data);
    if status.token.is_empty() && cert.is_empty() && key.is_empty() {
        return Err(bad("returned neither a token nor a client certificate and key"));
    }
    if cert.is_empty() != key.is_empty() {
        return Err(bad("returned a client certificate or a key, not both"));
    }
    let identity = (!cert.is_empty()).then(|| {
        let mut identity = cert.into_bytes();
        if !identity.ends_with(b"\n") {
            identity.push(b'\n');
        }
        identity.extend_from_slice(key.as_bytes());
        identity
    });
    let credentials = if status.token.is_empty() { Credentials::None } else { Credentials::Bearer(status.token) };
    Ok((credentials, identity))
}

/// A pod's service account, when opm runs in one (KUBERNETES_SERVICE_HOST
/// and _PORT set, and a token in `dir`). None: not in a cluster.
fn in_cluster(selection: &Selection, env: &dyn Fn(&str) -> Option<OsString>, dir: &Path) -> Result<Option<Target>> {
    let (Some(host), Some(port)) = (env("KUBERNETES_SERVICE_HOST"), env("KUBERNETES_SERVICE_PORT")) else { return Ok(None) };
    let token_path = dir.join("token");
    if !token_path.is_file() {
        return Ok(None);
    }
    let origin = format!("in-cluster service account ({})", dir.display());
    let token = read_token(&token_path, "the service account token").map_err(|e| unauthorized(e.message))?;
    // As client-go: without its CA file, the system's roots.
    let roots = crate::files::read_regular(&dir.join("ca.crt"), MAX_PEM, "the service account's CA").map_err(|e| config(format!("{e:#}")))?;
    let host = host.to_string_lossy();
    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.into_owned() };
    let namespace = selection
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| env("POD_NAMESPACE").map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| {
            let data = crate::files::read_regular(&dir.join("namespace"), 4 << 10, "the service account's namespace").ok()??;
            Some(String::from_utf8_lossy(&data).trim().to_string()).filter(|n| !n.is_empty())
        })
        .unwrap_or_else(|| "default".to_string());
    Ok(Some(Target {
        server: format!("https://{host}:{}", port.to_string_lossy()),
        context: "in-cluster".to_string(),
        namespace,
        roots: roots.into_iter().collect(),
        insecure: false,
        tls_server_name: None,
        identity: None,
        credentials: Credentials::Bearer(token),
        proxy_url: None,
        origin,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n";
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nsecret-key-material\n-----END PRIVATE KEY-----\n";

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn write(path: &Path, text: &str) -> PathBuf {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        path.to_path_buf()
    }

    fn script(path: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        write(path, &format!("#!/bin/sh\n{body}\n"));
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_path_buf()
    }

    /// A fake environment and an empty service account directory.
    struct World {
        vars: BTreeMap<String, OsString>,
        service_account: tempfile::TempDir,
    }

    impl World {
        fn new(vars: &[(&str, &std::ffi::OsStr)]) -> World {
            let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_os_string())).collect();
            World { vars, service_account: tempfile::tempdir().unwrap() }
        }

        fn load(&self, selection: &Selection) -> Result<Target> {
            self.load_until(selection, Instant::now() + Duration::from_secs(20))
        }

        fn load_until(&self, selection: &Selection, deadline: Instant) -> Result<Target> {
            load_from(selection, Some(deadline), &|k| self.vars.get(k).cloned(), self.service_account.path())
        }
    }

    fn kubeconfig_env(files: &[&Path]) -> OsString {
        std::env::join_paths(files).unwrap()
    }

    fn one_context(server: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: ctx\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n{user}\n"
        )
    }

    fn user_target(user: &str) -> Result<Target> {
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir.path().join("config"), &one_context("https://k:6443", user));
        World::new(&[]).load(&Selection { kubeconfig: Some(file), ..Selection::default() })
    }

    #[test]
    fn merge_order_across_two_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            &dir.path().join("a"),
            "current-context: first\nclusters:\n- name: shared\n  cluster: {server: 'https://a:6443/'}\ncontexts:\n- name: first\n  context: {cluster: shared, namespace: apps}\n",
        );
        let b = write(
            &dir.path().join("b"),
            "current-context: second\nclusters:\n- name: shared\n  cluster: {server: 'https://b:6443'}\n- name: only-b\n  cluster: {server: 'https://only-b'}\ncontexts:\n- name: first\n  context: {cluster: only-b}\n- name: second\n  context: {cluster: only-b}\n",
        );
        let missing = dir.path().join("missing");
        let w = World::new(&[("KUBECONFIG", &kubeconfig_env(&[&a, &missing, &b]))]);
        let t = w.load(&Selection::default()).unwrap();
        assert_eq!((t.server.as_str(), t.context.as_str(), t.namespace.as_str()), ("https://a:6443", "first", "apps"));
        assert_eq!(t.origin, format!("{}, {}", a.display(), b.display()));
        assert_eq!(t.credentials, Credentials::None);
        // A context only the second file has, over a cluster the first file won.
        let t = w.load(&Selection { context: Some("second".into()), namespace: Some("mine".into()), ..Selection::default() }).unwrap();
        assert_eq!((t.server.as_str(), t.namespace.as_str()), ("https://only-b", "mine"));
        // The other order: b's current-context and b's "shared".
        let t = World::new(&[("KUBECONFIG", &kubeconfig_env(&[&b, &a]))]).load(&Selection::default()).unwrap();
        assert_eq!((t.server.as_str(), t.context.as_str(), t.namespace.as_str()), ("https://only-b", "second", "default"));
    }

    #[test]
    fn empty_and_missing_entries_of_kubeconfig_are_skipped_and_home_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(&dir.path().join("a"), &one_context("https://a", "    token: t"));
        let list = format!(":{}::{}", dir.path().join("nope").display(), a.display());
        let t = World::new(&[("KUBECONFIG", std::ffi::OsStr::new(&list))]).load(&Selection::default()).unwrap();
        assert_eq!(t.server, "https://a");
        let home = tempfile::tempdir().unwrap();
        write(&home.path().join(".kube/config"), &one_context("https://home", "    token: t"));
        let t = World::new(&[("HOME", home.path().as_os_str()), ("KUBECONFIG", std::ffi::OsStr::new(""))]).load(&Selection::default()).unwrap();
        assert_eq!(t.server, "https://home");
    }

    #[test]
    fn relative_paths_resolve_against_the_file_that_named_them() {
        let dir = tempfile::tempdir().unwrap();
        let clusters = dir.path().join("clusters");
        let users = dir.path().join("users");
        write(&clusters.join("pki/ca.crt"), CA);
        write(&users.join("me.crt"), CERT);
        write(&users.join("keys/me.key"), KEY);
        write(&dir.path().join("ca.crt"), "not this one");
        let a = write(
            &clusters.join("config"),
            "current-context: ctx\nclusters:\n- name: c\n  cluster: {server: 'https://k', certificate-authority: pki/ca.crt}\ncontexts:\n- name: ctx\n  context: {cluster: c, user: u}\n",
        );
        let b = write(&users.join("config"), "users:\n- name: u\n  user: {client-certificate: me.crt, client-key: keys/me.key}\n");
        let t = World::new(&[("KUBECONFIG", &kubeconfig_env(&[&a, &b]))]).load(&Selection::default()).unwrap();
        assert_eq!(t.roots, vec![CA.as_bytes().to_vec()]);
        assert_eq!(t.identity.as_deref(), Some(format!("{CERT}{KEY}").as_bytes()));
        assert_eq!(t.credentials, Credentials::None);
    }

    #[test]
    fn explicit_kubeconfig_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let env_file = write(&dir.path().join("env"), &one_context("https://from-env", "    token: t"));
        let flag_file = write(&dir.path().join("flag"), &one_context("https://from-flag", "    token: t"));
        let w = World::new(&[("KUBECONFIG", env_file.as_os_str())]);
        let t = w.load(&Selection { kubeconfig: Some(flag_file.clone()), ..Selection::default() }).unwrap();
        assert_eq!((t.server.as_str(), t.origin), ("https://from-flag", flag_file.display().to_string()));
        let missing = dir.path().join("missing");
        let e = w.load(&Selection { kubeconfig: Some(missing.clone()), ..Selection::default() }).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert_eq!(e.message, format!("the kubeconfig {} (--kubeconfig) does not exist", missing.display()));
    }

    #[test]
    fn missing_context_is_said_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir.path().join("config"), "clusters:\n- name: c\n  cluster: {server: 'https://k'}\nusers: null\ncontexts: null\n");
        let e = World::new(&[("KUBECONFIG", file.as_os_str())]).load(&Selection::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert_eq!(e.message, format!("no context in {}: pass --context NAME or set current-context (kubectl config use-context NAME)", file.display()));
    }

    #[test]
    fn undefined_names_are_said_with_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            &dir.path().join("config"),
            "current-context: gone\ncontexts:\n- name: no-cluster\n  context: {cluster: nowhere, user: u}\n- name: no-user\n  context: {cluster: c, user: nobody}\nclusters:\n- name: c\n  cluster: {server: 'https://k'}\n",
        );
        let w = World::new(&[("KUBECONFIG", file.as_os_str())]);
        let at = file.display();
        let message = |context: Option<&str>| {
            let e = w.load(&Selection { context: context.map(String::from), ..Selection::default() }).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Config);
            e.message
        };
        assert_eq!(message(None), format!("the context \"gone\" (current-context in {at}) is not defined in {at}"));
        assert_eq!(message(Some("typo")), format!("the context \"typo\" (--context) is not defined in {at}"));
        assert_eq!(message(Some("no-cluster")), format!("the cluster \"nowhere\" of context \"no-cluster\" (in {at}) is not defined in {at}"));
        assert_eq!(message(Some("no-user")), format!("the user \"nobody\" of context \"no-user\" (in {at}) is not defined in {at}"));
    }

    #[test]
    fn no_kubeconfig_and_no_cluster_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let e = World::new(&[("HOME", dir.path().as_os_str())]).load(&Selection::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        let config = dir.path().join(".kube/config");
        assert_eq!(
            e.message,
            format!("no kubeconfig found ({} does not exist) and not inside a cluster: pass --kubeconfig FILE or set KUBECONFIG", config.display())
        );
    }

    #[test]
    fn token_token_file_basic_and_client_certificate_data() {
        let t = user_target("    token: tok-123").unwrap();
        assert_eq!(t.credentials, Credentials::Bearer("tok-123".into()));
        let t = user_target("    username: me\n    password: pw").unwrap();
        assert_eq!(t.credentials, Credentials::Basic { username: "me".into(), password: "pw".into() });
        let t = user_target(&format!("    client-certificate-data: {}\n    client-key-data: {}", b64(CERT), b64(KEY))).unwrap();
        assert_eq!(t.identity.as_deref(), Some(format!("{CERT}{KEY}").as_bytes()));
        assert_eq!(t.credentials, Credentials::None);

        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("token"), "  file-token\n");
        let file = write(&dir.path().join("config"), &one_context("https://k", "    tokenFile: token\n    token: inline"));
        let t = World::new(&[]).load(&Selection { kubeconfig: Some(file.clone()), ..Selection::default() }).unwrap();
        assert_eq!(t.credentials, Credentials::Bearer("file-token".into()));
        std::fs::remove_file(dir.path().join("token")).unwrap();
        let t = World::new(&[]).load(&Selection { kubeconfig: Some(file), ..Selection::default() }).unwrap();
        assert_eq!(t.credentials, Credentials::Bearer("inline".into()), "the inline token when the file cannot be read");

        let e = user_target("    tokenFile: /nonexistent/token").unwrap_err();
        assert!(e.message.contains("tokenFile of user \"u\"") && e.message.contains("does not exist"), "{}", e.message);
        let e = user_target("    token: secret-t\n    username: me\n    password: secret-p").unwrap_err();
        assert!(e.message.contains("more than one authentication method (token, basic)"), "{}", e.message);
        let e = user_target(&format!("    client-certificate-data: {}", b64(CERT))).unwrap_err();
        assert!(e.message.contains("without its key"), "{}", e.message);
        let e = user_target("    auth-provider:\n      name: gcp\n      config: {access-token: secret-t}").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.starts_with("the auth-provider gcp of user \"u\"") && e.message.ends_with("use an exec plugin (kubectl's own advice since 1.26)"));
        let e = user_target("    tokenFile: t\n    username: me\n    password: secret-p").unwrap_err();
        assert!(e.message.contains("more than one authentication method") && !e.message.contains("secret"), "{}", e.message);
    }

    #[test]
    fn servers_and_cluster_settings() {
        assert_eq!(server_url("https://k:6443/", false).as_deref(), Some("https://k:6443"));
        assert_eq!(server_url("https://proxy/k8s/clusters/c-1/", false).as_deref(), Some("https://proxy/k8s/clusters/c-1"));
        assert_eq!(server_url("k:8080", false).as_deref(), Some("http://k:8080"));
        assert_eq!(server_url("k:6443", true).as_deref(), Some("https://k:6443"));
        assert_eq!(server_url("k:6443/path", true), None);
        assert_eq!(server_url("ftp://k", true), None);

        let dir = tempfile::tempdir().unwrap();
        let file = write(
            &dir.path().join("config"),
            &format!(
                "current-context: ctx\nclusters:\n- name: c\n  cluster:\n    server: k:6443\n    certificate-authority-data: {}\n    tls-server-name: api.internal\n    proxy-url: socks5://proxy:1080\ncontexts:\n- name: ctx\n  context: {{cluster: c}}\n",
                b64(CA)
            ),
        );
        let t = World::new(&[]).load(&Selection { kubeconfig: Some(file), ..Selection::default() }).unwrap();
        assert_eq!(t.server, "https://k:6443");
        assert_eq!(t.roots, vec![CA.as_bytes().to_vec()]);
        assert_eq!(t.tls_server_name.as_deref(), Some("api.internal"));
        assert_eq!(t.proxy_url.as_deref(), Some("socks5://proxy:1080"));
        assert!(!t.insecure);

        let cluster = |fields: &str| {
            let file = write(
                &dir.path().join("config"),
                &format!("current-context: ctx\nclusters:\n- name: c\n  cluster: {{server: 'https://k', {fields}}}\ncontexts:\n- name: ctx\n  context: {{cluster: c}}\n"),
            );
            World::new(&[]).load(&Selection { kubeconfig: Some(file), ..Selection::default() })
        };
        let at = dir.path().join("config");
        let t = cluster("insecure-skip-tls-verify: true").unwrap();
        assert!(t.insecure && t.roots.is_empty());
        let e = cluster("certificate-authority: pki/missing.crt").unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "the certificate-authority of cluster \"c\" (in {}) names {}, which does not exist",
                at.display(),
                dir.path().join("pki/missing.crt").display()
            )
        );
        let e = cluster("certificate-authority-data: '%%%'").unwrap_err();
        assert_eq!(e.message, format!("the certificate-authority-data of cluster \"c\" (in {}) is not base64", at.display()));
        let e = cluster(&format!("certificate-authority-data: {}, insecure-skip-tls-verify: true", b64(CA))).unwrap_err();
        assert!(e.message.contains("sets both insecure-skip-tls-verify and a certificate-authority"), "{}", e.message);
        let e = cluster("proxy-url: 'ftp://user:secret@proxy'").unwrap_err();
        assert!(e.message.contains("is not an http, https or socks5 URL") && !e.message.contains("secret"), "{}", e.message);
    }

    #[test]
    fn malformed_yaml_is_one_line_without_its_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir.path().join("config"), "clusters:\n- name: c\n  cluster:\n    insecure-skip-tls-verify: secret-value\n");
        let e = World::new(&[]).load(&Selection { kubeconfig: Some(file.clone()), ..Selection::default() }).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.starts_with(&format!("cannot read kubeconfig {}: ", file.display())), "{}", e.message);
        assert!(!e.message.contains("secret-value") && !e.message.contains('\n'), "{}", e.message);
        write(&file, "users: [\n");
        let e = World::new(&[]).load(&Selection { kubeconfig: Some(file.clone()), ..Selection::default() }).unwrap_err();
        assert!(e.message.starts_with(&format!("cannot read kubeconfig {}: ", file.display())) && !e.message.contains('\n'), "{}", e.message);
        write(&file, "clusters:\n- name: c\n  cluster: {server: 'https://a'}\n- name: c\n  cluster: {server: 'https://b'}\n");
        let e = World::new(&[]).load(&Selection { kubeconfig: Some(file.clone()), ..Selection::default() }).unwrap_err();
        assert!(e.message.ends_with("two clusters are named \"c\""), "{}", e.message);
    }

    #[test]
    fn an_exec_plugin_gives_a_token() {
        let dir = tempfile::tempdir().unwrap();
        // The token is made of an argument, an env entry and the info's
        // interactive flag; stdin is empty.
        script(
            &dir.path().join("bin/get-token"),
            r#"for want in '"kind":"ExecCredential"' '"apiVersion":"client.authentication.k8s.io/v1"' '"interactive":false' '"server":"https://k"'; do
  case "$KUBERNETES_EXEC_INFO" in *"$want"*) ;; *) exit 9;; esac
done
input=$(cat)
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"tok-%s-%s-%s"}}' "$1" "$REGION" "${#input}""#,
        );
        let user = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: ./bin/get-token\n      args: [prod]\n      env: [{name: REGION, value: eu}]\n      interactiveMode: Never\n      provideClusterInfo: true";
        let file = write(&dir.path().join("config"), &one_context("https://k", user));
        let t = World::new(&[]).load(&Selection { kubeconfig: Some(file), ..Selection::default() }).unwrap();
        assert_eq!(t.credentials, Credentials::Bearer("tok-prod-eu-0".into()));
        assert_eq!(t.identity, None);
    }

    #[test]
    fn an_exec_plugin_gives_a_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let answer = serde_json::json!({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", "status": {"clientCertificateData": CERT, "clientKeyData": KEY}});
        write(&dir.path().join("answer.json"), &answer.to_string());
        script(&dir.path().join("plugin"), &format!("cat {}", dir.path().join("answer.json").display()));
        let user = format!("    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {}", dir.path().join("plugin").display());
        let file = write(&dir.path().join("config"), &one_context("https://k", &user));
        let t = World::new(&[]).load(&Selection { kubeconfig: Some(file), ..Selection::default() }).unwrap();
        assert_eq!(t.identity.as_deref(), Some(format!("{CERT}{KEY}").as_bytes()));
        assert_eq!(t.credentials, Credentials::None);
    }

    #[test]
    fn a_static_token_is_used_before_an_exec_plugin() {
        let t = user_target("    token: static\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /nonexistent/plugin").unwrap();
        assert_eq!(t.credentials, Credentials::Bearer("static".into()));
    }

    #[test]
    fn an_exec_plugin_that_hangs_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        script(&dir.path().join("hang"), "exec sleep 30");
        let user = format!("    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}", dir.path().join("hang").display());
        let file = write(&dir.path().join("config"), &one_context("https://k", &user));
        let started = Instant::now();
        let e = World::new(&[])
            .load_until(&Selection { kubeconfig: Some(file), ..Selection::default() }, Instant::now() + Duration::from_millis(1200))
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(e.message.contains("gave no answer within 1 s (the command's time budget, --timeout); it was stopped"), "{}", e.message);
    }

    #[test]
    fn exec_plugin_failures_name_the_plugin_not_its_output() {
        let dir = tempfile::tempdir().unwrap();
        script(&dir.path().join("fails"), "echo secret-out; echo secret-err >&2; exit 3");
        script(&dir.path().join("garbage"), "echo '{\"secret-out\": '");
        script(
            &dir.path().join("wrong-version"),
            r#"echo '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"secret-t"}}'"#,
        );
        let load = |command: &str, hint: &str| {
            let user = format!("    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {command}\n      installHint: {hint}");
            let file = write(&dir.path().join("config"), &one_context("https://k", &user));
            let e = World::new(&[]).load(&Selection { kubeconfig: Some(file), ..Selection::default() }).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unauthorized, "{}", e.message);
            assert!(!e.message.contains("secret"), "{}", e.message);
            e.message
        };
        assert!(load("./fails", "x").ends_with("failed: exit status 3; run it yourself to see why"));
        assert!(load("./garbage", "x").contains("printed no ExecCredential"));
        assert!(load("./wrong-version", "x").contains("another apiVersion"));
        let m = load("opm-test-no-such-plugin", "'Install it:\n        brew install it'");
        assert!(m.starts_with("the exec plugin opm-test-no-such-plugin of user \"u\""), "{m}");
        assert!(m.ends_with("was not found: is it installed and on PATH? (Install it: brew install it)"), "{m}");
    }

    #[test]
    fn in_cluster_from_the_service_account() {
        let w = World::new(&[("KUBERNETES_SERVICE_HOST", "fd00::1".as_ref()), ("KUBERNETES_SERVICE_PORT", "443".as_ref())]);
        let sa = w.service_account.path();
        // Without a token: not in a cluster.
        let e = w.load(&Selection::default()).unwrap_err();
        assert!(e.message.starts_with("no kubeconfig found (neither KUBECONFIG nor HOME is set)"), "{}", e.message);
        write(&sa.join("token"), "sa-token\n");
        write(&sa.join("ca.crt"), CA);
        write(&sa.join("namespace"), "team-a\n");
        let t = w.load(&Selection::default()).unwrap();
        assert_eq!((t.server.as_str(), t.context.as_str(), t.namespace.as_str()), ("https://[fd00::1]:443", "in-cluster", "team-a"));
        assert_eq!(t.credentials, Credentials::Bearer("sa-token".into()));
        assert_eq!(t.roots, vec![CA.as_bytes().to_vec()]);
        assert_eq!(t.origin, format!("in-cluster service account ({})", sa.display()));
        assert_eq!(w.load(&Selection { namespace: Some("ns".into()), ..Selection::default() }).unwrap().namespace, "ns");
        // A context asked for by name is looked for in a kubeconfig.
        let e = w.load(&Selection { context: Some("x".into()), ..Selection::default() }).unwrap_err();
        assert!(e.message.starts_with("no kubeconfig found"), "{}", e.message);
        // A kubeconfig that holds something wins.
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir.path().join("config"), &one_context("https://k", "    token: t"));
        let t = w.load(&Selection { kubeconfig: Some(file), ..Selection::default() }).unwrap();
        assert_eq!(t.server, "https://k");
        // An empty one does not.
        let empty = write(&dir.path().join("empty"), "# nothing yet\n");
        let t = w.load(&Selection { kubeconfig: Some(empty), ..Selection::default() }).unwrap();
        assert_eq!(t.context, "in-cluster");
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let t = Target {
            server: "https://admin:secret-server@k".into(),
            context: "ctx".into(),
            namespace: "default".into(),
            roots: vec![CA.as_bytes().to_vec()],
            insecure: false,
            tls_server_name: None,
            identity: Some(KEY.as_bytes().to_vec()),
            credentials: Credentials::Bearer("secret-token".into()),
            proxy_url: Some("http://me:secret-proxy@proxy:3128".into()),
            origin: "/home/u/.kube/config".into(),
        };
        let text = format!("{t:?} {:?}", Credentials::Basic { username: "me".into(), password: "secret-password".into() });
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("Bearer(<redacted>)") && text.contains("password: <redacted>") && text.contains("identity: Some(<redacted>)"), "{text}");
        assert!(text.contains("http://<redacted>@proxy:3128") && text.contains("username: \"me\""), "{text}");
    }
}
