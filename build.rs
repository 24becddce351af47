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
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let shim = manifest_dir.join(SHIM_DIR);

    let shim_files = watch_dir(&shim);
    println!("cargo:rerun-if-env-changed=GO");
    embed_catalog(&manifest_dir.join("catalog"), &out_dir);

    // build.rs also reruns when the catalog changes; the archive is rebuilt
    // only when a go-shim file (or the Go command) did.
    let go = env::var("GO").unwrap_or_else(|_| "go".to_string());
    let stamp = out_dir.join("opmshim.stamp");
    let fingerprint = fingerprint(&go, &shim_files);
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(fingerprint.as_str()) {
        build_shim(&go, &shim, &out_dir);
        std::fs::write(&stamp, &fingerprint).expect("writing the shim stamp");
    }

    println!("cargo:rustc-link-search=native={}", out_dir.display());
    println!("cargo:rustc-link-lib=static={ARCHIVE}");
    // The Go runtime inside the archive needs threads and libm. A static
    // build (crt-static) gets both from std's static libc; naming them as
    // dylibs there would make the linker open libm.so and leave dynamic
    // relocations that glibc's static start-up cannot apply.
    let crt_static = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default().split(',').any(|f| f == "crt-static");
    if !crt_static {
        println!("cargo:rustc-link-lib=dylib=pthread");
        println!("cargo:rustc-link-lib=dylib=m");
    }

    println!("cargo:rustc-env=OPM_TARGET={}", env::var("TARGET").unwrap_or_default());
}

/// Builds the c-archive and its Rust bindings into OUT_DIR.
fn build_shim(go: &str, shim: &Path, out_dir: &Path) {
    let archive = out_dir.join(format!("lib{ARCHIVE}.a"));
    let status = Command::new(go)
        .current_dir(shim)
        .args(["build", "-buildmode=c-archive", "-trimpath", "-ldflags=-buildid=", "-tags", "netgo,osusergo", "-o"])
        .arg(&archive)
        .arg(".")
        .env("CGO_ENABLED", "1")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", go_mod_flag(shim))
        .env("GOCACHE", go_cache_dir(out_dir))
        .status()
        .unwrap_or_else(|e| panic!("cannot run `{go}` (the Go toolchain, >= 1.25, is needed to build opm): {e}"));
    assert!(status.success(), "building go-shim with `{go} build -buildmode=c-archive` failed");

    let bindings = bindgen::Builder::default()
        .header(out_dir.join(format!("lib{ARCHIVE}.h")).to_string_lossy())
        .allowlist_function("opm_.*")
        .layout_tests(false)
        .generate()
        .expect("bindgen could not read the go-shim header (is libclang installed?)");
    bindings.write_to_file(out_dir.join("shim_bindings.rs")).expect("writing shim bindings");
}

/// A Go build cache next to cargo's own outputs (target/go-build), so that
/// `cargo clean` clears both and nothing leaks into the user's home.
fn go_cache_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is <target>/<profile>/build/opm-<hash>/out.
    out_dir.ancestors().nth(4).unwrap_or(out_dir).join("go-build")
}

/// Asks cargo to rerun on any change below `dir`; returns its files, sorted.
fn watch_dir(dir: &Path) -> Vec<PathBuf> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())).map(|e| e.expect("reading a directory entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(watch_dir(&path));
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
    files
}

/// Identifies the go-shim sources and the Go command (FNV-1a over both).
fn fingerprint(go: &str, files: &[PathBuf]) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
    };
    feed(go.as_bytes());
    for file in files {
        feed(file.to_string_lossy().as_bytes());
        feed(&std::fs::read(file).expect("reading a go-shim file"));
    }
    format!("{hash:016x}")
}

/// Generates `catalog_files.rs`: every file of the core catalog module as
/// (path relative to the catalog, bytes), for `src/catalog.rs`.
fn embed_catalog(catalog: &Path, out_dir: &Path) {
    let mut code = String::from("pub static FILES: &[(&str, &[u8])] = &[\n");
    for file in watch_dir(catalog) {
        let rel = file.strip_prefix(catalog).expect("below the catalog");
        let rel = rel.to_string_lossy().replace('\\', "/");
        code += &format!("    ({rel:?}, include_bytes!({:?})),\n", file.display().to_string());
    }
    code += "];\n";
    std::fs::write(out_dir.join("catalog_files.rs"), code).expect("writing catalog_files.rs");
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
