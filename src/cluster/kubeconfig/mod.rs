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

mod credentials;

use super::error::{Error, ErrorKind, Result};
use base64::Engine as _;
use credentials::{decode_data, in_cluster, is_pem, read_pem, user_part};
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

#[cfg(test)]
mod tests;
