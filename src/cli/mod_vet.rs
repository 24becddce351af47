//! `opm mod vet`.

use super::Global;
use crate::cue::Diagnostic;
use crate::error::{count, Failure, Kind};
use crate::ops::vet::{self, VetOptions};
use crate::ui;
use serde::Serialize;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  opm mod vet                      Validate the module in the current directory
  opm mod vet ./app --concrete     Also require every regular field to be concrete
  opm mod vet -t env=prod          Inject a @tag(env) value, as cue -t does
  opm mod vet --json               Report as JSON (valid, packages, errors)
  opm mod vet --no-cache           Evaluate even if nothing changed since the last vet

Without --concrete this is `cue vet -c=false ./...`; with it, `cue vet -c ./...`.
Every error is printed with its positions. Exit code 2 when the module is invalid.
When the module, its opm.sum, the flags and opm itself are unchanged since a
vet, the answer comes from opm's result cache (dependencies still checked).";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A directory inside the module (default: the current directory); cue's ./... also works
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
    /// Evaluate even when nothing changed since an answer was kept
    #[arg(long)]
    no_cache: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    root: &'a std::path::Path,
    valid: bool,
    packages: &'a [String],
    errors: &'a [Diagnostic],
}

pub fn run(args: Args, g: Global) -> anyhow::Result<()> {
    // `./...`, as with cue: every package of the module, which is what
    // opm vets anyway.
    let text = args.dir.to_string_lossy();
    let dir = match text.strip_suffix("...").map(|d| d.trim_end_matches('/')) {
        Some("") => PathBuf::from("."),
        Some(d) => PathBuf::from(d),
        None => args.dir.clone(),
    };
    let vetted = vet::vet(&g.context(None), &VetOptions { dir, concrete: args.concrete, tags: args.tags, use_results: !args.no_cache })?;
    let valid = vetted.errors.is_empty();
    let root = &vetted.root;
    if args.json {
        ui::print_json(&Report { root, valid, packages: &vetted.packages, errors: &vetted.errors })?;
    }
    if !valid {
        let message = format!("{} in {}", count(vetted.errors.len(), "error"), root.display());
        // Printed with the failure, unless the JSON said it all already.
        let diagnostics = if args.json { Vec::new() } else { vet::absolute(vetted.errors, root) };
        return Err(super::after_json(args.json, Failure { kind: Kind::Invalid, message, diagnostics }.into()));
    }
    if !args.json {
        ui::print_status(&format!("ok: {} valid in {}", count(vetted.packages.len(), "package"), root.display()));
    }
    Ok(())
}
