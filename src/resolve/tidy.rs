//! `tidy`: the modules the main module's imports need, as `cue mod tidy`
//! computes them (cuelang.org/go/internal/mod/modload/tidy.go and
//! modpkgload): follow every import, add the newest release of a module
//! for each import nothing provides, keep only the modules that provide a
//! package.

use super::replace::Replacements;
use super::{module_file, DefaultMajor, Fetched, Requirements, Selected, Source};
use crate::cue;
use crate::error::{fail, Failure, Kind};
use crate::module::{ancestors, is_stdlib, semver, split_major, ImportPath, ModuleVersion};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

/// Why a package could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PkgError {
    /// No module provides it.
    Missing,
    Other(String),
}

impl PkgError {
    fn describe(&self, path: &str) -> String {
        match self {
            PkgError::Missing => format!("cannot find module providing package {path}"),
            PkgError::Other(e) => e.clone(),
        }
    }
}

/// `tidy --check` found the module not tidy: what it lacks.
#[derive(Debug)]
pub struct Untidy(pub String);

impl std::fmt::Display for Untidy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Untidy {}

pub fn is_untidy(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Untidy>())
}

/// Where a package comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Provider {
    /// cue.mod/gen, cue.mod/usr or cue.mod/pkg of the main module.
    Local,
    Main,
    Module(ModuleVersion),
}

#[derive(Debug, Clone)]
struct Package {
    path: String,
    /// None for the standard library.
    provider: Option<Provider>,
    err: Option<PkgError>,
    imports: Vec<String>,
}

/// Loads packages against one set of requirements.
struct Loader<'a> {
    src: &'a dyn Source,
    root: &'a Path,
    main: &'a str,
    /// The replacements of a main-module view (`src` applies them).
    repls: Option<&'a Replacements>,
}

/// The outcome of tidying: the new roots and default majors.
pub struct Tidied {
    pub roots: Vec<ModuleVersion>,
    pub defaults: BTreeMap<String, String>,
}

/// Computes the tidy requirements of the module at `root`, whose CUE
/// sources are `sources`. With `check`, no tag list is read to find a
/// missing module: it is reported. (Module files and zips of the
/// dependencies may still be fetched into the cache, as
/// `cue mod tidy --check` does.)
///
/// `repls` are the replacements of a main-module view, which `src`
/// applies (see `replace::Replaced`).
pub fn tidy(src: &dyn Source, root: &Path, sources: &[PathBuf], old: &Requirements, check: bool, repls: Option<&Replacements>) -> anyhow::Result<Tidied> {
    let loader = Loader { src, root, main: &old.main, repls };
    let root_pkgs = cue::main_imports(sources).map_err(Failure::from)?;
    let start = Requirements::new(&old.main, old.roots().to_vec(), old.defaults.clone());
    let (rs, pkgs) = loader.resolve_dependencies(&root_pkgs, start, check)?;
    if let Some(p) = pkgs.iter().find(|p| p.err.is_some()) {
        let err = p.err.as_ref().unwrap();
        if check && *err == PkgError::Missing {
            return Err(Untidy(format!("module is not tidy: missing dependency providing package {}", p.path)).into());
        }
        return Err(fail(Kind::Other, format!("failed to resolve {:?}: {}", p.path, err.describe(&p.path))));
    }
    let tidy = loader.tidy_roots(&rs, &pkgs)?;
    Ok(Tidied { roots: tidy.roots().to_vec(), defaults: tidy.defaults.clone() })
}

impl Loader<'_> {
    fn resolve_dependencies(&self, root_pkgs: &[String], mut rs: Requirements, check: bool) -> anyhow::Result<(Requirements, Vec<Package>)> {
        loop {
            let pkgs = self.load_packages(&rs, root_pkgs)?;
            if check {
                return Ok((rs, pkgs));
            }
            let (added, defaults) = self.resolve_missing_imports(&rs, &pkgs)?;
            if defaults != rs.defaults {
                rs = Requirements::new(&rs.main, rs.roots().to_vec(), defaults).with_local(rs.local);
            }
            if added.is_empty() {
                return Ok((rs, pkgs));
            }
            rs = self.update_roots(rs, &pkgs, &added)?;
        }
    }

    /// Every package reachable from the roots, breadth first: the roots in
    /// order, then each package's imports in sorted order.
    fn load_packages(&self, rs: &Requirements, roots: &[String]) -> anyhow::Result<Vec<Package>> {
        let mut seen: HashSet<String> = roots.iter().cloned().collect();
        let mut queue: VecDeque<String> = roots.iter().cloned().collect();
        let mut out = Vec::new();
        while let Some(path) = queue.pop_front() {
            let pkg = self.load(rs, &path)?;
            for imp in &pkg.imports {
                if seen.insert(imp.clone()) {
                    queue.push_back(imp.clone());
                }
            }
            out.push(pkg);
        }
        Ok(out)
    }

    fn load(&self, rs: &Requirements, path: &str) -> anyhow::Result<Package> {
        let mut pkg = Package { path: path.to_string(), provider: None, err: None, imports: vec![] };
        if is_stdlib(path) {
            return Ok(pkg);
        }
        let found = self.import_from_modules(rs, path, &|prefix| rs.default_major(prefix))?;
        let (provider, dirs) = match found {
            Ok(found) => found,
            Err(e) => {
                pkg.err = Some(e);
                return Ok(pkg);
            }
        };
        pkg.provider = Some(provider.clone());
        let ip = ImportPath::parse(path);
        match ip.qualifier.as_str() {
            "" => return Ok(pkg),
            "_" => {
                pkg.err = Some(PkgError::Other(format!("_ is not a valid import path qualifier in {path:?}")));
                return Ok(pkg);
            }
            _ => {}
        }
        let is_main = provider == Provider::Main;
        let (mut included, mut excluded, mut imports) = (0, 0, Vec::new());
        for dir in &dirs {
            let read =
                cue::package_imports(dir, &ip.qualifier, is_main).map_err(|e| fail(Kind::Other, format!("cannot get imports of {path}: {}", e.message)))?;
            included += read.included;
            excluded += read.excluded;
            imports.extend(read.imports);
        }
        if included == 0 {
            let note = if excluded > 0 { format!(" ({excluded} files were excluded)") } else { String::new() };
            pkg.err = Some(PkgError::Other(format!("no files in package directory with package name {:?}{note}", ip.qualifier)));
            return Ok(pkg);
        }
        imports.sort();
        imports.dedup();
        // A replacing module's imports of its own packages are the
        // original's.
        if let (Some(repls), Provider::Module(m)) = (self.repls, &provider) {
            if repls.is_replaced(m.module()) {
                for imp in imports.iter_mut() {
                    *imp = repls.canonical_import(imp);
                }
                imports.sort();
                imports.dedup();
            }
        }
        if !is_main {
            // An unversioned import in a dependency means the major that
            // dependency itself depends on.
            for imp in imports.iter_mut() {
                let mut ip = ImportPath::parse(imp);
                if !ip.version.is_empty() {
                    continue;
                }
                match self.import_from_modules(rs, imp, &|prefix| self.dependency_default_major(&provider, prefix))? {
                    Ok((Provider::Module(m), _)) => {
                        ip.version = semver::major(m.version()).to_string();
                        *imp = ip.canonical();
                    }
                    Ok(_) | Err(PkgError::Missing) => {}
                    Err(e) => pkg.err = Some(e),
                }
            }
        }
        pkg.imports = imports;
        Ok(pkg)
    }

    /// The module (and the directories) that provide a package: first among
    /// the roots, then in the whole graph (modpkgload.importFromModules).
    /// The outer error is a failure to fetch; the inner one belongs to the
    /// package.
    fn import_from_modules(
        &self,
        rs: &Requirements,
        path: &str,
        default_major: &dyn Fn(&str) -> DefaultMajor,
    ) -> anyhow::Result<Result<(Provider, Vec<PathBuf>), PkgError>> {
        let ip = ImportPath::parse(path);
        let mut found: Vec<(Provider, Vec<PathBuf>)> = Vec::new();
        let local: Vec<PathBuf> =
            ["cue.mod/gen", "cue.mod/usr", "cue.mod/pkg"].iter().map(|d| self.root.join(d).join(&ip.path)).filter(|d| has_cue_files(d)).collect();
        if !local.is_empty() {
            found.push((Provider::Local, local));
        }
        let mut graph = None;
        loop {
            for prefix in ancestors(&ip.path) {
                let major = if ip.version.is_empty() {
                    match default_major(prefix).major() {
                        Some(m) => m.to_string(),
                        None => continue,
                    }
                } else {
                    ip.version.clone()
                };
                let mpath = format!("{prefix}@{major}");
                let selected = match graph {
                    None => rs.root_selected(&mpath),
                    Some(g) => {
                        let g: &super::Graph = g;
                        g.selected(&mpath).cloned()
                    }
                };
                let (provider, module_root, local_tree) = match selected {
                    None => continue,
                    Some(Selected::Main) => (Provider::Main, self.root.to_path_buf(), true),
                    Some(Selected::Version(version)) => {
                        let mv = ModuleVersion::of(mpath, version);
                        match self.src.fetch(&mv)? {
                            Fetched::Dir(dir) => (Provider::Module(mv), dir, false),
                            Fetched::Local(dir) => (Provider::Module(mv), dir, true),
                            Fetched::Missing(why) => return Ok(Err(PkgError::Other(format!("cannot fetch {mv}: {why}")))),
                        }
                    }
                };
                let dir = match ip.path.strip_prefix(prefix) {
                    Some("") => module_root.clone(),
                    Some(rest) => module_root.join(rest.trim_start_matches('/')),
                    None => continue,
                };
                if local_tree && nested_module_between(&dir, &module_root) {
                    continue;
                }
                if has_cue_files(&dir) {
                    found.push((provider, vec![dir]));
                }
            }
            if found.len() > 1 {
                found.reverse();
                let places: Vec<String> = found
                    .iter()
                    .map(|(p, d)| {
                        let name = match p {
                            Provider::Local => "local@".to_string(),
                            Provider::Main => format!("{}@", split_major(self.main).0),
                            Provider::Module(m) => m.to_string(),
                        };
                        format!("{name} ({})", d[0].display())
                    })
                    .collect();
                return Ok(Err(PkgError::Other(format!("ambiguous import: found package {path} in multiple locations: {}", places.join(", ")))));
            }
            if let Some(one) = found.pop() {
                return Ok(Ok(one));
            }
            if graph.is_some() {
                return Ok(Err(PkgError::Missing));
            }
            graph = Some(rs.graph(self.src).map_err(|e| e.context("cannot expand module graph"))?);
        }
    }

    /// The default major of `prefix` as the dependency `p` sees it.
    fn dependency_default_major(&self, p: &Provider, prefix: &str) -> DefaultMajor {
        let Provider::Module(m) = p else { return DefaultMajor::None };
        let Ok(mf) = module_file(self.src, m) else { return DefaultMajor::None };
        if let Some(major) = mf.defaults.get(prefix) {
            return DefaultMajor::Explicit(major.clone());
        }
        let mut found: Option<&str> = None;
        for d in &mf.deps {
            let (base, major) = split_major(&d.path);
            if base == prefix {
                match found {
                    Some(f) if f != major => return DefaultMajor::Ambiguous,
                    _ => found = Some(major),
                }
            }
        }
        found.map_or(DefaultMajor::None, |m| DefaultMajor::NonExplicit(m.to_string()))
    }

    /// For each import nothing provides, the newest release of every module
    /// path that could hold it (tidy.go resolveMissingImports).
    fn resolve_missing_imports(&self, rs: &Requirements, pkgs: &[Package]) -> anyhow::Result<(Vec<ModuleVersion>, BTreeMap<String, String>)> {
        let mut added: Vec<ModuleVersion> = Vec::new();
        let mut defaults = rs.defaults.clone();
        let missing: Vec<&Package> = pkgs.iter().filter(|p| p.err == Some(PkgError::Missing)).collect();
        // List the candidates' versions in parallel first.
        let mut queries = Vec::new();
        for pkg in &missing {
            for (_, query) in self.queries(rs, &ImportPath::parse(&pkg.path)) {
                queries.push(query);
            }
        }
        queries.sort();
        queries.dedup();
        let listed = self.src.versions(&queries)?;
        for pkg in missing {
            let ip = ImportPath::parse(&pkg.path);
            for (prefix, query) in self.queries(rs, &ip) {
                let versions = &listed[queries.binary_search(&query).expect("every query was listed")];
                let Some(latest) = semver::latest(versions) else { continue };
                let candidate = ModuleVersion::new(prefix, latest);
                if ip.version.is_empty() {
                    defaults.insert(prefix.to_string(), semver::major(latest).to_string());
                }
                if !added.contains(&candidate) {
                    added.push(candidate);
                }
            }
        }
        added.sort();
        Ok((added, defaults))
    }

    /// The (prefix, module path to list) pairs tried for a missing import.
    fn queries<'p>(&self, rs: &Requirements, ip: &'p ImportPath) -> Vec<(&'p str, String)> {
        let mut out = Vec::new();
        for prefix in ancestors(&ip.path) {
            let major = if ip.version.is_empty() {
                match rs.default_major(prefix) {
                    DefaultMajor::Ambiguous => continue,
                    d => d.major().unwrap_or("").to_string(),
                }
            } else {
                ip.version.clone()
            };
            if major.is_empty() {
                out.push((prefix, prefix.to_string()));
            } else {
                let mpath = format!("{prefix}@{major}");
                if rs.root_selected(&mpath).is_none() {
                    out.push((prefix, mpath));
                }
            }
        }
        out
    }

    /// Makes the packages' modules and the added modules roots, and raises
    /// roots to what the graph selects until nothing changes
    /// (tidy.go updateRoots).
    fn update_roots(&self, mut rs: Requirements, pkgs: &[Package], added: &[ModuleVersion]) -> anyhow::Result<Requirements> {
        let mut roots = rs.roots().to_vec();
        let mut upgraded = false;
        let mut local = rs.local;
        let mut spot: Vec<ModuleVersion> = Vec::new();
        for pkg in pkgs {
            if pkg.err.is_some() {
                continue;
            }
            let m = match &pkg.provider {
                None | Some(Provider::Main) => continue,
                Some(Provider::Local) => {
                    // cue roots the local pseudo-module once; doing so
                    // reloads the graph.
                    upgraded |= !local;
                    local = true;
                    continue;
                }
                Some(Provider::Module(m)) => m,
            };
            if rs.root_selected(m.module()).is_some() {
                if !spot.contains(m) {
                    spot.push(m.clone());
                }
            } else {
                roots.push(m.clone());
                upgraded = true;
            }
        }
        for m in added {
            match rs.root_selected(m.module()) {
                Some(v) if v.compare(&Selected::Version(m.version().to_string())).is_ge() => {}
                _ => {
                    roots.push(m.clone());
                    upgraded = true;
                }
            }
        }
        loop {
            let graph_loaded;
            if upgraded {
                rs = Requirements::new(&rs.main, roots, rs.defaults.clone()).with_local(local);
                rs.graph(self.src)?;
                graph_loaded = true;
            } else if rs.graph_is_loaded() {
                graph_loaded = true;
            } else if !self.spot_check(&rs, &spot) {
                rs.graph(self.src)?;
                graph_loaded = true;
            } else {
                graph_loaded = false;
            }
            roots = Vec::new();
            upgraded = false;
            let mut seen: HashSet<&str> = [rs.main.as_str()].into();
            for m in rs.roots() {
                if !seen.insert(m.module()) {
                    continue;
                }
                let selected = if graph_loaded { rs.graph(self.src)?.selected(m.module()).cloned() } else { rs.root_selected(m.module()) };
                let v = match selected {
                    Some(Selected::Version(v)) => v,
                    Some(Selected::Main) | None => String::new(),
                };
                if v != m.version() {
                    upgraded = true;
                }
                roots.push(ModuleVersion::of(m.module().to_string(), v));
            }
            if !upgraded {
                break;
            }
        }
        if roots == rs.roots() {
            return Ok(rs);
        }
        Ok(Requirements::new(&rs.main, roots, rs.defaults.clone()).with_local(local))
    }

    /// Whether the roots are consistent with what the given modules
    /// require (none of them asks for more than a root gives).
    fn spot_check(&self, rs: &Requirements, mods: &[ModuleVersion]) -> bool {
        let Ok(files) = self.src.module_files(mods) else { return false };
        files.iter().all(|mf| {
            mf.deps.iter().all(|d| match rs.root_selected(&d.path) {
                Some(v) => v.compare(&Selected::Version(d.version.clone())).is_ge(),
                None => true,
            })
        })
    }

    /// The final roots: exactly the modules that provide a loaded package,
    /// at the version it was loaded from (tidy.go tidyRoots).
    fn tidy_roots(&self, rs: &Requirements, pkgs: &[Package]) -> anyhow::Result<Requirements> {
        let mut roots = Vec::new();
        let mut is_root: HashSet<&str> = [self.main].into();
        for pkg in pkgs {
            if let Some(Provider::Module(m)) = &pkg.provider {
                if is_root.insert(m.module()) {
                    roots.push(m.clone());
                }
            }
        }
        // A module that replaces another is reached only through the
        // replacement: it stays a root at the version selected for it.
        for target in self.repls.iter().flat_map(|r| r.targets()) {
            if !is_root.contains(target.module()) {
                if let Some(Selected::Version(v)) = rs.root_selected(target.module()) {
                    roots.push(ModuleVersion::of(target.module().to_string(), v));
                }
            }
        }
        let tidy = Requirements::new(&rs.main, roots, rs.defaults.clone());
        tidy.graph(self.src)?;
        Ok(tidy)
    }
}

/// A directory holding at least one regular `.cue` file.
fn has_cue_files(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .is_ok_and(|entries| entries.flatten().any(|e| e.file_type().is_ok_and(|t| t.is_file()) && e.file_name().to_string_lossy().ends_with(".cue")))
}

/// Whether a `cue.mod/module.cue` sits in `dir` or a directory between it
/// and `root` (then `dir` belongs to a nested module).
fn nested_module_between(dir: &Path, root: &Path) -> bool {
    let mut d = dir;
    while d != root {
        if d.join("cue.mod/module.cue").exists() {
            return true;
        }
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    false
}
