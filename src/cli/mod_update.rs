//! `opm mod update`: newer releases of the dependencies, applied with
//! cue's resolution after confirmation.

use super::mod_deps::Workspace;
use crate::cue;
use crate::deps::ModuleVersion;
use crate::error::{fail, Exit, Failure};
use crate::module;
use crate::resolve::{self, get, semver, split_major};
use crate::ui;
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  opm mod update                   Show newer patch and minor releases, ask, apply
  opm mod update --check           In CI: exit 6 when updates exist, change nothing
  opm mod update --yes             Apply without asking (no terminal needed)
  opm mod update --major           Include new major versions
  opm mod update example.com/lib   Only this dependency
  opm mod update --json --check    The available updates as JSON

After an update module.cue and the cache hold the new versions and the
module is vetted; if it no longer vets, nothing is changed. A major update
changes import paths: opm names the files that import the old major and
rewrites them when you agree.";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Dependencies to update (module paths, with or without @vN); default: all
    modules: Vec<String>,
    /// Only report: exit 6 when updates are available
    #[arg(long)]
    check: bool,
    /// Include major version updates
    #[arg(long)]
    major: bool,
    /// Apply without asking
    #[arg(long, short = 'y')]
    yes: bool,
    /// Print the available updates as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Serialize)]
struct Update {
    /// The dependency, with its major version.
    module: String,
    current: String,
    available: String,
    /// patch, minor or major
    kind: &'static str,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let ws = Workspace::open()?;
    let roots: Vec<ModuleVersion> = ws
        .roots()
        .into_iter()
        .filter(|r| args.modules.is_empty() || args.modules.iter().any(|m| m == &r.module || m == split_major(&r.module).0))
        .collect();
    if let Some(unknown) = args.modules.iter().find(|m| !ws.roots().iter().any(|r| *m == &r.module || *m == split_major(&r.module).0)) {
        return Err(fail(Exit::NotFound, format!("{unknown} is not a dependency in module.cue: add it with 'opm mod get {unknown}@VERSION'")));
    }
    let updates = available_updates(&ws, &roots, args.major)?;

    if args.json {
        ui::print_json(&updates)?;
    } else if updates.is_empty() {
        ui::print_status("all dependencies are up to date");
    } else {
        print_table(&updates)?;
    }
    if updates.is_empty() {
        return Ok(());
    }
    if args.check {
        let n = updates.len();
        return Err(fail(Exit::Outdated, format!("{n} update{} available: run 'opm mod update'", if n == 1 { "" } else { "s" })));
    }

    let majors: Vec<&Update> = updates.iter().filter(|u| u.kind == "major").collect();
    let rewrites = import_rewrites(&ws.root, &majors)?;
    for (file, changes) in &rewrites {
        for (_, from, to) in changes {
            ui::print_status(&format!("{} imports {from}: will import {to}", module::display_path(&std::env::current_dir()?, file)));
        }
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return Err(fail(Exit::General, "no terminal to confirm the updates: run again with --yes"));
        }
        let go = dialoguer::Confirm::new()
            .with_prompt(format!("Apply {} update{}?", updates.len(), if updates.len() == 1 { "" } else { "s" }))
            .default(false)
            .interact()?;
        if !go {
            ui::print_status("nothing changed");
            return Ok(());
        }
    }
    apply(&ws, &updates, &rewrites)
}

/// The newest release above each dependency's version: within its major
/// (a release, or a prerelease when the current one is), and with
/// `major`, in a higher major.
fn available_updates(ws: &Workspace, roots: &[ModuleVersion], major: bool) -> anyhow::Result<Vec<Update>> {
    let mut queries: Vec<String> = roots.iter().map(|r| r.module.clone()).collect();
    if major {
        queries.extend(roots.iter().map(|r| split_major(&r.module).0.to_string()));
    }
    queries.sort();
    queries.dedup();
    ws.cx.prefetch_versions(&queries)?;
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
        let mut best = newest_above(&ws.cx.versions(&r.module)?).map(|v| (r.module.clone(), v));
        if major {
            let all = ws.cx.versions(base)?;
            let higher: Vec<String> = all.iter().filter(|v| semver::compare(semver::major(v), current_major).is_gt()).cloned().collect();
            if let Some(v) = newest_above(&higher) {
                best = Some((format!("{base}@{}", semver::major(&v)), v));
            }
        }
        if let Some((_, available)) = best {
            out.push(Update { module: r.module.clone(), current: r.version.clone(), kind: kind(&r.version, &available), available });
        }
    }
    Ok(out)
}

fn kind(from: &str, to: &str) -> &'static str {
    let parts = |v: &str| -> (String, String) {
        let core = v.trim_start_matches('v').split(['-', '+']).next().unwrap_or("").to_string();
        let mut it = core.split('.');
        (it.next().unwrap_or("").to_string(), it.next().unwrap_or("").to_string())
    };
    let (a, b) = (parts(from), parts(to));
    if a.0 != b.0 {
        "major"
    } else if a.1 != b.1 {
        "minor"
    } else {
        "patch"
    }
}

fn print_table(updates: &[Update]) -> anyhow::Result<()> {
    let w = updates.iter().map(|u| u.module.len()).max().unwrap_or(0).max("MODULE".len());
    let c = updates.iter().map(|u| u.current.len()).max().unwrap_or(0).max("CURRENT".len());
    let a = updates.iter().map(|u| u.available.len()).max().unwrap_or(0).max("AVAILABLE".len());
    let mut out = format!("{:<w$}  {:<c$}    {:<a$}  KIND\n", "MODULE", "CURRENT", "AVAILABLE");
    for u in updates {
        out += &format!("{:<w$}  {:<c$} -> {:<a$}  {}\n", u.module, u.current, u.available, u.kind);
    }
    ui::write_stdout(&out)
}

/// Per file: (byte range of an import path literal, old path, new path).
type Rewrites = Vec<(PathBuf, Vec<(std::ops::Range<usize>, String, String)>)>;

/// The import paths in the main module's files that name an old major
/// being updated, and what they become.
fn import_rewrites(root: &Path, majors: &[&Update]) -> anyhow::Result<Rewrites> {
    let mut out = Vec::new();
    if majors.is_empty() {
        return Ok(out);
    }
    for file in module_files(root)? {
        let mut changes = Vec::new();
        for spec in cue::import_specs(&file).map_err(Failure::from)? {
            let mut ip = resolve::ImportPath::parse(&spec.path);
            for u in majors {
                let (base, old) = split_major(&u.module);
                let in_module = ip.path == base || ip.path.starts_with(&format!("{base}/"));
                if in_module && ip.version == old {
                    ip.version = semver::major(&u.available).to_string();
                    changes.push((spec.start..spec.end, spec.path.clone(), ip.canonical()));
                }
            }
        }
        if !changes.is_empty() {
            out.push((file, changes));
        }
    }
    Ok(out)
}

/// The .cue files of the main module (not hidden, not in cue.mod or
/// nested modules).
fn module_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, top: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        if !top && dir.join("cue.mod").exists() {
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') || name == "cue.mod" {
                continue;
            }
            if e.file_type()?.is_dir() {
                walk(&e.path(), false, out)?;
            } else if name.ends_with(".cue") {
                out.push(e.path());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, true, &mut out)?;
    Ok(out)
}

/// Applies the updates with cue's resolution, downloads, vets; restores
/// every file when the result does not vet.
fn apply(ws: &Workspace, updates: &[Update], rewrites: &Rewrites) -> anyhow::Result<()> {
    let mut parsed = ws.parsed.clone();
    let mut wanted = Vec::new();
    for u in updates {
        let new = resolve::module_version(split_major(&u.module).0, &u.available);
        if u.kind == "major" {
            // The old major goes; the new one takes over its default.
            parsed.deps.retain(|d| d.path != u.module);
            let (base, old) = split_major(&u.module);
            if parsed.defaults.get(base).is_some_and(|d| d == old) {
                parsed.defaults.insert(base.to_string(), semver::major(&u.available).to_string());
            }
        }
        wanted.push(new);
    }
    let roots = get::update_versions(&ws.cx, &parsed, &wanted)?;

    let originals: Vec<(PathBuf, String)> =
        rewrites.iter().map(|(f, _)| Ok((f.clone(), std::fs::read_to_string(f)?))).collect::<anyhow::Result<_>>()?;
    let restore = || -> anyhow::Result<()> {
        module::write_atomic(&ws.file, ws.text.as_bytes())?;
        for (f, text) in &originals {
            module::write_atomic(f, text.as_bytes())?;
        }
        Ok(())
    };
    ws.commit(&roots, &parsed.defaults, &[])?;
    // From here on, any failure puts module.cue and the sources back.
    let rewrite_and_vet = || -> anyhow::Result<()> {
        for ((file, changes), (_, text)) in rewrites.iter().zip(&originals) {
            // Exactly the import literals CUE's parser found, last first so
            // that earlier offsets stay valid.
            let mut new = text.clone();
            for (range, _, to) in changes.iter().rev() {
                new.replace_range(range.clone(), &format!("{to:?}"));
            }
            module::write_atomic(file, new.as_bytes())?;
        }
        super::mod_vet::require_valid(&ws.root, &ws.cx.cache_dir, "it does not vet with these updates, so nothing was changed")
    };
    if let Err(e) = rewrite_and_vet() {
        if let Err(r) = restore() {
            return Err(e.context(format!("and restoring the previous files failed: {r:#}")));
        }
        return Err(e);
    }
    for u in updates {
        ui::print_status(&format!("updated {} {} -> {}", u.module, u.current, u.available));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_update() {
        assert_eq!(kind("v1.0.0", "v1.0.1"), "patch");
        assert_eq!(kind("v1.0.0", "v1.1.0"), "minor");
        assert_eq!(kind("v1.2.0", "v2.0.0"), "major");
    }
}
