//! `opm mod update`.

use crate::error::{count, fail, Exit};
use crate::files::{current_dir, display_path};
use crate::module::semver::Change;
use crate::ops::update::{self, Update, UpdateOptions};
use crate::ui;
use std::io::IsTerminal;

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

pub fn run(args: Args) -> anyhow::Result<()> {
    let plan = update::plan(&UpdateOptions { modules: args.modules.clone(), major: args.major })?;
    let updates = &plan.updates;
    if args.json {
        ui::print_json(updates)?;
    } else if updates.is_empty() {
        ui::print_status("all dependencies are up to date");
    } else {
        print_table(updates)?;
    }
    if updates.is_empty() {
        return Ok(());
    }
    if args.check {
        return Err(fail(Exit::Outdated, format!("{} available: run 'opm mod update'", count(updates.len(), "update"))));
    }
    let cwd = current_dir()?;
    for (file, changes) in &plan.rewrites {
        for r in changes {
            ui::print_status(&format!("{} imports {}: will import {}", display_path(&cwd, file), r.from, r.to));
        }
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return Err(fail(Exit::General, "no terminal to confirm the updates: run again with --yes"));
        }
        let go = dialoguer::Confirm::new().with_prompt(format!("Apply {}?", count(updates.len(), "update"))).default(false).interact()?;
        if !go {
            ui::print_status("nothing changed");
            return Ok(());
        }
    }
    update::apply(&plan)?;
    for u in updates {
        ui::print_status(&format!("updated {} {} -> {}", u.module, u.current, u.available));
    }
    Ok(())
}

fn print_table(updates: &[Update]) -> anyhow::Result<()> {
    let w = updates.iter().map(|u| u.module.len()).max().unwrap_or(0).max("MODULE".len());
    let c = updates.iter().map(|u| u.current.len()).max().unwrap_or(0).max("CURRENT".len());
    let a = updates.iter().map(|u| u.available.len()).max().unwrap_or(0).max("AVAILABLE".len());
    let mut out = format!("{:<w$}  {:<c$}    {:<a$}  KIND\n", "MODULE", "CURRENT", "AVAILABLE");
    for u in updates {
        let kind = match u.kind {
            Change::Major => "major",
            Change::Minor => "minor",
            Change::Patch => "patch",
        };
        out += &format!("{:<w$}  {:<c$} -> {:<a$}  {kind}\n", u.module, u.current, u.available);
    }
    ui::write_stdout(&out)
}
