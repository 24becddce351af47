//! Registries at scale (issue 15): the registry matrix (distribution 2.8
//! and v3, each without authentication, with Basic and with Docker token
//! auth, for publish, get and mirror), `opm mod mirror` against `cue mod
//! mirror`, and `opm registry check`'s diagnoses.

use crate::deps_diff::World;
use crate::registry_server::{docker_config, free_port, Auth, Implementation, TestRegistry, IMPLEMENTATIONS, PASSWORD, USER};
use crate::support::*;
use std::path::Path;

const APP_MODULE: &str = "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\n";
const APP: &str = "package app\n\nimport \"example.com/lib@v0\"\n\nx: lib.name\n";

fn token(first_expired: bool) -> Auth {
    Auth::Token { expires_secs: 300, first_expired }
}

fn opm_with(cache: &Path, registry: &str, docker: Option<&Path>, dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = opm(cache);
    cmd.env("CUE_REGISTRY", registry).current_dir(dir).args(args);
    if let Some(d) = docker {
        cmd.env("DOCKER_CONFIG", d);
    }
    run(&mut cmd)
}

/// Every implementation with every authentication scheme: publish with
/// credentials, anonymous publish refused, anonymous get where the scheme
/// allows it, wrong password refused, and a mirror out of it with its
/// manifests unchanged.
#[test]
fn the_registry_matrix() {
    for implementation in IMPLEMENTATIONS {
        for auth in [Auth::None, Auth::Basic, token(false)] {
            let what = format!("{implementation:?} with {auth:?}");
            let reg = TestRegistry::start_as(implementation, auth);
            let registry = format!("{}+insecure", reg.host);
            let creds = docker_config(&reg.host, USER, PASSWORD);
            let wrong = docker_config(&reg.host, USER, "not-the-password");
            let cache = tempdir();
            let lib = publishable("example.com/lib@v0", "name: \"lib\"");
            if auth != Auth::None {
                let out = opm_with(cache.path(), &registry, None, lib.path(), &["mod", "publish", "v0.1.0"]);
                assert_eq!(out.status.code(), Some(4), "{what}: anonymous publish: {}", stderr(&out));
                assert!(stderr(&out).contains("docker login"), "{what}: {}", stderr(&out));
                let out = opm_with(cache.path(), &registry, Some(wrong.path()), lib.path(), &["mod", "publish", "v0.1.0"]);
                assert_eq!(out.status.code(), Some(4), "{what}: wrong password: {}", stderr(&out));
                assert!(stderr(&out).contains("were rejected") && !stderr(&out).contains("not-the-password"), "{what}: {}", stderr(&out));
            }
            let out = opm_with(cache.path(), &registry, Some(creds.path()), lib.path(), &["mod", "publish", "v0.1.0"]);
            assert!(out.status.success(), "{what}: publish: {}", stderr(&out));

            let app = module(&[("cue.mod/module.cue", APP_MODULE), ("app.cue", APP)]);
            let fresh = tempdir();
            let out = opm_with(fresh.path(), &registry, None, app.path(), &["mod", "get", "example.com/lib@v0.1.0"]);
            match auth {
                Auth::Basic => assert_eq!(out.status.code(), Some(4), "{what}: anonymous get: {}", stderr(&out)),
                _ => assert!(out.status.success(), "{what}: anonymous get: {}", stderr(&out)),
            }
            let out = opm_with(fresh.path(), &registry, Some(creds.path()), app.path(), &["mod", "get", "example.com/lib@v0.1.0"]);
            assert!(out.status.success(), "{what}: get: {}", stderr(&out));
            if auth != Auth::None {
                let out = opm_with(tempdir().path(), &registry, Some(wrong.path()), app.path(), &["mod", "get", "example.com/lib@v0.1.0"]);
                assert_eq!(out.status.code(), Some(4), "{what}: get with a wrong password: {}", stderr(&out));
            }

            // Mirrored out of it (credentials for the source) into a plain
            // registry of the same kind: the same manifest.
            let target = TestRegistry::start_as(implementation, Auth::None);
            let out = opm_with(
                cache.path(),
                &registry,
                Some(creds.path()),
                app.path(),
                &["mod", "mirror", "example.com/lib@v0.1.0", "--to", &format!("{}+insecure", target.host)],
            );
            assert!(out.status.success(), "{what}: mirror: {}", stderr(&out));
            let docker = (auth != Auth::None).then(|| creds.path());
            assert_eq!(
                target.skopeo_manifest("example.com/lib", "v0.1.0", None),
                reg.skopeo_manifest("example.com/lib", "v0.1.0", docker),
                "{what}: the mirrored manifest is the same bytes"
            );
            if let Auth::Token { .. } = auth {
                let tokens = reg.tokens();
                assert!(tokens.iter().any(|t| t.starts_with("token opm-tester ") && t.contains(":pull,push")), "{what}: {tokens:?}");
                assert!(tokens.iter().any(|t| t.starts_with("token anonymous ")), "{what}: {tokens:?}");
            }
        }
    }
}

/// Credentials from every file cue reads them from: podman's auth.json
/// under $XDG_RUNTIME_DIR, and $DOCKER_AUTH_CONFIG inline.
#[test]
fn credentials_come_from_podmans_auth_json_and_the_environment() {
    let reg = TestRegistry::start_with_auth();
    let registry = format!("{}+insecure", reg.host);
    let creds = docker_config(&reg.host, USER, PASSWORD);
    let json = std::fs::read_to_string(creds.path().join("config.json")).unwrap();
    let runtime = tempdir();
    std::fs::create_dir_all(runtime.path().join("containers")).unwrap();
    std::fs::write(runtime.path().join("containers/auth.json"), &json).unwrap();
    let cache = tempdir();
    let lib = publishable("example.com/lib@v0", "name: \"lib\"");
    let out = run(opm(cache.path())
        .env("CUE_REGISTRY", &registry)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .current_dir(lib.path())
        .args(["mod", "publish", "v0.1.0", "-v"]));
    assert!(out.status.success(), "auth.json: {}", stderr(&out));
    assert!(stderr(&out).contains("containers/auth.json"), "--verbose names the file: {}", stderr(&out));
    let app = module(&[("cue.mod/module.cue", APP_MODULE), ("app.cue", APP)]);
    let out = run(opm(tempdir().path()).env("CUE_REGISTRY", &registry).env("DOCKER_AUTH_CONFIG", &json).current_dir(app.path()).args([
        "mod",
        "get",
        "example.com/lib@v0.1.0",
    ]));
    assert!(out.status.success(), "DOCKER_AUTH_CONFIG: {}", stderr(&out));
}

/// A token that has run out is renewed: the registry's 401 brings a new
/// token and the request goes through.
#[test]
fn an_expired_token_is_renewed() {
    let reg = TestRegistry::start_as(Implementation::Distribution2, token(true));
    let registry = format!("{}+insecure", reg.host);
    let creds = docker_config(&reg.host, USER, PASSWORD);
    let cache = tempdir();
    let lib = publishable("example.com/lib@v0", "name: \"lib\"");
    let out = opm_with(cache.path(), &registry, Some(creds.path()), lib.path(), &["mod", "publish", "v0.1.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let push_tokens = reg.tokens().iter().filter(|t| t.contains("example.com/lib:pull,push")).count();
    assert!(push_tokens >= 2, "the expired token was renewed: {:?}", reg.tokens());
    assert!(reg.skopeo_manifest("example.com/lib", "v0.1.0", Some(creds.path())).is_some());
}

/// A get of a graph from a token registry asks the token service once for
/// all the dependencies it fetches in parallel, not once per repository.
#[test]
fn one_token_serves_many_repositories() {
    let reg = TestRegistry::start_as(Implementation::Distribution2, token(false));
    let registry = format!("{}+insecure", reg.host);
    let creds = docker_config(&reg.host, USER, PASSWORD);
    let cache = tempdir();
    let publish = |module: &str, files: &[(&str, &str)]| {
        let m = module_dir(module, files);
        let out = run(opm(cache.path()).env("CUE_REGISTRY", &registry).env("DOCKER_CONFIG", creds.path()).current_dir(m.path()).args(["mod", "tidy"]));
        assert!(out.status.success(), "{}", stderr(&out));
        let out =
            run(opm(cache.path()).env("CUE_REGISTRY", &registry).env("DOCKER_CONFIG", creds.path()).current_dir(m.path()).args(["mod", "publish", "v0.1.0"]));
        assert!(out.status.success(), "{}", stderr(&out));
    };
    for leaf in ["b", "c", "d"] {
        publish(&format!("example.com/{leaf}@v0"), &[(&format!("{leaf}.cue"), &format!("package {leaf}\n\nname: \"{leaf}\"\n"))]);
    }
    publish(
        "example.com/a@v0",
        &[(
            "a.cue",
            "package a\n\nimport (\n\tb \"example.com/b@v0\"\n\tc \"example.com/c@v0\"\n\td \"example.com/d@v0\"\n)\n\nname: b.name + c.name + d.name\n",
        )],
    );
    let before = reg.tokens().len();
    let app = module(&[("cue.mod/module.cue", APP_MODULE), ("app.cue", "package app\n\nimport \"example.com/a@v0\"\n\nx: a.name\n")]);
    let out = opm_with(tempdir().path(), &registry, None, app.path(), &["mod", "get", "example.com/a@v0.1.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let tokens: Vec<String> = reg.tokens()[before..].to_vec();
    assert!(
        tokens.iter().any(|t| ["example.com/b", "example.com/c", "example.com/d"].iter().all(|r| t.contains(&format!("repository:{r}:pull")))),
        "one token for b, c and d: {tokens:?}"
    );
    assert!(tokens.len() <= 2, "the top module's token and one more: {tokens:?}");
}

/// A module directory (publishable) with `files` besides its module.cue.
fn module_dir(path: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let module_cue = format!("module: \"{path}\"\nlanguage: version: \"v0.17.0\"\nsource: kind: \"self\"\n");
    let mut all = vec![("cue.mod/module.cue", module_cue.as_str())];
    all.extend_from_slice(files);
    module(&all)
}

/// `opm mod mirror --deps` leaves the target as `cue mod mirror` does, and
/// without --deps as `cue mod mirror --no-deps`; again, it copies nothing.
#[test]
fn mirror_matches_cue_mod_mirror() {
    let w = World::new();
    // Two versions of c with different content (cue skips a tag whose
    // manifest the target already holds under another tag).
    w.publish_files("example.com/c@v0", "v0.1.0", &[("c.cue", "package c\n\nname: \"c one\"\n")]);
    w.publish_files("example.com/c@v0", "v0.2.0", &[("c.cue", "package c\n\nname: \"c two\"\n")]);
    w.publish("example.com/b@v0", "v0.1.0", &[("example.com/c@v0", "v0.1.0")], &["example.com/c@v0"]);
    w.publish("example.com/a@v0", "v0.1.0", &[("example.com/b@v0", "v0.1.0"), ("example.com/c@v0", "v0.2.0")], &["example.com/b@v0", "example.com/c@v0"]);
    let modules = ["example.com/a", "example.com/b", "example.com/c"];
    let tags_and_manifests = |reg: &TestRegistry| -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for m in modules {
            for v in ["v0.1.0", "v0.2.0"] {
                if let Some(manifest) = reg.skopeo_manifest(m, v, None) {
                    out.push((m.to_string(), v.to_string(), manifest));
                }
            }
        }
        out
    };
    let cache = tempdir();
    let dir = tempdir();
    for (opm_args, cue_args) in [(&["--deps"][..], &[][..]), (&[][..], &["--no-deps"][..])] {
        let (ours, theirs) = (TestRegistry::start(), TestRegistry::start());
        let mut args = vec!["mod", "mirror", "example.com/a@v0.1.0", "--to"];
        let to = format!("{}+insecure", ours.host);
        args.push(&to);
        args.extend_from_slice(opm_args);
        let out = opm_with(cache.path(), &w.registry, None, dir.path(), &args);
        assert!(out.status.success(), "opm {args:?}: {}", stderr(&out));
        let out = run(cue(cache.path())
            .env("CUE_REGISTRY", &w.registry)
            .current_dir(dir.path())
            .args(["mod", "mirror", "example.com/a@v0.1.0", "--to", &format!("{}+insecure", theirs.host)])
            .args(cue_args));
        assert!(out.status.success(), "cue mod mirror {cue_args:?}: {}", stderr(&out));
        let (a, b) = (tags_and_manifests(&ours), tags_and_manifests(&theirs));
        assert_eq!(a, b, "the same versions, byte-identical manifests ({opm_args:?})");
        assert_eq!(a.len(), if opm_args.is_empty() { 1 } else { 4 }, "{a:?}");
        // Idempotent: a second run copies nothing.
        let out = opm_with(cache.path(), &w.registry, None, dir.path(), &[&args[..], &["--json"]].concat());
        let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert!(rows.as_array().unwrap().iter().all(|r| r["outcome"] == "present" && r["blobs_copied"] == 0), "{rows}");
    }
}

/// Versions that share blobs (every version's config blob, here also the
/// module file) are copied in parallel, yet each blob is uploaded once:
/// two uploads of one blob at once make distribution rewrite its link
/// while a manifest naming it is checked, and refuse that manifest (400).
#[test]
fn mirror_uploads_each_shared_blob_once() {
    let w = World::new();
    let versions: Vec<String> = (1..=6).map(|i| format!("v0.{i}.0")).collect();
    for (i, v) in versions.iter().enumerate() {
        w.publish_files("example.com/c@v0", v, &[("c.cue", &format!("package c\n\nname: \"c {i}\"\n"))]);
    }
    let target = TestRegistry::start();
    let proxy = crate::registry_server::FaultProxy::start(&target.host, serde_json::json!([]));
    let (cache, dir) = (tempdir(), tempdir());
    let mut args = vec!["mod".to_string(), "mirror".into()];
    args.extend(versions.iter().map(|v| format!("example.com/c@{v}")));
    args.extend(["--to".into(), format!("{}+insecure", proxy.host)]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = opm_with(cache.path(), &w.registry, None, dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let uploads = proxy.requests().iter().filter(|r| r.starts_with("POST ") && r.contains("/blobs/uploads/")).count();
    // Six zips, one config blob, one module file.
    assert_eq!(uploads, 8, "one upload per distinct blob: {:#?}", proxy.requests());
    for v in &versions {
        assert!(target.skopeo_manifest("example.com/c", v, None).is_some(), "{v} was mirrored");
    }
}

fn check(registry: &str, docker: Option<&Path>, env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let cache = tempdir();
    let mut cmd = opm(cache.path());
    cmd.env("CUE_REGISTRY", registry).args(["registry", "check", "example.com/lib", "--json"]).args(args);
    if let Some(d) = docker {
        cmd.env("DOCKER_CONFIG", d);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|_| panic!("{}{}", stdout(&out), stderr(&out)));
    (out.status.code(), json[0].clone(), stderr(&out))
}

fn steps(row: &serde_json::Value) -> Vec<(String, bool)> {
    row["steps"].as_array().unwrap().iter().map(|s| (s["step"].as_str().unwrap().to_string(), s["ok"].as_bool().unwrap())).collect()
}

#[test]
fn registry_check_diagnoses_each_kind_of_registry() {
    let ok = |names: &[&str]| names.iter().map(|n| (n.to_string(), true)).collect::<Vec<_>>();
    // Plain HTTP, no authentication.
    let plain = TestRegistry::start();
    let (code, row, _) = check(&format!("{}+insecure", plain.host), None, &[], &["--push"]);
    assert_eq!(code, Some(0), "{row}");
    assert_eq!((row["transport"].as_str(), steps(&row)), (Some("http"), ok(&["reach", "pull", "push"])), "{row}");
    assert!(row["steps"][0]["detail"].as_str().unwrap().contains("no authentication"), "{row}");

    // TLS with a test CA: trusted through SSL_CERT_FILE, refused without it.
    let tls = TestRegistry::start_with_tls();
    let ca = tls.ca_file.clone().unwrap();
    let secure = format!("{}+secure", tls.host);
    let (code, row, _) = check(&secure, None, &[("SSL_CERT_FILE", ca.to_str().unwrap())], &[]);
    assert_eq!((code, row["transport"].as_str()), (Some(0), Some("https")), "{row}");
    let (code, row, _) = check(&secure, None, &[("SSL_CERT_FILE", "/nonexistent")], &[]);
    assert_eq!(code, Some(3), "{row}");
    assert!(row["problem"].as_str().unwrap().contains("TLS certificate") && row["problem"].as_str().unwrap().contains("not trusted"), "{row}");

    // Basic: the credentials' source named, accepted; wrong ones rejected.
    let basic = TestRegistry::start_with_auth();
    let creds = docker_config(&basic.host, USER, PASSWORD);
    let (code, row, err) = check(&format!("{}+insecure", basic.host), Some(creds.path()), &[], &["--push"]);
    assert_eq!(code, Some(0), "{row}");
    assert!(row["credentials"].as_str().unwrap().contains("auths entry") && row["steps"][0]["detail"].as_str().unwrap().contains("Basic"), "{row}");
    assert!(!format!("{row}{err}").contains(PASSWORD));
    let wrong = docker_config(&basic.host, USER, "nope");
    let (code, row, _) = check(&format!("{}+insecure", basic.host), Some(wrong.path()), &[], &[]);
    assert_eq!(code, Some(4), "{row}");
    assert!(row["problem"].as_str().unwrap().contains("were rejected"), "{row}");

    // Token auth: pull and push tokens with credentials; anonymous may
    // pull but not push; wrong credentials rejected by the token service.
    let tokens = TestRegistry::start_as(Implementation::Distribution2, token(false));
    let registry = format!("{}+insecure", tokens.host);
    let creds = docker_config(&tokens.host, USER, PASSWORD);
    let (code, row, _) = check(&registry, Some(creds.path()), &[], &["--push"]);
    assert_eq!((code, steps(&row)), (Some(0), ok(&["reach", "pull token", "pull", "push token", "push"])), "{row}");
    assert!(row["steps"][0]["detail"].as_str().unwrap().contains("bearer tokens from http://127.0.0.1:"), "{row}");
    let (code, row, _) = check(&registry, None, &[], &["--push"]);
    assert_eq!(code, Some(4), "{row}");
    assert_eq!(steps(&row).last().unwrap(), &("push".to_string(), false), "{row}");
    let wrong = docker_config(&tokens.host, USER, "nope");
    let (code, row, _) = check(&registry, Some(wrong.path()), &[], &[]);
    assert_eq!(code, Some(4), "{row}");
    assert_eq!(steps(&row), vec![("reach".to_string(), true), ("pull token".to_string(), false)], "{row}");

    // Nothing listening.
    let (code, row, _) = check(&format!("127.0.0.1:{}+insecure", free_port()), None, &[], &[]);
    assert_eq!(code, Some(3), "{row}");
    assert!(row["problem"].as_str().unwrap().contains("cannot reach registry"), "{row}");
}
