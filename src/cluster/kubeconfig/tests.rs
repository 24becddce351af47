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
    assert_eq!(e.kind, ErrorKind::Unauthorized, "credentials that cannot be read: exit 4");
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
            &format!(
                "current-context: ctx\nclusters:\n- name: c\n  cluster: {{server: 'https://k', {fields}}}\ncontexts:\n- name: ctx\n  context: {{cluster: c}}\n"
            ),
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
    let e =
        World::new(&[]).load_until(&Selection { kubeconfig: Some(file), ..Selection::default() }, Instant::now() + Duration::from_millis(1200)).unwrap_err();
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
