//! `opm mod get | update | tidy` as a user sees them: the update story of
//! the spec, exact versions, and faults that must leave nothing changed.

use crate::deps_diff::World;
use crate::support::*;
use std::path::Path;

const MAIN: &str = "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\n";

fn opm_in(w: &World, cache: &Path, dir: &Path, args: &[&str]) -> std::process::Output {
    run(opm(cache).env("CUE_REGISTRY", &w.registry).current_dir(dir).args(args))
}

fn lib_world() -> World {
    let w = World::new();
    w.publish("lib.test/lib@v1", "v1.0.0", &[], &[]);
    w.publish("lib.test/lib@v1", "v1.1.0", &[], &[]);
    w.publish("lib.test/lib@v2", "v2.0.0", &[], &[]);
    w
}

#[test]
fn story_3_update_check_then_update_then_major() {
    let w = lib_world();
    let cache = tempdir();
    let app = module(&[("cue.mod/module.cue", MAIN), ("app.cue", "package app\n\nimport \"lib.test/lib@v1\"\n\nuses: lib.name\n")]);
    let opm = |args: &[&str]| opm_in(&w, cache.path(), app.path(), args);

    let out = opm(&["mod", "get", "lib.test/lib@v1.0.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(opm(&["mod", "vet", "--offline"]).status.success(), "the dependency is importable offline");

    let out = opm(&["mod", "update", "--check"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.contains("lib.test/lib@v1  v1.0.0") && table.contains("-> v1.1.0") && table.contains("minor"), "{table}");
    assert!(!stdout(&out).contains("v2.0.0"), "majors only with --major");

    let out = opm(&["mod", "update", "--check", "--json"]);
    let updates: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(updates[0]["available"], "v1.1.0");

    // No terminal and no --yes: refused, nothing changed.
    let before = std::fs::read(app.path().join("cue.mod/module.cue")).unwrap();
    let out = opm(&["mod", "update"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(std::fs::read(app.path().join("cue.mod/module.cue")).unwrap(), before);

    // --major offers the newest of the major in use and the new major.
    let out = opm(&["mod", "update", "--check", "--major"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(stdout(&out).contains("v1.1.0") && stdout(&out).contains("v2.0.0"), "{}", stdout(&out));
    let out = opm(&["mod", "update", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let module_cue = std::fs::read_to_string(app.path().join("cue.mod/module.cue")).unwrap();
    assert!(module_cue.contains("v1.1.0"), "{module_cue}");
    assert!(cache.path().join("mod/extract/lib.test/lib@v1.1.0").is_dir());
    assert!(opm(&["mod", "update", "--check"]).status.success());

    // --major: v2.0.0, and the file importing @v1 is named and rewritten.
    let out = opm(&["mod", "update", "--check", "--major"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(stdout(&out).contains("v2.0.0") && stdout(&out).contains("major"), "{}", stdout(&out));
    let out = opm(&["mod", "update", "--major", "--yes", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("app.cue imports lib.test/lib@v1"), "{}", stderr(&out));
    let done: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(done["applied"][0]["available"], "v2.0.0", "{done}");
    assert_eq!((done["rewrites"][0]["from"].as_str(), done["rewrites"][0]["to"].as_str()), (Some("lib.test/lib@v1"), Some("lib.test/lib@v2")), "{done}");
    let source = std::fs::read_to_string(app.path().join("app.cue")).unwrap();
    assert!(source.contains("\"lib.test/lib@v2\""), "{source}");
    let module_cue = std::fs::read_to_string(app.path().join("cue.mod/module.cue")).unwrap();
    assert!(module_cue.contains("\"lib.test/lib@v2\"") && !module_cue.contains("lib.test/lib@v1"), "{module_cue}");
    assert!(opm(&["mod", "vet"]).status.success());
    assert!(opm(&["mod", "tidy", "--check"]).status.success());
}

#[test]
fn get_needs_an_exact_version_and_lists_the_newest() {
    let w = lib_world();
    let cache = tempdir();
    let app = module(&[("cue.mod/module.cue", MAIN), ("app.cue", "package app\n")]);
    for arg in ["lib.test/lib", "lib.test/lib@latest", "lib.test/lib@v1", "lib.test/lib@v1.1"] {
        let out = opm_in(&w, cache.path(), app.path(), &["mod", "get", arg]);
        assert_eq!(out.status.code(), Some(1), "{arg}");
        let err = stderr(&out);
        assert!(err.contains("exact version") && err.contains("lib.test/lib@v1.1.0"), "{arg}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(std::fs::read_to_string(app.path().join("cue.mod/module.cue")).unwrap(), MAIN);
}

#[test]
fn faults_leave_module_cue_and_the_cache_as_they_were() {
    let w = lib_world();
    let cache = tempdir();
    let app = module(&[("cue.mod/module.cue", MAIN), ("app.cue", "package app\n")]);
    let module_cue = || std::fs::read(app.path().join("cue.mod/module.cue")).unwrap();
    let before = module_cue();

    // A version that does not exist: exit 5, nothing written.
    let out = opm_in(&w, cache.path(), app.path(), &["mod", "get", "lib.test/lib@v1.9.0"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(module_cue(), before);

    // The registry is down: exit 3, nothing written.
    let down = format!("127.0.0.1:{}+insecure", crate::registry_server::free_port());
    let out = run(opm(cache.path()).env("CUE_REGISTRY", &down).current_dir(app.path()).args(["mod", "get", "lib.test/lib@v1.0.0"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(module_cue(), before);
    assert!(!cache.path().join("mod/extract/lib.test").exists());

    // An invalid module.cue: a clear error, the file untouched.
    let broken = "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\ndeps: 5\n";
    std::fs::write(app.path().join("cue.mod/module.cue"), broken).unwrap();
    let out = opm_in(&w, cache.path(), app.path(), &["mod", "get", "lib.test/lib@v1.0.0"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("module.cue"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(app.path().join("cue.mod/module.cue")).unwrap(), broken);
}

/// Ctrl-C at any moment of a download: module.cue is the old or the new
/// one, never a mix, and every cache entry cue would use is complete.
#[test]
fn interrupting_a_get_leaves_no_partial_state() {
    let w = World::new();
    // A module big enough that the download takes a while.
    let big = format!("package big\n\nname: \"big\"\nblob: \"{}\"\n", "x".repeat(8 << 20));
    w.publish_files("big.test/big@v0", "v0.1.0", &[("big.cue", &big)]);
    for delay_ms in [5u64, 20, 40, 80, 160] {
        let cache = tempdir();
        let app = module(&[("cue.mod/module.cue", MAIN), ("app.cue", "package app\n")]);
        let mut child = opm(cache.path())
            .env("CUE_REGISTRY", &w.registry)
            .current_dir(app.path())
            .args(["mod", "get", "big.test/big@v0.1.0"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // SAFETY: signalling a child process we started.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let _ = child.wait();
        let text = std::fs::read_to_string(app.path().join("cue.mod/module.cue")).unwrap();
        assert!(text == MAIN || text.contains("big.test/big@v0"), "module.cue half-written: {text}");
        let extract = cache.path().join("mod/extract/big.test/big@v0.1.0");
        if extract.exists() {
            let download = cache.path().join("mod/download/big.test/big/@v");
            assert!(download.join("v0.1.0.zip").is_file() && download.join("v0.1.0.mod").is_file(), "a partial cache entry");
        }
        // And the next run completes.
        let out = opm_in(&w, cache.path(), app.path(), &["mod", "get", "big.test/big@v0.1.0"]);
        assert!(out.status.success(), "after an interruption at {delay_ms} ms: {}", stderr(&out));
        assert!(opm_in(&w, cache.path(), app.path(), &["mod", "vet", "--offline"]).status.success());
    }
}

#[test]
fn tidy_check_says_what_is_missing_and_tidy_removes_unused_versions_from_the_cache() {
    let w = lib_world();
    let cache = tempdir();
    let app = module(&[("cue.mod/module.cue", MAIN), ("app.cue", "package app\n\nimport \"lib.test/lib@v1\"\n\nx: lib.name\n")]);
    let out = opm_in(&w, cache.path(), app.path(), &["mod", "tidy", "--check"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("lib.test/lib@v1"), "{}", stderr(&out));
    assert!(opm_in(&w, cache.path(), app.path(), &["mod", "tidy"]).status.success());
    assert!(cache.path().join("mod/extract/lib.test/lib@v1.1.0").is_dir());

    std::fs::write(app.path().join("app.cue"), "package app\n").unwrap();
    let out = opm_in(&w, cache.path(), app.path(), &["mod", "tidy"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("remove lib.test/lib@v1.1.0"), "{}", stderr(&out));
    assert!(!cache.path().join("mod/extract/lib.test/lib@v1.1.0").exists());
    assert!(!cache.path().join("mod/download/lib.test/lib/@v/v1.1.0.zip").exists());
}

/// Runs argv on a pseudo-terminal, typing `answer` and Enter at the first
/// question (`[y/N]`) or password prompt.
pub(crate) const ON_PTY: &str = r#"
import os, pty, sys, time, select
answer, argv = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out, asked, deadline = b"", False, time.time() + 60
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.5)
    if r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        if not asked and (b"[y/N]" in out or b"password for" in out):
            # As a person would: after the prompt, once echo is off.
            time.sleep(0.5)
            os.write(fd, answer.encode() + b"\n")
            asked = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

/// The confirmation on a real terminal (a pseudo-terminal): a whole line
/// is read, `yes` applies, `no` changes nothing; --json never asks.
#[test]
fn update_asks_on_a_terminal_and_reads_a_whole_line() {
    let w = lib_world();
    let cache = tempdir();
    let app = module(&[("cue.mod/module.cue", MAIN), ("app.cue", "package app\n\nimport \"lib.test/lib@v1\"\n\nuses: lib.name\n")]);
    assert!(opm_in(&w, cache.path(), app.path(), &["mod", "get", "lib.test/lib@v1.0.0"]).status.success());

    let ask = |answer: &str| {
        run(std::process::Command::new("python3")
            .arg("-c")
            .arg(ON_PTY)
            .arg(answer)
            .arg(env!("CARGO_BIN_EXE_opm"))
            .args(["mod", "update"])
            .current_dir(app.path())
            .env("CUE_CACHE_DIR", cache.path())
            .env("CUE_REGISTRY", &w.registry)
            .env("OPM_STATE_DIR", cache.path().join("opm-state"))
            .env("OPM_CONFIG", empty_config(cache.path()))
            .env("NO_COLOR", "1"))
    };
    let out = ask("no");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("checking for newer releases"), "a spinner on the terminal: {}", stdout(&out));
    assert!(stdout(&out).contains("lib.test/lib@v1") && stdout(&out).contains("nothing changed"), "{}", stdout(&out));
    assert!(std::fs::read_to_string(app.path().join("cue.mod/module.cue")).unwrap().contains("v1.0.0"));
    let out = ask("yes");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("updated lib.test/lib@v1 v1.0.0 -> v1.1.0"), "{}", stdout(&out));
    assert!(std::fs::read_to_string(app.path().join("cue.mod/module.cue")).unwrap().contains("v1.1.0"));

    // --json reports and never asks (no terminal needed, nothing applied).
    let out = opm_in(&w, cache.path(), app.path(), &["mod", "update", "--json", "--major"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(serde_json::from_str::<serde_json::Value>(&stdout(&out)).is_ok());
    // And a failure with --json is JSON too.
    let out = opm_in(&w, cache.path(), &app.path().join("cue.mod"), &["mod", "tidy", "--json"]);
    let error: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!((error["error"]["exit"].as_u64(), error["error"]["kind"].as_str()), (Some(1), Some("error")), "{error}");
}

/// --verbose: every registry request and where credentials come from.
#[test]
fn verbose_shows_requests_and_credential_sources() {
    let w = lib_world();
    let cache = tempdir();
    let app = module(&[("cue.mod/module.cue", MAIN), ("app.cue", "package app\n\nimport \"lib.test/lib@v1\"\n\nuses: lib.name\n")]);
    let out = opm_in(&w, cache.path(), app.path(), &["mod", "get", "-v", "lib.test/lib@v1.0.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("opm: credentials for 127.0.0.1:") && err.contains("anonymous"), "{err}");
    assert!(err.contains("GET manifests/v1.0.0 127.0.0.1:") && err.contains("-> ok in"), "{err}");
    let out = opm_in(&w, cache.path(), app.path(), &["mod", "get", "--json", "lib.test/lib@v1.1.0"]);
    let changed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(changed["changes"][0], serde_json::json!({"change": "upgrade", "module": "lib.test/lib@v1", "from": "v1.0.0", "to": "v1.1.0"}), "{changed}");
    let out = opm_in(&w, cache.path(), app.path(), &["mod", "tidy", "--quiet"]);
    assert!(out.status.success() && stderr(&out).is_empty(), "{}", stderr(&out));
}

/// Progress on a terminal, in bytes, for downloads and uploads.
#[test]
fn progress_counts_bytes_on_a_terminal() {
    let w = World::new();
    let big = format!("package big\n\nname: \"big\"\nblob: \"{}\"\n", "x".repeat(6 << 20));
    w.publish_files("big.test/big@v0", "v0.1.0", &[("big.cue", &big)]);
    let cache = tempdir();
    let app = module(&[("cue.mod/module.cue", MAIN), ("app.cue", "package app\n")]);
    let on_pty = |dir: &std::path::Path, args: &[&str]| {
        run(std::process::Command::new("python3")
            .arg("-c")
            .arg(ON_PTY)
            .arg("")
            .arg(env!("CARGO_BIN_EXE_opm"))
            .args(args)
            .current_dir(dir)
            .env("CUE_CACHE_DIR", cache.path())
            .env("CUE_REGISTRY", &w.registry)
            .env("OPM_STATE_DIR", cache.path().join("opm-state"))
            .env("OPM_CONFIG", empty_config(cache.path())))
    };
    let out = on_pty(app.path(), &["mod", "get", "big.test/big@v0.1.0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("downloading 1 module version [") && stdout(&out).contains(" KiB/"), "{}", stdout(&out));
    let lib = publishable("big.test/up@v0", &format!("blob: \"{}\"", "y".repeat(6 << 20)));
    let out = on_pty(lib.path(), &["mod", "publish", "v0.1.0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("publishing [") && stdout(&out).contains(" KiB/"), "{}", stdout(&out));
}
