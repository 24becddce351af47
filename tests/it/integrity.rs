//! cue.mod/opm.sum (issue 12): every dependency pinned by digest when it
//! is first fetched, and every later fetch checked against it. A version
//! whose tag a registry moved to other content is refused with exit 7,
//! writing nothing; cue works unchanged on a module that has the file.

use crate::deps_diff::World;
use crate::support::*;
use std::path::Path;

const APP_MODULE: &str = "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\nsource: kind: \"self\"\n";
const APP: &str = "package app\n\nimport \"example.com/lib@v0\"\n\nx: lib.name\n";

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    opm::files::module_files(dir).unwrap().into_iter().map(|f| (f.rel.clone(), std::fs::read(&f.abs).unwrap())).collect()
}

#[test]
fn a_moved_tag_is_refused_and_the_sums_file_is_stable() {
    let w = World::new();
    w.publish_files("example.com/lib@v0", "v0.1.0", &[("lib.cue", "package lib\n\nname: \"first\"\n")]);
    w.publish_files("example.com/lib@v0", "v0.2.0", &[("lib.cue", "package lib\n\nname: \"second\"\n")]);
    let cache = tempdir();
    let opm_in = |cache: &Path, dir: &Path, args: &[&str]| run(opm(cache).env("CUE_REGISTRY", &w.registry).current_dir(dir).args(args));

    // tidy pins the graph; a second tidy and a get write the same bytes.
    let a = module(&[("cue.mod/module.cue", APP_MODULE), ("app.cue", APP)]);
    let out = opm_in(cache.path(), a.path(), &["mod", "tidy"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sums = std::fs::read_to_string(a.path().join("cue.mod/opm.sum")).unwrap();
    let line = sums.lines().next().unwrap();
    assert!(line.starts_with("example.com/lib@v0 v0.2.0 sha256:") && line.split(' ').count() == 4, "{sums}");
    assert!(opm_in(cache.path(), a.path(), &["mod", "tidy"]).status.success());
    assert_eq!(std::fs::read_to_string(a.path().join("cue.mod/opm.sum")).unwrap(), sums, "byte-stable");
    let b = module(&[("cue.mod/module.cue", APP_MODULE), ("app.cue", APP)]);
    let fresh = tempdir();
    let out = opm_in(fresh.path(), b.path(), &["mod", "get", "example.com/lib@v0.2.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(b.path().join("cue.mod/opm.sum")).unwrap(), sums, "get and tidy pin alike");
    assert!(opm_in(cache.path(), a.path(), &["mod", "tidy", "--check"]).status.success());
    assert!(opm_in(cache.path(), a.path(), &["mod", "verify", "--remote"]).status.success());

    // cue works on the module as before, the file present.
    let cue_in = |dir: &Path, args: &[&str]| run(cue(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(dir).args(args));
    for args in [&["mod", "tidy"][..], &["mod", "get", "example.com/lib@v0.2.0"], &["export"], &["vet"]] {
        let out = cue_in(a.path(), args);
        assert!(out.status.success(), "cue {}: {}", args.join(" "), stderr(&out));
    }
    // cue publishes the file (its zip rules keep it), and so does opm, byte for byte.
    let ours = opm_in(cache.path(), a.path(), &["mod", "publish", "v0.1.0", "--dry-run", "--json"]);
    assert!(ours.status.success(), "{}", stderr(&ours));
    let ours: serde_json::Value = serde_json::from_str(&stdout(&ours)).unwrap();
    let out = cue_in(a.path(), &["mod", "publish", "v0.1.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let theirs = w.registry_server().skopeo_manifest("main.test/app", "v0.1.0", None).unwrap();
    assert_eq!(ours["digest"], opm::registry::sha256(theirs.as_bytes()), "the same manifest as cue's");

    // The registry moves v0.2.0 to other content.
    w.registry_server().retag("example.com/lib", "v0.1.0", "v0.2.0");
    let mv = tempdir();
    let before = snapshot(a.path());
    for args in [&["mod", "vet"][..], &["mod", "get", "example.com/lib@v0.2.0"], &["mod", "tidy"]] {
        let out = opm_in(mv.path(), a.path(), args);
        assert_eq!(out.status.code(), Some(7), "opm {}: {}", args.join(" "), stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("example.com/lib@v0.2.0") && err.contains("cue.mod/opm.sum records sha256:") && err.contains("a moved tag, or tampering"),
            "{err}"
        );
        assert_eq!(snapshot(a.path()), before, "module.cue and opm.sum unchanged");
        assert!(!mv.path().join("mod/extract/example.com/lib@v0.2.0").exists(), "nothing written to the cache");
        assert!(!mv.path().join("mod/download/example.com/lib/@v/v0.2.0.mod").exists(), "nothing written to the cache");
    }
    // verify --remote says what happened; the cached copy is still sound.
    let out = opm_in(cache.path(), a.path(), &["mod", "verify", "--remote"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("moved tag"), "{}", stderr(&out));
    assert!(opm_in(cache.path(), a.path(), &["mod", "verify"]).status.success());
}

#[test]
fn a_stale_sums_file_is_reported_by_the_checks() {
    let w = World::new();
    w.publish_files("example.com/lib@v0", "v0.1.0", &[("lib.cue", "package lib\n\nname: \"first\"\n")]);
    let cache = tempdir();
    let a = module(&[("cue.mod/module.cue", APP_MODULE), ("app.cue", APP)]);
    let opm_a = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(a.path()).args(args));
    assert!(opm_a(&["mod", "tidy"]).status.success());
    write(&a.path().join("cue.mod/opm.sum"), "");
    let out = opm_a(&["mod", "tidy", "--check"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("opm.sum lacks example.com/lib@v0.1.0"), "{}", stderr(&out));
    let out = opm_a(&["mod", "update", "--check"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(opm_a(&["mod", "tidy"]).status.success());
    assert!(opm_a(&["mod", "tidy", "--check"]).status.success());
}
