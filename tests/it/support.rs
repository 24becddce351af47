//! Shared helpers: running opm and cue, scratch modules.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `opm` binary under test, with a private CUE cache and no registry
/// configuration leaking in from the machine.
pub fn opm(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opm"));
    isolate(&mut cmd, cache);
    cmd
}

/// The real `cue` CLI at the version pinned in go-shim/go.mod. `make test`
/// installs it and sets OPM_TEST_CUE; the tests refuse to pass without it.
pub fn cue(cache: &Path) -> Command {
    let path = std::env::var_os("OPM_TEST_CUE").map(PathBuf::from).unwrap_or_else(|| repo_dir().join("tools/bin/cue"));
    assert!(path.is_file(), "the cue CLI is missing at {}: run `make test`, which installs it", path.display());
    let mut cmd = Command::new(path);
    isolate(&mut cmd, cache);
    cmd
}

/// An empty opm config file (in `dir` when it exists, else in the temp
/// directory): no routing or policy from the machine (a file OPM_CONFIG
/// names must exist).
pub fn empty_config(dir: &Path) -> PathBuf {
    let dir = if dir.is_dir() { dir.to_path_buf() } else { std::env::temp_dir() };
    let config = dir.join("no-opm-config.yaml");
    if !config.exists() {
        let _ = std::fs::write(&config, "");
    }
    config
}

fn isolate(cmd: &mut Command, cache: &Path) {
    let config = empty_config(cache);
    cmd.env("CUE_CACHE_DIR", cache)
        .env("CUE_REGISTRY", "none")
        .env("NO_COLOR", "1")
        // No routing or credentials from the machine: tests set their own.
        .env("OPM_CONFIG", config)
        .env("DOCKER_CONFIG", cache.join("no-docker-config"))
        .env("CUE_CONFIG_DIR", cache.join("no-cue-config"))
        // Which projects use the cache: recorded beside it, per test.
        .env("OPM_STATE_DIR", cache.join("opm-state"))
        // opm's own cache (the result cache), per test too.
        .env("OPM_CACHE_DIR", cache.join("opm-cache"))
        .stdin(std::process::Stdio::null());
}

/// Runs a command and returns its output, never panicking on a non-zero exit.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A temporary module: `files` are (relative path, content) pairs.
pub fn module(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempdir();
    for (path, content) in files {
        write(&dir.path().join(path), content);
    }
    dir
}

pub fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

pub const MODULE_CUE: &str = "module: \"example.com/test@v0\"\nlanguage: version: \"v0.17.0\"\n";

/// Copies a directory tree (tests work on copies, never on the repository).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A scratch directory. Not hidden: CUE skips directories whose names
/// start with a dot, and so would `./...`.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("opm-test-").tempdir().expect("temp dir")
}

/// A publishable module (`source: kind: "self"`) with one package.
pub fn publishable(module: &str, body: &str) -> tempfile::TempDir {
    let pkg = module.split('@').next().unwrap().rsplit('/').next().unwrap().replace('-', "_");
    self::module(&[
        ("cue.mod/module.cue", &format!("module: \"{module}\"\nlanguage: {{\n\tversion: \"v0.17.0\"\n}}\nsource: {{\n\tkind: \"self\"\n}}\n")),
        (&format!("{pkg}.cue"), &format!("package {pkg}\n\n{body}\n")),
    ])
}
