//! What an apply will do, decided before any call: the objects as they
//! are sent (namespace filled in, ownership labels, provenance), in
//! stages, and what the previous revision had that this one has not (the
//! prune candidates). Pure: ops/deliver makes the calls.

use super::inventory::Provenance;
use super::object::{meta_map, ObjectRef, DIGEST_ANNOTATION, MODULE_ANNOTATION, RELEASE_LABEL, RELEASE_NAMESPACE_LABEL};
use serde_json::Value;

/// A rendered object, with what the cluster (or a CRD of the release)
/// says of its kind and where it came from.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub object: Value,
    pub namespaced: bool,
    pub provenance: Option<Provenance>,
}

/// The stages of an apply, each applied in parallel, one after another:
/// Namespaces and CRDs (then waited for until established), other
/// cluster-scoped objects, the rest.
#[derive(Debug, Default)]
pub struct Plan {
    pub stages: [Vec<Value>; 3],
    /// Objects of the previous revision missing from this one, namespaced
    /// ones first and CRDs last (the reverse of the stages).
    pub prune: Vec<ObjectRef>,
}

impl Plan {
    /// Every object, in apply order.
    pub fn objects(&self) -> impl Iterator<Item = &Value> {
        self.stages.iter().flatten()
    }

    pub fn refs(&self) -> Vec<ObjectRef> {
        self.objects().filter_map(ObjectRef::of).collect()
    }
}

/// Kinds applied in the first stage.
pub fn is_first_stage(kind: &str) -> bool {
    matches!(kind, "Namespace" | "CustomResourceDefinition")
}

/// The plan of applying `manifests` as release `name` in `namespace` when
/// `previous` may be the release's in the cluster (the inventory's
/// latest revision and its pending objects).
pub fn plan(manifests: Vec<Manifest>, name: &str, namespace: &str, previous: &[ObjectRef]) -> Plan {
    let mut plan = Plan::default();
    for m in manifests {
        let mut object = m.object;
        if m.namespaced {
            if object["metadata"]["namespace"].as_str().is_none_or(str::is_empty) {
                object["metadata"]["namespace"] = Value::String(namespace.to_string());
            }
        } else if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("namespace");
        }
        let labels = meta_map(&mut object, "labels");
        labels.insert(RELEASE_LABEL.into(), name.into());
        labels.insert(RELEASE_NAMESPACE_LABEL.into(), namespace.into());
        if let Some(p) = &m.provenance {
            let annotations = meta_map(&mut object, "annotations");
            annotations.insert(MODULE_ANNOTATION.into(), module_version(p).into());
            if !p.digest.is_empty() {
                annotations.insert(DIGEST_ANNOTATION.into(), p.digest.clone().into());
            }
        }
        let kind = object["kind"].as_str().unwrap_or("");
        let stage = if is_first_stage(kind) {
            0
        } else if m.namespaced {
            2
        } else {
            1
        };
        plan.stages[stage].push(object);
    }
    // An object is the same whatever version of its group names it.
    let next = plan.refs();
    let mut gone: Vec<ObjectRef> = previous.iter().filter(|r| !next.iter().any(|n| n.identity() == r.identity())).cloned().collect();
    let rank = |r: &ObjectRef| {
        if is_first_stage(&r.kind) {
            2
        } else if r.namespace.is_empty() {
            1
        } else {
            0
        }
    };
    gone.sort_by_key(|r| rank(r));
    plan.prune = gone;
    plan
}

/// `example.com/db@v1.2.0`, as cue names a module version (the major of
/// the module path left out; a metadata version `0.3.0` read as `v0.3.0`).
pub fn module_version(p: &Provenance) -> String {
    let base = p.module.split_once('@').map_or(p.module.as_str(), |(b, _)| b);
    let v = if p.version.starts_with('v') { "" } else { "v" };
    format!("{base}@{v}{}", p.version)
}

/// A live or dry-run object with what the server keeps for itself taken
/// out (managedFields, status, uid, timestamps, versions), and a Secret's
/// values masked: what `opm diff` compares.
pub fn clean(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(map) = o.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = o["metadata"].as_object_mut() {
        for field in
            ["managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"]
        {
            meta.remove(field);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            a.remove("deployment.kubernetes.io/revision");
        }
        if meta.get("annotations").and_then(Value::as_object).is_some_and(|a| a.is_empty()) {
            meta.remove("annotations");
        }
    }
    if o["kind"] == "Secret" && o["apiVersion"] == "v1" {
        for field in ["data", "stringData"] {
            if let Some(values) = o[field].as_object_mut() {
                for v in values.values_mut() {
                    *v = Value::String(format!("(masked: {})", short_digest(v)));
                }
            }
        }
    }
    o
}

/// A digest of a value salted once per run: equal values show alike and a
/// changed one shows, while a log of it cannot confirm a guess.
fn short_digest(v: &Value) -> String {
    use sha2::Digest as _;
    static SALT: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
    let salt = SALT.get_or_init(|| {
        let mut salt = [0u8; 16];
        // Without randomness the salt is zero: still no value is shown.
        let _ = aws_lc_rs::rand::fill(&mut salt);
        salt
    });
    let digest = sha2::Sha256::new().chain_update(salt).chain_update(v.to_string().as_bytes()).finalize();
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("salted sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(kind: &str, name: &str, namespaced: bool) -> Manifest {
        Manifest { object: json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}), namespaced, provenance: None }
    }

    #[test]
    fn stages_namespaces_and_ownership() {
        let p = plan(
            vec![manifest("ConfigMap", "c", true), manifest("CustomResourceDefinition", "w.example.com", false), manifest("ClusterRole", "r", false)],
            "blog",
            "web",
            &[],
        );
        assert_eq!(p.stages[0][0]["kind"], "CustomResourceDefinition");
        assert_eq!(p.stages[1][0]["kind"], "ClusterRole");
        assert_eq!(p.stages[2][0]["metadata"]["namespace"], "web");
        assert!(p.stages[1][0]["metadata"].get("namespace").is_none());
        assert_eq!(p.stages[2][0]["metadata"]["labels"][RELEASE_LABEL], "blog");
        assert!(p.prune.is_empty());
    }

    #[test]
    fn prune_is_what_the_previous_revision_had_namespaced_first() {
        let r = |kind: &str, ns: &str, name: &str| ObjectRef { api_version: "v1".into(), kind: kind.into(), namespace: ns.into(), name: name.into() };
        let previous = [r("CustomResourceDefinition", "", "old.example.com"), r("ConfigMap", "web", "c"), r("ConfigMap", "web", "gone")];
        let p = plan(vec![manifest("ConfigMap", "c", true)], "blog", "web", &previous);
        assert_eq!(p.prune, [r("ConfigMap", "web", "gone"), r("CustomResourceDefinition", "", "old.example.com")]);
        // Another version of the same group is the same object.
        let moved = ObjectRef { api_version: "v2".into(), ..r("ConfigMap", "web", "c") };
        assert!(plan(vec![manifest("ConfigMap", "c", true)], "blog", "web", &[moved]).prune.is_empty());
    }

    #[test]
    fn clean_drops_server_fields_and_masks_secrets() {
        let live =
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "uid": "u", "managedFields": []}, "data": {"k": "c2VjcmV0"}, "status": {}});
        let c = clean(&live);
        assert!(c["metadata"].get("uid").is_none() && c.get("status").is_none());
        assert!(c["data"]["k"].as_str().unwrap().starts_with("(masked: salted sha256:"));
        assert!(!c.to_string().contains("c2VjcmV0"));
    }
}
