use crate::cue;
use crate::error::{fail, Exit, Failure};
use crate::module::{write_atomic, MODULE_FILE};
use crate::ui;
use anyhow::Context;
use std::fs;
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  opm mod init example.com/hello@v0
  opm mod init example.com/app@v1 --dir app

The module path is a domain-like path with a major version suffix, as in
cue: example.com/team/app@v0. opm writes cue.mod/module.cue exactly as
`cue mod init --source self` does, so the module is ready to publish, and a
first package when the directory has no .cue files yet.";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The module path, for example example.com/hello@v0
    module: String,
    /// Directory to create the module in (created when missing)
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let module_file = cue::init_module_file(&args.module, Some("self")).map_err(|e| {
        fail(
            Exit::General,
            format!("invalid module path {:?}: {}", args.module, e.message),
        )
    })?;

    let dir = &args.dir;
    let cue_mod = dir.join("cue.mod");
    if cue_mod.exists() {
        return Err(fail(
            Exit::General,
            format!(
                "{} already exists: {} is already a CUE module",
                cue_mod.display(),
                dir.display()
            ),
        ));
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let package = package_name(&args.module);
    let first_file = (!has_cue_files(dir)?).then(|| dir.join(format!("{package}.cue")));

    // Write everything or nothing: on failure remove what this run created.
    fs::create_dir(&cue_mod).with_context(|| format!("creating {}", cue_mod.display()))?;
    let written =
        write_atomic(&dir.join(MODULE_FILE), module_file.as_bytes()).and_then(
            |()| match &first_file {
                Some(path) => {
                    write_atomic(path, starter_package(&package, &args.module).as_bytes())
                }
                None => Ok(()),
            },
        );
    if let Err(err) = written {
        let _ = fs::remove_dir_all(&cue_mod);
        return Err(Failure {
            exit: Exit::General,
            message: format!("writing the module in {}: {err}", dir.display()),
        }
        .into());
    }

    ui::print_status(&format!(
        "created module {} in {}",
        args.module,
        dir.display()
    ));
    if let Some(path) = first_file {
        ui::print_status(&format!("created package {package} in {}", path.display()));
    }
    Ok(())
}

fn has_cue_files(dir: &Path) -> anyhow::Result<bool> {
    let entries = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    Ok(entries
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "cue")))
}

/// A CUE identifier from the last element of the module path:
/// example.com/my-app@v0 -> my_app.
fn package_name(module: &str) -> String {
    let base = module.split('@').next().unwrap_or(module);
    let last = base.rsplit('/').next().unwrap_or(base);
    let mut name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert(0, 'm');
    }
    name
}

fn starter_package(package: &str, module: &str) -> String {
    format!(
        "package {package}\n\n// The first package of {module}. Check it with `opm mod vet`.\nmessage: \"hello from {module}\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::package_name;

    #[test]
    fn package_names_are_cue_identifiers() {
        assert_eq!(package_name("example.com/hello@v0"), "hello");
        assert_eq!(package_name("example.com/my-app@v1"), "my_app");
        assert_eq!(package_name("example.com/x/9lives"), "m9lives");
    }
}
