//! `opm status`: the release as its inventory records it, each object's
//! health and drift, and the module version it came from.

use super::read_inventory;
use crate::cluster::health::{self, Health};
use crate::cluster::object::{meta_value, ObjectRef, DIGEST_ANNOTATION, MODULE_ANNOTATION};
use crate::cluster::plan;
use crate::cluster::{Apply, Cluster};
use crate::context::Context;
use crate::error::{fail, Kind};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Serialize)]
pub struct ObjectStatus {
    pub object: String,
    /// "ready", "progressing", "failed" or "missing".
    pub health: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Fields that differ from the revision's apply (someone changed them);
    /// None when it cannot be told (the object is missing, or the revision
    /// no longer keeps its manifests).
    pub drift: Option<Vec<String>>,
    /// module@version and the manifest digest pinned in opm.sum.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub module: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub digest: String,
}

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub release: String,
    pub namespace: String,
    pub revision: u32,
    pub applied_at: String,
    pub modules: Vec<crate::cluster::inventory::Provenance>,
    pub objects: Vec<ObjectStatus>,
}

pub fn status(ctx: &Context, name: &str) -> anyhow::Result<StatusReport> {
    let cluster = ctx.cluster()?;
    let namespace = cluster.namespace.clone();
    let inventory = read_inventory(cluster, name, &namespace)?;
    let latest = inventory.latest().ok_or_else(|| fail(Kind::NotFound, format!("release {name} is not in namespace {namespace}: apply it first")))?;
    let indexes: Vec<usize> = (0..latest.objects.len()).collect();
    let objects = cluster.block_on(cluster.each(&indexes, |&i| one(cluster, &latest.objects[i], latest.manifests.get(i))));
    Ok(StatusReport {
        release: name.to_string(),
        namespace,
        revision: latest.number,
        applied_at: latest.applied_at.clone(),
        modules: latest.modules.clone(),
        objects: objects.into_iter().collect::<anyhow::Result<_>>()?,
    })
}

async fn one(cluster: &Cluster, r: &ObjectRef, applied: Option<&Value>) -> anyhow::Result<ObjectStatus> {
    let Some(live) = cluster.get(r).await? else {
        return Ok(ObjectStatus {
            object: r.to_string(),
            health: "missing".into(),
            reason: "deleted since the apply".into(),
            drift: None,
            module: String::new(),
            digest: String::new(),
        });
    };
    // Readiness with no grace left: status is read long after the apply.
    let (health, reason) = match health::health(&live, Duration::MAX) {
        Health::Ready => ("ready", String::new()),
        Health::Progressing(why) => ("progressing", why),
        Health::Failed(why) => ("failed", why),
    };
    let drift = match applied {
        Some(manifest) => {
            let dry = cluster.apply(manifest, Apply { dry_run: true, force: true }).await?;
            Some(crate::fields::changes(&plan::clean(&live), &plan::clean(&dry)).iter().map(crate::fields::describe).collect())
        }
        None => None,
    };
    let annotation = |key| meta_value(&live, "annotations", key).unwrap_or("").to_string();
    Ok(ObjectStatus {
        object: r.to_string(),
        health: health.into(),
        reason,
        drift,
        module: annotation(MODULE_ANNOTATION),
        digest: annotation(DIGEST_ANNOTATION),
    })
}
