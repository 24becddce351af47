//! Which projects use which module versions of a cache. The CUE cache is
//! shared by every project on the machine (and by cue): opm removes a
//! version only when no other project it knows of still uses it. Every
//! opm command that makes a project's dependencies loadable records them
//! here first, under a lock, so that a concurrent tidy or gc sees them.
//!
//! One JSON file per cache in opm's state directory (`$OPM_STATE_DIR`,
//! else `$XDG_STATE_HOME/opm`, else `~/.local/state/opm`), rewritten
//! atomically under `<file>.lock`.

use crate::error::{fail, Kind};
use crate::files::write_atomic;
use crate::module::ModuleVersion;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// opm's state directory.
pub fn state_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("OPM_STATE_DIR")
        .or_else(|| var("XDG_STATE_HOME").filter(|d| d.is_absolute()).map(|d| d.join("opm")))
        .or_else(|| var("HOME").map(|h| h.join(".local/state/opm")))
}

/// One project's use of the cache.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Use {
    /// Unix seconds of the last command that resolved its dependencies.
    pub last_used: u64,
    /// `path@vN vX.Y.Z`, sorted.
    pub modules: BTreeSet<String>,
}

/// The record of one cache: project root -> its use.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Record {
    /// The cache this record is about.
    pub cache: PathBuf,
    pub projects: BTreeMap<PathBuf, Use>,
}

pub fn key(mv: &ModuleVersion) -> String {
    format!("{} {}", mv.module(), mv.version())
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Record {
    /// The projects other than `except` that use `mv` and still exist.
    pub fn users(&self, mv: &ModuleVersion, except: Option<&Path>) -> Vec<&Path> {
        let k = key(mv);
        self.projects
            .iter()
            .filter(|(root, u)| Some(root.as_path()) != except && u.modules.contains(&k) && root.join("cue.mod").exists())
            .map(|(root, _)| root.as_path())
            .collect()
    }

    /// When `mv` was last used by any project (recorded), if ever.
    pub fn last_used(&self, mv: &ModuleVersion) -> Option<u64> {
        let k = key(mv);
        self.projects.values().filter(|u| u.modules.contains(&k)).map(|u| u.last_used).max()
    }
}

/// The usage record of a cache, held under its lock until dropped.
pub struct Locked {
    path: PathBuf,
    _lock: fs_err::File,
    pub record: Record,
}

/// Opens the record of `cache_dir` under its lock. None when opm has no
/// state directory (no HOME): then nothing is recorded, and nothing is
/// removed on the strength of a record.
pub fn lock(cache_dir: &Path) -> anyhow::Result<Option<Locked>> {
    let Some(dir) = state_dir() else { return Ok(None) };
    fs_err::create_dir_all(&dir)?;
    let id = crate::registry::sha256(cache_dir.as_os_str().as_encoded_bytes());
    let path = dir.join(format!("usage-{}.json", &id[7..23]));
    let lock_path = path.with_extension("json.lock");
    let lock = fs_err::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path)?;
    lock.file().lock().map_err(|e| fail(Kind::Other, format!("cannot lock {}: {e}", lock_path.display())))?;
    let record = match std::fs::read(&path) {
        // A record that cannot be read fails closed: nothing is removed on
        // its strength, and it is not overwritten.
        Ok(data) => serde_json::from_slice(&data)
            .map_err(|e| fail(Kind::Other, format!("the usage record {} is damaged ({e}): delete it, then run opm in each project once", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Record::default(),
        Err(e) => return Err(fail(Kind::Other, format!("cannot read {}: {e}", path.display()))),
    };
    let record = Record { cache: cache_dir.to_path_buf(), ..record };
    Ok(Some(Locked { path, _lock: lock, record }))
}

impl Locked {
    /// Writes the record back, forgetting projects that no longer exist.
    pub fn save(&mut self) -> anyhow::Result<()> {
        self.record.projects.retain(|root, _| root.join("cue.mod").exists());
        write_atomic(&self.path, &serde_json::to_vec_pretty(&self.record)?)
    }
}

/// The same use recorded within this many seconds is not written again:
/// a vet or build run a hundred times an hour rewrites nothing.
const FRESH: u64 = 3600;

/// Records that the project at `root` uses `mvs` now.
pub fn record(cache_dir: &Path, root: &Path, mvs: &[ModuleVersion]) -> anyhow::Result<()> {
    let Some(mut locked) = lock(cache_dir)? else { return Ok(()) };
    let used = Use { last_used: now(), modules: mvs.iter().map(key).collect() };
    let recorded = locked.record.projects.get(root);
    if recorded.is_some_and(|r| r.modules == used.modules && used.last_used.saturating_sub(r.last_used) < FRESH) {
        return Ok(());
    }
    locked.record.projects.insert(root.to_path_buf(), used);
    locked.save()
}
