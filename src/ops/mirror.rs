//! `opm mod mirror`: module versions copied from where the routing (or
//! `--from`) finds them to another registry, as `cue mod mirror` copies
//! them: manifests byte for byte, blobs only where missing, with their
//! cosign signatures. Registry to registry; the cache is not involved.

use crate::catalog;
use crate::config::{Routing, Source};
use crate::cue;
use crate::error::{fail, Exit};
use crate::module::{semver, ModuleVersion};
use crate::registry::{Client, PARALLEL};
use crate::trust::Policy;
use crate::ui;
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use std::collections::BTreeSet;

pub struct MirrorOptions {
    /// `MODULE@vX.Y.Z`, or `MODULE@vN` / `MODULE` for the newest release.
    pub modules: Vec<String>,
    /// The target: a CUE registry configuration (`host[/prefix][+insecure]`,
    /// or prefix=registry entries).
    pub to: String,
    /// The source, instead of the routing.
    pub from: Option<String>,
    /// Also every version each module's module.cue names, recursively.
    pub deps: bool,
    pub dry_run: bool,
    pub offline: bool,
}

#[derive(Debug, Serialize)]
pub struct Mirrored {
    pub module: String,
    pub version: String,
    pub digest: String,
    /// copied, present (the target had it), or would-copy (--dry-run)
    pub outcome: &'static str,
    pub blobs_copied: usize,
    pub blobs_present: usize,
    /// Whether cosign signatures came along.
    pub signed: bool,
}

pub fn mirror(opts: &MirrorOptions) -> anyhow::Result<Vec<Mirrored>> {
    if opts.offline {
        return Err(fail(Exit::General, "--offline: mirroring copies between registries"));
    }
    crate::config::refuse_userinfo(&opts.to, "--to")?;
    if let Some(from) = &opts.from {
        crate::config::refuse_userinfo(from, "--from")?;
    }
    let routing = match &opts.from {
        Some(from) => Routing { source: Source::Environment, cue_registry: from.clone() },
        None => Routing::load()?,
    };
    let src = Client::new(routing)?;
    let dst = Client::new(Routing { source: Source::Environment, cue_registry: opts.to.clone() })?;
    // The signature policy applies to what is copied, as to what is
    // downloaded: refused before anything is written.
    let policy = Policy::load()?;
    let mut wanted = Vec::new();
    for m in &opts.modules {
        wanted.push(target(&src, m)?);
    }
    if opts.deps {
        wanted = closure(&src, wanted)?;
    }
    let bar = ui::progress_count(wanted.len() as u64, "mirroring");
    let rows: Vec<Mirrored> = src.block_on(
        futures_util::stream::iter(&wanted)
            .map(|mv| {
                let (src, dst, policy, bar) = (&src, &dst, &policy, &bar);
                async move {
                    if catalog::is_embedded(mv) {
                        let out = copy_embedded(dst, mv, opts.dry_run).await?;
                        bar.inc(1);
                        return Ok(out);
                    }
                    let covered = policy.keys_for(&mv.module).is_some();
                    let (manifest, signatures) = src.manifest(mv, covered).await?;
                    let digest = manifest.digest;
                    if let Some(signatures) = signatures {
                        policy.check(mv, &digest, &signatures)?;
                    }
                    let row = |outcome, copied: crate::registry::Copied, signed| Mirrored {
                        module: mv.module.clone(),
                        version: mv.version.clone(),
                        digest: digest.clone(),
                        outcome,
                        blobs_copied: copied.blobs_copied,
                        blobs_present: copied.blobs_present,
                        signed,
                    };
                    let out = if opts.dry_run {
                        row("would-copy", Default::default(), false)
                    } else {
                        let (_, copied, signed) = src.mirror(dst, mv).await?;
                        row(if copied.already { "present" } else { "copied" }, copied, signed)
                    };
                    bar.inc(1);
                    anyhow::Ok(out)
                }
            })
            .buffer_unordered(PARALLEL)
            .try_collect(),
    )?;
    bar.finish_and_clear();
    let mut rows = rows;
    rows.sort_by(|a, b| (&a.module, &a.version).cmp(&(&b.module, &b.version)));
    Ok(rows)
}

/// The core model opm carries, pushed from the binary itself: the target
/// then serves it to cue as a download of the published catalog would.
async fn copy_embedded(dst: &Client, mv: &ModuleVersion, dry_run: bool) -> anyhow::Result<Mirrored> {
    let (packed, zip) = catalog::pack()?;
    let outcome = if dry_run {
        "would-copy"
    } else {
        match dst.publish(&dst.locate(mv)?, &packed, &zip, &indicatif::ProgressBar::hidden()).await? {
            crate::registry::Pushed::Published => "copied",
            crate::registry::Pushed::Unchanged => "present",
        }
    };
    Ok(Mirrored {
        module: mv.module.clone(),
        version: mv.version.clone(),
        digest: packed.manifest_digest,
        outcome,
        blobs_copied: 0,
        blobs_present: 0,
        signed: false,
    })
}

/// One version to mirror: exact, or the newest of a major (or of the
/// newest major) in the source registry. Queries such as `@latest` are
/// refused, as get refuses them.
fn target(src: &Client, m: &str) -> anyhow::Result<ModuleVersion> {
    let (path, version) = m.split_once('@').unwrap_or((m, ""));
    crate::cue::check_module_path(path).map_err(crate::error::Failure::from)?;
    if semver::is_canonical(version) {
        return Ok(ModuleVersion::new(path, version));
    }
    // `path@v1`, or the path alone: the newest release.
    if !version.is_empty() && (!semver::is_valid(version) || semver::major(version) != version) {
        return Err(fail(
            Exit::General,
            format!("{m}: {version:?} is not a version opm mirrors: name an exact version (MODULE@vX.Y.Z), or a major (MODULE@v1) for its newest release"),
        ));
    }
    if catalog::is_embedded_path(m) {
        return Ok(catalog::module_version());
    }
    let query = if version.is_empty() { path.to_string() } else { format!("{path}@{version}") };
    let versions = src.block_on(src.versions(&query))?;
    let newest = semver::latest(&versions).ok_or_else(|| fail(Exit::NotFound, format!("{m}: no versions found in the source registry")))?;
    Ok(ModuleVersion::new(path, newest))
}

/// The versions and every version their module files name, recursively
/// (as `cue mod mirror` copies them: each module complete in the target).
fn closure(src: &Client, start: Vec<ModuleVersion>) -> anyhow::Result<Vec<ModuleVersion>> {
    let mut seen: BTreeSet<ModuleVersion> = start.iter().cloned().collect();
    let mut frontier = start;
    while !frontier.is_empty() {
        let files: Vec<(ModuleVersion, Vec<u8>)> = src.block_on(
            futures_util::stream::iter(&frontier)
                // The core model opm carries depends on nothing.
                .filter(|mv| std::future::ready(!catalog::is_embedded(mv)))
                .map(|mv| async move { anyhow::Ok((mv.clone(), src.module_file(mv, false).await?.1)) })
                .buffer_unordered(PARALLEL)
                .try_collect(),
        )?;
        let mut next = Vec::new();
        for (mv, data) in files {
            let text = String::from_utf8(data).map_err(|_| fail(Exit::General, format!("{mv}: module.cue is not UTF-8")))?;
            let mf = cue::parse_module_file(&text, &mv.to_string(), true)
                .map_err(|e| fail(Exit::General, format!("cannot parse module file from {mv}: {}", e.message)))?;
            for d in mf.deps {
                let dep = ModuleVersion { module: d.path, version: d.version };
                if seen.insert(dep.clone()) {
                    next.push(dep);
                }
            }
        }
        frontier = next;
    }
    Ok(seen.into_iter().collect())
}
