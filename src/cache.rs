//! The CUE cache: the directory the `cue` CLI uses, shared with it.

use crate::{cue, module};
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// `$CUE_CACHE_DIR`, else the user cache directory + `/cue`, as cue computes
/// it (Go's `os.UserCacheDir`).
pub fn dir() -> PathBuf {
    if let Some(dir) = env::var_os("CUE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    user_cache_dir().join("cue")
}

fn user_cache_dir() -> PathBuf {
    let home = || PathBuf::from(env::var_os("HOME").unwrap_or_default());
    if cfg!(target_os = "macos") {
        return home().join("Library/Caches");
    }
    match env::var_os("XDG_CACHE_HOME").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => home().join(".cache"),
    }
}

/// One module version in the cache, in cue's layout:
/// `mod/download/<path>/@v/<version>.{mod,zip}` and
/// `mod/extract/<path>@<version>/`, paths case-escaped as Go does.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The module path with its major version, e.g. `example.com/x@v0`.
    pub module: String,
    pub version: String,
    download: PathBuf,
    extract: PathBuf,
}

impl Entry {
    pub fn new(cache_dir: &Path, module: &str, version: &str) -> Entry {
        let (base, _) = crate::resolve::split_major(module);
        let (base, ver) = (escape(base), escape(version));
        let root = cache_dir.join("mod");
        Entry {
            module: module.to_string(),
            version: version.to_string(),
            download: root.join("download").join(&base).join("@v"),
            extract: root.join("extract").join(format!("{base}@{ver}")),
        }
    }

    fn file(&self, suffix: &str) -> PathBuf {
        self.download.join(format!("{}.{suffix}", escape(&self.version)))
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

    /// Checks the zip against the digest recorded at install time (entries
    /// that cue downloaded have none and are trusted as cue trusts them).
    pub fn verify(&self) -> anyhow::Result<()> {
        let Ok(recorded) = fs::read_to_string(self.digest_file()) else { return Ok(()) };
        let actual = fs::read(self.zip()).map(|zip| crate::registry::sha256(&zip)).unwrap_or_default();
        if actual != recorded.trim() {
            let (base, _) = crate::resolve::split_major(&self.module);
            return Err(crate::error::fail(
                crate::error::Exit::General,
                format!(
                    "the CUE cache entry of {base}@{} is corrupt (its zip does not match the recorded digest): run 'opm mod get --force {base}@{}' to download it again",
                    self.version, self.version
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
        for suffix in ["mod", "ziphash", "zip"] {
            match fs::remove_file(self.file(suffix)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        if self.extract.exists() {
            let parent = self.extract.parent().expect("extract dir has a parent");
            let name = format!("{}.tmp-removed-{}", self.extract.file_name().unwrap().to_string_lossy(), std::process::id());
            let doomed = parent.join(name);
            // Moving a directory rewrites its `..`: it must be writable.
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&self.extract)?.permissions().mode() | 0o200;
            fs::set_permissions(&self.extract, fs::Permissions::from_mode(mode))?;
            fs::rename(&self.extract, &doomed)?;
            make_writable(&doomed);
            fs::remove_dir_all(&doomed)?;
        }
        Ok(())
    }

    /// cue's per-version lock file (an exclusive flock), so that opm and
    /// cue never extract the same version at once.
    fn lock(&self) -> anyhow::Result<Lock> {
        use std::os::fd::AsRawFd;
        fs::create_dir_all(&self.download)?;
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(self.file("lock"))?;
        // SAFETY: flock on a descriptor we own; it is released on close.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(Lock(file))
    }

    /// Installs a module version from its zip and module file. Each file is
    /// written to a temporary name and renamed; the extracted tree is built
    /// beside its final place and renamed into it, so a reader never sees a
    /// partial entry and an interrupted install leaves nothing CUE would use.
    pub fn install(&self, zip: &[u8], module_file: &[u8]) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        module::write_cached(&self.mod_file(), module_file)?;
        module::write_cached(&self.zip(), zip)?;
        module::write_cached(&self.digest_file(), crate::registry::sha256(zip).as_bytes())?;
        if self.extract.is_dir() {
            return Ok(());
        }
        let parent = self.extract.parent().expect("extract dir has a parent");
        fs::create_dir_all(parent)?;
        // cue removes leftovers named `<dir>.tmp-*` when it next extracts.
        let prefix = format!("{}.tmp-", self.extract.file_name().unwrap().to_string_lossy());
        let tmp = tempfile::Builder::new().prefix(&prefix).tempdir_in(parent)?;
        let staged = tmp.path().join("m");
        cue::unzip(&self.module, &self.version, &self.zip(), &staged)?;
        match fs::rename(&staged, &self.extract) {
            Ok(()) => {}
            // Another process installed it first: theirs is as good as ours.
            Err(_) if self.extract.is_dir() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        make_read_only(&self.extract);
        Ok(())
    }
}

/// Holds a cache lock until dropped (closing the file releases it).
struct Lock(#[allow(dead_code)] fs::File);

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

/// Extracted modules are read-only, as cue leaves them (best effort).
fn make_read_only(dir: &Path) {
    set_write(dir, false)
}

fn make_writable(dir: &Path) {
    set_write(dir, true)
}

fn set_write(dir: &Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    let set = |path: &Path| {
        if let Ok(meta) = fs::symlink_metadata(path) {
            let mode = meta.permissions().mode();
            let mode = if writable { mode | 0o200 } else { mode & !0o222 };
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
        }
    };
    // A directory must be writable before its entries can change.
    if writable {
        set(dir);
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                set_write(&path, writable);
            } else {
                set(&path);
            }
        }
    }
    if !writable {
        set(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_cues_layout() {
        let e = Entry::new(Path::new("/c"), "github.com/Acme/Mod@v1", "v1.2.3");
        assert_eq!(e.zip(), Path::new("/c/mod/download/github.com/!acme/!mod/@v/v1.2.3.zip"));
        assert_eq!(e.mod_file(), Path::new("/c/mod/download/github.com/!acme/!mod/@v/v1.2.3.mod"));
        assert_eq!(e.dir(), Path::new("/c/mod/extract/github.com/!acme/!mod@v1.2.3"));
    }
}
