//! See and prepare the graph (issue 14): download, --offline everywhere,
//! graph, why, update --diff and update --check DIR/... on a loopback
//! registry, graph checked against what the real cue writes.

use crate::deps_diff::{diamond_world, Pair, World, MAIN};
use crate::safety::{consumer, lib_at, snapshot};
use crate::support::*;
use std::path::Path;

/// After `cue mod tidy`, `opm mod graph --json` selects exactly the
/// versions cue wrote.
fn graph_matches_cue(w: &World, files: &[(&str, &str)]) -> serde_json::Value {
    let mut p = Pair::new(w, MAIN, files);
    assert!(p.step(&["tidy"]));
    let module_cue = p.module_cue();
    let cache = tempdir();
    let dir = module(&[("cue.mod/module.cue", module_cue.as_str())]);
    let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(dir.path()).args(["mod", "graph", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let g: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let written = opm::cue::parse_module_file(&module_cue, "module.cue", false).unwrap();
    let mut want: Vec<(String, String)> = written.deps.iter().map(|d| (d.path.clone(), d.version.clone())).collect();
    let mut got: Vec<(String, String)> =
        g["modules"].as_array().unwrap().iter().map(|n| (n["module"].as_str().unwrap().to_string(), n["version"].as_str().unwrap().to_string())).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "the graph selects what cue wrote:\n{module_cue}");
    g
}

#[test]
fn graph_and_why_show_what_cue_selects() {
    let w = diamond_world();
    let g = graph_matches_cue(&w, &[("m.cue", "package m\n\nimport (\n\tl \"d.test/left\"\n\tr \"d.test/right\"\n)\n\nx: l.name + r.name\n")]);
    assert!(
        g["requirements"].as_array().unwrap().iter().any(|e| e["from"] == "d.test/left@v0.2.0" && e["to"] == "d.test/base@v0" && e["required"] == "v0.4.0"),
        "{g}"
    );

    // why: the left dependency's requirement sets base's version.
    let mut p = Pair::new(&w, MAIN, &[("m.cue", "package m\n\nimport (\n\tl \"d.test/left\"\n\tr \"d.test/right\"\n)\n\nx: l.name + r.name\n")]);
    p.step(&["tidy"]);
    let cache = tempdir();
    let dir = module(&[("cue.mod/module.cue", p.module_cue().as_str())]);
    let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(dir.path()).args(["mod", "why", "d.test/base"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("main.test/m -> d.test/left@v0.2.0 requires d.test/base@v0.4.0 (selected)"), "{text}");
    assert!(text.contains("main.test/m -> d.test/right@v0.1.0 requires d.test/base@v0.3.0\n"), "{text}");
    let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(dir.path()).args(["mod", "why", "d.test/nothing"]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));

    // Two majors side by side.
    let w = World::new();
    w.publish("b.test/b@v1", "v1.1.0", &[], &[]);
    w.publish("b.test/b@v2", "v2.0.0", &[], &[]);
    graph_matches_cue(&w, &[("m.cue", "package m\n\nimport (\n\t\"b.test/b\"\n\tb1 \"b.test/b@v1\"\n)\n\nx: b.name + b1.name\n")]);
}

#[test]
fn download_then_everything_offline_with_the_registry_stopped() {
    let w = World::new();
    lib_at(&w, "v1.0.0", "{image: \"nginx:1.27\", replicas: 1}");
    lib_at(&w, "v1.1.0", "{image: \"nginx:1.27\", replicas: 2}");
    let first = tempdir();
    let app = consumer(&w, first.path());
    let cache = tempdir();
    let opm_app = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(args));
    let before = snapshot(app.path());
    let out = opm_app(&["mod", "download", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fetched: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(fetched.as_array().unwrap().iter().any(|f| f["module"] == "example.com/lib@v1"), "{fetched}");
    let out = opm_app(&["mod", "download", "example.com/lib@v1.1.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(snapshot(app.path()), before, "download never edits the module");

    drop(w); // the registry is gone
    let offline = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", "127.0.0.1:9+insecure").current_dir(app.path()).args(args));
    for args in [&["mod", "vet", "--offline"][..], &["mod", "build", "--offline"]] {
        let out = offline(args);
        assert!(out.status.success(), "opm {}: {}", args.join(" "), stderr(&out));
    }
    let out = run(opm(cache.path()).env("CUE_REGISTRY", "127.0.0.1:9+insecure").env("OPM_OFFLINE", "1").current_dir(app.path()).args(["mod", "build"]));
    assert!(out.status.success(), "OPM_OFFLINE=1: {}", stderr(&out));
    // The cache is the registry: v1.1.0 is there, so it is an update.
    let out = offline(&["mod", "update", "--check", "--offline"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stdout(&out).contains("v1.1.0"), "{}", stdout(&out));
    let out = offline(&["mod", "get", "--offline", "example.com/lib@v1.1.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = offline(&["mod", "graph", "--offline"]);
    assert!(out.status.success() && stdout(&out).contains("v1.1.0"), "{}", stderr(&out));
    // tidy --offline: a missing dependency gets the newest cached release.
    let module_cue = app.path().join("cue.mod/module.cue");
    let text = std::fs::read_to_string(&module_cue).unwrap();
    let without: String = {
        let parsed = opm::cue::parse_module_file(&text, "module.cue", false).unwrap();
        let core = parsed.deps.iter().find(|d| d.path.starts_with("opmodel.dev")).unwrap();
        format!("module: \"example.com/app@v0\"\nlanguage: version: \"v0.17.1\"\nsource: kind: \"self\"\ndeps: \"{}\": v: \"{}\"\n", core.path, core.version)
    };
    std::fs::write(&module_cue, without).unwrap();
    let out = offline(&["mod", "tidy", "--offline"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("offline: versions come from the CUE cache only"), "{}", stderr(&out));
    assert!(std::fs::read_to_string(&module_cue).unwrap().contains("v1.1.0"), "the newest cached release");
}

#[test]
fn update_diff_shows_exactly_the_changed_field() {
    let w = World::new();
    lib_at(&w, "v1.0.0", "{image: \"nginx:1.27\", replicas: 1}");
    lib_at(&w, "v1.1.0", "{image: \"nginx:1.27\", replicas: 2}");
    let cache = tempdir();
    let app = consumer(&w, cache.path());
    let before = snapshot(app.path());
    let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(["mod", "update", "--diff", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let previews: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let p = &previews[0];
    assert_eq!((p["current"].as_str(), p["available"].as_str()), (Some("v1.0.0"), Some("v1.1.0")), "{previews}");
    assert!(p["added"].as_array().unwrap().is_empty() && p["removed"].as_array().unwrap().is_empty(), "{previews}");
    let changed = p["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "one object changes: {previews}");
    assert!(changed[0]["object"].as_str().unwrap().starts_with("Deployment "), "{previews}");
    assert_eq!(changed[0]["fields"], serde_json::json!([{"path": "spec.replicas", "before": 1, "after": 2}]), "{previews}");
    assert_eq!(snapshot(app.path()), before, "--diff changes nothing");
    let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(["mod", "update", "--diff"]));
    assert!(stdout(&out).contains("spec.replicas: 1 -> 2"), "{}", stdout(&out));
}

#[test]
fn update_check_covers_every_module_under_a_directory() {
    let w = World::new();
    w.publish("u.test/lib@v0", "v0.1.0", &[], &[]);
    w.publish("u.test/lib@v0", "v0.2.0", &[], &[]);
    let top = tempdir();
    let cache = tempdir();
    for (name, version) in [("current", "v0.2.0"), ("behind", "v0.1.0")] {
        let dir = top.path().join(name);
        write(
            &dir.join("cue.mod/module.cue"),
            &format!("module: \"main.test/{name}@v0\"\nlanguage: version: \"v0.17.0\"\ndeps: \"u.test/lib@v0\": v: \"{version}\"\n"),
        );
        write(&dir.join("m.cue"), "package m\n");
    }
    let check = |dir: &Path| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(dir).args(["mod", "update", "--check", "./..."]));
    let out = check(top.path());
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.contains("./behind") && table.contains("v0.2.0") && !table.contains("./current"), "{table}");
    assert!(check(&top.path().join("current")).status.success());
}
