//! Signatures (issue 13): opm signs in cosign's format and the real cosign
//! verifies it; opm verifies what cosign signed; a `verify:` policy
//! refuses unsigned, foreign and tampered versions (exit 8), writing
//! nothing, and leaves modules outside its prefixes alone.

use crate::deps_diff::World;
use crate::registry_server::TestRegistry;
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const PASSWORD: &str = "key-pa55";

/// The real cosign CLI (`make test` installs it and sets OPM_TEST_COSIGN).
fn cosign() -> Command {
    let path = std::env::var_os("OPM_TEST_COSIGN").map(PathBuf::from).unwrap_or_else(|| repo_dir().join("tools/bin/cosign"));
    assert!(path.is_file(), "the cosign CLI is missing at {}: run `make test`, which installs it", path.display());
    let mut cmd = Command::new(path);
    // No sigstore services: nothing here leaves the machine.
    cmd.env("COSIGN_PASSWORD", PASSWORD)
        .env("HOME", repo_dir().join("target/cosign-home"))
        .env("TUF_ROOT", repo_dir().join("target/cosign-home/tuf"))
        .stdin(std::process::Stdio::null());
    cmd
}

/// A key pair written by `cosign generate-key-pair` into `dir`.
pub fn key_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let out = run(cosign().current_dir(dir).arg("generate-key-pair"));
    assert!(out.status.success(), "cosign generate-key-pair: {}", stderr(&out));
    (dir.join("cosign.key"), dir.join("cosign.pub"))
}

fn cosign_verify(host: &str, repo: &str, tag: &str, public: &Path) -> std::process::Output {
    run(cosign().args(["verify", "--insecure-ignore-tlog=true", "--allow-insecure-registry", "--key"]).arg(public).arg(format!("{host}/{repo}:{tag}")))
}

pub fn manifest_digest(reg: &TestRegistry, repo: &str, tag: &str) -> String {
    opm::registry::sha256(reg.skopeo_manifest(repo, tag, None).expect("the version is published").as_bytes())
}

/// Changes one character of the first signature stored for `digest`,
/// straight through the registry API.
fn tamper(reg: &TestRegistry, repo: &str, digest: &str) {
    let script = r#"
import json, sys, urllib.request
host, repo, tag = sys.argv[1:]
accept = "application/vnd.oci.image.manifest.v1+json"
url = f"http://{host}/v2/{repo}/manifests/{tag}"
with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept}), timeout=10) as r:
    m = json.load(r)
a = m["layers"][0]["annotations"]
s = a["dev.cosignproject.cosign/signature"]
i = len(s) // 2
a["dev.cosignproject.cosign/signature"] = s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]
req = urllib.request.Request(url, data=json.dumps(m).encode(), method="PUT", headers={"Content-Type": accept})
with urllib.request.urlopen(req, timeout=10) as r:
    assert r.status == 201, r.status
"#;
    let tag = format!("{}.sig", digest.replace(':', "-"));
    let out = Command::new("python3").arg("-c").arg(script).args([&reg.host, repo, &tag]).output().unwrap();
    assert!(out.status.success(), "tamper: {}", String::from_utf8_lossy(&out.stderr));
}

/// An OPM config whose policy requires `public` for example.com.
pub fn policy(dir: &Path, public: &Path) -> PathBuf {
    let config = dir.join("config.yaml");
    write(&config, &format!("verify:\n  example.com:\n    keys: [{}]\n", public.display()));
    config
}

pub fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    opm::files::module_files(dir).unwrap().into_iter().map(|f| (f.rel.clone(), std::fs::read(&f.abs).unwrap())).collect()
}

#[test]
fn opm_and_cosign_verify_each_others_signatures() {
    let w = World::new();
    let reg = w.registry_server();
    let keys = tempdir();
    let (private, public) = key_pair(keys.path());
    let cache = tempdir();
    let opm_in =
        |dir: &Path, args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).env("COSIGN_PASSWORD", PASSWORD).current_dir(dir).args(args));

    // opm mod publish --sign: cosign verifies it.
    let lib = publishable("example.com/lib@v0", "name: \"one\"");
    let out = opm_in(lib.path(), &["mod", "publish", "v0.1.0", "--sign", private.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let published: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let digest = manifest_digest(reg, "example.com/lib", "v0.1.0");
    assert_eq!(published["signature"], format!("{}/example.com/lib:{}.sig", reg.host, digest.replace(':', "-")));
    let out = cosign_verify(&reg.host, "example.com/lib", "v0.1.0", &public);
    assert!(out.status.success(), "cosign verify: {}", stderr(&out));
    assert!(stdout(&out).contains(&format!("\"docker-manifest-digest\":\"{digest}\"")), "{}", stdout(&out));

    // A version cue published, signed afterwards by opm mod sign: cosign verifies it.
    let lib2 = publishable("example.com/lib@v0", "name: \"two\"");
    let out = run(cue(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(lib2.path()).args(["mod", "publish", "v0.2.0"]));
    assert!(out.status.success(), "cue mod publish: {}", stderr(&out));
    let out = opm_in(lib2.path(), &["mod", "sign", "example.com/lib@v0.2.0", "--key", private.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cosign_verify(&reg.host, "example.com/lib", "v0.2.0", &public).status.success());
    // Signing again with the same key adds nothing, as with cosign.
    let out = opm_in(lib2.path(), &["mod", "sign", "example.com/lib@v0.2.0", "--key", private.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()["added"], false);
    // Without COSIGN_PASSWORD, the password is asked on a terminal, unechoed.
    let lib4 = publishable("example.com/lib@v0", "name: \"four\"");
    let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(lib4.path()).args(["mod", "publish", "v0.4.0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(Command::new("python3")
        .arg("-c")
        .arg(crate::deps::ON_PTY)
        .arg(PASSWORD)
        .arg(env!("CARGO_BIN_EXE_opm"))
        .args(["mod", "sign", "example.com/lib@v0.4.0", "--key"])
        .arg(&private)
        .env("CUE_CACHE_DIR", cache.path())
        .env("CUE_REGISTRY", &w.registry)
        .env("OPM_CONFIG", empty_config(cache.path()))
        .env_remove("COSIGN_PASSWORD"));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("Enter password for private key") && !stdout(&out).contains(PASSWORD), "{}", stdout(&out));
    assert!(cosign_verify(&reg.host, "example.com/lib", "v0.4.0", &public).status.success());

    // A version cue published and cosign signed: opm verifies it under the policy.
    let lib3 = publishable("example.com/lib@v0", "name: \"three\"");
    let out = run(cue(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(lib3.path()).args(["mod", "publish", "v0.3.0"]));
    assert!(out.status.success(), "cue mod publish: {}", stderr(&out));
    let digest3 = manifest_digest(reg, "example.com/lib", "v0.3.0");
    let out = run(cosign()
        .args(["sign", "--tlog-upload=false", "--allow-insecure-registry", "-y", "--key"])
        .arg(&private)
        .arg(format!("{}/example.com/lib@{digest3}", reg.host)));
    assert!(out.status.success(), "cosign sign: {}", stderr(&out));

    let config = policy(keys.path(), &public);
    let app = module(&[
        ("cue.mod/module.cue", "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\n"),
        ("app.cue", "package app\n\nimport \"example.com/lib@v0\"\n\nx: lib.name\n"),
    ]);
    let fresh = tempdir();
    let consumer = |args: &[&str]| run(opm(fresh.path()).env("CUE_REGISTRY", &w.registry).env("OPM_CONFIG", &config).current_dir(app.path()).args(args));
    for v in ["v0.1.0", "v0.2.0", "v0.3.0"] {
        let out = consumer(&["mod", "get", &format!("example.com/lib@{v}")]);
        assert!(out.status.success(), "get {v}: {}", stderr(&out));
    }
    // Remembered by digest: a warm cache asks nothing (the registry is gone).
    let out = run(opm(fresh.path()).env("CUE_REGISTRY", "127.0.0.1:1+insecure").env("OPM_CONFIG", &config).current_dir(app.path()).args(["mod", "vet"]));
    assert!(out.status.success(), "warm vet: {}", stderr(&out));
    let out = consumer(&["mod", "verify", "--signatures", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows[0]["status"], "signed", "{rows}");
    assert_eq!(rows[0]["version"], "v0.3.0", "{rows}");

    // Mirrored with its signatures: cosign verifies the copy.
    let target = TestRegistry::start();
    let out = consumer(&["mod", "mirror", "example.com/lib@v0.1.0", "--to", &format!("{}+insecure", target.host)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("with its signatures"), "{}", stderr(&out));
    let out = cosign_verify(&target.host, "example.com/lib", "v0.1.0", &public);
    assert!(out.status.success(), "cosign verify on the mirror: {}", stderr(&out));
}

#[test]
fn the_policy_refuses_unsigned_foreign_and_tampered_versions() {
    let w = World::new();
    let reg = w.registry_server();
    let keys = tempdir();
    let (private, public) = key_pair(keys.path());
    let others = tempdir();
    let (other_private, _) = key_pair(others.path());
    let publisher = tempdir();
    let sign = |version: &str, key: &Path| {
        let out = run(opm(publisher.path())
            .env("CUE_REGISTRY", &w.registry)
            .env("COSIGN_PASSWORD", PASSWORD)
            .args(["mod", "sign", &format!("example.com/lib@{version}"), "--key"])
            .arg(key));
        assert!(out.status.success(), "sign {version}: {}", stderr(&out));
    };
    w.publish_files("example.com/lib@v0", "v0.1.0", &[("lib.cue", "package lib\n\nname: \"unsigned\"\n")]);
    w.publish_files("example.com/lib@v0", "v0.2.0", &[("lib.cue", "package lib\n\nname: \"foreign\"\n")]);
    sign("v0.2.0", &other_private);
    w.publish_files("example.com/lib@v0", "v0.3.0", &[("lib.cue", "package lib\n\nname: \"tampered\"\n")]);
    sign("v0.3.0", &private);
    tamper(reg, "example.com/lib", &manifest_digest(reg, "example.com/lib", "v0.3.0"));
    w.publish_files("example.com/lib@v0", "v0.4.0", &[("lib.cue", "package lib\n\nname: \"good\"\n")]);
    sign("v0.4.0", &private);
    w.publish_files("other.org/free@v0", "v0.1.0", &[("free.cue", "package free\n\nname: \"outside the policy\"\n")]);

    let config = policy(keys.path(), &public);
    let app = module(&[
        ("cue.mod/module.cue", "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\n"),
        ("app.cue", "package app\n\nimport (\n\t\"example.com/lib@v0\"\n\t\"other.org/free@v0\"\n)\n\nx: lib.name\ny: free.name\n"),
    ]);
    let cache = tempdir();
    let opm_in = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).env("OPM_CONFIG", &config).current_dir(app.path()).args(args));
    // Outside the policy's prefixes: installs unsigned.
    let out = opm_in(&["mod", "get", "other.org/free@v0.1.0", "example.com/lib@v0.4.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = files_of(app.path());
    for (version, says) in [("v0.1.0", "is not signed"), ("v0.2.0", "signed by another key, or tampered"), ("v0.3.0", "signed by another key, or tampered")] {
        let out = opm_in(&["mod", "get", &format!("example.com/lib@{version}")]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(8), "{version}: {err}");
        assert!(err.contains(&format!("example.com/lib@{version}")) && err.contains(says) && err.contains("nothing was written"), "{version}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert_eq!(files_of(app.path()), before, "module.cue unchanged");
        for suffix in ["mod", "zip"] {
            assert!(!cache.path().join(format!("mod/download/example.com/lib/@v/{version}.{suffix}")).exists(), "{version}.{suffix} not cached");
        }
        assert!(!cache.path().join(format!("mod/extract/example.com/lib@{version}")).exists(), "{version} not extracted");
    }
    // A signature copied from another version vouches for other content.
    let good = manifest_digest(reg, "example.com/lib", "v0.4.0");
    let unsigned = manifest_digest(reg, "example.com/lib", "v0.1.0");
    reg.retag("example.com/lib", &format!("{}.sig", good.replace(':', "-")), &format!("{}.sig", unsigned.replace(':', "-")));
    let out = opm_in(&["mod", "get", "example.com/lib@v0.1.0"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(stderr(&out).contains("a signature for other content"), "{}", stderr(&out));

    // Mirroring is held to the policy too: nothing reaches the target.
    let target = TestRegistry::start();
    let out = opm_in(&["mod", "mirror", "example.com/lib@v0.2.0", "--to", &format!("{}+insecure", target.host)]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert_eq!(target.skopeo_manifest("example.com/lib", "v0.2.0", None), None);

    // A version cue fetched into the cache is checked when opm first uses it.
    let theirs = module(&[
        ("cue.mod/module.cue", "module: \"main.test/theirs@v0\"\nlanguage: version: \"v0.17.0\"\n"),
        ("a.cue", "package a\n\nimport \"example.com/lib@v0\"\n\nx: lib.name\n"),
    ]);
    let cue_cache = tempdir();
    let out = run(cue(cue_cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(theirs.path()).args(["mod", "get", "example.com/lib@v0.2.0"]));
    assert!(out.status.success(), "cue mod get: {}", stderr(&out));
    let out = run(cue(cue_cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(theirs.path()).args(["vet", "./..."]));
    assert!(out.status.success(), "cue vet fills the cache: {}", stderr(&out));
    let vet = |dir: &Path, extra: &[&str]| {
        run(opm(cue_cache.path()).env("CUE_REGISTRY", &w.registry).env("OPM_CONFIG", &config).current_dir(dir).args(["mod", "vet"]).args(extra))
    };
    let out = vet(theirs.path(), &[]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    let out = vet(theirs.path(), &["--offline"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(stderr(&out).contains("never checked"), "{}", stderr(&out));
    let out = run(opm(cue_cache.path()).env("CUE_REGISTRY", &w.registry).env("OPM_CONFIG", &config).current_dir(theirs.path()).args([
        "mod",
        "verify",
        "--signatures",
    ]));
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(stdout(&out).contains("refused") || stderr(&out).contains("refused"), "{}{}", stdout(&out), stderr(&out));
    // cue still works on the same module and cache.
    let out = run(cue(cue_cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(theirs.path()).args(["vet", "./..."]));
    assert!(out.status.success(), "cue vet: {}", stderr(&out));
}

#[test]
fn keys_and_passwords_fail_clearly() {
    let keys = tempdir();
    let (private, _) = key_pair(keys.path());
    let cache = tempdir();
    let sign = |env: Option<&str>, key: &Path| {
        let mut cmd = opm(cache.path());
        cmd.env("CUE_REGISTRY", "127.0.0.1:1+insecure").env_remove("COSIGN_PASSWORD").args(["mod", "sign", "example.com/lib@v0.1.0", "--key"]).arg(key);
        if let Some(p) = env {
            cmd.env("COSIGN_PASSWORD", p);
        }
        run(&mut cmd)
    };
    let out = sign(Some("wrong"), &private);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("the password does not open the private key"), "{}", stderr(&out));
    let out = sign(None, &private);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("set COSIGN_PASSWORD"), "{}", stderr(&out));
    let out = sign(Some(PASSWORD), &keys.path().join("cosign.pub"));
    assert!(stderr(&out).contains("is not a cosign private key"), "{}", stderr(&out));

    // A policy naming a missing key fails before anything is fetched.
    let config = keys.path().join("bad.yaml");
    write(&config, "verify:\n  example.com:\n    keys: [missing.pub]\n");
    let app = module(&[("cue.mod/module.cue", "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\n")]);
    let out = run(opm(cache.path()).env("CUE_REGISTRY", "127.0.0.1:1+insecure").env("OPM_CONFIG", &config).current_dir(app.path()).args([
        "mod",
        "get",
        "example.com/lib@v0.1.0",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot read the public key") && stderr(&out).contains("missing.pub"), "{}", stderr(&out));
}
