use crate::cue;
use crate::error::Failure;
use crate::ui;
use serde::Serialize;

const EXAMPLES: &str = "\
Examples:
  opm version
  opm version --json | jq -r .cue_version";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Print the versions as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Versions {
    opm: &'static str,
    cue_version: String,
    language_version: String,
    go_version: String,
    target: &'static str,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let shim = cue::version().map_err(Failure::from)?;
    let v = Versions {
        opm: env!("CARGO_PKG_VERSION"),
        cue_version: shim.cue_version,
        language_version: shim.language_version,
        go_version: shim.go_version,
        target: env!("OPM_TARGET"),
    };
    if args.json {
        return ui::print_json(&v);
    }
    ui::write_stdout(&format!(
        "opm {}\ncuelang.org/go {} (CUE language {})\ngo {}\ntarget {}\n",
        v.opm,
        v.cue_version,
        v.language_version,
        v.go_version.trim_start_matches("go"),
        v.target
    ))
}
