//! The module a command works on and the cache it fetches through,
//! resolved once per command.

use super::{sums, CacheSource};
use crate::cache::{Cache, Digests, Pins};
use crate::context::Context;
use crate::cue::{self, ModuleFile};
use crate::error::{fail, Failure, Kind};
use crate::files::{self, write_atomic};
use crate::module::{split_major, ModuleVersion, MODULE_FILE};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Workspace {
    /// What the command runs with.
    pub ctx: Context,
    /// The module root: the directory holding cue.mod.
    pub root: PathBuf,
    pub cache: Cache,
    /// cue.mod/opm.sum, when the module has one.
    pub pins: Option<Pins>,
}

/// cue.mod/module.cue as the main module's resolution reads it.
pub struct MainFile {
    pub path: PathBuf,
    pub text: String,
    /// Parsed leniently, as cue reads the main module's file.
    pub module: ModuleFile,
}

impl MainFile {
    pub fn roots(&self) -> Vec<ModuleVersion> {
        crate::resolve::Requirements::of(&self.module).roots().to_vec()
    }
}

/// module.cue and cue.mod/opm.sum as they were, to put back.
pub struct Saved {
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl Saved {
    /// Writes every file back as it was (removes one that was not there).
    pub fn restore(&self) -> anyhow::Result<()> {
        for (path, data) in &self.files {
            match data {
                Some(data) => write_atomic(path, data)?,
                None if path.exists() => fs_err::remove_file(path)?,
                None => {}
            }
        }
        Ok(())
    }
}

impl Workspace {
    /// The files `commit` writes, as they are now.
    pub fn save(&self) -> Saved {
        let files = [self.module_file_path(), self.root.join(sums::SUMS_FILE)];
        Saved {
            files: files
                .into_iter()
                .map(|p| {
                    let data = std::fs::read(&p).ok();
                    (p, data)
                })
                .collect(),
        }
    }

    /// The module containing `dir`, with the command's cache, checking
    /// every fetch against the module's sums file.
    pub fn open(ctx: &Context, dir: &Path) -> anyhow::Result<Workspace> {
        let root = files::find_root(dir)?;
        for name in ["cue.mod/module.cue", "cue.mod/local-module.cue"] {
            let path = root.join(name);
            if let Ok(meta) = std::fs::metadata(&path) {
                files::check_module_file_size(&path.display().to_string(), meta.len())?;
            }
        }
        let pins = sums::read(&root.join(sums::SUMS_FILE))?;
        let cache = Cache::new(ctx).with_pins(pins.clone().unwrap_or_default());
        Ok(Workspace { ctx: ctx.clone(), root, cache, pins })
    }

    /// The module containing `dir`, for a command that loads its packages
    /// (vet, build): refused inside cue.mod, in cue's words.
    pub fn open_to_load(ctx: &Context, dir: &Path) -> anyhow::Result<Workspace> {
        if files::inside_cue_mod(&files::current_dir()?.join(dir)) {
            return Err(fail(Kind::Other, "cannot load packages inside the cue.mod directory"));
        }
        Workspace::open(ctx, dir)
    }

    /// The module of the current directory, for a command that changes
    /// it (get, tidy, update, publish): refused inside cue.mod, as cue
    /// refuses it.
    pub fn open_to_change(ctx: &Context) -> anyhow::Result<Workspace> {
        Workspace::open_to_change_in(ctx, &files::current_dir()?)
    }

    /// `open_to_change` for the module containing `dir`.
    pub fn open_to_change_in(ctx: &Context, dir: &Path) -> anyhow::Result<Workspace> {
        if files::inside_cue_mod(&files::current_dir()?.join(dir)) {
            return Err(fail(Kind::Other, "cannot run this command inside the cue.mod directory"));
        }
        Workspace::open(ctx, dir)
    }

    pub fn source(&self) -> CacheSource<'_> {
        CacheSource::new(&self.cache)
    }

    pub fn module_file_path(&self) -> PathBuf {
        self.root.join(MODULE_FILE)
    }

    /// Reads module.cue for resolution.
    pub fn main_file(&self) -> anyhow::Result<MainFile> {
        let path = self.module_file_path();
        let text = std::fs::read_to_string(&path).map_err(|e| fail(Kind::Other, format!("cannot read {}: {e}", path.display())))?;
        let module = cue::parse_module_file(&text, &path.to_string_lossy(), false).map_err(Failure::from)?;
        Ok(MainFile { path, text, module })
    }

    /// Makes every dependency loadable: module.cue as CUE's loader reads
    /// it (strictly, local-module.cue applied), each version it names in
    /// the cache. Returns that view of the module file.
    pub fn ensure_deps(&self) -> anyhow::Result<ModuleFile> {
        let (mf, wanted) = self.loader_view()?;
        self.make_loadable(&wanted)?;
        Ok(mf)
    }

    /// Records `versions` as this project's and has each in the cache:
    /// fetched when missing, else proven warm (against opm.sum and the
    /// signature policy).
    pub fn make_loadable(&self, versions: &[ModuleVersion]) -> anyhow::Result<()> {
        self.cache.record_use(&self.root, versions)?;
        self.cache.ensure(versions, false)
    }

    /// The versions CUE's loader will read from the cache.
    pub fn loadable_deps(&self) -> anyhow::Result<Vec<ModuleVersion>> {
        Ok(self.loader_view()?.1)
    }

    pub(super) fn loader_view(&self) -> anyhow::Result<(ModuleFile, Vec<ModuleVersion>)> {
        let mf = cue::load_module_file(&self.root).map_err(Failure::from)?;
        let wanted = mf
            .deps
            .iter()
            // A local replacement is loaded from its directory; a
            // dependency without a version is a replace-only placeholder.
            .filter(|d| d.replace_with.is_empty() && !d.version.is_empty())
            .map(|d| ModuleVersion::of(d.path.clone(), d.version.clone()))
            .collect();
        Ok((mf, wanted))
    }

    /// Downloads every module of `roots` (`refresh` again, even if
    /// cached), then writes module.cue with them: a failed download leaves
    /// it as it was. Returns module.cue's new text.
    pub fn commit(&self, main: &MainFile, roots: &[ModuleVersion], defaults: &BTreeMap<String, String>, refresh: &[ModuleVersion]) -> anyhow::Result<String> {
        let deps: Vec<cue::DepEntry> = roots
            .iter()
            .map(|m| {
                let (base, major) = split_major(m.module());
                cue::DepEntry { path: m.module().to_string(), version: m.version().to_string(), default: defaults.get(base).is_some_and(|d| d == major) }
            })
            .collect();
        // CUE writes module.cue's new text while the versions download.
        let (text, ensured) = std::thread::scope(|s| {
            let text = s.spawn(|| cue::update_module_file(&main.text, &main.path.to_string_lossy(), &deps));
            let ensured = self.cache.ensure(refresh, true).and_then(|()| self.cache.ensure(roots, false));
            (text.join().expect("CUE's calls do not panic (the shim recovers)"), ensured)
        });
        ensured?;
        let text = text.map_err(Failure::from)?;
        let digests = self.cache.digests(roots)?;
        let pinned: Vec<(ModuleVersion, Digests)> = roots.iter().cloned().zip(digests).collect();
        let sums_text = sums::format(&pinned);
        let sums_path = self.root.join(sums::SUMS_FILE);
        let old = std::fs::read_to_string(&sums_path).ok();
        // Both files or neither: a signal waits until the two are written.
        let _held = crate::cue::interrupt::hold();
        if pinned.is_empty() {
            if old.is_some() {
                fs_err::remove_file(&sums_path)?;
            }
        } else if old.as_deref() != Some(sums_text.as_str()) {
            write_atomic(&sums_path, sums_text.as_bytes())?;
        }
        if text != main.text {
            write_atomic(&main.path, text.as_bytes())?;
        }
        Ok(text)
    }
}
