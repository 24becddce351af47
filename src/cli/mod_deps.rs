//! `opm mod get` and `opm mod tidy`: change the main module's `deps` as
//! `cue mod get` and `cue mod tidy` would, byte for byte, then make sure
//! the cache holds every module they name.

use crate::cache::{self, Entry};
use crate::deps::ModuleVersion;
use crate::error::{fail, Exit};
use crate::module;
use crate::resolve::{self, get, tidy, Context};
use crate::ui;
use std::path::{Path, PathBuf};

const GET_EXAMPLES: &str = "\
Examples:
  opm mod get example.com/app@v1.2.3            Add or change one dependency
  opm mod get example.com/a@v1.0.0 example.com/b@v0.3.1
  opm mod get --force example.com/app@v1.2.3    Download it again (corrupt cache)

An exact version is required (no @latest, @v1 or @v1.2): opm lists the
newest matching releases when one is missing. Other dependencies keep their
versions unless the new one requires more (minimal version selection, as
cue does). module.cue is written exactly as `cue mod get` writes it; every
module of the graph is downloaded, so `opm mod vet` and `opm mod build`
then work offline.";

const TIDY_EXAMPLES: &str = "\
Examples:
  opm mod tidy            Add missing dependencies, remove unused ones
  opm mod tidy --check    In CI: exit 6 when module.cue is not tidy

A missing dependency gets its newest release. Dependencies no package
imports are removed from module.cue and their versions from the CUE cache.
The result is what `cue mod tidy` writes, byte for byte.";

#[derive(Debug, clap::Args)]
#[command(after_help = GET_EXAMPLES)]
pub struct GetArgs {
    /// MODULE@VERSION, e.g. example.com/app@v1.2.3
    #[arg(required = true, value_name = "MODULE@VERSION")]
    modules: Vec<String>,
    /// Download the requested versions again, even when cached
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = TIDY_EXAMPLES)]
pub struct TidyArgs {
    /// Change nothing; exit 6 when module.cue is not tidy
    #[arg(long)]
    check: bool,
}

/// The module this command works on.
pub struct Workspace {
    pub root: PathBuf,
    pub file: PathBuf,
    pub text: String,
    pub parsed: crate::cue::ParsedModuleFile,
    pub cx: Context,
}

impl Workspace {
    pub fn open() -> anyhow::Result<Workspace> {
        let root = module::find_root(&std::env::current_dir()?)?;
        let (text, parsed) = resolve::main_module_file(&root)?;
        let cx = Context::new(&cache::dir())?;
        Ok(Workspace { file: root.join(module::MODULE_FILE), root, text, parsed, cx })
    }

    pub fn roots(&self) -> Vec<ModuleVersion> {
        resolve::requirements_of(&self.parsed).roots().to_vec()
    }

    /// Downloads every module of `roots` (`refresh` again, even if cached),
    /// then writes module.cue: a failed download leaves it as it was.
    pub fn commit(
        &self,
        roots: &[ModuleVersion],
        defaults: &std::collections::BTreeMap<String, String>,
        refresh: &[ModuleVersion],
    ) -> anyhow::Result<()> {
        self.cx.fetch_all(refresh, true)?;
        self.cx.fetch_all(roots, false)?;
        let text = resolve::write_deps(&self.text, &self.file.to_string_lossy(), roots, defaults)?;
        if text != self.text {
            module::write_atomic(&self.file, text.as_bytes())?;
        }
        Ok(())
    }
}

pub fn get(args: GetArgs) -> anyhow::Result<()> {
    let ws = Workspace::open()?;
    let wanted = args
        .modules
        .iter()
        .map(|arg| get::parse_request(&ws.cx, arg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let before = ws.roots();
    let after = get::update_versions(&ws.cx, &ws.parsed, &wanted)?;
    // --force: the requested versions are downloaded again; the old copies
    // are replaced only once the new ones have arrived.
    let refresh = if args.force { wanted.as_slice() } else { &[] };
    ws.commit(&after, &ws.parsed.defaults, refresh)?;
    report_changes(&before, &after, &ws.root);
    Ok(())
}

pub fn tidy(args: TidyArgs) -> anyhow::Result<()> {
    let ws = Workspace::open()?;
    // cue tidies a second, main-module view with the replacements of
    // local-module.cue and merges both; opm tidies the published view only.
    if ws.root.join("cue.mod/local-module.cue").exists() {
        return Err(fail(
            Exit::General,
            "cue.mod/local-module.cue holds module replacements, which opm mod tidy does not apply yet: use 'cue mod tidy' here",
        ));
    }
    let before = resolve::requirements_of(&ws.parsed);
    let tidied = tidy::tidy(&ws.cx, &ws.root, &before, args.check)?;
    let after: Vec<ModuleVersion> = tidied.roots.iter().filter(|m| m.module != resolve::LOCAL).cloned().collect();
    if args.check {
        if before.roots() != after.as_slice() {
            let changes = describe_changes(before.roots(), &after).join(", ");
            return Err(fail(Exit::Outdated, format!("module is not tidy ({changes}): run 'opm mod tidy'")));
        }
        ui::print_status(&format!("ok: {} is tidy", module::display_path(&std::env::current_dir()?, &ws.file)));
        return Ok(());
    }
    ws.commit(&after, &tidied.defaults, &[])?;
    // Versions tidy dropped leave the cache too (FR-006).
    for old in before.roots() {
        if !after.contains(old) && old.module != resolve::LOCAL {
            Entry::new(&ws.cx.cache_dir, &old.module, &old.version).remove()?;
        }
    }
    report_changes(before.roots(), &after, &ws.root);
    Ok(())
}

fn describe_changes(before: &[ModuleVersion], after: &[ModuleVersion]) -> Vec<String> {
    let mut out = Vec::new();
    for a in after {
        match before.iter().find(|b| b.module == a.module) {
            None => out.push(format!("add {a}")),
            Some(b) if b.version != a.version => {
                let verb = if resolve::semver::compare(&a.version, &b.version).is_gt() { "upgrade" } else { "downgrade" };
                out.push(format!("{verb} {} {} -> {}", a.module, b.version, a.version));
            }
            Some(_) => {}
        }
    }
    for b in before {
        if !after.iter().any(|a| a.module == b.module) {
            out.push(format!("remove {b}"));
        }
    }
    out
}

fn report_changes(before: &[ModuleVersion], after: &[ModuleVersion], root: &Path) {
    let changes = describe_changes(before, after);
    if changes.is_empty() {
        ui::print_status(&format!("{} is up to date", root.join(module::MODULE_FILE).display()));
    }
    for c in changes {
        ui::print_status(&c);
    }
}
