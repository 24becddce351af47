//! `opm mod publish`: vet, pack with CUE's rules, push in CUE's format.

use crate::cache;
use crate::config::Routing;
use crate::cue::{self, Location, Packed};
use crate::deps;
use crate::error::{fail, Exit, Failure};
use crate::module;
use crate::registry::{self, Registry, MANIFEST_MEDIA_TYPE};
use crate::resolve;
use crate::ui;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

const EXAMPLES: &str = "\
Examples:
  opm mod publish v0.1.0                     Publish where the routing sends the module
  opm mod publish example.com/app@v0 v0.1.0  The same, naming the module
  opm mod publish localhost:5000 v0.1.0      Push to an explicit registry this once
  opm mod publish v1.2.0 --dry-run           Check and pack, push nothing
  opm mod publish v1.2.0 --json              Report ref and digest as JSON
  opm mod publish v1.2.0 --out ./image       Write an OCI image layout instead

The module is vetted first and must be tidy (as `opm mod tidy` leaves it):
otherwise nothing is pushed. The
artifact is CUE's module format, byte for byte what `cue mod publish`
pushes. An existing version is never overwritten: publishing identical
content again does nothing, different content is refused. Blobs go first
and the tag last, so a failed publish leaves no tag behind.";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// [REF] VERSION: the module path or an OCI location host[:port][/prefix], then a canonical SemVer version
    #[arg(required = true, num_args = 1..=2, value_names = ["REF", "VERSION"])]
    args: Vec<String>,
    /// Check and pack, but push nothing
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Print the result as JSON (module, version, ref, digest, files)
    #[arg(long)]
    json: bool,
    /// Write the artifact as an OCI image layout into DIR instead of pushing
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    fetch: deps::FetchArgs,
}

#[derive(Serialize)]
struct Report<'a> {
    module: &'a str,
    version: &'a str,
    /// host/repository:tag
    #[serde(rename = "ref")]
    reference: String,
    digest: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    insecure: bool,
    files: usize,
    /// published, unchanged (identical content was there), dry-run or written
    outcome: &'static str,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (reference, version) = match args.args.as_slice() {
        [version] => (None, version.as_str()),
        [reference, version] => (Some(reference.as_str()), version.as_str()),
        _ => unreachable!("clap takes one or two values"),
    };
    let cwd = std::env::current_dir()?;
    let root = module::find_root(&cwd)?;
    let cache_dir = cache::dir();
    let mf = deps::ensure_available(&root, &cache_dir, args.fetch)?;
    check_version(&mf.module, version)?;
    let mut routing = Routing::load()?;
    if let Some(reference) = reference {
        let base = resolve::split_major(&mf.module).0;
        if reference != mf.module && reference != base {
            if !looks_like_registry(reference) {
                return Err(fail(
                    Exit::General,
                    format!("{reference} is neither this module's path ({}) nor a registry location host[:port][/prefix]", mf.module),
                ));
            }
            // An explicit location overrides the routing for this push.
            routing.cue_registry = reference.to_string();
        }
    }
    let source = mf.source_kind.clone().ok_or_else(|| {
        fail(
            Exit::General,
            "publishing needs a source in cue.mod/module.cue: add `source: kind: \"self\"` (or \"git\")",
        )
    })?;
    refuse_symlinks(&root)?;

    super::mod_vet::require_valid(&root, &cache_dir, "nothing was published")?;

    check_tidy(&root, &cache_dir)?;

    let work = tempfile::tempdir()?;
    let zip = work.path().join("module.zip");
    let (files, vcs) = match source.as_str() {
        "self" => (None, None),
        "git" => {
            let (files, vcs) = git_source(&root)?;
            (Some(files), Some(vcs))
        }
        other => return Err(fail(Exit::General, format!("unsupported module source kind {other:?}"))),
    };
    let packed = cue::pack(&cue::PackRequest { root: &root, module: &mf.module, version, zip: &zip, files, vcs })
        .map_err(|e| Failure::from(e).summarize("the module zip"))?;
    let loc = routing.resolve(&mf.module, version)?;
    let zip_data = std::fs::read(&zip)?;

    let outcome = if let Some(out) = &args.out {
        write_layout(out, &packed, &zip_data, &loc.tag)?;
        "written"
    } else if args.dry_run {
        "dry-run"
    } else {
        push(&loc, &packed, &zip_data)?
    };

    let reference = format!("{}/{}:{}", loc.host, loc.repository, loc.tag);
    if args.json {
        return ui::print_json(&Report {
            module: &mf.module,
            version,
            reference,
            digest: &packed.manifest_digest,
            insecure: loc.insecure,
            files: packed.files,
            outcome,
        });
    }
    let base = resolve::split_major(&mf.module).0;
    let what = format!("{base}@{version}");
    match outcome {
        "published" => ui::print_status(&format!("published {what} to {reference}")),
        "unchanged" => ui::print_status(&format!("{what} is already at {reference} with identical content: nothing to do")),
        "written" => ui::print_status(&format!("wrote {what} as an OCI image layout to {}", args.out.as_ref().unwrap().display())),
        _ => ui::print_status(&format!("dry run: {what} ({} files) would be published to {reference}", packed.files)),
    }
    Ok(())
}

/// As cue does: a module whose module.cue is not what `opm mod tidy` would
/// write is not published (its consumers would resolve other versions).
fn check_tidy(root: &Path, cache_dir: &Path) -> anyhow::Result<()> {
    let cx = resolve::Context::new(cache_dir)?;
    let (_, parsed) = resolve::main_module_file(root)?;
    let before = resolve::requirements_of(&parsed);
    let tidied = resolve::tidy::tidy(&cx, root, &before, true).map_err(|e| {
        let exit = crate::error::exit_of(&e);
        let exit = if exit == Exit::Outdated { Exit::General } else { exit };
        fail(exit, format!("{e:#}; run 'opm mod tidy': nothing was published"))
    })?;
    let after: Vec<_> = tidied.roots.into_iter().filter(|m| m.module != resolve::LOCAL).collect();
    if before.roots() != after.as_slice() {
        return Err(fail(Exit::General, "module.cue is not tidy: run 'opm mod tidy' first; nothing was published"));
    }
    Ok(())
}

/// A canonical SemVer version (`vMAJOR.MINOR.PATCH[-pre]`) whose major
/// matches the module path's, as cue requires.
fn check_version(module: &str, version: &str) -> anyhow::Result<()> {
    let parsed = version.strip_prefix('v').and_then(|v| semver::Version::parse(v).ok());
    let Some(parsed) = parsed else {
        return Err(fail(
            Exit::General,
            format!("invalid version {version:?}: publish needs a canonical SemVer version such as v0.1.0 (no `latest`, no mutable tags)"),
        ));
    };
    if !parsed.build.is_empty() {
        return Err(fail(Exit::General, format!("version {version:?} is not canonical: drop the build metadata (+...)")));
    }
    let major = match resolve::split_major(module).1 {
        "" => "v0",
        m => m,
    };
    if format!("v{}", parsed.major) != major {
        return Err(fail(
            Exit::General,
            format!("version {version} does not match the major version {major} of module {module}: use {major}.N.N"),
        ));
    }
    Ok(())
}

fn looks_like_registry(reference: &str) -> bool {
    let host = reference.split('/').next().unwrap_or("");
    !reference.contains('@') && (host.contains('.') || host.contains(':') || host == "localhost")
}

/// CUE module zips hold no symlinks; cue silently leaves them out, which
/// would publish a module that differs from the one vetted here.
fn refuse_symlinks(root: &Path) -> anyhow::Result<()> {
    fn walk(dir: &Path, root: &Path) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            let name = entry.file_name();
            if kind.is_symlink() {
                return Err(fail(
                    Exit::General,
                    format!(
                        "{} is a symbolic link: CUE modules cannot contain links; replace it with the file it points to",
                        path.strip_prefix(root).unwrap_or(&path).display()
                    ),
                ));
            }
            let nested_module = path != root.join("cue.mod") && path.join("cue.mod").is_dir();
            if kind.is_dir() && !nested_module && name != ".git" {
                walk(&path, root)?;
            }
        }
        Ok(())
    }
    walk(root, root)
}

/// The tracked files of a git-sourced module and its commit, as
/// `cue mod publish` reads them (the work tree must be clean).
fn git_source(root: &Path) -> anyhow::Result<(Vec<cue::PackFile>, cue::Vcs)> {
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("git").args(args).current_dir(root).output().map_err(|e| {
            fail(Exit::General, format!("source kind \"git\" needs git: {e}"))
        })?;
        if !out.status.success() {
            return Err(fail(
                Exit::General,
                format!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    if !git(&["status", "--porcelain", "--", "."])?.is_empty() {
        return Err(fail(Exit::General, "the git work tree has uncommitted changes: commit them before publishing"));
    }
    let mut files: Vec<String> = git(&["ls-files", "-z", "--"])?
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
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
    let (commit, time) = log.trim().split_once(':').ok_or_else(|| fail(Exit::General, "cannot read the git commit"))?;
    Ok((pack, cue::Vcs { kind: "git".into(), commit: commit.into(), commit_time: time.parse()? }))
}

/// Pushes blobs (those the registry lacks), then the manifest, so a failed
/// publish leaves no tag. An existing tag is kept: identical content is a
/// no-op, different content an error.
fn push(loc: &Location, packed: &Packed, zip: &[u8]) -> anyhow::Result<&'static str> {
    let registry = Registry::new();
    let rt = registry::runtime();
    rt.block_on(async {
        if let Some(existing) = registry.manifest(loc).await? {
            if existing.digest == packed.manifest_digest {
                return Ok("unchanged");
            }
            return Err(fail(
                Exit::General,
                format!(
                    "{}/{}:{} already exists with different content ({}): versions are immutable, publish a new version",
                    loc.host, loc.repository, loc.tag, existing.digest
                ),
            ));
        }
        let module_file = packed.module_file_data.as_bytes();
        let total = 2 + zip.len() + module_file.len() + packed.manifest.len();
        let bar = ui::progress_bytes(total as u64, "publishing");
        for (data, blob) in [(&b"{}"[..], &packed.config), (zip, &packed.zip), (module_file, &packed.module_file)] {
            registry.push_blob(loc, data, &blob.digest).await?;
            bar.inc(data.len() as u64);
        }
        registry.push_manifest(loc, packed.manifest.as_bytes(), MANIFEST_MEDIA_TYPE).await?;
        bar.finish_and_clear();
        Ok("published")
    })
}

/// The artifact as an OCI image layout, as `cue mod publish --out` writes it.
fn write_layout(out: &Path, packed: &Packed, zip: &[u8], tag: &str) -> anyhow::Result<()> {
    std::fs::create_dir(out).map_err(|e| fail(Exit::General, format!("cannot create {}: {e}", out.display())))?;
    std::fs::write(out.join("oci-layout"), "{\n    \"imageLayoutVersion\": \"1.0.0\"\n}\n")?;
    let blobs = out.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let manifest = packed.manifest.as_bytes();
    for (data, digest) in [
        (&b"{}"[..], packed.config.digest.as_str()),
        (zip, packed.zip.digest.as_str()),
        (packed.module_file_data.as_bytes(), packed.module_file.digest.as_str()),
        (manifest, packed.manifest_digest.as_str()),
    ] {
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), data)?;
    }
    let index = format!(
        "{{\n\t\"schemaVersion\": 2,\n\t\"mediaType\": \"application/vnd.oci.image.index.v1+json\",\n\t\"manifests\": [\n\t\t{{\n\t\t\t\"mediaType\": \"{MANIFEST_MEDIA_TYPE}\",\n\t\t\t\"digest\": \"{}\",\n\t\t\t\"size\": {},\n\t\t\t\"annotations\": {{\n\t\t\t\t\"org.opencontainers.image.ref.name\": {}\n\t\t\t}}\n\t\t}}\n\t]\n}}\n",
        packed.manifest_digest,
        manifest.len(),
        serde_json::to_string(tag)?
    );
    std::fs::write(out.join("index.json"), index)?;
    Ok(())
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
