//! `opm mod update`: newer releases of the dependencies, applied with
//! cue's resolution; proven by a vet, or every file is put back.

use super::{vet, MainFile, Workspace};
use crate::cue;
use crate::error::{fail, Exit, Failure};
use crate::files::{self, write_atomic};
use crate::module::{semver, split_major, ImportPath, ModuleVersion};
use crate::resolve::{get, Source};
use serde::Serialize;
use std::ops::Range;
use std::path::PathBuf;

pub struct UpdateOptions {
    /// Dependencies to update (module paths, with or without @vN); empty: all.
    pub modules: Vec<String>,
    /// Include new major versions.
    pub major: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Update {
    /// The dependency, with its major version.
    pub module: String,
    pub current: String,
    pub available: String,
    pub kind: semver::Change,
}

/// One import path literal in a file of the main module, and what a
/// major update makes of it.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// The byte range of the quoted literal, as CUE's parser found it.
    pub range: Range<usize>,
    pub from: String,
    pub to: String,
}

/// The updates available and the import rewrites the major ones need.
pub struct Plan {
    pub ws: Workspace,
    pub main: MainFile,
    pub updates: Vec<Update>,
    pub rewrites: Vec<(PathBuf, Vec<Rewrite>)>,
}

/// Finds the newer releases of the dependencies (and the import rewrites
/// of major updates). Changes nothing.
pub fn plan(opts: &UpdateOptions) -> anyhow::Result<Plan> {
    let ws = Workspace::open_to_change(false)?;
    let main = ws.main_file()?;
    let all = main.roots();
    let named = |r: &ModuleVersion, m: &String| m == &r.module || m == r.base();
    if let Some(unknown) = opts.modules.iter().find(|m| !all.iter().any(|r| named(r, m))) {
        return Err(fail(Exit::NotFound, format!("{unknown} is not a dependency in module.cue: add it with 'opm mod get {unknown}@VERSION'")));
    }
    let roots: Vec<ModuleVersion> = all.into_iter().filter(|r| opts.modules.is_empty() || opts.modules.iter().any(|m| named(r, m))).collect();
    let updates = available(&ws.source(), &roots, opts.major)?;
    let majors: Vec<&Update> = updates.iter().filter(|u| u.kind == semver::Change::Major).collect();
    let rewrites = import_rewrites(&ws, &majors)?;
    Ok(Plan { ws, main, updates, rewrites })
}

/// The newest release above each dependency's version: within its major
/// (a release, or a prerelease when the current one is), and with
/// `major`, in a higher major.
fn available(src: &dyn Source, roots: &[ModuleVersion], major: bool) -> anyhow::Result<Vec<Update>> {
    let mut queries: Vec<String> = roots.iter().map(|r| r.module.clone()).collect();
    if major {
        queries.extend(roots.iter().map(|r| r.base().to_string()));
    }
    queries.sort();
    queries.dedup();
    let listed = src.versions(&queries)?;
    let versions = |path: &str| &listed[queries.binary_search_by(|q| q.as_str().cmp(path)).expect("every path was listed")];
    let mut out = Vec::new();
    for r in roots {
        let newest_above = |versions: &[String]| -> Option<String> {
            versions
                .iter()
                .filter(|v| semver::compare(v, &r.version).is_gt())
                .filter(|v| !semver::is_prerelease(v) || semver::is_prerelease(&r.version))
                .max_by(|a, b| semver::compare(a, b))
                .cloned()
        };
        let (base, current_major) = split_major(&r.module);
        let mut best = newest_above(versions(&r.module));
        if major {
            let higher: Vec<String> =
                versions(base).iter().filter(|v| semver::compare(semver::major(v), current_major).is_gt()).cloned().collect();
            if let Some(v) = newest_above(&higher) {
                best = Some(v);
            }
        }
        if let Some(available) = best {
            out.push(Update { module: r.module.clone(), current: r.version.clone(), kind: semver::change(&r.version, &available), available });
        }
    }
    Ok(out)
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
                    changes.push(Rewrite { range: spec.start..spec.end, from: spec.path.clone(), to: ip.canonical() });
                }
            }
        }
        if !changes.is_empty() {
            out.push((file, changes));
        }
    }
    Ok(out)
}

/// Applies the plan with cue's resolution, downloads, rewrites imports
/// and vets; when anything fails after the first write, every file is
/// restored.
pub fn apply(plan: &Plan) -> anyhow::Result<()> {
    let Plan { ws, main, updates, rewrites } = plan;
    let mut module = main.module.clone();
    let mut wanted = Vec::new();
    for u in updates {
        if u.kind == semver::Change::Major {
            // The old major goes; the new one takes over its default.
            module.deps.retain(|d| d.path != u.module);
            let (base, old) = split_major(&u.module);
            if module.defaults.get(base).is_some_and(|d| d == old) {
                module.defaults.insert(base.to_string(), semver::major(&u.available).to_string());
            }
        }
        wanted.push(ModuleVersion::new(split_major(&u.module).0, &u.available));
    }
    let roots = get::update_versions(&ws.source(), &module, &wanted)?;

    let originals: Vec<(PathBuf, String)> =
        rewrites.iter().map(|(f, _)| Ok((f.clone(), fs_err::read_to_string(f)?))).collect::<anyhow::Result<_>>()?;
    let restore = || -> anyhow::Result<()> {
        write_atomic(&main.path, main.text.as_bytes())?;
        for (f, text) in &originals {
            write_atomic(f, text.as_bytes())?;
        }
        Ok(())
    };
    ws.commit(main, &roots, &module.defaults, &[])?;
    // From here on, any failure puts module.cue and the sources back.
    let rewrite_and_vet = || -> anyhow::Result<()> {
        for ((file, changes), (_, text)) in rewrites.iter().zip(&originals) {
            // Exactly the literals CUE's parser found, last first so that
            // earlier offsets stay valid.
            let mut new = text.clone();
            for r in changes.iter().rev() {
                new.replace_range(r.range.clone(), &format!("{:?}", r.to));
            }
            write_atomic(file, new.as_bytes())?;
        }
        vet::require_valid(ws, "it does not vet with these updates, so nothing was changed")
    };
    if let Err(e) = rewrite_and_vet() {
        if let Err(r) = restore() {
            return Err(e.context(format!("and restoring the previous files failed: {r:#}")));
        }
        return Err(e);
    }
    Ok(())
}
