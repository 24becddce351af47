//! `opm mod init`.

use crate::ops::init::{self, InitOptions};
use crate::ui;
use std::path::PathBuf;

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
    /// A plain CUE module: cue's module.cue and a one-field package
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
    /// Print what was created as JSON (module, module_file, package_file)
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let template = match args.template {
        Template::Opm => init::Template::Opm,
        Template::Cue => init::Template::Cue,
    };
    let created = init::init(&InitOptions { module: args.module.clone(), dir: args.dir.clone(), template })?;
    if args.json {
        // Absolute, as every path in opm's JSON.
        let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let package_file = created.package.as_ref().map(|(_, p)| absolute(p));
        return ui::print_json(&serde_json::json!({ "module": args.module, "module_file": absolute(&created.module_file), "package_file": package_file }));
    }
    ui::print_status(&format!("created module {} in {}", args.module, args.dir.display()));
    if let Some((package, path)) = created.package {
        ui::print_status(&format!("created package {package} in {}", path.display()));
    }
    Ok(())
}
