//! What changed between two JSON values, field by field: `opm mod update
//! --diff` compares renders with it, `opm diff` the cluster's objects.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// `spec.replicas`, `spec.template.spec.containers[0].image`.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// Every leaf where `before` and `after` differ (a field only one side has
/// is one change), in key order.
pub fn changes(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<FieldChange>) {
    let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => walk(&join(k), p, q, out),
                    (p, q) => out.push(FieldChange { path: join(k), before: p.cloned(), after: q.cloned() }),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let p = format!("{path}[{i}]");
                match (x.get(i), y.get(i)) {
                    (Some(u), Some(v)) => walk(&p, u, v, out),
                    (u, v) => out.push(FieldChange { path: p, before: u.cloned(), after: v.cloned() }),
                }
            }
        }
        _ if a != b => out.push(FieldChange { path: path.to_string(), before: Some(a.clone()), after: Some(b.clone()) }),
        _ => {}
    }
}

/// One change as a line: `spec.replicas: 2 -> 3`.
pub fn describe(c: &FieldChange) -> String {
    let show = |v: &Option<Value>| v.as_ref().map_or("(none)".to_string(), |v| v.to_string());
    format!("{}: {} -> {}", c.path, show(&c.before), show(&c.after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaves_added_removed_and_changed() {
        let a = json!({"spec": {"replicas": 2, "ports": [80], "old": true}});
        let b = json!({"spec": {"replicas": 3, "ports": [80, 443], "new": 1}});
        let got: Vec<String> = changes(&a, &b).iter().map(describe).collect();
        assert_eq!(got, ["spec.new: (none) -> 1", "spec.old: true -> (none)", "spec.ports[1]: (none) -> 443", "spec.replicas: 2 -> 3"]);
        assert!(changes(&a, &a).is_empty());
    }
}
