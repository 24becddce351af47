//! `opm mod build` and `opm bundle build|vet`: evaluate a release in CUE and
//! write its Kubernetes objects in apply order.

use crate::cache;
use crate::cue::{self, Encoding as Format, Object, ReleaseKind};
use crate::deps;
use crate::error::{fail, Exit, Failure};
use crate::module;
use crate::ui;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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

/// `vet`: the release only.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The package directory (default: the current directory)
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// A values file (.cue, .yaml, .yml, .json); repeat to unify several, in order
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    values: Vec<PathBuf>,
    /// The release name (default: the module's or bundle's metadata.name)
    #[arg(long)]
    name: Option<String>,
    /// The namespace of the release
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Inject a tag value: -t key=value (repeatable)
    #[arg(short = 't', long = "inject", value_name = "KEY=VALUE")]
    tags: Vec<String>,
    #[command(flatten)]
    fetch: deps::FetchArgs,
}

/// Checks a release: evaluates it and says whether it is valid.
pub fn vet(kind: ReleaseKind, args: Args) -> anyhow::Result<()> {
    let rendered = render(kind, &args, Format::Yaml)?;
    ui::print_status(&format!("ok: {} {} is valid: {} objects", what(kind), rendered.name, rendered.objects.len()));
    Ok(())
}

/// Renders a release and writes its objects, in apply order.
pub fn build(kind: ReleaseKind, args: BuildArgs) -> anyhow::Result<()> {
    let rendered = render(kind, &args.release, args.output)?;
    match &args.out_dir {
        None => ui::write_stdout(&encode(&rendered.objects, args.output))?,
        Some(out) => {
            write_files(out, &rendered.objects, args.output)?;
            ui::print_status(&format!(
                "wrote {} objects of {} {} to {}",
                rendered.objects.len(),
                what(kind),
                rendered.name,
                out.display()
            ));
        }
    }
    Ok(())
}

fn what(kind: ReleaseKind) -> &'static str {
    match kind {
        ReleaseKind::Module => "release",
        ReleaseKind::Bundle => "bundle release",
    }
}

/// Evaluates the release and sorts its objects into apply order.
fn render(kind: ReleaseKind, args: &Args, encoding: Format) -> anyhow::Result<cue::Rendered> {
    let root = module::find_root(&args.dir)?;
    let dir = std::path::absolute(&args.dir)?;
    let cwd = std::env::current_dir()?;
    let cache_dir = cache::dir();
    deps::ensure_available(&root, &cache_dir, args.fetch)?;
    for file in &args.values {
        if !file.is_file() {
            return Err(fail(Exit::General, format!("values file {} does not exist", file.display())));
        }
    }
    let values: Vec<PathBuf> = args.values.iter().map(std::path::absolute).collect::<Result<_, _>>()?;
    let rendered = cue::render(&cue::RenderRequest {
        dir: &dir,
        cwd: &cwd,
        cache_dir: &cache_dir,
        tags: &args.tags,
        kind,
        name: args.name.as_deref().unwrap_or(""),
        namespace: &args.namespace,
        values_files: &values,
        encoding,
    });
    let mut rendered =
        rendered.map_err(|e| Failure::from(e).summarize(&module::display_path(&cwd, &dir)))?;
    rendered.objects.sort_by(|a, b| apply_order(a).cmp(&apply_order(b)));
    Ok(rendered)
}

/// Namespaces first, then configuration and secrets, storage, services,
/// workloads, jobs and ingress, as they can be applied one after another;
/// ties by namespace, then name. Unknown kinds come last, by kind.
fn apply_order(o: &Object) -> (usize, &str, &str, &str) {
    const ORDER: &[&str] = &[
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Service",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "Ingress",
    ];
    let rank = ORDER.iter().position(|k| *k == o.kind).unwrap_or(ORDER.len());
    let kind = if rank == ORDER.len() { o.kind.as_str() } else { "" };
    (rank, kind, o.namespace.as_str(), o.name.as_str())
}

fn encode(objects: &[Object], format: Format) -> String {
    match format {
        Format::Yaml => objects.iter().map(|o| o.text.as_str()).collect::<Vec<_>>().join("---\n"),
        Format::Json if objects.is_empty() => "[]\n".to_string(),
        Format::Json => {
            let items: Vec<String> = objects.iter().map(|o| format!("  {}", o.text)).collect();
            format!("[\n{}\n]\n", items.join(",\n"))
        }
    }
}

/// One file per object, `NN-kind-name.ext`, so that `kubectl apply -f DIR`
/// (which goes in file name order) applies them in order. Files of an
/// earlier build that this one no longer produces are removed.
fn write_files(out: &Path, objects: &[Object], format: Format) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let ext = match format {
        Format::Yaml => "yaml",
        Format::Json => "json",
    };
    let width = objects.len().to_string().len().max(2);
    let mut names = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let mut name = String::new();
        write!(name, "{:0width$}-{}-{}.{ext}", i + 1, o.kind.to_lowercase(), o.name)?;
        let data = match format {
            Format::Yaml => o.text.clone(),
            Format::Json => format!("{}\n", o.text.replace("\n  ", "\n")),
        };
        module::write_atomic(&out.join(&name), data.as_bytes())?;
        names.push(name);
    }
    for entry in std::fs::read_dir(out)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if is_rendered_file(&name) && !names.contains(&name) {
            std::fs::remove_file(out.join(&name))?;
        }
    }
    Ok(())
}

/// Whether a file name has the shape `write_files` gives its files.
fn is_rendered_file(name: &str) -> bool {
    let Some((index, rest)) = name.split_once('-') else { return false };
    index.len() >= 2
        && index.bytes().all(|b| b.is_ascii_digit())
        && rest.contains('-')
        && (rest.ends_with(".yaml") || rest.ends_with(".json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, ns: &str, name: &str) -> Object {
        Object {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: ns.into(),
            name: name.into(),
            text: String::new(),
        }
    }

    #[test]
    fn objects_sort_into_apply_order() {
        let mut objects = vec![
            obj("Ingress", "a", "web"),
            obj("Deployment", "b", "api"),
            obj("Widget", "a", "w"),
            obj("Deployment", "a", "web"),
            obj("Secret", "a", "db"),
            obj("Namespace", "", "a"),
            obj("Service", "a", "web"),
            obj("ConfigMap", "a", "cfg"),
            obj("PersistentVolumeClaim", "a", "data"),
            obj("CronJob", "a", "backup"),
        ];
        objects.sort_by(|a, b| apply_order(a).cmp(&apply_order(b)));
        let order: Vec<_> = objects.iter().map(|o| format!("{}/{}/{}", o.kind, o.namespace, o.name)).collect();
        assert_eq!(
            order,
            [
                "Namespace//a",
                "ConfigMap/a/cfg",
                "Secret/a/db",
                "PersistentVolumeClaim/a/data",
                "Service/a/web",
                "Deployment/a/web",
                "Deployment/b/api",
                "CronJob/a/backup",
                "Ingress/a/web",
                "Widget/a/w",
            ]
        );
    }

    #[test]
    fn only_rendered_files_are_recognised() {
        assert!(is_rendered_file("01-deployment-web.yaml"));
        assert!(is_rendered_file("120-service-a-b.json"));
        assert!(!is_rendered_file("kustomization.yaml"));
        assert!(!is_rendered_file("1-x-y.yaml"));
        assert!(!is_rendered_file("01-notes.txt"));
    }
}
