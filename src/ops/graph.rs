//! `opm mod download`, `opm mod graph`, `opm mod why`: the module graph as
//! cue resolves it (the main module's requirements and, one level down,
//! those of each dependency), prepared in the cache or shown.

use super::Workspace;
use crate::cache::Cache;
use crate::context::Context;
use crate::error::{fail, Kind};
use crate::files;
use crate::module::{base_path, semver, ModuleVersion};
use crate::resolve::{get, Requirements, Source};
use serde::Serialize;

/// What `download` did for a version, as scripts read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preparation {
    Downloaded,
    /// It was there already.
    Cached,
}

#[derive(Debug, Serialize)]
pub struct Prepared {
    pub module: String,
    pub version: String,
    pub outcome: Preparation,
}

/// Fills the cache with the whole graph of the module here, or of the
/// named versions (`MODULE@vX.Y.Z`, a module not needed). module.cue is
/// never changed.
pub fn download(ctx: &Context, modules: &[String]) -> anyhow::Result<Vec<Prepared>> {
    let ws = Workspace::open(ctx, &files::current_dir()?);
    // Named versions need no module: then the cache stands alone.
    let standalone;
    let cache: &Cache = match &ws {
        Ok(ws) => &ws.cache,
        Err(_) => {
            standalone = Cache::new(ctx);
            &standalone
        }
    };
    let wanted: Vec<ModuleVersion> = if modules.is_empty() {
        let ws = ws.as_ref().map_err(|e| fail(Kind::Other, format!("{e:#}; or name the versions to download: opm mod download MODULE@VERSION")))?;
        let wanted = ws.loadable_deps()?;
        // The module's own graph is what it uses; named versions are not.
        cache.record_use(&ws.root, &wanted)?;
        wanted
    } else {
        let src = super::CacheSource::new(cache);
        let named = modules.iter().map(|m| get::parse_request(&src, m)).collect::<anyhow::Result<Vec<_>>>()?;
        let mut all = named.clone();
        for mf in src.module_files(&named)? {
            all.extend(mf.deps.iter().map(|d| ModuleVersion::of(d.path.clone(), d.version.clone())));
        }
        all.sort();
        all.dedup();
        all
    };
    let before: Vec<bool> = wanted.iter().map(|mv| cache.entry(mv).map(|e| e.is_complete())).collect::<anyhow::Result<_>>()?;
    cache.ensure(&wanted, false)?;
    Ok(wanted
        .into_iter()
        .zip(before)
        .map(|(mv, had)| Prepared {
            module: mv.module().to_string(),
            version: mv.version().to_string(),
            outcome: if had { Preparation::Cached } else { Preparation::Downloaded },
        })
        .collect())
}

#[derive(Debug, Serialize)]
pub struct Node {
    pub module: String,
    /// The version selected: the highest any requirement asks for.
    pub version: String,
    /// Listed in the main module's module.cue.
    pub direct: bool,
}

#[derive(Debug, Serialize)]
pub struct Edge {
    /// `module@version` of the requiring module (the main module: its path).
    pub from: String,
    pub to: String,
    pub required: String,
}

#[derive(Debug, Serialize)]
pub struct Graph {
    pub main: String,
    pub modules: Vec<Node>,
    pub requirements: Vec<Edge>,
}

pub fn graph(ctx: &Context) -> anyhow::Result<Graph> {
    let ws = Workspace::open(ctx, &files::current_dir()?)?;
    let main = ws.main_file()?;
    let src = ws.source();
    let rs = Requirements::of(&main.module);
    let g = rs.graph(&src)?;
    let roots = rs.roots().to_vec();
    let modules = g
        .build_list()
        .into_iter()
        .map(|mv| Node { direct: roots.iter().any(|r| r.module() == mv.module()), module: mv.module().to_string(), version: mv.version().to_string() })
        .collect();
    let mut requirements: Vec<Edge> =
        roots.iter().map(|r| Edge { from: main.module.module.clone(), to: r.module().to_string(), required: r.version().to_string() }).collect();
    for (r, mf) in roots.iter().zip(src.module_files(&roots)?) {
        for d in &mf.deps {
            requirements.push(Edge { from: r.to_string(), to: d.path.clone(), required: d.version.clone() });
        }
    }
    Ok(Graph { main: main.module.module.clone(), modules, requirements })
}

#[derive(Debug, Serialize)]
pub struct RequirementPath {
    /// The main module, then each module version on the way.
    pub via: Vec<String>,
    pub required: String,
    /// This requirement sets the selected version (the highest).
    pub selects: bool,
}

#[derive(Debug, Serialize)]
pub struct Why {
    pub module: String,
    pub selected: Option<String>,
    pub paths: Vec<RequirementPath>,
}

/// Every requirement path from the main module to `target` (a module path
/// with or without major, optionally `@vX.Y.Z` to ask about one version).
pub fn why(ctx: &Context, target: &str) -> anyhow::Result<Vec<Why>> {
    let (path, version) = match target.rsplit_once('@') {
        Some((p, v)) if semver::is_canonical(v) => (p.to_string(), Some(v.to_string())),
        Some((_, v)) if !(semver::is_valid(v) && semver::major(v) == v) => {
            return Err(fail(Kind::Other, format!("{target}: {v:?} is not a version: name the module (MODULE or MODULE@vN) or one version (MODULE@vX.Y.Z)")));
        }
        _ => (target.to_string(), None),
    };
    crate::cue::check_module_path(&path).map_err(crate::error::Failure::from)?;
    let g = graph(ctx)?;
    let matches = |m: &str| m == path || base_path(m) == path;
    let mut out = Vec::new();
    let mut wanted: Vec<&Node> = g.modules.iter().filter(|n| matches(&n.module)).collect();
    wanted.sort_by(|a, b| a.module.cmp(&b.module));
    if wanted.is_empty() {
        return Err(fail(Kind::NotFound, format!("{target} is not in the module graph of {}: nothing requires it", g.main)));
    }
    for node in wanted {
        let selected = Some(node.version.clone());
        let mut paths: Vec<RequirementPath> = g
            .requirements
            .iter()
            .filter(|e| e.to == node.module && version.as_ref().is_none_or(|v| *v == e.required))
            .map(|e| {
                let mut via = vec![g.main.clone()];
                if e.from != g.main {
                    via.push(e.from.clone());
                }
                RequirementPath { via, required: e.required.clone(), selects: e.required == node.version }
            })
            .collect();
        paths.sort_by(|a, b| b.selects.cmp(&a.selects).then_with(|| a.via.cmp(&b.via)));
        out.push(Why { module: node.module.clone(), selected, paths });
    }
    Ok(out)
}
