//! `opm registry check`.

use crate::ops::registry_check;
use crate::registry::Error;
use crate::ui;

pub const EXAMPLES: &str = "\
Examples:
  opm registry check                       Every prefix of the routing
  opm registry check example.com/app       The registry that module goes to
  opm registry check company.internal --push   Also check that publishing is allowed
  opm registry check --json

For each prefix of the routing: the registry and repository it goes to,
plain HTTP or TLS, which credentials apply (an auths entry, a credential
store or helper: never the secret), then a live probe with the time of
each step: reachable (GET /v2/, the authentication scheme it asks for), a
pull token where the registry uses tokens, a pull request; with --push a
push token and an upload session opened and cancelled (nothing is
written). Each problem is one line with its fix; the exit code is that of
the first problem (3 unreachable, 4 credentials, 5 not found).";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A module path or prefix: check only the registry it is routed to
    #[arg(value_name = "MODULE|PREFIX")]
    target: Option<String>,
    /// Also check that pushing is allowed
    #[arg(long)]
    push: bool,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, g: super::Global) -> anyhow::Result<()> {
    if g.offline {
        return Err(crate::error::fail(crate::error::Kind::Other, "--offline: registry check probes the registries; run it without --offline"));
    }
    let checked = registry_check::check(&g.context(None), args.target.as_deref(), args.push)?;
    if args.json {
        ui::print_json(&checked)?;
    } else {
        let mut out = String::new();
        for c in &checked {
            let prefix = if c.prefix == crate::config::CATCH_ALL { "* (every other module)".to_string() } else { c.prefix.clone() };
            out += &format!(
                "{prefix} -> {} ({})\n",
                c.registry,
                match c.transport {
                    "http" => "plain HTTP",
                    "https" => "TLS",
                    other => other,
                }
            );
            if !c.repository.is_empty() {
                out += &format!("  repository   {}\n  credentials  {}\n", c.repository, c.credentials);
            }
            for s in &c.steps {
                let detail = if s.detail.is_empty() { String::new() } else { format!("  {}", s.detail) };
                out += &format!("  {:<12} {:<6} {:>5} ms{detail}\n", s.step, if s.ok { "ok" } else { "FAILED" }, s.ms);
            }
        }
        ui::write_stdout(&out)?;
        for c in &checked {
            if let Some(p) = &c.problem {
                ui::print_error(&format!("{}: {p}", c.prefix));
            }
        }
    }
    let problems: Vec<_> = checked.iter().filter(|c| c.problem.is_some()).collect();
    if let Some(first) = problems.first() {
        let kind = first.kind.expect("a problem has a kind");
        let message = format!("{} of {} registry routes have problems", problems.len(), checked.len());
        return Err(super::after_json(true, Error::new(kind, message).into()));
    }
    Ok(())
}
