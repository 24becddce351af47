//! The registry client for CUE's module format, the only code that knows
//! it: a module version is an OCI manifest (artifact type
//! `application/vnd.cue.module.v1+json`) with two layers, the zip and the
//! module file, tagged with the version under the routing's tag prefix.
//! A push sends the blobs first and the tag last. (The shim builds the
//! manifest bytes, so that they are exactly cue's.)
//!
//! Routing picks the registry of each module version; `transport` moves
//! the bytes; every failure is an [`Error`] of a kind.

pub mod auth;
mod error;
pub mod progress;
mod signatures;
mod transport;

pub use error::{kind_of, Error, ErrorKind};
pub use progress::{Event, Progress, Watch};
pub use signatures::{signature_location, signed_reference};
pub use transport::{redact_url, sha256, Challenge, Limits, Step, DEFAULT_BUDGET, DEFAULT_REQUEST_TIMEOUT, MAX_MANIFEST};

use crate::config::Routing;
use crate::cue::{Location, Packed};
use crate::module::{semver, split_major, ModuleVersion};
use crate::trust::Signature;
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Deserialize;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use transport::{Transport, MANIFEST_MEDIA_TYPE};

/// Registry requests in flight at once.
pub const PARALLEL: usize = 32;

const MODULE_ARTIFACT_TYPE: &str = "application/vnd.cue.module.v1+json";
const MODULE_FILE_MEDIA_TYPE: &str = "application/vnd.cue.modulefile.v1";
/// CUE's own limits (modzip): a module.cue of at most 16 MiB, a zip of at
/// most 500 MiB.
const MAX_MODULE_FILE: u64 = 16 << 20;
const MAX_ZIP: u64 = 500 << 20;

/// A module version as the registry holds it.
pub struct Download {
    /// What the tag pointed to. The module-file layer is not fetched: the
    /// zip holds the same bytes as its cue.mod/module.cue.
    pub manifest: ModuleManifest,
    pub zip: Vec<u8>,
    /// The signatures stored for the manifest, when asked for.
    pub signatures: Option<Vec<Signature>>,
}

/// A CUE module's manifest: its bytes as they arrived (the cache keeps
/// them, so that what they name can be checked later) and what they name.
#[derive(Debug, Clone)]
pub struct ModuleManifest {
    pub bytes: Vec<u8>,
    /// The digest of `bytes`, whatever a registry says.
    pub digest: String,
    /// Digest and size of each layer, as the manifest says.
    pub zip: (String, u64),
    pub module_file: (String, u64),
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Published,
    /// The version was there already with identical content.
    Unchanged,
}

/// A zip being fetched ahead of its install.
type Prefetch = tokio::task::JoinHandle<Result<Vec<u8>, Error>>;

/// One client per command: its routing, a connection pool per host, and
/// the runtime its requests run on.
pub struct Client {
    routing: Routing,
    transport: std::sync::Arc<Transport>,
    rt: tokio::runtime::Runtime,
    /// Whether reading a module file also starts fetching its zip (for
    /// commands that install what they resolve).
    prefetch: std::sync::atomic::AtomicBool,
    /// Zips on their way, by version.
    prefetched: std::sync::Mutex<std::collections::HashMap<ModuleVersion, Prefetch>>,
}

impl Client {
    pub fn new(routing: Routing, limits: Limits) -> anyhow::Result<Client> {
        // One thread: requests still run concurrently (they wait on the
        // network, not on a core).
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Client { routing, transport: Arc::new(Transport::new(limits)), rt, prefetch: Default::default(), prefetched: Default::default() })
    }

    /// From now on, reading a version's module file also starts fetching
    /// its zip, in parallel with whatever comes next: resolution and
    /// download overlap (the zip is awaited by [`Client::module`]).
    pub fn prefetch_zips(&self) {
        self.prefetch.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// Runs registry work to completion on this client's runtime.
    pub fn block_on<F: Future>(&self, work: F) -> F::Output {
        self.rt.block_on(work)
    }

    /// Gets one token for pulling all of `mvs` where their registry uses
    /// tokens, before they are fetched in parallel.
    pub async fn preauthorize(&self, mvs: &[&ModuleVersion]) {
        let locs: Vec<Location> = mvs.iter().filter_map(|mv| self.locate(mv).ok()).collect();
        self.transport.preauthorize(&locs).await;
    }

    /// `opm registry check` for the repository of `loc`.
    pub fn check(&self, loc: &Location, push: bool) -> Vec<Step> {
        self.block_on(self.transport.check(loc, push))
    }

    /// The location of a module version, as cue routes it. A module
    /// routed to no registry (`none`) is not found, in cue's words.
    pub fn locate(&self, mv: &ModuleVersion) -> anyhow::Result<Location> {
        match self.routing.resolve(mv.module(), mv.version())? {
            Some(loc) => Ok(loc),
            None => Err(Error::new(ErrorKind::NotFound, "module not found").into()),
        }
    }

    /// The manifest a version's tag points to.
    async fn layers(&self, loc: &Location, mv: &ModuleVersion) -> anyhow::Result<ModuleManifest> {
        let manifest = self
            .transport
            .manifest(loc)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("{mv} not found: no tag {} in {}/{}", loc.tag, loc.host, loc.repository)))?;
        let layers =
            ModuleManifest::parse(manifest.data).map_err(|why| Error::new(ErrorKind::Corrupt, format!("{mv}: {}/{} {why}", loc.host, loc.repository)))?;
        if layers.module_file.1 > MAX_MODULE_FILE || layers.zip.1 > MAX_ZIP {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("{mv}: its layers exceed CUE's limits (module file {} MiB, zip {} MiB)", MAX_MODULE_FILE >> 20, MAX_ZIP >> 20),
            )
            .into());
        }
        Ok(layers)
    }

    /// A version's manifest digest and module file: what dependency
    /// resolution reads of it; with `signed`, its signatures too (fetched
    /// alongside, not after).
    pub async fn module_file(&self, mv: &ModuleVersion, signed: bool) -> anyhow::Result<(ModuleManifest, Vec<u8>, Option<Vec<Signature>>)> {
        let loc = self.locate(mv)?;
        let layers = self.layers(&loc, mv).await?;
        if self.prefetch.load(std::sync::atomic::Ordering::Relaxed) {
            let mut prefetched = self.prefetched.lock().expect("prefetch map");
            if !prefetched.contains_key(mv) {
                let (transport, loc, (digest, size)) = (self.transport.clone(), loc.clone(), layers.zip.clone());
                prefetched.insert(mv.clone(), tokio::spawn(async move { transport.blob(&loc, &digest, size, None).await }));
            }
        }
        let (digest, size) = &layers.module_file;
        let (data, signatures) =
            futures_util::try_join!(async { Ok(self.transport.blob(&loc, digest, *size, None).await?) }, self.signatures_if(signed, &loc, &layers.digest))?;
        Ok((layers, data, signatures))
    }

    async fn signatures_if(&self, signed: bool, loc: &Location, manifest_digest: &str) -> anyhow::Result<Option<Vec<Signature>>> {
        Ok(if signed { Some(self.signatures_at(loc, manifest_digest).await?) } else { None })
    }

    /// The manifest a version's tag points to now; with `signed`, the
    /// signatures stored for it, fetched alongside.
    pub async fn manifest(&self, mv: &ModuleVersion, signed: bool) -> anyhow::Result<(ModuleManifest, Option<Vec<Signature>>)> {
        let loc = self.locate(mv)?;
        let manifest = self.layers(&loc, mv).await?;
        let signatures = self.signatures_if(signed, &loc, &manifest.digest).await?;
        Ok((manifest, signatures))
    }

    /// A version's zip, checked against its digest, and with `signed` its
    /// signatures, fetched at once; `progress` counts the bytes as they
    /// arrive. The module file is the zip's own cue.mod/module.cue (the
    /// installer checks it against the layer's digest).
    pub async fn module(&self, mv: &ModuleVersion, progress: &Progress, signed: bool) -> anyhow::Result<Download> {
        let loc = self.locate(mv)?;
        let layers = self.layers(&loc, mv).await?;
        progress.inc_length(layers.zip.1);
        let early = self.prefetched.lock().expect("prefetch map").remove(mv);
        let (zip, signatures) = futures_util::try_join!(
            async {
                let early = match early {
                    Some(handle) => Some(handle.await.map_err(|e| Error::new(ErrorKind::Other, format!("a download of {mv} failed: {e}")))??),
                    None => None,
                };
                // The zip fetched early came from the first answer for the
                // tag: it serves only if this manifest names it too.
                Ok(match early.filter(|zip| sha256(zip) == layers.zip.0) {
                    Some(zip) => {
                        progress.inc(zip.len() as u64);
                        zip
                    }
                    None => self.transport.blob(&loc, &layers.zip.0, layers.zip.1, Some(progress)).await?,
                })
            },
            self.signatures_if(signed, &loc, &layers.digest)
        )?;
        Ok(Download { manifest: layers, zip, signatures })
    }

    /// The versions the registry holds of a module: `path@vN` lists that
    /// major only, a path without major every major. Sorted as cue sorts.
    pub async fn versions(&self, path: &str) -> anyhow::Result<Vec<String>> {
        let (base, major) = split_major(path);
        // As cue's modregistry: a module routed to no registry, or whose
        // repository name OCI cannot express, has no versions (nothing is
        // asked of a registry).
        let Some(loc) = self.routing.resolve(base, "")? else { return Ok(Vec::new()) };
        if !is_valid_repository(&loc.repository) {
            return Ok(Vec::new());
        }
        let tags = self.transport.tags(&loc).await?;
        // Tags carry the routing's tag prefix; only SemVer tags of the
        // asked major are versions.
        let mut versions: Vec<String> = tags
            .into_iter()
            .filter_map(|t| t.strip_prefix(loc.tag.as_str()).map(str::to_string))
            .filter(|v| semver::is_valid(v) && (major.is_empty() || semver::major(v) == major))
            .collect();
        semver::sort(&mut versions);
        Ok(versions)
    }

    /// Pushes a packed module to `loc`: blobs the registry lacks first,
    /// then the manifest, so a failed publish leaves no tag. An existing
    /// tag is kept: identical content is a no-op, other content an error.
    /// `progress` counts the bytes sent.
    pub async fn publish(&self, loc: &Location, packed: &Packed, zip: &[u8], progress: &Progress) -> anyhow::Result<Pushed> {
        if let Some(existing) = self.transport.manifest(loc).await? {
            if existing.digest == packed.manifest_digest {
                return Ok(Pushed::Unchanged);
            }
            if ModuleManifest::parse(existing.data.clone()).is_err() {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "{}/{}:{} exists but is not a readable CUE module (a broken or foreign manifest, {}): versions are immutable, publish a new version or have the tag removed",
                        loc.host, loc.repository, loc.tag, existing.digest
                    ),
                )
                .into());
            }
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{}/{}:{} already exists with different content ({}): versions are immutable, publish a new version",
                    loc.host, loc.repository, loc.tag, existing.digest
                ),
            )
            .into());
        }
        for (data, digest) in blobs(packed, zip) {
            self.transport.push_blob(loc, data, digest, progress).await?;
        }
        self.transport.push_manifest(loc, packed.manifest.as_bytes(), MANIFEST_MEDIA_TYPE).await?;
        Ok(Pushed::Published)
    }
}

impl ModuleManifest {
    /// Reads a CUE module's manifest, or says why it is not one.
    pub fn parse(bytes: Vec<u8>) -> Result<ModuleManifest, String> {
        #[derive(Deserialize)]
        struct Manifest {
            config: Descriptor,
            layers: Vec<Descriptor>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Descriptor {
            media_type: String,
            digest: String,
            #[serde(default)]
            size: u64,
        }
        let parsed: Manifest = serde_json::from_slice(&bytes).map_err(|e| format!("serves a manifest that is not a CUE module's ({e})"))?;
        let [zip, module_file] = parsed.layers.as_slice() else {
            return Err("serves a manifest without the two layers of a CUE module".into());
        };
        if parsed.config.media_type != MODULE_ARTIFACT_TYPE || module_file.media_type != MODULE_FILE_MEDIA_TYPE {
            return Err("holds an artifact that is not a CUE module".into());
        }
        let (zip, module_file) = ((zip.digest.clone(), zip.size), (module_file.digest.clone(), module_file.size));
        Ok(ModuleManifest { digest: sha256(&bytes), bytes, zip, module_file })
    }
}

/// What mirroring one manifest did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    pub blobs_copied: usize,
    pub blobs_present: usize,
    /// The target had the manifest already (same digest): nothing copied.
    pub already: bool,
}

impl Client {
    /// Copies a module version from where this client's routing finds it
    /// to where `dst`'s routing puts it: the blobs the target lacks, then
    /// the manifest's exact bytes (the same digest), then its cosign
    /// signatures when there are any. A target that holds the version with
    /// other content is refused (versions are immutable). The manifest
    /// digest, what was copied, and whether signatures came along.
    pub async fn mirror(&self, dst: &Client, mv: &ModuleVersion) -> anyhow::Result<(String, Copied, bool)> {
        let (from, to) = (self.locate(mv)?, dst.locate(mv)?);
        let manifest = self
            .transport
            .manifest(&from)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("{mv} not found: no tag {} in {}/{}", from.tag, from.host, from.repository)))?;
        // Only a CUE module is copied as one.
        self.layers(&from, mv).await?;
        let copied = self.copy_manifest(&from, &manifest, dst, &to).await?;
        let sig_from = signature_location(&from, &manifest.digest);
        let signed = match self.transport.manifest(&sig_from).await? {
            Some(sig) => {
                let sig_to = signature_location(&to, &manifest.digest);
                match dst.transport.manifest(&sig_to).await? {
                    // The target's own signatures are kept.
                    Some(theirs) if theirs.digest != sig.digest => {}
                    _ => {
                        self.copy_manifest(&sig_from, &sig, dst, &sig_to).await?;
                    }
                }
                true
            }
            None => false,
        };
        Ok((manifest.digest, copied, signed))
    }

    /// Copies one manifest and the blobs it names, blobs first.
    async fn copy_manifest(&self, from: &Location, manifest: &transport::Manifest, dst: &Client, to: &Location) -> anyhow::Result<Copied> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Descriptor {
            digest: String,
            #[serde(default)]
            size: u64,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Doc {
            #[serde(default)]
            media_type: Option<String>,
            config: Descriptor,
            #[serde(default)]
            layers: Vec<Descriptor>,
        }
        if let Some(existing) = dst.transport.manifest(to).await? {
            if existing.digest == manifest.digest {
                return Ok(Copied { already: true, ..Copied::default() });
            }
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{}/{}:{} already holds other content ({}): versions are immutable, nothing was copied",
                    to.host, to.repository, to.tag, existing.digest
                ),
            )
            .into());
        }
        let doc: Doc = serde_json::from_slice(&manifest.data).map_err(|_| {
            Error::new(ErrorKind::Corrupt, format!("{}/{}:{}: the manifest is not an OCI image manifest", from.host, from.repository, from.tag))
        })?;
        let quiet = Progress::none();
        let mut copied = Copied::default();
        let results: Vec<bool> = futures_util::stream::iter(std::iter::once(&doc.config).chain(&doc.layers))
            .map(|d| {
                let quiet = &quiet;
                async move {
                    let pushed = dst.transport.push_blob_from(to, &d.digest, quiet, || self.transport.blob(from, &d.digest, d.size, None)).await?;
                    anyhow::Ok(pushed)
                }
            })
            .buffer_unordered(PARALLEL)
            .try_collect()
            .await?;
        for pushed in results {
            if pushed {
                copied.blobs_copied += 1;
            } else {
                copied.blobs_present += 1;
            }
        }
        let media_type = doc.media_type.unwrap_or_else(|| MANIFEST_MEDIA_TYPE.to_string());
        dst.transport.push_manifest(to, &manifest.data, &media_type).await?;
        Ok(copied)
    }
}

/// OCI's repository name grammar (distribution's reference.go, as cue's
/// ociref.IsValidRepository): components of lower-case letters and digits
/// joined by `.`, `_`, `__` or runs of `-`, separated by single `/`.
pub fn is_valid_repository(name: &str) -> bool {
    fn component(c: &str) -> bool {
        let b = c.as_bytes();
        let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        let mut i = 0;
        let run = |i: &mut usize| {
            let start = *i;
            while *i < b.len() && alnum(b[*i]) {
                *i += 1;
            }
            *i > start
        };
        if !run(&mut i) {
            return false;
        }
        while i < b.len() {
            match b[i] {
                b'.' => i += 1,
                b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
                b'-' => {
                    while i < b.len() && b[i] == b'-' {
                        i += 1;
                    }
                }
                _ => return false,
            }
            if !run(&mut i) {
                return false;
            }
        }
        true
    }
    !name.is_empty() && name.split('/').all(component)
}

/// The bytes a push sends: the blobs and the manifest.
pub fn push_size(packed: &Packed, zip: &[u8]) -> u64 {
    (blobs(packed, zip).iter().map(|(d, _)| d.len()).sum::<usize>() + packed.manifest.len()) as u64
}

/// The blobs of a packed module, in push order: config, zip, module file.
fn blobs<'a>(packed: &'a Packed, zip: &'a [u8]) -> [(&'a [u8], &'a str); 3] {
    [(b"{}", packed.config.digest.as_str()), (zip, packed.zip.digest.as_str()), (packed.module_file_data.as_bytes(), packed.module_file.digest.as_str())]
}

/// Writes a packed module as an OCI image layout, as `cue mod publish
/// --out` does. `out` must not exist.
pub fn write_layout(out: &Path, packed: &Packed, zip: &[u8], tag: &str) -> anyhow::Result<()> {
    use fs_err as fs;
    fs::create_dir(out)?;
    fs::write(out.join("oci-layout"), "{\n    \"imageLayoutVersion\": \"1.0.0\"\n}\n")?;
    let dir = out.join("blobs/sha256");
    fs::create_dir_all(&dir)?;
    let manifest = packed.manifest.as_bytes();
    for (data, digest) in blobs(packed, zip).into_iter().chain([(manifest, packed.manifest_digest.as_str())]) {
        fs::write(dir.join(digest.trim_start_matches("sha256:")), data)?;
    }
    // Go's json.MarshalIndent with tabs, as cue writes it.
    let index = format!(
        "{{\n\t\"schemaVersion\": 2,\n\t\"mediaType\": \"application/vnd.oci.image.index.v1+json\",\n\t\"manifests\": [\n\t\t{{\n\t\t\t\"mediaType\": \"{MANIFEST_MEDIA_TYPE}\",\n\t\t\t\"digest\": \"{}\",\n\t\t\t\"size\": {},\n\t\t\t\"annotations\": {{\n\t\t\t\t\"org.opencontainers.image.ref.name\": {}\n\t\t\t}}\n\t\t}}\n\t]\n}}\n",
        packed.manifest_digest,
        manifest.len(),
        serde_json::to_string(tag)?
    );
    fs::write(out.join("index.json"), index)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_valid_repository;

    #[test]
    fn repository_names_follow_ocis_grammar() {
        for ok in ["a", "test.example/foo", "a-b/c__d/e.f", "a--b", "x/y_z", "0/9"] {
            assert!(is_valid_repository(ok), "{ok}");
        }
        for bad in ["", "test.example/foo/BarBaz", "a//b", "/a", "a/", "a.", "-a", "a___b", "a..b", "a_.b"] {
            assert!(!is_valid_repository(bad), "{bad}");
        }
    }
}
