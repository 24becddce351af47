//! `opm mod build` and `opm bundle vet|build`.

use super::Global;
use crate::cue::{Encoding, ReleaseKind};
use crate::ops::render::{self, RenderOptions};
use crate::ui;
use std::path::PathBuf;

pub const BUILD_EXAMPLES: &str = "\
Examples:
  opm mod build                          Manifests of the module here, as YAML
  opm mod build -f prod.yaml -f eu.cue   Unify values files, in order
  opm mod build --name blog -n web       Release name and namespace
  opm mod build -o json | jq '.[].kind'  A JSON list, for scripts
  opm mod build --out-dir manifests/     One file per object, in apply order
  opm mod build --no-cache               Evaluate even if nothing changed

The package defines `module: core.#Module & {...}`; opm binds it to a
core.#ModuleRelease and prints its objects: namespaces, configuration and
secrets, storage, services, workloads, jobs, ingress. Exit code 2 when the
values do not fit the module, with every CUE error and its positions.";

pub const BUNDLE_VET_EXAMPLES: &str = "\
Examples:
  opm bundle vet                   Check the bundle release in this directory
  opm bundle vet -f staging.yaml   With release values (they must match #spec)";

pub const BUNDLE_BUILD_EXAMPLES: &str = "\
Examples:
  opm bundle build                        Manifests of every module, as YAML
  opm bundle build -f prod.yaml -n shop   Values and namespace of the release
  opm bundle build --out-dir manifests/   One file per object, in apply order

The package defines `bundle: core.#Bundle & {...}`; opm binds it to a
core.#BundleRelease and prints the objects of all its modules.";

/// How rendered objects are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Multi-document YAML, as `cue export --out yaml` writes each object
    Yaml,
    /// A JSON list of the objects
    Json,
}

impl From<Format> for Encoding {
    fn from(f: Format) -> Encoding {
        match f {
            Format::Yaml => Encoding::Yaml,
            Format::Json => Encoding::Json,
        }
    }
}

/// `build`: the release and where its objects go.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    release: Args,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Yaml)]
    output: Format,
    /// Write one file per object into DIR (named in apply order) instead of stdout
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Which release: the package, its values, name and tags (build, vet and
/// the delivery commands take them alike).
#[derive(Debug, clap::Args)]
pub struct Release {
    /// The package directory (default: the current directory)
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// A values file (.cue, .yaml, .yml, .json); repeat to unify several, in order
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// The release name (default: the module's or bundle's metadata.name)
    #[arg(long)]
    pub name: Option<String>,
    /// Inject a tag value: -t key=value (repeatable)
    #[arg(short = 't', long = "inject", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
}

/// `vet`: the release only.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    release: Release,
    /// The namespace of the release
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Evaluate even when nothing changed since an answer was kept
    #[arg(long)]
    no_cache: bool,
}

/// `bundle vet`: the release and how to report it.
#[derive(Debug, clap::Args)]
pub struct VetArgs {
    #[command(flatten)]
    release: Args,
    /// Print the result as JSON (name, valid, objects)
    #[arg(long)]
    json: bool,
}

fn options(kind: ReleaseKind, args: Args, encoding: Encoding) -> RenderOptions {
    RenderOptions {
        dir: args.release.dir,
        kind,
        values: args.release.values,
        name: args.release.name,
        namespace: args.namespace,
        tags: args.release.tags,
        encoding,
        use_results: !args.no_cache,
    }
}

fn what(kind: ReleaseKind) -> &'static str {
    match kind {
        ReleaseKind::Module => "release",
        ReleaseKind::Bundle => "bundle release",
    }
}

/// Checks a release: evaluates it and says whether it is valid.
pub fn vet(kind: ReleaseKind, args: VetArgs, g: Global) -> anyhow::Result<()> {
    let rendered = render::render(&g.context(None), &options(kind, args.release, Encoding::Yaml))?;
    if args.json {
        return ui::print_json(&serde_json::json!({ "name": rendered.name, "valid": true, "objects": rendered.objects.len() }));
    }
    ui::print_status(&format!("ok: {} {} is valid: {} objects", what(kind), rendered.name, rendered.objects.len()));
    Ok(())
}

/// Renders a release and writes its objects, in apply order.
pub fn build(kind: ReleaseKind, args: BuildArgs, g: Global) -> anyhow::Result<()> {
    let encoding = Encoding::from(args.output);
    let rendered = render::render(&g.context(None), &options(kind, args.release, encoding))?;
    match &args.out_dir {
        None => ui::write_stdout(&render::encode(&rendered.objects, encoding))?,
        Some(out) => {
            render::write_files(out, &rendered.objects, encoding)?;
            ui::print_status(&format!("wrote {} objects of {} {} to {}", rendered.objects.len(), what(kind), rendered.name, out.display()));
        }
    }
    Ok(())
}
