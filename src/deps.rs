//! Making a module's dependencies loadable. CUE inside opm never downloads:
//! before it loads a module, every module the module file names must be in
//! the CUE cache, and this is where opm puts them there.

use crate::cache::Entry;
use crate::catalog;
use crate::config::Routing;
use crate::cue::{self, Location};
use crate::error::{fail, Exit, Failure};
use crate::registry::{self, Registry};
use crate::ui;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Deserialize;
use std::path::Path;

/// Registry requests in flight at once.
pub const PARALLEL: usize = 32;

/// How dependencies may be fetched.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct FetchArgs {
    /// Never use the network: fail, naming what is missing from the cache
    #[arg(long)]
    pub offline: bool,
}

/// A module version, with its major in the path: (`example.com/x@v1`, `v1.2.3`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModuleVersion {
    pub module: String,
    pub version: String,
}

impl std::fmt::Display for ModuleVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (base, _) = crate::resolve::split_major(&self.module);
        write!(f, "{base}@{}", self.version)
    }
}

/// Checks that every dependency of the module at `root` is in the cache,
/// installing the embedded core model and downloading the others when
/// they are missing. Returns the parsed module file.
pub fn ensure_available(root: &Path, cache_dir: &Path, fetch: FetchArgs) -> anyhow::Result<cue::ModuleFile> {
    let mf = cue::load_module_file(root).map_err(Failure::from)?;
    let wanted: Vec<ModuleVersion> = mf
        .deps
        .iter()
        // A local replacement is loaded from its directory; a dependency
        // without a version is a replace-only placeholder.
        .filter(|(_, dep)| dep.replace_with.is_empty() && !dep.version.is_empty())
        .map(|(module, dep)| ModuleVersion { module: module.clone(), version: dep.version.clone() })
        .collect();
    ensure_cached(&wanted, cache_dir, fetch)?;
    Ok(mf)
}

/// Makes sure each module version is complete in the cache.
pub fn ensure_cached(wanted: &[ModuleVersion], cache_dir: &Path, fetch: FetchArgs) -> anyhow::Result<()> {
    let missing = missing_from_cache(wanted, cache_dir)?;
    if missing.is_empty() {
        return Ok(());
    }
    if fetch.offline {
        let names = missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        return Err(fail(
            Exit::NotFound,
            format!("--offline, and the CUE cache ({}) lacks {names}: run once without --offline", cache_dir.display()),
        ));
    }
    let routing = Routing::load()?;
    let registry = Registry::new();
    registry::runtime().block_on(download_all(&registry, &routing, &missing, cache_dir, false))
}

/// The module versions that must be downloaded: every one not complete in
/// the cache. Complete entries are checked against their recorded digest;
/// the core model opm carries is installed rather than downloaded.
pub fn missing_from_cache(wanted: &[ModuleVersion], cache_dir: &Path) -> anyhow::Result<Vec<ModuleVersion>> {
    let mut missing = Vec::new();
    for mv in wanted {
        let entry = Entry::new(cache_dir, &mv.module, &mv.version);
        if entry.is_complete() {
            entry.verify()?;
        } else if catalog::is_embedded(&mv.module, &mv.version) {
            catalog::ensure_in_cache(cache_dir)?;
        } else if !missing.contains(mv) {
            missing.push(mv.clone());
        }
    }
    Ok(missing)
}

/// Downloads module versions into the cache, at most PARALLEL at once,
/// with progress. With `replace`, a version already in the cache is
/// replaced, but only once its new copy has arrived.
pub async fn download_all(
    registry: &Registry,
    routing: &Routing,
    modules: &[ModuleVersion],
    cache_dir: &Path,
    replace: bool,
) -> anyhow::Result<()> {
    let bar = ui::progress_count(modules.len() as u64, "downloading");
    stream::iter(modules)
        .map(|mv| {
            let bar = &bar;
            async move {
                let loc = routing.resolve(&mv.module, &mv.version)?;
                let (zip, module_file) = fetch_module(registry, &loc, mv).await?;
                let entry = Entry::new(cache_dir, &mv.module, &mv.version);
                // Unzipping and writing block: off the thread that drives
                // the other downloads.
                tokio::task::spawn_blocking(move || {
                    if replace {
                        entry.remove()?;
                    }
                    entry.install(&zip, &module_file)
                })
                .await??;
                bar.inc(1);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(PARALLEL)
        .try_collect::<()>()
        .await?;
    bar.finish_and_clear();
    Ok(())
}

/// The layers of a CUE module manifest.
#[derive(Deserialize)]
struct ModuleManifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
}

const MODULE_ARTIFACT_TYPE: &str = "application/vnd.cue.module.v1+json";
const MODULE_FILE_MEDIA_TYPE: &str = "application/vnd.cue.modulefile.v1";

/// The digests of a module version's zip and module file, from its manifest.
async fn layers(registry: &Registry, loc: &Location, mv: &ModuleVersion) -> anyhow::Result<(String, String)> {
    let manifest = registry.manifest(loc).await?.ok_or_else(|| {
        fail(Exit::NotFound, format!("{mv} not found: no tag {} in {}/{}", loc.tag, loc.host, loc.repository))
    })?;
    let parsed: ModuleManifest = serde_json::from_slice(&manifest.data)
        .map_err(|e| fail(Exit::General, format!("{mv}: the registry's manifest is not a CUE module ({e})")))?;
    let [zip, module_file] = parsed.layers.as_slice() else {
        return Err(fail(Exit::General, format!("{mv}: the manifest does not have the two layers of a CUE module")));
    };
    if parsed.config.media_type != MODULE_ARTIFACT_TYPE || module_file.media_type != MODULE_FILE_MEDIA_TYPE {
        return Err(fail(Exit::General, format!("{mv}: {}/{} holds an artifact that is not a CUE module", loc.host, loc.repository)));
    }
    Ok((zip.digest.clone(), module_file.digest.clone()))
}

/// Fetches a module version's zip and module file, checked against the
/// manifest's digests.
pub async fn fetch_module(registry: &Registry, loc: &Location, mv: &ModuleVersion) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let (zip, module_file) = layers(registry, loc, mv).await?;
    let (zip, module_file) = futures_util::try_join!(registry.blob(loc, &zip), registry.blob(loc, &module_file))?;
    Ok((zip, module_file))
}

/// Fetches only a module version's module file (what dependency
/// resolution reads of a module).
pub async fn fetch_module_file(registry: &Registry, loc: &Location, mv: &ModuleVersion) -> anyhow::Result<Vec<u8>> {
    let (_, module_file) = layers(registry, loc, mv).await?;
    registry.blob(loc, &module_file).await
}
