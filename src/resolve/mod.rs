//! Dependency resolution, as cue does it. CUE keeps this internal
//! (cuelang.org/go/internal/mod/modload, modrequirements, mvs), so it is
//! written again here and tested against the real `cue` CLI:
//!
//! - the module graph is the main module's `deps` plus, one level down,
//!   the `deps` of each of them; a module's selected version is the
//!   highest version anyone in that graph asks for (`Requirements`);
//! - `get` replaces versions and recomputes the graph (`get.rs`);
//! - `tidy` follows the imports of every package (`tidy.rs`).
//!
//! The data come from module files in the CUE cache first and the registry
//! second, and tag lists from the registry, through `Context`.

pub mod get;
pub mod semver;
pub mod tidy;

use crate::cache::Entry;
use crate::config::Routing;
use crate::cue::{self, ParsedModuleFile};
use crate::deps::{self, ModuleVersion};
use crate::error::{fail, Exit, Failure};
use crate::registry::{self, Registry};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::deps::PARALLEL;

/// The version cue gives the main module: above every other.
pub const MAIN_VERSION: &str = "";

/// The world dependency resolution reads: the cache, then the registry.
/// Every module file and tag list is read at most once per command.
pub struct Context {
    pub cache_dir: PathBuf,
    pub routing: Routing,
    registry: Registry,
    rt: tokio::runtime::Runtime,
    module_files: RefCell<HashMap<ModuleVersion, Rc<ParsedModuleFile>>>,
    versions: RefCell<HashMap<String, Rc<Vec<String>>>>,
}

impl Context {
    pub fn new(cache_dir: &Path) -> anyhow::Result<Context> {
        Ok(Context {
            cache_dir: cache_dir.to_path_buf(),
            routing: Routing::load()?,
            registry: Registry::new(),
            rt: registry::runtime(),
            module_files: RefCell::default(),
            versions: RefCell::default(),
        })
    }

    /// The module file of a dependency, parsed strictly as cue does: from
    /// the cache's `.mod` file, else from the registry (then cached).
    pub fn module_file(&self, mv: &ModuleVersion) -> anyhow::Result<Rc<ParsedModuleFile>> {
        self.prefetch_module_files(std::slice::from_ref(mv))?;
        Ok(self.module_files.borrow()[mv].clone())
    }

    /// Reads the module files of many versions, fetching the missing ones
    /// in parallel.
    pub fn prefetch_module_files(&self, mvs: &[ModuleVersion]) -> anyhow::Result<()> {
        let mut missing = Vec::new();
        for mv in mvs {
            if self.module_files.borrow().contains_key(mv) || missing.contains(mv) {
                continue;
            }
            if crate::catalog::is_embedded(&mv.module, &mv.version) {
                crate::catalog::ensure_in_cache(&self.cache_dir)?;
            }
            let path = Entry::new(&self.cache_dir, &mv.module, &mv.version).mod_file();
            match std::fs::read_to_string(&path) {
                Ok(text) => self.remember(mv, &text)?,
                Err(_) => missing.push(mv.clone()),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let fetched: Vec<(ModuleVersion, Vec<u8>)> = self.rt.block_on(
            stream::iter(missing)
                .map(|mv| async move {
                    let loc = self.routing.resolve(&mv.module, &mv.version)?;
                    let data = deps::fetch_module_file(&self.registry, &loc, &mv).await?;
                    anyhow::Ok((mv, data))
                })
                .buffer_unordered(PARALLEL)
                .try_collect(),
        )?;
        for (mv, data) in fetched {
            let text = String::from_utf8(data).map_err(|_| fail(Exit::General, format!("{mv}: module.cue is not UTF-8")))?;
            let entry = Entry::new(&self.cache_dir, &mv.module, &mv.version);
            std::fs::create_dir_all(entry.mod_file().parent().expect("a .mod file has a parent"))?;
            crate::module::write_cached(&entry.mod_file(), text.as_bytes())?;
            self.remember(&mv, &text)?;
        }
        Ok(())
    }

    fn remember(&self, mv: &ModuleVersion, text: &str) -> anyhow::Result<()> {
        let parsed = cue::parse_module_file(text, &mv.to_string(), true)
            .map_err(|e| fail(Exit::General, format!("cannot parse module file from {mv}: {}", e.message)))?;
        self.module_files.borrow_mut().insert(mv.clone(), Rc::new(parsed));
        Ok(())
    }

    /// The versions a registry holds of a module: `path@vN` lists that major
    /// only, a path without major every major. Sorted as cue sorts them.
    pub fn versions(&self, path: &str) -> anyhow::Result<Rc<Vec<String>>> {
        self.prefetch_versions(&[path.to_string()])?;
        Ok(self.versions.borrow()[path].clone())
    }

    /// Lists the versions of many module paths, in parallel.
    pub fn prefetch_versions(&self, paths: &[String]) -> anyhow::Result<()> {
        let wanted: Vec<&String> = paths.iter().filter(|p| !self.versions.borrow().contains_key(*p)).collect();
        let listed: Vec<(String, Vec<String>)> = self.rt.block_on(
            stream::iter(wanted)
                .map(|path| async move {
                    let (base, major) = split_major(path);
                    let loc = self.routing.resolve(base, "")?;
                    let tags = self.registry.tags(&loc).await?;
                    // Tags carry the routing's tag prefix; only SemVer tags
                    // of the asked major are versions.
                    let mut versions: Vec<String> = tags
                        .into_iter()
                        .filter_map(|t| t.strip_prefix(loc.tag.as_str()).map(str::to_string))
                        .filter(|v| semver::is_valid(v) && (major.is_empty() || semver::major(v) == major))
                        .collect();
                    semver::sort(&mut versions);
                    anyhow::Ok((path.clone(), versions))
                })
                .buffer_unordered(PARALLEL)
                .try_collect(),
        )?;
        for (path, versions) in listed {
            self.versions.borrow_mut().insert(path, Rc::new(versions));
        }
        Ok(())
    }

    /// The extracted module in the cache, downloading it when missing.
    pub fn fetch(&self, mv: &ModuleVersion) -> anyhow::Result<PathBuf> {
        self.fetch_all(std::slice::from_ref(mv), false)?;
        Ok(Entry::new(&self.cache_dir, &mv.module, &mv.version).dir().to_path_buf())
    }

    /// Makes every module of a list complete in the cache, downloading the
    /// missing ones in parallel; with `replace`, downloading all of them
    /// again (`--force`).
    pub fn fetch_all(&self, mvs: &[ModuleVersion], replace: bool) -> anyhow::Result<()> {
        let mvs: Vec<ModuleVersion> = mvs.iter().filter(|mv| mv.module != LOCAL).cloned().collect();
        let wanted = if replace { mvs } else { deps::missing_from_cache(&mvs, &self.cache_dir)? };
        if wanted.is_empty() {
            return Ok(());
        }
        self.rt.block_on(deps::download_all(&self.registry, &self.routing, &wanted, &self.cache_dir, replace))
    }
}

/// `example.com/x@v1` -> (`example.com/x`, `v1`); no major -> (path, "").
pub fn split_major(path: &str) -> (&str, &str) {
    path.split_once('@').unwrap_or((path, ""))
}

/// The pseudo-module of packages under cue.mod/{gen,usr,pkg}.
pub const LOCAL: &str = "local";

/// A module version with the major of its version in its path.
pub fn module_version(base: &str, version: &str) -> ModuleVersion {
    ModuleVersion { module: format!("{base}@{}", semver::major(version)), version: version.to_string() }
}

/// cue's order of module versions: path (bytes), then version; the main
/// module's "" above every version.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    match (a == MAIN_VERSION, b == MAIN_VERSION) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => semver::compare(a, b),
    }
}

fn sort_modules(mvs: &mut [ModuleVersion]) {
    mvs.sort_by(|a, b| a.module.cmp(&b.module).then_with(|| semver::compare(&a.version, &b.version)));
}

/// How the major version of an import path without one is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultMajor {
    /// `default: true` in module.cue (or the module's own path).
    Explicit(String),
    /// The only major of that path among the dependencies.
    NonExplicit(String),
    /// Several majors and no default.
    Ambiguous,
    None,
}

impl DefaultMajor {
    fn major(&self) -> Option<&str> {
        match self {
            DefaultMajor::Explicit(m) | DefaultMajor::NonExplicit(m) => Some(m),
            _ => None,
        }
    }
}

/// The main module's requirements: its roots (module.cue `deps`) and
/// default majors, and the module graph they imply.
pub struct Requirements {
    pub main: String,
    roots: Vec<ModuleVersion>,
    max_root: HashMap<String, String>,
    /// Explicit defaults by base path (the main module's own included).
    pub defaults: BTreeMap<String, String>,
    default_status: HashMap<String, DefaultMajor>,
    graph: OnceCell<Graph>,
}

impl Requirements {
    pub fn new(main: &str, mut roots: Vec<ModuleVersion>, defaults: BTreeMap<String, String>) -> Requirements {
        sort_modules(&mut roots);
        let mut max_root: HashMap<String, String> = HashMap::new();
        let mut default_status: HashMap<String, DefaultMajor> = HashMap::new();
        for (base, major) in &defaults {
            default_status.insert(base.clone(), DefaultMajor::Explicit(major.clone()));
        }
        for r in &roots {
            let keep = max_root.get(&r.module).is_some_and(|v| semver::compare(v, &r.version).is_ge());
            if !keep {
                max_root.insert(r.module.clone(), r.version.clone());
            }
            if r.module == LOCAL {
                continue;
            }
            let (base, major) = split_major(&r.module);
            match default_status.get(base) {
                Some(DefaultMajor::Explicit(_)) | Some(DefaultMajor::Ambiguous) => {}
                Some(DefaultMajor::NonExplicit(_)) => {
                    default_status.insert(base.to_string(), DefaultMajor::Ambiguous);
                }
                _ => {
                    default_status.insert(base.to_string(), DefaultMajor::NonExplicit(major.to_string()));
                }
            }
        }
        Requirements { main: main.to_string(), roots, max_root, defaults, default_status, graph: OnceCell::new() }
    }

    pub fn roots(&self) -> &[ModuleVersion] {
        &self.roots
    }

    /// The version of a root path: "" for the main module, the highest
    /// listed version for a root, None otherwise.
    pub fn root_selected(&self, path: &str) -> Option<String> {
        if path == self.main {
            return Some(MAIN_VERSION.to_string());
        }
        self.max_root.get(path).cloned()
    }

    pub fn default_major(&self, base: &str) -> DefaultMajor {
        self.default_status.get(base).cloned().unwrap_or(DefaultMajor::None)
    }

    pub fn graph_is_loaded(&self) -> bool {
        self.graph.get().is_some()
    }

    /// The module graph: the roots and, one level down, their own deps.
    pub fn graph(&self, cx: &Context) -> anyhow::Result<&Graph> {
        if let Some(g) = self.graph.get() {
            return Ok(g);
        }
        let mut g = Graph { selected: HashMap::new() };
        g.selected.insert(self.main.clone(), MAIN_VERSION.to_string());
        for r in &self.roots {
            g.require(r);
        }
        let readable: Vec<ModuleVersion> =
            self.roots.iter().filter(|r| r.module != LOCAL && r.version != "none").cloned().collect();
        cx.prefetch_module_files(&readable).map_err(|e| graph_error("cannot read the module graph", e))?;
        for r in &readable {
            for d in &cx.module_file(r)?.deps {
                g.require(&ModuleVersion { module: d.path.clone(), version: d.version.clone() });
            }
        }
        Ok(self.graph.get_or_init(|| g))
    }
}

/// A failure to read the graph keeps its exit code (unreachable, denied,
/// not found) under a message saying what was being done.
pub fn graph_error(doing: &str, e: anyhow::Error) -> anyhow::Error {
    let exit = crate::error::exit_of(&e);
    fail(exit, format!("{doing}: {e:#}"))
}

/// Selected versions: the highest version of each module path required
/// anywhere in the graph.
pub struct Graph {
    selected: HashMap<String, String>,
}

impl Graph {
    fn require(&mut self, mv: &ModuleVersion) {
        let higher = match self.selected.get(&mv.module) {
            Some(v) => compare_versions(&mv.version, v).is_gt(),
            None => true,
        };
        if higher {
            self.selected.insert(mv.module.clone(), mv.version.clone());
        }
    }

    /// The selected version of a path, "none" when nothing requires it.
    pub fn selected(&self, path: &str) -> String {
        self.selected.get(path).cloned().unwrap_or_else(|| "none".to_string())
    }

    /// Every selected module but the main one, sorted as cue sorts them.
    pub fn build_list(&self, main: &str) -> Vec<ModuleVersion> {
        let mut list: Vec<ModuleVersion> = self
            .selected
            .iter()
            .filter(|(path, _)| path.as_str() != main)
            .map(|(path, v)| ModuleVersion { module: path.clone(), version: v.clone() })
            .collect();
        sort_modules(&mut list);
        list
    }
}

/// An import path split as cue splits it: `path[@vN][:qualifier]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportPath {
    pub path: String,
    pub version: String,
    pub qualifier: String,
}

impl ImportPath {
    pub fn parse(p: &str) -> ImportPath {
        let (mut rest, mut qualifier, mut explicit) = (p, String::new(), false);
        if let Some(i) = p.rfind(':') {
            if p[i..].find('/').is_none() {
                rest = &p[..i];
                qualifier = p[i + 1..].to_string();
                explicit = true;
            }
        }
        let (path, version) = match rest.split_once('@') {
            Some((path, version)) => (path.to_string(), version.to_string()),
            None => (rest.to_string(), String::new()),
        };
        if !explicit {
            let last = path.rsplit('/').next().unwrap_or("");
            if is_identifier(last) {
                qualifier = last.to_string();
            }
        }
        ImportPath { path, version, qualifier }
    }

    /// The canonical form: the qualifier only when it differs from the
    /// one the path implies.
    pub fn canonical(&self) -> String {
        let mut s = self.path.clone();
        if !self.version.is_empty() {
            s = format!("{s}@{}", self.version);
        }
        let implied = self.path.rsplit('/').next().unwrap_or("");
        if !self.qualifier.is_empty() && !(is_identifier(implied) && implied == self.qualifier) {
            s = format!("{s}:{}", self.qualifier);
        }
        s
    }
}

/// A CUE identifier usable as a package name.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        && !s.starts_with('#')
}

/// cue's rule: an import path whose first element has no dot is the
/// standard library.
pub fn is_stdlib(path: &str) -> bool {
    !path.split('/').next().unwrap_or("").contains('.')
}

/// The module file of the main module, read leniently as cue reads it.
pub fn main_module_file(root: &Path) -> anyhow::Result<(String, ParsedModuleFile)> {
    let path = root.join(crate::module::MODULE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| fail(Exit::General, format!("cannot read {}: {e}", path.display())))?;
    let parsed = cue::parse_module_file(&text, &path.to_string_lossy(), false).map_err(Failure::from)?;
    Ok((text, parsed))
}

/// The requirements module.cue states.
pub fn requirements_of(parsed: &ParsedModuleFile) -> Requirements {
    let roots = parsed.deps.iter().map(|d| ModuleVersion { module: d.path.clone(), version: d.version.clone() }).collect();
    Requirements::new(&parsed.module, roots, parsed.defaults.clone())
}

/// module.cue with `deps` set to `roots`, formatted as cue formats it. A
/// dependency is the default major of its path when `defaults` says so.
pub fn write_deps(text: &str, filename: &str, roots: &[ModuleVersion], defaults: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let deps: Vec<cue::DepEntry> = roots
        .iter()
        .filter(|m| m.module != LOCAL)
        .map(|m| {
            let (base, major) = split_major(&m.module);
            cue::DepEntry {
                path: m.module.clone(),
                version: m.version.clone(),
                default: defaults.get(base).is_some_and(|d| d == major),
            }
        })
        .collect();
    Ok(cue::update_module_file(text, filename, &deps).map_err(Failure::from)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_paths_split_and_canonicalise_as_cue_does() {
        let ip = ImportPath::parse("example.com/foo/bar@v1:baz");
        assert_eq!((ip.path.as_str(), ip.version.as_str(), ip.qualifier.as_str()), ("example.com/foo/bar", "v1", "baz"));
        assert_eq!(ImportPath::parse("example.com/foo/bar@v1:bar").canonical(), "example.com/foo/bar@v1");
        assert_eq!(ImportPath::parse("example.com/foo/bar-baz").qualifier, "");
        assert_eq!(ImportPath::parse("example.com/x:y").canonical(), "example.com/x:y");
        assert!(is_stdlib("strings") && is_stdlib("encoding/json") && !is_stdlib("example.com/x"));
    }

    #[test]
    fn default_majors_follow_the_roots() {
        let mv = |m: &str, v: &str| ModuleVersion { module: m.into(), version: v.into() };
        let rs = Requirements::new(
            "main.test/m@v0",
            vec![mv("a.test/a@v1", "v1.0.0"), mv("b.test/b@v1", "v1.0.0"), mv("b.test/b@v2", "v2.0.0")],
            [("main.test/m".to_string(), "v0".to_string())].into(),
        );
        assert_eq!(rs.default_major("a.test/a"), DefaultMajor::NonExplicit("v1".into()));
        assert_eq!(rs.default_major("b.test/b"), DefaultMajor::Ambiguous);
        assert_eq!(rs.default_major("main.test/m"), DefaultMajor::Explicit("v0".into()));
        assert_eq!(rs.root_selected("main.test/m@v0").as_deref(), Some(""));
    }
}
