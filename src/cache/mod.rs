//! The CUE cache, shared with the `cue` CLI, and the only fetcher: every
//! module byte opm reads from a registry arrives through [`Cache`], and
//! every write into the cache happens here, under cue's per-version lock.
//! `usage` records which projects use which versions.

mod chain;
mod entry;
mod mirror;
pub mod usage;

pub use chain::{Depth, Proven, SignatureStatus};
pub use entry::Entry;
pub use mirror::{Copy, Mirrored};

use crate::catalog;
use crate::context::{Context, Unit};
use crate::cue;
use crate::error::{fail, Kind};
use crate::files;
use crate::module::{escape, unescape};
use crate::module::{semver, ModuleVersion};
use crate::registry::{self, Client, PARALLEL};
use crate::trust::{Policy, PublicKey, Signature, Verdict};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The cache of one command. It fetches through the command's registry
/// client and judges by its policy, both the [`Context`]'s (read on first
/// need: a command whose modules are all cached never reads the routing or
/// the credentials).
pub struct Cache {
    ctx: Context,
    /// Or why there is none: an error only once the cache is used, as cue
    /// reports it.
    dir: Result<PathBuf, String>,
    offline: bool,
    /// The command installs what it resolves: fetch zips with module files.
    installs: std::cell::Cell<bool>,
    /// What the module's sums file records: every fetch of these versions
    /// must bring exactly this content.
    pins: Pins,
    /// What this command installed, walked whole on the way in.
    installed: RefCell<HashMap<ModuleVersion, Proven>>,
    /// Versions this command proved to `Depth::Warm` against their pins:
    /// their opm.sum lines stand as they are.
    pinned_warm: RefCell<HashMap<ModuleVersion, Proven>>,
}

/// The content of a module version: its manifest's digest and its zip's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub manifest: String,
    pub zip: String,
}

pub type Pins = BTreeMap<ModuleVersion, Digests>;

/// What differs from the sums file: refused, nothing written.
fn mismatch(mv: &ModuleVersion, what: &str, expected: &str, received: &str) -> anyhow::Error {
    fail(
        Kind::Integrity,
        format!(
            "{mv}: the {what} is {received}, but cue.mod/opm.sum records {expected}: the content of this version changed \
             (a moved tag, or tampering); nothing was written. If the change is expected, remove its line from \
             cue.mod/opm.sum and run 'opm mod tidy'"
        ),
    )
}

impl Cache {
    /// The cache of the command's context (offline: never touches the
    /// network).
    pub fn new(ctx: &Context) -> Cache {
        Cache {
            ctx: ctx.clone(),
            dir: ctx.cache_dir().clone(),
            offline: ctx.offline(),
            installs: Default::default(),
            pins: Pins::new(),
            installed: Default::default(),
            pinned_warm: Default::default(),
        }
    }

    /// The cache, checking what it fetches against `pins`.
    pub fn with_pins(mut self, pins: Pins) -> Cache {
        self.pins = pins;
        self
    }

    /// Checks what a registry served against the sums file's pin of the
    /// version, when there is one (the zip too, when given).
    fn check_download(&self, mv: &ModuleVersion, manifest: &str, zip: Option<&[u8]>) -> anyhow::Result<()> {
        let Some(pin) = self.pins.get(mv) else { return Ok(()) };
        if pin.manifest != manifest {
            return Err(mismatch(mv, "manifest digest from the registry", &pin.manifest, manifest));
        }
        if let Some(zip) = zip {
            let got = registry::sha256(zip);
            if got != pin.zip {
                return Err(mismatch(mv, "zip digest from the registry", &pin.zip, &got));
            }
        }
        Ok(())
    }

    /// The digests to pin of versions complete in the cache: each one's
    /// whole chain walked (what is missing of it fetched, unless offline),
    /// but for a version opm.sum pins already and this command proved
    /// against that pin (a warm walk, as vet's): its line stands, and its
    /// extracted tree is not read again.
    pub fn digests(&self, mvs: &[ModuleVersion]) -> anyhow::Result<Vec<Digests>> {
        let standing = |mv: &ModuleVersion| self.pins.contains_key(mv) && self.pinned_warm.borrow().contains_key(mv);
        // What an interrupted run left beside a standing entry goes too (a
        // full walk sweeps the others).
        for mv in mvs.iter().filter(|mv| standing(mv)) {
            let entry = self.entry(mv)?;
            if entry.has_leftovers() {
                entry.collect_leftovers()?;
            }
        }
        let walked: Vec<ModuleVersion> = mvs.iter().filter(|mv| !standing(mv)).cloned().collect();
        let mut proven = self.prove(&walked, Depth::Full)?.into_iter();
        mvs.iter()
            .map(|mv| if standing(mv) { self.pinned_warm.borrow()[mv].clone() } else { proven.next().expect("one proof per version walked") })
            .zip(mvs)
            .map(|(p, mv)| {
                let manifest = p.manifest.or_else(|| self.pins.get(mv).map(|pin| pin.manifest.clone())).ok_or_else(|| {
                    fail(
                        Kind::NotFound,
                        format!("--offline: the manifest digest of {mv} (fetched by cue) is unknown, so it cannot be pinned: run once without --offline"),
                    )
                })?;
                Ok(Digests { manifest, zip: p.zip })
            })
            .collect()
    }

    /// The versions of a module path the cache holds a module file of
    /// (`path@vN`: that major; `path`: every major), sorted as cue sorts:
    /// what an offline command sees of a registry.
    fn cached_versions(&self, path: &str) -> anyhow::Result<Vec<String>> {
        let (base, major) = crate::module::split_major(path);
        let dir = self.dir()?.join("mod/download").join(escape(base)).join("@v");
        let mut versions: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".mod")).map(unescape))
            .filter(|v| semver::is_valid(v) && (major.is_empty() || semver::major(v) == major))
            // Complete entries only: a module file fetched for resolution
            // is no version one can build with.
            .filter(|v| Entry::new(self.dir.as_ref().expect("dir read above"), &ModuleVersion::new(base, v)).is_complete())
            .collect();
        semver::sort(&mut versions);
        Ok(versions)
    }

    pub fn dir(&self) -> anyhow::Result<&Path> {
        self.dir.as_deref().map_err(|why| fail(Kind::Other, why.clone()))
    }

    pub fn entry(&self, mv: &ModuleVersion) -> anyhow::Result<Entry> {
        Ok(Entry::new(self.dir()?, mv))
    }

    /// Records that the project at `root` uses `mvs` (before they are made
    /// sure of, so that a concurrent tidy or gc keeps them).
    pub fn record_use(&self, root: &Path, mvs: &[ModuleVersion]) -> anyhow::Result<()> {
        // No cache directory: nothing can be used (cue's error comes when
        // something is).
        let Ok(dir) = self.dir() else { return Ok(()) };
        // Only tidy and gc need the record; a state directory that cannot
        // be written does not stop a vet or a build.
        if let Err(e) = usage::record(dir, root, mvs) {
            tracing::warn!("cannot record which versions {} uses: {e:#}", root.display());
        }
        Ok(())
    }

    /// Every module version in the cache: the extracted ones, in cue's
    /// layout (`mod/extract/<escaped path>@<version>`), sorted.
    pub fn entries(&self) -> anyhow::Result<Vec<Entry>> {
        fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, String)>) {
            let Ok(read) = std::fs::read_dir(dir) else { return };
            for e in read.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !e.file_type().is_ok_and(|t| t.is_dir()) || name.contains(".tmp-") {
                    continue;
                }
                let path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
                match name.rsplit_once('@') {
                    Some(_) => {
                        let (base, version) = path.rsplit_once('@').expect("has an @");
                        out.push((unescape(base), unescape(version)));
                    }
                    None => walk(&e.path(), &path, out),
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.dir()?.join("mod/extract"), "", &mut found);
        let mut entries: Vec<Entry> = found
            .into_iter()
            .filter(|(_, v)| semver::is_valid(v))
            .map(|(base, v)| Entry::new(self.dir.as_ref().expect("dir read above"), &ModuleVersion::new(&base, &v)))
            .collect();
        entries.sort_by(|a, b| a.module_version().cmp(b.module_version()));
        Ok(entries)
    }

    /// The versions an interrupted install or removal left parts of (see
    /// [`Entry::collect_leftovers`]): zips in `mod/download` without a
    /// complete entry, `.tmp-` trees in `mod/extract`.
    pub fn leftovers(&self) -> anyhow::Result<Vec<Entry>> {
        fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, String)>, extract: bool) {
            let Ok(read) = std::fs::read_dir(dir) else { return };
            for e in read.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                let path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
                if extract && is_dir && name.contains(".tmp-") {
                    // `<path>@<version>.tmp-...`
                    if let Some((base, version)) = path.split_once(".tmp-").and_then(|(entry, _)| entry.rsplit_once('@')) {
                        out.push((unescape(base), unescape(version)));
                    }
                } else if !extract && name == "@v" && is_dir {
                    for f in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                        if let Some(version) = f.file_name().to_string_lossy().strip_suffix(".zip") {
                            out.push((unescape(rel), unescape(version)));
                        }
                    }
                } else if is_dir && !name.contains('@') {
                    walk(&e.path(), &path, out, extract);
                }
            }
        }
        let root = self.dir()?.join("mod");
        let mut found = Vec::new();
        walk(&root.join("download"), "", &mut found, false);
        walk(&root.join("extract"), "", &mut found, true);
        found.sort();
        found.dedup();
        Ok(found
            .into_iter()
            .filter(|(_, v)| semver::is_valid(v))
            .map(|(base, v)| Entry::new(self.dir.as_ref().expect("dir read above"), &ModuleVersion::new(&base, &v)))
            .filter(Entry::has_leftovers)
            .collect())
    }

    /// The command's registry client. The policy's keys are read first: a
    /// missing key fails before anything is fetched.
    fn client(&self) -> anyhow::Result<&Client> {
        self.ctx.policy()?;
        let client = self.ctx.client()?;
        if self.installs.get() {
            client.prefetch_zips();
        }
        Ok(client)
    }

    /// Says that this command installs every version it resolves (get,
    /// tidy): reading a module file from a registry then also starts its
    /// zip's download, so resolution and download overlap.
    pub fn will_install(&self) {
        self.installs.set(true);
    }

    /// The command's signature policy.
    pub fn policy(&self) -> anyhow::Result<&Policy> {
        self.ctx.policy()
    }

    /// Whether the policy covers a version. The core model opm carries is
    /// as trusted as opm itself.
    fn must_be_signed(&self, mv: &ModuleVersion) -> anyhow::Result<bool> {
        Ok(self.policy()?.keys_for(mv.module()).is_some() && !catalog::is_embedded(mv))
    }

    /// The policy's verdict on the signatures fetched with a version (None:
    /// none were asked for, as it needs none).
    fn judge(&self, mv: &ModuleVersion, manifest_digest: &str, signatures: Option<&[Signature]>) -> anyhow::Result<Option<&PublicKey>> {
        let Some(signatures) = signatures else { return Ok(None) };
        Ok(match self.policy()?.check(mv, manifest_digest, signatures)? {
            Verdict::Signed(key) => Some(key),
            Verdict::Exempt => None,
        })
    }

    /// Makes every version complete in the cache: complete entries are
    /// checked through their chains (`Depth::Warm`), the core model opm
    /// carries is installed, the others are downloaded (at most PARALLEL at
    /// once, with progress). With `refresh`, every version is downloaded
    /// again; an old copy is replaced only once its new one has arrived.
    pub fn ensure(&self, mvs: &[ModuleVersion], refresh: bool) -> anyhow::Result<()> {
        let mut missing: Vec<&ModuleVersion> = Vec::new();
        let mut cached: Vec<ModuleVersion> = Vec::new();
        for mv in mvs {
            let entry = self.entry(mv)?;
            if refresh {
                missing.push(mv);
            } else if entry.is_complete() {
                cached.push(mv.clone());
            } else if catalog::is_embedded(mv) {
                self.install_embedded()?;
            } else if !missing.contains(&mv) {
                missing.push(mv);
            }
        }
        self.prove(&cached, Depth::Warm)?;
        if missing.is_empty() {
            return Ok(());
        }
        if self.offline {
            let names = missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            return Err(fail(Kind::NotFound, format!("--offline, and the CUE cache ({}) lacks {names}: run once without --offline", self.dir()?.display())));
        }
        let client = self.client()?;
        // Bytes: the total grows as each version's manifest says its size.
        let bar = self.ctx.progress(&format!("downloading {}", crate::error::count(missing.len(), "module version")), Unit::Bytes);
        client.block_on(client.preauthorize(&missing));
        client.block_on(
            stream::iter(missing)
                .map(|mv| {
                    let bar = &bar;
                    async move {
                        let entry = self.entry(mv)?;
                        let download = client.module(mv, bar, self.must_be_signed(mv)?).await.map_err(naming(mv, "downloading"))?;
                        self.check_download(mv, &download.manifest.digest, Some(&download.zip))?;
                        let signer = self.judge(mv, &download.manifest.digest, download.signatures.as_deref())?.map(|k| k.path.display().to_string());
                        let proven = Proven { manifest: Some(download.manifest.digest.clone()), zip: download.manifest.zip.0.clone(), signer };
                        // Unzipping and writing block: off the thread that
                        // drives the other downloads.
                        tokio::task::spawn_blocking(move || {
                            if refresh {
                                entry.remove()?;
                            }
                            entry.install(&download.zip, &download.manifest, download.signatures.as_deref())
                        })
                        .await??;
                        self.installed.borrow_mut().insert(mv.clone(), proven);
                        anyhow::Ok(())
                    }
                })
                .buffer_unordered(PARALLEL)
                .try_collect::<()>(),
        )?;
        bar.done();
        Ok(())
    }

    /// The module files of many versions, in order, parsed: from the
    /// cache's `.mod` files, the missing ones fetched in parallel, judged
    /// by the policy, checked against the pins and cached.
    pub fn module_files(&self, mvs: &[ModuleVersion]) -> anyhow::Result<Vec<cue::ModuleFile>> {
        let mut out: Vec<Option<cue::ModuleFile>> = Vec::with_capacity(mvs.len());
        let mut missing = Vec::new();
        for (i, mv) in mvs.iter().enumerate() {
            if catalog::is_embedded(mv) {
                self.install_embedded()?;
            }
            match std::fs::read(self.entry(mv)?.mod_file()) {
                Ok(data) => {
                    let parsed = parse_dependency(mv, &data)
                        .map_err(|why| fail(Kind::Other, format!("{mv}: the module file in the CUE cache {why}: run 'opm mod get --force {mv}'")))?;
                    out.push(Some(parsed));
                }
                Err(_) => {
                    out.push(None);
                    missing.push(i);
                }
            }
        }
        if !missing.is_empty() {
            if self.offline {
                let names: Vec<String> = missing.iter().map(|&i| mvs[i].to_string()).collect();
                return Err(fail(Kind::NotFound, format!("--offline, and the CUE cache lacks the module files of {}", names.join(", "))));
            }
            let client = self.client()?;
            client.block_on(client.preauthorize(&missing.iter().map(|&i| &mvs[i]).collect::<Vec<_>>()));
            // (index, manifest, module file, signatures asked for)
            type Fetched = (usize, registry::ModuleManifest, Vec<u8>, Option<Vec<Signature>>);
            let fetched: Vec<Fetched> = client.block_on(
                stream::iter(missing)
                    .map(|i| async move {
                        let (manifest, data, signatures) =
                            client.module_file(&mvs[i], self.must_be_signed(&mvs[i])?).await.map_err(naming(&mvs[i], "fetching the module file of"))?;
                        self.judge(&mvs[i], &manifest.digest, signatures.as_deref())?;
                        anyhow::Ok((i, manifest, data, signatures))
                    })
                    .buffer_unordered(PARALLEL)
                    .try_collect(),
            )?;
            for (i, manifest, data, signatures) in fetched {
                let parsed = parse_dependency(&mvs[i], &data).map_err(|why| artifact_lie(&mvs[i], why))?;
                self.check_download(&mvs[i], &manifest.digest, None)?;
                self.entry(&mvs[i])?.write_module_file(&data, &manifest, signatures.as_deref())?;
                out[i] = Some(parsed);
            }
        }
        Ok(out.into_iter().map(|d| d.expect("every module file read or fetched")).collect())
    }

    /// The manifest the registry serves for a version now (nothing kept):
    /// what `verify --remote` compares with the pins.
    pub fn manifest_in_registry(&self, mv: &ModuleVersion) -> anyhow::Result<registry::ModuleManifest> {
        let client = self.client()?;
        Ok(client.block_on(client.manifest(mv, false)).map_err(naming(mv, "fetching the manifest of"))?.0)
    }

    /// The versions registries hold of each module path (see
    /// [`Client::versions`]), listed in parallel.
    pub fn versions(&self, paths: &[String]) -> anyhow::Result<Vec<Vec<String>>> {
        self.versions_each(paths).into_iter().collect()
    }

    /// Like [`Cache::versions`], each path on its own: one registry that
    /// cannot be reached fails its own paths only.
    /// The core model's versions are the one opm carries (and the paths
    /// above it have none): never looked up.
    pub fn versions_each(&self, paths: &[String]) -> Vec<anyhow::Result<Vec<String>>> {
        let opms = |p: &str| catalog::is_embedded_path(p) || catalog::is_above_embedded(p);
        let (embedded, asked): (Vec<usize>, Vec<usize>) = (0..paths.len()).partition(|&i| opms(&paths[i]));
        let mut out: Vec<Option<anyhow::Result<Vec<String>>>> = (0..paths.len()).map(|_| None).collect();
        for i in embedded {
            let versions = if catalog::is_embedded_path(&paths[i]) { vec![catalog::VERSION.to_string()] } else { Vec::new() };
            out[i] = Some(Ok(versions));
        }
        let answers: Vec<anyhow::Result<Vec<String>>> = if asked.is_empty() {
            Vec::new()
        } else if self.offline {
            asked.iter().map(|&i| self.cached_versions(&paths[i])).collect()
        } else {
            match self.client() {
                Ok(client) => client.block_on(
                    stream::iter(&asked)
                        .map(|&i| async move { client.versions(&paths[i]).await.map_err(naming(&paths[i], "listing the versions of")) })
                        .buffered(PARALLEL)
                        .collect(),
                ),
                Err(e) => {
                    let why = format!("{e:#}");
                    asked.iter().map(|_| Err(fail(Kind::Other, why.clone()))).collect()
                }
            }
        };
        for (i, answer) in asked.into_iter().zip(answers) {
            out[i] = Some(answer);
        }
        out.into_iter().map(|a| a.expect("every path answered")).collect()
    }

    /// Installs the core model opm carries unless the cache has it, exactly
    /// as a download of the published catalog would.
    pub fn install_embedded(&self) -> anyhow::Result<()> {
        let entry = self.entry(&catalog::module_version())?;
        if entry.is_complete() {
            return Ok(());
        }
        let (packed, zip) = catalog::pack()?;
        let manifest =
            registry::ModuleManifest::parse(packed.manifest.into_bytes()).map_err(|why| fail(Kind::Other, format!("the core model opm carries {why}")))?;
        self.check_download(entry.module_version(), &manifest.digest, Some(&zip))?;
        entry.install(&zip, &manifest, None)
    }
}

/// A registry failure that names the module (version) it was about: the
/// error as it is when it names it already, else with `what it` before it.
fn naming<'a>(it: &'a (impl std::fmt::Display + ?Sized), what: &'a str) -> impl FnOnce(anyhow::Error) -> anyhow::Error + 'a {
    move |e| {
        let it = it.to_string();
        if format!("{e:#}").contains(&it) {
            e
        } else {
            e.context(format!("{what} {it}"))
        }
    }
}

/// A dependency's module file, from its bytes: at most
/// [`files::MAX_MODULE_FILE`], UTF-8, parsed strictly (as cue reads a
/// dependency's), and declaring `mv`'s module. Err says why not.
fn parse_dependency(mv: &ModuleVersion, data: &[u8]) -> Result<cue::ModuleFile, String> {
    let text = module_file_text(data)?;
    // The shim remembers CUE's parse by digest (every warm command reads
    // each dependency's module file).
    let parsed = cue::parse_dependency_file(text, &mv.to_string(), mv.module()).map_err(|e| format!("does not parse: {}", e.message))?;
    declares(mv, &parsed.module)?;
    Ok(parsed)
}

/// Refuses an artifact that is not the module it claims to be: its
/// module file must declare the version's module path (and major). Only
/// that is read here; the rest of the file is checked, as cue checks it,
/// when resolution or a load first reads it.
fn check_artifact(mv: &ModuleVersion, module_file: &[u8]) -> anyhow::Result<()> {
    module_file_text(module_file)
        .and_then(|text| cue::declared_module(text, &mv.to_string()).map_err(|e| format!("does not parse: {}", e.message)))
        .and_then(|module| declares(mv, &module))
        .map_err(|why| artifact_lie(mv, why))
}

/// A module file's bytes as text: at most [`files::MAX_MODULE_FILE`], UTF-8.
fn module_file_text(data: &[u8]) -> Result<&str, String> {
    if data.len() as u64 > files::MAX_MODULE_FILE {
        return Err(format!("is {} KiB, more than the {} MiB opm reads", data.len() >> 10, files::MAX_MODULE_FILE >> 20));
    }
    std::str::from_utf8(data).map_err(|_| "is not UTF-8".to_string())
}

/// Whether `module` (a module file's, with or without its major) is `mv`'s.
fn declares(mv: &ModuleVersion, module: &str) -> Result<(), String> {
    let (base, major) = crate::module::split_major(module);
    let major = if major.is_empty() { "v0" } else { major };
    if base != mv.base() || major != semver::major(mv.version()) {
        return Err(format!("declares {module}"));
    }
    Ok(())
}

/// A registry's artifact that is not the module version it was asked for.
fn artifact_lie(mv: &ModuleVersion, why: String) -> anyhow::Error {
    fail(Kind::Other, format!("{mv}: the registry's artifact is not the module it claims to be (its module file {why}); nothing was written"))
}
