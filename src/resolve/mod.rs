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
//! Everything it reads of the world comes through a [`Source`]; it prints
//! nothing and writes nothing.

pub mod get;
pub mod replace;
#[cfg(test)]
mod tests;
pub mod tidy;

use crate::cue::ModuleFile;
use crate::module::{semver, split_major, ModuleVersion};
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;

/// What resolution reads: module files, version lists and module contents.
/// Implementations remember what they have read for the whole command.
pub trait Source {
    /// The module files of dependencies (parsed strictly, as cue reads a
    /// dependency's), in the order asked.
    fn module_files(&self, mvs: &[ModuleVersion]) -> anyhow::Result<Vec<Rc<ModuleFile>>>;
    /// The versions of each path (`path@vN`: that major; `path`: every
    /// major), sorted as cue sorts them, in the order asked.
    fn versions(&self, paths: &[String]) -> anyhow::Result<Vec<Rc<Vec<String>>>>;
    /// The directory holding a version's files.
    fn fetch(&self, mv: &ModuleVersion) -> anyhow::Result<Fetched>;
}

/// The outcome of [`Source::fetch`].
pub enum Fetched {
    Dir(PathBuf),
    /// A directory of the user's (a replacement): nested modules in it are
    /// left out, as in the main module.
    Local(PathBuf),
    /// The version does not exist; why, in one line.
    Missing(String),
}

fn module_file(src: &dyn Source, mv: &ModuleVersion) -> anyhow::Result<Rc<ModuleFile>> {
    Ok(src.module_files(std::slice::from_ref(mv))?.remove(0))
}

/// A module's version in a graph: the main module stands above every
/// version of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selected {
    Main,
    Version(String),
}

impl Selected {
    fn compare(&self, other: &Selected) -> Ordering {
        match (self, other) {
            (Selected::Main, Selected::Main) => Ordering::Equal,
            (Selected::Main, _) => Ordering::Greater,
            (_, Selected::Main) => Ordering::Less,
            (Selected::Version(a), Selected::Version(b)) => semver::compare(a, b),
        }
    }
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
    /// Whether packages of cue.mod/{gen,usr,pkg} are among the roots
    /// (cue counts them as a pseudo-module; it changes when tidy reloads
    /// the graph, never a version).
    local: bool,
    graph: OnceCell<Graph>,
}

impl Requirements {
    pub fn new(main: &str, mut roots: Vec<ModuleVersion>, defaults: BTreeMap<String, String>) -> Requirements {
        roots.sort();
        let mut max_root: HashMap<String, String> = HashMap::new();
        let mut default_status: HashMap<String, DefaultMajor> = HashMap::new();
        for (base, major) in &defaults {
            default_status.insert(base.clone(), DefaultMajor::Explicit(major.clone()));
        }
        for r in &roots {
            let keep = max_root.get(r.module()).is_some_and(|v| semver::compare(v, r.version()).is_ge());
            if !keep {
                max_root.insert(r.module().to_string(), r.version().to_string());
            }
            let (base, major) = split_major(r.module());
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
        Requirements { main: main.to_string(), roots, max_root, defaults, default_status, local: false, graph: OnceCell::new() }
    }

    fn with_local(mut self, local: bool) -> Requirements {
        self.local = local;
        self
    }

    /// The requirements a module file states.
    pub fn of(mf: &ModuleFile) -> Requirements {
        let roots = mf.deps.iter().map(|d| ModuleVersion::of(d.path.clone(), d.version.clone())).collect();
        Requirements::new(&mf.module, roots, mf.defaults.clone())
    }

    pub fn roots(&self) -> &[ModuleVersion] {
        &self.roots
    }

    /// The version of a root path: the main module's, the highest listed
    /// version for a root, None otherwise.
    pub fn root_selected(&self, path: &str) -> Option<Selected> {
        if path == self.main {
            return Some(Selected::Main);
        }
        self.max_root.get(path).cloned().map(Selected::Version)
    }

    pub fn default_major(&self, base: &str) -> DefaultMajor {
        self.default_status.get(base).cloned().unwrap_or(DefaultMajor::None)
    }

    pub fn graph_is_loaded(&self) -> bool {
        self.graph.get().is_some()
    }

    /// The module graph: the roots and, one level down, their own deps.
    pub fn graph(&self, src: &dyn Source) -> anyhow::Result<&Graph> {
        if let Some(g) = self.graph.get() {
            return Ok(g);
        }
        let mut g = Graph { selected: HashMap::new() };
        g.selected.insert(self.main.clone(), Selected::Main);
        for r in &self.roots {
            g.require(r.module(), Selected::Version(r.version().to_string()));
        }
        let files = src.module_files(&self.roots).map_err(|e| e.context("cannot read the module graph"))?;
        for mf in files {
            for d in &mf.deps {
                g.require(&d.path, Selected::Version(d.version.clone()));
            }
        }
        Ok(self.graph.get_or_init(|| g))
    }
}

/// Selected versions: the highest version of each module path required
/// anywhere in the graph.
pub struct Graph {
    selected: HashMap<String, Selected>,
}

impl Graph {
    fn require(&mut self, module: &str, version: Selected) {
        let higher = self.selected.get(module).is_none_or(|v| version.compare(v).is_gt());
        if higher {
            self.selected.insert(module.to_string(), version);
        }
    }

    /// The selected version of a path, None when nothing requires it.
    pub fn selected(&self, path: &str) -> Option<&Selected> {
        self.selected.get(path)
    }

    /// Every selected module but the main one, sorted as cue sorts them.
    pub fn build_list(&self) -> Vec<ModuleVersion> {
        let mut list: Vec<ModuleVersion> = self
            .selected
            .iter()
            .filter_map(|(path, v)| match v {
                Selected::Version(v) => Some(ModuleVersion::of(path.clone(), v.clone())),
                Selected::Main => None,
            })
            .collect();
        list.sort();
        list
    }
}
