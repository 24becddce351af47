//! A real Kubernetes API server for tests: etcd and kube-apiserver (built
//! into tools/bin by `make test`) on 127.0.0.1 at free ports, TLS with a
//! throwaway CA, static bearer tokens and RBAC. Shared by every test of the
//! process: started once, on first use (a few seconds), and killed with the
//! test process (PR_SET_PDEATHSIG). Tests share it, so each one works in
//! namespaces and releases of its own (`unique`).
//!
//! Only the API server runs: no controller-manager, scheduler or kubelet.
//! Deployments get no ReplicaSets or Pods (mark them available with
//! `patch_status`), namespaces get no "default" ServiceAccount, nothing is
//! garbage-collected, and a deleted namespace stays Terminating.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Every request of the helpers gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the API server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Start-up attempts (a free port may be taken in the meantime).
const ATTEMPTS: usize = 3;
/// Per-process directories in the temp dir: `PREFIX<pid>`.
const DIR_PREFIX: &str = "opm-kube-test-";

/// A real etcd + kube-apiserver on loopback, shared by every test of the
/// process (started once, ~4-6 s).
pub fn cluster() -> &'static TestCluster {
    static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(start) {
        Ok(cluster) => cluster,
        Err(e) => panic!("{e}"),
    }
}

pub struct TestCluster {
    /// https://127.0.0.1:PORT
    pub server: String,
    /// The CA certificate that signed the server's (PEM).
    pub ca_file: PathBuf,
    /// User "admin", in group system:masters: may do anything.
    pub admin_token: String,
    /// User "viewer": may get, list and watch everything, nothing else.
    pub viewer_token: String,
    /// etcd's data, the certificates, both logs.
    dir: PathBuf,
    ca_pem: Vec<u8>,
    next: AtomicUsize,
}

impl TestCluster {
    /// A kubeconfig file in `dir` (a test's own temp dir) with one context
    /// "opm-test" (current) pointing at the server with the CA file and the
    /// admin token, namespace `ns`.
    pub fn kubeconfig(&self, dir: &Path, ns: &str) -> PathBuf {
        self.write_kubeconfig(&dir.join("kubeconfig"), "admin", &self.admin_token, ns)
    }

    /// Same, with the restricted token (user "viewer": may get/list/watch
    /// everything, nothing else).
    pub fn viewer_kubeconfig(&self, dir: &Path, ns: &str) -> PathBuf {
        self.write_kubeconfig(&dir.join("kubeconfig-viewer"), "viewer", &self.viewer_token, ns)
    }

    fn write_kubeconfig(&self, path: &Path, user: &str, token: &str, ns: &str) -> PathBuf {
        // Double-quoted YAML scalars are JSON strings.
        let q = |s: &str| Value::from(s).to_string();
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: opm-test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: opm-test\n  context:\n    cluster: opm-test\n    user: {user}\n    namespace: {ns}\ncurrent-context: opm-test\n",
            server = q(&self.server),
            ca = q(&self.ca_file.to_string_lossy()),
            user = q(user),
            token = q(token),
            ns = q(ns),
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        path.to_path_buf()
    }

    /// A unique namespace-safe name for a test ("t-<name>-<n>"): tests
    /// share the cluster, so each uses its own namespaces and release names.
    pub fn unique(&self, name: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
        name.truncate(40);
        let name = name.trim_matches('-');
        if name.is_empty() {
            format!("t-{n}")
        } else {
            format!("t-{name}-{n}")
        }
    }

    /// GET as the admin: the object, or None on 404.
    pub fn get(&self, path: &str) -> Option<Value> {
        match self.admin("GET", path, None, None) {
            (404, _) => None,
            (200, body) => Some(body),
            (status, body) => panic!("GET {path}: {status} {body}"),
        }
    }

    /// POST as the admin (create); the object created.
    pub fn create(&self, path: &str, body: &Value) -> Value {
        match self.admin("POST", path, Some("application/json"), Some(body)) {
            (200..=202, body) => body,
            (status, answer) => panic!("POST {path}: {status} {answer}"),
        }
    }

    /// Server-side apply as the admin under another field manager
    /// (`?fieldManager=MANAGER&force=true`), as another tool would.
    pub fn apply_as(&self, manager: &str, path: &str, body: &Value) -> Value {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{path}{sep}fieldManager={manager}&force=true");
        match self.admin("PATCH", &url, Some("application/apply-patch+yaml"), Some(body)) {
            (200 | 201, body) => body,
            (status, answer) => panic!("apply {url}: {status} {answer}"),
        }
    }

    /// A JSON merge patch of the /status subresource of the object at
    /// `path` (e.g. to mark a Deployment available: status.observedGeneration,
    /// replicas, readyReplicas, availableReplicas, updatedReplicas and
    /// conditions); the object patched.
    pub fn patch_status(&self, path: &str, merge_patch: &Value) -> Value {
        let url = if path.ends_with("/status") { path.to_string() } else { format!("{path}/status") };
        match self.admin("PATCH", &url, Some("application/merge-patch+json"), Some(merge_patch)) {
            (200, body) => body,
            (status, answer) => panic!("PATCH {url}: {status} {answer}"),
        }
    }

    /// DELETE as the admin; an object already gone is fine.
    pub fn delete(&self, path: &str) {
        match self.admin("DELETE", path, None, None) {
            (200 | 202 | 404, _) => {}
            (status, answer) => panic!("DELETE {path}: {status} {answer}"),
        }
    }

    fn admin(&self, method: &str, path: &str, content_type: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        self.request_as(&self.admin_token, method, path, content_type, body)
    }

    /// Any request with any token: the status and the body (JSON, else a
    /// string; null when empty). Panics only when no answer comes.
    pub fn request_as(&self, token: &str, method: &str, path: &str, content_type: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(|b| serde_json::to_vec(b).unwrap());
        let (status, bytes) = send(&self.server, &self.ca_pem, token, method, path, content_type, body, REQUEST_TIMEOUT)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.logs()));
        (status, parse(&bytes))
    }

    fn logs(&self) -> String {
        logs(&self.dir)
    }
}

fn parse(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// One request on a runtime and client of its own (a client's pooled
/// connections belong to the runtime that made them).
#[allow(clippy::too_many_arguments)]
fn send(
    server: &str,
    ca_pem: &[u8],
    token: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let ca = reqwest::Certificate::from_pem(ca_pem).map_err(|e| format!("CA certificate: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| format!("method: {e}"))?;
        let mut req = client.request(method, format!("{server}{path}")).bearer_auth(token).header("Accept", "application/json");
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let r = req.send().await.map_err(|e| format!("{e:?}"))?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await.map_err(|e| format!("reading the answer: {e:?}"))?;
        Ok((status, bytes.to_vec()))
    })
}

/// Starts the cluster from a thread that lives as long as the process: the
/// children's parent-death signal fires when the thread that spawned them
/// ends, and a `static` is never dropped.
fn start() -> Result<TestCluster, String> {
    let etcd = binary("OPM_TEST_ETCD", "etcd")?;
    let apiserver = binary("OPM_TEST_KUBE_APISERVER", "kube-apiserver")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("kube-cluster".into())
        .spawn(move || {
            let mut failures = Vec::new();
            for _ in 0..ATTEMPTS {
                match std::panic::catch_unwind(|| launch(&etcd, &apiserver)) {
                    Ok(Ok((cluster, processes))) => {
                        let _ = tx.send(Ok(cluster));
                        // Never dropped: they die with the process.
                        let _processes = processes;
                        loop {
                            std::thread::park();
                        }
                    }
                    // Its processes were killed on the way out.
                    Ok(Err(e)) => failures.push(e),
                    Err(panic) => {
                        failures
                            .push(panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default());
                        break;
                    }
                }
            }
            let attempts = failures.len();
            let last = failures.pop().unwrap_or_default();
            let _ = tx.send(Err(format!("the test Kubernetes cluster did not start after {attempts} attempt(s); the last: {last}")));
        })
        .expect("a thread for the test cluster");
    rx.recv().unwrap_or_else(|_| Err("the test Kubernetes cluster's thread died".into()))
}

/// etcd and kube-apiserver, killed (and reaped) when dropped.
struct Processes(Vec<(&'static str, Child)>);

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Processes {
    /// The first of them that has exited, by name.
    fn exited(&mut self) -> Option<String> {
        self.0.iter_mut().find_map(|(name, c)| match c.try_wait() {
            Ok(Some(status)) => Some(format!("{name} exited ({status})")),
            _ => None,
        })
    }
}

/// OPM_TEST_ETCD / OPM_TEST_KUBE_APISERVER, else the one in tools/bin.
fn binary(var: &str, name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| crate::support::repo_dir().join("tools/bin").join(name));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{name} is missing at {}: run `make test`, which builds it", path.display()))
    }
}

/// One attempt: Err when a process exits or the server never gets ready
/// (its processes then killed), a panic for what another attempt cannot fix.
fn launch(etcd: &Path, apiserver: &Path) -> Result<(TestCluster, Processes), String> {
    let dir = fresh_dir();
    let started = Instant::now();

    // Certificates, keys and tokens.
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(&dir).stdin(Stdio::null()).output().expect("openssl is installed by `make test`");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    #[rustfmt::skip]
    openssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=opm test kube CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver"]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    #[rustfmt::skip]
    openssl(&["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2",
        "-extfile", "server.ext"]);
    openssl(&["genrsa", "-out", "sa.key", "2048"]);
    openssl(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
    let (admin_token, viewer_token) = (random_token(), random_token());
    std::fs::write(dir.join("tokens.csv"), format!("{admin_token},admin,opm-test-admin,\"system:masters\"\n{viewer_token},viewer,opm-test-viewer\n")).unwrap();
    let ca_file = dir.join("ca.pem");
    let ca_pem = std::fs::read(&ca_file).unwrap();

    let (client_port, peer_port, secure_port) = free_ports();
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut processes = Processes(Vec::new());

    let mut cmd = Command::new(etcd);
    #[rustfmt::skip]
    cmd.arg("--data-dir").arg(dir.join("etcd"))
        .args(["--name", "default"])
        .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .args(["--unsafe-no-fsync", "--heartbeat-interval", "10", "--election-timeout", "100"])
        .args(["--log-level", "warn", "--log-outputs", "stderr"]);
    processes.0.push(("etcd", spawn(&mut cmd, &dir.join("etcd.log"))));
    wait_for(&mut processes, &dir, Duration::from_secs(20), "etcd to answer on /health", || {
        let out = reqwest_plain_get(&format!("{client_url}/health"));
        out.is_some_and(|(status, body)| status == 200 && body.contains("\"health\":\"true\""))
    })?;

    let mut cmd = Command::new(apiserver);
    let path = |name: &str| dir.join(name).into_os_string().into_string().unwrap();
    #[rustfmt::skip]
    cmd.args(["--etcd-servers", &client_url])
        .args(["--secure-port", &secure_port.to_string(), "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1"])
        .args(["--endpoint-reconciler-type=none", "--service-cluster-ip-range", "10.0.0.0/24"])
        .args(["--tls-cert-file", &path("server.pem"), "--tls-private-key-file", &path("server.key")])
        .args(["--token-auth-file", &path("tokens.csv"), "--authorization-mode", "RBAC"])
        .args(["--service-account-issuer", "https://kubernetes.default.svc"])
        .args(["--service-account-key-file", &path("sa.pub"), "--service-account-signing-key-file", &path("sa.key")])
        .args(["--enable-priority-and-fairness=false"])
        .args(["--cert-dir", &path("certs")]);
    processes.0.push(("kube-apiserver", spawn(&mut cmd, &dir.join("kube-apiserver.log"))));

    let cluster = TestCluster {
        server: format!("https://127.0.0.1:{secure_port}"),
        ca_file,
        admin_token,
        viewer_token,
        dir: dir.clone(),
        ca_pem,
        next: AtomicUsize::new(0),
    };
    let ok = |token: &str, path: &str| {
        send(&cluster.server, &cluster.ca_pem, token, "GET", path, None, None, Duration::from_secs(2)).is_ok_and(|(status, _)| status == 200)
    };
    wait_for(&mut processes, &dir, READY_TIMEOUT, "kube-apiserver to answer 200 on /readyz", || ok(&cluster.admin_token, "/readyz"))?;

    cluster.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "opm-test-viewer"},
            "rules": [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
                {"nonResourceURLs": ["*"], "verbs": ["get"]},
            ],
        }),
    );
    cluster.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "opm-test-viewer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "opm-test-viewer"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}],
        }),
    );
    // The authorizer learns of the binding through a watch.
    wait_for(&mut processes, &dir, Duration::from_secs(30), "RBAC to let the viewer list namespaces", || ok(&cluster.viewer_token, "/api/v1/namespaces"))?;
    let _ = std::fs::write(dir.join("startup-time"), format!("{:?}\n", started.elapsed()));
    Ok((cluster, processes))
}

/// Polls `ready` every 100 ms for at most `limit`; Err (with the logs) if
/// it never holds or a process exits.
fn wait_for(processes: &mut Processes, dir: &Path, limit: Duration, what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    for _ in 0..(limit.as_millis() / 100 + 1) {
        if ready() {
            return Ok(());
        }
        if let Some(exited) = processes.exited() {
            return Err(format!("waiting for {what}: {exited}\n{}", logs(dir)));
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("gave up after {limit:?} waiting for {what}\n{}", logs(dir)))
}

/// A plain-HTTP GET (etcd's health check): status and body.
fn reqwest_plain_get(url: &str) -> Option<(u16, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().ok()?;
        let r = client.get(url).send().await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.ok()?))
    })
}

/// Spawns `cmd` with its output in `log`, killed when the spawning thread
/// ends (the dedicated thread lives as long as the process).
fn spawn(cmd: &mut Command, log: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(log).unwrap();
    cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
    // Loopback only: no proxy (gRPC to etcd honours HTTPS_PROXY).
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost").env("no_proxy", "127.0.0.1,localhost");
    // SAFETY: between fork and exec the child only calls prctl(2), which
    // is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) });
    }
    cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Three distinct ports that were free a moment ago on 127.0.0.1 (all
/// bound at once, so they differ).
fn free_ports() -> (u16, u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b, c) = (bind(), bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
    (port(&a), port(&b), port(&c))
}

/// The process's own directory in the temp dir, emptied; those left by
/// test processes that are gone are removed.
fn fresh_dir() -> PathBuf {
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for entry in entries.flatten().take(10_000) {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else { continue };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = tmp.join(format!("{DIR_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 32 hex digits from /dev/urandom.
fn random_token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).expect("/dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last lines of both logs.
fn logs(dir: &Path) -> String {
    let tail = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    format!("--- etcd.log (last lines)\n{}\n--- kube-apiserver.log (last lines)\n{}", tail("etcd.log"), tail("kube-apiserver.log"))
}

#[test]
fn apiserver_answers_and_rbac_restricts() {
    let c = cluster();
    let ns = c.unique("self test");
    assert!(ns.starts_with("t-self-test-"), "{ns}");
    assert_ne!(c.unique("self test"), ns);

    // The admin creates a namespace and a ConfigMap in it.
    c.create("/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    assert_eq!(c.get(&format!("/api/v1/namespaces/{ns}")).expect("the namespace")["metadata"]["name"], ns.as_str());
    let configmaps = format!("/api/v1/namespaces/{ns}/configmaps");
    let cm = c.create(&configmaps, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}, "data": {"a": "1"}}));
    assert_eq!(cm["data"]["a"], "1");
    assert!(c.get(&format!("{configmaps}/missing")).is_none());

    // The viewer reads but does not write.
    let two = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}});
    let (status, body) = c.request_as(&c.viewer_token, "POST", &configmaps, Some("application/json"), Some(&two));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["reason"], "Forbidden", "{body}");
    let (status, body) = c.request_as(&c.viewer_token, "GET", &configmaps, None, None);
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["items"].as_array().unwrap().iter().filter_map(|i| i["metadata"]["name"].as_str()).collect();
    assert_eq!(names, ["one"]);
    let (status, body) = c.request_as(&c.viewer_token, "DELETE", &format!("{configmaps}/one"), None, None);
    assert_eq!(status, 403, "{body}");
    let (status, _) = c.request_as("not-a-token", "GET", &configmaps, None, None);
    assert_eq!(status, 401);

    // Server-side apply by another field manager takes the field.
    let applied = c.apply_as(
        "other-tool",
        &format!("{configmaps}/one"),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}, "data": {"a": "2"}}),
    );
    assert_eq!(applied["data"]["a"], "2");
    let managers: Vec<&str> = applied["metadata"]["managedFields"].as_array().unwrap().iter().filter_map(|m| m["manager"].as_str()).collect();
    assert!(managers.contains(&"other-tool"), "{managers:?}");

    // A Deployment marked available through /status.
    let deployments = format!("/apis/apps/v1/namespaces/{ns}/deployments");
    let labels = json!({"app": "web"});
    let deployment = c.create(
        &deployments,
        &json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}},
            },
        }),
    );
    let generation = deployment["metadata"]["generation"].as_i64().unwrap();
    let web = format!("{deployments}/web");
    assert!(c.get(&web).unwrap()["status"]["availableReplicas"].is_null(), "no controller runs");
    c.patch_status(
        &web,
        &json!({"status": {
            "observedGeneration": generation,
            "replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "test"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "test"},
            ],
        }}),
    );
    let read = c.get(&web).unwrap();
    assert_eq!(read["status"]["availableReplicas"], 1, "{read}");
    assert_eq!(read["status"]["observedGeneration"], generation, "{read}");
    assert_eq!(read["status"]["conditions"][0]["type"], "Available", "{read}");

    // Deleting; a second time is fine.
    c.delete(&web);
    c.delete(&web);
    assert!(c.get(&web).is_none());

    // Kubeconfigs name the server, the CA, the token and the namespace.
    let dir = crate::support::tempdir();
    for (path, token) in [(c.kubeconfig(dir.path(), &ns), &c.admin_token), (c.viewer_kubeconfig(dir.path(), &ns), &c.viewer_token)] {
        let config: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(config["current-context"].as_str(), Some("opm-test"));
        assert_eq!(config["clusters"][0]["cluster"]["server"].as_str(), Some(c.server.as_str()));
        assert_eq!(config["clusters"][0]["cluster"]["certificate-authority"].as_str(), c.ca_file.to_str());
        assert_eq!(config["users"][0]["user"]["token"].as_str(), Some(token.as_str()));
        assert_eq!(config["contexts"][0]["context"]["namespace"].as_str(), Some(ns.as_str()));
    }
}
