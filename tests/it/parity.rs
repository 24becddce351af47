//! Differential tests of the corners where opm once disagreed with cue
//! (issue 18): each runs the same steps through `cue mod` and `opm mod` on
//! one registry, and both must succeed or fail alike with byte-identical
//! cue.mod/module.cue and cue.mod/local-module.cue after every step.

use crate::deps_diff::{Pair, World, MAIN};

#[test]
fn a_prefix_routed_to_none_has_no_versions() {
    let w = World::new();
    w.publish_files("foo.com/bar@v0", "v0.0.1", &[("baz/baz.cue", "package baz\n\nname: \"baz\"\n")]);
    let routing = format!("foo.com/bar={},none", w.registry);
    // foo.com/bar/baz has no repository, foo.com is routed to none: only
    // foo.com/bar holds the package.
    let mut p = Pair::new(&w, MAIN, &[("m.cue", "package m\n\nimport \"foo.com/bar/baz@v0\"\n\nx: baz.name\n")]).with_registry(&routing);
    assert!(p.step(&["tidy"]));
    assert!(p.module_cue().contains("\"foo.com/bar@v0\": {\n\t\tv: \"v0.0.1\""), "{}", p.module_cue());
    assert!(p.step(&["tidy", "--check"]));

    // A dependency routed to none cannot be fetched: both refuse.
    let mut p =
        Pair::new(&w, &format!("{MAIN}deps: \"other.test/x@v0\": v: \"v0.1.0\"\n"), &[("m.cue", "package m\n\nimport \"other.test/x\"\n\ny: x.name\n")])
            .with_registry(&routing);
    assert!(!p.step(&["tidy"]));
}

#[test]
fn a_candidate_that_is_no_valid_repository_name_is_skipped() {
    let w = World::new();
    w.publish_files("test.example/foo@v0", "v0.0.1", &[("BarBaz/b.cue", "package BarBaz\n\nname: \"b\"\n")]);
    let mut p = Pair::new(&w, MAIN, &[("m.cue", "package m\n\nimport \"test.example/foo/BarBaz\"\n\nx: BarBaz.name\n")]);
    assert!(p.step(&["tidy"]));
    assert!(p.module_cue().contains("test.example/foo@v0") && p.module_cue().contains("default: true"), "{}", p.module_cue());
}

#[test]
fn module_commands_are_refused_inside_cue_mod() {
    let w = World::new();
    w.publish("d.test/base@v0", "v0.1.0", &[], &[]);
    let mut p = Pair::new(&w, MAIN, &[("m.cue", "package m\n\nimport \"d.test/base\"\n\nx: base.name\n"), ("cue.mod/gen/k.test/k/k.cue", "package k\n")]);
    assert!(!p.step_in("cue.mod", &["tidy"]));
    assert!(!p.step_in("cue.mod", &["get", "d.test/base@v0.1.0"]));
    p.write("cue.mod/other/x.txt", "");
    assert!(!p.step_in("cue.mod/other", &["tidy"]));
    // cue.mod/gen holds packages: from there the module is found.
    assert!(p.step_in("cue.mod/gen/k.test/k", &["tidy"]));
    assert!(p.module_cue().contains("d.test/base@v0"), "{}", p.module_cue());
}

#[test]
fn without_a_cache_directory_only_what_needs_no_cache_works() {
    let w = World::new();
    w.publish("d.test/base@v0", "v0.1.0", &[], &[]);
    let no_cache = |p: Pair| p.with_env("HOME", "").with_env("CUE_CACHE_DIR", "").with_env("XDG_CACHE_HOME", "");
    // Nothing to fetch: tidy needs no cache.
    let mut p = no_cache(Pair::new(&w, MAIN, &[("m.cue", "package m\n\nx: 1\n")]));
    assert!(p.step(&["tidy"]));
    // A dependency to resolve, or get: the cache is needed, and missing.
    let mut p = no_cache(Pair::new(&w, MAIN, &[("m.cue", "package m\n\nimport \"d.test/base\"\n\nx: base.name\n")]));
    assert!(!p.step(&["tidy"]));
    assert!(!p.step(&["get", "d.test/base@v0.1.0"]));
    // A relative XDG_CACHE_HOME is no cache directory either.
    let mut p = Pair::new(&w, MAIN, &[("m.cue", "package m\n")]).with_env("CUE_CACHE_DIR", "").with_env("XDG_CACHE_HOME", "rel/cache");
    assert!(!p.step(&["get", "d.test/base@v0.1.0"]));
}

/// A published example.com/dep and a directory that replaces it, which
/// itself needs other.test/c.
fn replacement_world() -> World {
    let w = World::new();
    w.publish("other.test/c@v0", "v0.1.0", &[], &[]);
    w.publish("other.test/c@v0", "v0.2.0", &[], &[]);
    w.publish("example.com/dep@v0", "v0.1.0", &[], &[]);
    w
}

const LOCAL_DEP: &[(&str, &str)] = &[
    ("local_dep/cue.mod/module.cue", "module: \"example.com/dep@v0\"\nlanguage: version: \"v0.17.0\"\ndeps: \"other.test/c@v0\": v: \"v0.1.0\"\n"),
    ("local_dep/dep.cue", "package dep\n\nimport \"other.test/c@v0\"\n\nname: \"local \" + c.name\n"),
];

fn with_local_dep(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut files = vec![("m.cue", "package m\n\nimport \"example.com/dep@v0\"\n\nx: dep.name\n")];
    files.extend_from_slice(LOCAL_DEP);
    files.extend_from_slice(extra);
    files
}

#[test]
fn a_replacement_in_module_cue_moves_to_local_module_cue() {
    let w = replacement_world();
    let module_cue = format!("{MAIN}deps: \"example.com/dep@v0\": {{v: \"v0.1.0\", replaceWith: \"./local_dep\"}}\n");
    let mut p = Pair::new(&w, &module_cue, &with_local_dep(&[]));
    assert!(!p.step(&["tidy", "--check"]));
    assert!(p.step(&["tidy"]));
    assert!(!p.module_cue().contains("replaceWith"), "{}", p.module_cue());
    assert!(p.local_module_cue().is_some_and(|l| l.contains("./local_dep")), "{:?}", p.local_module_cue());
    assert!(p.step(&["tidy", "--check"]));
    assert!(p.step(&["tidy"]));
}

#[test]
fn tidy_applies_local_module_cue_as_cue_does() {
    let w = replacement_world();
    let module_cue = format!("{MAIN}deps: \"example.com/dep@v0\": v: \"v0.1.0\"\n");
    let local = "deps: \"example.com/dep@v0\": replaceWith: \"./local_dep\"\n";
    let mut p = Pair::new(&w, &module_cue, &with_local_dep(&[("cue.mod/local-module.cue", local)]));
    // The replacement needs other.test/c, which neither file lists yet.
    assert!(!p.step(&["tidy", "--check"]));
    assert!(p.step(&["tidy"]));
    assert!(p.local_module_cue().is_some_and(|l| l.contains("other.test/c@v0")), "{:?}", p.local_module_cue());
    assert!(p.step(&["tidy", "--check"]));
    // get ignores local-module.cue, as cue's does.
    assert!(p.step(&["get", "other.test/c@v0.2.0"]));
    p.step(&["tidy"]);
    // A local-module.cue that replaces nothing goes.
    p.write("cue.mod/local-module.cue", "deps: \"example.com/dep@v0\": {}\n");
    assert!(!p.step(&["tidy", "--check"]));
    assert!(p.step(&["tidy"]));
    assert!(p.local_module_cue().is_none());
}

#[test]
fn a_module_replaced_by_another_module_is_read_from_it() {
    let w = World::new();
    w.publish_files("example.com/orig@v0", "v0.1.0", &[("o.cue", "package orig\n\nname: \"orig\"\n")]);
    for v in ["v0.1.0", "v0.2.0"] {
        w.publish_files("example.com/target@v0", v, &[("t.cue", "package orig\n\nname: \"target\"\n")]);
    }
    let module_cue = format!("{MAIN}deps: \"example.com/orig@v0\": v: \"v0.1.0\"\n");
    let local = "deps: \"example.com/orig@v0\": replaceWith: \"example.com/target@v0\"\n";
    let mut p = Pair::new(&w, &module_cue, &[("m.cue", "package m\n\nimport \"example.com/orig@v0\"\n\nx: orig.name\n"), ("cue.mod/local-module.cue", local)]);
    assert!(!p.step(&["tidy", "--check"]));
    assert!(p.step(&["tidy"]));
    assert!(p.local_module_cue().is_some_and(|l| l.contains("example.com/target@v0")), "{:?}", p.local_module_cue());
    assert!(p.step(&["tidy", "--check"]));
}

/// cue's own modtidy_local_replace_upgrade: a replacement that names a
/// full version is written back with its major only, and the target is
/// required at the higher version another dependency needs.
#[test]
fn a_replacement_naming_a_full_version_is_written_with_its_major() {
    let w = World::new();
    w.publish_files("example.com/orig@v0", "v0.1.0", &[("lib.cue", "package lib\n\nvalue: \"from orig (should not see this)\"\n")]);
    for v in ["v0.0.1", "v0.0.2"] {
        w.publish_files("example.com/target@v0", v, &[("lib.cue", &format!("package lib\n\nvalue: \"target {v}\"\n"))]);
    }
    w.publish_files("example.com/dep@v0", "v0.1.0", &[("dep.cue", "package dep\n\nimport \"example.com/target@v0:lib\"\n\nvalue: lib.value\n")]);
    let local = "deps: \"example.com/orig@v0\": {\n\tv:       \"v0.1.0\"\n\treplaceWith: \"example.com/target@v0.0.1\"\n}\n";
    let main = "package main\n\nimport (\n\t\"example.com/orig@v0:lib\"\n\t\"example.com/dep@v0:dep\"\n)\n\nfromOrig: lib.value\nfromDep:  dep.value\n";
    let mut p = Pair::new(&w, MAIN, &[("main.cue", main), ("cue.mod/local-module.cue", local)]);
    assert!(p.step(&["tidy"]));
    let written = p.local_module_cue().unwrap_or_default();
    assert!(written.contains("replaceWith: \"example.com/target@v0\"\n"), "{written}");
    assert!(p.step(&["tidy", "--check"]));
}

/// tidy reads only a file's header, as cue does: imports found after a
/// header longer than the first read, inside an import list that crosses
/// it, and before a large body, exactly as cue finds them.
#[test]
fn tidy_finds_imports_past_a_long_header_and_before_a_large_body() {
    let w = World::new();
    for m in ["example.com/a@v0", "example.com/b@v0", "example.com/c@v0"] {
        w.publish(m, "v0.1.0", &[], &[]);
    }
    let padding = "// a long licence header, line after line\n".repeat(2000);
    let a = format!("{padding}package m\n\nimport \"example.com/a@v0\"\n\nxa: a.name\n");
    let b = format!("package m\n\nimport (\n\t\"strings\"\n{padding}\t\"example.com/b@v0\"\n)\n\nxb: b.name + strings.ToUpper(\"x\")\n");
    let body = "\t{name: \"item\", value: \"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\"},\n".repeat(40000);
    let c = format!("package m\n\nimport \"example.com/c@v0\"\n\nxc: c.name\ndata: [\n{body}]\n");
    let mut p = Pair::new(&w, MAIN, &[("a.cue", &a), ("b.cue", &b), ("c.cue", &c)]);
    assert!(p.step(&["tidy"]));
    for m in ["example.com/a@v0", "example.com/b@v0", "example.com/c@v0"] {
        assert!(p.module_cue().contains(m), "{m}: {}", p.module_cue());
    }
}
