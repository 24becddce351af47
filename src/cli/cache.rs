//! `opm cache`: dir, list, verify, gc, clean.

use crate::error::{count, fail, Kind};
use crate::ops::cache::{self, GcOptions, Listed};
use crate::ops::results;
use crate::ui;
use std::io::IsTerminal;

pub const EXAMPLES: &str = "\
Examples:
  opm cache dir                     Where the CUE cache is
  opm cache list                    Module versions, size, last use, projects
  opm cache verify                  Check every entry against its digest and zip
  opm cache gc --older-than 30d     Remove what no project used for 30 days
  opm cache gc --dry-run            Say what gc would remove
  opm cache clean --yes             Remove every module version

The CUE cache is shared with cue and with every project on this machine.
opm records which module versions each project last resolved to (in its
state directory: $OPM_STATE_DIR, else ~/.local/state/opm); tidy and gc
never remove a version another existing project uses. Removals take cue's
lock of each version, so they are safe while cue or opm run. gc also removes
the answers of opm's result cache (vet and build) not used for as long, and
clean all of them.";

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the CUE cache directory
    Dir,
    /// List the module versions in the cache
    List {
        /// Print the list as JSON
        #[arg(long)]
        json: bool,
    },
    /// Check every entry against its recorded digest and its zip (exit 1 on damage)
    Verify {
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove the versions no recorded project uses that were not used for a while
    Gc {
        /// Keep what was used within this long: 30d, 12h, 90m, 45s or 0
        #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = super::parse_duration)]
        older_than: u64,
        /// Say what would be removed, remove nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove every module version (the core model opm carries comes back on use) and the result cache
    Clean {
        /// Do not ask
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

fn entries(n: usize) -> String {
    format!("{n} cache entr{}", if n == 1 { "y" } else { "ies" })
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn ago(secs: u64) -> String {
    let d = cache::now().saturating_sub(secs);
    match d {
        d if d >= 86400 => format!("{}d ago", d / 86400),
        d if d >= 3600 => format!("{}h ago", d / 3600),
        d if d >= 60 => format!("{}m ago", d / 60),
        _ => "just now".into(),
    }
}

fn table(entries: &[Listed]) -> String {
    let w = entries.iter().map(|e| e.module.len()).max().unwrap_or(0).max("MODULE".len());
    let v = entries.iter().map(|e| e.version.len()).max().unwrap_or(0).max("VERSION".len());
    let mut out = format!("{:<w$}  {:<v$}  {:>10}  {:<10}  PROJECTS\n", "MODULE", "VERSION", "SIZE", "LAST USE");
    for e in entries {
        let projects: Vec<String> = e.projects.iter().map(|p| p.display().to_string()).collect();
        out += &format!("{:<w$}  {:<v$}  {:>10}  {:<10}  {}\n", e.module, e.version, size(e.bytes), ago(e.last_used), projects.join(", "));
    }
    out
}

pub fn run(command: Command, g: super::Global) -> anyhow::Result<()> {
    // The cache commands never touch the network.
    let ctx = super::Global { offline: true, ..g }.context(None);
    match command {
        Command::Dir => ui::write_stdout(&format!("{}\n", cache::dir(&ctx)?.display())),
        Command::List { json } => {
            let entries = cache::list(&ctx)?;
            if json {
                return ui::print_json(&entries);
            }
            ui::write_stdout(&table(&entries))
        }
        Command::Verify { json } => {
            let (checked, damaged) = cache::verify(&ctx)?;
            if json {
                ui::print_json(&serde_json::json!({ "checked": checked, "damaged": damaged }))?;
            } else {
                for d in &damaged {
                    ui::print_status(&format!("{} {}: {}", d.module, d.version, d.problem));
                }
            }
            if !damaged.is_empty() {
                return Err(super::after_json(
                    json,
                    fail(
                        Kind::Other,
                        format!(
                            "{} of {} damaged: run 'opm mod get --force MODULE@VERSION' in a project that uses each, or 'opm cache clean'",
                            damaged.len(),
                            entries(checked)
                        ),
                    ),
                ));
            }
            if !json {
                ui::print_status(&format!("ok: {} sound", entries(checked)));
            }
            Ok(())
        }
        Command::Gc { older_than, dry_run } => {
            let removed = cache::gc(&ctx, &GcOptions { older_than, dry_run })?;
            let verb = if dry_run { "would remove" } else { "removed" };
            for e in &removed {
                ui::print_status(&format!("{verb} {} {} ({})", e.module, e.version, size(e.bytes)));
            }
            let total: u64 = removed.iter().map(|e| e.bytes).sum();
            ui::print_status(&format!("{verb} {}, {}", count(removed.len(), "version"), size(total)));
            let (answers, bytes) = results::gc(std::time::Duration::from_secs(older_than), dry_run)?;
            if answers > 0 || bytes > 0 {
                ui::print_status(&format!("{verb} {} of the result cache, {}", count(answers, "kept result"), size(bytes)));
            }
            Ok(())
        }
        Command::Clean { yes } => {
            if !yes {
                if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
                    return Err(fail(Kind::Other, "no terminal to confirm: run again with --yes to remove every module version"));
                }
                let go = ui::confirm(&format!("Remove every module version from {}?", cache::dir(&ctx)?.display()))?;
                if !go {
                    ui::print_status("nothing removed");
                    return Ok(());
                }
            }
            let removed = cache::clean(&ctx)?;
            ui::print_status(&format!("removed {} and the result cache", count(removed.len(), "version")));
            Ok(())
        }
    }
}
