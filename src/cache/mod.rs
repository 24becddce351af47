//! The CUE cache, shared with the `cue` CLI, and the only fetcher: every
//! module byte opm reads from a registry arrives through [`Cache`], and
//! every write into the cache happens here, under cue's per-version lock.
//! `usage` records which projects use which versions.

pub mod usage;

use crate::catalog;
use crate::config::Routing;
use crate::cue;
use crate::error::{fail, Exit};
use crate::files::{self, write_cached};
use crate::module::{semver, ModuleVersion};
use crate::registry::{self, Client, PARALLEL};
use crate::trust::{Policy, PublicKey, Verdict};
use crate::ui;
use fs_err as fs;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::env;
use std::path::{Path, PathBuf};

/// `$CUE_CACHE_DIR`, else the user cache directory + `/cue`, as cue computes
/// it (Go's `os.UserCacheDir`), or why there is none, in cue's words.
pub fn default_dir() -> Result<PathBuf, String> {
    if let Some(dir) = env::var_os("CUE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let var = |name: &str| env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let user_cache = if cfg!(target_os = "macos") {
        var("HOME").map(|h| h.join("Library/Caches")).ok_or("$HOME is not defined")
    } else {
        match var("XDG_CACHE_HOME") {
            Some(dir) if dir.is_absolute() => Ok(dir),
            Some(_) => Err("path in $XDG_CACHE_HOME is relative"),
            None => var("HOME").map(|h| h.join(".cache")).ok_or("neither $XDG_CACHE_HOME nor $HOME are defined"),
        }
    };
    user_cache.map(|d| d.join("cue")).map_err(|why| format!("cannot determine system cache directory: {why}"))
}

/// The cache of one command, with the registry client it fetches through
/// (built on first need: a command whose modules are all cached never
/// reads the routing or the credentials).
pub struct Cache {
    /// Or why there is none: an error only once the cache is used, as cue
    /// reports it.
    dir: Result<PathBuf, String>,
    offline: bool,
    client: OnceCell<Client>,
    /// The signature policy, read on first download.
    policy: OnceCell<Policy>,
    /// The command installs what it resolves: fetch zips with module files.
    installs: std::cell::Cell<bool>,
    /// What the module's sums file records: every fetch of these versions
    /// must bring exactly this content.
    pins: Pins,
}

/// The content of a module version: its manifest's digest and its zip's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub manifest: String,
    pub zip: String,
}

pub type Pins = BTreeMap<ModuleVersion, Digests>;

/// What an installed module file must be: these bytes, or the bytes with
/// this digest (the manifest's module-file layer, read from the zip's own
/// cue.mod/module.cue instead of fetched again).
pub enum ModuleFileCheck {
    Bytes(Vec<u8>),
    Digest(String),
}

/// A cached version against the signature policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureStatus {
    /// No rule of the policy covers it.
    Exempt,
    /// Signed by this key (its file).
    Signed(String),
    /// Refused, and why.
    Refused(String),
    NotCached,
    /// Offline, and never checked.
    Unchecked,
}

/// What differs from the sums file: refused, nothing written.
fn mismatch(mv: &ModuleVersion, what: &str, expected: &str, received: &str) -> anyhow::Error {
    fail(
        Exit::Integrity,
        format!(
            "{mv}: the {what} is {received}, but cue.mod/opm.sum records {expected}: the content of this version changed \
             (a moved tag, or tampering); nothing was written. If the change is expected, remove its line from \
             cue.mod/opm.sum and run 'opm mod tidy'"
        ),
    )
}

impl Cache {
    /// The cache at `dir`; `offline` never touches the network.
    pub fn new(dir: Result<PathBuf, String>, offline: bool) -> Cache {
        Cache { dir, offline, client: OnceCell::new(), policy: OnceCell::new(), installs: Default::default(), pins: Pins::new() }
    }

    /// The cache, checking what it fetches against `pins`.
    pub fn with_pins(mut self, pins: Pins) -> Cache {
        self.pins = pins;
        self
    }

    /// Refuses an artifact that is not the module it claims to be: its
    /// module file must declare the version's module path (and major).
    fn check_artifact(mv: &ModuleVersion, module_file: &[u8]) -> anyhow::Result<()> {
        let lie = |why: String| fail(Exit::General, format!("{mv}: the registry's artifact is not the module it claims to be ({why}); nothing was written"));
        files::check_module_file_size(&format!("the module file of {mv}"), module_file.len() as u64)?;
        let text = std::str::from_utf8(module_file).map_err(|_| lie("its module file is not UTF-8".into()))?;
        let parsed = cue::parse_module_file(text, &mv.to_string(), true).map_err(|e| lie(format!("its module file does not parse: {}", e.message)))?;
        let (base, major) = crate::module::split_major(&parsed.module);
        let major = if major.is_empty() { "v0" } else { major };
        if base != mv.base() || major != semver::major(&mv.version) {
            return Err(lie(format!("its module file declares {}", parsed.module)));
        }
        Ok(())
    }

    /// The pinned digests of a version, when the sums file has them.
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

    /// The digests of versions complete in the cache, recorded when opm
    /// installed them; a manifest digest that is not (an entry cue
    /// downloaded) is asked of the registry and recorded.
    pub fn digests(&self, mvs: &[ModuleVersion]) -> anyhow::Result<Vec<Digests>> {
        let mut out = Vec::new();
        for mv in mvs {
            let entry = self.entry(mv)?;
            let zip = entry.zip_digest()?;
            let manifest = match entry.recorded_manifest_digest().or_else(|| self.pins.get(mv).map(|p| p.manifest.clone())) {
                Some(d) => d,
                None if self.offline => {
                    return Err(fail(
                        Exit::NotFound,
                        format!("--offline: the manifest digest of {mv} (fetched by cue) is unknown, so it cannot be pinned: run once without --offline"),
                    ))
                }
                None => {
                    // An entry cue downloaded: the tag's manifest now must
                    // name the zip the cache holds.
                    let client = self.client()?;
                    let (d, zip_layer) = client.block_on(client.manifest_digests(mv))?;
                    self.check_download(mv, &d, None)?;
                    if zip_layer != zip {
                        return Err(mismatch(mv, "zip digest the registry's manifest names now", &zip, &zip_layer));
                    }
                    entry.record_manifest_digest(&d)?;
                    d
                }
            };
            out.push(Digests { manifest, zip });
        }
        Ok(out)
    }

    pub fn is_offline(&self) -> bool {
        self.offline
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
        self.dir.as_deref().map_err(|why| fail(Exit::General, why.clone()))
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
            ui::print_status(&format!("warning: cannot record which versions {} uses: {e:#}", root.display()));
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
            .map(|(base, v)| Entry::new(&self.dir.as_ref().expect("dir read above"), &ModuleVersion::new(&base, &v)))
            .collect();
        entries.sort_by(|a, b| a.mv.cmp(&b.mv));
        Ok(entries)
    }

    /// The registry client, with the routing in effect.
    pub fn client(&self) -> anyhow::Result<&Client> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        // The policy's keys are read before anything is fetched.
        self.policy()?;
        let client = Client::new(Routing::load()?)?;
        if self.installs.get() {
            client.prefetch_zips();
        }
        Ok(self.client.get_or_init(|| client))
    }

    /// Says that this command installs every version it resolves (get,
    /// tidy): reading a module file from a registry then also starts its
    /// zip's download, so resolution and download overlap.
    pub fn will_install(&self) {
        self.installs.set(true);
        if let Some(client) = self.client.get() {
            client.prefetch_zips();
        }
    }

    /// The signature policy of the config file.
    pub fn policy(&self) -> anyhow::Result<&Policy> {
        if let Some(policy) = self.policy.get() {
            return Ok(policy);
        }
        let policy = Policy::load()?;
        Ok(self.policy.get_or_init(|| policy))
    }

    /// Checks a version's signatures against the policy, before anything
    /// of it is written; the fingerprint of the key that signed it, None
    /// when no rule covers it (nothing is then asked of the registry). The
    /// core model opm carries is as trusted as opm itself.
    async fn check_signature(&self, client: &Client, mv: &ModuleVersion, manifest_digest: &str) -> anyhow::Result<Option<&PublicKey>> {
        if !self.must_be_signed(mv)? {
            return Ok(None);
        }
        let signatures = client.signatures(mv, manifest_digest).await?;
        self.judge(mv, manifest_digest, Some(&signatures))
    }

    /// Whether the policy covers a version.
    fn must_be_signed(&self, mv: &ModuleVersion) -> anyhow::Result<bool> {
        Ok(self.policy()?.keys_for(&mv.module).is_some() && !catalog::is_embedded(mv))
    }

    /// The policy's verdict on the signatures fetched with a version (None:
    /// none were asked for, as it needs none).
    fn judge(&self, mv: &ModuleVersion, manifest_digest: &str, signatures: Option<&[crate::trust::Signature]>) -> anyhow::Result<Option<&PublicKey>> {
        let Some(signatures) = signatures else { return Ok(None) };
        Ok(match self.policy()?.check(mv, manifest_digest, signatures)? {
            Verdict::Signed(key) => Some(key),
            Verdict::Exempt => None,
        })
    }

    /// Checks a complete entry against the signature policy now, asking its
    /// registry, and records the result; the key that signed it.
    async fn check_cached(&self, client: &Client, mv: &ModuleVersion) -> anyhow::Result<Option<&PublicKey>> {
        let entry = self.entry(mv)?;
        let zip = entry.zip_digest()?;
        let manifest = match entry.recorded_manifest_digest() {
            Some(d) => d,
            None => {
                let (d, zip_layer) = client.manifest_digests(mv).await?;
                if zip_layer != zip {
                    return Err(fail(
                        Exit::Untrusted,
                        format!("{mv}: the cached zip ({zip}) is not the one the registry's manifest names ({zip_layer}): run 'opm mod get --force {mv}'"),
                    ));
                }
                d
            }
        };
        let key = self.check_signature(client, mv, &manifest).await?;
        if let Some(key) = key {
            entry.record_manifest_digest(&manifest)?;
            entry.record_verified(&manifest, &key.fingerprint())?;
        }
        Ok(key)
    }

    /// `opm mod verify --signatures`: a cached version against the policy,
    /// checked again with its registry (offline: what is on record).
    pub fn signature_status(&self, mv: &ModuleVersion) -> anyhow::Result<SignatureStatus> {
        let Some(keys) = self.policy()?.keys_for(&mv.module).filter(|_| !catalog::is_embedded(mv)) else { return Ok(SignatureStatus::Exempt) };
        let entry = self.entry(mv)?;
        if !entry.is_complete() {
            return Ok(SignatureStatus::NotCached);
        }
        if self.offline {
            let signer = keys.iter().find(|k| entry.is_verified(&[k.fingerprint()]));
            return Ok(match signer {
                Some(k) => SignatureStatus::Signed(k.path.display().to_string()),
                None => SignatureStatus::Unchecked,
            });
        }
        let client = self.client()?;
        match client.block_on(self.check_cached(client, mv)) {
            Ok(Some(key)) => Ok(SignatureStatus::Signed(key.path.display().to_string())),
            Ok(None) => Ok(SignatureStatus::Exempt),
            Err(e) if crate::error::exit_of(&e) == Some(Exit::Untrusted) => Ok(SignatureStatus::Refused(format!("{e:#}"))),
            Err(e) => Err(e),
        }
    }

    /// Whether a complete entry still needs a signature check: a rule
    /// covers it and no check of its manifest by an accepted key is on
    /// record.
    fn needs_signature_check(&self, mv: &ModuleVersion) -> anyhow::Result<bool> {
        let Some(keys) = self.policy()?.keys_for(&mv.module).filter(|_| !catalog::is_embedded(mv)) else { return Ok(false) };
        let fingerprints: Vec<String> = keys.iter().map(|k| k.fingerprint()).collect();
        Ok(!self.entry(mv)?.is_verified(&fingerprints))
    }

    /// Checks cached versions (downloaded by cue, or before the policy
    /// existed) against the signature policy, and records the result.
    fn check_cached_signatures(&self, mvs: &[&ModuleVersion]) -> anyhow::Result<()> {
        if mvs.is_empty() {
            return Ok(());
        }
        if self.offline {
            let names = mvs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            return Err(fail(
                Exit::Untrusted,
                format!("--offline: {names}: covered by the verify policy, but its signatures were never checked; run once without --offline"),
            ));
        }
        let client = self.client()?;
        client.block_on(
            stream::iter(mvs)
                .map(|mv| async move { self.check_cached(client, mv).await.map(drop) })
                .buffer_unordered(PARALLEL)
                .try_collect::<()>(),
        )
    }

    /// Makes every version complete in the cache: complete entries are
    /// checked against their recorded digest, the core model opm carries is
    /// installed, the others are downloaded (at most PARALLEL at once, with
    /// progress). With `refresh`, every version is downloaded again; an old
    /// copy is replaced only once its new one has arrived.
    pub fn ensure(&self, mvs: &[ModuleVersion], refresh: bool) -> anyhow::Result<()> {
        let mut missing: Vec<&ModuleVersion> = Vec::new();
        let mut unchecked: Vec<&ModuleVersion> = Vec::new();
        for mv in mvs {
            let entry = self.entry(mv)?;
            if refresh {
                missing.push(mv);
            } else if entry.is_complete() {
                entry.verify()?;
                if self.needs_signature_check(mv)? {
                    unchecked.push(mv);
                }
                if let Some(pin) = self.pins.get(mv) {
                    let zip = entry.zip_digest()?;
                    if zip != pin.zip {
                        return Err(fail(
                            Exit::Integrity,
                            format!(
                                "{mv}: the CUE cache holds a zip with digest {zip}, but cue.mod/opm.sum records {}: the cached copy is not \
                                 the pinned one; run 'opm mod get --force {mv}' to fetch it again (checked against the pin)",
                                pin.zip
                            ),
                        ));
                    }
                }
            } else if catalog::is_embedded(mv) {
                self.install_embedded()?;
            } else if !missing.contains(&mv) {
                missing.push(mv);
            }
        }
        self.check_cached_signatures(&unchecked)?;
        if missing.is_empty() {
            return Ok(());
        }
        if self.offline {
            let names = missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            return Err(fail(
                Exit::NotFound,
                format!("--offline, and the CUE cache ({}) lacks {names}: run once without --offline", self.dir()?.display()),
            ));
        }
        let client = self.client()?;
        // Bytes: the total grows as each version's manifest says its size.
        let bar = ui::progress_bytes(0, &format!("downloading {}", crate::error::count(missing.len(), "module version")));
        client.block_on(client.preauthorize(&missing));
        client.block_on(
            stream::iter(missing)
                .map(|mv| {
                    let bar = &bar;
                    async move {
                        let entry = self.entry(mv)?;
                        let download = client.module(mv, bar, self.must_be_signed(mv)?).await?;
                        self.check_download(mv, &download.manifest_digest, Some(&download.zip))?;

                        let signed_by = self.judge(mv, &download.manifest_digest, download.signatures.as_deref())?.map(PublicKey::fingerprint);
                        // Unzipping and writing block: off the thread that
                        // drives the other downloads.
                        tokio::task::spawn_blocking(move || {
                            if refresh {
                                entry.remove()?;
                            }
                            entry.install(&download.zip, &ModuleFileCheck::Digest(download.module_file_digest), &download.manifest_digest)?;
                            match signed_by {
                                Some(key) => entry.record_verified(&download.manifest_digest, &key),
                                None => Ok(()),
                            }
                        })
                        .await??;
                        anyhow::Ok(())
                    }
                })
                .buffer_unordered(PARALLEL)
                .try_collect::<()>(),
        )?;
        bar.finish_and_clear();
        Ok(())
    }

    /// The module files of many versions, in order: from the cache's `.mod`
    /// files, the missing ones fetched in parallel and cached.
    pub fn module_files(&self, mvs: &[ModuleVersion]) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(mvs.len());
        let mut missing = Vec::new();
        for (i, mv) in mvs.iter().enumerate() {
            if catalog::is_embedded(mv) {
                self.install_embedded()?;
            }
            match std::fs::read(self.entry(mv)?.mod_file()) {
                Ok(data) => out.push(Some(data)),
                Err(_) => {
                    out.push(None);
                    missing.push(i);
                }
            }
        }
        if !missing.is_empty() {
            if self.offline {
                let names: Vec<String> = missing.iter().map(|&i| mvs[i].to_string()).collect();
                return Err(fail(Exit::NotFound, format!("--offline, and the CUE cache lacks the module files of {}", names.join(", "))));
            }
            let client = self.client()?;
            client.block_on(client.preauthorize(&missing.iter().map(|&i| &mvs[i]).collect::<Vec<_>>()));
            let fetched: Vec<(usize, (String, Vec<u8>, Option<String>))> = client.block_on(
                stream::iter(missing)
                    .map(|i| async move {
                        let (manifest, data, signatures) = client.module_file(&mvs[i], self.must_be_signed(&mvs[i])?).await?;
                        Self::check_artifact(&mvs[i], &data)?;
                        let signed_by = self.judge(&mvs[i], &manifest, signatures.as_deref())?.map(PublicKey::fingerprint);
                        anyhow::Ok((i, (manifest, data, signed_by)))
                    })
                    .buffer_unordered(PARALLEL)
                    .try_collect(),
            )?;
            for (i, (manifest, data, signed_by)) in fetched {
                self.check_download(&mvs[i], &manifest, None)?;
                let entry = self.entry(&mvs[i])?;
                entry.write_module_file(&data)?;
                entry.record_manifest_digest(&manifest)?;
                if let Some(key) = signed_by {
                    entry.record_verified(&manifest, &key)?;
                }
                out[i] = Some(data);
            }
        }
        Ok(out.into_iter().map(|d| d.expect("every module file read or fetched")).collect())
    }

    /// The versions registries hold of each module path (see
    /// [`Client::versions`]), listed in parallel.
    pub fn versions(&self, paths: &[String]) -> anyhow::Result<Vec<Vec<String>>> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        if self.offline {
            return paths.iter().map(|p| self.cached_versions(p)).collect();
        }
        let client = self.client()?;
        client.block_on(stream::iter(paths).map(|p| client.versions(p)).buffered(PARALLEL).try_collect())
    }

    /// Like [`Cache::versions`], each path on its own: one registry that
    /// cannot be reached fails its own paths only.
    pub fn versions_each(&self, paths: &[String]) -> Vec<anyhow::Result<Vec<String>>> {
        if paths.is_empty() {
            return Vec::new();
        }
        if self.offline {
            return paths.iter().map(|p| self.cached_versions(p)).collect();
        }
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => {
                let why = format!("{e:#}");
                return paths.iter().map(|_| Err(fail(Exit::General, why.clone()))).collect();
            }
        };
        client.block_on(stream::iter(paths).map(|p| client.versions(p)).buffered(PARALLEL).collect())
    }

    /// Installs the core model opm carries unless the cache has it, exactly
    /// as a download of the published catalog would.
    pub fn install_embedded(&self) -> anyhow::Result<()> {
        let entry = self.entry(&catalog::module_version())?;
        if entry.is_complete() {
            return Ok(());
        }
        let (zip, module_file, manifest) = catalog::pack()?;
        self.check_download(entry.module_version(), &manifest, Some(&zip))?;
        entry.install(&zip, &ModuleFileCheck::Bytes(module_file), &manifest)
    }
}

/// One module version in the cache, in cue's layout:
/// `mod/download/<path>/@v/<version>.{mod,zip}` and
/// `mod/extract/<path>@<version>/`, paths case-escaped as Go does.
#[derive(Debug, Clone)]
pub struct Entry {
    mv: ModuleVersion,
    download: PathBuf,
    extract: PathBuf,
}

impl Entry {
    pub fn module_version(&self) -> &ModuleVersion {
        &self.mv
    }

    /// Bytes on disk: the extracted tree and the downloaded files.
    pub fn size(&self) -> u64 {
        fn du(p: &Path) -> u64 {
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() => std::fs::read_dir(p).into_iter().flatten().flatten().map(|e| du(&e.path())).sum(),
                Ok(m) => m.len(),
                Err(_) => 0,
            }
        }
        du(&self.extract) + ["mod", "zip", "ziphash"].iter().map(|s| du(&self.file(s))).sum::<u64>()
    }

    /// When the entry was last written (its module file, else its tree).
    pub fn modified(&self) -> u64 {
        let secs = |p: &Path| {
            std::fs::metadata(p).and_then(|m| m.modified()).ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs())
        };
        secs(&self.mod_file()).or_else(|| secs(&self.extract)).unwrap_or(0)
    }

    /// The extracted files that differ from the zip (its digest checked
    /// first, when recorded): None when the entry is sound.
    pub fn damage(&self) -> anyhow::Result<Option<String>> {
        if let Err(e) = self.verify() {
            return Ok(Some(format!("{e:#}")));
        }
        if !self.zip().is_file() {
            return Ok(None); // cue removes zips after extracting some modules; nothing to compare
        }
        let differing = cue::zip_differences(&self.mv.module, &self.mv.version, &self.zip(), &self.extract)?;
        Ok((!differing.is_empty()).then(|| format!("extracted files differ from the zip: {}", differing.join(", "))))
    }

    fn new(cache_dir: &Path, mv: &ModuleVersion) -> Entry {
        let (base, ver) = (escape(mv.base()), escape(&mv.version));
        let root = cache_dir.join("mod");
        Entry {
            mv: mv.clone(),
            download: root.join("download").join(&base).join("@v"),
            extract: root.join("extract").join(format!("{base}@{ver}")),
        }
    }

    fn file(&self, suffix: &str) -> PathBuf {
        self.download.join(format!("{}.{suffix}", escape(&self.mv.version)))
    }

    pub fn zip(&self) -> PathBuf {
        self.file("zip")
    }

    pub fn mod_file(&self) -> PathBuf {
        self.file("mod")
    }

    /// The extracted module, which CUE loads from.
    pub fn dir(&self) -> &Path {
        &self.extract
    }

    /// Whether CUE would use this entry: extracted (no `.partial` marker)
    /// with its module file present.
    pub fn is_complete(&self) -> bool {
        self.extract.is_dir() && !self.file("partial").exists() && self.mod_file().is_file()
    }

    /// The zip digest opm recorded when it installed this entry.
    fn digest_file(&self) -> PathBuf {
        self.file("ziphash")
    }

    /// The manifest digest opm recorded when it fetched this entry.
    fn manifest_digest_file(&self) -> PathBuf {
        self.file("manifesthash")
    }

    fn recorded_manifest_digest(&self) -> Option<String> {
        std::fs::read_to_string(self.manifest_digest_file()).ok().map(|s| s.trim().to_string())
    }

    fn record_manifest_digest(&self, digest: &str) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        write_cached(&self.manifest_digest_file(), digest.as_bytes())
    }

    /// opm's record of signature checks: `<manifest digest> <key fingerprint>` lines.
    fn verified_file(&self) -> PathBuf {
        self.file("verified")
    }

    /// Whether a check of the entry's recorded manifest by one of these
    /// keys is on record.
    pub fn is_verified(&self, fingerprints: &[String]) -> bool {
        let Some(manifest) = self.recorded_manifest_digest() else { return false };
        let records = std::fs::read_to_string(self.verified_file()).unwrap_or_default();
        records.lines().filter_map(|l| l.split_once(' ')).any(|(d, k)| d == manifest && fingerprints.iter().any(|f| f == k))
    }

    fn record_verified(&self, manifest_digest: &str, fingerprint: &str) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        let mut records = std::fs::read_to_string(self.verified_file()).unwrap_or_default();
        let line = format!("{manifest_digest} {fingerprint}");
        if !records.lines().any(|l| l == line) {
            records += &line;
            records.push('\n');
            write_cached(&self.verified_file(), records.as_bytes())?;
        }
        Ok(())
    }

    /// The digest of the entry's zip: recorded, else computed.
    pub fn zip_digest(&self) -> anyhow::Result<String> {
        if let Ok(d) = std::fs::read_to_string(self.digest_file()) {
            return Ok(d.trim().to_string());
        }
        Ok(registry::sha256(&fs::read(self.zip())?))
    }

    /// Checks the zip against the digest recorded at install time (entries
    /// that cue downloaded have none and are trusted as cue trusts them).
    pub fn verify(&self) -> anyhow::Result<()> {
        let Ok(recorded) = std::fs::read_to_string(self.digest_file()) else { return Ok(()) };
        let actual = std::fs::read(self.zip()).map(|zip| registry::sha256(&zip)).unwrap_or_default();
        if actual != recorded.trim() {
            let mv = &self.mv;
            return Err(fail(
                Exit::General,
                format!(
                    "the CUE cache entry of {mv} is corrupt (its zip does not match the recorded digest): run 'opm mod get --force {mv}' to download it again"
                ),
            ));
        }
        Ok(())
    }

    /// Removes the entry. The module file goes first, so the entry stops
    /// counting as complete at once; the extracted tree is then renamed to
    /// a `.tmp-` name (which cue also cleans up) and deleted.
    pub fn remove(&self) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        self.remove_locked()
    }

    fn remove_locked(&self) -> anyhow::Result<()> {
        // The extracted tree first: an entry is never extracted without its
        // module file, even if this is interrupted.
        if self.extract.exists() {
            remove_tree(&self.extract)?;
        }
        for suffix in ["mod", "ziphash", "manifesthash", "verified", "zip", "partial"] {
            match fs::remove_file(self.file(suffix)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    /// cue's per-version lock file (an exclusive flock), so that opm and
    /// cue never write the same version at once.
    fn lock(&self) -> anyhow::Result<fs::File> {
        fs::create_dir_all(&self.download)?;
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(self.file("lock"))?;
        file.file().lock().map_err(|e| fail(Exit::General, format!("cannot lock {}: {e}", self.file("lock").display())))?;
        self.sweep_temporaries();
        // Closing the file releases the lock.
        Ok(file)
    }

    /// Removes what interrupted writes of this version left behind: every
    /// writer of its files (and cue's extraction) holds the lock, so a
    /// temporary file of it seen under the lock belongs to no live run. (Unnamed `.tmp*` files that
    /// older opm versions wrote go once they are an hour old.)
    fn sweep_temporaries(&self) {
        let mine = format!(".{}.", self.mv.version);
        let Ok(dir) = std::fs::read_dir(&self.download) else { return };
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = (name.starts_with(&mine) && name.contains(files::TEMP_MARK))
                || (name.starts_with(".tmp")
                    && e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600)));
            if stale {
                let _ = std::fs::remove_file(e.path());
            }
        }
        // Extractions an interrupted run (of cue or opm) left: `<dir>.tmp-*`.
        let staging = format!("{}.tmp-", file_name(&self.extract));
        let Some(Ok(dir)) = self.extract.parent().map(std::fs::read_dir) else { return };
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(&staging) {
                set_write(&e.path(), true, true);
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Records a module file fetched for resolution, under the lock.
    fn write_module_file(&self, data: &[u8]) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        write_cached(&self.mod_file(), data)
    }

    /// Installs a module version from its zip and module file. Each file is
    /// written to a temporary name and renamed; the extracted tree is built
    /// beside its final place and renamed into it, so a reader never sees a
    /// partial entry and an interrupted install leaves nothing CUE would use.
    pub fn install(&self, zip: &[u8], module_file: &ModuleFileCheck, manifest_digest: &str) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        // Unpacked from its own temporary file and checked before anything
        // is in place: the zip's cue.mod/module.cue is the module file, and
        // it must be the one the manifest names.
        let parent = self.extract.parent().expect("extract dir has a parent");
        fs::create_dir_all(parent)?;
        fs::create_dir_all(&self.download)?;
        let zip_tmp = files::temp_beside(&self.zip(), zip)?;
        // cue removes leftovers named `<dir>.tmp-*` when it next extracts.
        let prefix = format!("{}.tmp-", file_name(&self.extract));
        let tmp = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(parent)
            .map_err(|e| fail(Exit::General, format!("cannot create a directory in {}: {e}", parent.display())))?;
        let staged = tmp.path().join("m");
        cue::unzip(&self.mv.module, &self.mv.version, zip_tmp.path(), &staged)?;
        let mv = &self.mv;
        let lie = |why: &str| fail(Exit::General, format!("{mv}: the registry's artifact is not the module it claims to be ({why}); nothing was written"));
        let inside = fs::read(staged.join("cue.mod/module.cue")).map_err(|_| lie("its zip has no cue.mod/module.cue"))?;
        let matches = match module_file {
            ModuleFileCheck::Bytes(b) => &inside == b,
            ModuleFileCheck::Digest(d) => &registry::sha256(&inside) == d,
        };
        if !matches {
            return Err(lie("its module file differs from the cue.mod/module.cue in its zip"));
        }
        Cache::check_artifact(mv, &inside)?;
        // The module file first, the extracted tree last: whatever an
        // interruption leaves, cue never sees a tree without its files.
        write_cached(&self.mod_file(), &inside)?;
        zip_tmp.persist(self.zip()).map_err(|e| fail(Exit::General, format!("cannot write {}: {}", self.zip().display(), e.error)))?;
        write_cached(&self.digest_file(), registry::sha256(zip).as_bytes())?;
        write_cached(&self.manifest_digest_file(), manifest_digest.as_bytes())?;
        if self.extract.is_dir() {
            if !self.file("partial").exists() {
                return Ok(());
            }
            // A tree cue left half-extracted: replaced by a whole one.
            remove_tree(&self.extract)?;
            fs::remove_file(self.file("partial"))?;
        }
        match fs::rename(&staged, &self.extract) {
            Ok(()) => {}
            // Another process installed it first: theirs is as good as ours.
            Err(_) if self.extract.is_dir() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        set_write(&self.extract, false, true);
        Ok(())
    }
}

/// Removes an extracted tree: renamed to a `.tmp-` name first (which cue
/// also cleans up), so it stops being an entry at once, then deleted.
fn remove_tree(extract: &Path) -> anyhow::Result<()> {
    let parent = extract.parent().expect("extract dir has a parent");
    let doomed = parent.join(format!("{}.tmp-removed-{}", file_name(extract), std::process::id()));
    // Moving a directory rewrites its `..`: it must be writable.
    set_write(extract, true, false);
    fs::rename(extract, &doomed)?;
    set_write(&doomed, true, true);
    fs::remove_dir_all(&doomed)?;
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The inverse of [`escape`].
fn unescape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut bang = false;
    for c in path.chars() {
        match (bang, c) {
            (false, '!') => bang = true,
            (true, c) => {
                out.push(c.to_ascii_uppercase());
                bang = false;
            }
            (false, c) => out.push(c),
        }
    }
    out
}

/// Go's module path escaping: each upper-case letter becomes `!` and its
/// lower-case form, so paths differing in case stay apart on any file system.
fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Adds or takes away write permission on `path` (and, with `deep`, on
/// everything below it), best effort: extracted modules are read-only, as
/// cue leaves them.
fn set_write(path: &Path, writable: bool, deep: bool) {
    use std::os::unix::fs::PermissionsExt;
    let set = |path: &Path| {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            let mode = meta.permissions().mode();
            let mode = if writable { mode | 0o200 } else { mode & !0o222 };
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
        }
    };
    // A directory must be writable before its entries can change.
    if writable {
        set(path);
    }
    if deep {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            let child = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                set_write(&child, writable, true);
            } else {
                set(&child);
            }
        }
    }
    if !writable {
        set(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        assert_eq!(escape("github.com/Acme/Mod"), "github.com/!acme/!mod");
        assert_eq!(unescape("github.com/!acme/!mod"), "github.com/Acme/Mod");
    }

    #[test]
    fn paths_follow_cues_layout() {
        let e = Entry::new(Path::new("/c"), &ModuleVersion::new("github.com/Acme/Mod", "v1.2.3"));
        assert_eq!(e.zip(), Path::new("/c/mod/download/github.com/!acme/!mod/@v/v1.2.3.zip"));
        assert_eq!(e.mod_file(), Path::new("/c/mod/download/github.com/!acme/!mod/@v/v1.2.3.mod"));
        assert_eq!(e.dir(), Path::new("/c/mod/extract/github.com/!acme/!mod@v1.2.3"));
    }
}
