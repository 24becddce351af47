//! `opm mod mirror`.

use crate::ops::mirror::{self, MirrorOptions, Outcome};
use crate::ui;

const EXAMPLES: &str = "\
Examples:
  opm mod mirror example.com/app@v1.2.0 --to harbor.internal/cue
  opm mod mirror example.com/app@v1.2.0 --deps --to harbor.internal/cue
  opm mod mirror example.com/app@v1 --to 127.0.0.1:5000+insecure --json
  opm mod mirror opmodel.dev/core@v0.3.0 --from registry.opm.dev --to zot.local:5000

Copies module versions from where the routing (or --from) finds them to
another registry, for air-gapped platforms: the manifests byte for byte
(the same digests), only the blobs the target lacks, the cosign signatures
along with them. With --deps, every version each module's module.cue
names, recursively (as `cue mod mirror` does by default), so that every
mirrored module is complete in the target. Running it again copies
nothing; a target that holds a version with other content is refused.
MODULE@v1 or MODULE alone mirrors the newest release. --to and --from
take what CUE_REGISTRY takes (host[/prefix], +insecure for plain HTTP,
or prefix=registry entries). A verify: policy applies to what is copied.";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// MODULE@vX.Y.Z (or MODULE@vN, MODULE: the newest release)
    #[arg(value_name = "MODULE@VERSION", required = true)]
    modules: Vec<String>,
    /// The registry to copy to (CUE_REGISTRY syntax)
    #[arg(long, value_name = "REGISTRY")]
    to: String,
    /// The registry to copy from, instead of the routing
    #[arg(long, value_name = "REGISTRY")]
    from: Option<String>,
    /// Also mirror every version the modules' module.cue files name, recursively
    #[arg(long)]
    deps: bool,
    /// Say what would be copied, copy nothing
    #[arg(long)]
    dry_run: bool,
    /// Print one object per module version (module, version, digest, outcome, blobs_copied, blobs_present, signed)
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, g: super::Global) -> anyhow::Result<()> {
    let from = args.from.as_deref().map(mirror::source_routing).transpose()?;
    let ctx = g.context(from);
    let rows = mirror::mirror(&ctx, &MirrorOptions { modules: args.modules, to: args.to.clone(), deps: args.deps, dry_run: args.dry_run })?;
    if args.json {
        return ui::print_json(&rows);
    }
    for r in &rows {
        let what = format!("{}@{}", crate::module::base_path(&r.module), r.version);
        let signed = if r.signed { ", with its signatures" } else { "" };
        ui::print_status(&match r.outcome {
            Outcome::Present => format!("{what}: already in {}", args.to),
            Outcome::WouldCopy => format!("{what}: would be copied ({})", r.digest),
            Outcome::Copied => format!("{what}: copied ({} blobs copied, {} present{signed})", r.blobs_copied, r.blobs_present),
        });
    }
    Ok(())
}
