//! The trust chain (issue 22): signature -> manifest -> zip -> extracted
//! files, checked every time they are used; evidence, not markers; config,
//! policy and sums files that cannot be misread; secrets masked by
//! structure and module paths left alone. Each test plays an attacker who
//! can write the CUE cache or a user with an ambiguous file, and checks
//! that the refusal has its documented exit code and changes nothing.

use crate::deps_diff::World;
use crate::registry_server::TestRegistry;
use crate::signatures::{files_of, key_pair, manifest_digest, policy, PASSWORD};
use crate::support::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file under the cache's `mod/` tree with its bytes (the usage
/// record beside it changes on every command by design).
fn cache_files(cache: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(&p, out);
            } else if !p.to_string_lossy().ends_with(".lock") {
                out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&cache.join("mod"), &mut out);
    out
}

/// What a refusal must leave: the module's files and the cache, byte for byte.
struct Unchanged {
    module: PathBuf,
    cache: PathBuf,
    files: Vec<(String, Vec<u8>)>,
    cached: BTreeMap<PathBuf, Vec<u8>>,
}

impl Unchanged {
    fn now(module: &Path, cache: &Path) -> Unchanged {
        Unchanged { module: module.into(), cache: cache.into(), files: files_of(module), cached: cache_files(cache) }
    }

    fn check(&self, what: &str) {
        assert!(files_of(&self.module) == self.files, "{what}: the module's files changed");
        assert!(cache_files(&self.cache) == self.cached, "{what}: the cache changed");
    }
}

/// Makes an extracted tree (read-only, as cue leaves it) writable again.
fn writable(dir: &Path) {
    let out = Command::new("chmod").args(["-R", "u+w"]).arg(dir).output().unwrap();
    assert!(out.status.success());
}

/// What the attacker does: the zip re-made with one value changed, its
/// digest written where older opm versions kept one, the extracted file
/// edited the same way.
fn tamper_entry(cache: &Path, module: &str, version: &str, file: &str, from: &str, to: &str) {
    let download = cache.join(format!("mod/download/{module}/@v"));
    let zip = download.join(format!("{version}.zip"));
    let script = r#"
import hashlib, sys, zipfile
path, name, old, new = sys.argv[1:]
with zipfile.ZipFile(path) as z:
    items = [(i, z.read(i.filename)) for i in z.infolist()]
with zipfile.ZipFile(path, "w") as z:
    for info, data in items:
        if info.filename.endswith(name):
            data = data.replace(old.encode(), new.encode())
        z.writestr(info, data)
print("sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest())
"#;
    writable(&download);
    let out = Command::new("python3").arg("-c").arg(script).arg(&zip).args([file, from, to]).output().unwrap();
    assert!(out.status.success(), "re-zip: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(download.join(format!("{version}.ziphash")), String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let extract = cache.join(format!("mod/extract/{module}@{version}"));
    writable(&extract);
    let f = extract.join(file);
    let text = std::fs::read_to_string(&f).unwrap().replace(from, to);
    std::fs::write(&f, text).unwrap();
}

/// A consumer of example.com/lib@v0 and the policy requiring `public`.
fn consumer() -> tempfile::TempDir {
    module(&[
        ("cue.mod/module.cue", "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\n"),
        ("app.cue", "package app\n\nimport \"example.com/lib@v0\"\n\nx: lib.name\n"),
    ])
}

#[test]
fn a_tampered_cache_entry_is_refused_by_every_check() {
    let w = World::new();
    let reg = w.registry_server();
    let keys = tempdir();
    let (private, public) = key_pair(keys.path());
    w.publish_files("example.com/lib@v0", "v0.1.0", &[("lib.cue", "package lib\n\nname: \"honest\"\n")]);
    let publisher = tempdir();
    let out = run(opm(publisher.path())
        .env("CUE_REGISTRY", &w.registry)
        .env("COSIGN_PASSWORD", PASSWORD)
        .args(["mod", "sign", "example.com/lib@v0.1.0", "--key"])
        .arg(&private));
    assert!(out.status.success(), "sign: {}", stderr(&out));
    let config = policy(keys.path(), &public);
    let app = consumer();
    let cache = tempdir();
    let opm_in = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).env("OPM_CONFIG", &config).current_dir(app.path()).args(args));
    let out = opm_in(&["mod", "get", "example.com/lib@v0.1.0"]);
    assert!(out.status.success(), "get: {}", stderr(&out));
    let sums = app.path().join("cue.mod/opm.sum");
    let honest_sums = std::fs::read_to_string(&sums).unwrap();
    std::fs::remove_file(&sums).unwrap();
    tamper_entry(cache.path(), "example.com/lib", "v0.1.0", "lib.cue", "honest", "forged");

    let before = Unchanged::now(app.path(), cache.path());
    let out = opm_in(&["mod", "vet"]);
    assert_eq!(out.status.code(), Some(7), "vet: {}", stderr(&out));
    assert!(stderr(&out).contains("example.com/lib@v0.1.0") && stderr(&out).contains("opm mod get --force example.com/lib@v0.1.0"), "{}", stderr(&out));
    before.check("vet");
    let out = opm_in(&["mod", "build", "-o", "json"]);
    assert_ne!(out.status.code(), Some(0), "build: {}", stdout(&out));
    let out = opm_in(&["cache", "verify"]);
    assert_eq!(out.status.code(), Some(1), "cache verify: {}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("example.com/lib") || stderr(&out).contains("example.com/lib"), "{}{}", stdout(&out), stderr(&out));
    let out = opm_in(&["mod", "verify", "--signatures", "--json"]);
    assert_eq!(out.status.code(), Some(8), "verify --signatures: {}{}", stdout(&out), stderr(&out));
    assert!(!stdout(&out).contains("\"signed\""), "{}", stdout(&out));
    let out = opm_in(&["mod", "verify", "--signatures", "--offline", "--json"]);
    assert_eq!(out.status.code(), Some(8), "verify --signatures --offline: {}{}", stdout(&out), stderr(&out));
    before.check("verify --signatures");
    // tidy pins nothing from a chain that does not hold.
    let out = opm_in(&["mod", "tidy"]);
    assert_eq!(out.status.code(), Some(7), "tidy: {}", stderr(&out));
    assert!(!sums.exists(), "no opm.sum written");
    before.check("tidy");

    // The fix the message gives works, and the pin is the honest one.
    let out = opm_in(&["mod", "get", "--force", "example.com/lib@v0.1.0"]);
    assert!(out.status.success(), "get --force: {}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&sums).unwrap(), honest_sums);
    let out = opm_in(&["mod", "vet"]);
    assert!(out.status.success(), "vet after the fix: {}", stderr(&out));
    let out = opm_in(&["mod", "verify", "--signatures", "--offline", "--json"]);
    assert!(out.status.success() && stdout(&out).contains("\"signed\""), "{}{}", stdout(&out), stderr(&out));

    // verify --remote compares both digests: a pin of the real manifest
    // with another zip is a mismatch.
    let digest = manifest_digest(reg, "example.com/lib", "v0.1.0");
    let forged = format!("example.com/lib@v0 v0.1.0 {digest} sha256:{}\n", "0".repeat(64));
    std::fs::write(&sums, &forged).unwrap();
    let out = opm_in(&["mod", "verify", "--remote", "--json"]);
    assert_eq!(out.status.code(), Some(7), "verify --remote: {}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("names the zip"), "{}", stdout(&out));

    // cue still works on the same module and cache.
    std::fs::write(&sums, &honest_sums).unwrap();
    let out = run(cue(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(["export"]));
    assert!(out.status.success() && stdout(&out).contains("honest"), "cue export: {}{}", stdout(&out), stderr(&out));
}

#[test]
fn a_forged_marker_or_borrowed_signature_proves_nothing() {
    let w = World::new();
    let reg = w.registry_server();
    let keys = tempdir();
    let (private, public) = key_pair(keys.path());
    w.publish_files("example.com/lib@v0", "v0.1.0", &[("lib.cue", "package lib\n\nname: \"unsigned\"\n")]);
    w.publish_files("example.com/lib@v0", "v0.2.0", &[("lib.cue", "package lib\n\nname: \"signed\"\n")]);
    let publisher = tempdir();
    let out = run(opm(publisher.path())
        .env("CUE_REGISTRY", &w.registry)
        .env("COSIGN_PASSWORD", PASSWORD)
        .args(["mod", "sign", "example.com/lib@v0.2.0", "--key"])
        .arg(&private));
    assert!(out.status.success(), "sign: {}", stderr(&out));
    let config = policy(keys.path(), &public);

    // cue fetches the unsigned version.
    let app = consumer();
    let cache = tempdir();
    let out = run(cue(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(["mod", "get", "example.com/lib@v0.1.0"]));
    assert!(out.status.success(), "cue mod get: {}", stderr(&out));
    let out = run(cue(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(["vet", "./..."]));
    assert!(out.status.success(), "cue vet: {}", stderr(&out));

    // The markers older opm versions believed, made of public values.
    let download = cache.path().join("mod/download/example.com/lib/@v");
    let unsigned = manifest_digest(reg, "example.com/lib", "v0.1.0");
    let fingerprint = opm::trust::PublicKey::load(&public).unwrap().fingerprint();
    writable(&download);
    std::fs::write(download.join("v0.1.0.manifesthash"), &unsigned).unwrap();
    std::fs::write(download.join("v0.1.0.verified"), format!("{unsigned} {fingerprint}\n")).unwrap();
    let opm_in = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).env("OPM_CONFIG", &config).current_dir(app.path()).args(args));
    for offline in [true, false] {
        let extra: &[&str] = if offline { &["--offline"] } else { &[] };
        let before = Unchanged::now(app.path(), cache.path());
        let out = opm_in(&[&["mod", "vet"], extra].concat());
        assert_eq!(out.status.code(), Some(8), "vet {extra:?}: {}", stderr(&out));
        if offline {
            before.check("vet --offline");
        }
    }
    let out = opm_in(&["mod", "verify", "--signatures", "--offline", "--json"]);
    assert!(!stdout(&out).contains("\"signed\""), "{}", stdout(&out));

    // Borrowed evidence: the signed version's manifest and signatures, as
    // opm keeps them, copied beside the unsigned one.
    let other = tempdir();
    let signed_app = consumer();
    let out = run(opm(other.path()).env("CUE_REGISTRY", &w.registry).env("OPM_CONFIG", &config).current_dir(signed_app.path()).args([
        "mod",
        "get",
        "example.com/lib@v0.2.0",
    ]));
    assert!(out.status.success(), "get v0.2.0: {}", stderr(&out));
    let kept = other.path().join("mod/download/example.com/lib/@v");
    for suffix in ["manifest", "sig"] {
        let from = kept.join(format!("v0.2.0.{suffix}"));
        assert!(from.is_file(), "opm keeps {suffix} beside the entry");
        std::fs::copy(&from, download.join(format!("v0.1.0.{suffix}"))).unwrap();
    }
    let before = Unchanged::now(app.path(), cache.path());
    let out = opm_in(&["mod", "vet", "--offline"]);
    assert!(matches!(out.status.code(), Some(7 | 8)), "vet with borrowed evidence: {}", stderr(&out));
    before.check("vet with borrowed evidence");
    let out = opm_in(&["mod", "verify", "--signatures", "--offline", "--json"]);
    assert!(!stdout(&out).contains("\"signed\""), "{}", stdout(&out));
}

/// A config file holding `text`, and a consumer that depends on nothing
/// (so that a refusal cannot come from a registry).
fn with_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    let config = dir.path().join("config.yaml");
    write(&config, text);
    (dir, config)
}

#[test]
fn policy_prefixes_that_match_nothing_are_refused_and_star_means_every_module() {
    let keys = tempdir();
    let (_, public) = key_pair(keys.path());
    let key = public.display().to_string();
    let cache = tempdir();
    let app = consumer();
    for prefix in ["example.com/*", "Example.com/x", " example.com/x", "example.com//x", "./example.com/x", "example.com/x@v0"] {
        let quoted = serde_json::to_string(prefix).unwrap();
        let (_dir, config) = with_config(&format!("registries:\n  example.com: 127.0.0.1:1\nverify:\n  {quoted}:\n    keys: [{key}]\n"));
        let before = Unchanged::now(app.path(), cache.path());
        for args in [&["config", "show"][..], &["mod", "get", "example.com/lib@v0.1.0"][..]] {
            let out = run(opm(cache.path()).env_remove("CUE_REGISTRY").env("OPM_CONFIG", &config).current_dir(app.path()).args(args));
            assert_eq!(out.status.code(), Some(1), "{prefix:?} {args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains("line 4") && stderr(&out).contains("verify."), "{prefix:?}: {}", stderr(&out));
        }
        before.check(prefix);
    }

    // "*" covers every module, as in `registries:`.
    let w = World::new();
    w.publish_files("other.org/free@v0", "v0.1.0", &[("free.cue", "package free\n\nname: \"x\"\n")]);
    let (_dir, config) = with_config(&format!("verify:\n  \"*\":\n    keys: [{key}]\n"));
    let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).env("OPM_CONFIG", &config).current_dir(app.path()).args([
        "mod",
        "get",
        "other.org/free@v0.1.0",
    ]));
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not signed"), "{}", stderr(&out));
}

#[test]
fn ambiguous_files_are_refused_with_their_line() {
    let w = World::new();
    w.publish_files("example.com/lib@v0", "v0.1.0", &[("lib.cue", "package lib\n\nname: \"one\"\n")]);
    w.publish_files("example.com/lib@v0", "v0.2.0", &[("lib.cue", "package lib\n\nname: \"two\"\n")]);
    let app = consumer();
    let cache = tempdir();
    let opm_in = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(args));
    let out = opm_in(&["mod", "get", "example.com/lib@v0.1.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sums = app.path().join("cue.mod/opm.sum");
    let right = std::fs::read_to_string(&sums).unwrap();
    // A line for another version of the same module, before or after the right one.
    let v2 = tempdir();
    let other_app = consumer();
    let out = run(opm(v2.path()).env("CUE_REGISTRY", &w.registry).current_dir(other_app.path()).args(["mod", "get", "example.com/lib@v0.2.0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let wrong = std::fs::read_to_string(other_app.path().join("cue.mod/opm.sum")).unwrap();
    for (text, line) in [(format!("{wrong}{right}"), 2), (format!("{right}{wrong}"), 2)] {
        std::fs::write(&sums, &text).unwrap();
        let before = Unchanged::now(app.path(), cache.path());
        for args in [&["mod", "vet"][..], &["mod", "verify"][..], &["mod", "tidy"][..]] {
            let out = opm_in(args);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains(&format!("opm.sum line {line}")) && stderr(&out).contains("a second line for example.com/lib@v0"),
                "{}",
                stderr(&out)
            );
        }
        before.check("a duplicated opm.sum line");
    }
    std::fs::write(&sums, &right).unwrap();

    // config.yaml: duplicate keys, and a URL that is not one address.
    for (text, line) in [
        ("registries:\n  example.com: 127.0.0.1:1\n  example.com: 127.0.0.1:2\n".to_string(), 3),
        ("verify:\n  example.com:\n    keys: [a.pub]\n  example.com:\n    keys: [b.pub]\n".to_string(), 4),
        ("registries:\n  example.com:\n    url: \"127.0.0.1:1,opmodel.dev=evil:1\"\n".to_string(), 2),
    ] {
        let (_dir, config) = with_config(&text);
        let before = Unchanged::now(app.path(), cache.path());
        for args in [&["config", "show"][..], &["mod", "get", "example.com/lib@v0.2.0"][..]] {
            let out = run(opm(cache.path()).env_remove("CUE_REGISTRY").env("OPM_CONFIG", &config).current_dir(app.path()).args(args));
            assert_eq!(out.status.code(), Some(1), "{text:?} {args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(&format!("line {line}")), "{text:?}: {}", stderr(&out));
        }
        before.check(&text);
    }
}

/// Passwords that together hold every printable ASCII character, each
/// starting with a marker that must never be printed (so that a leak up to
/// any character is caught, not only a whole password).
fn passwords() -> Vec<String> {
    let alphabet: Vec<char> = (0x20u8..0x7f).map(char::from).collect();
    alphabet.chunks(12).enumerate().map(|(i, chunk)| format!("Zk9q{i}x{}", chunk.iter().collect::<String>())).collect()
}

fn assert_no_secret(what: &str, out: &std::process::Output, pw: &str) {
    for text in [stdout(out), stderr(out)] {
        assert!(!text.contains(&pw[..4]), "{what}: the password (or its start) is printed: {text}");
    }
}

#[test]
fn no_output_holds_a_password_and_module_paths_come_out_unchanged() {
    let reg = TestRegistry::start_with_auth();
    let cache = tempdir();
    let app = consumer();
    for pw in passwords() {
        // In CUE_REGISTRY: refused without repeating it.
        let cue_registry = format!("example.com=someone:{pw}@v1.local:5000");
        for args in [
            &["config", "show"][..],
            &["config", "show", "--json"][..],
            &["registry", "check"][..],
            &["-v", "mod", "get", "example.com/x@v0.1.0"][..],
            &["mod", "get", "example.com/x@v0.1.0", "--json"][..],
        ] {
            let out = run(opm(cache.path()).env("CUE_REGISTRY", &cue_registry).current_dir(app.path()).args(args));
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
            assert_no_secret(&format!("CUE_REGISTRY, {args:?}"), &out, &pw);
        }
        // In config.yaml's URL.
        let url = serde_json::to_string(&format!("http://someone:{pw}@{}", reg.host)).unwrap();
        let (_dir, config) = with_config(&format!("registries:\n  example.com:\n    url: {url}\n"));
        for args in [&["config", "show", "--json"][..], &["registry", "check", "-v"][..], &["-v", "mod", "get", "example.com/x@v0.1.0"][..]] {
            let out = run(opm(cache.path()).env_remove("CUE_REGISTRY").env("OPM_CONFIG", &config).current_dir(app.path()).args(args));
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
            assert_no_secret(&format!("config.yaml, {args:?}"), &out, &pw);
        }
        // In the Docker config, rejected by the registry.
        let docker = tempdir();
        let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("someone:{pw}"));
        write(&docker.path().join("config.json"), &serde_json::json!({ "auths": { reg.host.clone(): { "auth": auth } } }).to_string());
        for args in [
            &["registry", "check", "-v", "example.com/x"][..],
            &["-v", "mod", "get", "example.com/x@v0.1.0"][..],
            &["mod", "get", "example.com/x@v0.1.0", "--json"][..],
        ] {
            let out = run(opm(cache.path())
                .env("CUE_REGISTRY", format!("{}+insecure", reg.host))
                .env("DOCKER_CONFIG", docker.path())
                .current_dir(app.path())
                .args(args));
            assert_eq!(out.status.code(), Some(4), "{args:?}: {}{}", stdout(&out), stderr(&out));
            assert_no_secret(&format!("docker config, {args:?}"), &out, &pw);
        }
    }

    // Module paths and versions are never rewritten.
    let w = World::new();
    w.publish_files("example.com/web@v0", "v0.1.0", &[("web.cue", "package web\n\nname: \"w\"\n")]);
    for query in ["latest", "main", "1", "0.1.0", "V0.3.0"] {
        let arg = format!("example.com/web@{query}");
        for args in [
            vec!["mod", "get", arg.as_str()],
            vec!["mod", "get", arg.as_str(), "--json"],
            vec!["mod", "mirror", arg.as_str(), "--to", "127.0.0.1:1+insecure"],
            vec!["mod", "why", arg.as_str(), "--json"],
        ] {
            let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(&args));
            assert_ne!(out.status.code(), Some(0), "{args:?}");
            let text = format!("{}{}", stdout(&out), stderr(&out));
            assert!(text.contains(&arg) && !text.contains("***"), "{args:?}: {text}");
        }
    }
}

#[test]
fn module_paths_with_dot_or_empty_elements_are_refused_before_any_request() {
    let cache = tempdir();
    let app = consumer();
    for path in ["example.com/../x", "example.com/./x", "example.com//x", "example.com/x/.."] {
        let at = format!("{path}@v0.1.0");
        for args in [
            vec!["mod", "get", at.as_str()],
            vec!["mod", "download", at.as_str()],
            vec!["mod", "mirror", at.as_str(), "--to", "127.0.0.1:2+insecure"],
            vec!["mod", "why", path],
            vec!["registry", "check", path],
            vec!["mod", "sign", at.as_str(), "--key", "k.key"],
        ] {
            // An unreachable registry: a request would exit 3.
            let out = run(opm(cache.path()).env("CUE_REGISTRY", "127.0.0.1:1+insecure").current_dir(app.path()).args(&args));
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains(&format!("invalid module path {path:?}")) && err.trim().lines().count() == 1, "{args:?}: {err}");
        }
    }
}

#[test]
fn a_tree_left_without_its_module_file_is_replaced_not_trusted() {
    let w = World::new();
    w.publish_files("example.com/lib@v0", "v0.1.0", &[("lib.cue", "package lib\n\nname: \"honest\"\n")]);
    let app = consumer();
    let cache = tempdir();
    let opm_in = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(args));
    assert!(opm_in(&["mod", "get", "example.com/lib@v0.1.0"]).status.success());
    // The module file gone (the entry is incomplete) and the tree edited.
    let download = cache.path().join("mod/download/example.com/lib/@v");
    writable(&download);
    std::fs::remove_file(download.join("v0.1.0.mod")).unwrap();
    let extract = cache.path().join("mod/extract/example.com/lib@v0.1.0");
    writable(&extract);
    std::fs::write(extract.join("lib.cue"), "package lib\n\nname: \"forged\"\n").unwrap();
    let out = opm_in(&["mod", "vet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(extract.join("lib.cue")).unwrap(), "package lib\n\nname: \"honest\"\n", "the install replaced the tree");
    assert!(opm_in(&["cache", "verify"]).status.success());
}
