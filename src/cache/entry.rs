//! One module version in the CUE cache, in cue's layout, and every write
//! to it: installs, removals, the evidence kept beside it, all under cue's
//! per-version lock.

use super::chain::{Depth, Gap};
use crate::cue;
use crate::error::{fail, Kind};
use crate::files::{self, write_cached};
use crate::module::{escape, ModuleVersion};
use crate::registry::{self, ModuleManifest};
use crate::trust::Signature;
use fs_err as fs;
use std::path::{Path, PathBuf};

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
        du(&self.extract) + ["mod", "zip", "manifest", "sig"].iter().map(|s| du(&self.file(s))).sum::<u64>()
    }

    /// When the entry was last written (its module file, else its tree).
    pub fn modified(&self) -> u64 {
        let secs =
            |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs());
        secs(&self.mod_file()).or_else(|| secs(&self.extract)).unwrap_or(0)
    }

    pub(super) fn new(cache_dir: &Path, mv: &ModuleVersion) -> Entry {
        let (base, ver) = (escape(mv.base()), escape(mv.version()));
        let root = cache_dir.join("mod");
        Entry { mv: mv.clone(), download: root.join("download").join(&base).join("@v"), extract: root.join("extract").join(format!("{base}@{ver}")) }
    }

    fn file(&self, suffix: &str) -> PathBuf {
        self.download.join(format!("{}.{suffix}", escape(self.mv.version())))
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

    /// The manifest's bytes as they arrived from the registry (cue ignores
    /// the file): the link between a signature or a pin and the zip.
    fn manifest_file(&self) -> PathBuf {
        self.file("manifest")
    }

    /// The signatures fetched for that manifest (cosign payloads and
    /// signature bytes), checked again on every use.
    fn signatures_file(&self) -> PathBuf {
        self.file("sig")
    }

    /// The manifest kept beside the entry; None when there is none (an
    /// entry cue downloaded). A kept file that is no manifest proves
    /// nothing: as if there were none.
    pub(super) fn kept_manifest(&self) -> Option<ModuleManifest> {
        let bytes = read_capped(&self.manifest_file(), registry::MAX_MANIFEST)?;
        ModuleManifest::parse(bytes).ok()
    }

    /// The signatures kept beside the entry (none: an empty list).
    pub(super) fn kept_signatures(&self) -> Vec<Signature> {
        read_capped(&self.signatures_file(), 1 << 20).and_then(|b| crate::trust::decode_signatures(&b)).unwrap_or_default()
    }

    /// Keeps a manifest fetched for this entry, and the signatures fetched
    /// with it (when asked for), as the evidence later checks walk.
    pub(super) fn keep_evidence(&self, manifest: &ModuleManifest, signatures: Option<&[Signature]>) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        self.keep_evidence_locked(manifest, signatures)
    }

    fn keep_evidence_locked(&self, manifest: &ModuleManifest, signatures: Option<&[Signature]>) -> anyhow::Result<()> {
        write_cached(&self.manifest_file(), &manifest.bytes)?;
        if let Some(signatures) = signatures {
            write_cached(&self.signatures_file(), &crate::trust::encode_signatures(signatures))?;
        }
        Ok(())
    }

    /// The cached files against what `manifest` names: the zip's bytes and
    /// the module file's (the extracted tree against the zip, and the
    /// module file against the version's path, at `Depth::Full`).
    pub(super) fn check_against(&self, manifest: &ModuleManifest, depth: Depth) -> Result<(), Gap> {
        let zip = self.zip_digest()?;
        if zip != manifest.zip.0 {
            return Err(Gap::Broken(format!("its zip is {zip}, its manifest ({}) names {}", manifest.digest, manifest.zip.0)));
        }
        let module_file = read_capped(&self.mod_file(), files::MAX_MODULE_FILE).ok_or_else(|| Gap::Broken("its module file is missing".into()))?;
        if registry::sha256(&module_file) != manifest.module_file.0 {
            return Err(Gap::Broken(format!("its module file is not the one its manifest ({}) names", manifest.digest)));
        }
        if depth == Depth::Full {
            super::check_artifact(&self.mv, &module_file).map_err(|e| Gap::Broken(format!("{e:#}")))?;
            self.check_tree()?;
        }
        Ok(())
    }

    /// The digest of the zip's bytes, hashed now.
    pub(super) fn zip_digest(&self) -> Result<String, Gap> {
        let zip = std::fs::read(self.zip()).map_err(|_| Gap::Broken("its zip is missing".into()))?;
        Ok(registry::sha256(&zip))
    }

    /// The extracted files against the zip.
    pub(super) fn check_tree(&self) -> Result<(), Gap> {
        let differing = cue::zip_differences(self.mv.module(), self.mv.version(), &self.zip(), &self.extract).map_err(|e| Gap::Broken(e.message))?;
        if differing.is_empty() {
            return Ok(());
        }
        Err(Gap::Broken(format!("extracted files differ from the zip: {}", differing.join(", "))))
    }

    /// Removes the entry: the extracted tree first (renamed to a `.tmp-`
    /// name, which cue also cleans up, then deleted), so that the entry
    /// stops counting as complete at once, then its files.
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
        // (`ziphash`, `manifesthash` and `verified`: what older opm versions kept.)
        for suffix in ["mod", "manifest", "sig", "ziphash", "manifesthash", "verified", "zip", "partial"] {
            match fs::remove_file(self.file(suffix)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether an interrupted install or removal left parts of this
    /// version: a zip without a complete tree, or a `.tmp-` tree beside it.
    /// (A module file alone was fetched for resolution: no leftover.)
    pub fn has_leftovers(&self) -> bool {
        let staging = format!("{}.tmp-", file_name(&self.extract));
        let staged = self
            .extract
            .parent()
            .and_then(|p| std::fs::read_dir(p).ok())
            .is_some_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(&staging))));
        // cue downloads a zip, lets go of the lock, then takes it again to
        // extract: a zip without a tree is a leftover only once it is old.
        let old = std::fs::metadata(self.zip()).and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600));
        staged || (old && !self.is_complete())
    }

    /// Removes the leftovers of an interrupted install or removal, under
    /// the version's lock (a live install holds it, so nothing in use is
    /// taken); a complete entry stays.
    pub fn collect_leftovers(&self) -> anyhow::Result<()> {
        let _lock = self.lock()?; // sweeps the `.tmp-` trees and files
        if self.has_leftovers() && !self.is_complete() && self.zip().exists() {
            self.remove_locked()?;
        }
        Ok(())
    }

    /// cue's per-version lock file (an exclusive flock), so that opm and
    /// cue never write the same version at once.
    fn lock(&self) -> anyhow::Result<fs::File> {
        fs::create_dir_all(&self.download)?;
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(self.file("lock"))?;
        file.file().lock().map_err(|e| fail(Kind::Other, format!("cannot lock {}: {e}", self.file("lock").display())))?;
        self.sweep_temporaries();
        // Closing the file releases the lock.
        Ok(file)
    }

    /// Removes what interrupted writes of this version left behind: every
    /// writer of its files (and cue's extraction) holds the lock, so a
    /// temporary file of it seen under the lock belongs to no live run. (Unnamed `.tmp*` files that
    /// older opm versions wrote go once they are an hour old.)
    fn sweep_temporaries(&self) {
        let mine = format!(".{}.", self.mv.version());
        let Ok(dir) = std::fs::read_dir(&self.download) else { return };
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = (name.starts_with(&mine) && name.contains(files::TEMP_MARK))
                || (name.starts_with(".tmp") && e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600)));
            if stale {
                let _ = std::fs::remove_file(e.path());
            }
        }
        // Extractions an interrupted run (of cue or opm) left: `<dir>.tmp-*`.
        let staging = format!("{}.tmp-", file_name(&self.extract));
        let Some(Ok(dir)) = self.extract.parent().map(std::fs::read_dir) else { return };
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(&staging) {
                set_write(&e.path(), Write::Allow, Reach::Tree);
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Records a module file fetched for resolution, with the manifest
    /// and signatures fetched with it, under the lock.
    pub(super) fn write_module_file(&self, data: &[u8], manifest: &ModuleManifest, signatures: Option<&[Signature]>) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        write_cached(&self.mod_file(), data)?;
        self.keep_evidence_locked(manifest, signatures)
    }

    /// Installs a module version from its zip and module file. Each file is
    /// written to a temporary name and renamed; the extracted tree is built
    /// beside its final place and renamed into it, so a reader never sees a
    /// partial entry and an interrupted install leaves nothing CUE would use.
    /// The manifest and the signatures fetched with it are kept beside it.
    pub(super) fn install(&self, zip: &[u8], manifest: &ModuleManifest, signatures: Option<&[Signature]>) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        // Unpacked from its own temporary file and checked before anything
        // is in place: the zip's cue.mod/module.cue is the module file, and
        // it must be the one the manifest names.
        let parent = self.extract.parent().expect("extract dir has a parent");
        fs::create_dir_all(parent)?;
        fs::create_dir_all(&self.download)?;
        let zip_tmp = files::temp_beside(&self.zip(), zip)?;
        // Staged beside its final place and renamed within the same
        // directory (a move between directories costs ext4 far more); cue
        // removes leftovers named `<dir>.tmp-*` when it next extracts.
        let prefix = format!("{}.tmp-", file_name(&self.extract));
        let tmp = tempfile::Builder::new()
            .prefix(&prefix)
            // As CUE's unzip makes directories (the umask applies).
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .tempdir_in(parent)
            .map_err(|e| fail(Kind::Other, format!("cannot create a directory in {}: {e}", parent.display())))?;
        let staged = tmp.path();
        cue::unzip(self.mv.module(), self.mv.version(), zip_tmp.path(), staged)?;
        let mv = &self.mv;
        let lie = |why: &str| fail(Kind::Other, format!("{mv}: the registry's artifact is not the module it claims to be ({why}); nothing was written"));
        // The zip must be the one the manifest names, whichever way it came.
        if registry::sha256(zip) != manifest.zip.0 {
            return Err(lie("its zip is not the one its manifest names"));
        }
        let inside = fs::read(staged.join("cue.mod/module.cue")).map_err(|_| lie("its zip has no cue.mod/module.cue"))?;
        if registry::sha256(&inside) != manifest.module_file.0 {
            return Err(lie("its module file differs from the cue.mod/module.cue in its zip"));
        }
        super::check_artifact(mv, &inside)?;
        // The module file first, the extracted tree last: whatever an
        // interruption leaves, cue never sees a tree without its files.
        write_cached(&self.mod_file(), &inside)?;
        zip_tmp.persist(self.zip()).map_err(|e| fail(Kind::Other, format!("cannot write {}: {}", self.zip().display(), e.error)))?;
        self.keep_evidence_locked(manifest, signatures)?;
        // A tree already there belongs to no complete entry (cue's
        // half-extracted one, or one without its module file): nobody
        // compared it with this zip, so ours replaces it (under the lock).
        if self.extract.is_dir() {
            remove_tree(&self.extract)?;
        }
        match fs::remove_file(self.file("partial")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        fs::rename(staged, &self.extract)?;
        // The tree is the entry now: nothing left to clean up.
        let _ = tmp.keep();
        set_write(&self.extract, Write::Deny, Reach::Tree);
        Ok(())
    }
}

/// A kept file's bytes; None when it is missing, not a regular file or
/// larger than `cap`: evidence that cannot be read proves nothing.
fn read_capped(path: &Path, cap: u64) -> Option<Vec<u8>> {
    files::read_regular(path, cap, "a cache file").ok().flatten()
}

/// Removes an extracted tree: renamed to a `.tmp-` name first (which cue
/// also cleans up), so it stops being an entry at once, then deleted.
fn remove_tree(extract: &Path) -> anyhow::Result<()> {
    let parent = extract.parent().expect("extract dir has a parent");
    let doomed = parent.join(format!("{}.tmp-removed-{}", file_name(extract), std::process::id()));
    // Moving a directory rewrites its `..`: it must be writable.
    set_write(extract, Write::Allow, Reach::Top);
    fs::rename(extract, &doomed)?;
    set_write(&doomed, Write::Allow, Reach::Tree);
    fs::remove_dir_all(&doomed)?;
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Write permission, given or taken away.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    Allow,
    Deny,
}

/// How far a permission change reaches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// `path` alone.
    Top,
    /// `path` and everything below it.
    Tree,
}

/// Gives or takes away write permission on `path` (and, with
/// [`Reach::Tree`], on everything below it), best effort: extracted
/// modules are read-only, as cue leaves them.
fn set_write(path: &Path, write: Write, reach: Reach) {
    let writable = write == Write::Allow;
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
    if reach == Reach::Tree {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            let child = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                set_write(&child, write, Reach::Tree);
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
    fn paths_follow_cues_layout() {
        let e = Entry::new(Path::new("/c"), &ModuleVersion::new("github.com/Acme/Mod", "v1.2.3"));
        assert_eq!(e.zip(), Path::new("/c/mod/download/github.com/!acme/!mod/@v/v1.2.3.zip"));
        assert_eq!(e.mod_file(), Path::new("/c/mod/download/github.com/!acme/!mod/@v/v1.2.3.mod"));
        assert_eq!(e.dir(), Path::new("/c/mod/extract/github.com/!acme/!mod@v1.2.3"));
    }
}
