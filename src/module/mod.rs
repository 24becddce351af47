//! The vocabulary every layer speaks: module paths and their majors,
//! versions, module versions and import paths, as cue's `mod/module`
//! defines them. It imports nothing else of the crate.

pub mod semver;

use std::fmt;

/// Relative path of the module file inside a module root.
pub const MODULE_FILE: &str = "cue.mod/module.cue";

/// `example.com/x@v1` -> (`example.com/x`, `v1`); no major -> (path, "").
pub fn split_major(path: &str) -> (&str, &str) {
    path.split_once('@').unwrap_or((path, ""))
}

/// The module path without its major version.
pub fn base_path(path: &str) -> &str {
    split_major(path).0
}

/// A module version, with its major in the path: (`example.com/x@v1`,
/// `v1.2.3`). Ordered as cue orders them: by path (bytes), then by
/// semantic version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModuleVersion {
    module: String,
    version: String,
}

impl ModuleVersion {
    /// `base@vN` at `version`, the major taken from the version.
    pub fn new(base: &str, version: &str) -> ModuleVersion {
        ModuleVersion { module: format!("{base}@{}", semver::major(version)), version: version.to_string() }
    }

    /// A module path with its major (`example.com/x@v1`) at `version`, as
    /// a module file names its dependencies.
    pub fn of(module: impl Into<String>, version: impl Into<String>) -> ModuleVersion {
        ModuleVersion { module: module.into(), version: version.into() }
    }

    /// The module path with its major version: `example.com/x@v1`.
    pub fn module(&self) -> &str {
        &self.module
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The path and the version, taken apart.
    pub fn into_parts(self) -> (String, String) {
        (self.module, self.version)
    }

    pub fn base(&self) -> &str {
        base_path(&self.module)
    }
}

impl fmt::Display for ModuleVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.base(), self.version)
    }
}

impl Ord for ModuleVersion {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Versions equal by precedence (build metadata) still differ: by
        // their text, so that the order agrees with equality.
        self.module.cmp(&other.module).then_with(|| semver::compare(&self.version, &other.version)).then_with(|| self.version.cmp(&other.version))
    }
}

impl PartialOrd for ModuleVersion {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The inverse of [`escape`].
pub fn unescape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut bang = false;
    for c in path.chars() {
        match (bang, c) {
            (false, '!') => bang = true,
            (true, c) => {
                out.push(c.to_ascii_uppercase());
                bang = false;
            }
            (false, c) => out.push(c),
        }
    }
    out
}

/// Go's module path escaping: each upper-case letter becomes `!` and its
/// lower-case form, so paths differing in case stay apart on any file system.
pub fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
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
        if !self.qualifier.is_empty() && (!is_identifier(implied) || implied != self.qualifier) {
            s = format!("{s}:{}", self.qualifier);
        }
        s
    }

    /// Whether the package lies in the module with base path `base`.
    pub fn is_in(&self, base: &str) -> bool {
        self.path == base || self.path.strip_prefix(base).is_some_and(|rest| rest.starts_with('/'))
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

/// `a.b/c/d`, `a.b/c`, `a.b`: the module paths that may hold a package.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| p.rfind('/').map(|i| &p[..i]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaping_round_trips() {
        assert_eq!(super::escape("github.com/Acme/Mod"), "github.com/!acme/!mod");
        assert_eq!(super::unescape("github.com/!acme/!mod"), "github.com/Acme/Mod");
    }

    #[test]
    fn module_versions_sort_as_cue_sorts_them() {
        use super::ModuleVersion;
        let mut mvs = [ModuleVersion::new("b.test/x", "v1.0.0"), ModuleVersion::new("a.test/x", "v1.10.0"), ModuleVersion::new("a.test/x", "v1.9.0")];
        mvs.sort();
        let shown: Vec<String> = mvs.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["a.test/x@v1.9.0", "a.test/x@v1.10.0", "b.test/x@v1.0.0"]);
    }

    use super::*;

    #[test]
    fn import_paths_split_and_canonicalise_as_cue_does() {
        let ip = ImportPath::parse("example.com/foo/bar@v1:baz");
        assert_eq!((ip.path.as_str(), ip.version.as_str(), ip.qualifier.as_str()), ("example.com/foo/bar", "v1", "baz"));
        assert_eq!(ImportPath::parse("example.com/foo/bar@v1:bar").canonical(), "example.com/foo/bar@v1");
        assert_eq!(ImportPath::parse("example.com/foo/bar-baz").qualifier, "");
        assert_eq!(ImportPath::parse("example.com/x:y").canonical(), "example.com/x:y");
        assert!(is_stdlib("strings") && is_stdlib("encoding/json") && !is_stdlib("example.com/x"));
        assert!(ImportPath::parse("example.com/x/y@v1").is_in("example.com/x"));
        assert!(!ImportPath::parse("example.com/xy@v1").is_in("example.com/x"));
    }

    #[test]
    fn module_versions_print_without_the_major_in_the_path() {
        let mv = ModuleVersion::new("example.com/x", "v1.2.3");
        assert_eq!(mv.module, "example.com/x@v1");
        assert_eq!(mv.to_string(), "example.com/x@v1.2.3");
    }

    #[test]
    fn ancestors_run_from_the_path_to_its_first_element() {
        assert_eq!(ancestors("a.b/c/d").collect::<Vec<_>>(), ["a.b/c/d", "a.b/c", "a.b"]);
        assert_eq!(ancestors("a.b").collect::<Vec<_>>(), ["a.b"]);
    }
}
