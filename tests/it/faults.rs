//! Fault injection (issue 17): tests/fault-proxy.py between opm and a real
//! registry, artifacts crafted through the registry API, hostile local
//! files. Every case ends within its bound, with its exit code and a
//! message naming the fault; module.cue and the cache are byte-identical
//! afterwards; and the next run without the fault succeeds.

use crate::deps_diff::World;
use crate::registry_server::{docker_config, FaultProxy, TestRegistry, PASSWORD, USER};
use crate::support::*;
use serde_json::json;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

const APP_MODULE: &str = "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\n";
const APP: &str = "package app\n\nimport \"example.com/lib@v0\"\n\nx: lib.name\n";

/// A field of `n` KiB that does not compress away.
fn noise(n: usize) -> String {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut s = String::from("noise: \"");
    for _ in 0..n * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push(char::from(b'a' + (x % 26) as u8));
    }
    s + "\"\n"
}

/// Every file under `dir` with its bytes (opm's usage record aside: it
/// says which projects use the cache, and is written before any fetch).
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel.starts_with("opm-state") || rel.starts_with("no-") {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push((rel, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A registry with example.com/lib@v0.1.0, a fault proxy in front of it,
/// and a consumer that imports the library.
type Files = Vec<(String, Vec<u8>)>;

struct Case {
    w: World,
    proxy: FaultProxy,
    app: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Case {
    fn new(rules: serde_json::Value) -> Case {
        let w = World::new();
        w.publish_files("example.com/lib@v0", "v0.1.0", &[("lib.cue", &format!("package lib\n\nname: \"lib\"\n{}", noise(96)))]);
        let proxy = FaultProxy::start(&w.registry_server().host, rules);
        Case { w, proxy, app: module(&[("cue.mod/module.cue", APP_MODULE), ("app.cue", APP)]), cache: tempdir() }
    }

    /// opm through the proxy.
    fn opm(&self, args: &[&str]) -> (Output, Duration) {
        let started = Instant::now();
        let out = run(opm(self.cache.path()).env("CUE_REGISTRY", format!("{}+insecure", self.proxy.host)).current_dir(self.app.path()).args(args));
        (out, started.elapsed())
    }

    /// The module's files and the cache's, with their bytes.
    fn state(&self) -> (Files, Files) {
        (files_under(self.app.path()), files_under(self.cache.path()))
    }

    /// The same command straight to the registry succeeds, and the module
    /// then vets offline.
    fn recovers(&self, args: &[&str]) {
        let out = run(opm(self.cache.path()).env("CUE_REGISTRY", &self.w.registry).current_dir(self.app.path()).args(args));
        assert!(out.status.success(), "without the fault: {}", stderr(&out));
        let out = run(opm(self.cache.path()).current_dir(self.app.path()).args(["mod", "vet", "--offline"]));
        assert!(out.status.success(), "vet after recovery: {}", stderr(&out));
    }
}

/// The outcome of a faulty run: its exit code, its bound, the words of
/// its one-line message.
fn expect(out: &(Output, Duration), code: i32, within: u64, says: &[&str]) {
    let (out, took) = out;
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(*took < Duration::from_secs(within), "took {took:?}, bound {within} s: {err}");
    for s in says {
        assert!(err.contains(s), "{s:?} not in: {err}");
    }
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE") && !err.contains("goroutine"), "{err}");
}

const GET: &[&str] = &["mod", "get", "example.com/lib@v0.1.0"];

#[test]
fn a_dripping_or_stalling_registry_ends_at_the_time_budget() {
    let c = Case::new(json!([{"match": "GET /v2/example.com/lib/manifests/v0.1.0", "action": "drip", "delay": 3}]));
    let before = c.state();
    let out = c.opm(&["--timeout", "4s", "mod", "get", "example.com/lib@v0.1.0"]);
    expect(&out, 3, 12, &["time budget (4 s)", "--timeout"]);
    assert_eq!(c.state(), before, "nothing written");
    c.recovers(GET);

    let c = Case::new(json!([{"match": ".", "action": "stall", "delay": 75}]));
    let before = c.state();
    let out = c.opm(&["mod", "get", "example.com/lib@v0.1.0", "--timeout", "3s"]);
    expect(&out, 3, 12, &["time budget (3 s)"]);
    assert_eq!(c.state(), before);
    // A request that stalls past its own deadline (OPM_REQUEST_TIMEOUT,
    // here 1 s) is tried once more, then named: a stall costs a whole
    // deadline per try (a drip-fed manifest at the default 60 s fails
    // within the default 2-minute budget).
    let started = Instant::now();
    let out =
        run(opm(c.cache.path()).env("CUE_REGISTRY", format!("{}+insecure", c.proxy.host)).env("OPM_REQUEST_TIMEOUT", "1s").current_dir(c.app.path()).args(GET));
    expect(&(out, started.elapsed()), 3, 15, &["did not complete within 1 s", "OPM_REQUEST_TIMEOUT", "after 2 tries"]);
    assert_eq!(c.state(), before);
    // OPM_TIMEOUT says the same.
    let started = Instant::now();
    let out = run(opm(c.cache.path()).env("CUE_REGISTRY", format!("{}+insecure", c.proxy.host)).env("OPM_TIMEOUT", "2s").current_dir(c.app.path()).args(GET));
    expect(&(out, started.elapsed()), 3, 10, &["time budget (2 s)"]);
    c.recovers(GET);
}

#[test]
fn an_endless_tag_list_is_cut_off() {
    let c = Case::new(json!([{"match": "GET /v2/example.com/lib/tags/list", "action": "pages"}]));
    let before = c.state();
    // tidy asks for the newest release of the import: the tag list.
    let out = c.opm(&["mod", "tidy"]);
    expect(&out, 1, 60, &["example.com/lib", "more than 100 pages"]);
    let pages = c.proxy.requests().iter().filter(|r| r.contains("/tags/list")).count();
    assert!(pages <= 101, "{pages} pages read");
    assert_eq!(c.state(), before);
    c.recovers(&["mod", "tidy"]);
}

/// A credential helper script at `dir/docker-credential-NAME`, and a
/// docker config whose credsStore names it.
fn credential_helper(name: &str, script: &str) -> (tempfile::TempDir, tempfile::TempDir, String) {
    let helpers = tempdir();
    let helper = helpers.path().join(format!("docker-credential-{name}"));
    std::fs::write(&helper, script).unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let docker = tempdir();
    std::fs::write(docker.path().join("config.json"), format!(r#"{{"credsStore": "{name}"}}"#)).unwrap();
    let path = format!("{}:{}", helpers.path().display(), std::env::var("PATH").unwrap());
    (helpers, docker, path)
}

/// Whether the process `pid` (read from `pidfile`) is still `sleep N`:
/// its own entry, not a scan of the machine (a pid may be reused, a
/// command line is checked too).
fn still_sleeping(pidfile: &Path) -> bool {
    let pid = std::fs::read_to_string(pidfile).expect("the helper wrote its pid");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap_or_default();
    cmdline.starts_with(b"sleep\0")
}

#[test]
fn a_credential_helper_that_never_answers_is_stopped() {
    let c = Case::new(json!([]));
    let pids = tempdir();
    let pidfile = pids.path().join("helper.pid");
    // exec: the helper is the process opm stops.
    let (_helpers, docker, path) = credential_helper("hang", &format!("#!/bin/sh\necho $$ > {}\nexec sleep 600\n", pidfile.display()));
    let before = c.state();
    let started = Instant::now();
    let out = run(opm(c.cache.path())
        .env("CUE_REGISTRY", &c.w.registry)
        .env("DOCKER_CONFIG", docker.path())
        .env("PATH", &path)
        .current_dir(c.app.path())
        .args(["--timeout", "3s", "mod", "get", "example.com/lib@v0.1.0"]));
    expect(&(out, started.elapsed()), 4, 10, &["docker-credential-hang", "no answer within 3 s", "stopped"]);
    assert_eq!(c.state(), before);
    assert!(!still_sleeping(&pidfile), "the helper was left running");
    c.recovers(GET);
}

#[test]
fn a_credential_helper_that_leaves_a_child_holding_its_output_is_read_and_the_child_stopped() {
    let c = Case::new(json!([]));
    let pids = tempdir();
    let pidfile = pids.path().join("child.pid");
    // The answer comes at once; a background child keeps the pipe open.
    let script = format!("#!/bin/sh\nsleep 1000 &\necho $! > {}\nprintf '{{\"Username\":\"u\",\"Secret\":\"p\"}}'\n", pidfile.display());
    let (_helpers, docker, path) = credential_helper("lingers", &script);
    for args in [&["--timeout", "5s", "mod", "get", "example.com/lib@v0.1.0"][..], &["--timeout", "5s", "registry", "check", "example.com/lib"]] {
        let started = Instant::now();
        let out = run(opm(c.cache.path())
            .env("CUE_REGISTRY", &c.w.registry)
            .env("DOCKER_CONFIG", docker.path())
            .env("PATH", &path)
            .current_dir(c.app.path())
            .args(args));
        assert!(out.status.success(), "{args:?}: {}{}", stdout(&out), stderr(&out));
        assert!(started.elapsed() < Duration::from_secs(4), "{args:?} waited for the child: {:?}", started.elapsed());
        assert!(!still_sleeping(&pidfile), "{args:?}: the helper's child was left running");
    }
}

#[test]
fn broken_and_truncated_blobs_are_fetched_again() {
    for action in ["truncate", "reset"] {
        let c = Case::new(json!([{"match": "GET /v2/example.com/lib/blobs/", "action": action, "times": 1}]));
        let (out, _) = c.opm(GET);
        assert!(out.status.success(), "{action} once is retried: {}", stderr(&out));
        let blob_gets = c.proxy.requests().iter().filter(|r| r.contains("/blobs/")).count();
        assert!(blob_gets >= 3, "{action}: the blob was fetched again ({blob_gets} blob requests)");
    }
    let c = Case::new(json!([{"match": "GET /v2/example.com/lib/blobs/", "action": "truncate"}]));
    let before = c.state();
    let out = c.opm(GET);
    // The failure names the module version it was fetching.
    expect(&out, 3, 30, &["example.com/lib@v0.1.0: GET blobs/", "the connection broke", "after 4 tries"]);
    assert_eq!(c.state(), before);
    c.recovers(GET);
}

#[test]
fn transient_answers_keep_the_credentials() {
    let reg = TestRegistry::start_with_auth();
    let direct = docker_config(&reg.host, USER, PASSWORD);
    let cache = tempdir();
    let lib = publishable("example.com/lib@v0", "name: \"lib\"");
    let out = run(opm(cache.path())
        .env("CUE_REGISTRY", format!("{}+insecure", reg.host))
        .env("DOCKER_CONFIG", direct.path())
        .current_dir(lib.path())
        .args(["mod", "publish", "v0.1.0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    // Two transient answers to the first requests of a Basic-auth
    // registry (the probe, for `registry check`): retried, the
    // credentials kept, never "rejected".
    let proxy = FaultProxy::start(&reg.host, json!([{"match": "^GET /v2/", "action": "status", "code": 503, "times": 2}]));
    let docker = docker_config(&proxy.host, USER, PASSWORD);
    let app = module(&[("cue.mod/module.cue", APP_MODULE), ("app.cue", APP)]);
    let out =
        run(opm(cache.path()).env("CUE_REGISTRY", format!("{}+insecure", proxy.host)).env("DOCKER_CONFIG", docker.path()).current_dir(app.path()).args(GET));
    assert!(out.status.success(), "retried, the credentials kept: {}", stderr(&out));
    let proxy = FaultProxy::start(&reg.host, json!([{"match": "^GET /v2/$", "action": "status", "code": 503, "times": 2}]));
    let docker = docker_config(&proxy.host, USER, PASSWORD);
    let out = run(opm(cache.path()).env("CUE_REGISTRY", format!("{}+insecure", proxy.host)).env("DOCKER_CONFIG", docker.path()).args([
        "registry",
        "check",
        "example.com/lib",
    ]));
    assert!(out.status.success(), "the probe is retried: {}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("asks for Basic authentication"), "{}", stdout(&out));
    assert!(proxy.requests().iter().filter(|r| *r == "GET /v2/").count() >= 3);
}

#[test]
fn rate_limiting_missing_blobs_and_huge_answers_are_named() {
    // Rate limiting beyond what opm waits for: at once, saying when.
    let c = Case::new(json!([{"match": "/manifests/", "action": "status", "code": 429, "headers": {"Retry-After": "3600"}}]));
    let before = c.state();
    let out = c.opm(GET);
    expect(&out, 3, 5, &["rate limiting", "wait 3600 s", "try again after"]);
    assert!(!stderr(&out.0).contains("credentials"), "{}", stderr(&out.0));
    assert_eq!(c.state(), before);
    c.recovers(GET);

    // A blob the manifest names but the registry lost.
    let c = Case::new(
        json!([{"match": "GET /v2/example.com/lib/blobs/", "action": "status", "code": 404, "body": "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"blob unknown to registry\"}]}"}]),
    );
    let before = c.state();
    let out = c.opm(GET);
    expect(&out, 5, 10, &["blob sha256:", "is missing from", "although a manifest names it"]);
    assert_eq!(c.state(), before);
    c.recovers(GET);

    // A 50 MiB manifest: refused before it is read.
    let c = Case::new(json!([{"match": "GET /v2/example.com/lib/manifests/", "action": "huge", "size": 50 << 20}]));
    let before = c.state();
    let out = c.opm(GET);
    expect(&out, 1, 10, &["larger than 4 MiB"]);
    assert_eq!(c.state(), before);
    c.recovers(GET);
}

#[test]
fn publish_faults_are_named_without_the_registrys_urls() {
    let c = Case::new(json!([
        {"match": "GET /v2/example.com/lib/manifests/v0.1.0", "action": "replace", "body": "{broken"},
        {"match": "PUT /v2/example.com/other/blobs/uploads/", "action": "status", "code": 400, "body": "{\"errors\":[{\"code\":\"BLOB_UPLOAD_INVALID\"}]}"}
    ]));
    let publish = |module: &str, body: &str| {
        let m = publishable(module, body);
        let started = Instant::now();
        let out = run(opm(c.cache.path()).env("CUE_REGISTRY", format!("{}+insecure", c.proxy.host)).current_dir(m.path()).args(["mod", "publish", "v0.1.0"]));
        (out, started.elapsed())
    };
    let out = publish("example.com/lib@v0", "name: \"other content\"");
    expect(&out, 1, 10, &["exists but is not a readable CUE module", "publish a new version"]);
    let out = publish("example.com/other@v0", "name: \"other\"");
    expect(&out, 1, 10, &["HTTP 400"]);
    let err = stderr(&out.0);
    assert!(!err.contains("_state") && !err.contains("?digest") && !err.contains("uploads/"), "no upload URL: {err}");
    assert_eq!(c.w.registry_server().skopeo_manifest("example.com/other", "v0.1.0", None), None, "no tag left behind");
}

/// Pushes `repo:to`, a copy of `repo:from` whose module-file layer is
/// `module_file`, straight through the registry API.
fn push_lying_version(reg: &TestRegistry, repo: &str, from: &str, to: &str, module_file: &str) {
    let script = r#"
import hashlib, json, sys, urllib.request
host, repo, src, dst, modfile = sys.argv[1:]
accept = "application/vnd.oci.image.manifest.v1+json"
def call(method, url, data=None, headers={}):
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, dict(r.headers), r.read()
_, _, body = call("GET", f"http://{host}/v2/{repo}/manifests/{src}", headers={"Accept": accept})
m = json.loads(body)
data = modfile.encode()
digest = "sha256:" + hashlib.sha256(data).hexdigest()
_, h, _ = call("POST", f"http://{host}/v2/{repo}/blobs/uploads/")
loc = h["Location"]
loc = loc if loc.startswith("http") else f"http://{host}{loc}"
call("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + digest, data=data, headers={"Content-Type": "application/octet-stream"})
m["layers"][1]["digest"], m["layers"][1]["size"] = digest, len(data)
status, _, _ = call("PUT", f"http://{host}/v2/{repo}/manifests/{dst}", data=json.dumps(m).encode(), headers={"Content-Type": accept})
assert status == 201, status
"#;
    let out = std::process::Command::new("python3").arg("-c").arg(script).args([&reg.host, repo, from, to, module_file]).output().unwrap();
    assert!(out.status.success(), "push: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn artifacts_that_lie_are_refused() {
    let c = Case::new(json!([]));
    let reg = c.w.registry_server();
    let honest = "module: \"example.com/lib@v0\"\nlanguage: {\n\tversion: \"v0.17.0\"\n}\nsource: {\n\tkind: \"self\"\n}\n";
    push_lying_version(reg, "example.com/lib", "v0.1.0", "v0.2.0", &honest.replace("example.com/lib@v0", "example.com/other@v0"));
    push_lying_version(reg, "example.com/lib", "v0.1.0", "v0.3.0", &format!("{honest}// not the zip's\n"));
    for (version, says) in
        [("v0.2.0", "its module file declares example.com/other@v0"), ("v0.3.0", "its module file differs from the cue.mod/module.cue in its zip")]
    {
        let before = c.state();
        let out = c.opm(&["mod", "get", &format!("example.com/lib@{version}")]);
        expect(&out, 1, 10, &[&format!("example.com/lib@{version}"), "is not the module it claims to be", says, "nothing was written"]);
        let (app, cache) = c.state();
        assert_eq!(app, before.0, "module.cue unchanged");
        assert!(!cache.iter().any(|(p, _)| p.contains(&format!("{version}.zip")) || p.contains(&format!("lib@{version}/"))), "{version} not installed");
    }
    c.recovers(GET);
}

#[test]
fn hostile_local_files_get_a_clear_limit() {
    let cache = tempdir();
    // A module file of 1.8 MiB of dependencies: CUE would need seconds to minutes.
    let deps: String = (0..50_000).map(|i| format!("\t\"example.com/m{i}@v0\": v: \"v0.0.1\"\n")).collect();
    let m = module(&[("cue.mod/module.cue", &format!("{APP_MODULE}deps: {{\n{deps}}}\n")), ("a.cue", "package app\n")]);
    let before = files_under(m.path());
    let started = Instant::now();
    let out = run(opm(cache.path()).current_dir(m.path()).args(["mod", "vet", "--offline"]));
    expect(&(out, started.elapsed()), 1, 5, &["module.cue is 1.8 MiB", "at most 1 MiB"]);
    assert_eq!(files_under(m.path()), before);

    // A module.cue with several errors: all of them, on one line.
    let m2 = module(&[("cue.mod/module.cue", &format!("{APP_MODULE}deps: \"example.com/x@v0\": v: 1\n")), ("a.cue", "package app\n")]);
    let started = Instant::now();
    let out = run(opm(cache.path()).current_dir(m2.path()).args(["mod", "tidy", "--offline", "-q"]));
    assert!(!stderr(&out).contains("more errors"), "every error shown: {}", stderr(&out));
    expect(&(out, started.elapsed()), 2, 5, &["cannot parse module file", "conflicting values 1 and =~", "conflicting values 1 and null"]);

    // A config nested 100,000 levels deep.
    let config = cache.path().join("deep.yaml");
    write(&config, &format!("registries: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)));
    let started = Instant::now();
    let out = run(opm(cache.path()).env_remove("CUE_REGISTRY").env("OPM_CONFIG", &config).args(["config", "show"]));
    expect(&(out, started.elapsed()), 1, 5, &["nests deeper than 32 levels"]);

    // Credentials in config.yaml are refused, and never echoed.
    write(&config, "registries:\n  example.com: http://someone:PW-s3cret@127.0.0.1:5000\n");
    let out = run(opm(cache.path()).env_remove("CUE_REGISTRY").env("OPM_CONFIG", &config).args(["config", "show"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("carries a user name and password") && stderr(&out).contains("Docker config"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("PW-s3cret") && !stdout(&out).contains("PW-s3cret"));
    // In CUE_REGISTRY they are masked, in config show and in errors.
    for args in [&["config", "show"][..], &["config", "show", "--json"], &["mod", "get", "example.com/lib@v0.1.0"]] {
        let out = run(opm(cache.path()).env("CUE_REGISTRY", "example.com=someone:PW-s3cret@127.0.0.1:5000").current_dir(m.path()).args(args));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains("PW-s3cret") && !all.contains("someone"), "{args:?}: {all}");
    }
}

/// SIGKILL at many moments of a cold get of a 12-module graph: module.cue
/// is old or new, every extracted module has its module file and zip, the
/// next run completes, and no temporary file is left once it has.
#[test]
fn a_killed_get_leaves_the_cache_in_order() {
    let w = World::new();
    let mut imports = Vec::new();
    for i in 0..12 {
        let module = format!("example.com/m{i}@v0");
        w.publish_files(&module, "v0.1.0", &[(&format!("m{i}.cue"), &format!("package m{i}\n\nname: \"m{i}\"\n{}", noise(24)))]);
        imports.push(module);
    }
    let args: Vec<String> = ["mod", "get"].iter().map(|s| s.to_string()).chain(imports.iter().map(|m| m.replace("@v0", "@v0.1.0"))).collect();
    for delay_ms in [3u64, 8, 15, 25, 40, 60, 90, 130, 180, 250] {
        let cache = tempdir();
        let app = module(&[("cue.mod/module.cue", APP_MODULE), ("app.cue", "package app\n")]);
        let mut child =
            opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(&args).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SAFETY: signalling a child process we started.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        let text = std::fs::read_to_string(app.path().join("cue.mod/module.cue")).unwrap();
        assert!(text == APP_MODULE || text.contains("example.com/m11@v0"), "module.cue half-written at {delay_ms} ms: {text}");
        for i in 0..12 {
            if cache.path().join(format!("mod/extract/example.com/m{i}@v0.1.0")).exists() {
                let download = cache.path().join(format!("mod/download/example.com/m{i}/@v"));
                assert!(download.join("v0.1.0.mod").is_file() && download.join("v0.1.0.zip").is_file(), "m{i} extracted without its files at {delay_ms} ms");
            }
        }
        let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(&args));
        assert!(out.status.success(), "after a kill at {delay_ms} ms: {}", stderr(&out));
        let leftovers: Vec<String> = files_under(&cache.path().join("mod/download")).into_iter().map(|(p, _)| p).filter(|p| p.contains(".tmp")).collect();
        assert!(leftovers.is_empty(), "temporary files left after a kill at {delay_ms} ms: {leftovers:?}");
    }
}
