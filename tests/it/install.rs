//! Packaging (issue 23): `make install DESTDIR=...` puts what a
//! distribution package needs where packagers expect it.

use crate::support::*;
use std::process::Command;

#[test]
fn make_install_lays_out_binary_manual_completions_and_licences() {
    let dest = tempdir();
    let out = run(Command::new("make").current_dir(repo_dir()).arg("install").arg(format!("DESTDIR={}", dest.path().display())).arg("PREFIX=/usr/local"));
    assert!(out.status.success(), "make install: {}{}", stdout(&out), stderr(&out));
    let root = dest.path().join("usr/local");

    let installed = root.join("bin/opm");
    let out = run(Command::new(&installed).args(["version", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("cuelang.org/go") || stdout(&out).contains("cue_version"), "{}", stdout(&out));

    // A page for every command, readable by man.
    let pages = root.join("share/man/man1");
    for page in ["opm.1", "opm-mod.1", "opm-mod-get.1", "opm-mod-publish.1", "opm-bundle-build.1", "opm-cache-gc.1", "opm-registry-check.1"] {
        assert!(pages.join(page).is_file(), "{page} installed");
    }
    let out = run(Command::new("man").arg("-l").arg(pages.join("opm-mod-get.1")).env("MANPAGER", "cat").env("MANWIDTH", "80"));
    assert!(out.status.success(), "man -l: {}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains("NAME") && page.contains("opm-mod-get") && page.contains("--force"), "{page}");

    for (file, marker) in [
        ("share/bash-completion/completions/opm", "complete"),
        ("share/zsh/site-functions/_opm", "#compdef opm"),
        ("share/fish/vendor_completions.d/opm.fish", "complete -c opm"),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(text.contains(marker), "{file}");
    }
    let licence = std::fs::read_to_string(root.join("share/licenses/opm/LICENSE")).unwrap();
    assert!(licence.contains("Apache License") && licence.contains("Version 2.0"));
    // The notices name what the static binary links, Rust and Go.
    let notices = std::fs::read_to_string(root.join("share/licenses/opm/THIRD-PARTY-NOTICES")).unwrap();
    for linked in ["\ntokio ", "\nreqwest ", "\naws-lc-sys ", "\ncuelang.org/go v0.17.1", "\nGo runtime and standard library"] {
        assert!(notices.contains(linked), "the notices name{linked:?}");
    }
    assert!(!notices.contains("\nbindgen ") && !notices.contains("\nclap_derive "), "build-time tools are not linked");
}
