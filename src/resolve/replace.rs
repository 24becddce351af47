//! The replacements of the main-module view (cue.mod/local-module.cue),
//! applied as cue's replacing registry applies them
//! (internal/mod/modpkgload/replace.go): a module replaced by a directory
//! is read from that directory; a module replaced by another module is
//! read from that module's version in the graph, and the replacement's
//! imports of its own packages are read as the original's.

use super::{Fetched, Source};
use crate::cue::{self, ModuleFile};
use crate::error::{fail, Kind};
use crate::module::{semver, ImportPath, ModuleVersion};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// What a replaceWith value names: a directory (it starts with `.` or
/// `/`), or a module `base[@vN|@vX.Y.Z]`.
pub enum Target<'a> {
    Dir(&'a str),
    Module { base: &'a str, version: &'a str },
}

/// Whether a replaceWith value names a directory.
pub fn is_dir(replace_with: &str) -> bool {
    matches!(target(replace_with), Target::Dir(_))
}

pub fn target(replace_with: &str) -> Target<'_> {
    if replace_with.starts_with('.') || replace_with.starts_with('/') {
        return Target::Dir(replace_with);
    }
    match replace_with.rsplit_once('@') {
        Some((base, version)) => Target::Module { base, version },
        None => Target::Module { base: replace_with, version: "" },
    }
}

/// A replaceWith value as cue's tidy writes it (tidy.go normalizeReplace):
/// a module target that names a full version is reduced to its major
/// (`example.com/bar@v0.1.0` -> `example.com/bar@v0`); a directory, a bare
/// path or a major stay as they are.
pub fn normalized(replace_with: &str) -> String {
    match target(replace_with) {
        Target::Module { base, version } if !version.is_empty() => format!("{base}@{}", semver::major(version)),
        _ => replace_with.to_string(),
    }
}

/// The replacements of a main-module view.
#[derive(Default)]
pub struct Replacements {
    /// Module path with major -> the directory that replaces it.
    dirs: BTreeMap<String, PathBuf>,
    /// Module path with major -> the module version that replaces it.
    modules: BTreeMap<String, ModuleVersion>,
    /// Replacement base path -> original base path (module targets only).
    reverse: BTreeMap<String, String>,
}

impl Replacements {
    /// The replacements `local` (the main-module view, its targets listed
    /// as dependencies) states; directories are relative to `root`.
    pub fn new(root: &Path, local: &ModuleFile) -> anyhow::Result<Replacements> {
        let mut r = Replacements::default();
        for d in local.deps.iter().filter(|d| !d.replace_with.is_empty()) {
            let invalid = |why: String| fail(Kind::Other, format!("invalid replace value for {}: {why}", d.path));
            match target(&d.replace_with) {
                Target::Dir(dir) => {
                    r.dirs.insert(d.path.clone(), root.join(dir));
                }
                Target::Module { base, version } => {
                    let major = match semver::major(version) {
                        "" => local.defaults.get(base).cloned().ok_or_else(|| {
                            invalid(format!("replacement {:?} has no major version and no default major version is set for it", d.replace_with))
                        })?,
                        m => m.to_string(),
                    };
                    let path = format!("{base}@{major}");
                    let listed = local.deps.iter().find(|t| t.path == path && !t.version.is_empty()).map(|t| t.version.clone());
                    let version = listed
                        .or_else(|| semver::is_canonical(version).then(|| version.to_string()))
                        .ok_or_else(|| invalid(format!("replacement target {path:?} must be listed as a dependency with a version")))?;
                    r.reverse.insert(base.to_string(), crate::module::base_path(&d.path).to_string());
                    r.modules.insert(d.path.clone(), ModuleVersion::of(path, version));
                }
            }
        }
        Ok(r)
    }

    pub fn is_replaced(&self, module: &str) -> bool {
        self.dirs.contains_key(module) || self.modules.contains_key(module)
    }

    /// The module versions that replace others.
    pub fn targets(&self) -> impl Iterator<Item = &ModuleVersion> {
        self.modules.values()
    }

    /// An import of a replacing module's own packages, as the original's
    /// (cue's Replacements.CanonicalImportPath).
    pub fn canonical_import(&self, import: &str) -> String {
        let ip = ImportPath::parse(import);
        let mut p = ip.path.as_str();
        loop {
            if let Some(original) = self.reverse.get(p) {
                let explicit = import.rsplit('/').next().is_some_and(|last| last.contains(':'));
                let mut out = format!("{original}{}", &ip.path[p.len()..]);
                if !ip.version.is_empty() {
                    out = format!("{out}@{}", ip.version);
                }
                if explicit {
                    out = format!("{out}:{}", ip.qualifier);
                }
                return out;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return import.to_string(),
            }
        }
    }
}

/// A [`Source`] with the replacements applied.
pub struct Replaced<'a> {
    inner: &'a dyn Source,
    repls: &'a Replacements,
    parsed: RefCell<HashMap<String, Rc<ModuleFile>>>,
}

impl<'a> Replaced<'a> {
    pub fn new(inner: &'a dyn Source, repls: &'a Replacements) -> Replaced<'a> {
        Replaced { inner, repls, parsed: RefCell::default() }
    }

    fn dir_module_file(&self, module: &str, dir: &Path) -> anyhow::Result<Rc<ModuleFile>> {
        if let Some(mf) = self.parsed.borrow().get(module) {
            return Ok(mf.clone());
        }
        let path = dir.join("cue.mod/module.cue");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| fail(Kind::Other, format!("cannot read module file in replacement directory: {}: {e}", path.display())))?;
        let mf = cue::parse_module_file(&text, &path.to_string_lossy(), false)
            .map_err(|e| fail(Kind::Other, format!("cannot parse module file in replacement directory: {}", e.message)))?;
        let mf = Rc::new(mf);
        self.parsed.borrow_mut().insert(module.to_string(), mf.clone());
        Ok(mf)
    }

    /// The version read in place of `mv`.
    fn read_as(&self, mv: &ModuleVersion) -> ModuleVersion {
        self.repls.modules.get(mv.module()).cloned().unwrap_or_else(|| mv.clone())
    }
}

impl Source for Replaced<'_> {
    fn module_files(&self, mvs: &[ModuleVersion]) -> anyhow::Result<Vec<Rc<ModuleFile>>> {
        let others: Vec<ModuleVersion> = mvs.iter().filter(|mv| !self.repls.dirs.contains_key(mv.module())).map(|mv| self.read_as(mv)).collect();
        let mut fetched = self.inner.module_files(&others)?.into_iter();
        mvs.iter()
            .map(|mv| match self.repls.dirs.get(mv.module()) {
                Some(dir) => self.dir_module_file(mv.module(), dir),
                None => Ok(fetched.next().expect("one module file per version")),
            })
            .collect()
    }

    fn versions(&self, paths: &[String]) -> anyhow::Result<Vec<Rc<Vec<String>>>> {
        self.inner.versions(paths)
    }

    fn fetch(&self, mv: &ModuleVersion) -> anyhow::Result<Fetched> {
        match self.repls.dirs.get(mv.module()) {
            Some(dir) => Ok(Fetched::Local(dir.clone())),
            None => self.inner.fetch(&self.read_as(mv)),
        }
    }
}
