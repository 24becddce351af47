//! `opm mod vet`: every package of the module, as `cue vet` checks it.

use super::results::{self, Inputs};
use super::Workspace;
use crate::context::Context;
use crate::cue::{self, Diagnostic, Position};
use crate::error::{count, Failure, Kind};
use crate::files;
use std::path::{Path, PathBuf};

pub struct VetOptions {
    pub dir: PathBuf,
    pub concrete: bool,
    /// `key=value` tag injections.
    pub tags: Vec<String>,
    /// Answer from the result cache when nothing changed (`--no-cache`: no).
    pub use_results: bool,
}

pub struct Vetted {
    pub root: PathBuf,
    pub packages: Vec<String>,
    /// Positions relative to `root`, as cue prints them.
    pub errors: Vec<Diagnostic>,
}

/// Vets the module containing `opts.dir` after making its dependencies
/// loadable. Invalid is an outcome here, not an error.
pub fn vet(ctx: &Context, opts: &VetOptions) -> anyhow::Result<Vetted> {
    let ws = Workspace::open_to_load(ctx, &opts.dir)?;
    let inputs = opts.use_results.then(|| Inputs::of(&ws, "vet", &(opts.concrete, &opts.tags))).flatten();
    let report = results::answer(&ws, inputs, || run(&ws, opts.concrete, &opts.tags))?;
    Ok(Vetted { root: ws.root, packages: report.packages, errors: report.errors })
}

fn run(ws: &Workspace, concrete: bool, tags: &[String]) -> anyhow::Result<cue::VetReport> {
    let cwd = files::current_dir()?;
    let request = cue::VetRequest { dir: &ws.root, cwd: &cwd, cache_dir: ws.cache.dir().unwrap_or(Path::new("")), concrete, tags };
    Ok(cue::vet(&request).map_err(Failure::from)?)
}

/// Vets the module at the workspace root (its dependencies in the cache),
/// concretely or not; invalid is an outcome here.
pub fn report(ws: &Workspace, concrete: bool) -> anyhow::Result<cue::VetReport> {
    run(ws, concrete, &[])
}

/// Vets the module as `cue vet -c=false` does (its dependencies must be
/// in the cache); invalid fails with exit 2, the CUE errors attached, and
/// a message saying `consequence` ("nothing was published").
pub fn require_valid(ws: &Workspace, consequence: &str) -> anyhow::Result<()> {
    let report = run(ws, false, &[])?;
    if report.errors.is_empty() {
        return Ok(());
    }
    Err(Failure {
        kind: Kind::Invalid,
        message: format!("{} in the module: {consequence}", count(report.errors.len(), "error")),
        diagnostics: absolute(report.errors, &ws.root),
    }
    .into())
}

/// Diagnostics with absolute file names, as a [`Failure`] carries them.
pub fn absolute(mut diagnostics: Vec<Diagnostic>, root: &Path) -> Vec<Diagnostic> {
    for d in &mut diagnostics {
        for p in &mut d.positions {
            if !p.file.is_empty() {
                *p = Position { file: root.join(&p.file).to_string_lossy().into_owned(), ..p.clone() };
            }
        }
    }
    diagnostics
}
