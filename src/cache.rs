//! The CUE cache: the directory the `cue` CLI uses, shared with it.

use std::env;
use std::path::PathBuf;

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
