//! `opm mod build` and `opm bundle build|vet`: evaluate a release in CUE and
//! write its Kubernetes objects in apply order.

use super::results::{self, Inputs};
use super::Workspace;
use crate::context::Context;
use crate::cue::{self, Encoding, Object, ReleaseKind};
use crate::error::{fail, Failure, Kind};
use crate::files::{self, display_path, write_atomic};
use fs_err as fs;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub struct RenderOptions {
    /// The package directory.
    pub dir: PathBuf,
    pub kind: ReleaseKind,
    /// Values files (.cue, .yaml, .yml, .json), unified in order.
    pub values: Vec<PathBuf>,
    /// The release name; None: the module's or bundle's metadata.name.
    pub name: Option<String>,
    pub namespace: String,
    pub tags: Vec<String>,
    pub encoding: Encoding,
    /// Answer from the result cache when nothing changed (`--no-cache`: no).
    pub use_results: bool,
}

/// A DNS-1123 label, as Kubernetes requires of namespaces and release
/// names: lower-case letters, digits and `-`, at most 63, alphanumeric at
/// both ends.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b.len() <= 63 && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-') && b[0] != b'-' && b[b.len() - 1] != b'-'
}

/// Whether a render failed because the package declares no release of
/// the kind asked (a plain CUE module, or a bundle asked as a module)
/// rather than because the release is broken: the shim's usage error.
pub fn declares_no_release(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("` field: an OPM ")
}

/// Evaluates the release and sorts its objects into apply order.
pub fn render(ctx: &Context, opts: &RenderOptions) -> anyhow::Result<cue::Rendered> {
    render_in(&Workspace::open_to_load(ctx, &opts.dir)?, opts)
}

/// [`render`] in a workspace already open.
pub fn render_in(ws: &Workspace, opts: &RenderOptions) -> anyhow::Result<cue::Rendered> {
    // Said in the flag's terms before CUE says it in the model's.
    if !is_dns_label(&opts.namespace) {
        return Err(fail(
            Kind::Other,
            format!("--namespace {:?} is not a Kubernetes namespace: lower-case letters, digits and '-', at most 63, e.g. prod-ns", opts.namespace),
        ));
    }
    if let Some(name) = opts.name.as_deref().filter(|n| !is_dns_label(n)) {
        return Err(fail(Kind::Other, format!("--name {name:?} is not a valid release name: lower-case letters, digits and '-', at most 63, e.g. my-release")));
    }
    let dir = std::path::absolute(&opts.dir)?;
    let cwd = files::current_dir()?;
    let values: Vec<PathBuf> = opts.values.iter().map(std::path::absolute).collect::<Result<_, _>>()?;
    let inputs = opts.use_results.then(|| {
        let flags = (opts.kind, &dir, &opts.name, &opts.namespace, &opts.tags, opts.encoding, crate::ui::is_verbose());
        values.iter().try_fold(Inputs::of(ws, "render", &flags)?, |inputs, file| inputs.file(file))
    });
    results::answer(ws, inputs.flatten(), || {
        for file in &opts.values {
            if !file.is_file() {
                return Err(fail(Kind::Other, format!("values file {} does not exist", file.display())));
            }
        }
        let rendered = cue::render(&cue::RenderRequest {
            dir: &dir,
            cwd: &cwd,
            cache_dir: ws.cache.dir().unwrap_or(std::path::Path::new("")),
            tags: &opts.tags,
            kind: opts.kind,
            name: opts.name.as_deref().unwrap_or(""),
            namespace: &opts.namespace,
            values_files: &values,
            encoding: opts.encoding,
        });
        let mut rendered = rendered.map_err(|e| {
            let failure = Failure::from(e).summarize(&display_path(&cwd, &dir));
            values_misfit(failure, &opts.values)
        })?;
        rendered.objects.sort_by(|a, b| apply_order(a).cmp(&apply_order(b)));
        Ok(rendered)
    })
}

/// A release whose values files do not fit says so first, in the user's
/// terms: which files, and the one error that names the field (CUE's
/// "conflicting values" with a default and its "empty disjunction" summary
/// are the same problem seen from the model's side).
fn values_misfit(mut failure: Failure, values: &[PathBuf]) -> Failure {
    if values.is_empty() || !failure.diagnostics.iter().any(|d| d.message.starts_with("release.values")) {
        return failure;
    }
    let telling = |d: &&cue::Diagnostic| !d.message.contains("empty disjunction") && !d.message.contains("conflicting values");
    let first = failure.diagnostics.iter().find(telling).or(failure.diagnostics.first()).map(|d| d.message.clone()).unwrap_or_default();
    let files: Vec<String> = values.iter().map(|v| v.display().to_string()).collect();
    failure.message = format!("the values in {} do not fit the module: {first} ({})", files.join(", "), failure.message);
    // CUE's whole account of it under --verbose; else the telling part.
    if !crate::ui::is_verbose() {
        let told: Vec<cue::Diagnostic> = failure.diagnostics.iter().filter(telling).cloned().collect();
        if !told.is_empty() && told.len() < failure.diagnostics.len() {
            failure.diagnostics = told;
            failure.message += " (--verbose: CUE's full detail)";
        }
    }
    failure
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

/// The objects as one document: multi-document YAML or a JSON list.
pub fn encode(objects: &[Object], format: Encoding) -> String {
    match format {
        Encoding::Yaml => objects.iter().map(|o| o.text.as_str()).collect::<Vec<_>>().join("---\n"),
        Encoding::Json if objects.is_empty() => "[]\n".to_string(),
        Encoding::Json => {
            let items: Vec<String> = objects.iter().map(|o| format!("  {}", o.text)).collect();
            format!("[\n{}\n]\n", items.join(",\n"))
        }
    }
}

/// One file per object, `NN-kind-name.ext`, so that `kubectl apply -f DIR`
/// (which goes in file name order) applies them in order. Files of an
/// earlier build that this one no longer produces are removed.
pub fn write_files(out: &Path, objects: &[Object], format: Encoding) -> anyhow::Result<()> {
    fs::create_dir_all(out)?;
    let ext = match format {
        Encoding::Yaml => "yaml",
        Encoding::Json => "json",
    };
    let width = objects.len().to_string().len().max(2);
    let mut names = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let mut name = String::new();
        write!(name, "{:0width$}-{}-{}.{ext}", i + 1, o.kind.to_lowercase(), o.name)?;
        let data = match format {
            Encoding::Yaml => o.text.clone(),
            Encoding::Json => format!("{}\n", o.text.replace("\n  ", "\n")),
        };
        write_atomic(&out.join(&name), data.as_bytes())?;
        names.push(name);
    }
    for entry in fs::read_dir(out)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if is_rendered_file(&name) && !names.contains(&name) {
            fs::remove_file(out.join(&name))?;
        }
    }
    Ok(())
}

/// Whether a file name has the shape `write_files` gives its files.
fn is_rendered_file(name: &str) -> bool {
    let Some((index, rest)) = name.split_once('-') else { return false };
    index.len() >= 2 && index.bytes().all(|b| b.is_ascii_digit()) && rest.contains('-') && (rest.ends_with(".yaml") || rest.ends_with(".json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, ns: &str, name: &str) -> Object {
        Object { api_version: "v1".into(), kind: kind.into(), namespace: ns.into(), name: name.into(), text: String::new() }
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
