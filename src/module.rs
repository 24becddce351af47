//! The module on disk: finding its root and writing its files safely.

use crate::error::{fail, Exit};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Relative path of the module file inside a module root.
pub const MODULE_FILE: &str = "cue.mod/module.cue";

/// The root of the module containing `dir`: the nearest directory, `dir`
/// itself or a parent, with a `cue.mod/module.cue`, as cue finds it.
pub fn find_root(dir: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::path::absolute(dir)?;
    if !abs.is_dir() {
        return Err(fail(
            Exit::General,
            format!("{} is not a directory", dir.display()),
        ));
    }
    abs.ancestors()
        .find(|d| d.join(MODULE_FILE).is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            fail(
                Exit::General,
                format!(
                    "no CUE module in {} or any parent (no {MODULE_FILE}): run 'opm mod init MODULE_PATH' to create one",
                    dir.display()
                ),
            )
        })
}

/// Writes `data` to `path` through a temporary file in the same directory
/// and a rename, so readers see the old or the new content, never a part.
/// The data reach the disk before the rename: this is for the user's files.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_replacing(path, data, true)
}

/// `write_atomic` for files that can be fetched again (cache entries,
/// checked against their digests): renamed into place without waiting for
/// the disk, as cue writes its cache.
pub fn write_cached(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_replacing(path, data, false)
}

fn write_replacing(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    // Keep the mode of the file we replace; a new file gets the usual 0644
    // rather than the temp file's 0600.
    let mode = fs::metadata(path)
        .map(|m| m.permissions())
        .unwrap_or_else(|_| default_permissions());
    tmp.as_file().set_permissions(mode)?;
    tmp.write_all(data)?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
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

#[cfg(unix)]
fn default_permissions() -> fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    fs::Permissions::from_mode(0o644)
}

#[cfg(not(unix))]
fn default_permissions() -> fs::Permissions {
    fs::metadata(".")
        .map(|m| m.permissions())
        .expect("current directory is readable")
}
