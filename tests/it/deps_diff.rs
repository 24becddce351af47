//! Differential tests of dependency management: the same scenario goes
//! through `cue mod get`/`cue mod tidy` and `opm mod get`/`opm mod tidy`
//! against one registry on loopback, and module.cue must come out
//! byte-identical after every step.

use crate::registry_server::TestRegistry;
use crate::support::*;
use std::path::Path;

/// A registry with modules published by opm (the artifact cue publishes).
pub struct World {
    reg: TestRegistry,
    pub registry: String,
    cache: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        let reg = TestRegistry::start();
        let registry = format!("{}+insecure", reg.host);
        World { reg, registry, cache: tempdir() }
    }

    pub fn registry_server(&self) -> &TestRegistry {
        &self.reg
    }

    /// Publishes `module` (path with major) at `version`, depending on
    /// `deps` (path with major, version) and importing `imports`.
    pub fn publish(&self, module: &str, version: &str, deps: &[(&str, &str)], imports: &[&str]) {
        let (base, _) = module.split_once('@').unwrap();
        let pkg = base.rsplit('/').next().unwrap().replace('-', "_");
        let mut module_cue = format!("module: \"{module}\"\nlanguage: version: \"v0.17.0\"\nsource: kind: \"self\"\n");
        for (d, v) in deps {
            module_cue += &format!("deps: \"{d}\": v: \"{v}\"\n");
        }
        let mut src = format!("package {pkg}\n\n");
        for (i, imp) in imports.iter().enumerate() {
            src += &format!("import i{i} \"{imp}\"\n");
        }
        src += "\nname: \"";
        src += module;
        src += "\"\n";
        for i in 0..imports.len() {
            src += &format!("dep{i}: i{i}.name\n");
        }
        self.publish_module(version, &[("cue.mod/module.cue", &module_cue), (&format!("{pkg}.cue"), &src)]);
    }

    /// Publishes a module without dependencies made of `files`.
    pub fn publish_files(&self, module: &str, version: &str, files: &[(&str, &str)]) {
        let module_cue = format!("module: \"{module}\"\nlanguage: version: \"v0.17.0\"\nsource: kind: \"self\"\n");
        let mut all = vec![("cue.mod/module.cue", module_cue.as_str())];
        all.extend_from_slice(files);
        self.publish_module(version, &all);
    }

    fn publish_module(&self, version: &str, files: &[(&str, &str)]) {
        let what = files[0].1.lines().next().unwrap().to_string();
        let dir = module(files);
        // The real cue makes module.cue tidy (keeping the versions given),
        // so that what is published is what cue would publish.
        let out = run(cue(self.cache.path()).env("CUE_REGISTRY", &self.registry).current_dir(dir.path()).args(["mod", "tidy"]));
        assert!(out.status.success(), "cue mod tidy for {what} {version}: {}", stderr(&out));
        let out = run(opm(self.cache.path()).env("CUE_REGISTRY", &self.registry).current_dir(dir.path()).args(["mod", "publish", version]));
        assert!(out.status.success(), "publishing {what} {version}: {}", stderr(&out));
    }
}

/// Two copies of a consumer module, one for each tool.
pub struct Pair {
    registry: String,
    cue_dir: tempfile::TempDir,
    opm_dir: tempfile::TempDir,
    cue_cache: tempfile::TempDir,
    opm_cache: tempfile::TempDir,
    /// Environment both tools run with, over the test's own.
    env: Vec<(String, String)>,
    pub log: Vec<String>,
}

/// The files a step may change, compared after each one.
const COMPARED: &[&str] = &["cue.mod/module.cue", "cue.mod/local-module.cue"];

impl Pair {
    pub fn new(world: &World, module_cue: &str, files: &[(&str, &str)]) -> Pair {
        let mut all = vec![("cue.mod/module.cue", module_cue)];
        all.extend_from_slice(files);
        Pair {
            registry: world.registry.clone(),
            cue_dir: module(&all),
            opm_dir: module(&all),
            cue_cache: tempdir(),
            opm_cache: tempdir(),
            env: vec![],
            log: vec![],
        }
    }

    /// Both tools route with this CUE_REGISTRY instead of the world's.
    pub fn with_registry(mut self, registry: &str) -> Pair {
        self.registry = registry.to_string();
        self
    }

    /// Both tools run with `key=value` set.
    pub fn with_env(mut self, key: &str, value: &str) -> Pair {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Writes a file into both copies.
    pub fn write(&self, path: &str, content: &str) {
        write(&self.cue_dir.path().join(path), content);
        write(&self.opm_dir.path().join(path), content);
    }

    /// Runs `cue mod ARGS` and `opm mod ARGS`; both must succeed or both
    /// fail, and module.cue must be the same afterwards.
    pub fn step(&mut self, args: &[&str]) -> bool {
        self.step_in("", args)
    }

    /// `step` in the subdirectory `dir` of the module.
    pub fn step_in(&mut self, dir: &str, args: &[&str]) -> bool {
        let mut theirs = cue(self.cue_cache.path());
        let mut ours = opm(self.opm_cache.path());
        for (cmd, root) in [(&mut theirs, self.cue_dir.path()), (&mut ours, self.opm_dir.path())] {
            cmd.env("CUE_REGISTRY", &self.registry).current_dir(root.join(dir)).arg("mod").args(args);
            for (k, v) in &self.env {
                cmd.env(k, v);
            }
        }
        let (theirs, ours) = (run(&mut theirs), run(&mut ours));
        let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).ok();
        self.log.push(format!("mod {}: cue {} / opm {}", args.join(" "), theirs.status, ours.status));
        let what = format!("`mod {}`{}", args.join(" "), if dir.is_empty() { String::new() } else { format!(" in {dir}") });
        let (a, b) = (read(self.cue_dir.path(), COMPARED[0]).unwrap_or_default(), read(self.opm_dir.path(), COMPARED[0]).unwrap_or_default());
        assert_eq!(
            theirs.status.success(),
            ours.status.success(),
            "{what}: cue {} ({}) but opm {} ({})\nsteps: {:#?}\ncue's module.cue:\n{a}\nopm's module.cue:\n{b}",
            theirs.status,
            stderr(&theirs).trim(),
            ours.status,
            stderr(&ours).trim(),
            self.log
        );
        for file in COMPARED {
            let (a, b) = (read(self.cue_dir.path(), file), read(self.opm_dir.path(), file));
            assert_eq!(a, b, "{file} differs after {what}\nsteps: {:#?}", self.log);
        }
        theirs.status.success()
    }

    pub fn module_cue(&self) -> String {
        std::fs::read_to_string(self.opm_dir.path().join("cue.mod/module.cue")).unwrap()
    }

    pub fn local_module_cue(&self) -> Option<String> {
        std::fs::read_to_string(self.opm_dir.path().join("cue.mod/local-module.cue")).ok()
    }
}

pub const MAIN: &str = "module: \"main.test/m@v0\"\nlanguage: version: \"v0.17.0\"\n";

pub fn diamond_world() -> World {
    let w = World::new();
    for v in ["v0.1.0", "v0.2.0", "v0.3.0", "v0.4.0"] {
        w.publish("d.test/base@v0", v, &[], &[]);
    }
    w.publish("d.test/left@v0", "v0.1.0", &[("d.test/base@v0", "v0.2.0")], &["d.test/base"]);
    w.publish("d.test/left@v0", "v0.2.0", &[("d.test/base@v0", "v0.4.0")], &["d.test/base"]);
    w.publish("d.test/right@v0", "v0.1.0", &[("d.test/base@v0", "v0.3.0")], &["d.test/base"]);
    w
}

#[test]
fn diamond_and_shared_upgrades_match_cue() {
    let w = diamond_world();
    // A fresh tidy of a diamond: left and right both need base.
    let mut p = Pair::new(&w, MAIN, &[("m.cue", "package m\n\nimport (\n\tl \"d.test/left\"\n\tr \"d.test/right\"\n)\n\nx: l.name + r.name\n")]);
    p.step(&["tidy"]);
    assert!(p.module_cue().contains("\"d.test/base@v0\": {\n\t\tv: \"v0.4.0\""), "{}", p.module_cue());
    p.step(&["tidy", "--check"]);

    // get: a dependency that needs more of a shared module upgrades it.
    let mut p = Pair::new(&w, &format!("{MAIN}deps: \"d.test/left@v0\": v: \"v0.1.0\"\n"), &[("m.cue", "package m\n")]);
    p.step(&["get", "d.test/right@v0.1.0"]);
    assert!(p.module_cue().contains("v0.3.0"), "{}", p.module_cue());
    p.step(&["get", "d.test/left@v0.2.0"]);
    // Downgrading base alone is refused (left needs v0.4.0) by both tools.
    assert!(!p.step(&["get", "d.test/base@v0.3.0"]));
    p.step(&["get", "d.test/base@v0.3.0", "d.test/left@v0.1.0"]);
    // Removing the last import: tidy drops everything.
    p.step(&["tidy"]);
    assert!(!p.module_cue().contains("deps"), "{}", p.module_cue());
}

#[test]
fn majors_defaults_and_raised_requirements_match_cue() {
    let w = World::new();
    for v in ["v1.0.0", "v1.1.0", "v1.2.0-rc.1"] {
        w.publish("b.test/b@v1", v, &[], &[]);
    }
    w.publish("b.test/b@v2", "v2.0.0", &[], &[]);
    w.publish("a.test/a@v1", "v1.0.0", &[("b.test/b@v1", "v1.1.0")], &["b.test/b@v1"]);

    // An import without a major: the newest major, marked default.
    let mut p = Pair::new(&w, MAIN, &[("m.cue", "package m\n\nimport \"b.test/b\"\n\nx: b.name\n")]);
    p.step(&["tidy"]);
    assert!(p.module_cue().contains("default: true"), "{}", p.module_cue());
    // Two majors side by side.
    p.write("n.cue", "package m\n\nimport b1 \"b.test/b@v1\"\n\ny: b1.name\n");
    p.step(&["tidy"]);
    p.step(&["get", "b.test/b@v1.0.0"]);
    p.step(&["tidy", "--check"]);

    // A dependency that raised its own requirement raises the main module's.
    let mut p = Pair::new(
        &w,
        &format!("{MAIN}deps: {{\n\t\"a.test/a@v1\": v: \"v1.0.0\"\n\t\"b.test/b@v1\": v: \"v1.0.0\"\n}}\n"),
        &[("m.cue", "package m\n\nimport (\n\t\"a.test/a@v1\"\n\t\"b.test/b@v1\"\n)\n\nx: a.name + b.name\n")],
    );
    p.step(&["tidy"]);
    p.step(&["get", "a.test/a@v1.0.0"]);
    assert!(p.module_cue().contains("v1.1.0"), "{}", p.module_cue());
    assert!(!p.step(&["get", "b.test/b@v1.0.0"]));
}

/// A small deterministic generator (no crate needed for a seeded test).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407))
    }
    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Random module graphs: modules m0..mN, each with versions whose deps
/// point at lower-numbered modules; a consumer imports a few, then gets
/// random versions and tidies. `OPM_GRAPHS` sets how many (default 6).
#[test]
fn random_dependency_graphs_match_cue() {
    let graphs: u64 = std::env::var("OPM_GRAPHS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    let w = World::new();
    let mut steps = 0;
    for g in 0..graphs {
        let mut rng = Rng::new(g + 1);
        let n = 3 + rng.below(4);
        let name = |i: usize| format!("g{g}.test/m{i}@v0");
        // published[i]: the versions of module i, each with its deps: the
        // direct ones and, as a tidy module lists them, theirs (the
        // highest version of each).
        // Per module: (version, [(dependency index, its version)]).
        type Versions = Vec<(String, Vec<(usize, String)>)>;
        let mut published: Vec<Versions> = vec![];
        for i in 0..n {
            let mut versions = vec![];
            for minor in 0..(1 + rng.below(3)) {
                let version = format!("v0.{}.0", minor + 1);
                let mut direct: Vec<usize> = vec![];
                let mut deps: Vec<(usize, String)> = vec![];
                for j in 0..i {
                    if rng.below(3) == 0 {
                        let (v, their_deps) = published[j][rng.below(published[j].len())].clone();
                        direct.push(j);
                        for (k, kv) in std::iter::once((j, v)).chain(their_deps) {
                            match deps.iter_mut().find(|(d, _)| *d == k) {
                                Some((_, dv)) => {
                                    if opm::module::semver::compare(&kv, dv).is_gt() {
                                        *dv = kv;
                                    }
                                }
                                None => deps.push((k, kv)),
                            }
                        }
                    }
                }
                let names: Vec<(String, String)> = deps.iter().map(|(k, v)| (name(*k), v.clone())).collect();
                let dep_refs: Vec<(&str, &str)> = names.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                let imports: Vec<String> = direct.iter().map(|j| format!("g{g}.test/m{j}")).collect();
                let imp_refs: Vec<&str> = imports.iter().map(String::as_str).collect();
                w.publish(&name(i), &version, &dep_refs, &imp_refs);
                versions.push((version, deps));
            }
            published.push(versions);
        }
        let mut imports = String::new();
        for i in 0..n {
            if rng.below(2) == 0 {
                imports += &format!("import x{i} \"g{g}.test/m{i}\"\n");
            }
        }
        let mut p = Pair::new(&w, MAIN, &[("m.cue", &format!("package m\n\n{imports}"))]);
        p.step(&["tidy"]);
        for _ in 0..3 {
            let i = rng.below(n);
            let v = published[i][rng.below(published[i].len())].0.clone();
            p.step(&["get", &format!("g{g}.test/m{i}@{v}")]);
            steps += 1;
        }
        p.step(&["tidy"]);
        steps += 2;
    }
    eprintln!("random graphs: {graphs} graphs, {steps} steps, module.cue identical after each");
}
