use crate::catalog;
use crate::cue;
use crate::error::{fail, Exit};
use crate::module::{write_atomic, MODULE_FILE};
use crate::ui;
use anyhow::Context;
use std::fs;
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  opm mod init example.com/hello@v0                 An OPM module: one component
  opm mod init example.com/app@v1 --dir app         In another directory
  opm mod init example.com/lib@v0 --template cue    A plain CUE module

The module path is a domain-like path with a major version suffix, as in
cue: example.com/team/app@v0. opm writes cue.mod/module.cue as
`cue mod init --source self` does, so the module is ready to publish, and a
first package when the directory has no .cue files yet. The OPM template
depends on the core model (opmodel.dev/core@v0), which opm carries, so
`opm mod build` renders it right away with no registry.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// A module with one web component, rendered by `opm mod build`
    Opm,
    /// A plain CUE module: exactly what `cue mod init --source self` writes
    Cue,
}

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The module path, for example example.com/hello@v0
    module: String,
    /// Directory to create the module in (created when missing)
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// What to start from
    #[arg(long, value_enum, default_value_t = Template::Opm)]
    template: Template,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let deps: &[(&str, &str)] = match args.template {
        Template::Opm => &[(catalog::MODULE, catalog::VERSION)],
        Template::Cue => &[],
    };
    let module_file = cue::init_module_file(&args.module, Some("self"), deps).map_err(|e| {
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
                    let text = match args.template {
                        Template::Opm => opm_package(&package, &args.module),
                        Template::Cue => cue_package(&package, &args.module),
                    };
                    write_atomic(path, text.as_bytes())
                }
                None => Ok(()),
            },
        );
    if let Err(err) = written {
        let _ = fs::remove_dir_all(&cue_mod);
        return Err(fail(
            Exit::General,
            format!("writing the module in {}: {err}", dir.display()),
        ));
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

fn cue_package(package: &str, module: &str) -> String {
    format!(
        "package {package}\n\n// The first package of {module}. Check it with `opm mod vet`.\nmessage: \"hello from {module}\"\n"
    )
}

/// One web component: a Deployment and a Service, with values a release
/// may set. `opm mod build` renders it; `opm mod build -f values.yaml`
/// overrides the defaults.
fn opm_package(package: &str, module: &str) -> String {
    let name = package.replace('_', "-");
    format!(
        r#"package {package}

import "opmodel.dev/core@v0"

// The module: its components and the values a release may set.
// Check it with `opm mod vet`; render it with `opm mod build`.
module: core.#Module & {{
	metadata: {{
		apiVersion: "{module}"
		name:       "{name}"
		version:    "0.1.0"
	}}

	// Defaults (*) that a release may override with `-f values.yaml`.
	#config: {{
		image:    string | *"nginx:1.27"
		replicas: int & >=1 | *1
	}}
	values: #config

	#components: web: core.#Container & core.#Replicas & core.#Expose & {{
		spec: {{
			container: {{
				image: values.image
				ports: http: port: 80
			}}
			replicas: values.replicas
			expose: ports: http: port: 80
		}}
	}}
}}
"#
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
