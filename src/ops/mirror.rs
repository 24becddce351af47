//! `opm mod mirror`: module versions copied from where the routing (or
//! `--from`) finds them to another registry, as `cue mod mirror` copies
//! them: manifests byte for byte, blobs only where missing, with their
//! cosign signatures, each version judged by the signature policy first.

use crate::cache::{self, Cache};
use crate::catalog;
use crate::config::{Origin, Routing};
use crate::context::{Context, Unit};
use crate::error::{fail, Kind};
use crate::module::{semver, ModuleVersion};
use serde::Serialize;
use std::collections::BTreeSet;

pub struct MirrorOptions {
    /// `MODULE@vX.Y.Z`, or `MODULE@vN` / `MODULE` for the newest release.
    pub modules: Vec<String>,
    /// The target: a CUE registry configuration (`host[/prefix][+insecure]`,
    /// or prefix=registry entries).
    pub to: String,
    /// Also every version each module's module.cue names, recursively.
    pub deps: bool,
    pub dry_run: bool,
}

/// What became of a version, as scripts read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Copied,
    /// The target had it.
    Present,
    /// `--dry-run`.
    WouldCopy,
}

#[derive(Debug, Serialize)]
pub struct Mirrored {
    pub module: String,
    pub version: String,
    pub digest: String,
    pub outcome: Outcome,
    pub blobs_copied: usize,
    pub blobs_present: usize,
    /// Whether cosign signatures came along.
    pub signed: bool,
}

/// The routing of `--from` (instead of the environment's), for the
/// command's [`Context`].
pub fn source_routing(from: &str) -> anyhow::Result<Routing> {
    crate::config::refuse_userinfo(from, "--from")?;
    Ok(Routing { source: Origin::CommandLine, cue_registry: from.to_string() })
}

pub fn mirror(ctx: &Context, opts: &MirrorOptions) -> anyhow::Result<Vec<Mirrored>> {
    if ctx.offline() {
        return Err(fail(Kind::Other, "--offline: mirroring copies between registries"));
    }
    crate::config::refuse_userinfo(&opts.to, "--to")?;
    let cache = Cache::new(ctx);
    let dst = ctx.connect(Routing { source: Origin::CommandLine, cue_registry: opts.to.clone() })?;
    let mut wanted = Vec::new();
    for m in &opts.modules {
        wanted.push(target(&cache, m)?);
    }
    if opts.deps {
        wanted = closure(&cache, wanted)?;
    }
    let bar = ctx.progress("mirroring", Unit::Items);
    bar.inc_length(wanted.len() as u64);
    let copies = cache.copy_to(&dst, &wanted, opts.dry_run, &|| bar.inc(1));
    bar.done();
    let copies = copies?;
    let mut rows: Vec<Mirrored> = copies
        .into_iter()
        .map(|c| Mirrored {
            module: c.mv.module().to_string(),
            version: c.mv.version().to_string(),
            digest: c.digest,
            outcome: match c.copy {
                cache::Copy::Copied => Outcome::Copied,
                cache::Copy::Present => Outcome::Present,
                cache::Copy::WouldCopy => Outcome::WouldCopy,
            },
            blobs_copied: c.copied.blobs_copied,
            blobs_present: c.copied.blobs_present,
            signed: c.signed,
        })
        .collect();
    rows.sort_by(|a, b| (&a.module, &a.version).cmp(&(&b.module, &b.version)));
    Ok(rows)
}

/// One version to mirror: exact, or the newest of a major (or of the
/// newest major) in the source registry. Queries such as `@latest` are
/// refused, as get refuses them.
fn target(cache: &Cache, m: &str) -> anyhow::Result<ModuleVersion> {
    let (path, version) = m.split_once('@').unwrap_or((m, ""));
    crate::cue::check_module_path(path).map_err(crate::error::Failure::from)?;
    if semver::is_canonical(version) {
        return Ok(ModuleVersion::new(path, version));
    }
    // `path@v1`, or the path alone: the newest release.
    if !version.is_empty() && (!semver::is_valid(version) || semver::major(version) != version) {
        return Err(fail(
            Kind::Other,
            format!("{m}: {version:?} is not a version opm mirrors: name an exact version (MODULE@vX.Y.Z), or a major (MODULE@v1) for its newest release"),
        ));
    }
    if catalog::is_embedded_path(m) {
        return Ok(catalog::module_version());
    }
    let query = if version.is_empty() { path.to_string() } else { format!("{path}@{version}") };
    let versions = cache.versions(&[query])?.remove(0);
    let newest = semver::latest(&versions).ok_or_else(|| fail(Kind::NotFound, format!("{m}: no versions found in the source registry")))?;
    Ok(ModuleVersion::new(path, newest))
}

/// The versions and every version their module files name, recursively
/// (as `cue mod mirror` copies them: each module complete in the target).
fn closure(cache: &Cache, start: Vec<ModuleVersion>) -> anyhow::Result<Vec<ModuleVersion>> {
    let mut seen: BTreeSet<ModuleVersion> = start.iter().cloned().collect();
    let mut frontier = start;
    while !frontier.is_empty() {
        let mut next = Vec::new();
        // The core model opm carries depends on nothing.
        frontier.retain(|mv| !catalog::is_embedded(mv));
        for mf in cache.module_files(&frontier)? {
            for d in mf.deps {
                let dep = ModuleVersion::of(d.path, d.version);
                if seen.insert(dep.clone()) {
                    next.push(dep);
                }
            }
        }
        frontier = next;
    }
    Ok(seen.into_iter().collect())
}
