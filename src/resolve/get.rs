//! `get`: set the versions of some modules and recompute the graph, as
//! `cue mod get` does with exact versions (modload.UpdateVersions).

use super::{Requirements, Selected, Source};
use crate::cue::ModuleFile;
use crate::error::{fail, Kind};
use crate::module::{semver, ModuleVersion};

/// The new roots of the main module after requiring `wanted` (exact
/// versions): every module of the resulting build list, as cue writes it.
pub fn update_versions(src: &dyn Source, main: &ModuleFile, wanted: &[ModuleVersion]) -> anyhow::Result<Vec<ModuleVersion>> {
    let mut want: Vec<ModuleVersion> = Vec::new();
    for w in wanted {
        if w.module() == main.module {
            return Err(fail(Kind::Other, format!("cannot update version of main module {}", main.module)));
        }
        match want.iter().find(|x| x.module() == w.module()) {
            Some(x) if x.version() != w.version() => {
                return Err(fail(Kind::Other, format!("conflicting version update requirements {x} vs {w}")));
            }
            Some(_) => {}
            None => want.push(w.clone()),
        }
    }

    let rs = Requirements::of(main);
    let g1 = rs.graph(src)?;
    let mut remaining = want.clone();
    let mut versions: Vec<ModuleVersion> = g1
        .build_list()
        .into_iter()
        .map(|v| match remaining.iter().position(|w| w.module() == v.module()) {
            Some(i) => remaining.remove(i),
            None => v,
        })
        .collect();
    versions.extend(remaining);

    let rs2 = Requirements::new(&rs.main, versions, main.defaults.clone());
    let g2 = rs2.graph(src)?;
    for w in &want {
        let selected = match g2.selected(w.module()) {
            Some(Selected::Version(v)) => v.as_str(),
            Some(Selected::Main) => "the main module",
            None => "none",
        };
        if selected != w.version() {
            return Err(fail(
                Kind::Other,
                format!(
                    "other requirements prevent changing module {} to version {} (actual selected version: {selected}): \
                     ask for the modules that require it too",
                    w.module(),
                    w.version()
                ),
            ));
        }
    }
    Ok(g2.build_list())
}

/// Parses `module@version` as `opm mod get` takes it: an exact, canonical
/// version. Anything else is refused with the newest matching releases,
/// so that the user can copy one.
pub fn parse_request(src: &dyn Source, arg: &str) -> anyhow::Result<ModuleVersion> {
    let (path, version) = arg.split_once('@').unwrap_or((arg, ""));
    if path.is_empty() || path.contains('@') {
        return Err(fail(Kind::Other, format!("{arg:?} is not MODULE@VERSION (for example example.com/app@v1.2.3)")));
    }
    crate::cue::check_module_path(path).map_err(crate::error::Failure::from)?;
    if semver::is_canonical(version) {
        return Ok(ModuleVersion::new(path, version));
    }
    // A query (latest, a major, a minor, nothing): list what would match.
    let prefix = match version {
        "" | "latest" => String::new(),
        v if semver::is_valid(v) && !v.contains('-') && !v.contains('+') => format!("{v}."),
        _ => return Err(fail(Kind::Other, format!("{arg:?}: {version:?} is not a version; give an exact one such as {path}@v1.2.3"))),
    };
    let versions = src.versions(&[path.to_string()])?.remove(0);
    let mut matching: Vec<&String> = versions.iter().filter(|v| v.starts_with(&prefix)).collect();
    matching.reverse();
    let newest: Vec<String> = matching.iter().take(5).map(|v| format!("{path}@{v}")).collect();
    let what = if version.is_empty() { "no version".to_string() } else { format!("{version:?}") };
    if newest.is_empty() {
        return Err(fail(Kind::NotFound, format!("{arg}: {what} given, and the registry has no matching release of {path}")));
    }
    Err(fail(
        Kind::Other,
        format!("{arg}: {what} given, but opm needs an exact version (no @latest or partial versions); newest matching: {}", newest.join(", ")),
    ))
}
