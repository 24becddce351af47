//! `opm mod publish`: vet, require tidy, pack with CUE's rules, push in
//! CUE's format (or write an OCI layout).

use super::{sign, vet, Workspace};
use crate::context::{Context, Unit};
use crate::cue::{self, Packed};
use crate::error::{fail, Failure, Kind};
use crate::files;
use crate::module::{base_path, semver, split_major, ModuleVersion};
use crate::registry::{self, Pushed};
use crate::resolve::{tidy, Requirements};
use fs_err as fs;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PublishOptions {
    /// The module path, or an OCI location `host[:port][/prefix]` that
    /// overrides the routing for this push.
    pub reference: Option<String>,
    pub version: String,
    pub dry_run: bool,
    /// Write an OCI image layout into this directory instead of pushing.
    pub out: Option<PathBuf>,
    /// Sign the pushed manifest with this cosign private key.
    pub sign: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Published,
    /// Identical content was there already.
    Unchanged,
    DryRun,
    /// An OCI image layout was written.
    Written,
}

#[derive(Debug, Serialize)]
pub struct Published {
    pub module: String,
    pub version: String,
    /// host/repository:tag; none for an OCI layout (--out)
    #[serde(rename = "ref", skip_serializing_if = "String::is_empty")]
    pub reference: String,
    pub digest: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    pub files: usize,
    /// The files of the zip, by their path in it, sorted.
    pub paths: Vec<String>,
    pub outcome: Outcome,
    /// Where the signature is (--sign): host/repository:sha256-<hex>.sig
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// An OPM module's `metadata.version` is what every release of it renders
/// (`app.kubernetes.io/version`): publishing it under another version
/// would mislabel every object, so the two must agree.
fn check_release_version(ws: &Workspace, version: &str) -> anyhow::Result<()> {
    let cache_dir = ws.cache.dir().unwrap_or(Path::new(""));
    let Some(declared) = cue::lookup_string(&ws.root, cache_dir, "module.metadata.version").map_err(Failure::from)? else { return Ok(()) };
    if version.strip_prefix('v') == Some(declared.as_str()) {
        return Ok(());
    }
    Err(fail(
        Kind::Other,
        format!(
            "the module says metadata.version: {declared:?}, but this publishes {version}: every release would render \
             app.kubernetes.io/version {declared}. Set metadata.version: {:?} in the module, or publish v{declared}",
            version.trim_start_matches('v')
        ),
    ))
}

pub fn publish(ctx: &Context, opts: &PublishOptions) -> anyhow::Result<Published> {
    let ws = Workspace::open_to_change(ctx)?;
    let mf = ws.ensure_deps()?;
    let version = opts.version.as_str();
    check_version(&mf.module, version)?;
    if opts.sign.is_some() && opts.out.is_some() {
        return Err(fail(Kind::Other, "--sign signs what is pushed to a registry: push the layout, then run 'opm mod sign'"));
    }
    // The key opens before anything is pushed: a wrong password changes nothing.
    let key = opts.sign.as_deref().map(sign::open_key).transpose()?;
    let mut routing = ctx.routing()?.clone();
    if let Some(reference) = &opts.reference {
        if reference != &mf.module && reference != base_path(&mf.module) {
            // An `@` that is not a module's major is userinfo: refused unrepeated.
            let is_module_path =
                reference.split_once('@').is_some_and(|(_, m)| m.strip_prefix('v').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())));
            if !is_module_path {
                crate::config::refuse_userinfo(reference, "the registry location")?;
            }
            if !looks_like_registry(reference) {
                return Err(fail(
                    Kind::Other,
                    format!("{reference} is neither this module's path ({}) nor a registry location host[:port][/prefix]", mf.module),
                ));
            }
            // An explicit location overrides the routing for this push.
            routing.cue_registry = reference.to_string();
        }
    }
    let source = mf
        .source_kind
        .clone()
        .ok_or_else(|| fail(Kind::Other, "publishing needs a source in cue.mod/module.cue: add `source: kind: \"self\"` (or \"git\")"))?;
    // The files of a `self` source are what the zip will hold (a link is
    // refused here); a git source's are its tracked files.
    let own_files = match source.as_str() {
        "self" => Some(files::pack_list(&ws.root)?),
        "git" => None,
        other => return Err(fail(Kind::Other, format!("unsupported module source kind {other:?}"))),
    };

    vet::require_valid(&ws, "nothing was published")?;
    check_tidy(&ws)?;
    check_release_version(&ws, version)?;

    let (files, vcs) = match own_files {
        Some(files) => (files, None),
        None => {
            let (files, vcs) = git_source(&ws.root)?;
            (files, Some(vcs))
        }
    };

    let work = tempfile::tempdir()?;
    let zip = work.path().join("module.zip");
    let packed = cue::pack(&cue::PackRequest { module: &mf.module, version, zip: &zip, files: &files, vcs })
        .map_err(|e| Failure::from(e).summarize("the module zip"))?;
    let loc = routing
        .resolve(&mf.module, version)?
        .ok_or_else(|| fail(Kind::Other, format!("cannot resolve {} (version {version:?}) to registry: no registry configured for module", mf.module)))?;
    let zip_data = fs::read(&zip)?;

    let outcome = if let Some(out) = &opts.out {
        registry::write_layout(out, &packed, &zip_data, &loc.tag)?;
        Outcome::Written
    } else if opts.dry_run {
        Outcome::DryRun
    } else if ctx.offline() {
        return Err(fail(Kind::Other, "--offline forbids the push: use --dry-run, or --out DIR for an OCI layout"));
    } else {
        push(&ws, &loc, &packed, &zip_data)?
    };
    let signature = match &key {
        Some(key) if matches!(outcome, Outcome::Published | Outcome::Unchanged) => {
            let mv = ModuleVersion::new(base_path(&mf.module), version);
            Some(sign::attach(ctx.client()?, &mv, &loc, &packed.manifest_digest, key)?.signature)
        }
        _ => None,
    };
    Ok(Published {
        module: mf.module.clone(),
        version: version.to_string(),
        reference: if outcome == Outcome::Written { String::new() } else { format!("{}/{}:{}", loc.host, loc.repository, loc.tag) },
        digest: packed.manifest_digest.clone(),
        insecure: loc.insecure,
        files: packed.files,
        paths: {
            let mut paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
            paths.sort();
            paths
        },
        outcome,
        signature,
    })
}

/// Pushes through the command's one registry client, to `loc` (which an
/// explicit REF may have routed elsewhere).
fn push(ws: &Workspace, loc: &cue::Location, packed: &Packed, zip: &[u8]) -> anyhow::Result<Outcome> {
    let client = ws.ctx.client()?;
    let bar = ws.ctx.progress("publishing", Unit::Bytes);
    bar.inc_length(registry::push_size(packed, zip));
    let pushed = client.block_on(client.publish(loc, packed, zip, &bar));
    bar.done();
    let pushed = pushed?;
    Ok(match pushed {
        Pushed::Published => Outcome::Published,
        Pushed::Unchanged => Outcome::Unchanged,
    })
}

/// As cue does: a module whose module.cue is not what `opm mod tidy` would
/// write is not published (its consumers would resolve other versions).
fn check_tidy(ws: &Workspace) -> anyhow::Result<()> {
    let main = ws.main_file()?;
    let before = Requirements::of(&main.module);
    let tidied = match tidy::tidy(&ws.source(), &ws.root, &files::cue_sources(&ws.root)?, &before, true, None) {
        Ok(t) => t,
        // Not tidy is a reason not to publish, not a --check result.
        Err(e) if tidy::is_untidy(&e) => return Err(fail(Kind::Other, format!("{e:#}; run 'opm mod tidy': nothing was published"))),
        Err(e) => return Err(e.context("run 'opm mod tidy': nothing was published")),
    };
    if before.roots() != tidied.roots.as_slice() {
        return Err(fail(Kind::Other, "module.cue is not tidy: run 'opm mod tidy' first; nothing was published"));
    }
    Ok(())
}

/// A canonical SemVer version (`vMAJOR.MINOR.PATCH[-pre]`) whose major
/// matches the module path's, as cue requires.
fn check_version(module: &str, version: &str) -> anyhow::Result<()> {
    if semver::is_valid(version) && !semver::is_canonical(version) && version.contains('+') {
        return Err(fail(Kind::Other, format!("version {version:?} is not canonical: drop the build metadata (+...)")));
    }
    if !semver::is_canonical(version) {
        return Err(fail(
            Kind::Other,
            format!("invalid version {version:?}: publish needs a canonical SemVer version such as v0.1.0 (no `latest`, no mutable tags)"),
        ));
    }
    let major = match split_major(module).1 {
        "" => "v0",
        m => m,
    };
    if semver::major(version) != major {
        return Err(fail(Kind::Other, format!("version {version} does not match the major version {major} of module {module}: use {major}.N.N")));
    }
    Ok(())
}

fn looks_like_registry(reference: &str) -> bool {
    let host = reference.split('/').next().unwrap_or("");
    !reference.contains('@') && (host.contains('.') || host.contains(':') || host == "localhost")
}

/// The tracked files of a git-sourced module and its commit, as
/// `cue mod publish` reads them (the work tree must be clean).
fn git_source(root: &Path) -> anyhow::Result<(Vec<cue::PackFile>, cue::Vcs)> {
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("git").args(args).current_dir(root).output().map_err(|e| fail(Kind::Other, format!("source kind \"git\" needs git: {e}")))?;
        if !out.status.success() {
            return Err(fail(Kind::Other, format!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    if !git(&["status", "--porcelain", "--", "."])?.is_empty() {
        return Err(fail(Kind::Other, "the git work tree has uncommitted changes: commit them before publishing"));
    }
    let mut files: Vec<String> = git(&["ls-files", "-z", "--"])?.split('\0').filter(|f| !f.is_empty()).map(str::to_string).collect();
    files.sort();
    let mut pack: Vec<cue::PackFile> = files.iter().map(|f| cue::PackFile { path: f.clone(), abs: root.join(f) }).collect();
    // As cue does: a LICENSE at the repository root applies to the module.
    if !files.iter().any(|f| f == "LICENSE") {
        let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?.trim());
        if top.join("LICENSE").is_file() && top != root {
            pack.push(cue::PackFile { path: "LICENSE".into(), abs: top.join("LICENSE") });
        }
    }
    let log = git(&["-c", "log.showsignature=false", "log", "-1", "--format=%H:%ct"])?;
    let (commit, time) = log.trim().split_once(':').ok_or_else(|| fail(Kind::Other, "cannot read the git commit"))?;
    Ok((pack, cue::Vcs { kind: "git".into(), commit: commit.into(), commit_time: time.parse()? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_must_be_canonical_semver_of_the_modules_major() {
        assert!(check_version("example.com/x@v0", "v0.1.0").is_ok());
        assert!(check_version("example.com/x@v1", "v1.2.3-rc.1").is_ok());
        for bad in ["latest", "1.0.0", "v1", "v1.2", "v1.2.3+build"] {
            assert!(check_version("example.com/x@v1", bad).is_err(), "{bad}");
        }
        let err = check_version("example.com/x@v0", "v1.0.0").unwrap_err().to_string();
        assert!(err.contains("major version v0"), "{err}");
    }

    #[test]
    fn registry_references_are_told_from_module_paths() {
        assert!(looks_like_registry("localhost:5000"));
        assert!(looks_like_registry("registry.example.com/modules"));
        assert!(!looks_like_registry("example.com/x@v0"));
        assert!(!looks_like_registry("mymodule"));
    }
}
