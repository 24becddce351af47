use crate::cache;
use crate::deps;
use crate::cue::{self, Diagnostic};
use crate::error::{fail, Exit, Failure};
use crate::module;
use crate::ui;
use serde::Serialize;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  opm mod vet                      Validate the module in the current directory
  opm mod vet ./app --concrete     Also require every regular field to be concrete
  opm mod vet -t env=prod          Inject a @tag(env) value, as cue -t does
  opm mod vet --json               Report as JSON (valid, packages, errors)

Without --concrete this is `cue vet -c=false ./...`; with it, `cue vet -c ./...`.
Every error is printed with its positions. Exit code 2 when the module is invalid.";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A directory inside the module (default: the current directory)
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Require all regular fields to be concrete values
    #[arg(long, short = 'c')]
    concrete: bool,
    /// Inject a tag value: -t key=value (repeatable)
    #[arg(short = 't', long = "inject", value_name = "KEY=VALUE")]
    tags: Vec<String>,
    /// Print the result as JSON on stdout
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    fetch: deps::FetchArgs,
}

#[derive(Serialize)]
struct Report<'a> {
    root: &'a std::path::Path,
    valid: bool,
    packages: &'a [String],
    errors: &'a [Diagnostic],
}

/// Vets the module at `root` as `cue vet -c=false` does; on errors prints
/// them and fails (exit 2) saying `consequence` ("nothing was published").
pub(super) fn require_valid(root: &std::path::Path, cache_dir: &std::path::Path, consequence: &str) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    let report = cue::vet(&cue::VetRequest { dir: root, cwd: &cwd, cache_dir, concrete: false, tags: &[] })
        .map_err(Failure::from)?;
    if report.errors.is_empty() {
        return Ok(());
    }
    ui::print_diagnostics(&report.errors, root, &cwd);
    let n = report.errors.len();
    Err(fail(Exit::Invalid, format!("{n} error{} in the module: {consequence}", if n == 1 { "" } else { "s" })))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let root = module::find_root(&args.dir)?;
    let cwd = std::env::current_dir()?;
    let cache_dir = cache::dir();
    deps::ensure_available(&root, &cache_dir, args.fetch)?;
    let report = cue::vet(&cue::VetRequest {
        dir: &root,
        cwd: &cwd,
        cache_dir: &cache_dir,
        concrete: args.concrete,
        tags: &args.tags,
    })
    .map_err(Failure::from)?;

    let valid = report.errors.is_empty();
    if args.json {
        ui::print_json(&Report {
            root: &root,
            valid,
            packages: &report.packages,
            errors: &report.errors,
        })?;
    } else {
        ui::print_diagnostics(&report.errors, &root, &cwd);
    }
    if !valid {
        let n = report.errors.len();
        return Err(fail(
            Exit::Invalid,
            format!(
                "{n} error{} in {}",
                if n == 1 { "" } else { "s" },
                root.display()
            ),
        ));
    }
    if !args.json {
        let n = report.packages.len();
        ui::print_status(&format!(
            "ok: {n} package{} valid in {}",
            if n == 1 { "" } else { "s" },
            root.display()
        ));
    }
    Ok(())
}
