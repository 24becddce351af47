//! `opm mod get` and `opm mod tidy`: change the main module's `deps` as
//! `cue mod get` and `cue mod tidy` would, byte for byte, and make sure
//! the cache holds every module they name.

use super::Workspace;
use crate::error::{fail, Exit};
use crate::files;
use crate::module::{semver, ModuleVersion};
use crate::resolve::{get, tidy, Requirements};
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// One change to module.cue's `deps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum Change {
    Add { module: String, version: String },
    Upgrade { module: String, from: String, to: String },
    Downgrade { module: String, from: String, to: String },
    Remove { module: String, version: String },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Add { module, version } => write!(f, "add {}", ModuleVersion { module: module.clone(), version: version.clone() }),
            Change::Upgrade { module, from, to } => write!(f, "upgrade {module} {from} -> {to}"),
            Change::Downgrade { module, from, to } => write!(f, "downgrade {module} {from} -> {to}"),
            Change::Remove { module, version } => write!(f, "remove {}", ModuleVersion { module: module.clone(), version: version.clone() }),
        }
    }
}

/// What changes between two lists of roots.
pub fn changes(before: &[ModuleVersion], after: &[ModuleVersion]) -> Vec<Change> {
    let mut out = Vec::new();
    for a in after {
        match before.iter().find(|b| b.module == a.module) {
            None => out.push(Change::Add { module: a.module.clone(), version: a.version.clone() }),
            Some(b) if b.version != a.version => {
                let (module, from, to) = (a.module.clone(), b.version.clone(), a.version.clone());
                out.push(if semver::compare(&a.version, &b.version).is_gt() {
                    Change::Upgrade { module, from, to }
                } else {
                    Change::Downgrade { module, from, to }
                });
            }
            Some(_) => {}
        }
    }
    for b in before {
        if !after.iter().any(|a| a.module == b.module) {
            out.push(Change::Remove { module: b.module.clone(), version: b.version.clone() });
        }
    }
    out
}

/// What get or tidy did to a module.
#[derive(Debug, Serialize)]
pub struct Changed {
    pub module_file: PathBuf,
    pub changes: Vec<Change>,
}

pub struct GetOptions {
    /// `MODULE@VERSION` arguments.
    pub modules: Vec<String>,
    /// Download the requested versions again.
    pub force: bool,
}

pub fn get(opts: &GetOptions) -> anyhow::Result<Changed> {
    // As cue: get needs the cache before anything else.
    crate::cache::default_dir().map_err(|why| fail(Exit::General, why))?;
    let ws = Workspace::open_to_change(false)?;
    let main = ws.main_file()?;
    let src = ws.source();
    let wanted = opts.modules.iter().map(|arg| get::parse_request(&src, arg)).collect::<anyhow::Result<Vec<_>>>()?;
    let before = main.roots();
    let after = get::update_versions(&src, &main.module, &wanted)?;
    // --force: the requested versions are downloaded again; the old copies
    // are replaced only once the new ones have arrived.
    let refresh = if opts.force { wanted.as_slice() } else { &[] };
    ws.commit(&main, &after, &main.module.defaults, refresh)?;
    Ok(Changed { module_file: main.path, changes: changes(&before, &after) })
}

pub struct TidyOptions {
    /// Change nothing: fail with [`tidy::Untidy`] when not tidy.
    pub check: bool,
}

pub fn tidy(opts: &TidyOptions) -> anyhow::Result<Changed> {
    let ws = Workspace::open_to_change(false)?;
    // cue tidies a second, main-module view with the replacements of
    // local-module.cue and merges both; opm tidies the published view only.
    if ws.root.join("cue.mod/local-module.cue").exists() {
        return Err(fail(
            Exit::General,
            "cue.mod/local-module.cue holds module replacements, which opm mod tidy does not apply yet: use 'cue mod tidy' here",
        ));
    }
    let main = ws.main_file()?;
    let before = Requirements::of(&main.module);
    let tidied = tidy::tidy(&ws.source(), &ws.root, &files::cue_sources(&ws.root)?, &before, opts.check)?;
    let changes = changes(before.roots(), &tidied.roots);
    if opts.check {
        if !changes.is_empty() {
            let list = changes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            return Err(tidy::Untidy(format!("module is not tidy ({list}): run 'opm mod tidy'")).into());
        }
        return Ok(Changed { module_file: main.path, changes });
    }
    ws.commit(&main, &tidied.roots, &tidied.defaults, &[])?;
    // Versions tidy dropped leave the cache too (FR-006).
    for old in before.roots() {
        if !tidied.roots.contains(old) {
            ws.cache.entry(old)?.remove()?;
        }
    }
    Ok(Changed { module_file: main.path, changes })
}
