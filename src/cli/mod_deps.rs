//! `opm mod get` and `opm mod tidy`.

use crate::files::{current_dir, display_path};
use crate::ops::deps::{self, Changed, Dropped, GetOptions, TidyOptions};
use crate::ui;

const GET_EXAMPLES: &str = "\
Examples:
  opm mod get example.com/app@v1.2.3            Add or change one dependency
  opm mod get example.com/a@v1.0.0 example.com/b@v0.3.1
  opm mod get --force example.com/app@v1.2.3    Download it again (corrupt cache)

An exact version is required (no @latest, @v1 or @v1.2): opm lists the
newest matching releases when one is missing. Other dependencies keep their
versions unless the new one requires more (minimal version selection, as
cue does). module.cue is written exactly as `cue mod get` writes it; every
module of the graph is downloaded, so `opm mod vet` and `opm mod build`
then work offline.";

const TIDY_EXAMPLES: &str = "\
Examples:
  opm mod tidy            Add missing dependencies, remove unused ones
  opm mod tidy --check    In CI: exit 6 when module.cue is not tidy

A missing dependency gets its newest release. Dependencies no package
imports are removed from module.cue and their versions from the CUE cache.
The result is what `cue mod tidy` writes, byte for byte.";

#[derive(Debug, clap::Args)]
#[command(after_help = GET_EXAMPLES)]
pub struct GetArgs {
    /// MODULE@VERSION, e.g. example.com/app@v1.2.3
    #[arg(required = true, value_name = "MODULE@VERSION")]
    modules: Vec<String>,
    /// Download the requested versions again, even when cached
    #[arg(long)]
    force: bool,
    /// Print what changed as JSON (module_file, changes)
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = TIDY_EXAMPLES)]
pub struct TidyArgs {
    /// Change nothing; exit 6 when module.cue is not tidy
    #[arg(long)]
    check: bool,
    /// Print what changed as JSON (module_file, changes, cache: removed or kept)
    #[arg(long)]
    json: bool,
}

pub fn get(args: GetArgs, g: super::Global) -> anyhow::Result<()> {
    let changed = deps::get(&g.context(None), &GetOptions { modules: args.modules, force: args.force })?;
    if args.json {
        return ui::print_json(&changed);
    }
    report(&changed);
    Ok(())
}

pub fn tidy(args: TidyArgs, g: super::Global) -> anyhow::Result<()> {
    if g.offline {
        ui::print_status("offline: versions come from the CUE cache only");
    }
    let result = deps::tidy(&g.context(None), &TidyOptions { check: args.check });
    // --check --json: the shape of tidy --json, and the verdict.
    if args.check && args.json {
        let (changed, verdict) = match result {
            Ok(changed) => (changed, Ok(())),
            Err(e) if super::exit_code(&e) == super::Exit::Outdated => {
                let module_file = crate::files::find_root(&current_dir()?)?.join(crate::module::MODULE_FILE);
                (deps::Changed { module_file, changes: Vec::new(), cache: Vec::new() }, Err(e))
            }
            Err(e) => return Err(e),
        };
        let mut json = serde_json::to_value(&changed)?;
        json["tidy"] = serde_json::Value::Bool(verdict.is_ok());
        if let Err(e) = &verdict {
            json["reason"] = serde_json::Value::String(format!("{e:#}"));
        }
        ui::print_json(&json)?;
        return verdict.map_err(|e| super::after_json(true, e));
    }
    let changed = result?;
    if args.json {
        return ui::print_json(&changed);
    }
    if args.check {
        ui::print_status(&format!("ok: {} is tidy", display_path(&current_dir()?, &changed.module_file)));
    } else {
        report(&changed);
    }
    Ok(())
}

fn report(changed: &Changed) {
    if changed.changes.is_empty() {
        ui::print_status(&format!("{} is up to date", changed.module_file.display()));
    }
    for c in &changed.changes {
        ui::print_status(&c.to_string());
    }
    for d in &changed.cache {
        match d {
            Dropped::Removed { module, version } => ui::print_status(&format!("removed {module} {version} from the cache")),
            Dropped::Kept { module, version, users } => {
                let users: Vec<String> = users.iter().map(|u| u.display().to_string()).collect();
                ui::print_status(&if users.is_empty() {
                    format!("kept {module} {version} in the cache: opm keeps no record of who uses it here (no HOME or OPM_STATE_DIR)")
                } else {
                    format!("kept {module} {version} in the cache: used by {}", users.join(", "))
                });
            }
        }
    }
}
