//! The result cache (issue 26): an evaluation whose inputs are unchanged
//! answers as before without evaluating; a change of any input kind
//! evaluates again and gives the right answer (the one `--no-cache`
//! gives); dependencies are still checked on every answer.

use crate::deps_diff::World;
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Output;

const ANSWERED: &str = "answered from the result cache";

/// Runs opm with `-v` and says whether the answer came from the result
/// cache.
fn ask(cmd: &mut std::process::Command) -> (Output, bool) {
    let out = run(cmd.arg("-v"));
    let cached = stderr(&out).contains(ANSWERED);
    (out, cached)
}

/// What a user compares: exit code, stdout, and stderr without the
/// verbose lines (which say where the answer came from).
fn answer(out: &Output) -> (Option<i32>, String, String) {
    let err: Vec<String> = stderr(out).lines().filter(|l| !l.starts_with("opm: ")).map(str::to_string).collect();
    (out.status.code(), stdout(out), err.join("\n"))
}

/// The catalog and the examples, copied so that blog's replacement of the
/// core model by ../../catalog resolves.
fn examples() -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    for part in ["catalog", "examples"] {
        copy_tree(&repo_dir().join(part), &dir.path().join(part));
    }
    let blog = dir.path().join("examples/blog");
    (dir, blog)
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_build_answers_from_the_result_cache_until_an_input_changes() {
    let (dir, blog) = examples();
    let cache = tempdir();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "web:\n  replicas: 3\n").unwrap();
    let build = |args: &[&str]| {
        let mut cmd = opm(cache.path());
        cmd.current_dir(&blog).args(["mod", "build"]).args(args);
        cmd
    };
    let keys = || std::fs::read_dir(cache.path().join("opm-cache/results/keys")).map(|d| d.count()).unwrap_or(0);

    // The first build evaluates and keeps its answer; the second answers
    // from it, byte for byte.
    let (first, cached) = ask(&mut build(&[]));
    assert!(first.status.success() && !cached, "{}", stderr(&first));
    let (second, cached) = ask(&mut build(&[]));
    assert!(cached, "{}", stderr(&second));
    assert_eq!(answer(&second), answer(&first));
    // --no-cache evaluates, and keeps nothing new.
    let before = keys();
    let (fresh, cached) = ask(&mut build(&["--no-cache"]));
    assert!(!cached && keys() == before);
    assert_eq!(answer(&fresh), answer(&first));

    // Each kind of input, changed in turn: the next build evaluates again
    // and answers as --no-cache does; the one after answers from the cache.
    let values_arg = values.to_str().unwrap();
    let opm_copy = tempdir();
    std::fs::copy(env!("CARGO_BIN_EXE_opm"), opm_copy.path().join("opm")).unwrap();
    type Change<'a> = (&'a str, Box<dyn Fn() + 'a>, Vec<&'a str>, Option<PathBuf>);
    let changes: Vec<Change> = vec![
        ("a flag (-n)", Box::new(|| {}), vec!["-n", "shop"], None),
        ("a flag (--name)", Box::new(|| {}), vec!["--name", "journal"], None),
        ("a flag (-o)", Box::new(|| {}), vec!["-o", "json"], None),
        ("a values file", Box::new(|| {}), vec!["-f", values_arg], None),
        ("the values file's content", Box::new(|| std::fs::write(&values, "web:\n  replicas: 4\n").unwrap()), vec!["-f", values_arg], None),
        ("a CUE file of the package", Box::new(|| edit(&blog.join("blog.cue"), "*\"info\"", "*\"debug\"")), vec![], None),
        ("a new CUE file", Box::new(|| write(&blog.join("notes/notes.cue"), "package notes\n\nx: 1\n")), vec![], None),
        ("module.cue", Box::new(|| edit(&blog.join("cue.mod/module.cue"), "source:", "// a comment\nsource:")), vec![], None),
        (
            "the replacement directory",
            Box::new(|| edit(&dir.path().join("catalog/module.cue"), "package core\n", "package core\n\n#Unused: 1\n")),
            vec![],
            None,
        ),
        ("an OPM_ variable", Box::new(|| {}), vec![], None),
        ("the opm binary", Box::new(|| {}), vec![], Some(opm_copy.path().join("opm"))),
    ];
    for (what, change, args, binary) in &changes {
        change();
        let with = |extra: &[&str]| {
            let mut cmd = build(args);
            cmd.args(extra);
            if *what == "an OPM_ variable" {
                cmd.env("OPM_SOMETHING", "1");
            }
            if let Some(binary) = binary {
                let mut other = std::process::Command::new(binary);
                other.args(cmd.get_args()).current_dir(&blog);
                for (k, v) in cmd.get_envs() {
                    match v {
                        Some(v) => other.env(k, v),
                        None => other.env_remove(k),
                    };
                }
                return other;
            }
            cmd
        };
        let (out, cached) = ask(&mut with(&[]));
        assert!(out.status.success() && !cached, "{what}: evaluated again: {}", stderr(&out));
        let (expected, _) = ask(&mut with(&["--no-cache"]));
        assert_eq!(answer(&out), answer(&expected), "{what}: the right answer");
        let (again, cached) = ask(&mut with(&[]));
        assert!(cached, "{what}: then answered from the cache");
        assert_eq!(answer(&again), answer(&expected), "{what}");
    }
    // The answers differ where the inputs say they must.
    let (out, _) = ask(&mut build(&["-f", values_arg]));
    assert!(stdout(&out).contains("replicas: 4") && !stdout(&out).contains("replicas: 3"), "{}", stdout(&out));
    assert!(stdout(&out).contains("debug") && !stdout(&first).contains("debug"), "{}", stdout(&out));

    // An invalid release is an answer too: the same errors and exit code.
    std::fs::write(&values, "web:\n  replicas: 0\n").unwrap();
    let (bad, cached) = ask(&mut build(&["-f", values_arg]));
    assert!(bad.status.code() == Some(2) && !cached, "{}", stderr(&bad));
    let (again, cached) = ask(&mut build(&["-f", values_arg]));
    assert!(cached, "{}", stderr(&again));
    assert_eq!(answer(&again), answer(&bad));
    assert!(stderr(&again).contains("replicas"), "{}", stderr(&again));

    // gc removes answers not used for as long; clean removes them all.
    let out = run(opm(cache.path()).args(["cache", "gc", "--older-than", "0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("of the result cache"), "{}", stderr(&out));
    assert_eq!(keys(), 0);
    assert_eq!(std::fs::read_dir(cache.path().join("opm-cache/results/blobs/sha256")).unwrap().count(), 0, "no blob left unnamed");
    let (_, cached) = ask(&mut build(&[]));
    assert!(!cached);
    let out = run(opm(cache.path()).args(["cache", "clean", "--yes"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!cache.path().join("opm-cache/results").exists());
}

const APP_MODULE: &str = "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\nsource: kind: \"self\"\n";

#[test]
fn a_vet_answers_from_the_result_cache_with_its_dependencies_still_checked() {
    let w = World::new();
    w.publish_files("example.com/lib@v0", "v0.1.0", &[("lib.cue", "package lib\n\nname: \"first\"\n")]);
    w.publish_files("example.com/lib@v0", "v0.2.0", &[("lib.cue", "package lib\n\nname: \"second\"\n")]);
    let cache = tempdir();
    let app = module(&[
        ("cue.mod/module.cue", APP_MODULE),
        (
            "app.cue",
            "@extern(embed)\n\npackage app\n\nimport \"example.com/lib@v0\"\n\nx: lib.name & \"first\"\nenv: \"dev\" | \"prod\" @tag(env)\ndata: _ @embed(file=\"data.json\")\ndata: a: 1\n",
        ),
        ("data.json", "{\"a\": 1}\n"),
    ]);
    let vet = |args: &[&str]| {
        let mut cmd = opm(cache.path());
        cmd.env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(["mod", "vet"]).args(args);
        ask(&mut cmd)
    };
    let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(["mod", "get", "example.com/lib@v0.1.0"]));
    assert!(out.status.success(), "{}", stderr(&out));

    let (first, cached) = vet(&[]);
    assert!(first.status.success() && !cached, "{}", stderr(&first));
    let (_, cached) = vet(&[]);
    assert!(cached);

    // Flags: a tag and --concrete.
    let (out, cached) = vet(&["-t", "env=qa"]);
    assert!(out.status.code() == Some(2) && !cached, "{}", stderr(&out));
    let (again, cached) = vet(&["-t", "env=qa"]);
    assert!(cached && answer(&again) == answer(&out));
    let (out, cached) = vet(&["--concrete"]);
    assert!(!cached && out.status.code() == Some(2), "env is not concrete: {}", stderr(&out));

    // A file the package embeds.
    std::fs::write(app.path().join("data.json"), "{\"a\": 2}\n").unwrap();
    let (out, cached) = vet(&[]);
    assert!(out.status.code() == Some(2) && !cached, "{}", stderr(&out));
    std::fs::write(app.path().join("data.json"), "{\"a\": 1}\n").unwrap();
    let (_, cached) = vet(&[]);
    assert!(cached, "the first answer again");

    // A dependency's version (module.cue and opm.sum): lib's name changes.
    let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(["mod", "get", "example.com/lib@v0.2.0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, cached) = vet(&[]);
    assert!(out.status.code() == Some(2) && !cached, "{}", stderr(&out));
    assert!(stderr(&out).contains("\"second\""), "{}", stderr(&out));
    let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(["mod", "get", "example.com/lib@v0.1.0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, cached) = vet(&[]);
    assert!(cached);

    // An answer still checks the dependencies: a tampered zip is refused
    // (exit 7) though the answer is kept.
    let zip = cache.path().join("mod/download/example.com/lib/@v/v0.1.0.zip");
    let mut bytes = std::fs::read(&zip).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&zip, bytes).unwrap();
    let (out, _) = vet(&[]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // Without opm.sum pinning every dependency nothing is kept.
    let bare = module(&[("cue.mod/module.cue", APP_MODULE), ("app.cue", "package app\n\nimport \"example.com/lib@v0\"\n\nx: lib.name\n")]);
    let fresh = tempdir();
    let vet_bare = || {
        let mut cmd = opm(fresh.path());
        cmd.env("CUE_REGISTRY", &w.registry).current_dir(bare.path()).args(["mod", "vet"]);
        ask(&mut cmd)
    };
    assert!(run(opm(fresh.path()).env("CUE_REGISTRY", &w.registry).current_dir(bare.path()).args(["mod", "tidy"])).status.success());
    std::fs::remove_file(bare.path().join("cue.mod/opm.sum")).unwrap();
    for _ in 0..2 {
        let (out, cached) = vet_bare();
        assert!(out.status.success() && !cached, "{}", stderr(&out));
    }
}

/// CUE's parse of a cached module file is remembered by digest; a memo
/// that is damaged or declares another module is not believed.
#[test]
fn a_remembered_module_file_parse_that_lies_is_parsed_again() {
    let w = World::new();
    w.publish("example.com/lib@v0", "v0.1.0", &[], &[]);
    w.publish("example.com/top@v0", "v0.1.0", &[("example.com/lib@v0", "v0.1.0")], &["example.com/lib@v0"]);
    let cache = tempdir();
    let app = module(&[("cue.mod/module.cue", APP_MODULE), ("app.cue", "package app\n\nimport \"example.com/top@v0\"\n\nx: top.name\n")]);
    let get = || run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(["mod", "get", "example.com/top@v0.1.0"]));
    let out = get();
    assert!(out.status.success(), "{}", stderr(&out));
    let module_cue = std::fs::read_to_string(app.path().join("cue.mod/module.cue")).unwrap();
    let out = get();
    assert!(out.status.success(), "{}", stderr(&out));
    let memos: Vec<PathBuf> = std::fs::read_dir(cache.path().join("opm-cache/modfiles")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!memos.is_empty());
    // Damaged, then claiming another module with no dependencies: the
    // files are parsed again and the graph is the same.
    for memo in ["not json", r#"{"module":"evil.test/x@v0","language":{"version":"v0.17.0"}}"#] {
        for path in &memos {
            std::fs::write(path, memo).unwrap();
        }
        std::fs::write(app.path().join("cue.mod/module.cue"), APP_MODULE).unwrap();
        let out = get();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(std::fs::read_to_string(app.path().join("cue.mod/module.cue")).unwrap(), module_cue);
    }
}
