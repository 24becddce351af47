//! The README's shell examples run as written (issue 10, item 9): the
//! Quickstart's blocks in order, in an empty HOME, against a registry on
//! loopback standing in for registry.example.com. A README that drifts
//! from opm fails here.

use crate::registry_server::TestRegistry;
use crate::support::*;

/// The ```sh blocks of README.md after `## Quickstart`, in order.
fn quickstart_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_dir().join("README.md")).unwrap();
    let quickstart = &readme[readme.find("## Quickstart").expect("README has a Quickstart")..];
    let quickstart = &quickstart[..quickstart[3..].find("\n## ").map_or(quickstart.len(), |i| i + 3)];
    let mut blocks = Vec::new();
    let mut rest = quickstart;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").expect("a closed code block");
        blocks.push(body[..end].to_string());
        rest = &body[end + 3..];
    }
    blocks
}

#[test]
fn the_quickstart_runs_as_written() {
    let blocks = quickstart_blocks();
    assert_eq!(blocks.len(), 3, "build, publish, consume: {blocks:?}");
    let reg = TestRegistry::start();
    let home = tempdir();
    let work = tempdir();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_opm")).parent().unwrap().to_path_buf();
    let mut script = String::from("set -euo pipefail\n");
    for block in &blocks {
        for line in block.lines() {
            // The build is this test's own; PATH points at its binary.
            if line.starts_with("make build") {
                continue;
            }
            script += &line.replace("registry.example.com/modules", &reg.host);
            script.push('\n');
        }
    }
    let out = run(std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", home.path())
        .env("CUE_CACHE_DIR", home.path().join("cache"))
        .env("OPM_STATE_DIR", home.path().join("state"))
        .env("NO_COLOR", "1"));
    assert!(out.status.success(), "the README's Quickstart failed:\n{script}\n--- stdout\n{}\n--- stderr\n{}", stdout(&out), stderr(&out));
    let site = std::fs::read_to_string(work.path().join("site/cue.mod/module.cue")).unwrap();
    assert!(site.contains("example.com/shop@v0") && site.contains("v0.1.0"), "{site}");
}
