//! Applying updates and proving them: what holds of the module before,
//! the updates resolved and written into a staged copy, the proof there,
//! and only then the user's files.

use super::{to_apply, Plan, Rewrite, Update};
use crate::cue::{self, Diagnostic, Encoding, ReleaseKind};
use crate::error::{Failure, Kind};
use crate::files::{self, display_path, write_atomic};
use crate::module::{semver, split_major, ModuleVersion};
use crate::ops::render::{self, RenderOptions};
use crate::ops::{vet, Workspace};
use crate::resolve::get;
use std::path::PathBuf;

/// What holds of the module before an update, and must hold after it.
struct Proof {
    /// `opm mod vet --concrete` passes.
    concrete: bool,
    /// The releases that render (`opm mod build`, `opm bundle build`).
    releases: Vec<ReleaseKind>,
}

pub(super) fn render_options(ws: &Workspace, kind: ReleaseKind, values: &[PathBuf]) -> RenderOptions {
    RenderOptions {
        dir: ws.root.clone(),
        kind,
        values: values.to_vec(),
        name: None,
        namespace: "default".into(),
        tags: Vec::new(),
        encoding: Encoding::Yaml,
        use_results: false,
    }
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
        Failure { kind: Kind::Invalid, message, diagnostics: self.diagnostics }.into()
    }
}

/// The module and its requirements after `updates`: the resolved roots,
/// the defaults, and the import rewrites those updates need.
pub(super) struct Applied<'p> {
    roots: Vec<ModuleVersion>,
    defaults: std::collections::BTreeMap<String, String>,
    rewrites: Vec<(&'p PathBuf, Vec<&'p Rewrite>)>,
}

pub(super) fn resolve_updates<'p>(plan: &'p Plan, updates: &[&Update]) -> anyhow::Result<Applied<'p>> {
    let mut module = plan.main.module.clone();
    let mut wanted = Vec::new();
    for u in updates {
        if u.kind == semver::Bump::Major {
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
        .map(|(f, changes)| (f, changes.iter().filter(|r| updates.iter().any(|u| u.kind == semver::Bump::Major && u.module == r.module)).collect::<Vec<_>>()))
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
pub(super) fn staged(plan: &Plan, applied: &Applied) -> anyhow::Result<(tempfile::TempDir, Workspace)> {
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
