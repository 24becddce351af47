//! `opm mod publish` and module downloads against a real registry, with
//! the real `cue` CLI on the other side.

use crate::registry_server::*;
use crate::support::*;
use std::path::Path;

fn sha256_hex(data: &[u8]) -> String {
    opm::registry::sha256(data)
}

fn opm_at(cache: &Path, registry: &str, dir: &Path) -> std::process::Command {
    let mut cmd = opm(cache);
    cmd.env("CUE_REGISTRY", registry).current_dir(dir);
    cmd
}

fn cue_at(cache: &Path, registry: &str, dir: &Path) -> std::process::Command {
    let mut cmd = cue(cache);
    cmd.env("CUE_REGISTRY", registry).current_dir(dir);
    cmd
}

fn consumer(dep: &str, version: &str, import: &str, expr: &str) -> tempfile::TempDir {
    module(&[
        ("cue.mod/module.cue", &format!("module: \"example.com/consumer@v0\"\nlanguage: version: \"v0.17.0\"\ndeps: \"{dep}\": v: \"{version}\"\n")),
        ("c.cue", &format!("package consumer\n\nimport \"{import}\"\n\nout: {expr}\n")),
    ])
}

#[test]
fn a_module_published_by_opm_is_used_by_cue_and_has_cues_digest() {
    let reg = TestRegistry::start();
    let cache = tempdir();
    let m = publishable("example.com/greeting@v0", "message: \"hello\"");

    let opm_reg = format!("{}/opm+insecure", reg.host);
    let out = run(opm_at(cache.path(), &opm_reg, m.path()).args(["mod", "publish", "v0.1.0", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "published");
    assert_eq!(report["ref"], format!("{}/opm/example.com/greeting:v0.1.0", reg.host));

    // The same module through `cue mod publish`, to another repository:
    // the manifests are byte-identical.
    let cue_reg = format!("{}/cue+insecure", reg.host);
    let out = run(cue_at(cache.path(), &cue_reg, m.path()).args(["mod", "publish", "v0.1.0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = reg.skopeo_manifest("opm/example.com/greeting", "v0.1.0", None).expect("opm's manifest");
    let theirs = reg.skopeo_manifest("cue/example.com/greeting", "v0.1.0", None).expect("cue's manifest");
    assert_eq!(ours, theirs);
    assert_eq!(report["digest"], sha256_hex(ours.as_bytes()));
    let manifest: serde_json::Value = serde_json::from_str(&ours).unwrap();
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.cue.module.v1+json");
    assert_eq!(manifest["layers"][0]["mediaType"], "application/zip");
    assert_eq!(manifest["layers"][1]["mediaType"], "application/vnd.cue.modulefile.v1");

    // cue fetches opm's artifact: tidy resolves it, export evaluates it.
    let c = module(&[
        ("cue.mod/module.cue", "module: \"example.com/consumer@v0\"\nlanguage: version: \"v0.17.0\"\n"),
        ("c.cue", "package consumer\n\nimport \"example.com/greeting\"\n\nout: greeting.message\n"),
    ]);
    let fresh = tempdir();
    let out = run(cue_at(fresh.path(), &opm_reg, c.path()).args(["mod", "tidy"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(cue_at(fresh.path(), &opm_reg, c.path()).args(["export", "--out", "json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"out\": \"hello\""), "{}", stdout(&out));
}

#[test]
fn a_module_published_by_cue_is_downloaded_by_opm_into_a_cache_cue_shares() {
    let reg = TestRegistry::start();
    let registry = format!("{}+insecure", reg.host);
    let m = publishable("example.com/lib@v1", "answer: 42");
    let cue_cache = tempdir();
    let out = run(cue_at(cue_cache.path(), &registry, m.path()).args(["mod", "publish", "v1.2.3"]));
    assert!(out.status.success(), "{}", stderr(&out));

    let cache = tempdir();
    let c = consumer("example.com/lib@v1", "v1.2.3", "example.com/lib@v1", "lib.answer & 42");
    // Offline and empty: names what is missing, exit 5.
    let out = run(opm_at(cache.path(), &registry, c.path()).args(["mod", "vet", "--offline"]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("example.com/lib@v1.2.3"), "{}", stderr(&out));

    let out = run(opm_at(cache.path(), &registry, c.path()).args(["mod", "vet", "--concrete"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let entry = cache.path().join("mod/extract/example.com/lib@v1.2.3");
    assert!(entry.join("lib.cue").is_file());
    assert!(cache.path().join("mod/download/example.com/lib/@v/v1.2.3.zip").is_file());
    assert!(std::fs::metadata(entry.join("lib.cue")).unwrap().permissions().readonly());

    // cue uses opm's cache with no registry at all.
    let out = run(cue_at(cache.path(), "none", c.path()).args(["export"]));
    assert!(out.status.success(), "{}", stderr(&out));
    // And opm now works offline.
    let out = run(opm_at(cache.path(), "none", c.path()).args(["mod", "vet", "--offline"]));
    assert!(out.status.success(), "{}", stderr(&out));

    // A corrupted zip is detected and named (exit 7: not what its manifest names).
    let zip = cache.path().join("mod/download/example.com/lib/@v/v1.2.3.zip");
    std::fs::write(&zip, b"garbage").unwrap();
    let out = run(opm_at(cache.path(), "none", c.path()).args(["mod", "vet"]));
    assert_eq!(out.status.code(), Some(7));
    assert!(stderr(&out).contains("not what was downloaded") && stderr(&out).contains("--force example.com/lib@v1.2.3"), "{}", stderr(&out));
    // The fix the message names repairs it.
    let out = run(opm_at(cache.path(), &registry, c.path()).args(["mod", "get", "--force", "example.com/lib@v1.2.3"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(opm_at(cache.path(), "none", c.path()).args(["mod", "vet", "--offline"]));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn republishing_is_a_no_op_for_identical_content_and_refused_otherwise() {
    let reg = TestRegistry::start();
    let registry = format!("{}+insecure", reg.host);
    let cache = tempdir();
    let m = publishable("example.com/app@v0", "a: 1");
    let publish = |args: &[&str]| run(opm_at(cache.path(), &registry, m.path()).args(["mod", "publish"]).args(args));
    assert!(publish(&["v0.1.0"]).status.success());
    let again = publish(&["v0.1.0"]);
    assert!(again.status.success());
    assert!(stderr(&again).contains("nothing to do"), "{}", stderr(&again));

    std::fs::write(m.path().join("app.cue"), "package app\n\na: 2\n").unwrap();
    let changed = publish(&["v0.1.0"]);
    assert_eq!(changed.status.code(), Some(1));
    assert!(stderr(&changed).contains("already exists with different content"), "{}", stderr(&changed));

    // --dry-run and --out push nothing.
    assert!(publish(&["v0.2.0", "--dry-run"]).status.success());
    let layout = tempdir();
    let out_dir = layout.path().join("image");
    assert!(publish(&["v0.3.0", "--out", out_dir.to_str().unwrap()]).status.success());
    assert!(out_dir.join("index.json").is_file() && out_dir.join("oci-layout").is_file());
    assert_eq!(reg.skopeo_manifest("example.com/app", "v0.2.0", None), None);
    assert_eq!(reg.skopeo_manifest("example.com/app", "v0.3.0", None), None);
}

#[test]
fn bad_publish_input_is_refused_before_anything_is_pushed() {
    let reg = TestRegistry::start();
    let registry = format!("{}+insecure", reg.host);
    let cache = tempdir();
    let m = publishable("example.com/app@v1", "a: 1");
    let publish = |dir: &Path, version: &str| run(opm_at(cache.path(), &registry, dir).args(["mod", "publish", version]));

    for (version, why) in [("latest", "canonical SemVer"), ("v1.2", "canonical SemVer"), ("1.0.0", "canonical SemVer"), ("v2.0.0", "major version v1")] {
        let out = publish(m.path(), version);
        assert_eq!(out.status.code(), Some(1), "{version}");
        assert!(stderr(&out).contains(why), "{version}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }

    // A module with vet errors: every error, exit 2, no tag.
    let bad = publishable("example.com/bad@v0", "a: int\na: \"x\"");
    let out = publish(bad.path(), "v0.1.0");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nothing was published") && stderr(&out).contains("bad.cue:"), "{}", stderr(&out));
    assert_eq!(reg.skopeo_manifest("example.com/bad", "v0.1.0", None), None);

    // A module whose module.cue names a dependency it does not use: it
    // vets, but it is not tidy.
    assert!(publish(m.path(), "v1.0.0").status.success());
    let untidy = publishable("example.com/untidy@v0", "a: 1");
    let module_cue = untidy.path().join("cue.mod/module.cue");
    let text = std::fs::read_to_string(&module_cue).unwrap() + "deps: \"example.com/app@v1\": v: \"v1.0.0\"\n";
    std::fs::write(&module_cue, text).unwrap();
    let out = publish(untidy.path(), "v0.1.0");
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("opm mod tidy") && stderr(&out).contains("nothing was published"), "{}", stderr(&out));

    // A symbolic link in the module.
    std::os::unix::fs::symlink("app.cue", m.path().join("link.cue")).unwrap();
    let out = publish(m.path(), "v1.1.0");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("link.cue is a symbolic link"), "{}", stderr(&out));
    std::fs::remove_file(m.path().join("link.cue")).unwrap();

    // An oversized module file (CUE's limit is 16 MiB).
    let big = publishable("example.com/big@v0", "a: 1");
    let mut text = std::fs::read_to_string(big.path().join("cue.mod/module.cue")).unwrap();
    text.push_str(&format!("// {}\n", "x".repeat(17 << 20)));
    std::fs::write(big.path().join("cue.mod/module.cue"), text).unwrap();
    let out = publish(big.path(), "v0.1.0");
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("module.cue"), "{}", stderr(&out));
    assert_eq!(reg.skopeo_manifest("example.com/big", "v0.1.0", None), None);
}

#[test]
fn credentials_come_from_the_docker_config_and_are_never_printed() {
    let reg = TestRegistry::start_with_auth();
    let registry = format!("{}+insecure", reg.host);
    let cache = tempdir();
    let m = publishable("example.com/private@v0", "a: 1");
    let publish = |docker: Option<&Path>, version: &str| {
        let mut cmd = opm_at(cache.path(), &registry, m.path());
        if let Some(d) = docker {
            cmd.env("DOCKER_CONFIG", d);
        }
        run(cmd.args(["mod", "publish", version]))
    };

    let out = publish(None, "v0.1.0");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("docker login {}", reg.host)), "{}", stderr(&out));

    let wrong = docker_config(&reg.host, USER, "not-the-password");
    let out = publish(Some(wrong.path()), "v0.1.0");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("credentials for {} were rejected", reg.host)), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not-the-password"));

    let right = docker_config(&reg.host, USER, PASSWORD);
    let out = publish(Some(right.path()), "v0.1.0");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(PASSWORD) && !stdout(&out).contains(PASSWORD));
    assert!(reg.skopeo_manifest("example.com/private", "v0.1.0", Some(right.path())).is_some());

    // A credential helper that fails: exit 4, the helper named, no output of it.
    let helper_dir = tempdir();
    let helper = helper_dir.path().join("docker-credential-broken");
    std::fs::write(&helper, "#!/bin/sh\ncat >/dev/null\necho 'leaked-secret'; echo 'leaked-secret' >&2; exit 1\n").unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let docker = tempdir();
    std::fs::write(docker.path().join("config.json"), r#"{"credsStore": "broken"}"#).unwrap();
    let path = format!("{}:{}", helper_dir.path().display(), std::env::var("PATH").unwrap());
    let out = run(opm_at(cache.path(), &registry, m.path()).env("DOCKER_CONFIG", docker.path()).env("PATH", path).args(["mod", "publish", "v0.2.0"]));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("docker-credential-broken") && !stderr(&out).contains("leaked-secret"), "{}", stderr(&out));

    // A malformed Docker config.
    std::fs::write(docker.path().join("config.json"), "{not json").unwrap();
    let out = run(opm_at(cache.path(), &registry, m.path()).env("DOCKER_CONFIG", docker.path()).args(["mod", "publish", "v0.2.0"]));
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("malformed Docker config"), "{}", stderr(&out));
}

#[test]
fn network_faults_have_their_own_exit_codes_and_change_nothing() {
    let cache = tempdir();
    // Nothing listens on this port.
    let down = format!("127.0.0.1:{}+insecure", free_port());
    let m = publishable("example.com/app@v0", "a: 1");
    let out = run(opm_at(cache.path(), &down, m.path()).args(["mod", "publish", "v0.1.0"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot reach registry"), "{}", stderr(&out));

    let c = consumer("example.com/lib@v0", "v0.1.0", "example.com/lib", "lib");
    let before = std::fs::read(c.path().join("cue.mod/module.cue")).unwrap();
    let out = run(opm_at(cache.path(), &down, c.path()).args(["mod", "vet"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(std::fs::read(c.path().join("cue.mod/module.cue")).unwrap(), before);
    assert!(!cache.path().join("mod/extract/example.com/lib@v0.1.0").exists());

    // A registry without the module: not found, exit 5.
    let reg = TestRegistry::start();
    let out = run(opm_at(cache.path(), &format!("{}+insecure", reg.host), c.path()).args(["mod", "vet"]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("example.com/lib@v0.1.0 not found"), "{}", stderr(&out));
    assert!(!cache.path().join("mod/extract/example.com/lib@v0.1.0").exists());
}

#[test]
fn config_yaml_routes_prefixes_to_different_registries() {
    let a = TestRegistry::start();
    let b = TestRegistry::start();
    let cache = tempdir();
    let config = cache.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("registries:\n  example.com/team-a:\n    url: {}\n    insecure: true\n  example.com:\n    url: http://{}/mirror\n", a.host, b.host),
    )
    .unwrap();
    let with_config = |dir: &Path| {
        let mut cmd = opm(cache.path());
        cmd.env_remove("CUE_REGISTRY").env("OPM_CONFIG", &config).current_dir(dir);
        cmd
    };
    let team = publishable("example.com/team-a/svc@v0", "a: 1");
    let other = publishable("example.com/other@v0", "b: 2");
    assert!(run(with_config(team.path()).args(["mod", "publish", "v0.1.0"])).status.success());
    assert!(run(with_config(other.path()).args(["mod", "publish", "v0.1.0"])).status.success());
    assert!(a.skopeo_manifest("example.com/team-a/svc", "v0.1.0", None).is_some());
    assert!(b.skopeo_manifest("mirror/example.com/other", "v0.1.0", None).is_some());
    assert!(b.skopeo_manifest("mirror/example.com/team-a/svc", "v0.1.0", None).is_none());

    let out = run(with_config(team.path()).args(["config", "show", "--json"]));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["cue_registry"], format!("example.com/team-a={}+insecure,example.com={}/mirror+insecure", a.host, b.host));

    // CUE_REGISTRY wins over the file.
    let out = run(with_config(team.path()).env("CUE_REGISTRY", "none").args(["config", "show", "--json"]));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["source"]["kind"], "environment");

    // A malformed file names the line.
    std::fs::write(&config, "registries:\n  example.com:\n    url: [1, 2]\n").unwrap();
    let out = run(with_config(team.path()).args(["mod", "publish", "v0.2.0"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 2"), "{}", stderr(&out));
}

#[test]
fn a_git_sourced_module_carries_the_same_vcs_annotations_as_cues() {
    let reg = TestRegistry::start();
    let cache = tempdir();
    let m = publishable("example.com/vcs@v0", "a: 1");
    let module_cue = m.path().join("cue.mod/module.cue");
    let text = std::fs::read_to_string(&module_cue).unwrap().replace("kind: \"self\"", "kind: \"git\"");
    std::fs::write(&module_cue, text).unwrap();
    std::fs::write(m.path().join("untracked.cue"), "package vcs\n\nb: 2\n").unwrap();
    let git = |args: &[&str]| {
        let out = run(std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(m.path()));
        assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    };
    git(&["init", "-q"]);
    git(&["add", "cue.mod", "vcs.cue"]);
    git(&["commit", "-q", "-m", "first"]);

    // Untracked files make the tree unclean: refused, as cue does.
    let publish_opm = |prefix: &str| run(opm_at(cache.path(), &format!("{}/{prefix}+insecure", reg.host), m.path()).args(["mod", "publish", "v0.1.0"]));
    let out = publish_opm("opm");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("uncommitted changes"), "{}", stderr(&out));
    std::fs::remove_file(m.path().join("untracked.cue")).unwrap();

    let out = publish_opm("opm");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(cue_at(cache.path(), &format!("{}/cue+insecure", reg.host), m.path()).args(["mod", "publish", "v0.1.0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = reg.skopeo_manifest("opm/example.com/vcs", "v0.1.0", None).unwrap();
    let theirs = reg.skopeo_manifest("cue/example.com/vcs", "v0.1.0", None).unwrap();
    assert_eq!(ours, theirs);
    let manifest: serde_json::Value = serde_json::from_str(&ours).unwrap();
    assert_eq!(manifest["annotations"]["org.cuelang.vcs-type"], "git");
}

#[test]
fn a_tls_registry_and_a_plain_http_one_at_once() {
    let secure = TestRegistry::start_with_tls();
    let plain = TestRegistry::start();
    let ca = secure.ca_file.clone().unwrap();
    let cache = tempdir();
    let config = cache.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("registries:\n  secure.test:\n    url: https://{}\n  plain.test:\n    url: {}\n    insecure: true\n", secure.host, plain.host),
    )
    .unwrap();
    let with = |dir: &Path, ca: Option<&Path>| {
        let mut cmd = opm(cache.path());
        cmd.env_remove("CUE_REGISTRY").env("OPM_CONFIG", &config).current_dir(dir);
        if let Some(ca) = ca {
            cmd.env("SSL_CERT_FILE", ca);
        }
        cmd
    };
    let lib = publishable("secure.test/lib@v0", "x: 1");
    // Without trusting the CA, the certificate is refused: unreachable.
    let out = run(with(lib.path(), None).args(["mod", "publish", "v0.1.0"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("certificate") && stderr(&out).contains("SSL_CERT_FILE"), "{}", stderr(&out));
    let out = run(with(lib.path(), Some(&ca)).args(["mod", "publish", "v0.1.0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let other = publishable("plain.test/other@v0", "y: 2");
    let out = run(with(other.path(), Some(&ca)).args(["mod", "publish", "v0.1.0"]));
    assert!(out.status.success(), "{}", stderr(&out));

    // A consumer of both, through the same routing.
    let c = module(&[
        (
            "cue.mod/module.cue",
            "module: \"example.com/both@v0\"\nlanguage: version: \"v0.17.0\"\ndeps: {\n\t\"secure.test/lib@v0\": v: \"v0.1.0\"\n\t\"plain.test/other@v0\": v: \"v0.1.0\"\n}\n",
        ),
        ("c.cue", "package both\n\nimport (\n\t\"secure.test/lib\"\n\t\"plain.test/other\"\n)\n\nsum: lib.x + other.y\n"),
    ]);
    let out = run(with(c.path(), Some(&ca)).args(["-v", "mod", "vet", "--concrete"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cache.path().join("mod/extract/secure.test/lib@v0.1.0").is_dir());
    // Behind TLS the registry is spoken to in HTTP/2 (its requests share
    // one connection); plain HTTP stays HTTP/1.1.
    assert!(stderr(&out).contains(&format!("{} answers in HTTP/2.0", secure.host)), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("{} answers in HTTP/1.1", plain.host)), "{}", stderr(&out));
    assert!(cache.path().join("mod/extract/plain.test/other@v0.1.0").is_dir());
}

#[test]
fn a_rate_limited_registry_is_waited_for_as_it_asks() {
    let reg = TestRegistry::start();
    let cache = tempdir();
    let m = publishable("example.com/limited@v0", "x: 1");
    assert!(run(opm_at(cache.path(), &format!("{}+insecure", reg.host), m.path()).args(["mod", "publish", "v0.1.0"])).status.success());

    // Two refusals, then through.
    let proxy = crate::registry_server::FaultProxy::start(
        &reg.host,
        serde_json::json!([{"match": "GET /v2/.*/manifests/", "times": 2, "action": "status", "code": 429, "headers": {"Retry-After": "1"}}]),
    );
    let proxy = &proxy.host;
    let c = consumer("example.com/limited@v0", "v0.1.0", "example.com/limited", "limited.x");
    let fresh = tempdir();
    let started = std::time::Instant::now();
    let out = run(opm_at(fresh.path(), &format!("{proxy}+insecure"), c.path()).args(["mod", "vet", "--concrete"]));
    assert!(out.status.success(), "{}", stderr(&out));
    // The backoff alone would have waited 0.5 s + 1 s; Retry-After asked for 1 s twice.
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "waited only {:?}", started.elapsed());
}
