//! `opm mod download`, `opm mod graph`, `opm mod why`.

use super::Global;
use crate::error::count;
use crate::module::{base_path, ModuleVersion};
use crate::ops::graph;
use crate::ui;

const DOWNLOAD_EXAMPLES: &str = "\
Examples:
  opm mod download                          The whole graph of the module here
  opm mod download example.com/lib@v1.2.0   A version and its graph (no module needed)
  opm mod download --json                   What was downloaded, for scripts

For CI warm-up and for preparing air-gapped machines: afterwards `opm mod
vet --offline` and `opm mod build --offline` need no registry. module.cue is
never changed.";

const GRAPH_EXAMPLES: &str = "\
Examples:
  opm mod graph                  Every module, its selected version, each requirement
  opm mod graph --json           The same, for scripts
  opm mod graph --dot | dot -Tsvg > graph.svg

The graph is cue's: the main module's requirements and, one level down,
those of each dependency. A module's selected version is the highest any
requirement asks for (minimal version selection); after `opm mod tidy`
these are exactly the versions module.cue lists.";

const WHY_EXAMPLES: &str = "\
Examples:
  opm mod why example.com/base           Every path to it, and what sets its version
  opm mod why example.com/base@v1.2.0    Only the requirements of that version
  opm mod why example.com/base --json";

#[derive(Debug, clap::Args)]
#[command(after_help = DOWNLOAD_EXAMPLES)]
pub struct DownloadArgs {
    /// MODULE@VERSION to download with its graph (default: the module here)
    #[arg(value_name = "MODULE@VERSION")]
    modules: Vec<String>,
    /// Print what was downloaded as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = GRAPH_EXAMPLES)]
pub struct GraphArgs {
    /// Print the graph as JSON
    #[arg(long, conflicts_with = "dot")]
    json: bool,
    /// Print the graph in Graphviz's dot language
    #[arg(long)]
    dot: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = WHY_EXAMPLES)]
pub struct WhyArgs {
    /// The module: a path with or without @vN, or @vX.Y.Z for one version
    #[arg(value_name = "MODULE[@VERSION]")]
    module: String,
    /// Print the paths as JSON
    #[arg(long)]
    json: bool,
}

pub fn download(args: DownloadArgs, g: Global) -> anyhow::Result<()> {
    let fetched = graph::download(&g.context(None), &args.modules)?;
    if args.json {
        return ui::print_json(&fetched);
    }
    let downloaded = fetched.iter().filter(|f| f.outcome == graph::Preparation::Downloaded).count();
    ui::print_status(&format!("{} in the cache ({downloaded} downloaded)", count(fetched.len(), "module version")));
    Ok(())
}

fn shown(module: &str, version: &str) -> String {
    ModuleVersion::of(module.to_string(), version.to_string()).to_string()
}

pub fn graph(args: GraphArgs, g: Global) -> anyhow::Result<()> {
    let graph = graph::graph(&g.context(None))?;
    if args.json {
        return ui::print_json(&graph);
    }
    let main = base_path(&graph.main).to_string();
    if args.dot {
        let mut out = String::from("digraph modules {\n");
        for e in &graph.requirements {
            let from = if e.from == graph.main { main.clone() } else { e.from.clone() };
            let selected = graph.modules.iter().find(|n| n.module == e.to).map_or(e.required.as_str(), |n| n.version.as_str());
            out += &format!("  {:?} -> {:?} [label={:?}];\n", from, shown(&e.to, selected), e.required);
        }
        out += "}\n";
        return ui::write_stdout(&out);
    }
    let w = graph.modules.iter().map(|n| n.module.len()).max().unwrap_or(0).max("MODULE".len());
    let mut out = format!("{:<w$}  {:<12}  {}\n", "MODULE", "SELECTED", "");
    for n in &graph.modules {
        out += &format!("{:<w$}  {:<12}  {}\n", n.module, n.version, if n.direct { "direct" } else { "indirect" });
    }
    out += "\n";
    for e in &graph.requirements {
        let from = if e.from == graph.main { main.clone() } else { e.from.clone() };
        out += &format!("{from} requires {}\n", shown(&e.to, &e.required));
    }
    ui::write_stdout(&out)
}

pub fn why(args: WhyArgs, g: Global) -> anyhow::Result<()> {
    let answers = graph::why(&g.context(None), &args.module)?;
    if args.json {
        return ui::print_json(&answers);
    }
    let mut out = String::new();
    for a in &answers {
        out += &format!("{} is selected at {}:\n", a.module, a.selected.as_deref().unwrap_or("none"));
        for p in &a.paths {
            // The main module by its path, the others as module@version.
            let chain: Vec<String> = p.via.iter().enumerate().map(|(i, v)| if i == 0 { base_path(v).to_string() } else { v.clone() }).collect();
            let mark = if p.selects { " (selected)" } else { "" };
            let chain = match chain.as_slice() {
                [main] => main.clone(),
                [main, rest @ ..] => format!("{main} -> {}", rest.join(" -> ")),
                [] => String::new(),
            };
            out += &format!("  {chain} requires {}{mark}\n", shown(&a.module, &p.required));
        }
    }
    ui::write_stdout(&out)
}
