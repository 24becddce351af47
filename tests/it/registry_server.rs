//! A real OCI registry for tests on 127.0.0.1 at a free port, filesystem
//! storage in a temp dir: Debian's docker-registry (distribution 2.8) or
//! distribution v3 (`make test` installs it with go install), optionally
//! with htpasswd (bcrypt) Basic auth or Docker token auth (tests/
//! token-server.py issuing RS256 JWTs with an x5c header). Stopped when
//! dropped, with its token server.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestRegistry {
    child: Child,
    pub host: String,
    /// With TLS: the CA certificate that signed the server's.
    pub ca_file: Option<std::path::PathBuf>,
    /// With token auth: the token server and the tokens it issued.
    token_server: Option<Child>,
    token_log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Which registry implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// Debian's docker-registry: distribution 2.8.
    Distribution2,
    /// distribution v3, from `go install` (tools/bin/registry).
    Distribution3,
}

/// How it authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    /// htpasswd: USER / PASSWORD.
    Basic,
    /// Bearer tokens from a token server: USER / PASSWORD get pull and
    /// push, anonymous requests pull; tokens live this many seconds, and
    /// with `first_expired` the first one of each scope has run out.
    Token {
        expires_secs: u64,
        first_expired: bool,
    },
}

pub const IMPLEMENTATIONS: [Implementation; 2] = [Implementation::Distribution2, Implementation::Distribution3];

pub const USER: &str = "opm-tester";
pub const PASSWORD: &str = "s3cret-Pa55word";

impl TestRegistry {
    pub fn start() -> TestRegistry {
        Self::launch(Implementation::Distribution2, Auth::None, false)
    }

    /// With Basic auth: USER / PASSWORD.
    pub fn start_with_auth() -> TestRegistry {
        Self::launch(Implementation::Distribution2, Auth::Basic, false)
    }

    /// Over HTTPS, with a certificate from a throwaway CA (`ca_file`).
    pub fn start_with_tls() -> TestRegistry {
        Self::launch(Implementation::Distribution2, Auth::None, true)
    }

    /// Any implementation with any authentication, over plain HTTP.
    pub fn start_as(implementation: Implementation, auth: Auth) -> TestRegistry {
        Self::launch(implementation, auth, false)
    }

    /// The tokens the token server issued, as "token WHO SCOPE..." lines.
    pub fn tokens(&self) -> Vec<String> {
        std::fs::read_to_string(&self.token_log).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn launch(implementation: Implementation, auth: Auth, tls: bool) -> TestRegistry {
        let dir = crate::support::tempdir();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        let mut token_server = None;
        let token_log = dir.path().join("tokens.log");
        if let Auth::Token { expires_secs, first_expired } = auth {
            let openssl = |args: &[&str]| {
                let out = Command::new("openssl").args(args).current_dir(dir.path()).output().expect("openssl");
                assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            };
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "token.key",
                "-out",
                "token.pem",
                "-days",
                "2",
                "-subj",
                "/CN=opm test token issuer",
            ]);
            let (child, port) = python_server(
                Command::new("python3")
                    .arg(crate::support::repo_dir().join("tests/token-server.py"))
                    .arg(dir.path().join("token.pem"))
                    .arg(dir.path().join("token.key"))
                    .args([USER, PASSWORD, &expires_secs.to_string()])
                    .arg(&token_log)
                    .args(first_expired.then_some("first-expired")),
            );
            config += &format!(
                "auth:\n  token:\n    realm: http://127.0.0.1:{port}/token\n    service: opm-test-registry\n    issuer: opm-test-issuer\n    rootcertbundle: {}\n",
                dir.path().join("token.pem").display()
            );
            token_server = Some(child);
        }
        if auth == Auth::Basic {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]).output().expect("htpasswd (apache2-utils) is installed by `make test`");
            assert!(out.status.success());
            std::fs::write(&htpasswd, out.stdout).unwrap();
            config += &format!("auth:\n  htpasswd:\n    realm: opm-test\n    path: {}\n", htpasswd.display());
        }
        let mut ca_file = None;
        if tls {
            let (cert, key, ca) = make_certificates(dir.path());
            config += &format!("  tls:\n    certificate: {}\n    key: {}\n", cert.display(), key.display());
            ca_file = Some(ca);
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let program = match implementation {
            Implementation::Distribution2 => std::path::PathBuf::from("docker-registry"),
            Implementation::Distribution3 => {
                let path = std::env::var_os("OPM_TEST_REGISTRY3")
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|| crate::support::repo_dir().join("tools/bin/registry"));
                assert!(path.is_file(), "distribution v3 is missing at {}: run `make test`, which installs it", path.display());
                path
            }
        };
        let child = Command::new(program)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed by `make test`");
        let registry = TestRegistry { child, host, ca_file, token_server, token_log, _dir: dir };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&self.host).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not start on {}", self.host);
    }

    /// Points tag `to` of `repository` at the manifest tag `from` points
    /// to, straight through the registry API (as a registry that moves a
    /// tag would), bypassing opm.
    pub fn retag(&self, repository: &str, from: &str, to: &str) {
        let script = r#"
import sys, urllib.request
host, repo, src, dst = sys.argv[1:]
accept = "application/vnd.oci.image.manifest.v1+json"
with urllib.request.urlopen(urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{src}", headers={"Accept": accept}), timeout=10) as r:
    body = r.read()
req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{dst}", data=body, method="PUT", headers={"Content-Type": accept})
with urllib.request.urlopen(req, timeout=10) as r:
    assert r.status == 201, r.status
"#;
        let out = Command::new("python3").arg("-c").arg(script).args([&self.host, repository, from, to]).output().expect("python3 is installed by `make test`");
        assert!(out.status.success(), "retag: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The raw manifest of host/repo:tag, read by an independent client.
    pub fn skopeo_manifest(&self, repository: &str, tag: &str, docker_config: Option<&Path>) -> Option<String> {
        let mut cmd = Command::new("skopeo");
        cmd.args(["inspect", "--raw", "--tls-verify=false"]);
        if docker_config.is_some() {
            cmd.arg(format!("--creds={USER}:{PASSWORD}"));
        }
        let out = cmd.arg(format!("docker://{}/{repository}:{tag}", self.host)).output().expect("skopeo is installed by `make test`");
        out.status.success().then(|| String::from_utf8(out.stdout).unwrap())
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = &mut self.token_server {
            let _ = t.kill();
            let _ = t.wait();
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, with openssl.
fn make_certificates(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=opm test CA"]);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("server.pem"), dir.join("server.key"), dir.join("ca.pem"))
}

/// Starts one of the tests' Python servers, which bind a free port of
/// 127.0.0.1 and print it as their first line.
fn python_server(cmd: &mut Command) -> (Child, u16) {
    use std::io::BufRead;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("python3 is installed by `make test`");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("{cmd:?} did not start: {line:?}"));
    (child, port)
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Docker config dir whose config.json holds `auth` for `host`.
pub fn docker_config(host: &str, user: &str, password: &str) -> tempfile::TempDir {
    use std::io::Write;
    let dir = crate::support::tempdir();
    let token = base64(&format!("{user}:{password}"));
    let mut f = std::fs::File::create(dir.path().join("config.json")).unwrap();
    write!(f, r#"{{"auths": {{"{host}": {{"auth": "{token}"}}}}}}"#).unwrap();
    dir
}

fn base64(s: &str) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// tests/fault-proxy.py in front of a registry: each request logged, the
/// first rule that matches it deciding its fault (see the script). Stopped
/// when dropped.
pub struct FaultProxy {
    child: Child,
    pub host: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl FaultProxy {
    pub fn start(upstream: &str, rules: serde_json::Value) -> FaultProxy {
        let dir = tempfile::tempdir().unwrap();
        let (rules_file, log) = (dir.path().join("rules.json"), dir.path().join("requests.log"));
        std::fs::write(&rules_file, rules.to_string()).unwrap();
        let (child, port) =
            python_server(Command::new("python3").arg(crate::support::repo_dir().join("tests/fault-proxy.py")).arg(upstream).arg(&rules_file).arg(&log));
        FaultProxy { child, host: format!("127.0.0.1:{port}"), log, _dir: dir }
    }

    /// The requests it saw, as "METHOD PATH".
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().map(str::to_string).collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
