//! Builds go-shim (cuelang.org/go behind a tiny C ABI) into a static archive
//! and generates the Rust declarations for its header with bindgen.
//!
//! The archive is rebuilt only when a go-shim file changes. The Go build is
//! byte-reproducible: -trimpath, an empty build id, a local toolchain only,
//! and a build cache kept under cargo's target directory.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const SHIM_DIR: &str = "go-shim";
const ARCHIVE: &str = "opmshim";

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let shim = manifest_dir.join(SHIM_DIR);

    watch_dir(&shim);
    println!("cargo:rerun-if-env-changed=GO");

    let go = env::var("GO").unwrap_or_else(|_| "go".to_string());
    let archive = out_dir.join(format!("lib{ARCHIVE}.a"));
    let status = Command::new(&go)
        .current_dir(&shim)
        .args([
            "build",
            "-buildmode=c-archive",
            "-trimpath",
            "-ldflags=-buildid=",
            "-tags",
            "netgo,osusergo",
            "-o",
        ])
        .arg(&archive)
        .arg(".")
        .env("CGO_ENABLED", "1")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", go_mod_flag(&shim))
        .env("GOCACHE", go_cache_dir(&out_dir))
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run `{go}` (the Go toolchain, >= 1.25, is needed to build opm): {e}")
        });
    assert!(
        status.success(),
        "building go-shim with `{go} build -buildmode=c-archive` failed"
    );

    let bindings = bindgen::Builder::default()
        .header(out_dir.join(format!("lib{ARCHIVE}.h")).to_string_lossy())
        .allowlist_function("opm_.*")
        .layout_tests(false)
        .generate()
        .expect("bindgen could not read the go-shim header (is libclang installed?)");
    bindings
        .write_to_file(out_dir.join("shim_bindings.rs"))
        .expect("writing shim bindings");

    println!("cargo:rustc-link-search=native={}", out_dir.display());
    println!("cargo:rustc-link-lib=static={ARCHIVE}");
    // The Go runtime inside the archive needs threads and, on some libcs, libm.
    println!("cargo:rustc-link-lib=dylib=pthread");
    println!("cargo:rustc-link-lib=dylib=m");

    // `opm version` reports the pinned cuelang.org/go; read it from go.mod too,
    // so a test can check that the archive embeds exactly the pinned version.
    let go_mod = std::fs::read_to_string(shim.join("go.mod")).expect("reading go-shim/go.mod");
    let pinned = go_mod
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("require cuelang.org/go ")
                .or_else(|| l.trim().strip_prefix("cuelang.org/go "))
        })
        .map(|v| v.split_whitespace().next().unwrap_or(v).to_string())
        .expect("go-shim/go.mod must require cuelang.org/go");
    println!("cargo:rustc-env=OPM_PINNED_CUE_VERSION={pinned}");
    println!(
        "cargo:rustc-env=OPM_TARGET={}",
        env::var("TARGET").unwrap_or_default()
    );
}

/// A Go build cache next to cargo's own outputs (target/go-build), so that
/// `cargo clean` clears both and nothing leaks into the user's home.
fn go_cache_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is <target>/<profile>/build/opm-<hash>/out.
    out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(out_dir)
        .join("go-build")
}

fn watch_dir(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in std::fs::read_dir(dir).expect("reading go-shim") {
        let path = entry.expect("reading go-shim entry").path();
        if path.is_dir() {
            watch_dir(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// `-mod=vendor` when go-shim/vendor exists (offline builds such as Nix's),
/// else `-mod=readonly`: go.mod and go.sum are never rewritten by a build.
fn go_mod_flag(shim: &Path) -> &'static str {
    if shim.join("vendor/modules.txt").is_file() {
        "-mod=vendor"
    } else {
        "-mod=readonly"
    }
}
