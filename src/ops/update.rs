//! `opm mod update`: newer releases of the dependencies, applied with
//! cue's resolution and kept only when proven: whatever held before the
//! update (a vet, a concrete vet, the module's and the bundle's release
//! rendering with the user's values) must hold after it, or every file is
//! put back.

use super::render::{self, RenderOptions};
use super::{vet, MainFile, Workspace};
use crate::catalog;
use crate::context::Context;
use crate::cue::{self, Diagnostic, Encoding, ReleaseKind};
use crate::error::{fail, Exit, Failure};
use crate::files::{self, display_path, write_atomic};
use crate::module::{semver, split_major, ImportPath, ModuleVersion};
use crate::resolve::get;
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
    pub kind: semver::Change,
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
    let named = |r: &ModuleVersion, m: &String| m == &r.module || m == r.base();
    if let Some(unknown) = opts.modules.iter().find(|m| !all.iter().any(|r| named(r, m))) {
        let base = crate::module::base_path(unknown);
        return Err(fail(Exit::NotFound, format!("{unknown} is not a dependency in module.cue: add it with 'opm mod get {base}@vX.Y.Z'")));
    }
    let roots: Vec<ModuleVersion> = all.into_iter().filter(|r| opts.modules.is_empty() || opts.modules.iter().any(|m| named(r, m))).collect();
    // The core model opm carries is updated by updating opm.
    let roots: Vec<ModuleVersion> = roots.into_iter().filter(|r| !catalog::is_embedded(r)).collect();
    let checking = crate::ui::spinner("checking for newer releases");
    let (updates, unchecked) = available(&ws, &roots, opts.major);
    drop(checking);
    let majors: Vec<&Update> = updates.iter().filter(|u| u.kind == semver::Change::Major).collect();
    let rewrites = import_rewrites(&ws, &majors)?;
    let stale_sums = ws.pins.as_ref().map(|p| super::sums::stale(p, &main.roots())).unwrap_or_default();
    Ok(Plan { ws, main, updates, unchecked, rewrites, stale_sums, values: opts.values.clone(), verify: opts.verify })
}

/// The newest release above each dependency's version: within its major
/// (a release, or a prerelease when the current one is), and with
/// `major`, in a higher major. A dependency whose versions cannot be
/// listed is unchecked; the others are still reported.
fn available(ws: &Workspace, roots: &[ModuleVersion], major: bool) -> (Vec<Update>, Vec<Unchecked>) {
    let mut queries: Vec<String> = roots.iter().map(|r| r.module.clone()).collect();
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
                .filter(|v| semver::compare(v, &r.version).is_gt())
                .filter(|v| !semver::is_prerelease(v) || semver::is_prerelease(&r.version))
                .max_by(|a, b| semver::compare(a, b))
                .cloned()
        };
        let (base, current_major) = split_major(&r.module);
        // Within the major, and with `major` the newest of a higher one
        // too: both are offered (applying takes the major).
        let found = take(&r.module).and_then(|same| {
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
                        module: r.module.clone(),
                        current: r.version.clone(),
                        kind: semver::change(&r.version, &available),
                        available,
                        signature,
                    });
                }
            }
            Err(error) => unchecked.push(Unchecked { module: r.module.clone(), current: r.version.clone(), error }),
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

/// What holds of the module before an update, and must hold after it.
struct Proof {
    /// `opm mod vet --concrete` passes.
    concrete: bool,
    /// The releases that render (`opm mod build`, `opm bundle build`).
    releases: Vec<ReleaseKind>,
}

fn render_options(ws: &Workspace, kind: ReleaseKind, values: &[PathBuf]) -> RenderOptions {
    RenderOptions { dir: ws.root.clone(), kind, values: values.to_vec(), name: None, namespace: "default".into(), tags: Vec::new(), encoding: Encoding::Yaml }
}

fn what_holds(ws: &Workspace, values: &[PathBuf]) -> anyhow::Result<Proof> {
    ws.ensure_deps()?;
    let concrete = vet::report(ws, true)?.errors.is_empty();
    let releases =
        [ReleaseKind::Module, ReleaseKind::Bundle].into_iter().filter(|&kind| render::render(&ws.ctx, &render_options(ws, kind, values)).is_ok()).collect();
    Ok(Proof { concrete, releases })
}

/// Fails with the first thing that held before and no longer does.
fn still_holds(ws: &Workspace, proof: &Proof, values: &[PathBuf]) -> Result<(), Broken> {
    let invalid = |what: &'static str, diagnostics: Vec<Diagnostic>| Broken { what, diagnostics };
    let report = vet::report(ws, false).map_err(Broken::other)?;
    if !report.errors.is_empty() {
        return Err(invalid("the module's vet", vet::absolute(report.errors, &ws.root)));
    }
    if proof.concrete {
        let report = vet::report(ws, true).map_err(Broken::other)?;
        if !report.errors.is_empty() {
            return Err(invalid("the module's concrete vet", vet::absolute(report.errors, &ws.root)));
        }
    }
    for &kind in &proof.releases {
        if let Err(e) = render::render(&ws.ctx, &render_options(ws, kind, values)) {
            let diagnostics = e.chain().find_map(|c| c.downcast_ref::<Failure>()).map(|f| f.diagnostics.clone()).unwrap_or_default();
            let what = if kind == ReleaseKind::Module { "the module's release" } else { "the bundle's release" };
            return Err(Broken {
                what,
                diagnostics: if diagnostics.is_empty() { vec![Diagnostic { message: format!("{e:#}"), positions: vec![] }] } else { diagnostics },
            });
        }
    }
    Ok(())
}

/// What an update broke, with CUE's errors.
struct Broken {
    what: &'static str,
    diagnostics: Vec<Diagnostic>,
}

impl Broken {
    fn other(e: anyhow::Error) -> Broken {
        Broken { what: "the module", diagnostics: vec![Diagnostic { message: format!("{e:#}"), positions: vec![] }] }
    }

    /// One line: the update, what it broke, the first error and its place.
    fn failure(self, updates: &[&Update], root: &std::path::Path) -> anyhow::Error {
        let names: Vec<String> = updates.iter().map(|u| format!("{} {} -> {}", u.module, u.current, u.available)).collect();
        let who = match names.as_slice() {
            [one] => format!("updating {one}"),
            many => format!("updating {} together", many.join(", ")),
        };
        let first = self.diagnostics.first().map(|d| {
            let cwd = std::env::current_dir().unwrap_or_default();
            // The place in the user's own files, when there is one.
            let own = d.positions.iter().find(|p| std::path::Path::new(&p.file).starts_with(root));
            match own.or(d.positions.first()) {
                Some(p) => format!("{} ({}:{}:{})", d.message, display_path(&cwd, &std::path::Path::new("/").join(&p.file)), p.line, p.column),
                None => d.message.clone(),
            }
        });
        let message = format!("{who} breaks {}: {}; nothing was changed (--no-verify keeps such an update)", self.what, first.unwrap_or_default());
        Failure { exit: Exit::Invalid, message, diagnostics: self.diagnostics }.into()
    }
}

/// The module and its requirements after `updates`: the resolved roots,
/// the defaults, and the import rewrites those updates need.
struct Applied<'p> {
    roots: Vec<ModuleVersion>,
    defaults: std::collections::BTreeMap<String, String>,
    rewrites: Vec<(&'p PathBuf, Vec<&'p Rewrite>)>,
}

fn resolve_updates<'p>(plan: &'p Plan, updates: &[&Update]) -> anyhow::Result<Applied<'p>> {
    let mut module = plan.main.module.clone();
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
    let roots = get::update_versions(&plan.ws.source(), &module, &wanted)?;
    let rewrites = plan
        .rewrites
        .iter()
        // Only a major update rewrites imports (a module can have a minor
        // and a major row).
        .map(|(f, changes)| (f, changes.iter().filter(|r| updates.iter().any(|u| u.kind == semver::Change::Major && u.module == r.module)).collect::<Vec<_>>()))
        .filter(|(_, changes)| !changes.is_empty())
        .collect();
    Ok(Applied { roots, defaults: module.defaults, rewrites })
}

/// A source file with the import literals rewritten, last first so that
/// earlier offsets stay valid (exactly the literals CUE's parser found).
fn rewritten(text: &str, changes: &[&Rewrite]) -> String {
    let mut new = text.to_string();
    for r in changes.iter().rev() {
        new.replace_range(r.range.clone(), &format!("{:?}", r.to));
    }
    new
}

/// A copy of the module in a temporary directory with `applied` written
/// into it (module.cue, opm.sum, rewritten imports), its dependencies in
/// the shared cache: where an update is rendered and proven before any
/// file of the user's changes. Directory replacements of
/// local-module.cue point at the originals.
fn staged(plan: &Plan, applied: &Applied) -> anyhow::Result<(tempfile::TempDir, Workspace)> {
    let ws = &plan.ws;
    let copy = tempfile::Builder::new().prefix("opm-staged-").tempdir()?;
    for f in files::module_files(&ws.root)? {
        if f.kind != files::Kind::File {
            continue;
        }
        let to = copy.path().join(&f.rel);
        fs_err::create_dir_all(to.parent().expect("a file has a parent"))?;
        match applied.rewrites.iter().find(|(p, _)| **p == f.abs) {
            Some((_, changes)) => fs_err::write(&to, rewritten(&fs_err::read_to_string(&f.abs)?, changes))?,
            None => fs_err::write(&to, fs_err::read(&f.abs)?)?,
        }
    }
    let copied = Workspace::open(&ws.ctx, copy.path())?;
    let main = copied.main_file()?;
    let text = copied.commit(&main, &applied.roots, &applied.defaults, &[])?;
    let views = cue::tidy_views(&ws.root).map_err(Failure::from)?;
    if let Some(local) = views.local {
        let deps: Vec<cue::Dep> = local
            .deps
            .into_iter()
            .map(|mut d| {
                if crate::resolve::replace::is_dir(&d.replace_with) {
                    d.replace_with = ws.root.join(&d.replace_with).to_string_lossy().into_owned();
                }
                d
            })
            .collect();
        let content = cue::format_local_module_file(&text, &deps).map_err(Failure::from)?;
        fs_err::write(copy.path().join("cue.mod/local-module.cue"), content)?;
    }
    Ok((copy, copied))
}

/// Applies the plan with cue's resolution, downloads, rewrites imports and
/// proves the result (unless `--no-verify`); when anything fails after
/// the first write, every file is restored. An update that breaks what
/// held is named: when several are applied together, each is tried alone.
pub fn apply(plan: &Plan) -> anyhow::Result<()> {
    let proof = if plan.verify { Some(what_holds(&plan.ws, &plan.values)?) } else { None };
    let all = to_apply(&plan.updates);
    match try_updates(plan, &all, proof.as_ref(), true)? {
        None => Ok(()),
        Some(broken) if all.len() == 1 => Err(broken.failure(&all, &plan.ws.root)),
        Some(broken) => {
            for u in &all {
                if let Some(alone) = try_updates(plan, &[u], proof.as_ref(), false)? {
                    return Err(alone.failure(&[u], &plan.ws.root));
                }
            }
            Err(broken.failure(&all, &plan.ws.root))
        }
    }
}

/// The updates `apply` applies: a module's major update supersedes the
/// update within its major that is offered next to it.
pub fn to_apply(updates: &[Update]) -> Vec<&Update> {
    updates.iter().filter(|u| u.kind == semver::Change::Major || !updates.iter().any(|o| o.module == u.module && o.kind == semver::Change::Major)).collect()
}

/// Applies `updates` in a staged copy and proves them there; when they
/// hold and `keep`, writes the user's files (opm.sum, module.cue, then
/// the rewritten sources, each atomically; any failure puts all back).
/// An interrupted proof leaves the module as it was. Ok(Some) says what
/// they broke.
fn try_updates(plan: &Plan, updates: &[&Update], proof: Option<&Proof>, keep: bool) -> anyhow::Result<Option<Broken>> {
    let ws = &plan.ws;
    let applied = resolve_updates(plan, updates)?;
    ws.cache.record_use(&ws.root, &applied.roots)?;
    let (_copy, stage) = staged(plan, &applied)?;
    let mut broken = match proof {
        Some(proof) => still_holds(&stage, proof, &plan.values).err(),
        None => vet::require_valid(&stage, "it does not vet with these updates, so nothing was changed").err().map(Broken::other),
    };
    // Errors name the user's files, not the staged copies.
    for d in broken.iter_mut().flat_map(|b| b.diagnostics.iter_mut()) {
        for p in &mut d.positions {
            if let Ok(rel) = std::path::Path::new(&p.file).strip_prefix(&stage.root) {
                p.file = ws.root.join(rel).to_string_lossy().into_owned();
            }
        }
    }
    if broken.is_some() || !keep {
        return Ok(broken);
    }
    // Every file written, or every file as it was: a signal waits.
    let _held = crate::cue::interrupt::hold();
    let saved = ws.save();
    let originals: Vec<String> = applied.rewrites.iter().map(|(f, _)| Ok(fs_err::read_to_string(f)?)).collect::<anyhow::Result<_>>()?;
    let write = || -> anyhow::Result<()> {
        ws.commit(&plan.main, &applied.roots, &applied.defaults, &[])?;
        for ((file, changes), text) in applied.rewrites.iter().zip(&originals) {
            write_atomic(file, rewritten(text, changes).as_bytes())?;
        }
        Ok(())
    };
    if let Err(e) = write() {
        let restored = saved.restore().and_then(|()| applied.rewrites.iter().zip(&originals).try_for_each(|((f, _), text)| write_atomic(f, text.as_bytes())));
        if let Err(r) = restored {
            return Err(e.context(format!("and restoring the previous files failed: {r:#}")));
        }
        return Err(e);
    }
    Ok(None)
}

/// What one update changes in the rendered objects.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub module: String,
    pub current: String,
    pub available: String,
    /// `Kind namespace/name` of objects the update adds and removes.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<Changed>,
    /// Why the module's release does not render after the update, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Changed {
    pub object: String,
    pub fields: Vec<FieldChange>,
}

#[derive(Debug, Serialize)]
pub struct FieldChange {
    /// `spec.replicas`, `spec.template.spec.containers[0].image`.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
}

type Objects = std::collections::BTreeMap<String, serde_json::Value>;

/// The module's release (else its bundle release) as objects by
/// `Kind namespace/name`; a module with neither (a plain CUE module): its
/// `cue export`, by top-level field.
fn rendered(ws_root: &std::path::Path, ws: &Workspace, values: &[PathBuf]) -> anyhow::Result<Objects> {
    let mut errors = Vec::new();
    for kind in [ReleaseKind::Module, ReleaseKind::Bundle] {
        let opts = RenderOptions { dir: ws_root.to_path_buf(), encoding: Encoding::Json, ..render_options(ws, kind, values) };
        match render::render(&ws.ctx, &opts) {
            Ok(r) => {
                let mut out = Objects::new();
                for o in r.objects {
                    let name = if o.namespace.is_empty() { o.name.clone() } else { format!("{}/{}", o.namespace, o.name) };
                    out.insert(format!("{} {name}", o.kind), serde_json::from_str(&o.text)?);
                }
                return Ok(out);
            }
            Err(e) => errors.push(e),
        }
    }
    // A release that exists and is broken is the error to report.
    if let Some(i) = errors.iter().position(|e| !declares_no_release(e)) {
        return Err(errors.swap_remove(i));
    }
    let exported = cue::export(ws_root, &files::current_dir()?, ws.cache.dir().unwrap_or(std::path::Path::new(""))).map_err(Failure::from)?;
    Ok(match exported {
        serde_json::Value::Object(fields) => fields.into_iter().map(|(k, v)| (format!("field {k}"), v)).collect(),
        other => Objects::from([("export".to_string(), other)]),
    })
}

/// Whether a render failed because the package has no release at all
/// (a plain CUE module) rather than because the release is broken.
fn declares_no_release(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("` field: an OPM ")
}

/// An error found in a staged copy, in the user's terms: its first CUE
/// error at its place in the user's own files (every error with -v).
fn in_user_paths(e: &anyhow::Error, copy: &std::path::Path, root: &std::path::Path) -> String {
    let cwd = files::current_dir().unwrap_or_default();
    let shown = |file: &str| {
        let path = std::path::Path::new("/").join(file);
        let path = path.strip_prefix(copy).map(|rel| root.join(rel)).unwrap_or(path);
        display_path(&cwd, &path)
    };
    let Some(failure) = e.chain().find_map(|c| c.downcast_ref::<Failure>()).filter(|f| !f.diagnostics.is_empty()) else {
        return format!("{e:#}").replace(&copy.display().to_string(), &root.display().to_string());
    };
    let one = |d: &Diagnostic| match d.positions.first() {
        Some(p) => format!("{} ({}:{}:{})", d.message, shown(&p.file), p.line, p.column),
        None => d.message.clone(),
    };
    if crate::ui::is_verbose() {
        failure.diagnostics.iter().map(one).collect::<Vec<_>>().join("; ")
    } else {
        let more = failure.diagnostics.len() - 1;
        one(&failure.diagnostics[0]) + &if more > 0 { format!(" (and {}; -v shows all)", crate::error::count(more, "more error")) } else { String::new() }
    }
}

fn diff_values(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<FieldChange>) {
    use serde_json::Value;
    let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff_values(&join(k), p, q, out),
                    (p, q) => out.push(FieldChange { path: join(k), before: p.cloned(), after: q.cloned() }),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let p = format!("{path}[{i}]");
                match (x.get(i), y.get(i)) {
                    (Some(u), Some(v)) => diff_values(&p, u, v, out),
                    (u, v) => out.push(FieldChange { path: p, before: u.cloned(), after: v.cloned() }),
                }
            }
        }
        _ if a != b => out.push(FieldChange { path: path.to_string(), before: Some(a.clone()), after: Some(b.clone()) }),
        _ => {}
    }
}

/// For each update of the plan, on its own: the release rendered before
/// and after it, compared object by object. Nothing of the module changes:
/// the update is rendered in a copy of the module.
pub fn preview(plan: &Plan) -> anyhow::Result<Vec<Preview>> {
    let ws = &plan.ws;
    ws.ensure_deps()?;
    let before = rendered(&ws.root, ws, &plan.values)?;
    let mut out = Vec::new();
    for u in &plan.updates {
        let applied = resolve_updates(plan, &[u])?;
        let (copy, copied) = staged(plan, &applied)?;
        let mut p = Preview {
            module: u.module.clone(),
            current: u.current.clone(),
            available: u.available.clone(),
            added: vec![],
            removed: vec![],
            changed: vec![],
            error: None,
        };
        match rendered(copy.path(), &copied, &plan.values) {
            Err(e) => p.error = Some(in_user_paths(&e, copy.path(), &ws.root)),
            Ok(after) => {
                p.added = after.keys().filter(|k| !before.contains_key(*k)).cloned().collect();
                p.removed = before.keys().filter(|k| !after.contains_key(*k)).cloned().collect();
                for (k, a) in &before {
                    if let Some(b) = after.get(k) {
                        let mut fields = Vec::new();
                        diff_values("", a, b, &mut fields);
                        if !fields.is_empty() {
                            p.changed.push(Changed { object: k.clone(), fields });
                        }
                    }
                }
            }
        }
        out.push(p);
    }
    Ok(out)
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
