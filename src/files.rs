//! The user's files on disk: finding a module's root, walking its files as
//! cue does, writing files so that a reader never sees half of one.
//! Every error names the path and what was being done (fs-err).

use crate::error::{self, fail};
use crate::module::MODULE_FILE;
use fs_err as fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The root of the module containing `dir`: the nearest directory, `dir`
/// itself or a parent, with a `cue.mod`, as cue finds it; its
/// `cue.mod/module.cue` must exist.
pub fn find_root(dir: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::path::absolute(dir)
        .map_err(|e| fail(error::Kind::Other, format!("directory {} cannot be read (was it deleted?): {e}: cd to a directory that exists", dir.display())))?;
    if !abs.is_dir() {
        return Err(fail(error::Kind::Other, format!("{} is not a directory", dir.display())));
    }
    let root = abs.ancestors().find(|d| std::fs::symlink_metadata(d.join("cue.mod")).is_ok()).ok_or_else(|| {
        fail(error::Kind::Other, format!("no CUE module in {} or any parent (no {MODULE_FILE}): run 'opm mod init MODULE_PATH' to create one", dir.display()))
    })?;
    if !root.join(MODULE_FILE).is_file() {
        return Err(fail(error::Kind::Other, format!("{} has a cue.mod without module.cue: run 'opm mod init MODULE_PATH' there", root.display())));
    }
    Ok(root.to_path_buf())
}

/// Whether `dir` lies inside a module's cue.mod directory, where cue runs
/// no module command; cue.mod/pkg, usr and gen hold packages and are
/// outside in this sense (cue's modpkgload.InsideCueMod).
pub fn inside_cue_mod(dir: &Path) -> bool {
    let parts: Vec<_> = dir.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    match parts.iter().rposition(|p| p == "cue.mod") {
        Some(i) => !matches!(parts.get(i + 1).map(String::as_str), Some("pkg" | "usr" | "gen")),
        None => false,
    }
}

/// The current directory, or an error that says it is gone.
pub fn current_dir() -> anyhow::Result<PathBuf> {
    std::env::current_dir()
        .map_err(|e| fail(error::Kind::Other, format!("the current directory cannot be read (was it deleted?): {e}: cd to a directory that exists")))
}

/// What a directory entry of a module is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    /// A symbolic link: CUE module zips never hold one.
    Link,
    /// A socket, device or pipe.
    Other,
}

/// One file of a module, as cue's module zip sees it.
#[derive(Debug, Clone)]
pub struct ModuleFile {
    /// Relative to the module root, slash separated.
    pub rel: String,
    pub abs: PathBuf,
    pub kind: Kind,
}

impl ModuleFile {
    /// Whether cue reads this file as a CUE source of the module itself:
    /// a `.cue` file outside cue.mod with no hidden (`.`, `_`) element in
    /// its path (cue's modimports.AllModuleFiles).
    pub fn is_cue_source(&self) -> bool {
        let mut parts = self.rel.split('/');
        self.rel.ends_with(".cue") && self.kind != Kind::Other && !self.rel.starts_with("cue.mod/") && parts.all(|p| !p.starts_with('.') && !p.starts_with('_'))
    }
}

/// Every file of the module at `root` in the order and with the rules of
/// cue's module zip (modzip.CreateFromDir): directories depth first in name
/// order; version-control directories, nested modules (directories with a
/// `cue.mod`) and `cue.mod/vendor/` left out. Links and special files are
/// listed with their kind; the zip leaves them out.
pub fn module_files(root: &Path) -> anyhow::Result<Vec<ModuleFile>> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<ModuleFile>) -> anyhow::Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            if rel.starts_with("cue.mod/vendor/") {
                continue;
            }
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                let vcs = matches!(name.as_str(), ".bzr" | ".git" | ".hg" | ".svn");
                let nested = fs::symlink_metadata(path.join("cue.mod")).is_ok();
                if !vcs && !nested {
                    walk(&path, &rel, out)?;
                }
                continue;
            }
            let kind = match () {
                _ if kind.is_file() => Kind::File,
                _ if kind.is_symlink() => Kind::Link,
                _ => Kind::Other,
            };
            out.push(ModuleFile { rel, abs: path, kind });
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, "", &mut out)?;
    Ok(out)
}

/// The CUE sources of the module at `root` (see [`ModuleFile::is_cue_source`]).
pub fn cue_sources(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(module_files(root)?.into_iter().filter(ModuleFile::is_cue_source).map(|f| f.abs).collect())
}

/// The files of the module at `root` that its zip holds, in zip order.
/// A link is refused: cue would leave it out silently, publishing a module
/// that differs from the one vetted.
pub fn pack_list(root: &Path) -> anyhow::Result<Vec<crate::cue::PackFile>> {
    let mut out = Vec::new();
    for f in module_files(root)? {
        match f.kind {
            Kind::File => out.push(crate::cue::PackFile { path: f.rel, abs: f.abs }),
            Kind::Link => {
                return Err(fail(
                    error::Kind::Other,
                    format!("{} is a symbolic link: CUE modules cannot contain links; replace it with the file it points to", f.rel),
                ))
            }
            Kind::Other => {}
        }
    }
    Ok(out)
}

/// A file opm reads that another program or a person wrote (a config,
/// opm.sum, a key): its bytes, at most `cap`. None when it does not
/// exist. A FIFO or a device (which would block, or never end) and a file
/// over `cap` are refused with `what` and the path: nothing is read past
/// the cap.
pub fn read_regular(path: &Path, cap: u64, what: &str) -> anyhow::Result<Option<Vec<u8>>> {
    use std::io::Read as _;
    let cannot = |why: String| fail(error::Kind::Other, format!("cannot read {what} {}: {why}", path.display()));
    // O_NONBLOCK: opening a FIFO with no writer must not wait.
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc_o_nonblock()).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(cannot(e.to_string())),
    };
    let meta = file.metadata().map_err(|e| cannot(e.to_string()))?;
    if !meta.is_file() {
        return Err(cannot("it is not a regular file (a FIFO, a device or a directory)".into()));
    }
    if meta.len() > cap {
        return Err(cannot(format!("it is {} KiB, more than the {} KiB opm reads", meta.len() >> 10, cap >> 10)));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut data).map_err(|e| cannot(e.to_string()))?;
    if data.len() as u64 > cap {
        return Err(cannot(format!("it grew past the {} KiB opm reads", cap >> 10)));
    }
    Ok(Some(data))
}

/// `O_NONBLOCK` on Linux (and the BSDs' value elsewhere), without a libc crate.
const fn libc_o_nonblock() -> i32 {
    if cfg!(target_os = "linux") {
        0o4000
    } else {
        0x0004
    }
}

/// Writes `data` to `path` through a temporary file in the same directory
/// and a rename, so readers see the old or the new content, never a part.
/// The data reach the disk before the rename: this is for the user's files.
pub fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    write_replacing(path, data, true)
}

/// `write_atomic` for files that can be fetched again (cache entries,
/// checked against their digests): renamed into place without waiting for
/// the disk, as cue writes its cache.
pub fn write_cached(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    write_replacing(path, data, false)
}

/// The largest module file opm reads. CUE's own limit is 16 MiB, but CUE
/// needs minutes for a few MiB of dependencies; a module with a thousand
/// dependencies has a module file of about 40 KB.
pub const MAX_MODULE_FILE: u64 = 1 << 20;

/// Refuses a module file over [`MAX_MODULE_FILE`], naming it.
pub fn check_module_file_size(what: &str, len: u64) -> anyhow::Result<()> {
    if len > MAX_MODULE_FILE {
        return Err(fail(
            error::Kind::Other,
            format!(
                "{what} is {:.1} MiB: opm reads module files of at most {} MiB (one with a thousand dependencies is about 40 KB)",
                len as f64 / (1 << 20) as f64,
                MAX_MODULE_FILE >> 20
            ),
        ));
    }
    Ok(())
}

/// What the name of every temporary file opm writes contains: it is
/// `.<final name>.tmp-XXXXXX`, so that whoever owns the final name can tell
/// its leftovers.
pub const TEMP_MARK: &str = ".tmp-";

/// A temporary file beside `path` holding `data`, named after it and with
/// the mode `path` has (or the usual 0644), to be persisted over it.
pub fn temp_beside(path: &Path, data: &[u8]) -> anyhow::Result<tempfile::NamedTempFile> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let failed = |e: std::io::Error| fail(error::Kind::Other, format!("cannot write {}: {e}", path.display()));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}{TEMP_MARK}")).tempfile_in(dir).map_err(failed)?;
    // Keep the mode of the file we replace; a new file gets the usual 0644
    // rather than the temp file's 0600.
    let mode = std::fs::metadata(path).map(|m| m.permissions()).unwrap_or_else(|_| default_permissions());
    tmp.as_file().set_permissions(mode).map_err(failed)?;
    tmp.write_all(data).map_err(failed)?;
    Ok(tmp)
}

fn write_replacing(path: &Path, data: &[u8], durable: bool) -> anyhow::Result<()> {
    let failed = |e: std::io::Error| fail(error::Kind::Other, format!("cannot write {}: {e}", path.display()));
    // Interrupted, it leaves the old file and no temporary one beside it.
    let _held = crate::cue::interrupt::hold();
    let tmp = temp_beside(path, data)?;
    if durable {
        tmp.as_file().sync_all().map_err(failed)?;
    }
    tmp.persist(path).map_err(|e| failed(e.error))?;
    Ok(())
}

/// `path` as `cue` shows it to a user in `cwd`: relative, starting with `.`.
pub fn display_path(cwd: &Path, path: &Path) -> String {
    let cwd: Vec<_> = cwd.components().collect();
    let target: Vec<_> = path.components().collect();
    let common = cwd.iter().zip(&target).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return path.display().to_string();
    }
    let mut rel = PathBuf::new();
    for _ in common..cwd.len() {
        rel.push("..");
    }
    for c in &target[common..] {
        rel.push(c);
    }
    let rel = rel.display().to_string();
    if rel.is_empty() {
        ".".to_string()
    } else if rel.starts_with('.') {
        rel
    } else {
        format!("./{rel}")
    }
}

fn default_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_cue_mod_as_cue_sees_it() {
        assert!(inside_cue_mod(Path::new("/m/cue.mod")));
        assert!(inside_cue_mod(Path::new("/m/cue.mod/other")));
        assert!(!inside_cue_mod(Path::new("/m/cue.mod/gen/k8s.io")));
        assert!(!inside_cue_mod(Path::new("/m/cue.mod/pkg")));
        assert!(!inside_cue_mod(Path::new("/m/app")));
    }

    #[test]
    fn the_walk_follows_cues_zip_rules() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "cue.mod/module.cue",
            "cue.mod/vendor/x.cue",
            "cue.mod/gen/g.cue",
            "a.cue",
            "a/x.cue",
            "_hidden/h.cue",
            ".git/config",
            ".dot/d.cue",
            "nested/cue.mod/module.cue",
            "nested/n.cue",
            "README.md",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        std::os::unix::fs::symlink("a.cue", root.join("link.cue")).unwrap();
        let files = module_files(root).unwrap();
        let rel: Vec<_> = files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rel, [".dot/d.cue", "README.md", "_hidden/h.cue", "a/x.cue", "a.cue", "cue.mod/gen/g.cue", "cue.mod/module.cue", "link.cue"]);
        assert_eq!(files.last().unwrap().kind, Kind::Link);
        let sources: Vec<_> = files.iter().filter(|f| f.is_cue_source()).map(|f| f.rel.as_str()).collect();
        assert_eq!(sources, ["a/x.cue", "a.cue", "link.cue"]);
    }
}
