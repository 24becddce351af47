//! `opm mod sign`.

use crate::ops::sign::{self, SignOptions};
use crate::ui;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  opm mod sign example.com/app@v1.2.0 --key cosign.key
  COSIGN_PASSWORD=... opm mod sign example.com/app@v1.2.0 --key cosign.key --json

Signs a version that is already published (by opm or by cue) in cosign's
key-based format: the signature of the version's manifest digest is stored
beside it under the tag sha256-<hex>.sig, where `cosign verify --key` finds
it. Keys are those `cosign generate-key-pair` writes (ECDSA P-256); the
password comes from COSIGN_PASSWORD, or is asked on a terminal. Nothing is
sent to a transparency log. Consumers require signatures with a `verify:`
policy in ~/.opm/config.yaml (see README, \"Signatures\").";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The published version to sign: MODULE@vX.Y.Z
    #[arg(value_name = "MODULE@VERSION")]
    target: String,
    /// The cosign private key file
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// Print the result as JSON (module, version, digest, signature, key, added)
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, g: super::Global) -> anyhow::Result<()> {
    let signed = sign::sign(&g.context(None), &SignOptions { target: args.target, key: args.key })?;
    if args.json {
        return ui::print_json(&signed);
    }
    let what = format!("{}@{}", signed.module, signed.version);
    if signed.added {
        ui::print_status(&format!("signed {what} ({}): {}", signed.digest, signed.signature));
    } else {
        ui::print_status(&format!("{what} already carries this signature: {}", signed.signature));
    }
    Ok(())
}
