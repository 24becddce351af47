//! The layers of the crate (README, "How it is built"): each module of
//! src/ uses only the modules listed for it here, and these form no cycle.
//! Data flows down: cli -> ops -> {resolve, cache, registry, cue, module}.

use crate::support::repo_dir;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of src/ and what it may use, bottom first.
const LAYERS: &[(&str, &[&str])] = &[
    ("module", &[]),
    ("cue", &[]),
    ("error", &["cue"]),
    ("files", &["cue", "error", "module"]),
    ("config", &["cue", "error", "files"]),
    ("catalog", &["cue", "files", "module"]),
    ("ui", &["cue", "error", "files"]),
    ("trust", &["config", "error", "files", "module"]),
    ("registry", &["config", "cue", "error", "files", "module", "trust", "ui"]),
    ("context", &["config", "registry", "trust"]),
    ("cache", &["catalog", "config", "context", "cue", "error", "files", "module", "registry", "trust", "ui"]),
    ("resolve", &["cue", "error", "files", "module"]),
    ("ops", &["cache", "catalog", "config", "context", "cue", "error", "files", "module", "registry", "resolve", "trust", "ui"]),
    // cli also names the error kinds of registry and resolve: it maps
    // them to exit codes, in one place.
    ("cli", &["config", "context", "cue", "error", "files", "module", "ops", "registry", "resolve", "ui"]),
];

/// The `crate::X` paths each top-level module names.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out);
            } else if e.path().extension().is_some_and(|x| x == "rs") {
                out.push(e.path());
            }
        }
    }
    let src = repo_dir().join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let top = rel.split(['/', '.']).next().unwrap().to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let used = out.entry(top.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() && name != top {
                used.insert(name);
            }
        }
    }
    out
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let actual = uses();
    for (module, used) in &actual {
        let Some(may) = allowed.get(module.as_str()) else { panic!("src/{module} is not in the table of layers") };
        let extra: Vec<&String> = used.iter().filter(|u| !may.contains(&u.as_str())).collect();
        assert!(extra.is_empty(), "src/{module} uses {extra:?}, which its layer may not");
    }
    // Bottom first: each module may use only modules listed before it, so
    // the graph has no cycle.
    for (i, (module, may)) in LAYERS.iter().enumerate() {
        for m in *may {
            let j = LAYERS.iter().position(|(n, _)| n == m).unwrap_or_else(|| panic!("{m} is not a layer"));
            assert!(j < i, "{module} may use {m}, which is not below it");
        }
    }
    assert_eq!(actual.len(), LAYERS.len(), "every layer exists in src/: {:?}", actual.keys());
}
