use crate::config::{Routing, Source};
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

/// cue's registry when the configuration names none.
const DEFAULT_REGISTRY: &str = "registry.cue.works";

pub fn run(args: Args) -> anyhow::Result<()> {
    // (Routing::load refuses a CUE_REGISTRY that carries credentials.)
    let routing = Routing::load()?;
    // The policy's prefixes are checked too: a rule that matches nothing is an error here as anywhere.
    crate::config::verify_rules()?;
    if args.json {
        let effective = if routing.cue_registry.is_empty() { DEFAULT_REGISTRY } else { &routing.cue_registry };
        let routes: Vec<serde_json::Value> = effective
            .split(',')
            .filter(|e| !e.is_empty())
            .map(|entry| match entry.split_once('=') {
                Some((prefix, registry)) => serde_json::json!({ "prefix": prefix, "registry": registry }),
                None => serde_json::json!({ "prefix": "*", "registry": entry }),
            })
            .collect();
        return ui::print_json(&serde_json::json!({
            "source": routing.source,
            "cue_registry": routing.cue_registry,
            "effective": effective,
            "routes": routes,
        }));
    }
    let from = match &routing.source {
        Source::Environment => "the CUE_REGISTRY environment variable".to_string(),
        Source::File { path } => path.display().to_string(),
        Source::Default => "cue's default (no CUE_REGISTRY, no config file)".to_string(),
    };
    let default = format!("(default) {DEFAULT_REGISTRY}");
    let value = if routing.cue_registry.is_empty() { default.as_str() } else { &routing.cue_registry };
    let mut out = format!("source:       {from}\nCUE_REGISTRY: {value}\n");
    for entry in routing.cue_registry.split(',').filter(|e| !e.is_empty()) {
        match entry.split_once('=') {
            Some((prefix, registry)) => out += &format!("  {prefix:<30} -> {registry}\n"),
            None => out += &format!("  {:<30} -> {entry}\n", "(every other module)"),
        }
    }
    ui::write_stdout(&out)
}
