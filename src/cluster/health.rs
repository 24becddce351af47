//! Whether an applied object is ready, from its status alone: one rule per
//! kind, as kstatus reads them. Pure: the caller fetches and waits.

use serde_json::Value;
use std::time::Duration;

/// How long a custom resource without conditions is given to grow some
/// before it counts as ready (it may have no notion of readiness).
pub const CONDITIONS_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ready,
    /// Not yet, and why ("2 of 3 replicas available").
    Progressing(String),
    /// Will not become ready without a change ("Job failed: BackoffLimitExceeded").
    Failed(String),
}

/// The health of `object`, `since` its apply.
pub fn health(object: &Value, since: Duration) -> Health {
    let status = &object["status"];
    let generation = object["metadata"]["generation"].as_i64();
    let observed = status["observedGeneration"].as_i64();
    let kind = object["kind"].as_str().unwrap_or("");
    let group = object["apiVersion"].as_str().and_then(|v| v.rsplit_once('/')).map_or("", |(g, _)| g);
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let builtin = matches!(group, "" | "apps" | "batch" | "networking.k8s.io" | "policy" | "rbac.authorization.k8s.io" | "storage.k8s.io" | "autoscaling");
    if let (Some(g), Some(o)) = (generation, observed) {
        if o < g {
            return Health::Progressing(format!("generation {g} not yet observed (at {o})"));
        }
    }
    match (group, kind) {
        ("apps", "Deployment") => {
            if let Some(c) = condition(object, "Progressing").filter(|c| c["reason"] == "ProgressDeadlineExceeded") {
                return Health::Failed(format!("progress deadline exceeded: {}", c["message"].as_str().unwrap_or("")));
            }
            if observed.is_none() {
                return Health::Progressing("not yet observed by its controller".into());
            }
            let want = object["spec"]["replicas"].as_i64().unwrap_or(1);
            let (updated, available, total) = (int(&status["updatedReplicas"]), int(&status["availableReplicas"]), int(&status["replicas"]));
            if updated < want {
                Health::Progressing(format!("{updated} of {want} replicas updated"))
            } else if total > updated {
                Health::Progressing(format!("{} old replicas pending termination", total - updated))
            } else if available < want {
                Health::Progressing(format!("{available} of {want} replicas available"))
            } else {
                Health::Ready
            }
        }
        ("apps", "StatefulSet") => {
            if observed.is_none() {
                return Health::Progressing("not yet observed by its controller".into());
            }
            let want = object["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = int(&status["readyReplicas"]);
            if ready < want {
                Health::Progressing(format!("{ready} of {want} replicas ready"))
            } else if status["updateRevision"].is_string() && status["currentRevision"] != status["updateRevision"] {
                Health::Progressing("rolling out a new revision".into())
            } else {
                Health::Ready
            }
        }
        ("apps", "DaemonSet") => {
            if observed.is_none() {
                return Health::Progressing("not yet observed by its controller".into());
            }
            let want = int(&status["desiredNumberScheduled"]);
            let (ready, updated) = (int(&status["numberReady"]), int(&status["updatedNumberScheduled"]));
            if updated < want || ready < want {
                Health::Progressing(format!("{ready} of {want} pods ready"))
            } else {
                Health::Ready
            }
        }
        ("batch", "Job") => {
            if let Some(c) = condition(object, "Failed").filter(|c| c["status"] == "True") {
                return Health::Failed(format!("Job failed: {}", c["reason"].as_str().or(c["message"].as_str()).unwrap_or("no reason given")));
            }
            if condition(object, "Complete").is_some_and(|c| c["status"] == "True") {
                Health::Ready
            } else {
                Health::Progressing(format!("{} of {} completions", int(&status["succeeded"]), object["spec"]["completions"].as_i64().unwrap_or(1)))
            }
        }
        ("", "PersistentVolumeClaim") => match status["phase"].as_str() {
            Some("Bound") => Health::Ready,
            Some("Lost") => Health::Failed("its volume is lost".into()),
            phase => Health::Progressing(format!("claim {}", phase.unwrap_or("not yet bound").to_lowercase())),
        },
        ("", "Service") if object["spec"]["type"] == "LoadBalancer" => {
            if status["loadBalancer"]["ingress"].as_array().is_some_and(|i| !i.is_empty()) {
                Health::Ready
            } else {
                Health::Progressing("waiting for a load balancer address".into())
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            if condition(object, "Established").is_some_and(|c| c["status"] == "True") {
                Health::Ready
            } else {
                Health::Progressing("not yet established".into())
            }
        }
        _ if builtin => Health::Ready,
        // A custom resource: its Ready condition, if it has conditions.
        _ => match condition(object, "Ready") {
            Some(c) if c["status"] == "True" => Health::Ready,
            Some(c) => Health::Progressing(format!("Ready is {}: {}", c["status"].as_str().unwrap_or("Unknown"), c["message"].as_str().unwrap_or(""))),
            None if status["conditions"].as_array().is_some_and(|c| !c.is_empty()) || since >= CONDITIONS_GRACE => Health::Ready,
            None => Health::Progressing("no conditions yet".into()),
        },
    }
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind)
}

/// Why a pod of a workload will not start, if one says so (crash loops,
/// images that cannot be pulled): fails a wait early. With the pod's name.
pub fn pod_failure(pod: &Value) -> Option<(String, String)> {
    let statuses = pod["status"]["containerStatuses"].as_array()?;
    statuses.iter().find_map(|s| {
        let waiting = &s["state"]["waiting"];
        let reason = waiting["reason"].as_str()?;
        let name = pod["metadata"]["name"].as_str().unwrap_or("?");
        matches!(reason, "CrashLoopBackOff" | "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "CreateContainerConfigError").then(|| {
            (name.to_string(), format!("pod {name} container {}: {reason}: {}", s["name"].as_str().unwrap_or("?"), waiting["message"].as_str().unwrap_or("")))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": status})
    }

    #[test]
    fn deployments_by_observed_generation_and_replicas() {
        assert!(matches!(health(&deployment(json!({})), Duration::ZERO), Health::Progressing(_)));
        assert!(matches!(
            health(&deployment(json!({"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2, "replicas": 2})), Duration::ZERO),
            Health::Progressing(_)
        ));
        let ready = json!({"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2, "replicas": 2});
        assert_eq!(health(&deployment(ready), Duration::ZERO), Health::Ready);
        let stuck = json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]});
        assert!(matches!(health(&deployment(stuck), Duration::ZERO), Health::Failed(_)));
    }

    #[test]
    fn jobs_claims_and_custom_resources() {
        let job = |c: Value| json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {}, "status": {"conditions": [c]}});
        assert_eq!(health(&job(json!({"type": "Complete", "status": "True"})), Duration::ZERO), Health::Ready);
        assert!(
            matches!(health(&job(json!({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"})), Duration::ZERO), Health::Failed(m) if m.contains("BackoffLimitExceeded"))
        );
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {}, "status": {"phase": "Pending"}});
        assert!(matches!(health(&pvc, Duration::ZERO), Health::Progressing(_)));
        let cr = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {}});
        assert!(matches!(health(&cr, Duration::ZERO), Health::Progressing(_)));
        assert_eq!(health(&cr, CONDITIONS_GRACE), Health::Ready);
        let not_ready =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        assert!(matches!(health(&not_ready, CONDITIONS_GRACE), Health::Progressing(_)));
        assert_eq!(health(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}), Duration::ZERO), Health::Ready);
    }

    #[test]
    fn crash_looping_pods_are_named() {
        let pod = json!({"metadata": {"name": "web-1"}, "status": {"containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}]}});
        assert_eq!(pod_failure(&pod).unwrap(), ("web-1".to_string(), "pod web-1 container app: CrashLoopBackOff: back-off".to_string()));
    }
}
