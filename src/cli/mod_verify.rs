//! `opm mod verify`.

use crate::error::{fail, Exit};
use crate::ops::verify::{self, VerifyOptions};
use crate::ui;

const EXAMPLES: &str = "\
Examples:
  opm mod verify              The cache's copies against cue.mod/opm.sum
  opm mod verify --remote     Also what each registry serves now
  opm mod verify --json       One object per module version
  opm mod verify --signatures Every dependency against the signature policy

cue.mod/opm.sum pins the content of every dependency (its manifest and zip
digests) when get, tidy or update first fetch it; every later fetch must
bring the same. verify checks the copies in the CUE cache (zip digest,
extracted files) and, with --remote, the registries' current manifests.
Exit code 7 on any mismatch.

--signatures checks every dependency in module.cue against the `verify:`
policy of ~/.opm/config.yaml instead: each cached version's signatures are
read from its registry again (with --offline, only what earlier checks
recorded). Exit code 8 when one is refused.";

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
    let checked = if args.signatures {
        verify::signatures(g.offline)?
    } else {
        verify::verify(&VerifyOptions { remote: args.remote, offline: g.offline })?
    };
    if args.json {
        ui::print_json(&checked)?;
    } else {
        for c in &checked {
            let what = if c.module.is_empty() { String::new() } else { format!("{} {}: ", c.module, c.version) };
            match (c.status, &c.problem) {
                ("ok", _) => ui::print_status(&format!("{what}ok")),
                (status, Some(p)) => ui::print_status(&format!("{what}{status}: {p}")),
                (status, None) => ui::print_status(&format!("{what}{status}")),
            }
        }
    }
    let refused = checked.iter().filter(|c| matches!(c.status, "refused" | "unchecked")).count();
    if refused > 0 {
        let why = format!("{refused} of {} module versions fail the signature policy", checked.len());
        return Err(super::after_json(args.json, fail(Exit::Untrusted, why)));
    }
    let bad = checked.iter().filter(|c| c.status == "mismatch").count();
    if bad > 0 {
        return Err(super::after_json(args.json, fail(Exit::Integrity, format!("{bad} of {} module versions differ from cue.mod/opm.sum", checked.len()))));
    }
    if checked.iter().any(|c| c.status == "stale") {
        return Err(super::after_json(args.json, fail(Exit::Outdated, "cue.mod/opm.sum is stale: run 'opm mod tidy'")));
    }
    Ok(())
}
