//! A user's credentials: tokens, token files, basic auth, client
//! certificates, exec plugins (run bounded, killed whole) and a pod's
//! service account. No secret reaches a message.

use super::*;
use crate::process::RunError;

/// The credentials and client certificate of a user.
pub(super) fn user_part(
    name: &str,
    entry: &Entry<RawUser>,
    cluster: &Entry<RawCluster>,
    reach: &Reach,
    deadline: Instant,
) -> Result<(Credentials, Option<Vec<u8>>)> {
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
            // Credentials that cannot be read: exit 4, as a registry's.
            Err(e) => return Err(unauthorized(e.message)),
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
            (file, "") => read_pem(&entry.resolve(file), &format!("the {field} {whose}")).map(Some).map_err(|e| unauthorized(e.message)),
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
pub(super) fn in_cluster(selection: &Selection, env: &dyn Fn(&str) -> Option<OsString>, dir: &Path) -> Result<Option<Target>> {
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

pub(super) fn is_pem(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"-----BEGIN ")
}

/// A `-data` field: base64 of the bytes (whitespace allowed, as Go's
/// decoder allows line breaks).
pub(super) fn decode_data(data: &str, what: &str) -> Result<Vec<u8>> {
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| config(format!("{what} is not base64")))
}

pub(super) fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>> {
    crate::files::read_regular(path, MAX_PEM, what)
        .map_err(|e| config(format!("{e:#}")))?
        .ok_or_else(|| config(format!("{what} names {}, which does not exist", path.display())))
}
