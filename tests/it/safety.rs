//! Never break a user's build or another project's cache (issue 9): an
//! update is kept only when the release still renders; a dependency whose
//! registry is down gets its own row; tidy and gc keep what other projects
//! use; `opm cache` lists, verifies and collects.

use crate::deps_diff::World;
use crate::support::*;
use std::path::Path;

/// A provider whose defaults a consumer's release renders with.
pub fn lib_at(w: &World, version: &str, defaults: &str) {
    w.publish_files("example.com/lib@v1", version, &[("lib.cue", &format!("package lib\n\n#Defaults: {defaults}\n"))]);
}

/// An OPM module whose one component takes its image and replicas from
/// example.com/lib's defaults.
pub fn consumer(w: &World, cache: &Path) -> tempfile::TempDir {
    let app = tempdir();
    let out = run(opm(cache).env("CUE_REGISTRY", &w.registry).args(["mod", "init", "example.com/app@v0", "--dir"]).arg(app.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(app.path().join("app.cue")).unwrap();
    write(
        &app.path().join("app.cue"),
        r#"package app

import (
	"opmodel.dev/core@v0"
	"example.com/lib@v1"
)

module: core.#Module & {
	metadata: {
		apiVersion: "example.com/app@v0"
		name:       "app"
		version:    "0.1.0"
	}
	#config: {
		image:    string | *lib.#Defaults.image
		replicas: int & >=1 | *lib.#Defaults.replicas
	}
	values: #config
	#components: web: core.#Container & core.#Replicas & {
		spec: {
			container: {
				image: values.image
				ports: http: port: 80
			}
			replicas: values.replicas
		}
	}
}
"#,
    );
    let out = run(opm(cache).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(["mod", "get", "example.com/lib@v1.0.0"]));
    assert!(out.status.success(), "{}", stderr(&out));
    app
}

/// Every file of a module, for byte-for-byte comparison.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for f in opm::files::module_files(dir).unwrap() {
        out.push((f.rel.clone(), std::fs::read(&f.abs).unwrap()));
    }
    out
}

#[test]
fn an_update_that_breaks_the_release_is_refused_and_one_that_renders_is_kept() {
    let w = World::new();
    lib_at(&w, "v1.0.0", "{image: \"nginx:1.27\", replicas: 1}");
    // v1.1.0 drops the default image: the module still vets (not
    // concretely), but its release no longer renders.
    lib_at(&w, "v1.1.0", "{image: string, replicas: 1}");
    let cache = tempdir();
    let app = consumer(&w, cache.path());
    let opm_app = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(args));
    let before = snapshot(app.path());
    let built = opm_app(&["mod", "build"]);
    assert!(built.status.success(), "{}", stderr(&built));

    let out = opm_app(&["mod", "update", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    // The first check that held before and fails now: the concrete vet
    // (the release would fail too), named with its place in the module.
    assert!(err.contains("updating example.com/lib@v1 v1.0.0 -> v1.1.0 breaks the module's concrete vet"), "{err}");
    assert!(err.contains("incomplete value") && err.contains("(./app.cue:"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(snapshot(app.path()), before, "the module is byte-identical after a refused update");

    // --no-verify keeps it: the plain vet still passes.
    let out = opm_app(&["mod", "update", "--yes", "--no-verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read_to_string(app.path().join("cue.mod/module.cue")).unwrap().contains("v1.1.0"));
    assert_ne!(opm_app(&["mod", "build"]).status.code(), Some(0));
    let out = opm_app(&["mod", "get", "example.com/lib@v1.0.0"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // v1.2.0 changes the defaults and renders: kept, and the build shows it.
    lib_at(&w, "v1.2.0", "{image: \"nginx:1.28\", replicas: 2}");
    let out = opm_app(&["mod", "update", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = opm_app(&["mod", "build"]);
    assert!(after.status.success(), "{}", stderr(&after));
    let (old, new) = (stdout(&built), stdout(&after));
    assert!(old.contains("image: nginx:1.27") && old.contains("replicas: 1"), "{old}");
    assert!(new.contains("image: nginx:1.28") && new.contains("replicas: 2"), "{new}");
}

#[test]
fn update_check_reports_an_unreachable_registry_in_its_own_row() {
    let w = World::new();
    w.publish("example.com/lib@v1", "v1.0.0", &[], &[]);
    w.publish("example.com/lib@v1", "v1.1.0", &[], &[]);
    w.publish("down.test/x@v0", "v0.1.0", &[], &[]);
    let cache = tempdir();
    let app = module(&[
        (
            "cue.mod/module.cue",
            "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\ndeps: {\n\t\"opmodel.dev/core@v0\": v: \"v0.1.0\"\n\t\"example.com/lib@v1\": v: \"v1.0.0\"\n\t\"down.test/x@v0\": v: \"v0.1.0\"\n}\n",
        ),
        ("app.cue", "package app\n"),
    ]);
    let dead = format!("127.0.0.1:{}+insecure", crate::registry_server::free_port());
    // The README's shape: one prefix routed to a live registry, every
    // other module (the core model included) to one that is down.
    let routing = format!("example.com={},{dead}", w.registry);
    let check = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &routing).current_dir(app.path()).args(["mod", "update", "--check"]).args(args));

    let out = check(&[]);
    assert_eq!(out.status.code(), Some(3), "an unreachable registry wins over 'updates available': {}", stderr(&out));
    let table = stdout(&out);
    assert!(table.contains("example.com/lib@v1") && table.contains("v1.1.0") && table.contains("minor"), "{table}");
    assert!(table.contains("down.test/x@v0") && table.contains("cannot check"), "{table}");
    assert!(!table.contains("opmodel.dev/core"), "the embedded core model is never looked up: {table}");

    let out = check(&["--json"]);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert_eq!(rows[0]["available"], "v1.1.0");
    assert!(rows[1]["error"].as_str().unwrap().contains("cannot reach"), "{rows}");

    // Only the live dependency: exit 6.
    let out = check(&["example.com/lib"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
}

/// Four projects on one cache: tidy and gc never remove what another uses.
#[test]
fn tidy_and_gc_keep_what_other_projects_use() {
    let w = World::new();
    for v in ["v0.1.0", "v0.2.0"] {
        w.publish("shared.test/lib@v0", v, &[], &[]);
    }
    let cache = tempdir();
    let project = |version: &str| {
        let p = module(&[
            ("cue.mod/module.cue", "module: \"main.test/p@v0\"\nlanguage: version: \"v0.17.0\"\n"),
            ("p.cue", "package p\n\nimport \"shared.test/lib@v0\"\n\nx: lib.name\n"),
        ]);
        let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(p.path()).args(["mod", "get"]).arg(format!("shared.test/lib@{version}")));
        assert!(out.status.success(), "{}", stderr(&out));
        p
    };
    let opm_in = |p: &Path, args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(p).args(args));
    let (a, b, c, d) = (project("v0.1.0"), project("v0.1.0"), project("v0.2.0"), project("v0.2.0"));
    let entry = |v: &str| cache.path().join(format!("mod/extract/shared.test/lib@{v}"));

    // A stops importing the library; B still uses v0.1.0.
    write(&a.path().join("p.cue"), "package p\n");
    let out = opm_in(a.path(), &["mod", "tidy"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("kept shared.test/lib@v0 v0.1.0 in the cache: used by"), "{}", stderr(&out));
    assert!(entry("v0.1.0").is_dir());
    assert!(opm_in(b.path(), &["mod", "vet", "--offline"]).status.success(), "B still builds offline");

    // Without a record of who uses what, tidy removes nothing.
    write(&b.path().join("p.cue"), "package p\n");
    let out = run(opm(cache.path())
        .env("CUE_REGISTRY", &w.registry)
        .env_remove("OPM_STATE_DIR")
        .env_remove("XDG_STATE_HOME")
        .env_remove("HOME")
        .current_dir(b.path())
        .args(["mod", "tidy"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("kept shared.test/lib@v0 v0.1.0 in the cache: opm keeps no record"), "{}", stderr(&out));
    assert!(entry("v0.1.0").is_dir());
    write(&b.path().join("p.cue"), "package p\n\nimport \"shared.test/lib@v0\"\n\nx: lib.name\n");
    assert!(opm_in(b.path(), &["mod", "get", "shared.test/lib@v0.1.0"]).status.success());

    // gc with no age limit, while the four projects get again (A takes
    // v0.2.0 now).
    let list = opm_in(a.path(), &["cache", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&list)).unwrap();
    let users = |v: &str| listed.as_array().unwrap().iter().find(|e| e["version"] == v).map(|e| e["projects"].as_array().unwrap().len());
    assert_eq!((users("v0.1.0"), users("v0.2.0")), (Some(1), Some(2)), "{listed}");
    std::thread::scope(|s| {
        for (p, v) in [(&a, "v0.2.0"), (&b, "v0.1.0"), (&c, "v0.2.0"), (&d, "v0.2.0")] {
            s.spawn(move || {
                for _ in 0..3 {
                    let out = opm_in(p.path(), &["mod", "get", &format!("shared.test/lib@{v}")]);
                    assert!(out.status.success(), "{}", stderr(&out));
                }
            });
        }
        s.spawn(|| {
            for _ in 0..5 {
                let out = opm_in(a.path(), &["cache", "gc", "--older-than", "0"]);
                assert!(out.status.success(), "{}", stderr(&out));
            }
        });
    });
    for p in [&b, &c, &d] {
        let out = opm_in(p.path(), &["mod", "vet", "--offline"]);
        assert!(out.status.success(), "nothing another project uses was lost: {}", stderr(&out));
    }

    // When nobody uses a version any more, tidy removes it.
    write(&b.path().join("p.cue"), "package p\n");
    let out = opm_in(b.path(), &["mod", "tidy"]);
    assert!(stderr(&out).contains("removed shared.test/lib@v0 v0.1.0 from the cache"), "{}", stderr(&out));
    assert!(!entry("v0.1.0").exists());
    // And gc removes what only a deleted project used.
    drop(d);
    let out = opm_in(c.path(), &["cache", "gc", "--older-than", "0", "--dry-run"]);
    assert!(stderr(&out).contains("would remove 0 versions"), "c still uses v0.2.0: {}", stderr(&out));
}

#[test]
fn cache_verify_finds_a_flipped_byte_and_an_edited_file() {
    let w = World::new();
    w.publish("v.test/one@v0", "v0.1.0", &[], &[]);
    w.publish("v.test/two@v0", "v0.1.0", &[], &[]);
    let cache = tempdir();
    let app = module(&[
        ("cue.mod/module.cue", "module: \"main.test/app@v0\"\nlanguage: version: \"v0.17.0\"\n"),
        ("app.cue", "package app\n\nimport (\n\t\"v.test/one@v0\"\n\t\"v.test/two@v0\"\n)\n\nx: one.name + two.name\n"),
    ]);
    let opm_app = |args: &[&str]| run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(args));
    assert!(opm_app(&["mod", "tidy"]).status.success());
    let out = opm_app(&["cache", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("ok: 2 cache entries sound"), "{}", stderr(&out));

    let zip = cache.path().join("mod/download/v.test/one/@v/v0.1.0.zip");
    let mut data = std::fs::read(&zip).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x40;
    std::fs::write(&zip, data).unwrap();
    let file = cache.path().join("mod/extract/v.test/two@v0.1.0/two.cue");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&file, "package two\n\nname: \"edited\"\n").unwrap();

    let out = opm_app(&["cache", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("v.test/one@v0 v0.1.0") && err.contains("its zip is sha256:"), "{err}");
    assert!(err.contains("v.test/two@v0 v0.1.0") && err.contains("two.cue"), "{err}");
    assert!(err.contains("2 of 2 cache entries damaged"), "{err}");
}

/// Ctrl-C at any moment of an update: the module is as it was, or the
/// proven update in full (module.cue and opm.sum agree), with no file
/// beside them. The moments spread over a whole update's time.
#[test]
fn interrupting_an_update_leaves_the_module_old_or_new() {
    let w = World::new();
    lib_at(&w, "v1.0.0", "{image: \"nginx:1.27\", replicas: 1}");
    lib_at(&w, "v1.2.0", "{image: \"nginx:1.28\", replicas: 2}");
    let whole = {
        let cache = tempdir();
        let app = consumer(&w, cache.path());
        let start = std::time::Instant::now();
        let out = run(opm(cache.path()).env("CUE_REGISTRY", &w.registry).current_dir(app.path()).args(["mod", "update", "--yes"]));
        assert!(out.status.success(), "{}", stderr(&out));
        start.elapsed().as_millis() as u64
    };
    const MOMENTS: u64 = 32;
    for delay_ms in (0..MOMENTS).map(|i| whole * i / MOMENTS + 5) {
        let cache = tempdir();
        let app = consumer(&w, cache.path());
        let old = snapshot(app.path());
        let mut child = opm(cache.path())
            .env("CUE_REGISTRY", &w.registry)
            .current_dir(app.path())
            .args(["mod", "update", "--yes"])
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // SAFETY: signalling a child process we started.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let _ = child.wait();
        let now = snapshot(app.path());
        if now != old {
            let names = |s: &[(String, Vec<u8>)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
            assert_eq!(names(&now), names(&old), "at {delay_ms} ms of {whole}: the same files, nothing beside them");
            let module_cue = std::fs::read_to_string(app.path().join("cue.mod/module.cue")).unwrap();
            let sums = std::fs::read_to_string(app.path().join("cue.mod/opm.sum")).unwrap();
            assert!(
                module_cue.contains("v1.2.0") && sums.contains("example.com/lib@v1 v1.2.0"),
                "at {delay_ms} ms of {whole}: a partial update:\n{module_cue}\n{sums}"
            );
        }
    }
}
