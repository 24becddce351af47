//! Seams a new user and a fault pass found (issue 23): the embedded core
//! model never looked up, files that are no regular files, a config file
//! that is named but missing, vet inside cue.mod, verify with nothing
//! cached.

use crate::deps_diff::World;
use crate::registry_server::TestRegistry;
use crate::support::*;
use std::path::Path;
use std::process::Command;

/// `opm` bounded by coreutils' timeout: a hang shows as exit 124.
fn opm_bounded(cache: &Path, secs: u32) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg(secs.to_string()).arg(env!("CARGO_BIN_EXE_opm"));
    let isolated = opm(cache);
    for (k, v) in isolated.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.stdin(std::process::Stdio::null());
    cmd
}

#[test]
fn the_core_model_opm_carries_is_never_looked_up() {
    let w = World::new();
    let reg = w.registry_server();
    let cache = tempdir();

    // tidy of a plain CUE module importing the core model, with no registry at all.
    let site = tempdir();
    let out = run(opm(cache.path()).current_dir(site.path()).args(["mod", "init", "example.com/site@v0", "--template", "cue"]));
    assert!(out.status.success(), "{}", stderr(&out));
    write(&site.path().join("site.cue"), "package site\n\nimport \"opmodel.dev/core@v0\"\n\n#R: core.#ModuleRelease\n");
    let out = run(opm(cache.path()).env("CUE_REGISTRY", "127.0.0.1:1+insecure").current_dir(site.path()).args(["mod", "tidy"]));
    assert!(out.status.success(), "tidy: {}", stderr(&out));
    let module_cue = std::fs::read_to_string(site.path().join("cue.mod/module.cue")).unwrap();
    assert!(module_cue.contains("\"opmodel.dev/core@v0\"") && module_cue.contains("v0.1.0"), "{module_cue}");

    // An OPM module depending on a published library: verify --remote
    // checks the library and compares the core model with the binary's.
    let lib = tempdir();
    let out = run(opm(cache.path()).current_dir(lib.path()).args(["mod", "init", "example.com/lib@v0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let opm_at = |dir: &Path, args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(dir).args(args));
    let out = opm_at(lib.path(), &["mod", "publish", "v0.1.0"]);
    assert!(out.status.success(), "publish: {}", stderr(&out));
    write(&lib.path().join("extra.cue"), "package lib\n\nextra: 1\n");
    let source = lib.path().join("lib.cue");
    std::fs::write(&source, std::fs::read_to_string(&source).unwrap().replace("\"0.1.0\"", "\"0.2.0\"")).unwrap();
    let out = opm_at(lib.path(), &["mod", "publish", "v0.2.0"]);
    assert!(out.status.success(), "publish: {}", stderr(&out));
    let app = tempdir();
    let out = run(opm(cache.path()).current_dir(app.path()).args(["mod", "init", "example.com/app@v0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = opm_at(app.path(), &["mod", "get", "example.com/lib@v0.1.0"]);
    assert!(out.status.success(), "get: {}", stderr(&out));
    let out = opm_at(app.path(), &["mod", "verify", "--remote"]);
    assert!(out.status.success(), "verify --remote: {}{}", stdout(&out), stderr(&out));
    reg.retag("example.com/lib", "v0.2.0", "v0.1.0");
    let out = opm_at(app.path(), &["mod", "verify", "--remote", "--json"]);
    assert_eq!(out.status.code(), Some(7), "a moved tag is the finding: {}{}", stdout(&out), stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let moved: Vec<&serde_json::Value> = rows.as_array().unwrap().iter().filter(|r| r["status"] == "mismatch").collect();
    assert_eq!(moved.len(), 1, "{rows}");
    assert_eq!(moved[0]["module"], "example.com/lib@v0", "{rows}");

    // mirror --deps pushes the core model from the binary: the target
    // serves it to cue.
    let target = TestRegistry::start();
    let out = opm_at(app.path(), &["mod", "mirror", "example.com/lib@v0.2.0", "--deps", "--to", &format!("{}+insecure", target.host)]);
    assert!(out.status.success(), "mirror --deps: {}", stderr(&out));
    assert!(target.skopeo_manifest("opmodel.dev/core", "v0.1.0", None).is_some(), "the core model is in the target");
    let consumer = module(&[
        ("cue.mod/module.cue", "module: \"example.com/c@v0\"\nlanguage: version: \"v0.17.0\"\n"),
        ("c.cue", "package c\n\nimport \"example.com/lib@v0\"\n\nx: lib.module.metadata.name\n"),
    ]);
    let fresh = tempdir();
    let on_target = format!("{}+insecure", target.host);
    let out = run(cue(fresh.path()).env("CUE_REGISTRY", &on_target).current_dir(consumer.path()).args(["mod", "tidy"]));
    assert!(out.status.success(), "cue mod tidy against the mirror: {}", stderr(&out));
    let out = run(cue(fresh.path()).env("CUE_REGISTRY", &on_target).current_dir(consumer.path()).args(["export"]));
    assert!(out.status.success(), "cue export against the mirror: {}", stderr(&out));
}

#[test]
fn a_named_config_file_must_exist() {
    let cache = tempdir();
    let app = module(&[("cue.mod/module.cue", MODULE_CUE)]);
    for args in [&["config", "show"][..], &["mod", "get", "example.com/x@v0.1.0"][..]] {
        let out = run(opm(cache.path()).env_remove("CUE_REGISTRY").env("OPM_CONFIG", "/nonexistent/config.yaml").current_dir(app.path()).args(args));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("OPM_CONFIG names /nonexistent/config.yaml, which does not exist"), "{}", stderr(&out));
    }
}

#[test]
fn fifos_and_devices_are_refused_not_read() {
    let cache = tempdir();
    let app = module(&[("cue.mod/module.cue", MODULE_CUE), ("a.cue", "package test\n\nx: 1\n")]);
    let fifo = |path: &Path| assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
    // opm.sum as a FIFO (a committed symlink to one would do the same).
    fifo(&app.path().join("cue.mod/opm.sum"));
    let out = run(opm_bounded(cache.path(), 30).current_dir(app.path()).args(["mod", "vet"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a regular file"), "{}", stderr(&out));
    std::fs::remove_file(app.path().join("cue.mod/opm.sum")).unwrap();
    // The config file: a device that never ends, and a FIFO.
    let dir = tempdir();
    fifo(&dir.path().join("config.yaml"));
    for config in [Path::new("/dev/zero"), &dir.path().join("config.yaml")] {
        let out = run(opm_bounded(cache.path(), 30).env_remove("CUE_REGISTRY").env("OPM_CONFIG", config).args(["config", "show"]));
        assert_eq!(out.status.code(), Some(1), "{}: {}", config.display(), stderr(&out));
        assert!(stderr(&out).contains("not a regular file"), "{}", stderr(&out));
    }
    // A key file of the policy.
    fifo(&dir.path().join("k.pub"));
    let policy = dir.path().join("policy.yaml");
    write(&policy, &format!("verify:\n  example.com:\n    keys: [{}]\n", dir.path().join("k.pub").display()));
    let out = run(opm_bounded(cache.path(), 30).env("CUE_REGISTRY", "127.0.0.1:1+insecure").env("OPM_CONFIG", &policy).current_dir(app.path()).args([
        "mod",
        "get",
        "example.com/x@v0.1.0",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a regular file"), "{}", stderr(&out));
    // The Docker config.
    let docker = tempdir();
    fifo(&docker.path().join("config.json"));
    let reg = TestRegistry::start();
    let out = run(opm_bounded(cache.path(), 30)
        .env("CUE_REGISTRY", format!("{}+insecure", reg.host))
        .env("DOCKER_CONFIG", docker.path())
        .current_dir(app.path())
        .args(["mod", "get", "example.com/x@v0.1.0"]));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a regular file"), "{}", stderr(&out));
}

#[test]
fn vet_and_build_inside_cue_mod_are_refused_as_cue_refuses() {
    let cache = tempdir();
    let app = module(&[("cue.mod/module.cue", MODULE_CUE), ("a.cue", "package test\n\nx: 1\n")]);
    let inside = app.path().join("cue.mod");
    let theirs = run(cue(cache.path()).current_dir(&inside).args(["vet", "./..."]));
    assert_eq!(theirs.status.code(), Some(1));
    for args in [&["mod", "vet"][..], &["mod", "build"][..]] {
        let out = run(opm(cache.path()).current_dir(&inside).args(args));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&theirs).contains(stderr(&out).trim().trim_start_matches("error: ")), "{args:?}: cue says {}, opm {}", stderr(&theirs), stderr(&out));
    }
}

#[test]
fn verify_with_nothing_cached_says_so_and_exits_5() {
    let w = World::new();
    w.publish_files("example.com/lib@v0", "v0.1.0", &[("lib.cue", "package lib\n\nname: \"one\"\n")]);
    let cache = tempdir();
    let app = module(&[
        ("cue.mod/module.cue", "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\n"),
        ("app.cue", "package app\n\nimport \"example.com/lib@v0\"\n\nx: lib.name\n"),
    ]);
    let opm_in = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(args));
    assert!(opm_in(&["mod", "get", "example.com/lib@v0.1.0"]).status.success());
    assert!(opm_in(&["mod", "verify"]).status.success());
    assert!(opm_in(&["cache", "clean", "--yes"]).status.success());
    let out = opm_in(&["mod", "verify"]);
    assert_eq!(out.status.code(), Some(5), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("nothing was checked") && stderr(&out).contains("opm mod download"), "{}", stderr(&out));
}

#[test]
fn a_release_kubernetes_cannot_take_as_rendered_is_refused() {
    let cache = tempdir();
    let dir = tempdir();
    let opm_in = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", "none").current_dir(dir.path()).args(args));
    assert!(opm_in(&["mod", "init", "example.com/dup@v0"]).status.success());
    // A second module in the same repository with a component of the same name.
    let one = std::fs::read_to_string(dir.path().join("dup.cue")).unwrap();
    write(&dir.path().join("two/two.cue"), &one.replace("package dup", "package two").replace("name:       \"dup\"", "name:       \"two\""));
    write(
        &dir.path().join("pair/pair.cue"),
        "package pair\n\nimport (\n\t\"opmodel.dev/core@v0\"\n\t\"example.com/dup@v0\"\n\t\"example.com/dup/two\"\n)\n\n\
         bundle: core.#Bundle & {\n\tmetadata: {apiVersion: \"example.com/dup@v0\", name: \"pair\"}\n\t#spec: {}\n\tvalues: {}\n\
         \t#modules: {\n\t\tone: dup.module\n\t\tother: two.module & {values: replicas: 2}\n\t}\n}\n",
    );
    for verb in ["build", "vet"] {
        let out = opm_in(&["bundle", verb, "./pair"]);
        assert_eq!(out.status.code(), Some(2), "bundle {verb}: {}{}", stdout(&out), stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("Deployment default/web (apps/v1) is rendered twice, by component web of module dup and by component web of module two"),
            "bundle {verb}: {err}"
        );
    }
    // A component that no transformer matches renders nothing: an error, not [].
    write(
        &dir.path().join("lonely/lonely.cue"),
        "package lonely\n\nimport \"opmodel.dev/core@v0\"\n\nmodule: core.#Module & {\n\tmetadata: {apiVersion: \"example.com/dup@v0\", name: \"lonely\", version: \"0.1.0\"}\n\
         \tvalues: {}\n\t#components: cfg: core.#Component & {}\n}\n",
    );
    let out = opm_in(&["mod", "build", "./lonely"]);
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("component cfg of module lonely renders nothing"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "nothing rendered: {}", stdout(&out));
}

#[test]
fn publishing_a_version_the_module_does_not_declare_is_refused() {
    let w = World::new();
    let reg = w.registry_server();
    let cache = tempdir();
    let lib = tempdir();
    let opm_in = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(lib.path()).args(args));
    assert!(opm_in(&["mod", "init", "example.com/web@v0"]).status.success());
    let out = opm_in(&["mod", "publish", "v0.2.0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("metadata.version: \"0.1.0\"") && stderr(&out).contains("Set metadata.version: \"0.2.0\""), "{}", stderr(&out));
    assert_eq!(reg.skopeo_manifest("example.com/web", "v0.2.0", None), None, "nothing pushed");
    let out = opm_in(&["mod", "publish", "v0.1.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn update_diff_proves_each_row_in_the_users_terms() {
    use crate::safety::{consumer, lib_at};
    let w = World::new();
    lib_at(&w, "v1.0.0", "{image: \"nginx:1.27\", replicas: 1}");
    lib_at(&w, "v1.1.0", "{image: \"nginx:1.27\", replicas: 2}");
    w.publish_files("example.com/lib@v2", "v2.0.0", &[("lib.cue", "package lib\n\n#Defaults: {image: \"nginx:1.28\", replicas: 1}\n")]);
    let cache = tempdir();
    let app = consumer(&w, cache.path());
    let opm_in = |dir: &Path, args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(dir).args(args));

    // A minor and a major row of one module: each proven on its own (the
    // minor one is not given the major's import rewrites).
    let out = opm_in(app.path(), &["mod", "update", "--diff", "--major", "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let previews: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = previews.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{previews}");
    assert!(rows.iter().all(|p| p["error"].is_null()), "{previews}");
    let minor = rows.iter().find(|p| p["available"] == "v1.1.0").unwrap();
    assert_eq!(minor["changed"][0]["fields"], serde_json::json!([{"path": "spec.replicas", "before": 1, "after": 2}]), "{previews}");

    // An update that breaks the release: exit 2, said in the user's paths.
    lib_at(&w, "v1.2.0", "{replicas: 3}");
    let out = opm_in(app.path(), &["mod", "update", "--diff"]);
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("v1.0.0 -> v1.2.0") && text.contains("no longer renders") && !text.contains("opm-staged"), "{text}");
    let out = opm_in(app.path(), &["-v", "mod", "update", "--diff", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stdout(&out).contains("opm-staged"), "{}", stdout(&out));

    // A plain CUE module diffs its `cue export`.
    let site = tempdir();
    assert!(opm_in(site.path(), &["mod", "init", "example.com/site@v0", "--template", "cue"]).status.success());
    write(&site.path().join("site.cue"), "package site\n\nimport \"example.com/lib@v1\"\n\nreplicas: lib.#Defaults.replicas\nname: \"site\"\n");
    assert!(opm_in(site.path(), &["mod", "get", "example.com/lib@v1.0.0"]).status.success());
    let out = opm_in(site.path(), &["mod", "update", "example.com/lib@v1", "--diff", "--json"]);
    // v1.1.0 changes replicas; v1.2.0 too (the site reads nothing else).
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let previews: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(previews[0]["changed"][0]["object"], "field replicas", "{previews}");
    assert_eq!(previews[0]["changed"][0]["fields"][0]["after"], 3, "{previews}");
}

#[test]
fn update_check_marks_what_the_policy_refuses_and_names_the_command_that_takes_it() {
    let w = World::new();
    w.publish_files("example.com/lib@v0", "v0.1.0", &[("lib.cue", "package lib\n\nname: \"one\"\n")]);
    w.publish_files("example.com/lib@v0", "v0.2.0", &[("lib.cue", "package lib\n\nname: \"two\"\n")]);
    w.publish_files("example.com/lib@v1", "v1.0.0", &[("lib.cue", "package lib\n\nname: \"three\"\n")]);
    let keys = tempdir();
    let (private, public) = crate::signatures::key_pair(keys.path());
    let publisher = tempdir();
    let out = run(opm(publisher.path())
        .env("CUE_REGISTRY", &w.registry)
        .env("COSIGN_PASSWORD", crate::signatures::PASSWORD)
        .args(["mod", "sign", "example.com/lib@v0.1.0", "--key"])
        .arg(&private));
    assert!(out.status.success(), "{}", stderr(&out));
    let config = crate::signatures::policy(keys.path(), &public);
    let cache = tempdir();
    let app = module(&[
        ("cue.mod/module.cue", "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\n"),
        ("app.cue", "package app\n\nimport \"example.com/lib@v0\"\n\nx: lib.name\n"),
    ]);
    let opm_in = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).env("OPM_CONFIG", &config).current_dir(app.path()).args(args));
    assert!(opm_in(&["mod", "get", "example.com/lib@v0.1.0"]).status.success());
    let out = opm_in(&["mod", "update", "--check", "--json"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows[0]["available"], "v0.2.0", "{rows}");
    assert_eq!(rows[0]["signature"], "unsigned", "{rows}");
    let out = opm_in(&["mod", "update", "--check", "--major"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stdout(&out).contains("unsigned: the verify policy refuses it"), "{}", stdout(&out));
    assert!(stderr(&out).contains("run 'opm mod update --major'"), "{}", stderr(&out));
}

#[test]
fn update_check_of_a_tree_skips_caches_inside_it() {
    let w = World::new();
    w.publish("u.test/lib@v0", "v0.1.0", &[], &[]);
    w.publish("u.test/lib@v0", "v0.2.0", &[], &[]);
    let top = tempdir();
    let app = top.path().join("app");
    write(&app.join("cue.mod/module.cue"), "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\n");
    write(&app.join("app.cue"), "package app\n\nimport \"u.test/lib@v0\"\n\nx: lib.name\n");
    // The CUE cache lives inside the tree (a CI workspace often does this).
    let cache = top.path().join("cache");
    let out = run(opm(&cache).env("CUE_REGISTRY", &w.registry).current_dir(&app).args(["mod", "get", "u.test/lib@v0.1.0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cache.join("mod/extract/u.test/lib@v0.1.0/cue.mod/module.cue").is_file());
    let out = run(opm(&cache).env("CUE_REGISTRY", &w.registry).current_dir(top.path()).args(["mod", "update", "--check", "./...", "--json"]));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("main.test/app") || text.contains("/app"), "{text}");
    assert!(!text.contains("/cache/"), "the cache is no project: {text}");
}

#[test]
fn leftovers_of_interrupted_runs_are_swept() {
    let w = World::new();
    w.publish_files("example.com/lib@v0", "v0.1.0", &[("lib.cue", "package lib\n\nname: \"one\"\n")]);
    let cache = tempdir();
    let app = module(&[
        ("cue.mod/module.cue", "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\n"),
        ("app.cue", "package app\n\nimport \"example.com/lib@v0\"\n\nx: lib.name\n"),
    ]);
    let opm_in = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(args));
    assert!(opm_in(&["mod", "get", "example.com/lib@v0.1.0"]).status.success());
    let download = cache.path().join("mod/download/example.com/lib/@v");
    let extract = cache.path().join("mod/extract/example.com");
    // A get killed after its tree was renamed into place leaves its staging directory.
    let staging = extract.join("lib@v0.1.0.tmp-123456");
    std::fs::create_dir_all(&staging).unwrap();
    assert!(opm_in(&["mod", "get", "example.com/lib@v0.1.0"]).status.success());
    assert!(!staging.exists(), "a successful rerun sweeps it");
    // A gc killed mid-removal: the tree renamed away, the files still there.
    let doomed = extract.join("lib@v0.2.0.tmp-removed-99");
    write(&doomed.join("lib.cue"), "package lib\n");
    for suffix in ["zip", "mod", "manifest"] {
        std::fs::copy(download.join(format!("v0.1.0.{suffix}")), download.join(format!("v0.2.0.{suffix}"))).unwrap();
    }
    // (A zip without a tree is a leftover once it is old: cue downloads,
    // unlocks, then extracts.)
    assert!(Command::new("touch").args(["-d", "2 hours ago"]).arg(download.join("v0.2.0.zip")).status().unwrap().success());
    let out = opm_in(&["cache", "list", "--json"]);
    assert!(!stdout(&out).contains("v0.2.0"), "no entry lists it: {}", stdout(&out));
    let out = opm_in(&["cache", "gc", "--older-than", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!doomed.exists(), "the half-removed tree is collected");
    for suffix in ["zip", "mod", "manifest"] {
        assert!(!download.join(format!("v0.2.0.{suffix}")).exists(), "v0.2.0.{suffix} collected");
    }
    // What a project uses stays.
    assert!(download.join("v0.1.0.zip").is_file() && extract.join("lib@v0.1.0").is_dir());
    assert!(opm_in(&["mod", "vet", "--offline"]).status.success());
}

#[test]
fn scripts_get_json_for_every_outcome_and_the_dry_run_lists_files() {
    let cache = tempdir();
    let app = module(&[("cue.mod/module.cue", MODULE_CUE), ("a.cue", "package test\n\nx: 1\n")]);
    // A command line clap refuses.
    let out = run(opm(cache.path()).current_dir(app.path()).args(["mod", "tidy", "--json", "--no-such-flag"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let error: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    assert_eq!(error["error"]["kind"], "error", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("--no-such-flag"), "{error}");
    // tidy --check --json: tidy's shape and the verdict, both ways.
    let out = run(opm(cache.path()).env("CUE_REGISTRY", "none").current_dir(app.path()).args(["mod", "tidy", "--check", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let tidy: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(tidy["tidy"], true, "{tidy}");
    assert!(tidy["changes"].is_array() && std::path::Path::new(tidy["module_file"].as_str().unwrap()).is_absolute(), "{tidy}");
    write(&app.path().join("b.cue"), "package test\n\nimport \"opmodel.dev/core@v0\"\n\ny: core.#Module\n");
    let out = run(opm(cache.path()).env("CUE_REGISTRY", "none").current_dir(app.path()).args(["mod", "tidy", "--check", "--json"]));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let tidy: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(tidy["tidy"], false, "{tidy}");
    assert!(tidy["reason"].as_str().unwrap().contains("not tidy") && tidy["changes"].is_array(), "{tidy}");
    std::fs::remove_file(app.path().join("b.cue")).unwrap();
    // publish --dry-run lists what the zip would hold, as cargo package --list.
    let lib = publishable("example.com/lib@v0", "name: \"one\"");
    write(&lib.path().join("sub/more.cue"), "package sub\n\nz: 1\n");
    let out = run(opm(cache.path()).env("CUE_REGISTRY", "127.0.0.1:1+insecure").current_dir(lib.path()).args(["mod", "publish", "v0.1.0", "--dry-run"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "cue.mod/module.cue\nlib.cue\nsub/more.cue\n");
}

#[test]
fn registry_check_says_what_it_found() {
    let w = World::new();
    w.publish_files("example.com/lib@v0", "v0.1.0", &[("lib.cue", "package lib\n\nname: \"one\"\n")]);
    let cache = tempdir();
    // A credsStore whose helper is not installed: said, not silently skipped.
    let docker = tempdir();
    write(&docker.path().join("config.json"), "{\"credsStore\": \"nonexist\"}");
    let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).env("DOCKER_CONFIG", docker.path()).args(["registry", "check", "example.com"]));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("docker-credential-nonexist") && text.contains("is not on PATH"), "{text}");
    // A prefix with modules under it is no empty repository.
    assert!(!text.contains("the repository is empty"), "{text}");
}
