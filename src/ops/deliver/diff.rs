//! `opm diff`: what an apply would do, from the server's own dry run (its
//! defaults, admission and immutable fields), nothing changed.

use super::apply::{is_immutable, judge, namespace_of};
use super::{manifests, missing_namespaces, read_inventory, render_release, ReleaseOptions};
use crate::cluster::object::ObjectRef;
use crate::cluster::plan;
use crate::cluster::{Apply, Cluster, ErrorKind};
use crate::context::Context;
use crate::fields::{self, FieldChange};
use serde::Serialize;
use serde_json::Value;

/// One object's difference.
#[derive(Debug, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Difference {
    Create {
        object: String,
    },
    Change {
        object: String,
        fields: Vec<FieldChange>,
    },
    Prune {
        object: String,
    },
    /// In the previous revision, not in this one, and left in place.
    Keep {
        object: String,
        why: String,
    },
    /// The server refuses the change: immutable fields (`--force` deletes
    /// and creates the object again).
    Immutable {
        object: String,
        message: String,
    },
    /// Another manager owns fields this apply sets (`--force-conflicts`).
    Conflict {
        object: String,
        message: String,
    },
}

impl Difference {
    /// Whether an apply has something to do for it.
    pub fn is_work(&self) -> bool {
        !matches!(self, Difference::Keep { .. })
    }
}

#[derive(Debug, Serialize)]
pub struct DiffReport {
    pub release: String,
    pub namespace: String,
    /// The revision an apply would make.
    pub revision: u32,
    pub differences: Vec<Difference>,
    /// Objects that are in sync.
    pub unchanged: usize,
}

/// What `opm apply` would do to the cluster for the release in `opts.dir`.
pub fn diff(ctx: &Context, opts: &ReleaseOptions, force_conflicts: bool, prune_storage: bool) -> anyhow::Result<DiffReport> {
    let namespace = namespace_of(ctx)?;
    let release = render_release(ctx, opts, &namespace)?;
    let cluster = ctx.cluster()?;
    let inventory = read_inventory(cluster, &release.name, &release.namespace)?;
    let plan = plan::plan(manifests(cluster, &release.objects)?, &release.name, &release.namespace, &inventory.known());
    let objects: Vec<&Value> = plan.objects().collect();
    // Their objects are creates: the server cannot dry-run into a missing
    // namespace.
    let missing = missing_namespaces(cluster, objects.iter().filter_map(|o| o["metadata"]["namespace"].as_str()))?;
    let answers = cluster.block_on(cluster.each(&objects, |o| one(cluster, o, &missing, force_conflicts)));
    let mut report = DiffReport {
        release: release.name.clone(),
        namespace: release.namespace.clone(),
        revision: inventory.next_number(),
        differences: vec![],
        unchanged: 0,
    };
    for answer in answers {
        match answer? {
            Some(d) => report.differences.push(d),
            None => report.unchanged += 1,
        }
    }
    for (r, kept) in judge(cluster, &plan.prune, &release.name, &release.namespace, prune_storage)? {
        report.differences.push(match kept {
            Some(why) => Difference::Keep { object: r.to_string(), why: why.into() },
            None => Difference::Prune { object: r.to_string() },
        });
    }
    Ok(report)
}

/// One object: the live one against the server's dry run of the apply.
async fn one(cluster: &Cluster, object: &Value, missing: &[String], force: bool) -> anyhow::Result<Option<Difference>> {
    let r = ObjectRef::of(object).expect("planned objects have names");
    let shown = r.to_string();
    if !r.namespace.is_empty() && missing.contains(&r.namespace) {
        return Ok(Some(Difference::Create { object: shown }));
    }
    // A kind its CRD (in this release) will define: not served yet.
    let live = match cluster.get(&r).await {
        Ok(live) => live,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(Some(Difference::Create { object: shown })),
        Err(e) => return Err(e.into()),
    };
    let dry = match cluster.apply(object, Apply { dry_run: true, force }).await {
        Ok(dry) => dry,
        Err(e) if e.kind == ErrorKind::Conflict => return Ok(Some(Difference::Conflict { object: shown, message: e.message })),
        Err(e) if e.kind == ErrorKind::Invalid && is_immutable(&e.message) => return Ok(Some(Difference::Immutable { object: shown, message: e.message })),
        Err(e) => return Err(e.into()),
    };
    let Some(live) = live else { return Ok(Some(Difference::Create { object: shown })) };
    let changes = fields::changes(&plan::clean(&live), &plan::clean(&dry));
    Ok((!changes.is_empty()).then_some(Difference::Change { object: shown, fields: changes }))
}
