use crate::config::{Origin, CATCH_ALL, DEFAULT_REGISTRY};
use crate::ui;

const EXAMPLES: &str = "\
Examples:
  opm config show           Where modules are fetched from and published to
  opm config show --json    The same, for scripts

Routing comes from CUE_REGISTRY when it is set, else from ~/.opm/config.yaml
(OPM_CONFIG names another file), else cue's default registry:

  registries:
    opmodel.dev:
      url: registry.opm.dev
    company.internal:
      url: harbor.internal/modules
      insecure: true
    \"*\": localhost:5000            # every other module

The longest matching prefix wins. `insecure: true` (or an http:// URL)
means plain HTTP, `insecure: false` (or https://) HTTPS; unset, cue's
default applies: plain HTTP for localhost and 127.0.0.1 only. opm hands the result to CUE's own
resolver, so modules resolve exactly as they do for `cue`.";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Print the routing as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, g: super::Global) -> anyhow::Result<()> {
    // (Loading the routing refuses a CUE_REGISTRY that carries credentials.)
    let ctx = g.context(None);
    let routing = ctx.routing()?;
    // The policy's prefixes are checked too: a rule that matches nothing is an error here as anywhere.
    crate::config::verify_rules()?;
    if args.json {
        let routes: Vec<serde_json::Value> =
            routing.routes().into_iter().map(|(prefix, registry)| serde_json::json!({ "prefix": prefix, "registry": registry })).collect();
        return ui::print_json(&serde_json::json!({
            "source": routing.source,
            "cue_registry": routing.cue_registry,
            "effective": routing.effective(),
            "routes": routes,
        }));
    }
    let from = match &routing.source {
        Origin::Environment => "the CUE_REGISTRY environment variable".to_string(),
        Origin::File { path } => path.display().to_string(),
        Origin::Default => "cue's default (no CUE_REGISTRY, no config file)".to_string(),
        Origin::CommandLine => "the command line".to_string(),
    };
    let default = format!("(default) {DEFAULT_REGISTRY}");
    let value = if routing.cue_registry.is_empty() { default.as_str() } else { &routing.cue_registry };
    let mut out = format!("source:       {from}\nCUE_REGISTRY: {value}\n");
    if !routing.cue_registry.is_empty() {
        for (prefix, registry) in routing.routes() {
            let prefix = if prefix == CATCH_ALL { "(every other module)" } else { prefix.as_str() };
            out += &format!("  {prefix:<30} -> {registry}\n");
        }
    }
    ui::write_stdout(&out)
}
