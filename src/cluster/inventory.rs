//! A release's record in its cluster: one Secret in the release's
//! namespace, `opm-release.<name>`, of type `opmodel.dev/release`, one
//! data key per revision (`revision.N`, JSON), the last [`HISTORY`] kept,
//! and `pending`: objects that may exist without a revision listing them
//! (those an apply is about to create, those a prune has still to
//! delete), so that an interrupted apply or prune loses none. Needs no CRD
//! of opm's. A revision is written after a successful apply and before
//! pruning. Pure: conversions only.

use super::object::{ObjectRef, RELEASE_LABEL, RELEASE_NAMESPACE_LABEL};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Revisions kept (Helm keeps 10 too).
pub const HISTORY: usize = 10;
pub const SECRET_TYPE: &str = "opmodel.dev/release";
/// A Secret holds at most 1 MiB; the manifests of older revisions are
/// dropped (their lists kept) to stay well below.
const MAX_SIZE: usize = 768 << 10;

/// Where a delivered object was rendered from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `opmodel.dev/examples/postgres@v0`.
    pub module: String,
    /// `v0.1.0`; the module's own metadata.version when it is the local one.
    pub version: String,
    /// The manifest digest cue.mod/opm.sum pins; empty for the local module.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
}

/// One apply of the release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub number: u32,
    /// RFC 3339, UTC.
    pub applied_at: String,
    /// The package applied (its import path) and the release kind.
    pub package: String,
    pub kind: String,
    /// Every dependency pinned in cue.mod/opm.sum, and the local module.
    pub modules: Vec<Provenance>,
    /// sha256 of the values files, in order.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub values_digest: String,
    pub objects: Vec<ObjectRef>,
    /// Each object's resourceVersion and when opm's apply last changed it
    /// (its managed fields' time), in the order of `objects`: the next
    /// apply tells what it changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    /// The objects as applied, for `opm rollback`; empty when dropped for
    /// size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<Value>,
}

/// Every revision of a release, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub revisions: Vec<Revision>,
    /// Objects that may exist and are the release's, though no revision
    /// lists them: the next apply prunes those it does not keep.
    pub pending: Vec<ObjectRef>,
    /// The Secret's resourceVersion when read: it is written back only
    /// over that version (two applies at once cannot both win).
    pub resource_version: Option<String>,
}

/// The name of the release's Secret.
pub fn secret_name(release: &str) -> String {
    format!("opm-release.{release}")
}

impl Inventory {
    pub fn latest(&self) -> Option<&Revision> {
        self.revisions.last()
    }

    pub fn revision(&self, number: u32) -> Option<&Revision> {
        self.revisions.iter().find(|r| r.number == number)
    }

    pub fn next_number(&self) -> u32 {
        self.latest().map_or(1, |r| r.number + 1)
    }

    /// What may be the release's in the cluster: the latest revision's
    /// objects and the pending ones.
    pub fn known(&self) -> Vec<ObjectRef> {
        let mut known: Vec<ObjectRef> = self.latest().map(|r| r.objects.clone()).unwrap_or_default();
        for p in &self.pending {
            if !known.iter().any(|k| k.identity() == p.identity()) {
                known.push(p.clone());
            }
        }
        known
    }

    /// Adds a revision, keeping the last [`HISTORY`] and the Secret's size.
    pub fn push(&mut self, revision: Revision) {
        self.revisions.push(revision);
        let excess = self.revisions.len().saturating_sub(HISTORY);
        self.revisions.drain(..excess);
        let mut size: usize = self.revisions.iter().map(|r| serde_json::to_vec(r).map_or(0, |v| v.len())).sum();
        let older = self.revisions.len() - 1;
        for r in &mut self.revisions[..older] {
            if size <= MAX_SIZE {
                break;
            }
            let before = serde_json::to_vec(&r.manifests).map_or(0, |v| v.len());
            r.manifests.clear();
            size -= before;
        }
    }

    /// Reads the inventory from its Secret; a revision that does not parse
    /// is an error, never skipped (a prune must not miss objects).
    pub fn from_secret(secret: &Value) -> Result<Inventory, String> {
        let mut inventory = Inventory { resource_version: secret["metadata"]["resourceVersion"].as_str().map(str::to_string), ..Inventory::default() };
        if let Some(data) = secret["data"].as_object() {
            for (key, value) in data {
                let bytes = || base64::engine::general_purpose::STANDARD.decode(value.as_str().unwrap_or("")).map_err(|e| format!("{key}: {e}"));
                if key.starts_with("revision.") {
                    inventory.revisions.push(serde_json::from_slice::<Revision>(&bytes()?).map_err(|e| format!("{key}: {e}"))?);
                } else if key == "pending" {
                    inventory.pending = serde_json::from_slice(&bytes()?).map_err(|e| format!("{key}: {e}"))?;
                }
            }
        }
        inventory.revisions.sort_by_key(|r| r.number);
        Ok(inventory)
    }

    /// The Secret that holds the inventory of release `name` in `namespace`.
    pub fn to_secret(&self, name: &str, namespace: &str) -> Value {
        let encode = |v: Vec<u8>| Value::String(base64::engine::general_purpose::STANDARD.encode(v));
        let mut data: serde_json::Map<String, Value> =
            self.revisions.iter().map(|r| (format!("revision.{}", r.number), encode(serde_json::to_vec(r).expect("a revision serializes")))).collect();
        if !self.pending.is_empty() {
            data.insert("pending".into(), encode(serde_json::to_vec(&self.pending).expect("refs serialize")));
        }
        let mut secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": SECRET_TYPE,
            "metadata": {
                "name": secret_name(name),
                "namespace": namespace,
                "labels": {
                    RELEASE_LABEL: name,
                    RELEASE_NAMESPACE_LABEL: namespace,
                    "app.kubernetes.io/managed-by": "opm",
                },
            },
            "data": data,
        });
        if let Some(v) = &self.resource_version {
            secret["metadata"]["resourceVersion"] = Value::String(v.clone());
        }
        secret
    }
}

/// The inventory Secret's own reference.
pub fn secret_ref(name: &str, namespace: &str) -> ObjectRef {
    ObjectRef { api_version: "v1".into(), kind: "Secret".into(), namespace: namespace.into(), name: secret_name(name) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(number: u32, manifest_size: usize) -> Revision {
        Revision {
            number,
            applied_at: "2026-12-04T00:00:00Z".into(),
            package: "example.com/app".into(),
            kind: "module".into(),
            modules: vec![Provenance { module: "example.com/db@v0".into(), version: "v0.1.0".into(), digest: "sha256:ab".into() }],
            values_digest: String::new(),
            objects: vec![ObjectRef { api_version: "v1".into(), kind: "ConfigMap".into(), namespace: "ns".into(), name: "a".into() }],
            versions: vec!["7".into()],
            manifests: vec![json!({"data": "x".repeat(manifest_size)})],
        }
    }

    #[test]
    fn round_trips_through_its_secret_and_keeps_the_last_ten() {
        let mut inv = Inventory::default();
        for n in 1..=12 {
            inv.push(revision(n, 10));
        }
        assert_eq!(inv.revisions.len(), HISTORY);
        assert_eq!(inv.revisions[0].number, 3);
        let secret = inv.to_secret("blog", "web");
        assert_eq!(secret["metadata"]["name"], "opm-release.blog");
        assert_eq!(Inventory::from_secret(&secret).unwrap(), inv);
        inv.pending = vec![ObjectRef { api_version: "v1".into(), kind: "ConfigMap".into(), namespace: "ns".into(), name: "b".into() }];
        inv.resource_version = Some("42".into());
        let secret = inv.to_secret("blog", "web");
        assert_eq!(secret["metadata"]["resourceVersion"], "42");
        assert_eq!(Inventory::from_secret(&secret).unwrap(), inv);
        assert_eq!(inv.known().len(), 2);
        assert_eq!(inv.next_number(), 13);
    }

    #[test]
    fn older_manifests_go_first_when_too_big() {
        let mut inv = Inventory::default();
        for n in 1..=4 {
            inv.push(revision(n, 300 << 10));
        }
        assert!(inv.revisions[0].manifests.is_empty() && inv.revisions[1].manifests.is_empty());
        assert!(!inv.revisions[3].manifests.is_empty());
        assert_eq!(inv.revisions[0].objects.len(), 1, "the list stays, for pruning");
    }
}
