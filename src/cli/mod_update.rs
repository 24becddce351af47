//! `opm mod update`.

use crate::context::Context;
use crate::error::{count, fail, Kind};
use crate::files::{current_dir, display_path};
use crate::module::semver::Bump;
use crate::ops::update::{self, Unchecked, Update, UpdateOptions};
use crate::ui;
use serde::Serialize;
use std::io::IsTerminal;

const EXAMPLES: &str = "\
Examples:
  opm mod update                   Show newer patch and minor releases, ask, apply
  opm mod update --check           In CI: exit 6 when updates exist, change nothing
  opm mod update --yes             Apply without asking (no terminal needed)
  opm mod update --major           Include new major versions
  opm mod update example.com/lib   Only this dependency
  opm mod update -f prod.yaml      Prove the update with these release values
  opm mod update --json --check    The available updates as JSON

An update is kept only when what held before still holds: the module
vets (concretely too, if it did), and its release (`opm mod build`) and
bundle release (`opm bundle build`) still render, with the values files
given. Otherwise every file is put back and the dependency that broke it
is named with the first error (exit 2); --no-verify keeps it anyway, after
a plain vet. A major update changes import paths: opm names the files that
import the old major and rewrites them when you agree. A dependency whose
registry cannot be reached is reported in its own row; its exit code (3,
4 or 5) wins over 6. The core model opm carries is not checked: it is
updated with opm.";

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
    /// A values file the releases are rendered with to prove the update (repeatable)
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    values: Vec<std::path::PathBuf>,
    /// Keep an update even when the module no longer vets or renders
    #[arg(long)]
    no_verify: bool,
    /// Show what each update changes in the rendered objects; change nothing
    #[arg(long, conflicts_with_all = ["check", "yes"])]
    diff: bool,
}

/// One row of `--json`: an update, or a dependency that could not be checked.
#[derive(Serialize)]
struct Row<'a> {
    module: &'a str,
    current: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    available: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<Bump>,
    /// `unsigned`: the verify policy would refuse the available version.
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(args: Args, g: super::Global) -> anyhow::Result<()> {
    let ctx = g.context(None);
    // `DIR/...`: every module under DIR (cue's package pattern).
    if let [pattern] = args.modules.as_slice() {
        if let Some(dir) = pattern.strip_suffix("/...").or((pattern == "...").then_some(".")) {
            return every_module(&ctx, &args, std::path::Path::new(if dir.is_empty() { "/" } else { dir }));
        }
    }
    let opts = UpdateOptions { modules: args.modules.clone(), major: args.major, values: args.values.clone(), verify: !args.no_verify, dir: None };
    let plan = update::plan(&ctx, &opts)?;
    if args.diff {
        return print_previews(&update::preview(&plan)?, args.json);
    }
    let updates = &plan.updates;
    let rows: Vec<Row> = updates
        .iter()
        .map(|u| Row { module: &u.module, current: &u.current, available: Some(&u.available), kind: Some(u.kind), signature: u.signature, error: None })
        .chain(plan.unchecked.iter().map(|u| Row {
            module: &u.module,
            current: &u.current,
            available: None,
            kind: None,
            signature: None,
            error: Some(format!("{:#}", u.error)),
        }))
        .collect();
    // With --yes, --json reports what was applied, once it is.
    let applying = args.yes && !args.check && !updates.is_empty();
    if args.json {
        if !applying {
            ui::print_json(&rows)?;
        }
    } else if updates.is_empty() && plan.unchecked.is_empty() {
        ui::print_status("all dependencies are up to date");
    } else {
        print_table(updates, &plan.unchecked)?;
    }
    // A dependency that could not be checked decides the exit code (3, 4
    // or 5), over "updates available" (6).
    let unchecked = || -> anyhow::Error {
        let first = &plan.unchecked[0];
        fail(super::kind_of(&first.error), format!("{} could not be checked: {:#}", count(plan.unchecked.len(), "dependency"), first.error))
    };
    if !plan.stale_sums.is_empty() {
        ui::print_status(&format!("cue.mod/opm.sum is stale ({}): run 'opm mod tidy'", plan.stale_sums.join(", ")));
    }
    if args.check && updates.is_empty() && plan.unchecked.is_empty() && !plan.stale_sums.is_empty() {
        return Err(fail(Kind::Outdated, "cue.mod/opm.sum is stale: run 'opm mod tidy'"));
    }
    if updates.is_empty() {
        return if plan.unchecked.is_empty() { Ok(()) } else { Err(super::after_json(args.json, unchecked())) };
    }
    if args.check {
        if !plan.unchecked.is_empty() {
            return Err(super::after_json(args.json, unchecked()));
        }
        // The command that takes what was offered: majors only with --major.
        let takes = if args.major && updates.iter().any(|u| u.kind == Bump::Major) { "opm mod update --major" } else { "opm mod update" };
        return Err(super::after_json(args.json, fail(Kind::Outdated, format!("{} available: run '{takes}'", count(updates.len(), "update")))));
    }
    let cwd = current_dir()?;
    for (file, changes) in &plan.rewrites {
        for r in changes {
            ui::print_status(&format!("{} imports {}: will import {}", display_path(&cwd, file), r.from, r.to));
        }
    }
    if !args.yes {
        // --json reports, it never asks: add --yes to apply.
        if args.json {
            return Ok(());
        }
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return Err(fail(Kind::Other, "no terminal to confirm the updates: run again with --yes"));
        }
        // The question goes with its table: on the terminal too when
        // stdout went elsewhere.
        if !std::io::stdout().is_terminal() {
            eprint!("{}", table(updates, &plan.unchecked));
        }
        let go = ui::confirm(&format!("Apply {}?", count(update::to_apply(updates).len(), "update")))?;
        if !go {
            ui::print_status("nothing changed");
            return Ok(());
        }
    }
    update::apply(&plan)?;
    let applied = update::to_apply(updates);
    if args.json {
        let rewrites: Vec<serde_json::Value> = plan
            .rewrites
            .iter()
            .flat_map(|(file, changes)| changes.iter().filter(|r| applied.iter().any(|u| u.module == r.module)).map(move |r| (file, r)))
            .map(|(file, r)| serde_json::json!({ "file": file, "from": r.from, "to": r.to }))
            .collect();
        ui::print_json(&serde_json::json!({ "updates": rows, "applied": applied, "rewrites": rewrites }))?;
    }
    for u in &applied {
        ui::print_status(&format!("updated {} {} -> {}", u.module, u.current, u.available));
    }
    if !plan.unchecked.is_empty() {
        return Err(unchecked());
    }
    Ok(())
}

fn print_table(updates: &[Update], unchecked: &[Unchecked]) -> anyhow::Result<()> {
    ui::write_stdout(&table(updates, unchecked))
}

fn table(updates: &[Update], unchecked: &[Unchecked]) -> String {
    let w = updates.iter().map(|u| u.module.len()).chain(unchecked.iter().map(|u| u.module.len())).max().unwrap_or(0).max("MODULE".len());
    let c = updates.iter().map(|u| u.current.len()).chain(unchecked.iter().map(|u| u.current.len())).max().unwrap_or(0).max("CURRENT".len());
    let a = updates.iter().map(|u| u.available.len()).max().unwrap_or(0).max("AVAILABLE".len());
    let mut out = format!("{:<w$}  {:<c$}    {:<a$}  KIND\n", "MODULE", "CURRENT", "AVAILABLE");
    for u in updates {
        // SemVer promises nothing below 1.0: any v0 update may break.
        let v0 = crate::module::semver::major(&u.current) == "v0";
        let kind = match (u.kind, v0) {
            (Bump::Major, _) => "major",
            (Bump::Minor, false) => "minor",
            (Bump::Patch, false) => "patch",
            (Bump::Minor, true) => "minor (v0: may break)",
            (Bump::Patch, true) => "patch (v0: may break)",
        };
        let unsigned = if u.signature == Some("unsigned") { ", unsigned: the verify policy refuses it" } else { "" };
        out += &format!("{:<w$}  {:<c$} -> {:<a$}  {kind}{unsigned}\n", u.module, u.current, u.available);
    }
    for u in unchecked {
        out += &format!("{:<w$}  {:<c$} -> {:<a$}  cannot check: {:#}\n", u.module, u.current, "?", u.error);
    }
    out
}

/// Prints what each update would change; an update whose release no
/// longer renders fails the command (exit 2) once everything is shown.
fn print_previews(previews: &[update::Preview], json: bool) -> anyhow::Result<()> {
    let broken = previews.iter().filter(|p| p.error.is_some()).count();
    let verdict = || {
        let why = format!("{} of {} would no longer render", count(broken, "update"), previews.len());
        super::after_json(json, fail(Kind::Invalid, why))
    };
    if json {
        ui::print_json(&previews)?;
        return if broken > 0 { Err(verdict()) } else { Ok(()) };
    }
    if previews.is_empty() {
        ui::print_status("all dependencies are up to date");
        return Ok(());
    }
    let mut out = String::new();
    for p in previews {
        out += &format!("{} {} -> {}:\n", p.module, p.current, p.available);
        if let Some(e) = &p.error {
            out += &format!("  the release no longer renders: {e}\n");
            continue;
        }
        for a in &p.added {
            out += &format!("  + {a}\n");
        }
        for r in &p.removed {
            out += &format!("  - {r}\n");
        }
        for c in &p.changed {
            out += &format!("  ~ {}\n", c.object);
            for f in &c.fields {
                out += &format!("      {}\n", crate::fields::describe(f));
            }
        }
        if p.added.is_empty() && p.removed.is_empty() && p.changed.is_empty() {
            out += "  (the rendered objects do not change)\n";
        }
    }
    ui::write_stdout(&out)?;
    if broken > 0 {
        return Err(verdict());
    }
    Ok(())
}

/// `update --check DIR/...`: one table for every module under DIR.
fn every_module(ctx: &Context, args: &Args, dir: &std::path::Path) -> anyhow::Result<()> {
    if !args.check && !args.json {
        return Err(fail(Kind::Other, "DIR/... checks every module under DIR: add --check (or --json); update each module in its own directory"));
    }
    let cwd = current_dir()?;
    let mut rows = Vec::new();
    let mut failed: Option<anyhow::Error> = None;
    let mut outdated = false;
    for root in update::module_roots(dir)? {
        let opts = UpdateOptions { modules: vec![], major: args.major, values: vec![], verify: false, dir: Some(root.clone()) };
        let plan = update::plan(ctx, &opts)?;
        let shown = display_path(&cwd, &std::path::absolute(&root)?);
        outdated |= !plan.updates.is_empty();
        for u in &plan.updates {
            rows.push(serde_json::json!({ "root": shown, "module": u.module, "current": u.current, "available": u.available, "kind": u.kind }));
        }
        for u in &plan.unchecked {
            rows.push(serde_json::json!({ "root": shown, "module": u.module, "current": u.current, "error": format!("{:#}", u.error) }));
        }
        if let Some(first) = plan.unchecked.into_iter().next() {
            failed.get_or_insert(fail(super::kind_of(&first.error), format!("{} could not be checked: {:#}", first.module, first.error)));
        }
    }
    if args.json {
        ui::print_json(&rows)?;
    } else if rows.is_empty() {
        ui::print_status("all dependencies are up to date");
    } else {
        let col = |k: &str| rows.iter().map(|r| r[k].as_str().unwrap_or("").len()).max().unwrap_or(0);
        let (wr, wm, wc) = (col("root").max(4), col("module").max(6), col("current").max(7));
        let mut out = format!("{:<wr$}  {:<wm$}  {:<wc$}    AVAILABLE\n", "ROOT", "MODULE", "CURRENT");
        for r in &rows {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            let available = if r.get("error").is_some() { format!("cannot check: {}", s("error")) } else { format!("{} ({})", s("available"), s("kind")) };
            out += &format!("{:<wr$}  {:<wm$}  {:<wc$} -> {available}\n", s("root"), s("module"), s("current"));
        }
        ui::write_stdout(&out)?;
    }
    if let Some(e) = failed {
        return Err(super::after_json(args.json, e));
    }
    if outdated && args.check {
        return Err(super::after_json(
            args.json,
            fail(
                Kind::Outdated,
                if args.major {
                    "updates available: run 'opm mod update --major' in each module"
                } else {
                    "updates available: run 'opm mod update' in each module"
                },
            ),
        ));
    }
    Ok(())
}
