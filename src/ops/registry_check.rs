//! `opm registry check`: for each prefix of the routing (or the one a
//! module or prefix falls under), where it goes, which credentials apply
//! and a live probe of each step a pull (and with `push` a publish) takes.

use crate::config::CATCH_ALL;
use crate::context::Context;
use crate::registry::{auth, ErrorKind};
use serde::Serialize;

/// The module path probed for the catch-all entry.
const PROBE: &str = "opm.check/probe";

#[derive(Debug, Serialize)]
pub struct Checked {
    /// The module prefix ("*": every other module).
    pub prefix: String,
    /// host[/repository prefix] as the routing says.
    pub registry: String,
    /// The repository probed.
    pub repository: String,
    /// "http" or "https".
    pub transport: &'static str,
    /// Which credentials apply, never the secret.
    pub credentials: String,
    pub steps: Vec<StepRow>,
    /// The first problem and its fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    #[serde(skip)]
    pub kind: Option<ErrorKind>,
}

#[derive(Debug, Serialize)]
pub struct StepRow {
    pub step: &'static str,
    pub ms: u128,
    pub ok: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

pub fn check(ctx: &Context, target: Option<&str>, push: bool) -> anyhow::Result<Vec<Checked>> {
    let routing = ctx.routing()?;
    let entries = routing.routes();
    // One module path per entry to probe; a named module or prefix picks
    // the entry that routes it.
    let probes: Vec<(String, String, String)> = match target {
        Some(t) => {
            let t = crate::module::base_path(t);
            crate::cue::check_module_path(t).map_err(crate::error::Failure::from)?;
            let covering = entries
                .iter()
                .filter(|(p, _)| p != CATCH_ALL && (t == p || t.starts_with(&format!("{p}/"))))
                .max_by_key(|(p, _)| p.len())
                .or_else(|| entries.iter().find(|(p, _)| p == CATCH_ALL));
            match covering {
                Some((p, r)) => vec![(p.clone(), r.clone(), t.to_string())],
                None => vec![(t.to_string(), "none".to_string(), t.to_string())],
            }
        }
        None => entries.iter().map(|(p, r)| (p.clone(), r.clone(), if p == CATCH_ALL { PROBE.to_string() } else { p.clone() })).collect(),
    };
    let client = ctx.client()?;
    let mut out = Vec::new();
    for (prefix, registry, module) in probes {
        let shown = registry.clone();
        let Some(loc) = routing.resolve(&module, "")? else {
            out.push(Checked {
                prefix,
                registry: shown,
                repository: String::new(),
                transport: "none",
                credentials: String::new(),
                steps: vec![],
                problem: Some(format!("{module} is routed to no registry (none): add a registries entry for it in the config file")),
                kind: Some(ErrorKind::NotFound),
            });
            continue;
        };
        let steps = client.check(&loc, push);
        let failure = steps.iter().find_map(|s| s.error.as_ref()).map(|e| (e.message.clone(), e.kind));
        out.push(Checked {
            prefix,
            registry: shown,
            repository: format!("{}/{}", loc.host, loc.repository),
            transport: if loc.insecure { "http" } else { "https" },
            credentials: auth::source(&loc.host),
            steps: steps.into_iter().map(|s| StepRow { step: s.name, ms: s.millis, ok: s.error.is_none(), detail: s.detail }).collect(),
            problem: failure.as_ref().map(|(m, _)| m.clone()),
            kind: failure.map(|(_, k)| k),
        });
    }
    Ok(out)
}
