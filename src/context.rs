//! What one command runs with, resolved once: built in cli/ from the
//! flags, the environment and the config file, then handed down to every
//! ops function and the cache (cargo's `GlobalContext`, ripgrep's
//! arguments resolved once). The routing, the signature policy and the
//! registry client are read on first need, once: a command whose modules
//! are all cached never reads the routing, the keys or the credentials.

use crate::cluster::{kubeconfig::Selection, Cluster};
use crate::config::Routing;
use crate::registry::{Client, Limits, Progress};
use crate::trust::Policy;
use std::cell::OnceCell;
use std::path::PathBuf;
use std::rc::Rc;

/// Cheap to clone: every clone shares the same routing, policy and client.
#[derive(Clone)]
pub struct Context(Rc<Inner>);

struct Inner {
    offline: bool,
    /// The CUE cache directory, or why there is none (an error only once
    /// the cache is used, as cue reports it).
    cache_dir: Result<PathBuf, String>,
    limits: Limits,
    routing: OnceCell<Routing>,
    policy: OnceCell<Policy>,
    client: OnceCell<Client>,
    /// Which cluster (--kubeconfig, --context, -n), and its client.
    selection: OnceCell<Selection>,
    cluster: OnceCell<Cluster>,
    /// Shows a transfer (the top's progress bars); None: nothing shown.
    show: Option<Show>,
}

/// Makes the [`Progress`] of a transfer, given what it does ("downloading
/// 3 module versions") and whether it counts bytes or items; the one who
/// built the Context renders it.
pub type Show = Box<dyn Fn(&str, Unit) -> Progress>;

/// What a transfer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Items,
}

impl Context {
    /// `offline` never touches the network; `routing`, when given (a
    /// command line's `--from`), replaces the environment's.
    pub fn new(offline: bool, limits: Limits, routing: Option<Routing>, show: Option<Show>) -> Context {
        Context(Rc::new(Inner {
            offline,
            cache_dir: cue_cache_dir(),
            limits,
            routing: routing.map(OnceCell::from).unwrap_or_default(),
            policy: OnceCell::new(),
            client: OnceCell::new(),
            selection: OnceCell::new(),
            cluster: OnceCell::new(),
            show,
        }))
    }

    /// The progress of a transfer of `what`, shown as the command's maker
    /// chose (call `done` at its end).
    pub fn progress(&self, what: &str, unit: Unit) -> Progress {
        self.0.show.as_ref().map_or_else(Progress::none, |show| show(what, unit))
    }

    pub fn offline(&self) -> bool {
        self.0.offline
    }

    pub fn cache_dir(&self) -> &Result<PathBuf, String> {
        &self.0.cache_dir
    }

    /// The routing in effect: CUE_REGISTRY, else the config file, else
    /// cue's default (or what the command line gave).
    pub fn routing(&self) -> anyhow::Result<&Routing> {
        if let Some(routing) = self.0.routing.get() {
            return Ok(routing);
        }
        let routing = Routing::load()?;
        Ok(self.0.routing.get_or_init(|| routing))
    }

    /// The signature policy of the config file, every key read.
    pub fn policy(&self) -> anyhow::Result<&Policy> {
        if let Some(policy) = self.0.policy.get() {
            return Ok(policy);
        }
        let policy = Policy::load()?;
        Ok(self.0.policy.get_or_init(|| policy))
    }

    /// The command's registry client, over the routing in effect.
    pub fn client(&self) -> anyhow::Result<&Client> {
        if let Some(client) = self.0.client.get() {
            return Ok(client);
        }
        let client = self.connect(self.routing()?.clone())?;
        Ok(self.0.client.get_or_init(|| client))
    }

    /// Chooses the cluster the command works on (its flags); set once,
    /// before the first [`Context::cluster`].
    pub fn select_cluster(&self, selection: Selection) {
        let _ = self.0.selection.set(selection);
    }

    /// The namespace of the command's cluster: -n, else the kubeconfig
    /// context's, else "default"; read without credentials (no exec plugin
    /// runs), so that it is known before anything is trusted or sent.
    pub fn cluster_namespace(&self) -> anyhow::Result<String> {
        let selection = self.0.selection.get().cloned().unwrap_or_default();
        Ok(crate::cluster::kubeconfig::namespace(&selection)?)
    }

    /// The command's cluster client: the kubeconfig read (exec plugins
    /// run, within the command's budget) on first need; nothing is sent.
    pub fn cluster(&self) -> anyhow::Result<&Cluster> {
        if let Some(cluster) = self.0.cluster.get() {
            return Ok(cluster);
        }
        let selection = self.0.selection.get().cloned().unwrap_or_default();
        let target = crate::cluster::kubeconfig::load(&selection, self.0.limits.deadline)?;
        let cluster = Cluster::open(target, self.0.limits.deadline, self.0.limits.budget)?;
        Ok(self.0.cluster.get_or_init(|| cluster))
    }

    /// A client over another routing (a mirror's target), with this
    /// command's limits.
    pub fn connect(&self, routing: Routing) -> anyhow::Result<Client> {
        Client::new(routing, self.0.limits)
    }
}

/// `$CUE_CACHE_DIR`, else the user cache directory + `/cue`, as cue computes
/// it (Go's `os.UserCacheDir`), or why there is none, in cue's words.
pub fn cue_cache_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("CUE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
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

/// opm's own cache directory (answers it can compute again: the result
/// cache, parsed module files): `$OPM_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/opm`, else `~/.cache/opm`; None without either.
pub fn opm_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("OPM_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").filter(|d| d.is_absolute()).map(|d| d.join("opm")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/opm")))
}

/// The subdirectories of [`opm_cache_dir`]: the result cache of vet and
/// build (ops/results.rs) and CUE's remembered parses of module files
/// (go-shim/memo.go). `opm cache clean` removes both.
pub const RESULTS_DIR: &str = "results";
pub const PARSES_DIR: &str = "modfiles";

/// Which opm binary this is, as a digest of its version and the device,
/// inode, size and modification time of its file: what one binary
/// computed with the CUE linked into it is not believed by another. None
/// when the binary cannot be found.
pub fn binary_identity() -> Option<&'static str> {
    use std::os::unix::fs::MetadataExt as _;
    static IDENTITY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    IDENTITY
        .get_or_init(|| {
            let meta = std::fs::metadata(std::env::current_exe().ok()?).ok()?;
            let numbers = [meta.dev(), meta.ino(), meta.len(), meta.mtime() as u64, meta.mtime_nsec() as u64];
            let mut id = env!("CARGO_PKG_VERSION").as_bytes().to_vec();
            id.extend(numbers.iter().flat_map(|n| n.to_le_bytes()));
            Some(crate::registry::sha256(&id))
        })
        .as_deref()
}
