//! `tidy`: the modules the main module's imports need, as `cue mod tidy`
//! computes them (cuelang.org/go/internal/mod/modload/tidy.go and
//! modpkgload): follow every import, add the newest release of a module
//! for each import nothing provides, keep only the modules that provide a
//! package.

use super::{
    is_stdlib, module_version, semver, split_major, Context, DefaultMajor, ImportPath, Requirements, LOCAL,
    MAIN_VERSION,
};
use crate::cue;
use crate::deps::ModuleVersion;
use crate::error::{fail, Exit, Failure};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
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

#[derive(Debug, Clone)]
struct Package {
    path: String,
    /// None for the standard library.
    module: Option<ModuleVersion>,
    err: Option<PkgError>,
    imports: Vec<String>,
}

/// Loads packages against one set of requirements.
struct Loader<'a> {
    cx: &'a Context,
    root: &'a Path,
    main: &'a str,
}

/// The outcome of tidying: the new roots and default majors.
pub struct Tidied {
    pub roots: Vec<ModuleVersion>,
    pub defaults: BTreeMap<String, String>,
}

/// Computes the tidy requirements of the module at `root`. With `check`,
/// no tag list is read to find a missing module: it is reported. (Module
/// files and zips of the dependencies may still be fetched into the
/// cache, as `cue mod tidy --check` does.)
pub fn tidy(cx: &Context, root: &Path, old: &Requirements, check: bool) -> anyhow::Result<Tidied> {
    let loader = Loader { cx, root, main: &old.main };
    let root_pkgs = cue::main_imports(root).map_err(Failure::from)?;
    let start = Requirements::new(&old.main, old.roots().to_vec(), old.defaults.clone());
    let (rs, pkgs) = loader.resolve_dependencies(&root_pkgs, start, check)?;
    if let Some(p) = pkgs.iter().find(|p| p.err.is_some()) {
        let err = p.err.as_ref().unwrap();
        if check && *err == PkgError::Missing {
            return Err(fail(Exit::Outdated, format!("module is not tidy: missing dependency providing package {}", p.path)));
        }
        return Err(fail(Exit::General, format!("failed to resolve {:?}: {}", p.path, err.describe(&p.path))));
    }
    let tidy = loader.tidy_roots(&rs, &pkgs)?;
    Ok(Tidied { roots: tidy.roots().to_vec(), defaults: tidy.defaults.clone() })
}

impl Loader<'_> {
    fn resolve_dependencies(
        &self,
        root_pkgs: &[String],
        mut rs: Requirements,
        check: bool,
    ) -> anyhow::Result<(Requirements, Vec<Package>)> {
        loop {
            let pkgs = self.load_packages(&rs, root_pkgs)?;
            if check {
                return Ok((rs, pkgs));
            }
            let (added, defaults) = self.resolve_missing_imports(&rs, &pkgs)?;
            if defaults != rs.defaults {
                rs = Requirements::new(&rs.main, rs.roots().to_vec(), defaults);
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
        let mut pkg = Package { path: path.to_string(), module: None, err: None, imports: vec![] };
        if is_stdlib(path) {
            return Ok(pkg);
        }
        let found = self.import_from_modules(rs, path, &|prefix| rs.default_major(prefix))?;
        let (module, dirs) = match found {
            Ok(found) => found,
            Err(e) => {
                pkg.err = Some(e);
                return Ok(pkg);
            }
        };
        pkg.module = Some(module.clone());
        let ip = ImportPath::parse(path);
        match ip.qualifier.as_str() {
            "" => return Ok(pkg),
            "_" => {
                pkg.err = Some(PkgError::Other(format!("_ is not a valid import path qualifier in {path:?}")));
                return Ok(pkg);
            }
            _ => {}
        }
        let is_main = module.module == self.main;
        let (mut included, mut excluded, mut imports) = (0, 0, Vec::new());
        for dir in &dirs {
            let read = cue::package_imports(dir, &ip.qualifier, is_main)
                .map_err(|e| fail(Exit::General, format!("cannot get imports of {path}: {}", e.message)))?;
            included += read.included;
            excluded += read.excluded;
            imports.extend(read.imports);
        }
        if included == 0 {
            let note = if excluded > 0 { format!(" ({excluded} files were excluded)") } else { String::new() };
            pkg.err = Some(PkgError::Other(format!(
                "no files in package directory with package name {:?}{note}",
                ip.qualifier
            )));
            return Ok(pkg);
        }
        imports.sort();
        imports.dedup();
        if !is_main {
            // An unversioned import in a dependency means the major that
            // dependency itself depends on.
            for imp in imports.iter_mut() {
                let mut ip = ImportPath::parse(imp);
                if !ip.version.is_empty() {
                    continue;
                }
                match self.import_from_modules(rs, imp, &|prefix| self.dependency_default_major(&module, prefix))? {
                    Ok((m, _)) if m.module != LOCAL => {
                        ip.version = semver::major(&m.version).to_string();
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
    ) -> anyhow::Result<Result<(ModuleVersion, Vec<PathBuf>), PkgError>> {
        let ip = ImportPath::parse(path);
        let mut found: Vec<(ModuleVersion, Vec<PathBuf>)> = Vec::new();
        let local: Vec<PathBuf> = ["cue.mod/gen", "cue.mod/usr", "cue.mod/pkg"]
            .iter()
            .map(|d| self.root.join(d).join(&ip.path))
            .filter(|d| has_cue_files(d))
            .collect();
        if !local.is_empty() {
            found.push((ModuleVersion { module: LOCAL.into(), version: MAIN_VERSION.into() }, local));
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
                let version = match graph {
                    None => match rs.root_selected(&mpath) {
                        Some(v) => v,
                        None => continue,
                    },
                    Some(g) => {
                        let g: &super::Graph = g;
                        g.selected(&mpath)
                    }
                };
                if version == "none" {
                    continue;
                }
                let mv = ModuleVersion { module: mpath, version };
                let (module_root, is_main) = if mv.module == self.main {
                    (self.root.to_path_buf(), true)
                } else {
                    match self.cx.fetch(&mv) {
                        Ok(dir) => (dir, false),
                        Err(e) if crate::error::exit_of(&e) == Exit::NotFound => {
                            return Ok(Err(PkgError::Other(format!("cannot fetch {mv}: {e:#}"))))
                        }
                        Err(e) => return Err(e),
                    }
                };
                let dir = match ip.path.strip_prefix(prefix) {
                    Some("") => module_root.clone(),
                    Some(rest) => module_root.join(rest.trim_start_matches('/')),
                    None => continue,
                };
                if is_main && nested_module_between(&dir, &module_root) {
                    continue;
                }
                if has_cue_files(&dir) {
                    found.push((mv, vec![dir]));
                }
            }
            if found.len() > 1 {
                found.reverse();
                let places: Vec<String> = found.iter().map(|(m, d)| format!("{m} ({})", d[0].display())).collect();
                return Ok(Err(PkgError::Other(format!(
                    "ambiguous import: found package {path} in multiple locations: {}",
                    places.join(", ")
                ))));
            }
            if let Some(one) = found.pop() {
                return Ok(Ok(one));
            }
            if graph.is_some() {
                return Ok(Err(PkgError::Missing));
            }
            graph = Some(rs.graph(self.cx).map_err(|e| super::graph_error("cannot expand module graph", e))?);
        }
    }

    /// The default major of `prefix` as the dependency `m` sees it.
    fn dependency_default_major(&self, m: &ModuleVersion, prefix: &str) -> DefaultMajor {
        if m.module == LOCAL {
            return DefaultMajor::None;
        }
        let Ok(mf) = self.cx.module_file(m) else { return DefaultMajor::None };
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
    fn resolve_missing_imports(
        &self,
        rs: &Requirements,
        pkgs: &[Package],
    ) -> anyhow::Result<(Vec<ModuleVersion>, BTreeMap<String, String>)> {
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
        self.cx.prefetch_versions(&queries)?;
        for pkg in missing {
            let ip = ImportPath::parse(&pkg.path);
            for (prefix, query) in self.queries(rs, &ip) {
                let versions = self.cx.versions(&query)?;
                let Some(latest) = semver::latest(&versions) else { continue };
                let candidate = module_version(prefix, latest);
                if ip.version.is_empty() {
                    defaults.insert(prefix.to_string(), semver::major(latest).to_string());
                }
                if !added.contains(&candidate) {
                    added.push(candidate);
                }
            }
        }
        super::sort_modules(&mut added);
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
        let mut spot: Vec<ModuleVersion> = Vec::new();
        for pkg in pkgs {
            let Some(m) = &pkg.module else { continue };
            if pkg.err.is_some() || m.module == self.main {
                continue;
            }
            if rs.root_selected(&m.module).is_some() {
                if !spot.contains(m) {
                    spot.push(m.clone());
                }
            } else {
                roots.push(m.clone());
                upgraded = true;
            }
        }
        for m in added {
            match rs.root_selected(&m.module) {
                Some(v) if semver::compare(&v, &m.version).is_ge() => {}
                _ => {
                    roots.push(m.clone());
                    upgraded = true;
                }
            }
        }
        loop {
            let graph_loaded;
            if upgraded {
                rs = Requirements::new(&rs.main, roots, rs.defaults.clone());
                rs.graph(self.cx)?;
                graph_loaded = true;
            } else if rs.graph_is_loaded() {
                graph_loaded = true;
            } else if !self.spot_check(&rs, &spot) {
                rs.graph(self.cx)?;
                graph_loaded = true;
            } else {
                graph_loaded = false;
            }
            roots = Vec::new();
            upgraded = false;
            let mut seen: HashSet<&str> = [rs.main.as_str()].into();
            for m in rs.roots() {
                if !seen.insert(m.module.as_str()) {
                    continue;
                }
                let v = if graph_loaded {
                    rs.graph(self.cx)?.selected(&m.module)
                } else {
                    rs.root_selected(&m.module).unwrap_or_default()
                };
                if v != m.version {
                    upgraded = true;
                }
                roots.push(ModuleVersion { module: m.module.clone(), version: v });
            }
            if !upgraded {
                break;
            }
        }
        if roots == rs.roots() {
            return Ok(rs);
        }
        Ok(Requirements::new(&rs.main, roots, rs.defaults.clone()))
    }

    /// Whether the roots are consistent with what the given modules
    /// require (none of them asks for more than a root gives).
    fn spot_check(&self, rs: &Requirements, mods: &[ModuleVersion]) -> bool {
        let mods: Vec<ModuleVersion> = mods.iter().filter(|m| m.module != LOCAL).cloned().collect();
        if self.cx.prefetch_module_files(&mods).is_err() {
            return false;
        }
        mods.iter().all(|m| match self.cx.module_file(m) {
            Ok(mf) => mf.deps.iter().all(|d| match rs.root_selected(&d.path) {
                Some(v) => semver::compare(&v, &d.version).is_ge(),
                None => true,
            }),
            Err(_) => false,
        })
    }

    /// The final roots: exactly the modules that provide a loaded package,
    /// at the version it was loaded from (tidy.go tidyRoots).
    fn tidy_roots(&self, rs: &Requirements, pkgs: &[Package]) -> anyhow::Result<Requirements> {
        let mut roots = Vec::new();
        let mut is_root: HashMap<String, ()> = [(self.main.to_string(), ())].into();
        for pkg in pkgs {
            if let Some(m) = &pkg.module {
                if m.module != self.main && is_root.insert(m.module.clone(), ()).is_none() {
                    roots.push(m.clone());
                }
            }
        }
        let tidy = Requirements::new(&rs.main, roots, rs.defaults.clone());
        tidy.graph(self.cx)?;
        Ok(tidy)
    }
}

/// `a.b/c/d`, `a.b/c`, `a.b`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| p.rfind('/').map(|i| &p[..i]))
}

/// A directory holding at least one regular `.cue` file.
fn has_cue_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| e.file_type().is_ok_and(|t| t.is_file()) && e.file_name().to_string_lossy().ends_with(".cue"))
    })
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

#[cfg(test)]
mod tests {
    use super::ancestors;

    #[test]
    fn ancestors_run_from_the_path_to_its_first_element() {
        assert_eq!(ancestors("a.b/c/d").collect::<Vec<_>>(), ["a.b/c/d", "a.b/c", "a.b"]);
        assert_eq!(ancestors("a.b").collect::<Vec<_>>(), ["a.b"]);
    }
}
