//! The command line a user sees: version, init, vet, help, exit codes.

use crate::support::*;

fn pinned_cue_version() -> String {
    let go_mod = std::fs::read_to_string(repo_dir().join("go-shim/go.mod")).unwrap();
    go_mod
        .lines()
        .find_map(|l| l.trim().trim_start_matches("require ").strip_prefix("cuelang.org/go "))
        .expect("go-shim/go.mod requires cuelang.org/go")
        .trim()
        .to_string()
}

#[test]
fn version_names_the_linked_cue() {
    let cache = tempdir();
    let out = run(opm(cache.path()).arg("version"));
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains(&format!("cuelang.org/go {}", pinned_cue_version())), "{text}");

    let out = run(opm(cache.path()).args(["version", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["cue_version"], pinned_cue_version().as_str());
    assert!(json["go_version"].as_str().unwrap().starts_with("go1."));
    assert_eq!(json["opm"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn init_writes_what_cue_mod_init_writes() {
    let cache = tempdir();
    let ours = tempdir();
    let theirs = tempdir();
    let out = run(opm(cache.path()).args(["mod", "init", "example.com/hello@v0", "--template", "cue"]).current_dir(ours.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(cue(cache.path()).args(["mod", "init", "--source", "self", "example.com/hello@v0"]).current_dir(theirs.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |d: &tempfile::TempDir| std::fs::read_to_string(d.path().join("cue.mod/module.cue")).unwrap();
    assert_eq!(read(&ours), read(&theirs));

    // The starter package is valid for both tools.
    let out = run(opm(cache.path()).args(["mod", "vet", "--concrete"]).current_dir(ours.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(cue(cache.path()).args(["vet", "-c", "./..."]).current_dir(ours.path()));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn init_refuses_an_existing_module_and_changes_nothing() {
    let cache = tempdir();
    let dir = module(&[("cue.mod/module.cue", MODULE_CUE), ("a.cue", "package a\n")]);
    let out = run(opm(cache.path()).args(["mod", "init", "example.com/other@v0"]).current_dir(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("already") && err.lines().count() == 1, "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join("cue.mod/module.cue")).unwrap(), MODULE_CUE);
}

#[test]
fn init_rejects_an_invalid_module_path_with_the_reason() {
    let cache = tempdir();
    let dir = tempdir();
    for bad in ["Example.com/x@v0", "example.com/x@v1.2", "example.com/x y"] {
        let out = run(opm(cache.path()).args(["mod", "init", bad]).current_dir(dir.path()));
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(stderr(&out).contains("invalid module path"), "{}", stderr(&out));
    }
    assert!(!dir.path().join("cue.mod").exists(), "a rejected init wrote files");
}

#[test]
fn vet_accepts_a_valid_module() {
    let cache = tempdir();
    let dir = module(&[
        ("cue.mod/module.cue", MODULE_CUE),
        ("a.cue", "package a\n#S: {n: int & >0}\nv: #S & {n: 3}\n"),
        ("sub/b.cue", "package b\nimport \"example.com/test/sub2\"\nx: sub2.y + 1\n"),
        ("sub2/c.cue", "package sub2\ny: 1\n"),
    ]);
    let out = run(opm(cache.path()).args(["mod", "vet", "--json"]).current_dir(dir.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["packages"].as_array().unwrap().len(), 3);
}

#[test]
fn vet_prints_every_error_with_its_position_and_exits_2() {
    let cache = tempdir();
    let dir = module(&[("cue.mod/module.cue", MODULE_CUE), ("a.cue", "package a\nx: int\nx: \"text\"\n"), ("b.cue", "package a\ny: >=10\ny: 3\n")]);
    let out = run(opm(cache.path()).args(["mod", "vet"]).current_dir(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for pos in ["./a.cue:2:4", "./a.cue:3:4", "./b.cue:2:4", "./b.cue:3:4"] {
        assert!(err.contains(pos), "missing {pos} in:\n{err}");
    }
    assert!(err.contains("2 errors"), "{err}");

    let out = run(opm(cache.path()).args(["mod", "vet", "--json"]).current_dir(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["errors"].as_array().unwrap().len(), 2);
    assert_eq!(json["errors"][0]["positions"][0]["file"], "a.cue");
}

#[test]
fn vet_concrete_rejects_incomplete_values() {
    let cache = tempdir();
    let dir = module(&[("cue.mod/module.cue", MODULE_CUE), ("a.cue", "package a\nport: int\n")]);
    let out = run(opm(cache.path()).args(["mod", "vet"]).current_dir(dir.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(opm(cache.path()).args(["mod", "vet", "--concrete"]).current_dir(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("./a.cue:2:7"), "{}", stderr(&out));
}

#[test]
fn vet_injects_tags() {
    let cache = tempdir();
    let dir = module(&[("cue.mod/module.cue", MODULE_CUE), ("a.cue", "package a\nenv: \"prod\" | \"dev\" @tag(env)\n")]);
    let ok = run(opm(cache.path()).args(["mod", "vet", "-c", "-t", "env=prod"]).current_dir(dir.path()));
    assert!(ok.status.success(), "{}", stderr(&ok));
    let bad = run(opm(cache.path()).args(["mod", "vet", "-t", "env=qa"]).current_dir(dir.path()));
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[test]
fn vet_outside_a_module_says_how_to_create_one() {
    let cache = tempdir();
    let dir = tempdir();
    let out = run(opm(cache.path()).args(["mod", "vet"]).current_dir(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no CUE module") && err.contains("opm mod init"), "{err}");
}

#[test]
fn vet_reports_syntax_errors_without_a_stack_trace() {
    let cache = tempdir();
    let dir = module(&[("cue.mod/module.cue", MODULE_CUE), ("a.cue", "package a\nx: {\n")]);
    let out = run(opm(cache.path()).args(["mod", "vet"]).current_dir(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("./a.cue:"), "{err}");
    assert!(!err.contains("goroutine") && !err.contains("panicked"), "{err}");
}

#[test]
fn vet_reports_an_unreadable_file() {
    let cache = tempdir();
    let dir = module(&[("cue.mod/module.cue", "module: \"example.com/x@v0\"\nlanguage: version: \"v0.17.0\"\nthis is not cue\n")]);
    let out = run(opm(cache.path()).args(["mod", "vet"]).current_dir(dir.path()));
    assert_eq!(out.status.code(), Some(2), "an invalid module.cue is a CUE error");
    let err = stderr(&out);
    assert!(err.contains("module.cue"), "{err}");
    assert!(!err.contains("goroutine"), "{err}");
}

#[test]
fn every_command_has_examples_in_its_help() {
    let cache = tempdir();
    let commands: &[&[&str]] = &[
        &[],
        &["mod"],
        &["mod", "init"],
        &["mod", "vet"],
        &["mod", "build"],
        &["mod", "publish"],
        &["mod", "get"],
        &["mod", "tidy"],
        &["mod", "update"],
        &["bundle"],
        &["bundle", "vet"],
        &["bundle", "build"],
        &["config"],
        &["config", "show"],
        &["version"],
        &["completion"],
    ];
    for cmd in commands {
        let cmd: Vec<&str> = cmd.iter().copied().chain(["--help"]).collect();
        let out = run(opm(cache.path()).args(&cmd));
        assert!(out.status.success(), "{cmd:?}");
        assert!(stdout(&out).contains("Examples:"), "no examples in `opm {}`", cmd.join(" "));
    }
}

#[test]
fn completion_scripts_are_generated() {
    let cache = tempdir();
    for shell in ["bash", "zsh", "fish"] {
        let out = run(opm(cache.path()).args(["completion", shell]));
        assert!(out.status.success());
        assert!(stdout(&out).contains("opm"), "{shell}");
    }
}

#[test]
fn usage_errors_exit_1_not_the_validation_code() {
    let cache = tempdir();
    for args in [&["mod", "frob"][..], &["mod", "vet", "--bogus"], &["mod", "get"], &[]] {
        let out = run(opm(cache.path()).args(args));
        assert_eq!(out.status.code(), Some(1), "opm {}: {}", args.join(" "), stderr(&out));
    }
    let out = run(opm(cache.path()).arg("--version"));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn output_to_a_closed_pipe_or_a_full_disk_is_not_a_crash() {
    let cache = tempdir();
    let full = std::fs::File::create("/dev/full").unwrap();
    let out = run(opm(cache.path()).arg("version").stdout(full));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot write the output") && !stderr(&out).contains("panicked"), "{}", stderr(&out));

    let mut child = opm(cache.path()).args(["completion", "bash"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a reader that went away ends opm quietly: {status}");
}

/// Small things a new user trips over (issue 10, items 2, 3 and 8).
#[test]
fn the_first_hour_small_things() {
    let cache = tempdir();
    let m = module(&[("cue.mod/module.cue", MODULE_CUE), ("a.cue", "package test\n\nx: 1\n")]);
    let opm_m = |args: &[&str]| run(opm(cache.path()).current_dir(m.path()).args(args));

    // `opm build` lives under `opm mod`.
    let out = opm_m(&["build"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("did you mean 'opm mod build'"), "{}", stderr(&out));

    // publish: VERSION is the required one; a second version is no REF.
    let out = opm_m(&["mod", "publish", "--help"]);
    assert!(stdout(&out).contains("opm mod publish [OPTIONS] [REF] <VERSION>"), "{}", stdout(&out));
    let out = opm_m(&["mod", "publish", "v1.6.0", "v1.7.0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("v1.6.0 is a version, not a REF"), "{}", stderr(&out));

    // cue's package pattern.
    let out = opm_m(&["mod", "vet", "./..."]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Not a dependency: a get that can be copied.
    let out = opm_m(&["mod", "update", "example.com/lib@v1"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("opm mod get example.com/lib@vX.Y.Z"), "{}", stderr(&out));

    // A --check finding is a result, not a red error.
    write(&m.path().join("b.cue"), "package test\n\nimport \"example.com/dep@v0\"\n\ny: dep.x\n");
    let out = opm_m(&["mod", "tidy", "--check"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(!stderr(&out).contains("error:"), "{}", stderr(&out));

    // No short flag means two things: -n is build's --namespace only.
    let out = opm_m(&["mod", "publish", "-n", "v0.1.0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // A current directory that was deleted.
    let out = run(std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("mkdir gone && cd gone && rmdir ../gone && {} mod vet", env!("CARGO_BIN_EXE_opm")))
        .current_dir(cache.path()));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("was it deleted?") && !stderr(&out).contains("panicked"), "{}", stderr(&out));

    // Completion instructions that work on a fresh machine.
    let out = opm_m(&["completion", "--help"]);
    assert!(stdout(&out).contains("mkdir -p ~/.local/share/bash-completion/completions"), "{}", stdout(&out));

    // --help into a reader that went away.
    let mut child = opm(cache.path()).arg("--help").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Broken pipe"), "{}", stderr(&out));
}

/// -C, --quiet, --color and --json where scripts read output (issue 10,
/// items 4 and 5, in part).
#[test]
fn conventions_every_command_shares() {
    let cache = tempdir();
    let m = module(&[("cue.mod/module.cue", MODULE_CUE), ("a.cue", "package test\n\nx: 1\n")]);
    let elsewhere = tempdir();
    let out = run(opm(cache.path()).current_dir(elsewhere.path()).arg("-C").arg(m.path()).args(["mod", "vet"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("ok: 1 package valid"), "{}", stderr(&out));
    let out = run(opm(cache.path()).current_dir(m.path()).args(["mod", "vet", "--quiet"]));
    assert!(out.status.success() && stderr(&out).is_empty(), "{}", stderr(&out));
    let out = run(opm(cache.path()).arg("-C").arg(elsewhere.path().join("missing")).arg("version"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot change to directory"), "{}", stderr(&out));

    // Colour only when asked or on a terminal; never with `never`.
    write(&m.path().join("b.cue"), "package test\n\nx: 2\n");
    let out = run(opm(cache.path()).current_dir(m.path()).args(["--color", "always", "mod", "vet"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("\x1b[1;31merror:"), "{}", stderr(&out));
    let out = run(opm(cache.path()).current_dir(m.path()).args(["--color", "never", "mod", "vet"]));
    assert!(!stderr(&out).contains('\x1b'), "{}", stderr(&out));
    std::fs::remove_file(m.path().join("b.cue")).unwrap();

    // JSON for scripts.
    let out = run(opm(cache.path()).current_dir(m.path()).args(["mod", "tidy", "--json"]));
    let tidied: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(tidied["changes"], serde_json::json!([]), "{tidied}");
    let fresh = tempdir();
    let out = run(opm(cache.path()).args(["mod", "init", "example.com/j@v0", "--json", "--dir"]).arg(fresh.path()));
    let created: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        created["module_file"].as_str().unwrap().ends_with("cue.mod/module.cue")
            && std::path::Path::new(created["module_file"].as_str().unwrap()).is_absolute(),
        "{created}"
    );
    let out = run(opm(cache.path()).env_remove("CUE_REGISTRY").args(["config", "show", "--json"]));
    let shown: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["effective"], "registry.cue.works", "{shown}");
    assert_eq!(shown["routes"][0]["prefix"], "*", "{shown}");
}
