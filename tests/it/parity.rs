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
    let mut p = Pair::new(&w, &format!("{MAIN}deps: \"other.test/x@v0\": v: \"v0.1.0\"\n"), &[("m.cue", "package m\n\nimport \"other.test/x\"\n\ny: x.name\n")])
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
