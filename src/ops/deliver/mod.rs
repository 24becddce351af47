//! `opm apply | diff | status | delete | rollback`: a release rendered (its
//! dependencies proven against cue.mod/opm.sum and the signature policy on
//! the way, before the cluster is contacted), planned (cluster::plan), and
//! the calls made through the Context's cluster client.

mod apply;
mod diff;
mod status;

pub use apply::{apply, delete, rollback, wait, Applied, ApplyOptions, Deleted};
pub use diff::{diff, DiffReport, Difference};
pub use status::{status, ObjectStatus, StatusReport};

use super::render::{self, RenderOptions};
use super::Workspace;
use crate::cluster::inventory::{self, Inventory, Provenance};
use crate::cluster::object::ObjectRef;
use crate::cluster::plan::Manifest;
use crate::cluster::{Cluster, ErrorKind};
use crate::context::Context;
use crate::cue::{Encoding, ReleaseKind};
use crate::error::{fail, Kind};
use serde_json::Value;
use std::path::PathBuf;

/// The release to deliver, as `opm mod build` and `opm bundle build` take
/// it.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    pub dir: PathBuf,
    pub values: Vec<PathBuf>,
    /// None: the module's or bundle's metadata.name.
    pub name: Option<String>,
    pub tags: Vec<String>,
}

/// A rendered release, ready to plan.
#[derive(Debug)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub kind: ReleaseKind,
    pub package: String,
    /// The objects and the module each came from.
    pub objects: Vec<(Value, Option<Provenance>)>,
    /// Every module version of the release: opm.sum's pins and the local
    /// module.
    pub modules: Vec<Provenance>,
    pub values_digest: String,
}

/// Renders the module release in `opts.dir`, else its bundle release,
/// as JSON objects with their provenance. The dependencies are proven on
/// the way (exit 7 or 8 on a mismatch or an unsigned version).
pub fn render_release(ctx: &Context, opts: &ReleaseOptions, namespace: &str) -> anyhow::Result<Release> {
    let ws = Workspace::open_to_load(ctx, &opts.dir)?;
    let mut first_error = None;
    for kind in [ReleaseKind::Module, ReleaseKind::Bundle] {
        let ropts = RenderOptions {
            dir: opts.dir.clone(),
            kind,
            values: opts.values.clone(),
            name: opts.name.clone(),
            namespace: namespace.to_string(),
            tags: opts.tags.clone(),
            encoding: Encoding::Json,
            use_results: true,
        };
        let rendered = match render::render_in(&ws, &ropts) {
            Ok(r) => r,
            Err(e) if render::declares_no_release(&e) => {
                first_error.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let main_module = ws.main_file().map(|m| m.module.module).unwrap_or_default();
        let deps = ws.loadable_deps()?;
        let pinned = |module: &str| {
            let mv = deps.iter().find(|mv| mv.module() == module)?;
            let digest = ws.pins.as_ref().and_then(|p| p.get(mv)).map(|d| d.manifest.clone()).unwrap_or_default();
            Some(Provenance { module: module.to_string(), version: mv.version().to_string(), digest })
        };
        let by_name = |name: &str| {
            let m = rendered.modules.iter().find(|m| m.name == name)?;
            pinned(&m.api_version).or_else(|| Some(Provenance { module: m.api_version.clone(), version: m.version.clone(), digest: String::new() }))
        };
        let mut objects = Vec::new();
        for o in &rendered.objects {
            let value: Value = serde_json::from_str(&o.text)?;
            let part_of = value["metadata"]["labels"]["app.kubernetes.io/part-of"].as_str().unwrap_or("");
            objects.push((value.clone(), by_name(part_of)));
        }
        let mut modules: Vec<Provenance> = ws
            .pins
            .iter()
            .flatten()
            .map(|(mv, d)| Provenance { module: mv.module().to_string(), version: mv.version().to_string(), digest: d.manifest.clone() })
            .collect();
        if !main_module.is_empty() {
            let version = rendered.modules.iter().find(|m| m.api_version == main_module).map_or("(local)".to_string(), |m| m.version.clone());
            modules.push(Provenance { module: main_module, version, digest: String::new() });
        }
        let mut values = Vec::new();
        for file in &opts.values {
            values.extend(crate::registry::sha256(&fs_err::read(file)?).into_bytes());
        }
        let values_digest = if values.is_empty() { String::new() } else { crate::registry::sha256(&values) };
        return Ok(Release { name: rendered.name, namespace: namespace.to_string(), kind, package: rendered.package, objects, modules, values_digest });
    }
    Err(first_error.unwrap_or_else(|| fail(Kind::Other, "no release to deliver")))
}

/// The release's inventory, empty when it was never applied.
pub(crate) fn read_inventory(cluster: &Cluster, name: &str, namespace: &str) -> anyhow::Result<Inventory> {
    let Some(secret) = cluster.block_on(cluster.get(&inventory::secret_ref(name, namespace)))? else { return Ok(Inventory::default()) };
    Inventory::from_secret(&secret)
        .map_err(|why| fail(Kind::Other, format!("the inventory of release {name} (Secret {namespace}/{}) is damaged: {why}", inventory::secret_name(name))))
}

/// Which of `names` are namespaces the cluster does not have.
pub(crate) fn missing_namespaces<'a>(cluster: &Cluster, names: impl IntoIterator<Item = &'a str>) -> anyhow::Result<Vec<String>> {
    let names: std::collections::BTreeSet<&str> = names.into_iter().filter(|n| !n.is_empty()).collect();
    let mut missing = Vec::new();
    for ns in names {
        let r = ObjectRef { api_version: "v1".into(), kind: "Namespace".into(), namespace: String::new(), name: ns.to_string() };
        if cluster.block_on(cluster.get(&r))?.is_none() {
            missing.push(ns.to_string());
        }
    }
    Ok(missing)
}

/// Each object with its scope: from the cluster's discovery, else from a
/// CustomResourceDefinition of the same release (not yet applied).
pub(crate) fn manifests(cluster: &Cluster, objects: &[(Value, Option<Provenance>)]) -> anyhow::Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for (object, provenance) in objects {
        let r = ObjectRef::of(object).ok_or_else(|| fail(Kind::Invalid, "a rendered object has no apiVersion, kind or metadata.name"))?;
        let namespaced = match cluster.block_on(cluster.resource(&r.api_version, &r.kind)) {
            Ok(res) => res.namespaced,
            Err(e) if e.kind == ErrorKind::NotFound => match crd_scope(objects, &r) {
                Some(namespaced) => namespaced,
                None => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        out.push(Manifest { object: object.clone(), namespaced, provenance: provenance.clone() });
    }
    Ok(out)
}

/// Whether a CRD among `objects` defines the kind of `r`, and its scope.
fn crd_scope(objects: &[(Value, Option<Provenance>)], r: &ObjectRef) -> Option<bool> {
    objects.iter().map(|(o, _)| o).find_map(|o| {
        let spec = &o["spec"];
        let defines = o["kind"] == "CustomResourceDefinition"
            && spec["group"].as_str() == Some(r.group())
            && spec["names"]["kind"].as_str() == Some(&r.kind)
            && spec["versions"].as_array().is_some_and(|vs| vs.iter().any(|v| format!("{}/{}", r.group(), v["name"].as_str().unwrap_or("")) == r.api_version));
        defines.then(|| spec["scope"] != "Cluster")
    })
}
