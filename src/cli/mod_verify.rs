//! `opm mod verify`.

use crate::error::{fail, Kind};
use crate::ops::verify::{self, Status, VerifyOptions};
use crate::ui;

const EXAMPLES: &str = "\
Examples:
  opm mod verify              The cache's copies against cue.mod/opm.sum
  opm mod verify --remote     Also what each registry serves now
  opm mod verify --json       One object per module version
  opm mod verify --signatures Every dependency against the signature policy

cue.mod/opm.sum pins the content of every dependency (its manifest and zip
digests) when get, tidy or update first fetch it; every later fetch must
bring the same. verify walks each copy in the CUE cache through its trust
chain (the manifest kept beside it, the zip and module file it names, the
extracted files) and, with --remote, compares the registries' current
manifests (and the zips they name). Exit code 7 on any mismatch.

--signatures checks every dependency in module.cue against the `verify:`
policy of ~/.opm/config.yaml instead: each cached version's chain, and its
signatures read from its registry again (with --offline, the signatures
the cache keeps, verified again). Exit code 8 when one is refused or, offline,
was never checked.";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Also compare each registry's current manifest with the sums file
    #[arg(long)]
    remote: bool,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
    /// Check the signatures of the dependencies against the verify policy
    #[arg(long, conflicts_with = "remote")]
    signatures: bool,
}

pub fn run(args: Args, g: super::Global) -> anyhow::Result<()> {
    let checked =
        if args.signatures { verify::signatures(&g.context(None))? } else { verify::verify(&g.context(None), &VerifyOptions { remote: args.remote })? };
    if args.json {
        ui::print_json(&checked)?;
    } else {
        for c in &checked {
            let what = if c.module.is_empty() { String::new() } else { format!("{} {}: ", c.module, c.version) };
            let status = c.status.as_str();
            match (c.status, &c.signer, &c.problem) {
                (Status::Ok, _, _) => ui::print_status(&format!("{what}ok")),
                (_, Some(key), _) => ui::print_status(&format!("{what}{status} by {key}")),
                (_, _, Some(p)) => ui::print_status(&format!("{what}{status}: {p}")),
                (_, None, None) => ui::print_status(&format!("{what}{status}")),
            }
        }
    }
    let refused = checked.iter().filter(|c| matches!(c.status, Status::Refused | Status::Unchecked)).count();
    if refused > 0 {
        let why = format!("{refused} of {} module versions fail the signature policy", checked.len());
        return Err(super::after_json(args.json, fail(Kind::Untrusted, why)));
    }
    let bad = checked.iter().filter(|c| c.status == Status::Mismatch).count();
    if bad > 0 {
        return Err(super::after_json(args.json, fail(Kind::Integrity, format!("{bad} of {} module versions differ from cue.mod/opm.sum", checked.len()))));
    }
    if checked.iter().any(|c| c.status == Status::Stale) {
        return Err(super::after_json(args.json, fail(Kind::Outdated, "cue.mod/opm.sum is stale: run 'opm mod tidy'")));
    }
    // Nothing was checked of a version the cache lacks: that is no success.
    let absent = checked.iter().filter(|c| c.status == Status::NotCached).count();
    if absent > 0 {
        let why = format!(
            "{} of {} not in the CUE cache, so nothing was checked of them: run 'opm mod download', then verify again",
            absent,
            crate::error::count(checked.len(), "module version")
        );
        return Err(super::after_json(args.json, fail(Kind::NotFound, why)));
    }
    Ok(())
}
