//! `opm mod init`: cue.mod/module.cue as `cue mod init --source self`
//! writes it, and a first package.

use crate::catalog;
use crate::cue;
use crate::error::{fail, Kind};
use crate::files::write_atomic;
use crate::module::MODULE_FILE;
use fs_err as fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// A module with one web component, rendered by `opm mod build`.
    Opm,
    /// A plain CUE module.
    Cue,
}

pub struct InitOptions {
    pub module: String,
    pub dir: PathBuf,
    pub template: Template,
}

pub struct Created {
    pub module_file: PathBuf,
    /// The first package's file, when the directory had no .cue files.
    pub package: Option<(String, PathBuf)>,
}

pub fn init(opts: &InitOptions) -> anyhow::Result<Created> {
    let deps: &[(&str, &str)] = match opts.template {
        Template::Opm => &[(catalog::MODULE, catalog::VERSION)],
        Template::Cue => &[],
    };
    let module_file = cue::init_module_file(&opts.module, Some("self"), deps)
        .map_err(|e| fail(Kind::Other, format!("invalid module path {:?}: {}", opts.module, e.message)))?;

    let dir = &opts.dir;
    let cue_mod = dir.join("cue.mod");
    if cue_mod.exists() {
        return Err(fail(Kind::Other, format!("{} already exists: {} is already a CUE module", cue_mod.display(), dir.display())));
    }
    fs::create_dir_all(dir)?;
    let package = package_name(&opts.module);
    let first_file = (!has_cue_files(dir)?).then(|| dir.join(format!("{package}.cue")));

    // Write everything or nothing: on failure remove what this run
    // created; a signal waits until it is all written.
    let _held = crate::cue::interrupt::hold();
    fs::create_dir(&cue_mod)?;
    let written = write_atomic(&dir.join(MODULE_FILE), module_file.as_bytes()).and_then(|()| match &first_file {
        Some(path) => {
            let text = match opts.template {
                Template::Opm => opm_package(&package, &opts.module),
                Template::Cue => cue_package(&package, &opts.module),
            };
            write_atomic(path, text.as_bytes())
        }
        None => Ok(()),
    });
    if let Err(err) = written {
        let _ = std::fs::remove_dir_all(&cue_mod);
        return Err(err.context(format!("writing the module in {}", dir.display())));
    }
    Ok(Created { module_file: dir.join(MODULE_FILE), package: first_file.map(|f| (package, f)) })
}

fn has_cue_files(dir: &Path) -> anyhow::Result<bool> {
    let entries = fs::read_dir(dir)?;
    Ok(entries.flatten().any(|e| e.path().extension().is_some_and(|x| x == "cue")))
}

/// A CUE identifier from the last element of the module path:
/// example.com/my-app@v0 -> my_app.
fn package_name(module: &str) -> String {
    let base = module.split('@').next().unwrap_or(module);
    let last = base.rsplit('/').next().unwrap_or(base);
    let mut name: String = last.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert(0, 'm');
    }
    name
}

fn cue_package(package: &str, module: &str) -> String {
    format!("package {package}\n\n// The first package of {module}. Check it with `opm mod vet`.\nmessage: \"hello from {module}\"\n")
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
