//! `opm mod update`: newer releases of the dependencies, applied with
//! cue's resolution and kept only when proven: whatever held before the
//! update (a vet, a concrete vet, the module's and the bundle's release
//! rendering with the user's values) must hold after it, or every file is
//! put back.
//!
//! The plan (what is available, the import rewrites) is here; prove.rs
//! applies and proves it, preview.rs shows what each update would change.

mod preview;
mod prove;

pub use preview::{preview, ObjectChange, Preview};
pub use prove::apply;

use super::{MainFile, Workspace};
use crate::catalog;
use crate::context::Context;
use crate::cue;
use crate::error::{fail, Failure, Kind};
use crate::files;
use crate::module::{semver, split_major, ImportPath, ModuleVersion};
use serde::Serialize;
use std::ops::Range;
use std::path::PathBuf;
use std::rc::Rc;

pub struct UpdateOptions {
    /// Dependencies to update (module paths, with or without @vN); empty: all.
    pub modules: Vec<String>,
    /// Include new major versions.
    pub major: bool,
    /// Values files the releases are rendered with when an update is proven.
    pub values: Vec<PathBuf>,
    /// Prove the update before keeping it (false: `--no-verify`).
    pub verify: bool,
    /// A directory of the module (default: the current one).
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Update {
    /// The dependency, with its major version.
    pub module: String,
    pub current: String,
    pub available: String,
    pub kind: semver::Bump,
    /// `unsigned` when the verify policy covers the module and would
    /// refuse the available version (getting it would exit 8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<&'static str>,
}

/// One import path literal in a file of the main module, and what a
/// major update makes of it.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// The dependency (old major) whose update needs it.
    pub module: String,
    /// The byte range of the quoted literal, as CUE's parser found it.
    pub range: Range<usize>,
    pub from: String,
    pub to: String,
}

/// A dependency whose registry could not say what is available.
#[derive(Debug)]
pub struct Unchecked {
    pub module: String,
    pub current: String,
    pub error: Rc<anyhow::Error>,
}

/// The updates available and the import rewrites the major ones need.
pub struct Plan {
    pub ws: Workspace,
    pub main: MainFile,
    pub updates: Vec<Update>,
    pub unchecked: Vec<Unchecked>,
    pub rewrites: Vec<(PathBuf, Vec<Rewrite>)>,
    /// What cue.mod/opm.sum lacks or still lists, when the module has one.
    pub stale_sums: Vec<String>,
    values: Vec<PathBuf>,
    verify: bool,
}

/// Finds the newer releases of the dependencies (and the import rewrites
/// of major updates). Changes nothing.
pub fn plan(ctx: &Context, opts: &UpdateOptions) -> anyhow::Result<Plan> {
    let ws = match &opts.dir {
        Some(dir) => Workspace::open_to_change_in(ctx, dir)?,
        None => Workspace::open_to_change(ctx)?,
    };
    let main = ws.main_file()?;
    let all = main.roots();
    let named = |r: &ModuleVersion, m: &String| m == r.module() || m == r.base();
    if let Some(unknown) = opts.modules.iter().find(|m| !all.iter().any(|r| named(r, m))) {
        let base = crate::module::base_path(unknown);
        return Err(fail(Kind::NotFound, format!("{unknown} is not a dependency in module.cue: add it with 'opm mod get {base}@vX.Y.Z'")));
    }
    let roots: Vec<ModuleVersion> = all.into_iter().filter(|r| opts.modules.is_empty() || opts.modules.iter().any(|m| named(r, m))).collect();
    // The core model opm carries is updated by updating opm.
    let roots: Vec<ModuleVersion> = roots.into_iter().filter(|r| !catalog::is_embedded(r)).collect();
    let checking = crate::ui::spinner("checking for newer releases");
    let (updates, unchecked) = available(&ws, &roots, opts.major);
    drop(checking);
    let majors: Vec<&Update> = updates.iter().filter(|u| u.kind == semver::Bump::Major).collect();
    let rewrites = import_rewrites(&ws, &majors)?;
    let stale_sums = ws.pins.as_ref().map(|p| super::sums::stale(p, &main.roots())).unwrap_or_default();
    Ok(Plan { ws, main, updates, unchecked, rewrites, stale_sums, values: opts.values.clone(), verify: opts.verify })
}

/// The newest release above each dependency's version: within its major
/// (a release, or a prerelease when the current one is), and with
/// `major`, in a higher major. A dependency whose versions cannot be
/// listed is unchecked; the others are still reported.
fn available(ws: &Workspace, roots: &[ModuleVersion], major: bool) -> (Vec<Update>, Vec<Unchecked>) {
    let mut queries: Vec<String> = roots.iter().map(|r| r.module().to_string()).collect();
    if major {
        queries.extend(roots.iter().map(|r| r.base().to_string()));
    }
    queries.sort();
    queries.dedup();
    // A failure can concern several dependencies: shared, not copied.
    let listed: Vec<Result<Vec<String>, Rc<anyhow::Error>>> = ws.cache.versions_each(&queries).into_iter().map(|r| r.map_err(Rc::new)).collect();
    let (mut out, mut unchecked) = (Vec::new(), Vec::new());
    for r in roots {
        let take = |path: &str| -> Result<Vec<String>, Rc<anyhow::Error>> {
            listed[queries.binary_search_by(|q| q.as_str().cmp(path)).expect("every path was listed")].clone()
        };
        let newest_above = |versions: &[String]| -> Option<String> {
            versions
                .iter()
                .filter(|v| semver::compare(v, r.version()).is_gt())
                .filter(|v| !semver::is_prerelease(v) || semver::is_prerelease(r.version()))
                .max_by(|a, b| semver::compare(a, b))
                .cloned()
        };
        let (base, current_major) = split_major(r.module());
        // Within the major, and with `major` the newest of a higher one
        // too: both are offered (applying takes the major).
        let found = take(r.module()).and_then(|same| {
            let mut offers: Vec<String> = newest_above(&same).into_iter().collect();
            if major {
                let higher: Vec<String> = take(base)?.into_iter().filter(|v| semver::compare(semver::major(v), current_major).is_gt()).collect();
                offers.extend(newest_above(&higher));
            }
            Ok(offers)
        });
        match found {
            Ok(offers) => {
                for available in offers {
                    // Offered only as what getting it would do: refused, or not.
                    let refused = ws.cache.would_refuse(&ModuleVersion::new(base, &available)).unwrap_or(false);
                    let signature = refused.then_some("unsigned");
                    out.push(Update {
                        module: r.module().to_string(),
                        current: r.version().to_string(),
                        kind: semver::change(r.version(), &available),
                        available,
                        signature,
                    });
                }
            }
            Err(error) => unchecked.push(Unchecked { module: r.module().to_string(), current: r.version().to_string(), error }),
        }
    }
    (out, unchecked)
}

/// The import paths in the main module's CUE sources that name an old
/// major being updated, and what they become.
fn import_rewrites(ws: &Workspace, majors: &[&Update]) -> anyhow::Result<Vec<(PathBuf, Vec<Rewrite>)>> {
    let mut out = Vec::new();
    if majors.is_empty() {
        return Ok(out);
    }
    for file in files::cue_sources(&ws.root)? {
        let mut changes = Vec::new();
        for spec in cue::import_specs(&file).map_err(Failure::from)? {
            let mut ip = ImportPath::parse(&spec.path);
            for u in majors {
                let (base, old) = split_major(&u.module);
                if ip.is_in(base) && ip.version == old {
                    ip.version = semver::major(&u.available).to_string();
                    changes.push(Rewrite { module: u.module.clone(), range: spec.start..spec.end, from: spec.path.clone(), to: ip.canonical() });
                }
            }
        }
        if !changes.is_empty() {
            out.push((file, changes));
        }
    }
    Ok(out)
}

/// The updates `apply` applies: a module's major update supersedes the
/// update within its major that is offered next to it.
pub fn to_apply(updates: &[Update]) -> Vec<&Update> {
    updates.iter().filter(|u| u.kind == semver::Bump::Major || !updates.iter().any(|o| o.module == u.module && o.kind == semver::Bump::Major)).collect()
}

/// The module roots under `dir` (cue.mod/module.cue), nested ones
/// included; left out as cue's `./...` leaves them out: hidden and `_`
/// directories and cue.mod, and any CUE cache (its extracted modules are
/// other people's releases, not projects); sorted.
pub fn module_roots(dir: &std::path::Path) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let is_cache = dir.join("mod/download").is_dir() && dir.join("mod/extract").is_dir();
        if is_cache || crate::context::cue_cache_dir().is_ok_and(|c| c == dir) {
            return Ok(());
        }
        if dir.join("cue.mod/module.cue").is_file() {
            out.push(dir.to_path_buf());
        }
        let mut entries: Vec<_> = fs_err::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type()?.is_dir() && !name.starts_with('.') && !name.starts_with('_') && name != "cue.mod" {
                walk(&e.path(), out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    Ok(out)
}
