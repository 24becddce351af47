//! `opm cache`: what the CUE cache holds, whether it is sound, and
//! removing what no project uses. Every removal takes cue's lock of that
//! version and happens under the usage record's lock, so it is safe while
//! cue or other opm processes run.

pub use crate::cache::usage::now;
use crate::cache::{usage, Cache, Entry};
use crate::context::Context;
use crate::error::{fail, Kind};
use crate::module::ModuleVersion;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The command's cache: these commands never touch the network.
fn open(ctx: &Context) -> anyhow::Result<Cache> {
    let cache = Cache::new(ctx);
    cache.dir()?;
    Ok(cache)
}

pub fn dir(ctx: &Context) -> anyhow::Result<PathBuf> {
    Ok(open(ctx)?.dir()?.to_path_buf())
}

#[derive(Debug, Serialize)]
pub struct Listed {
    pub module: String,
    pub version: String,
    pub bytes: u64,
    /// Unix seconds: the last use opm recorded, else the last write.
    pub last_used: u64,
    /// The projects whose last resolution used it (and that still exist).
    pub projects: Vec<PathBuf>,
}

fn describe(entry: &Entry, record: Option<&usage::Record>) -> Listed {
    let mv = entry.module_version();
    let recorded = record.and_then(|r| r.last_used(mv));
    Listed {
        module: mv.module().to_string(),
        version: mv.version().to_string(),
        bytes: entry.size(),
        last_used: recorded.unwrap_or(0).max(entry.modified()),
        projects: users(record, mv, None),
    }
}

/// The projects other than `except` that use `mv` by `record` (none
/// without a record): while there are any, neither gc nor tidy removes it.
pub(super) fn users(record: Option<&usage::Record>, mv: &ModuleVersion, except: Option<&Path>) -> Vec<PathBuf> {
    record.map(|r| r.users(mv, except).into_iter().map(PathBuf::from).collect()).unwrap_or_default()
}

/// Removes `entry` unless `users` (see [`users`]) keep it; with `dry_run`
/// only says whether it would go. Whether it goes. gc and tidy remove
/// versions through here, under the usage record's lock.
pub(super) fn evict(entry: &Entry, users: &[PathBuf], dry_run: bool) -> anyhow::Result<bool> {
    if !users.is_empty() {
        return Ok(false);
    }
    if !dry_run {
        entry.remove()?;
    }
    Ok(true)
}

pub fn list(ctx: &Context) -> anyhow::Result<Vec<Listed>> {
    let cache = open(ctx)?;
    let locked = usage::lock(cache.dir()?)?;
    let record = locked.as_ref().map(|l| &l.record);
    Ok(cache.entries()?.iter().map(|e| describe(e, record)).collect())
}

#[derive(Debug, Serialize)]
pub struct Damaged {
    pub module: String,
    pub version: String,
    pub problem: String,
}

/// Every entry through its trust chain, as far as the cache holds it.
pub fn verify(ctx: &Context) -> anyhow::Result<(usize, Vec<Damaged>)> {
    let cache = open(ctx)?;
    let entries = cache.entries()?;
    let mut damaged = Vec::new();
    for e in &entries {
        if let Some(problem) = cache.audit(e.module_version())? {
            let mv = e.module_version();
            damaged.push(Damaged { module: mv.module().to_string(), version: mv.version().to_string(), problem });
        }
    }
    Ok((entries.len(), damaged))
}

pub struct GcOptions {
    /// Keep what was used more recently than this many seconds ago.
    pub older_than: u64,
    pub dry_run: bool,
}

/// Removes the entries no recorded project uses and that were not used
/// for `older_than`.
pub fn gc(ctx: &Context, opts: &GcOptions) -> anyhow::Result<Vec<Listed>> {
    let cache = open(ctx)?;
    let locked = usage::lock(cache.dir()?)?;
    let Some(locked) = locked else {
        return Err(fail(Kind::Other, "opm has no state directory (no HOME): without a record of who uses what, gc removes nothing"));
    };
    // What interrupted installs and removals left (no entry lists them).
    if !opts.dry_run {
        for e in cache.leftovers()? {
            e.collect_leftovers()?;
        }
    }
    let now = usage::now();
    let mut removed = Vec::new();
    for e in cache.entries()? {
        let listed = describe(&e, Some(&locked.record));
        if now.saturating_sub(listed.last_used) < opts.older_than {
            continue;
        }
        if evict(&e, &listed.projects, opts.dry_run)? {
            removed.push(listed);
        }
    }
    Ok(removed)
}

/// Removes every module version from the cache (the core model opm
/// carries comes back whenever a module needs it) and what opm computed
/// from them.
pub fn clean(ctx: &Context) -> anyhow::Result<Vec<ModuleVersion>> {
    let cache = open(ctx)?;
    let _locked = usage::lock(cache.dir()?)?;
    let mut removed = Vec::new();
    for e in cache.entries()? {
        e.remove()?;
        removed.push(e.module_version().clone());
    }
    // And what opm computed from them: the result cache, parsed module files.
    if let Some(dir) = crate::context::opm_cache_dir() {
        for what in [crate::context::RESULTS_DIR, crate::context::PARSES_DIR] {
            if dir.join(what).exists() {
                fs_err::remove_dir_all(dir.join(what))?;
            }
        }
    }
    Ok(removed)
}
