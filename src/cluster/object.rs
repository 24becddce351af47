//! The vocabulary of delivery: which object (an [`ObjectRef`]), where its
//! kind is served (an [`ApiResource`]), and the labels and annotations opm
//! puts on what it applies. Pure: no I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The field manager of every server-side apply opm makes.
pub const FIELD_MANAGER: &str = "opm";
/// Ownership labels: an object carrying both is this release's, and only
/// such an object is ever pruned or deleted.
pub const RELEASE_LABEL: &str = "opmodel.dev/release";
pub const RELEASE_NAMESPACE_LABEL: &str = "opmodel.dev/release-namespace";
/// Provenance: the module path@version an object was rendered from, and
/// the manifest digest cue.mod/opm.sum pins for it.
pub const MODULE_ANNOTATION: &str = "opmodel.dev/module";
pub const DIGEST_ANNOTATION: &str = "opmodel.dev/digest";
/// `opmodel.dev/keep: "true"`: never pruned, never deleted by opm.
pub const KEEP_ANNOTATION: &str = "opmodel.dev/keep";

/// One object of a cluster: kind and name. Ordered by kind, namespace and
/// name; printed as `Deployment shop/web` (cluster-scoped: without the
/// namespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    /// The object's own apiVersion, kind, namespace and name; None when
    /// one is missing.
    pub fn of(object: &Value) -> Option<ObjectRef> {
        let s = |v: &Value| v.as_str().map(str::to_string);
        Some(ObjectRef {
            api_version: s(&object["apiVersion"])?,
            kind: s(&object["kind"])?,
            namespace: s(&object["metadata"]["namespace"]).unwrap_or_default(),
            name: s(&object["metadata"]["name"]).filter(|n| !n.is_empty())?,
        })
    }

    /// The API group ("" for the core group).
    pub fn group(&self) -> &str {
        group_version(&self.api_version).0
    }

    /// Which object this is, whatever version of its group names it: a
    /// release that moves a kind to another version keeps the object.
    pub fn identity(&self) -> (&str, &str, &str, &str) {
        (self.group(), &self.kind, &self.namespace, &self.name)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// `apps/v1` → ("apps", "v1"); `v1` → ("", "v1").
pub fn group_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// How a kind is served: its resource (plural) name and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResource {
    pub api_version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl ApiResource {
    /// The path of the collection: `/api/v1/namespaces/ns/configmaps`,
    /// `/apis/apiextensions.k8s.io/v1/customresourcedefinitions`.
    pub fn collection(&self, namespace: &str) -> String {
        let root = match group_version(&self.api_version) {
            ("", v) => format!("/api/{v}"),
            (g, v) => format!("/apis/{g}/{v}"),
        };
        if self.namespaced {
            format!("{root}/namespaces/{namespace}/{}", self.plural)
        } else {
            format!("{root}/{}", self.plural)
        }
    }

    /// The path of one object of this kind.
    pub fn path(&self, r: &ObjectRef) -> String {
        format!("{}/{}", self.collection(&r.namespace), r.name)
    }
}

/// The path of a group-version's resource list (discovery).
pub fn discovery_path(api_version: &str) -> String {
    match group_version(api_version) {
        ("", v) => format!("/api/{v}"),
        (g, v) => format!("/apis/{g}/{v}"),
    }
}

/// The label and annotation maps of an object, created when missing.
pub fn meta_map<'a>(object: &'a mut Value, field: &str) -> &'a mut serde_json::Map<String, Value> {
    let meta = &mut object["metadata"];
    if !meta[field].is_object() {
        meta[field] = Value::Object(Default::default());
    }
    meta[field].as_object_mut().expect("made an object above")
}

/// A label or annotation of an object, if it has one.
pub fn meta_value<'a>(object: &'a Value, field: &str, key: &str) -> Option<&'a str> {
    object["metadata"][field][key].as_str()
}

/// Whether `object` carries the ownership labels of release `name` in
/// `namespace`.
pub fn owned_by(object: &Value, name: &str, namespace: &str) -> bool {
    meta_value(object, "labels", RELEASE_LABEL) == Some(name) && meta_value(object, "labels", RELEASE_NAMESPACE_LABEL) == Some(namespace)
}

/// Whether `object` asks to be kept (never pruned or deleted by opm).
pub fn is_kept(object: &Value) -> bool {
    meta_value(object, "annotations", KEEP_ANNOTATION) == Some("true")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_of_core_group_and_cluster_scoped_kinds() {
        let cm = ApiResource { api_version: "v1".into(), kind: "ConfigMap".into(), plural: "configmaps".into(), namespaced: true };
        let r = ObjectRef::of(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}})).unwrap();
        assert_eq!(cm.path(&r), "/api/v1/namespaces/ns/configmaps/a");
        assert_eq!(r.to_string(), "ConfigMap ns/a");
        let crd = ApiResource {
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
            namespaced: false,
        };
        let r = ObjectRef::of(&json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "w.example.com"}}))
            .unwrap();
        assert_eq!(crd.path(&r), "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/w.example.com");
        assert_eq!(r.to_string(), "CustomResourceDefinition w.example.com");
        assert_eq!(discovery_path("apps/v1"), "/apis/apps/v1");
        assert!(ObjectRef::of(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})).is_none());
    }

    #[test]
    fn ownership_needs_both_labels() {
        let mut o = json!({"metadata": {"name": "a"}});
        meta_map(&mut o, "labels").insert(RELEASE_LABEL.into(), json!("blog"));
        assert!(!owned_by(&o, "blog", "web"));
        meta_map(&mut o, "labels").insert(RELEASE_NAMESPACE_LABEL.into(), json!("web"));
        assert!(owned_by(&o, "blog", "web") && !owned_by(&o, "blog", "other"));
        assert!(!is_kept(&o));
        meta_map(&mut o, "annotations").insert(KEEP_ANNOTATION.into(), json!("true"));
        assert!(is_kept(&o));
    }
}
