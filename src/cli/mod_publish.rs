//! `opm mod publish`.

use super::Global;
use crate::ops::publish::{self, Outcome, PublishOptions};
use crate::ui;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  opm mod publish v0.1.0                     Publish where the routing sends the module
  opm mod publish example.com/app@v0 v0.1.0  The same, naming the module
  opm mod publish localhost:5000 v0.1.0      Push to an explicit registry this once
  opm mod publish v1.2.0 --dry-run           Check and pack, push nothing
  opm mod publish v1.2.0 --json              Report ref and digest as JSON
  opm mod publish v1.2.0 --out ./image       Write an OCI image layout instead
  opm mod publish v1.2.0 --sign cosign.key   Also sign it, as cosign does

The module is vetted first and must be tidy (as `opm mod tidy` leaves it):
otherwise nothing is pushed. The
artifact is CUE's module format, byte for byte what `cue mod publish`
pushes. An existing version is never overwritten: publishing identical
content again does nothing, different content is refused. Blobs go first
and the tag last, so a failed publish leaves no tag behind.";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES, override_usage = "opm mod publish [OPTIONS] [REF] <VERSION>")]
pub struct Args {
    /// [REF] VERSION: the module path or an OCI location host[:port][/prefix], then a canonical SemVer version
    #[arg(required = true, num_args = 1..=2, value_names = ["REF", "VERSION"])]
    args: Vec<String>,
    /// Check and pack, but push nothing
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON (module, version, ref, digest, files, outcome)
    #[arg(long)]
    json: bool,
    /// Write the artifact as an OCI image layout into DIR instead of pushing
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Sign the pushed version with this cosign private key (password from COSIGN_PASSWORD or asked)
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
}

pub fn run(args: Args, g: Global) -> anyhow::Result<()> {
    let (reference, version) = match args.args.as_slice() {
        [version] => (None, version.clone()),
        [reference, version] if crate::module::semver::is_valid(reference) => {
            return Err(crate::error::fail(
                crate::error::Kind::Other,
                format!(
                    "{reference} is a version, not a REF: publish one version at a time (opm mod publish {version}), or give the module path or registry first"
                ),
            ))
        }
        [reference, version] => (Some(reference.clone()), version.clone()),
        _ => unreachable!("clap takes one or two values"),
    };
    let opts = PublishOptions { reference, version, dry_run: args.dry_run, out: args.out.clone(), sign: args.sign.clone() };
    let p = publish::publish(&g.context(None), &opts)?;
    if args.json {
        return ui::print_json(&p);
    }
    let what = format!("{}@{}", crate::module::base_path(&p.module), p.version);
    let reference = &p.reference;
    match p.outcome {
        Outcome::Published => ui::print_status(&format!("published {what} to {reference}")),
        Outcome::Unchanged => ui::print_status(&format!("{what} is already at {reference} with identical content: nothing to do")),
        Outcome::Written => ui::print_status(&format!("wrote {what} as an OCI image layout to {}", args.out.as_ref().expect("written to --out").display())),
        Outcome::DryRun => {
            ui::print_status(&format!("dry run: {what} ({} files) would be published to {reference}:", p.files));
            // The list itself is the result (as cargo package --list): stdout.
            ui::write_stdout(&p.paths.iter().map(|f| format!("{f}\n")).collect::<String>())?;
        }
    }
    if let Some(signature) = &p.signature {
        ui::print_status(&format!("signed {what}: {signature}"));
    }
    Ok(())
}
