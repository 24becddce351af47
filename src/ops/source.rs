//! What resolution reads, from the cache first and the registry second.

use crate::cache::Cache;
use crate::cue::ModuleFile;
use crate::module::ModuleVersion;
use crate::registry::{self, ErrorKind};
use crate::resolve::{Fetched, Source};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A [`Source`] over the cache; every module file and version list is
/// read at most once per command.
pub struct CacheSource<'a> {
    cache: &'a Cache,
    module_files: RefCell<HashMap<ModuleVersion, Rc<ModuleFile>>>,
    versions: RefCell<HashMap<String, Rc<Vec<String>>>>,
}

impl<'a> CacheSource<'a> {
    pub fn new(cache: &'a Cache) -> CacheSource<'a> {
        CacheSource { cache, module_files: RefCell::default(), versions: RefCell::default() }
    }
}

impl Source for CacheSource<'_> {
    fn module_files(&self, mvs: &[ModuleVersion]) -> anyhow::Result<Vec<Rc<ModuleFile>>> {
        let mut missing: Vec<ModuleVersion> = mvs.iter().filter(|mv| !self.module_files.borrow().contains_key(*mv)).cloned().collect();
        missing.sort();
        missing.dedup();
        for (mv, parsed) in missing.iter().zip(self.cache.module_files(&missing)?) {
            self.module_files.borrow_mut().insert(mv.clone(), Rc::new(parsed));
        }
        let known = self.module_files.borrow();
        Ok(mvs.iter().map(|mv| known[mv].clone()).collect())
    }

    fn versions(&self, paths: &[String]) -> anyhow::Result<Vec<Rc<Vec<String>>>> {
        let mut missing: Vec<String> = paths.iter().filter(|p| !self.versions.borrow().contains_key(*p)).cloned().collect();
        missing.sort();
        missing.dedup();
        for (path, versions) in missing.iter().zip(self.cache.versions(&missing)?) {
            self.versions.borrow_mut().insert(path.clone(), Rc::new(versions));
        }
        let known = self.versions.borrow();
        Ok(paths.iter().map(|p| known[p].clone()).collect())
    }

    fn fetch(&self, mv: &ModuleVersion) -> anyhow::Result<Fetched> {
        match self.cache.ensure(std::slice::from_ref(mv), false) {
            Ok(()) => Ok(Fetched::Dir(self.cache.entry(mv)?.dir().to_path_buf())),
            Err(e) if registry::kind_of(&e) == Some(ErrorKind::NotFound) => Ok(Fetched::Missing(format!("{e:#}"))),
            Err(e) => Err(e),
        }
    }
}
