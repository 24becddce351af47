//! The result cache: an evaluation (`mod vet`, `mod build`, `bundle
//! vet|build`) whose inputs are all unchanged answers with what it
//! answered before, without evaluating (CI runs the same vet on every push
//! of a monorepo).
//!
//! The key is a SHA-256 over every input of the evaluation: opm's binary
//! (its version, size, modification time and inode: CUE is linked into
//! it), the command and its flags, the current directory and the module's
//! root, every environment variable named `CUE_*` or `OPM_*`, the path and
//! bytes of every CUE file of the module and of everything under cue.mod
//! (module.cue and opm.sum included; every file of the module when one of
//! its CUE files embeds files), and the values files. Dependencies are in
//! it through opm.sum: an answer is kept only when opm.sum pins every
//! dependency. The directories local-module.cue replaces dependencies with
//! are hashed beside the answer and compared before it is given. A module
//! with links (files that may lie outside it) is always evaluated.
//!
//! An answer from here still makes the dependencies loadable as an
//! evaluation does (recorded, fetched when missing, checked warm against
//! opm.sum and the signature policy): only CUE's evaluation is skipped.
//!
//! Laid out as an OCI registry lays out tags and blobs, so that entries can
//! later travel as OCI artifacts unchanged:
//!
//! ```text
//! <opm cache>/results/keys/<key>          the answer's digest, sha256:<hex>
//! <opm cache>/results/blobs/sha256/<hex>  the answer, JSON
//! ```
//!
//! A blob whose bytes do not hash to its name is not believed (a miss).

use super::Workspace;
use crate::catalog;
use crate::context::{binary_identity, opm_cache_dir, RESULTS_DIR};
use crate::cue::Diagnostic;
use crate::error::{Failure, Kind};
use crate::files::{self, write_cached};
use crate::module::ModuleVersion;
use crate::registry;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Beyond this, the least recently used answers go.
const LIMIT: u64 = 256 << 20;
/// A file over this is not hashed: such a module is always evaluated.
const MAX_INPUT: u64 = 256 << 20;
/// What the cache shrinks to when it outgrows the limit.
const TRIM_TO: u64 = LIMIT / 4 * 3;

/// The inputs of one evaluation, hashed as they are added.
pub struct Inputs(Sha256);

impl Inputs {
    /// What every evaluation of `command` over the workspace's module
    /// reads, with its `flags`. None when the module holds something the
    /// key cannot (a link, a special file, a file too large): then it is
    /// always evaluated.
    pub fn of(ws: &Workspace, command: &str, flags: &impl Serialize) -> Option<Inputs> {
        let mut inputs = Inputs(Sha256::new());
        inputs.add(b"opm results v1");
        inputs.add(binary_identity()?.as_bytes());
        inputs.add(command.as_bytes());
        inputs.add(&serde_json::to_vec(flags).ok()?);
        inputs.add(files::current_dir().ok()?.as_os_str().as_encoded_bytes());
        inputs.add(ws.root.as_os_str().as_encoded_bytes());
        let mut env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("CUE_") || k.starts_with("OPM_")).collect();
        env.sort();
        for (k, v) in env {
            inputs.add(k.as_bytes());
            inputs.add(v.as_bytes());
        }
        inputs.module(&ws.root)?;
        Some(inputs)
    }

    /// A file the evaluation reads from outside the module (a values
    /// file): its path and bytes.
    pub fn file(mut self, path: &Path) -> Option<Inputs> {
        let data = files::read_regular(path, MAX_INPUT, "input").ok()??;
        self.add(path.as_os_str().as_encoded_bytes());
        self.add(&data);
        Some(self)
    }

    /// The module's CUE files and cue.mod, or all of its files when one
    /// CUE file embeds files (`@extern(embed)`).
    fn module(&mut self, root: &Path) -> Option<()> {
        let listed = files::module_files(root).ok()?;
        if listed.iter().any(|f| f.kind != files::Kind::File) {
            return None;
        }
        let read = |f: &files::ModuleFile| files::read_regular(&f.abs, MAX_INPUT, "input").ok().flatten();
        let mut others = Vec::new();
        let mut embeds = false;
        for f in &listed {
            if f.rel.ends_with(".cue") || f.rel.starts_with("cue.mod/") {
                let data = read(f)?;
                embeds |= f.rel.ends_with(".cue") && contains(&data, b"@extern(embed)");
                self.add(f.rel.as_bytes());
                self.add(&data);
            } else {
                others.push(f);
            }
        }
        if embeds {
            for f in others {
                self.add(f.rel.as_bytes());
                self.add(&read(f)?);
            }
        }
        Some(())
    }

    /// Adds one input, its length first, so that no two sequences of
    /// inputs hash alike.
    fn add(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    fn key(self) -> String {
        self.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What an evaluation answered: its result, or the CUE errors that made it
/// invalid (the exit code follows from which).
#[derive(Serialize, Deserialize)]
enum Outcome<T> {
    Ok(T),
    Invalid { message: String, diagnostics: Vec<Diagnostic> },
}

#[derive(Serialize, Deserialize)]
struct Answer<T> {
    /// The dependencies the evaluation loaded, `[path, version]`: made
    /// loadable again before an answer is given.
    versions: Vec<(String, String)>,
    /// The directories local-module.cue replaces dependencies with
    /// (relative to the module root) and the digest of their files when
    /// the answer was given: the answer holds only while they are the same.
    replacements: Vec<(String, String)>,
    outcome: Outcome<T>,
}

/// The digest of a replacement directory's files, hashed as a module's.
fn tree_digest(dir: &Path) -> Option<String> {
    let mut inputs = Inputs(Sha256::new());
    inputs.module(dir)?;
    Some(inputs.key())
}

/// Each directory replacement of the module file and its digest; None when
/// a replacement is not a directory or cannot be hashed.
fn replacements(root: &Path, mf: &crate::cue::ModuleFile) -> Option<Vec<(String, String)>> {
    let local = |p: &str| p.starts_with("./") || p.starts_with("../") || p.starts_with('/');
    mf.deps
        .iter()
        .filter(|d| !d.replace_with.is_empty())
        .map(|d| if local(&d.replace_with) { Some((d.replace_with.clone(), tree_digest(&root.join(&d.replace_with))?)) } else { None })
        .collect()
}

/// Answers from the result cache when `inputs` (None: the module cannot be
/// keyed, or `--no-cache`) were answered before; else makes the
/// dependencies loadable, runs `evaluate` and keeps its answer.
pub fn answer<T: Serialize + DeserializeOwned>(ws: &Workspace, inputs: Option<Inputs>, evaluate: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let kept = inputs.and_then(|i| Some((Store::open()?, i.key())));
    let same = |(dir, digest): &(String, String)| tree_digest(&ws.root.join(dir)).as_ref() == Some(digest);
    if let Some(answer) = kept.as_ref().and_then(|(store, key)| store.get::<T>(key)).filter(|a| a.replacements.iter().all(same)) {
        let versions: Vec<ModuleVersion> = answer.versions.into_iter().map(|(m, v)| ModuleVersion::of(m, v)).collect();
        ws.make_loadable(&versions)?;
        tracing::debug!("answered from the result cache");
        return match answer.outcome {
            Outcome::Ok(value) => Ok(value),
            Outcome::Invalid { message, diagnostics } => Err(Failure { kind: Kind::Invalid, message, diagnostics }.into()),
        };
    }
    let (mf, versions) = ws.loader_view()?;
    ws.make_loadable(&versions)?;
    // What the key cannot hold is read before the evaluation reads it.
    let outside = kept.as_ref().and_then(|_| replacements(&ws.root, &mf));
    let result = evaluate();
    let pinned = |mv: &ModuleVersion| catalog::is_embedded(mv) || ws.pins.as_ref().is_some_and(|p| p.contains_key(mv));
    let Some(((store, key), replacements)) = kept.zip(outside).filter(|_| versions.iter().all(pinned)) else {
        return result;
    };
    let outcome = match &result {
        Ok(value) => Outcome::Ok(value),
        Err(e) => match e.chain().find_map(|c| c.downcast_ref::<Failure>()).filter(|f| f.kind == Kind::Invalid) {
            Some(f) => Outcome::Invalid { message: f.message.clone(), diagnostics: f.diagnostics.clone() },
            // Failures that are not the module's (a registry, a file) are
            // not answers: they are met again.
            None => return result,
        },
    };
    let versions = versions.iter().map(|mv| (mv.module().to_string(), mv.version().to_string())).collect();
    // The cache is an optimisation: failing to keep an answer never fails
    // the command.
    if let Err(e) = store.put(&key, &Answer { versions, replacements, outcome }) {
        tracing::warn!("cannot keep the result in {}: {e:#}", store.dir.display());
    }
    result
}

/// The result cache's directory.
struct Store {
    dir: PathBuf,
}

impl Store {
    fn open() -> Option<Store> {
        Some(Store { dir: opm_cache_dir()?.join(RESULTS_DIR) })
    }

    fn key_path(&self, key: &str) -> PathBuf {
        self.dir.join("keys").join(key)
    }

    fn blob_path(&self, hex: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(hex)
    }

    /// The answer kept under `key`, if its blob is whole; its use is
    /// recorded (the key's modification time) for trimming and gc.
    fn get<T: DeserializeOwned>(&self, key: &str) -> Option<Answer<T>> {
        let path = self.key_path(key);
        let digest = files::read_regular(&path, 128, "result key").ok()??;
        let digest = String::from_utf8(digest).ok()?;
        let blob = files::read_regular(&self.blob_path(digest.strip_prefix("sha256:")?), LIMIT, "result").ok()??;
        if registry::sha256(&blob) != digest {
            tracing::warn!("a kept result does not match its digest: evaluating again");
            return None;
        }
        let answer = serde_json::from_slice(&blob).ok()?;
        if let Ok(file) = std::fs::File::options().append(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(answer)
    }

    fn put<T: Serialize>(&self, key: &str, answer: &Answer<&T>) -> anyhow::Result<()> {
        let blob = serde_json::to_vec(answer)?;
        let digest = registry::sha256(&blob);
        let hex_digest = &digest["sha256:".len()..];
        for dir in ["keys", "blobs/sha256"] {
            fs_err::create_dir_all(self.dir.join(dir))?;
        }
        // The blob before the key that names it: a reader never follows a
        // key to nothing.
        write_cached(&self.blob_path(hex_digest), &blob)?;
        write_cached(&self.key_path(key), digest.as_bytes())?;
        // Sizing up the cache reads every blob's size: done on one store
        // in sixteen (by the digest's first digit), not on each.
        if hex_digest.starts_with('0') && self.size() > LIMIT {
            self.remove(|_| true, Some(TRIM_TO), false)?;
        }
        Ok(())
    }

    /// Every kept answer, least recently used first.
    fn kept(&self) -> Vec<Kept> {
        let now = SystemTime::now();
        let mut kept: Vec<Kept> = std::fs::read_dir(self.dir.join("keys"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let modified = e.metadata().ok()?.modified().ok()?;
                let blob = std::fs::read_to_string(e.path()).ok()?.strip_prefix("sha256:")?.to_string();
                Some(Kept { key: e.path(), age: now.duration_since(modified).unwrap_or_default(), blob })
            })
            .collect();
        kept.sort_by_key(|k| std::cmp::Reverse(k.age));
        kept
    }

    /// Every blob and its size.
    fn blobs(&self) -> BTreeMap<String, u64> {
        std::fs::read_dir(self.dir.join("blobs/sha256"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_string_lossy().into_owned(), e.metadata().ok()?.len())))
            .collect()
    }

    fn size(&self) -> u64 {
        self.blobs().values().sum()
    }

    /// Removes answers, least recently used first, that `goes` picks by
    /// their age, while the blobs still named take more than `to` bytes
    /// (None: all it picks); then every blob no answer names. With
    /// `dry_run`, only counts. The answers removed and the bytes freed.
    fn remove(&self, goes: impl Fn(Duration) -> bool, to: Option<u64>, dry_run: bool) -> anyhow::Result<(usize, u64)> {
        let blobs = self.blobs();
        let kept = self.kept();
        let mut users: BTreeMap<&str, usize> = BTreeMap::new();
        for k in &kept {
            *users.entry(k.blob.as_str()).or_default() += 1;
        }
        let mut size: u64 = users.keys().filter_map(|b| blobs.get(*b)).sum();
        let mut removed = 0;
        for k in &kept {
            if !goes(k.age) || to.is_some_and(|to| size <= to) {
                break;
            }
            if !dry_run {
                fs_err::remove_file(&k.key)?;
            }
            removed += 1;
            let n = users.get_mut(k.blob.as_str()).expect("counted above");
            *n -= 1;
            if *n == 0 {
                size -= blobs.get(&k.blob).copied().unwrap_or(0);
            }
        }
        let mut freed = 0;
        for (blob, len) in &blobs {
            if users.get(blob.as_str()).is_none_or(|n| *n == 0) {
                if !dry_run {
                    fs_err::remove_file(self.dir.join("blobs/sha256").join(blob))?;
                }
                freed += len;
            }
        }
        Ok((removed, freed))
    }
}

/// One kept answer: its key file, how long since it was last used, the
/// blob it names.
struct Kept {
    key: PathBuf,
    age: Duration,
    blob: String,
}

/// Removes the answers not used for `older_than` (and any blob no answer
/// names); with `dry_run`, only counts them. How many answers went, and
/// the bytes freed.
pub fn gc(older_than: Duration, dry_run: bool) -> anyhow::Result<(usize, u64)> {
    match Store::open() {
        Some(store) => store.remove(|age| age >= older_than, None, dry_run),
        None => Ok((0, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(n: usize) -> Answer<&'static &'static str> {
        Answer { versions: vec![("example.com/a@v0".into(), format!("v0.{n}.0"))], replacements: vec![], outcome: Outcome::Ok(&"ok") }
    }

    fn age(store: &Store, key: &str, seconds: u64) {
        let file = std::fs::File::options().append(true).open(store.key_path(key)).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(seconds)).unwrap();
    }

    #[test]
    fn a_blob_that_does_not_match_its_digest_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store { dir: dir.path().to_path_buf() };
        store.put("k", &answer(1)).unwrap();
        assert!(store.get::<String>("k").is_some());
        let (name, _) = store.blobs().into_iter().next().unwrap();
        std::fs::write(store.blob_path(&name), br#"{"versions":[],"replacements":[],"outcome":{"Ok":"forged"}}"#).unwrap();
        assert!(store.get::<String>("k").is_none());
    }

    #[test]
    fn trimming_removes_the_least_recently_used_and_gc_what_is_old() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store { dir: dir.path().to_path_buf() };
        for n in 0..4 {
            store.put(&format!("k{n}"), &answer(n)).unwrap();
            age(&store, &format!("k{n}"), 1000 - n as u64 * 100);
        }
        // k0 is the oldest; a use makes it the newest.
        assert!(store.get::<String>("k0").is_some());
        let one = store.size() / 4;
        let (removed, freed) = store.remove(|_| true, Some(one * 2), false).unwrap();
        assert_eq!((removed, freed), (2, one * 2));
        let left: Vec<String> = store.kept().iter().map(|k| k.key.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(left, ["k3", "k0"], "the least recently used went first");
        age(&store, "k3", 5000);
        assert_eq!(store.remove(|age| age >= Duration::from_secs(3600), None, true).unwrap(), (1, one), "a dry run counts");
        assert_eq!(store.kept().len(), 2, "and removes nothing");
        assert_eq!(store.remove(|age| age >= Duration::from_secs(3600), None, false).unwrap(), (1, one));
        assert!(store.get::<String>("k0").is_some() && store.get::<String>("k3").is_none());
    }
}
