//! `opm mod build` and `opm bundle build|vet` on the examples: golden
//! output, the official Kubernetes schemas, and the real `cue export`.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The repository's catalog and examples, copied so that tests never
/// write into the repository and relative replacements still resolve.
struct Examples {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Examples {
    fn copy() -> Examples {
        let dir = tempdir();
        for part in ["catalog", "examples"] {
            copy_tree(&repo_dir().join(part), &dir.path().join(part));
        }
        let root = dir.path().join("examples");
        Examples { _dir: dir, root }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

fn build(cache: &Path, dir: &Path, args: &[&str]) -> std::process::Output {
    let bundle = dir.join("bundle.cue").exists();
    let mut cmd = opm(cache);
    cmd.current_dir(dir).args(if bundle { ["bundle", "build"] } else { ["mod", "build"] }).args(args);
    run(&mut cmd)
}

fn objects(out: &std::process::Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("a JSON list")
}

fn key(o: &Value) -> String {
    format!("{}/{}/{}", o["kind"], o["metadata"]["namespace"], o["metadata"]["name"])
}

const RENDERED: [&str; 4] = ["blog", "postgres", "internal-db", "webapp-stack"];

#[test]
fn examples_render_to_their_golden_yaml_byte_for_byte() {
    let ex = Examples::copy();
    let cache = tempdir();
    let bless = std::env::var_os("OPM_BLESS").is_some();
    for name in RENDERED {
        let first = build(cache.path(), &ex.dir(name), &[]);
        assert!(first.status.success(), "{name}: {}", stderr(&first));
        let second = build(cache.path(), &ex.dir(name), &[]);
        assert_eq!(first.stdout, second.stdout, "{name}: output differs between runs");
        let golden = repo_dir().join("examples").join(name).join("golden.yaml");
        if bless {
            std::fs::write(&golden, &first.stdout).unwrap();
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| panic!("{}: run with OPM_BLESS=1", golden.display()));
        assert_eq!(stdout(&first), want, "{name}: output differs from {}", golden.display());
    }
}

#[test]
fn rendered_objects_are_valid_against_the_official_kubernetes_schemas() {
    let ex = Examples::copy();
    let cache = tempdir();
    let schema_dir = repo_dir().join("tests/k8s-schema");
    for name in RENDERED {
        for values in [None, Some("staging")] {
            let mut args = vec!["-o", "json"];
            let values_file = ex.dir(name).join("staging.yaml");
            if values.is_some() {
                if name != "webapp-stack" {
                    continue;
                }
                std::fs::write(&values_file, "env: staging\ndomain: staging.example.com\n").unwrap();
                args.extend(["-f", values_file.to_str().unwrap()]);
            }
            let list = objects(&build(cache.path(), &ex.dir(name), &args));
            assert!(!list.is_empty(), "{name}");
            let input = tempdir();
            let file = input.path().join("objects.json");
            std::fs::write(&file, serde_json::to_vec(&serde_json::json!({ "objects": list })).unwrap()).unwrap();
            let out = run(cue(cache.path()).current_dir(&schema_dir).args(["vet", "-c", "check.cue"]).arg(&file));
            assert!(out.status.success(), "{name} ({values:?}) is not valid Kubernetes:\n{}", stderr(&out));
        }
    }

    // The check itself rejects what Kubernetes would reject.
    let out = run(cue(cache.path()).current_dir(&schema_dir).args(["vet", "-c", "check.cue", "testdata/bad-field-typo.yaml"]));
    assert_eq!(out.status.code(), Some(1), "cue vet exits 1 on a value that does not fit");
}

#[test]
fn cue_export_of_a_release_gives_the_same_objects_as_opm_mod_build() {
    let ex = Examples::copy();
    let cache = tempdir();
    for (name, package, field, def, input) in [
        ("blog", "blog", "module", "#ModuleRelease", "#module"),
        ("postgres", "postgres", "module", "#ModuleRelease", "#module"),
        ("internal-db", "internal_db", "module", "#ModuleRelease", "#module"),
        ("webapp-stack", "webapp_stack", "bundle", "#BundleRelease", "#bundle"),
    ] {
        let dir = ex.dir(name);
        let ours = objects(&build(cache.path(), &dir, &["-o", "json", "--name", "rel", "-n", "apps"]));
        let release = dir.join("zz_release.cue");
        std::fs::write(
            &release,
            format!(
                "package {package}\n\nimport core \"opmodel.dev/core@v0\"\n\nrelease: core.{def} & {{\n\t{input}: {field}\n\tmetadata: {{name: \"rel\", namespace: \"apps\"}}\n}}\n"
            ),
        )
        .unwrap();
        let out = run(cue(cache.path()).current_dir(&dir).args(["export", "-e", "release.objects", "--out", "json"]));
        std::fs::remove_file(&release).unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let mut theirs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let mut ours_sorted = ours.clone();
        theirs.sort_by_key(key);
        ours_sorted.sort_by_key(key);
        assert_eq!(ours_sorted, theirs, "{name}: opm mod build and cue export disagree");
    }
}

#[test]
fn internal_db_extends_postgres_with_a_policy_a_sidecar_and_labels() {
    let ex = Examples::copy();
    let cache = tempdir();
    let upstream = objects(&build(cache.path(), &ex.dir("postgres"), &["-o", "json"]));
    let curated = objects(&build(cache.path(), &ex.dir("internal-db"), &["-o", "json"]));
    let kinds = |l: &[Value]| l.iter().map(|o| o["kind"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(kinds(&upstream), kinds(&curated), "internal-db renders the postgres objects");

    let sts = curated.iter().find(|o| o["kind"] == "StatefulSet").expect("a StatefulSet");
    let containers = sts["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert!(containers.len() >= 2, "the log-shipping sidecar is added: {containers:?}");
    for c in containers {
        assert_eq!(c["securityContext"]["runAsNonRoot"], true, "policy applied to {}", c["name"]);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    }
    assert_eq!(sts["metadata"]["labels"]["platform.example.com/team"], "platform");
    let upstream_sts = upstream.iter().find(|o| o["kind"] == "StatefulSet").unwrap();
    assert!(upstream_sts["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"].is_null());

    // A consumer that relaxes the policy gets a CUE conflict naming both
    // places, exit 2.
    let out = build(cache.path(), &ex.dir("internal-db-consumer"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("runAsNonRoot: conflicting values true and false"), "{err}");
    assert!(err.contains("./consumer.cue:13:"), "the consumer's position: {err}");
    assert!(err.contains("internal-db/internal_db.cue:30:"), "the policy's position: {err}");
}

#[test]
fn values_files_are_unified_in_order_and_misfits_are_named() {
    let ex = Examples::copy();
    let cache = tempdir();
    let dir = ex.dir("blog");
    write(&dir.join("a.yaml"), "web:\n  replicas: 5\n");
    write(&dir.join("b.json"), r#"{"api": {"logLevel": "debug"}}"#);
    write(&dir.join("c.cue"), "web: image: \"nginx:1.27\"\n");
    let list = objects(&build(cache.path(), &dir, &["-o", "json", "-f", "a.yaml", "-f", "b.json", "-f", "c.cue"]));
    let web = list.iter().find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "web").unwrap();
    assert_eq!(web["spec"]["replicas"], 5);
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
    let config = list.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    assert_eq!(config["data"]["log-level"], "debug");

    write(&dir.join("bad.yaml"), "web:\n  replicas: five\n");
    let out = build(cache.path(), &dir, &["-f", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("replicas") && err.contains("bad.yaml:2:"), "names the field and the file: {err}");

    write(&dir.join("typo.yaml"), "web:\n  replicaz: 2\n");
    let out = build(cache.path(), &dir, &["-f", "typo.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("replicaz: field not allowed"), "{}", stderr(&out));

    let out = build(cache.path(), &dir, &["-f", "missing.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.yaml does not exist"), "{}", stderr(&out));
}

#[test]
fn out_dir_holds_one_file_per_object_in_apply_order() {
    let ex = Examples::copy();
    let cache = tempdir();
    let out_dir = tempdir();
    let out = build(cache.path(), &ex.dir("blog"), &["--out-dir", out_dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut names: Vec<String> = std::fs::read_dir(out_dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["01-configmap-api-config.yaml", "02-service-api.yaml", "03-service-web.yaml", "04-deployment-api.yaml", "05-deployment-web.yaml"]);

    // A later build that renders fewer objects leaves no stale file behind.
    let out = build(cache.path(), &ex.dir("postgres"), &["--out-dir", out_dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 3);
}

#[test]
fn a_new_opm_module_builds_on_a_fresh_machine_with_no_registry() {
    let cache = tempdir();
    let dir = tempdir();
    let ok = |args: &[&str]| {
        let out = run(opm(cache.path()).current_dir(dir.path()).args(args));
        assert!(out.status.success(), "opm {}: {}", args.join(" "), stderr(&out));
        out
    };
    ok(&["mod", "init", "example.com/shop@v0"]);
    // The core model comes from opm itself: tidy needs no registry either.
    ok(&["mod", "tidy", "--check"]);
    ok(&["mod", "vet", "--concrete", "--offline"]);
    let list = objects(&ok(&["mod", "build", "-o", "json"]));
    let kinds: Vec<_> = list.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Service", "Deployment"]);
    // The embedded core model now sits in the cache as a download would,
    // and cue uses it as it is.
    assert!(cache.path().join("mod/extract/opmodel.dev/core@v0.1.0/cue.mod/module.cue").is_file());
    let out = run(cue(cache.path()).current_dir(dir.path()).args(["vet", "-c", "./..."]));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_bundle_compiles_each_module_and_checks_release_values_against_its_spec() {
    let ex = Examples::copy();
    let cache = tempdir();
    let dir = ex.dir("webapp-stack");
    let out = run(opm(cache.path()).current_dir(&dir).args(["bundle", "vet"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let list = objects(&build(cache.path(), &dir, &["-o", "json"]));
    let parts: std::collections::BTreeSet<_> =
        list.iter().map(|o| o["metadata"]["labels"]["app.kubernetes.io/part-of"].as_str().unwrap().to_string()).collect();
    assert_eq!(parts.len(), 3, "three modules: {parts:?}");

    write(&dir.join("bad.yaml"), "env: production\n");
    let out = run(opm(cache.path()).current_dir(&dir).args(["bundle", "vet", "-f", "bad.yaml"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    write(&dir.join("extra.yaml"), "region: eu\n");
    let out = run(opm(cache.path()).current_dir(&dir).args(["bundle", "vet", "-f", "extra.yaml"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("region: field not allowed"), "{}", stderr(&out));

    // `opm mod build` on a bundle says what to run instead.
    let out = run(opm(cache.path()).current_dir(&dir).args(["mod", "build"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no `module` field"), "{}", stderr(&out));
}

/// Errors in the user's terms (issue 10, item 7): the flag, the values
/// file and the field first; files of the core model named as
/// module@version:file, never as a path into the cache.
#[test]
fn build_errors_speak_of_flags_values_and_modules() {
    let cache = tempdir();
    let dir = tempdir();
    let out = run(opm(cache.path()).current_dir(dir.path()).args(["mod", "init", "example.com/shop@v0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    write(&dir.path().join("bad.yaml"), "replicas: 0\n");
    let out = run(opm(cache.path()).current_dir(dir.path()).args(["mod", "build", "-f", "bad.yaml"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("error: the values in bad.yaml do not fit the module: release.values.replicas: invalid value 0"), "{err}");
    assert!(!err.contains("empty disjunction") && err.contains("--verbose: CUE's full detail"), "the telling part only: {err}");
    let out = run(opm(cache.path()).current_dir(dir.path()).args(["mod", "build", "-v", "-f", "bad.yaml"]));
    let err = stderr(&out);
    assert!(err.contains("empty disjunction") && err.contains("conflicting values 1 and 0"), "CUE's full detail: {err}");
    assert!(err.contains("opmodel.dev/core@v0.1.0:release.cue:") && !err.contains("mod/extract"), "{err}");
    for (flag, value) in [("-n", "Prod_NS"), ("--name", "My Release")] {
        let out = run(opm(cache.path()).current_dir(dir.path()).args(["mod", "build", flag, value]));
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(&format!("{value:?} is not")), "{}", stderr(&out));
    }
}
