//! `opm mod get` and `opm mod tidy`: change the main module's `deps` as
//! `cue mod get` and `cue mod tidy` would, byte for byte, and make sure
//! the cache holds every module they name.

use super::{sums, MainFile, Workspace};
use crate::cache::usage;
use crate::context::Context;
use crate::cue;
use crate::error::{fail, Failure, Kind};
use crate::files::{self, write_atomic};
use crate::module::{semver, ModuleVersion};
use crate::resolve::replace::{self, Replaced, Replacements, Target};
use crate::resolve::{get, tidy, Requirements, Source};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

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
            Change::Add { module, version } => write!(f, "add {}", ModuleVersion::of(module.clone(), version.clone())),
            Change::Upgrade { module, from, to } => write!(f, "upgrade {module} {from} -> {to}"),
            Change::Downgrade { module, from, to } => write!(f, "downgrade {module} {from} -> {to}"),
            Change::Remove { module, version } => write!(f, "remove {}", ModuleVersion::of(module.clone(), version.clone())),
        }
    }
}

/// What changes between two lists of roots.
pub fn changes(before: &[ModuleVersion], after: &[ModuleVersion]) -> Vec<Change> {
    let mut out = Vec::new();
    for a in after {
        match before.iter().find(|b| b.module() == a.module()) {
            None => out.push(Change::Add { module: a.module().to_string(), version: a.version().to_string() }),
            Some(b) if b.version() != a.version() => {
                let (module, from, to) = (a.module().to_string(), b.version().to_string(), a.version().to_string());
                out.push(if semver::compare(a.version(), b.version()).is_gt() {
                    Change::Upgrade { module, from, to }
                } else {
                    Change::Downgrade { module, from, to }
                });
            }
            Some(_) => {}
        }
    }
    for b in before {
        if !after.iter().any(|a| a.module() == b.module()) {
            out.push(Change::Remove { module: b.module().to_string(), version: b.version().to_string() });
        }
    }
    out
}

/// What get or tidy did to a module.
#[derive(Debug, Serialize)]
pub struct Changed {
    pub module_file: PathBuf,
    pub changes: Vec<Change>,
    /// What tidy did with the versions it dropped.
    pub cache: Vec<Dropped>,
}

/// A version tidy dropped: removed from the cache, or kept there for the
/// other projects that use it.
#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Dropped {
    Removed { module: String, version: String },
    Kept { module: String, version: String, users: Vec<PathBuf> },
}

pub struct GetOptions {
    /// `MODULE@VERSION` arguments.
    pub modules: Vec<String>,
    /// Download the requested versions again.
    pub force: bool,
}

pub fn get(ctx: &Context, opts: &GetOptions) -> anyhow::Result<Changed> {
    // As cue: get needs the cache before anything else.
    ctx.cache_dir().as_ref().map_err(|why| fail(Kind::Other, why.clone()))?;
    let ws = Workspace::open_to_change(ctx)?;
    ws.cache.will_install();
    let main = ws.main_file()?;
    let src = ws.source();
    let resolving = crate::ui::spinner("resolving");
    let wanted = opts.modules.iter().map(|arg| get::parse_request(&src, arg)).collect::<anyhow::Result<Vec<_>>>()?;
    let before = main.roots();
    let after = get::update_versions(&src, &main.module, &wanted)?;
    drop(resolving);
    // --force: the requested versions are downloaded again; the old copies
    // are replaced only once the new ones have arrived.
    let refresh = if opts.force { wanted.as_slice() } else { &[] };
    ws.cache.record_use(&ws.root, &after)?;
    ws.commit(&main, &after, &main.module.defaults, refresh)?;
    Ok(Changed { module_file: main.path, changes: changes(&before, &after), cache: Vec::new() })
}

pub struct TidyOptions {
    /// Change nothing: fail with [`tidy::Untidy`] when not tidy.
    pub check: bool,
}

/// `opm mod tidy`: cue's two views. The published one (module.cue) is
/// resolved first; when cue.mod/local-module.cue (or module.cue itself)
/// replaces modules, the main-module view is resolved with the
/// replacements applied. module.cue gets the published roots at the
/// highest version either view needs, local-module.cue the main-module
/// view's (or goes when no replacement is left), as cue writes them.
pub fn tidy(ctx: &Context, opts: &TidyOptions) -> anyhow::Result<Changed> {
    let ws = Workspace::open_to_change(ctx)?;
    let main = ws.main_file()?;
    let views = cue::tidy_views(&ws.root).map_err(Failure::from)?;
    let sources = files::cue_sources(&ws.root)?;
    let src = ws.source();

    let resolving = crate::ui::spinner("resolving");
    let before = Requirements::of(&views.module);
    let replaces = views.local.as_ref().is_some_and(|l| l.deps.iter().any(|d| !d.replace_with.is_empty()));
    let published = tidy_published(&src, &ws.root, &sources, &before, replaces, opts.check)?;
    let local = match &views.local {
        Some(view) if replaces => Some(tidy_local(&src, &ws.root, &sources, view, &published, opts.check)?),
        _ => None,
    };
    let both = Merged::of(&published, local.as_ref());
    let module_roots = both.raise(&published.roots);

    if opts.check {
        check_files(&ws, &views, &before, local.is_some(), &module_roots, &both.defaults)?;
        return Ok(Changed { module_file: main.path, changes: Vec::new(), cache: Vec::new() });
    }

    drop(resolving);
    let mut used = module_roots.clone();
    used.extend(local.iter().flat_map(|l| l.tidied.roots.iter().cloned()));
    ws.cache.record_use(&ws.root, &used)?;
    write_tidied(&ws, &main, &module_roots, &both, local.as_ref())?;
    let cache = evict_dropped(&ws, before.roots(), &used)?;
    Ok(Changed { module_file: main.path, changes: changes(before.roots(), &module_roots), cache })
}

/// The error of `tidy --check` on a module that is not tidy, with the
/// reason when there is one.
fn untidy(reason: &str) -> anyhow::Error {
    let why = if reason.is_empty() { String::new() } else { format!(": {reason}") };
    tidy::Untidy(format!("module is not tidy{why}: run 'opm mod tidy'")).into()
}

/// The published view (module.cue) resolved; with `check`, module.cue
/// must already list the roots it resolves to.
fn tidy_published(src: &dyn Source, root: &Path, sources: &[PathBuf], before: &Requirements, replaces: bool, check: bool) -> anyhow::Result<tidy::Tidied> {
    let published = tidy::tidy(src, root, sources, before, check, None).map_err(|e| {
        if replaces && !tidy::is_untidy(&e) {
            e.context("cannot resolve published module.cue (a replaced module must be in a registry too)")
        } else {
            e
        }
    })?;
    if check && published.roots != before.roots() {
        let list = changes(before.roots(), &published.roots).iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        return Err(untidy(&list));
    }
    Ok(published)
}

/// The main-module view (local-module.cue) and what it resolves to with
/// its replacements applied.
struct Local<'v> {
    view: &'v cue::ModuleFile,
    tidied: tidy::Tidied,
}

/// The main-module view resolved with its replacements applied; with
/// `check`, local-module.cue must already list the roots it resolves to.
fn tidy_local<'v>(
    src: &dyn Source,
    root: &Path,
    sources: &[PathBuf],
    view: &'v cue::ModuleFile,
    published: &tidy::Tidied,
    check: bool,
) -> anyhow::Result<Local<'v>> {
    let seeded = seed_targets(src, view, published)?;
    let repls = Replacements::new(root, &seeded)?;
    let replaced = Replaced::new(src, &repls);
    let on_disk = Requirements::of(view);
    let tidied = tidy::tidy(&replaced, root, sources, &Requirements::of(&seeded), check, Some(&repls))?;
    if check && tidied.roots != on_disk.roots() {
        return Err(untidy("cue.mod/local-module.cue"));
    }
    Ok(Local { view, tidied })
}

/// What the two views need together: the highest version of each module
/// either view needs, and the defaults of both, the main-module view's
/// winning.
struct Merged {
    max: BTreeMap<String, String>,
    defaults: BTreeMap<String, String>,
}

impl Merged {
    fn of(published: &tidy::Tidied, local: Option<&Local>) -> Merged {
        let mut max: BTreeMap<String, String> = BTreeMap::new();
        let mut defaults = published.defaults.clone();
        for root in published.roots.iter().chain(local.iter().flat_map(|l| &l.tidied.roots)) {
            if max.get(root.module()).is_none_or(|v| semver::compare(root.version(), v).is_gt()) {
                max.insert(root.module().to_string(), root.version().to_string());
            }
        }
        if let Some(l) = local {
            defaults.extend(l.tidied.defaults.clone());
        }
        Merged { max, defaults }
    }

    /// `roots`, each at the highest version either view needs.
    fn raise(&self, roots: &[ModuleVersion]) -> Vec<ModuleVersion> {
        roots.iter().map(|r| ModuleVersion::of(r.module(), self.max[r.module()].clone())).collect()
    }
}

/// The rest of `tidy --check`, once each view lists the roots it resolves
/// to: module.cue has no replacement; local-module.cue exists only with
/// one; with a main-module view, module.cue's roots and defaults are what
/// tidy would write (raised to what either view needs); opm.sum lists
/// exactly module.cue's roots.
fn check_files(
    ws: &Workspace,
    views: &cue::TidyViews,
    before: &Requirements,
    has_local: bool,
    module_roots: &[ModuleVersion],
    defaults: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    if views.module.deps.iter().any(|d| !d.replace_with.is_empty()) {
        return Err(untidy("cue.mod/module.cue has a module replace that should be moved to cue.mod/local-module.cue"));
    }
    if views.local_exists && !has_local {
        return Err(untidy("cue.mod/local-module.cue has no module replaces and should be removed"));
    }
    if has_local && (module_roots != before.roots() || defaults_of(module_roots, defaults) != defaults_of(before.roots(), &views.module.defaults)) {
        return Err(untidy(""));
    }
    if let Some(pins) = &ws.pins {
        let stale = sums::stale(pins, module_roots);
        if !stale.is_empty() {
            return Err(untidy(&format!("{} {}", sums::SUMS_FILE, stale.join(", "))));
        }
    }
    Ok(())
}

/// Downloads `module_roots` and writes module.cue (and opm.sum) with
/// them, then local-module.cue.
fn write_tidied(ws: &Workspace, main: &MainFile, module_roots: &[ModuleVersion], both: &Merged, local: Option<&Local>) -> anyhow::Result<()> {
    let saved = ws.save();
    let text = ws.commit(main, module_roots, &both.defaults, &[])?;
    // module.cue has lost its replaceWith entries by now: if local-module.cue
    // cannot be written, module.cue goes back as it was.
    if let Err(e) = write_local_module(&ws.root.join("cue.mod/local-module.cue"), &text, both, local) {
        if let Err(r) = saved.restore() {
            return Err(e.context(format!("and restoring module.cue failed: {r:#}")));
        }
        return Err(e);
    }
    Ok(())
}

/// cue.mod/local-module.cue beside `module_text` (the new module.cue):
/// the main-module view's roots, raised, with their replacements; no file
/// when no replacement is left. Written only when it changes.
fn write_local_module(local_file: &Path, module_text: &str, both: &Merged, local: Option<&Local>) -> anyhow::Result<()> {
    let Some(Local { view, tidied }) = local else { return remove_if_present(local_file) };
    let replace_of =
        |module: &str| view.deps.iter().find(|d| d.path == module).map(|d| crate::resolve::replace::normalized(&d.replace_with)).unwrap_or_default();
    let deps: Vec<cue::Dep> = both
        .raise(&tidied.roots)
        .into_iter()
        .map(|r| cue::Dep {
            default: both.defaults.get(r.base()).is_some_and(|d| d == semver::major(r.version())),
            replace_with: replace_of(r.module()),
            path: r.module().to_string(),
            version: r.version().to_string(),
        })
        .collect();
    if !deps.iter().any(|d| !d.replace_with.is_empty()) {
        return remove_if_present(local_file);
    }
    let content = cue::format_local_module_file(module_text, &deps).map_err(Failure::from)?;
    if std::fs::read_to_string(local_file).ok().as_deref() != Some(content.as_str()) {
        write_atomic(local_file, content.as_bytes())?;
    }
    Ok(())
}

/// Versions tidy dropped (in `before`, not `used`) leave the cache too
/// (FR-006), unless another project on this machine still uses them.
fn evict_dropped(ws: &Workspace, before: &[ModuleVersion], used: &[ModuleVersion]) -> anyhow::Result<Vec<Dropped>> {
    let dropped: Vec<&ModuleVersion> = before.iter().filter(|old| !used.contains(old)).collect();
    let mut cache = Vec::new();
    if dropped.is_empty() {
        return Ok(cache);
    }
    // Without a record of who uses what (no state directory), nothing is
    // removed: another project may use it, as gc assumes too.
    let Some(locked) = usage::lock(ws.cache.dir()?)? else {
        return Ok(dropped
            .into_iter()
            .map(|mv| Dropped::Kept { module: mv.module().to_string(), version: mv.version().to_string(), users: Vec::new() })
            .collect());
    };
    let record = Some(&locked.record);
    for old in dropped {
        let (module, version) = (old.module().to_string(), old.version().to_string());
        let users = super::cache::users(record, old, Some(&ws.root));
        if super::cache::evict(&ws.cache.entry(old)?, &users, false)? {
            cache.push(Dropped::Removed { module, version });
        } else {
            cache.push(Dropped::Kept { module, version, users });
        }
    }
    Ok(cache)
}

/// The main-module view with every module that replaces another listed
/// as a dependency, so that it takes part in version selection: at the
/// version the published view selects, or the one the replacement names,
/// else the newest release (cue's seedReplacementTargets).
fn seed_targets(src: &dyn Source, local: &cue::ModuleFile, published: &tidy::Tidied) -> anyhow::Result<cue::ModuleFile> {
    let mut seeded = local.clone();
    for d in local.deps.iter().filter(|d| !d.replace_with.is_empty()) {
        let Target::Module { base, version } = replace::target(&d.replace_with) else { continue };
        let cannot = |why: &str| fail(Kind::Other, format!("cannot determine version for replacement target {base:?}: {why}"));
        let major = match semver::major(version) {
            "" => match local.defaults.get(base) {
                Some(m) => m.clone(),
                None => {
                    let majors: BTreeSet<&str> = published.roots.iter().filter(|r| r.base() == base).map(|r| semver::major(r.version())).collect();
                    match majors.len() {
                        1 => majors.into_iter().next().unwrap().to_string(),
                        0 => return Err(cannot("not a published dependency")),
                        _ => return Err(cannot("multiple major versions present")),
                    }
                }
            },
            m => m.to_string(),
        };
        let path = format!("{base}@{major}");
        if seeded.deps.iter().any(|t| t.path == path && !t.version.is_empty()) {
            continue;
        }
        let floor = if semver::is_canonical(version) { version } else { "" };
        let selected = published.roots.iter().filter(|r| r.module() == path).map(|r| r.version()).max_by(|a, b| semver::compare(a, b));
        let mut best = floor.to_string();
        if let Some(v) = selected {
            if best.is_empty() || semver::compare(v, &best).is_gt() {
                best = v.to_string();
            }
        }
        if best.is_empty() {
            best = src.versions(std::slice::from_ref(&path))?[0].last().cloned().ok_or_else(|| cannot("no versions found in registry"))?;
        }
        seeded.deps.retain(|t| t.path != path);
        seeded.deps.push(cue::Dep { path, version: best, default: false, replace_with: String::new() });
    }
    Ok(seeded)
}

/// The modules of `roots` that `defaults` marks as the default major.
fn defaults_of(roots: &[ModuleVersion], defaults: &BTreeMap<String, String>) -> Vec<String> {
    roots.iter().filter(|r| defaults.get(r.base()).is_some_and(|d| d == semver::major(r.version()))).map(|r| r.module().to_string()).collect()
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match fs_err::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}
