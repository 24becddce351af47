//! Table-driven resolution tests over an in-memory module universe: no
//! registry, no cue CLI. Each module version is a module file and one
//! package; the universe writes a version's files to a temporary
//! directory only when resolution fetches it. The differential tests
//! against the real cue (tests/it/deps_diff.rs) stay the reference; the
//! named scenarios here are theirs.

use super::{get, tidy, Fetched, Requirements, Source};
use crate::cue::{self, ModuleFile};
use crate::files;
use crate::module::{semver, ModuleVersion};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

/// A published module version: `base@vX.Y.Z`, the deps of its module file
/// (`base@vX.Y.Z`, as a tidy module.cue lists them) and the imports of its
/// package. Extra files are (path, content) pairs.
struct Pub {
    at: &'static str,
    deps: &'static [&'static str],
    imports: &'static [&'static str],
    files: &'static [(&'static str, &'static str)],
}

const fn m(at: &'static str, deps: &'static [&'static str], imports: &'static [&'static str]) -> Pub {
    Pub { at, deps, imports, files: &[] }
}

fn mv(at: &str) -> ModuleVersion {
    let (base, version) = at.rsplit_once('@').expect("base@version");
    ModuleVersion::new(base, version)
}

fn package_name(base: &str) -> String {
    base.rsplit('/').next().unwrap().replace('-', "_")
}

/// A package importing `imports`, each used so that CUE keeps it.
fn package(name: &str, imports: &[&str]) -> String {
    let mut src = format!("package {name}\n\n");
    for (i, imp) in imports.iter().enumerate() {
        src += &format!("import i{i} \"{imp}\"\n");
    }
    src += "\nname: \"x\"\n";
    for i in 0..imports.len() {
        src += &format!("dep{i}: i{i}.name\n");
    }
    src
}

fn module_cue(module: &str, deps: &[&str]) -> String {
    let mut text = format!("module: \"{module}\"\nlanguage: version: \"v0.17.0\"\n");
    for d in deps {
        let (at, default) = match d.strip_suffix(" default") {
            Some(at) => (at, true),
            None => (*d, false),
        };
        let dep = mv(at);
        let default = if default { " default: true," } else { "" };
        text += &format!("deps: \"{}\": {{{default} v: \"{}\"}}\n", dep.module(), dep.version());
    }
    text
}

struct Universe {
    dir: tempfile::TempDir,
    modules: BTreeMap<ModuleVersion, &'static Pub>,
    /// What resolution asked for, to show what it reads.
    listed: RefCell<Vec<String>>,
    fetched: RefCell<Vec<ModuleVersion>>,
}

impl Universe {
    fn new(published: &'static [Pub]) -> Universe {
        let modules = published.iter().map(|p| (mv(p.at), p)).collect();
        Universe { dir: tempfile::tempdir().unwrap(), modules, listed: RefCell::default(), fetched: RefCell::default() }
    }

    fn text(&self, mv: &ModuleVersion) -> anyhow::Result<String> {
        let p = self.modules.get(mv).ok_or_else(|| anyhow::anyhow!("{mv} not found"))?;
        Ok(module_cue(mv.module(), p.deps))
    }
}

impl Source for Universe {
    fn module_files(&self, mvs: &[ModuleVersion]) -> anyhow::Result<Vec<Rc<ModuleFile>>> {
        mvs.iter().map(|mv| Ok(Rc::new(cue::parse_module_file(&self.text(mv)?, &mv.to_string(), true).map_err(|e| anyhow::anyhow!(e.message))?))).collect()
    }

    fn versions(&self, paths: &[String]) -> anyhow::Result<Vec<Rc<Vec<String>>>> {
        self.listed.borrow_mut().extend(paths.iter().cloned());
        Ok(paths
            .iter()
            .map(|path| {
                let mut vs: Vec<String> = self
                    .modules
                    .keys()
                    .filter(|k| if path.contains('@') { k.module() == path } else { k.base() == path })
                    .map(|k| k.version().to_string())
                    .collect();
                semver::sort(&mut vs);
                Rc::new(vs)
            })
            .collect())
    }

    fn fetch(&self, mv: &ModuleVersion) -> anyhow::Result<Fetched> {
        let Some(p) = self.modules.get(mv) else { return Ok(Fetched::Missing(format!("{mv} not found"))) };
        let dir = self.dir.path().join("mod").join(mv.to_string());
        if !dir.exists() {
            self.fetched.borrow_mut().push(mv.clone());
            write(&dir, "cue.mod/module.cue", &self.text(mv)?);
            let name = package_name(mv.base());
            write(&dir, &format!("{name}.cue"), &package(&name, p.imports));
            for (path, content) in p.files {
                write(&dir, path, content);
            }
        }
        Ok(Fetched::Dir(dir))
    }
}

fn write(dir: &Path, path: &str, content: &str) {
    let file = dir.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, content).unwrap();
}

const MAIN: &str = "main.test/m@v0";

/// The main module: its deps (`base@vX.Y.Z[ default]`), the imports of
/// its package `m`, and extra files.
struct Main {
    deps: &'static [&'static str],
    imports: &'static [&'static str],
    files: &'static [(&'static str, &'static str)],
}

const fn main(deps: &'static [&'static str], imports: &'static [&'static str]) -> Main {
    Main { deps, imports, files: &[] }
}

enum Op {
    Tidy,
    TidyCheck,
    Get(&'static [&'static str]),
}

struct Case {
    name: &'static str,
    world: &'static [Pub],
    main: Main,
    op: Op,
    /// The deps afterwards (`path@vN version[ default]`), or a piece of
    /// the error.
    want: Result<&'static [&'static str], &'static str>,
}

/// Runs a case: the deps it leaves, as `path@vN version[ default]`.
fn run(case: &Case, u: &Universe) -> anyhow::Result<Vec<String>> {
    let root = u.dir.path().join("main");
    write(&root, "cue.mod/module.cue", &module_cue(MAIN, case.main.deps));
    write(&root, "m.cue", &package("m", case.main.imports));
    for (path, content) in case.main.files {
        write(&root, path, content);
    }
    let text = std::fs::read_to_string(root.join("cue.mod/module.cue"))?;
    let main = cue::parse_module_file(&text, "module.cue", false).map_err(|e| anyhow::anyhow!(e.message))?;
    let (roots, defaults) = match case.op {
        Op::Tidy | Op::TidyCheck => {
            let check = matches!(case.op, Op::TidyCheck);
            let before = Requirements::of(&main);
            let t = tidy::tidy(u, &root, &files::cue_sources(&root)?, &before, check, None)?;
            if check && t.roots != before.roots() {
                anyhow::bail!("module is not tidy");
            }
            (t.roots, t.defaults)
        }
        Op::Get(args) => {
            let wanted = args.iter().map(|a| get::parse_request(u, a)).collect::<anyhow::Result<Vec<_>>>()?;
            (get::update_versions(u, &main, &wanted)?, main.defaults.clone())
        }
    };
    Ok(roots
        .iter()
        .map(|r| {
            let (base, major) = crate::module::split_major(r.module());
            let default = if defaults.get(base).is_some_and(|d| d == major) { " default" } else { "" };
            format!("{} {}{default}", r.module(), r.version())
        })
        .collect())
}

/// The diamond: left and right both need base, at different versions.
const DIAMOND: &[Pub] = &[
    m("d.test/base@v0.1.0", &[], &[]),
    m("d.test/base@v0.2.0", &[], &[]),
    m("d.test/base@v0.3.0", &[], &[]),
    m("d.test/base@v0.4.0", &[], &[]),
    m("d.test/left@v0.1.0", &["d.test/base@v0.2.0"], &["d.test/base"]),
    m("d.test/left@v0.2.0", &["d.test/base@v0.4.0"], &["d.test/base"]),
    m("d.test/right@v0.1.0", &["d.test/base@v0.3.0"], &["d.test/base"]),
];

/// Two majors of b, prereleases, and a that needs b@v1 v1.1.0.
const MAJORS: &[Pub] = &[
    m("b.test/b@v1.0.0", &[], &[]),
    m("b.test/b@v1.1.0", &[], &[]),
    m("b.test/b@v1.2.0-rc.1", &[], &[]),
    m("b.test/b@v2.0.0", &[], &[]),
    m("a.test/a@v1.0.0", &["b.test/b@v1.1.0"], &["b.test/b@v1"]),
    m("c.test/c@v0.1.0-rc.1", &[], &[]),
];

/// Packages in subdirectories, other package names, nested imports.
const LAYOUT: &[Pub] = &[
    Pub {
        at: "x.test/x@v0.1.0",
        deps: &[],
        imports: &[],
        files: &[("sub/s.cue", "package sub\n\nname: \"s\"\n"), ("other/o.cue", "package o\n\nname: \"o\"\n")],
    },
    m("y.test/y@v0.1.0", &["x.test/x@v0.1.0"], &["x.test/x/sub"]),
    m("y.test/y@v0.2.0", &[], &[]),
];

const DIAMOND_TIDY: &[&str] = &["d.test/base@v0 v0.4.0", "d.test/left@v0 v0.2.0 default", "d.test/right@v0 v0.1.0 default"];

const CASES: &[Case] = &[
    Case {
        name: "diamond: a fresh tidy selects the highest base anyone needs",
        world: DIAMOND,
        main: main(&[], &["d.test/left", "d.test/right"]),
        op: Op::Tidy,
        want: Ok(DIAMOND_TIDY),
    },
    Case {
        name: "diamond: tidy of a tidy module changes nothing",
        world: DIAMOND,
        main: main(&["d.test/base@v0.4.0", "d.test/left@v0.2.0 default", "d.test/right@v0.1.0 default"], &["d.test/left", "d.test/right"]),
        op: Op::Tidy,
        want: Ok(DIAMOND_TIDY),
    },
    Case {
        name: "diamond: tidy --check of a tidy module passes",
        world: DIAMOND,
        main: main(&["d.test/base@v0.4.0", "d.test/left@v0.2.0 default", "d.test/right@v0.1.0 default"], &["d.test/left", "d.test/right"]),
        op: Op::TidyCheck,
        want: Ok(DIAMOND_TIDY),
    },
    Case {
        name: "tidy --check reports a missing dependency without listing versions",
        world: DIAMOND,
        main: main(&[], &["d.test/left"]),
        op: Op::TidyCheck,
        want: Err("missing dependency providing package d.test/left"),
    },
    Case {
        name: "tidy --check reports a dependency no package uses",
        world: DIAMOND,
        main: main(&["d.test/base@v0.4.0", "d.test/left@v0.2.0 default", "d.test/right@v0.1.0 default"], &["d.test/left"]),
        op: Op::TidyCheck,
        want: Err("not tidy"),
    },
    Case {
        name: "shared upgrade: a new dependent raises the shared module",
        world: DIAMOND,
        main: main(&["d.test/base@v0.2.0", "d.test/left@v0.1.0"], &[]),
        op: Op::Get(&["d.test/right@v0.1.0"]),
        want: Ok(&["d.test/base@v0 v0.3.0", "d.test/left@v0 v0.1.0", "d.test/right@v0 v0.1.0"]),
    },
    Case {
        name: "shared upgrade: upgrading one dependent raises the shared module",
        world: DIAMOND,
        main: main(&["d.test/base@v0.3.0", "d.test/left@v0.1.0", "d.test/right@v0.1.0"], &[]),
        op: Op::Get(&["d.test/left@v0.2.0"]),
        want: Ok(&["d.test/base@v0 v0.4.0", "d.test/left@v0 v0.2.0", "d.test/right@v0 v0.1.0"]),
    },
    Case {
        name: "refused downgrade: another dependency needs more",
        world: DIAMOND,
        main: main(&["d.test/base@v0.4.0", "d.test/left@v0.2.0", "d.test/right@v0.1.0"], &[]),
        op: Op::Get(&["d.test/base@v0.3.0"]),
        want: Err("other requirements prevent changing module d.test/base@v0 to version v0.3.0 (actual selected version: v0.4.0)"),
    },
    Case {
        name: "combined downgrade: the dependent goes down with it",
        world: DIAMOND,
        main: main(&["d.test/base@v0.4.0", "d.test/left@v0.2.0", "d.test/right@v0.1.0"], &[]),
        op: Op::Get(&["d.test/base@v0.3.0", "d.test/left@v0.1.0"]),
        want: Ok(&["d.test/base@v0 v0.3.0", "d.test/left@v0 v0.1.0", "d.test/right@v0 v0.1.0"]),
    },
    Case {
        name: "last import removed: tidy drops every dependency",
        world: DIAMOND,
        main: main(&["d.test/base@v0.4.0", "d.test/left@v0.2.0", "d.test/right@v0.1.0"], &[]),
        op: Op::Tidy,
        want: Ok(&[]),
    },
    Case {
        name: "get into an empty module brings the dependency's own requirements",
        world: DIAMOND,
        main: main(&[], &[]),
        op: Op::Get(&["d.test/left@v0.1.0"]),
        want: Ok(&["d.test/base@v0 v0.2.0", "d.test/left@v0 v0.1.0"]),
    },
    Case {
        name: "get of the same version twice is one request",
        world: DIAMOND,
        main: main(&[], &[]),
        op: Op::Get(&["d.test/left@v0.1.0", "d.test/left@v0.1.0"]),
        want: Ok(&["d.test/base@v0 v0.2.0", "d.test/left@v0 v0.1.0"]),
    },
    Case {
        name: "get of two versions of one module is refused",
        world: DIAMOND,
        main: main(&[], &[]),
        op: Op::Get(&["d.test/left@v0.1.0", "d.test/left@v0.2.0"]),
        want: Err("conflicting version update requirements"),
    },
    Case {
        name: "get of the main module is refused",
        world: DIAMOND,
        main: main(&[], &[]),
        op: Op::Get(&["main.test/m@v0.1.0"]),
        want: Err("cannot update version of main module main.test/m@v0"),
    },
    Case {
        name: "get of a version nobody published fails reading the graph",
        world: DIAMOND,
        main: main(&[], &[]),
        op: Op::Get(&["d.test/left@v0.9.0"]),
        want: Err("d.test/left@v0.9.0 not found"),
    },
    Case {
        name: "get @latest is refused with the newest releases",
        world: DIAMOND,
        main: main(&[], &[]),
        op: Op::Get(&["d.test/left@latest"]),
        want: Err("newest matching: d.test/left@v0.2.0, d.test/left@v0.1.0"),
    },
    Case {
        name: "get without a version is refused with the newest releases",
        world: DIAMOND,
        main: main(&[], &[]),
        op: Op::Get(&["d.test/base"]),
        want: Err("no version given, but opm needs an exact version (no @latest or partial versions); newest matching: d.test/base@v0.4.0, d.test/base@v0.3.0"),
    },
    Case {
        name: "get of a minor query lists the releases of that minor",
        world: MAJORS,
        main: main(&[], &[]),
        op: Op::Get(&["b.test/b@v1.1"]),
        want: Err("newest matching: b.test/b@v1.1.0"),
    },
    Case {
        name: "get of a module without releases says so",
        world: DIAMOND,
        main: main(&[], &[]),
        op: Op::Get(&["d.test/nothing@latest"]),
        want: Err("the registry has no matching release of d.test/nothing"),
    },
    Case {
        name: "get of something that is not a version names it",
        world: DIAMOND,
        main: main(&[], &[]),
        op: Op::Get(&["d.test/left@v0.x"]),
        want: Err("\"v0.x\" is not a version"),
    },
    Case {
        name: "default major: an import without a major takes the newest major, marked default",
        world: MAJORS,
        main: main(&[], &["b.test/b"]),
        op: Op::Tidy,
        want: Ok(&["b.test/b@v2 v2.0.0 default"]),
    },
    Case {
        name: "two majors side by side: the explicit one takes its newest release",
        world: MAJORS,
        main: main(&["b.test/b@v2.0.0 default"], &["b.test/b", "b.test/b@v1"]),
        op: Op::Tidy,
        want: Ok(&["b.test/b@v1 v1.1.0", "b.test/b@v2 v2.0.0 default"]),
    },
    Case {
        name: "two majors: get changes one and keeps the other's default",
        world: MAJORS,
        main: main(&["b.test/b@v1.1.0", "b.test/b@v2.0.0 default"], &["b.test/b", "b.test/b@v1"]),
        op: Op::Get(&["b.test/b@v1.0.0"]),
        want: Ok(&["b.test/b@v1 v1.0.0", "b.test/b@v2 v2.0.0 default"]),
    },
    Case {
        name: "two majors and no default: an import without a major cannot be resolved",
        world: MAJORS,
        main: main(&["b.test/b@v1.1.0", "b.test/b@v2.0.0"], &["b.test/b"]),
        op: Op::Tidy,
        want: Err("cannot find module providing package b.test/b"),
    },
    Case {
        name: "a new major next to the old one by get",
        world: MAJORS,
        main: main(&["b.test/b@v1.1.0"], &[]),
        op: Op::Get(&["b.test/b@v2.0.0"]),
        want: Ok(&["b.test/b@v1 v1.1.0", "b.test/b@v2 v2.0.0"]),
    },
    Case {
        name: "raised requirement: tidy keeps a root below what a dependency needs, as cue does",
        world: MAJORS,
        main: main(&["a.test/a@v1.0.0", "b.test/b@v1.0.0"], &["a.test/a@v1", "b.test/b@v1"]),
        op: Op::Tidy,
        want: Ok(&["a.test/a@v1 v1.0.0", "b.test/b@v1 v1.0.0"]),
    },
    Case {
        name: "raised requirement: get of the dependency raises the main module's",
        world: MAJORS,
        main: main(&["a.test/a@v1.0.0", "b.test/b@v1.0.0"], &["a.test/a@v1", "b.test/b@v1"]),
        op: Op::Get(&["a.test/a@v1.0.0"]),
        want: Ok(&["a.test/a@v1 v1.0.0", "b.test/b@v1 v1.1.0"]),
    },
    Case {
        name: "raised requirement: get of the lower version is refused",
        world: MAJORS,
        main: main(&["a.test/a@v1.0.0", "b.test/b@v1.1.0"], &[]),
        op: Op::Get(&["b.test/b@v1.0.0"]),
        want: Err("other requirements prevent changing module b.test/b@v1 to version v1.0.0"),
    },
    Case {
        name: "a dependency's requirement is added when only the dependency is imported",
        world: MAJORS,
        main: main(&[], &["a.test/a@v1"]),
        op: Op::Tidy,
        want: Ok(&["a.test/a@v1 v1.0.0", "b.test/b@v1 v1.1.0"]),
    },
    Case {
        name: "a module with prereleases only: tidy takes the newest prerelease",
        world: MAJORS,
        main: main(&[], &["c.test/c@v0"]),
        op: Op::Tidy,
        want: Ok(&["c.test/c@v0 v0.1.0-rc.1"]),
    },
    Case {
        name: "a package in a subdirectory is found in its module",
        world: LAYOUT,
        main: main(&[], &["x.test/x/sub"]),
        op: Op::Tidy,
        want: Ok(&["x.test/x@v0 v0.1.0 default"]),
    },
    Case {
        name: "a qualified import names another package of the directory",
        world: LAYOUT,
        main: main(&[], &["x.test/x/other:o"]),
        op: Op::Tidy,
        want: Ok(&["x.test/x@v0 v0.1.0 default"]),
    },
    Case {
        name: "a qualifier no file declares fails with cue's words",
        world: LAYOUT,
        main: main(&["x.test/x@v0.1.0 default"], &["x.test/x/sub:nope"]),
        op: Op::Tidy,
        want: Err("no files in package directory with package name \"nope\""),
    },
    Case {
        name: "a dependency's unversioned import resolves to the major it depends on",
        world: LAYOUT,
        main: main(&["y.test/y@v0.1.0"], &["y.test/y@v0"]),
        op: Op::Tidy,
        want: Ok(&["x.test/x@v0 v0.1.0", "y.test/y@v0 v0.1.0"]),
    },
    Case {
        name: "tidy keeps a root's version: no newer release is taken",
        world: LAYOUT,
        main: main(&["x.test/x@v0.1.0", "y.test/y@v0.1.0"], &["y.test/y@v0"]),
        op: Op::Tidy,
        want: Ok(&["x.test/x@v0 v0.1.0", "y.test/y@v0 v0.1.0"]),
    },
    Case { name: "standard library imports need no module", world: DIAMOND, main: main(&[], &["strings", "encoding/json"]), op: Op::Tidy, want: Ok(&[]) },
    Case {
        name: "an import no module provides fails",
        world: DIAMOND,
        main: main(&[], &["nope.test/x"]),
        op: Op::Tidy,
        want: Err("cannot find module providing package nope.test/x"),
    },
    Case {
        name: "packages under cue.mod/gen are the main module's own",
        world: DIAMOND,
        main: Main { deps: &[], imports: &["k8s.test/api"], files: &[("cue.mod/gen/k8s.test/api/api.cue", "package api\n\nname: \"api\"\n")] },
        op: Op::Tidy,
        want: Ok(&[]),
    },
    Case {
        name: "a local package next to a dependency's package of the same path is ambiguous",
        world: LAYOUT,
        main: Main {
            deps: &["x.test/x@v0.1.0 default"],
            imports: &["x.test/x/sub"],
            files: &[("cue.mod/gen/x.test/x/sub/s.cue", "package sub\n\nname: \"s\"\n")],
        },
        op: Op::Tidy,
        want: Err("ambiguous import: found package x.test/x/sub in multiple locations"),
    },
    Case {
        name: "the imports of a nested module are not the main module's",
        world: DIAMOND,
        main: Main {
            deps: &[],
            imports: &[],
            files: &[
                ("nested/cue.mod/module.cue", "module: \"n.test/n@v0\"\nlanguage: version: \"v0.17.0\"\n"),
                ("nested/n.cue", "package n\n\nimport \"d.test/left\"\n"),
            ],
        },
        op: Op::Tidy,
        want: Ok(&[]),
    },
    Case {
        name: "files marked @ignore() and hidden files are not scanned",
        world: DIAMOND,
        main: Main {
            deps: &[],
            imports: &[],
            files: &[("ignored.cue", "@ignore()\n\npackage m\n\nimport \"d.test/left\"\n"), ("_hidden.cue", "package m\n\nimport \"d.test/right\"\n")],
        },
        op: Op::Tidy,
        want: Ok(&[]),
    },
];

#[test]
fn resolution_matches_the_scenarios() {
    assert!(CASES.len() >= 30, "{} cases", CASES.len());
    let mut failures = Vec::new();
    for case in CASES {
        let u = Universe::new(case.world);
        let got = run(case, &u);
        let ok = match (&got, &case.want) {
            (Ok(deps), Ok(want)) => deps == want,
            (Err(e), Err(want)) => format!("{e:#}").contains(want),
            _ => false,
        };
        if !ok {
            failures.push(format!("{}:\n  want {:?}\n  got  {:?}", case.name, case.want, got.map_err(|e| format!("{e:#}"))));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

#[test]
fn tidy_of_a_tidy_module_lists_no_versions_and_fetches_only_what_it_loads() {
    let case = &CASES[1];
    let u = Universe::new(case.world);
    run(case, &u).unwrap();
    assert!(u.listed.borrow().is_empty(), "listed {:?}", u.listed.borrow());
    let mut fetched: Vec<String> = u.fetched.borrow().iter().map(ToString::to_string).collect();
    fetched.sort();
    assert_eq!(fetched, ["d.test/base@v0.4.0", "d.test/left@v0.2.0", "d.test/right@v0.1.0"]);
}

#[test]
fn get_reads_module_files_only() {
    let case = &CASES[5];
    let u = Universe::new(case.world);
    run(case, &u).unwrap();
    assert!(u.fetched.borrow().is_empty(), "get fetched {:?}", u.fetched.borrow());
    assert!(u.listed.borrow().is_empty());
}
