//! `opm apply | diff | status | delete | rollback` against a real etcd and
//! kube-apiserver on loopback (kube_server.rs): module and bundle releases,
//! CRDs with their custom resources, conflicts, immutable fields, pruning,
//! waiting, rollback, RBAC and an unreachable or stalled apiserver.

use crate::deps_diff::World;
use crate::kube_server::{cluster, TestCluster};
use crate::support::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

/// A module release: a web Deployment and Service, an immutable ConfigMap,
/// a CRD and one custom resource of it, and (with `extra`) a component
/// with a PVC, a ConfigMap, and a ConfigMap annotated to be kept.
const SHOP: &str = r#"package shop

import "opmodel.dev/core@v0"

module: core.#Module & {
	metadata: {
		apiVersion: "example.com/shop@v0"
		name:       "shop"
		version:    "0.1.0"
	}
	#config: {
		replicas: int | *1
		greeting: string | *"hello"
		extra:    bool | *true
		widget:   *"v1" | "v2"
	}
	values: #config

	#components: {
		web: core.#Container & core.#Replicas & core.#Expose & {
			spec: {
				container: {image: "nginx:1.27", ports: http: port: 8080}
				replicas: values.replicas
				expose: ports: http: port: 80
			}
		}
		settings: core.#ConfigMaps & {
			spec: configMaps: greeting: {data: text: values.greeting, immutable: true}
		}
		widgets: core.#Objects & {
			spec: objects: {
				crd: {
					apiVersion: "apiextensions.k8s.io/v1"
					kind:       "CustomResourceDefinition"
					metadata: name: "widgets.shop.example.com"
					spec: {
						group: "shop.example.com"
						scope: "Namespaced"
						names: {plural: "widgets", singular: "widget", kind: "Widget"}
						versions: [for v in ["v1", "v2"] {name: v, served: true, storage: v == "v1", schema: openAPIV3Schema: {type: "object", "x-kubernetes-preserve-unknown-fields": true}}]
					}
				}
				gadget: {
					apiVersion: "shop.example.com/\(values.widget)"
					kind:       "Widget"
					spec: size: 3
				}
			}
		}
		if values.extra {
			extra: core.#Container & core.#Volumes & core.#ConfigMaps & core.#Objects & {
				spec: {
					container: image: "busybox:1.36"
					volumes: data: {mountPath: "/data", size: "1Gi"}
					configMaps: "extra-config": data: a: "b"
					objects: "kept-config": {
						apiVersion: "v1"
						kind:       "ConfigMap"
						metadata: annotations: "opmodel.dev/keep": "true"
						data: c: "d"
					}
				}
			}
		}
	}
}
"#;

struct Shop {
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
    kubeconfig: PathBuf,
    ns: String,
}

impl Shop {
    fn new(name: &str) -> Shop {
        let c = cluster();
        let ns = c.unique(name);
        let dir = publishable("example.com/shop@v0", "");
        // The CRD is cluster-scoped: its group is the test's own.
        write(&dir.path().join("shop.cue"), &SHOP.replace("shop.example.com", &format!("{ns}.example.com")));
        let cache = tempdir();
        let kubeconfig = c.kubeconfig(cache.path(), &ns);
        let shop = Shop { dir, cache, kubeconfig, ns };
        let tidy = shop.opm(&["mod", "tidy"]);
        assert!(tidy.status.success(), "{}", stderr(&tidy));
        shop
    }

    fn opm(&self, args: &[&str]) -> Output {
        run(opm(self.cache.path()).current_dir(self.dir.path()).env("KUBECONFIG", &self.kubeconfig).args(args))
    }

    fn path(&self, collection: &str, name: &str) -> String {
        format!("/api/v1/namespaces/{}/{collection}/{name}", self.ns)
    }
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", out.status.code(), stdout(out), stderr(out));
    stdout(out) + &stderr(out)
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn deployment(c: &TestCluster, ns: &str, name: &str) -> Option<Value> {
    c.get(&format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}"))
}

/// The objects of the cluster that carry the release's label, as
/// `Kind/name`, from every kind the release uses.
fn owned(c: &TestCluster, ns: &str, release: &str) -> Vec<String> {
    let selector = format!("opmodel.dev/release={release}");
    let mut out = Vec::new();
    for collection in [
        format!("/api/v1/namespaces/{ns}/configmaps"),
        format!("/api/v1/namespaces/{ns}/services"),
        format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"),
        format!("/apis/apps/v1/namespaces/{ns}/deployments"),
        format!("/apis/{ns}.example.com/v1/namespaces/{ns}/widgets"),
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions".to_string(),
    ] {
        let list = c.get(&format!("{collection}?labelSelector={selector}")).unwrap_or(json!({"items": []}));
        let kind = list["kind"].as_str().unwrap_or("?").trim_end_matches("List");
        for item in list["items"].as_array().unwrap() {
            // Being deleted (a claim waits for a controller that is not
            // running to remove its protection finalizer) is gone.
            let deleting = item["metadata"]["deletionTimestamp"].is_string();
            if item["metadata"]["labels"]["opmodel.dev/release-namespace"] == ns && !deleting {
                out.push(format!("{kind}/{}", item["metadata"]["name"].as_str().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The inventory's latest revision.
fn latest_revision(c: &TestCluster, ns: &str, release: &str) -> Value {
    let secret = c.get(&format!("/api/v1/namespaces/{ns}/secrets/opm-release.{release}")).expect("the inventory Secret exists");
    let data = secret["data"].as_object().unwrap();
    let (_, text) = data.iter().max_by_key(|(k, _)| k.trim_start_matches("revision.").parse::<u32>().unwrap()).unwrap();
    use base64::Engine as _;
    serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(text.as_str().unwrap()).unwrap()).unwrap()
}

fn inventory_objects(revision: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        revision["objects"].as_array().unwrap().iter().map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), o["name"].as_str().unwrap())).collect();
    v.sort();
    v
}

#[test]
fn module_release_applies_with_its_crd_and_custom_resource_and_reapply_changes_nothing() {
    let c = cluster();
    let shop = Shop::new("apply");
    let out = ok(&shop.opm(&["apply", "--no-wait"]));
    assert!(out.contains("created Widget") && out.contains("revision 1"), "{out}");
    let web = deployment(c, &shop.ns, "web").expect("the Deployment exists");
    assert_eq!(web["metadata"]["labels"]["opmodel.dev/release"], "shop");
    assert_eq!(web["metadata"]["annotations"]["opmodel.dev/module"], "example.com/shop@v0.1.0", "provenance: {}", web["metadata"]);
    assert!(web["metadata"]["managedFields"].as_array().unwrap().iter().any(|f| f["manager"] == "opm" && f["operation"] == "Apply"));
    let widget = c.get(&format!("/apis/{0}.example.com/v1/namespaces/{0}/widgets/gadget", shop.ns)).expect("the custom resource exists");
    assert_eq!(widget["spec"]["size"], 3);
    let revision = latest_revision(c, &shop.ns, "shop");
    assert_eq!(inventory_objects(&revision), owned(c, &shop.ns, "shop"), "the inventory lists exactly what exists");

    let before = deployment(c, &shop.ns, "web").unwrap()["metadata"]["resourceVersion"].clone();
    let again = ok(&shop.opm(&["apply", "--no-wait"]));
    assert!(!again.contains("created ") && !again.contains("configured "), "nothing changes: {again}");
    assert!(again.contains("revision 1"), "no revision for an apply that changed nothing: {again}");
    assert_eq!(deployment(c, &shop.ns, "web").unwrap()["metadata"]["resourceVersion"], before);
    assert_eq!(inventory_objects(&latest_revision(c, &shop.ns, "shop")), owned(c, &shop.ns, "shop"));
    let diff = shop.opm(&["diff"]);
    assert_eq!(code(&diff), 0, "in sync: {}{}", stdout(&diff), stderr(&diff));

    // status: every object, its health and where it came from.
    let status = shop.opm(&["status", "--json"]);
    ok(&status);
    let report: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["revision"], 1);
    let objects = report["objects"].as_array().unwrap();
    assert!(objects.iter().any(|o| o["object"] == format!("Deployment {}/web", shop.ns) && o["health"] == "progressing"), "{report}");
    assert!(objects.iter().all(|o| o["drift"] == json!([])), "no drift: {report}");
}

#[test]
fn bundle_release_applies_as_one_unit() {
    let c = cluster();
    let ns = c.unique("bundle");
    let dir = publishable("example.com/stack@v0", "");
    write(
        &dir.path().join("stack.cue"),
        r#"package stack

import "opmodel.dev/core@v0"

bundle: core.#Bundle & {
	metadata: {
		apiVersion: "example.com/stack@v0"
		name:       "stack"
	}
	#spec: {}
	values: {}
	#modules: {
		defs: core.#Module & {
			metadata: {apiVersion: "example.com/stack/defs@v0", name: "defs", version: "0.2.0"}
			#components: crd: core.#Objects & {spec: objects: crd: {
				apiVersion: "apiextensions.k8s.io/v1"
				kind:       "CustomResourceDefinition"
				metadata: name: "gizmos.stack.example.com"
				spec: {
					group: "stack.example.com"
					scope: "Namespaced"
					names: {plural: "gizmos", singular: "gizmo", kind: "Gizmo"}
					versions: [{name: "v1", served: true, storage: true, schema: openAPIV3Schema: {type: "object", "x-kubernetes-preserve-unknown-fields": true}}]
				}
			}}
		}
		app: core.#Module & {
			metadata: {apiVersion: "example.com/stack/app@v0", name: "app", version: "0.3.0"}
			#components: things: core.#Objects & core.#ConfigMaps & {spec: {
				objects: one: {apiVersion: "stack.example.com/v1", kind: "Gizmo", spec: color: "blue"}
				configMaps: "app-config": data: k: "v"
			}}
		}
	}
}
"#,
    );
    let cache = tempdir();
    let kubeconfig = c.kubeconfig(cache.path(), &ns);
    let opm_here = |args: &[&str]| run(opm(cache.path()).current_dir(dir.path()).env("KUBECONFIG", &kubeconfig).args(args));
    ok(&opm_here(&["mod", "tidy"]));
    let out = ok(&opm_here(&["apply"]));
    assert!(out.contains("all 3 objects ready"), "{out}");
    let gizmo = c.get(&format!("/apis/stack.example.com/v1/namespaces/{ns}/gizmos/one")).expect("the custom resource exists");
    assert_eq!(gizmo["metadata"]["annotations"]["opmodel.dev/module"], "example.com/stack/app@v0.3.0");
    let revision = latest_revision(c, &ns, "stack");
    assert_eq!(revision["kind"], "bundle");
    assert_eq!(revision["objects"].as_array().unwrap().len(), 3, "one inventory for the bundle: {revision}");
    ok(&opm_here(&["delete"]));
    assert!(c.get(&format!("/apis/stack.example.com/v1/namespaces/{ns}/gizmos/one")).is_none());
}

#[test]
fn a_field_of_another_manager_is_a_conflict_until_force_conflicts() {
    let c = cluster();
    let shop = Shop::new("conflict");
    ok(&shop.opm(&["apply", "--no-wait"]));
    let path = format!("/apis/apps/v1/namespaces/{}/deployments/web", shop.ns);
    c.apply_as(
        "kubectl-edit",
        &path,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": shop.ns}, "spec": {"replicas": 5}}),
    );
    let diff = shop.opm(&["diff"]);
    assert_eq!(code(&diff), 6, "{}", stderr(&diff));
    assert!(stdout(&diff).contains("kubectl-edit") && stdout(&diff).contains(".spec.replicas"), "{}", stdout(&diff));
    let refused = shop.opm(&["apply", "--no-wait"]);
    assert_eq!(code(&refused), 1, "{}", stderr(&refused));
    let err = stderr(&refused);
    assert!(err.contains("kubectl-edit") && err.contains(".spec.replicas") && err.contains("--force-conflicts"), "{err}");
    assert_eq!(deployment(c, &shop.ns, "web").unwrap()["spec"]["replicas"], 5, "nothing taken");
    ok(&shop.opm(&["apply", "--no-wait", "--force-conflicts"]));
    assert_eq!(deployment(c, &shop.ns, "web").unwrap()["spec"]["replicas"], 1);
}

#[test]
fn diff_works_before_the_namespace_exists_and_changes_nothing() {
    let c = cluster();
    let shop = Shop::new("fresh");
    let out = shop.opm(&["diff"]);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("+ Deployment {}/web", shop.ns)) && text.contains(&format!("+ CustomResourceDefinition widgets.{}.example.com", shop.ns)),
        "{text}"
    );
    assert!(c.get(&format!("/api/v1/namespaces/{}", shop.ns)).is_none(), "diff created nothing");
    let json = shop.opm(&["diff", "--json"]);
    assert_eq!(code(&json), 6);
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(report["differences"].as_array().unwrap().iter().all(|d| d["action"] == "create"));
}

#[test]
fn an_immutable_change_is_caught_by_diff_and_recreated_with_force() {
    let c = cluster();
    let shop = Shop::new("immutable");
    ok(&shop.opm(&["apply", "--no-wait"]));
    let before = c.get(&shop.path("configmaps", "greeting")).unwrap();
    write(&shop.dir.path().join("values.cue"), "package shop\n\nmodule: values: greeting: \"bonjour\"\n");
    let diff = shop.opm(&["diff"]);
    assert_eq!(code(&diff), 6);
    assert!(stdout(&diff).contains(&format!("! ConfigMap {}/greeting", shop.ns)) && stdout(&diff).contains("immutable"), "{}", stdout(&diff));
    let refused = shop.opm(&["apply", "--no-wait"]);
    assert_eq!(code(&refused), 2, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    let out = ok(&shop.opm(&["apply", "--no-wait", "--force"]));
    assert!(out.contains("recreated ConfigMap"), "{out}");
    let after = c.get(&shop.path("configmaps", "greeting")).unwrap();
    assert_eq!(after["data"]["text"], "bonjour");
    assert_ne!(after["metadata"]["uid"], before["metadata"]["uid"]);
}

#[test]
fn prune_removes_what_left_the_release_but_not_kept_objects_or_claims() {
    let c = cluster();
    let shop = Shop::new("prune");
    ok(&shop.opm(&["apply", "--no-wait"]));
    assert!(c.get(&shop.path("persistentvolumeclaims", "data")).is_some());
    // The custom resource moves to another version of its group: the same
    // object, not pruned.
    write(&shop.dir.path().join("values.cue"), "package shop\n\nmodule: values: {extra: false, widget: \"v2\"}\n");
    let diff = stdout(&shop.opm(&["diff"]));
    assert!(!diff.contains("gadget (pruned)"), "{diff}");
    assert!(diff.contains(&format!("- ConfigMap {}/extra-config (pruned)", shop.ns)), "{diff}");
    assert!(diff.contains("kept-config") && diff.contains("stays"), "{diff}");
    let out = ok(&shop.opm(&["apply", "--no-wait"]));
    assert!(out.contains(&format!("pruned ConfigMap {}/extra-config", shop.ns)) && out.contains(&format!("pruned Deployment {}/extra", shop.ns)), "{out}");
    assert!(c.get(&shop.path("configmaps", "extra-config")).is_none());
    assert!(c.get(&shop.path("configmaps", "kept-config")).is_some(), "annotated opmodel.dev/keep");
    assert!(c.get(&shop.path("persistentvolumeclaims", "data")).is_some(), "claims are pruned only with --prune-storage");
    let listed = inventory_objects(&latest_revision(c, &shop.ns, "shop"));
    assert!(!listed.iter().any(|o| o.contains("extra")), "{listed:?}");
    assert!(c.get(&format!("/apis/{0}.example.com/v2/namespaces/{0}/widgets/gadget", shop.ns)).is_some(), "the custom resource stays");
}

#[test]
fn wait_times_out_on_a_deployment_that_never_becomes_ready_and_succeeds_once_it_is() {
    let c = cluster();
    let shop = Shop::new("wait");
    write(&shop.dir.path().join("values.cue"), "package shop\n\nmodule: values: extra: false\n");
    let started = Instant::now();
    let out = shop.opm(&["apply", "--timeout", "6s"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("Deployment {}/web is not ready", shop.ns)), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(30), "bounded by --timeout");
    // What a controller would write.
    let path = format!("/apis/apps/v1/namespaces/{}/deployments/web", shop.ns);
    let generation = c.get(&path).unwrap()["metadata"]["generation"].clone();
    c.patch_status(
        &path,
        &json!({"status": {"observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}}),
    );
    let out = ok(&shop.opm(&["apply", "--timeout", "60s"]));
    assert!(out.contains("objects ready"), "{out}");
}

#[test]
fn rollback_applies_an_earlier_revision_again() {
    let c = cluster();
    let shop = Shop::new("rollback");
    ok(&shop.opm(&["apply", "--no-wait"]));
    write(&shop.dir.path().join("values.cue"), "package shop\n\nmodule: values: replicas: 3\n");
    // Within a second of the first apply, the change is still told.
    let out = ok(&shop.opm(&["apply", "--no-wait"]));
    assert!(out.contains(&format!("configured Deployment {}/web", shop.ns)) && out.contains("(8 unchanged)"), "{out}");
    assert_eq!(deployment(c, &shop.ns, "web").unwrap()["spec"]["replicas"], 3);
    let out = ok(&shop.opm(&["rollback", "--no-wait", "--name", "shop"]));
    assert!(out.contains("revision 3"), "{out}");
    assert_eq!(deployment(c, &shop.ns, "web").unwrap()["spec"]["replicas"], 1);
    let missing = shop.opm(&["rollback", "9", "--name", "shop", "--no-wait"]);
    assert_eq!(code(&missing), 5, "{}", stderr(&missing));
}

#[test]
fn delete_leaves_nothing_of_the_release_and_storage_only_when_asked() {
    let c = cluster();
    let shop = Shop::new("delete");
    ok(&shop.opm(&["apply", "--no-wait"]));
    assert!(!owned(c, &shop.ns, "shop").is_empty());
    let out = ok(&shop.opm(&["delete", "--prune-storage"]));
    assert!(out.contains("deleted release shop"), "{out}");
    let left: Vec<String> = owned(c, &shop.ns, "shop").into_iter().filter(|o| o != "ConfigMap/kept-config").collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(c.get(&shop.path("secrets", "opm-release.shop")).is_none(), "the inventory is gone");
    assert_eq!(code(&shop.opm(&["status"])), 5);

    // Without --prune-storage, what holds data stays and is named.
    let other = Shop::new("delete-keep");
    ok(&other.opm(&["apply", "--no-wait"]));
    let out = ok(&other.opm(&["delete"]));
    assert!(out.contains("kept PersistentVolumeClaim") && out.contains("kept CustomResourceDefinition"), "{out}");
    let left = owned(c, &other.ns, "shop");
    assert!(left.contains(&"PersistentVolumeClaim/data".to_string()) && left.iter().any(|o| o.starts_with("CustomResourceDefinition/")), "{left:?}");
    assert!(deployment(c, &other.ns, "web").is_none());
}

#[test]
fn two_applies_at_once_never_both_win_the_inventory() {
    let c = cluster();
    let shop = Shop::new("concurrent");
    ok(&shop.opm(&["apply", "--no-wait"]));
    // Two applies of the same release, with other values, at once: each
    // succeeds or is told that the other wrote the inventory first.
    write(&shop.dir.path().join("values.cue"), "package shop\n\nmodule: values: {extra: false, replicas: 2}\n");
    let spawn = || {
        opm(shop.cache.path())
            .current_dir(shop.dir.path())
            .env("KUBECONFIG", &shop.kubeconfig)
            .args(["apply", "--no-wait"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for out in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        let err = stderr(&out);
        assert!(out.status.success() || err.contains("another opm apply of release shop wrote its inventory at the same time"), "{err}");
    }
    ok(&shop.opm(&["apply", "--no-wait"]));
    let left: Vec<String> = owned(c, &shop.ns, "shop").into_iter().filter(|o| o != "ConfigMap/kept-config" && o != "PersistentVolumeClaim/data").collect();
    assert_eq!(inventory_objects(&latest_revision(c, &shop.ns, "shop")), left, "the inventory lists exactly what exists");
}

#[test]
fn an_object_that_is_not_the_release_s_is_refused_until_adopt() {
    let c = cluster();
    let shop = Shop::new("adopt");
    c.create("/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": shop.ns}}));
    c.create(
        &format!("/api/v1/namespaces/{}/configmaps", shop.ns),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra-config"}, "data": {"mine": "yes"}}),
    );
    let out = shop.opm(&["apply", "--no-wait"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("ConfigMap {}/extra-config exists and is not release shop's", shop.ns)) && stderr(&out).contains("--adopt"),
        "{}",
        stderr(&out)
    );
    assert!(deployment(c, &shop.ns, "web").is_none(), "nothing applied");
    let out = ok(&shop.opm(&["apply", "--no-wait", "--adopt"]));
    assert!(out.contains("revision 1"), "{out}");
    assert_eq!(c.get(&shop.path("configmaps", "extra-config")).unwrap()["metadata"]["labels"]["opmodel.dev/release"], "shop");
}

#[test]
fn a_restricted_token_gets_a_clear_forbidden() {
    let c = cluster();
    let shop = Shop::new("rbac");
    let viewer = c.viewer_kubeconfig(shop.cache.path(), &shop.ns);
    // The namespace exists (the admin made it): the viewer may read.
    c.create("/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": shop.ns}}));
    let out = run(opm(shop.cache.path()).current_dir(shop.dir.path()).env("KUBECONFIG", &viewer).args(["apply", "--no-wait"]));
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("forbidden") && err.contains("viewer") && err.contains("cannot create resource \"secrets\""), "names the verb and resource: {err}");
    assert!(!err.contains(&c.viewer_token), "no secret in the output");
}

#[test]
fn an_unreachable_or_stalled_apiserver_is_bounded_named_and_exit_3() {
    let shop = Shop::new("down");
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let text = std::fs::read_to_string(&shop.kubeconfig).unwrap();
    let down = shop.cache.path().join("down.yaml");
    std::fs::write(&down, text.replace(&cluster().server, &format!("https://{closed}"))).unwrap();
    let out = run(opm(shop.cache.path()).current_dir(shop.dir.path()).env("KUBECONFIG", &down).args(["apply"]));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains(&closed.to_string()), "{}", stderr(&out));
    // Accepts connections and never answers.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = stalled.local_addr().unwrap();
    let hung = shop.cache.path().join("hung.yaml");
    std::fs::write(&hung, text.replace(&cluster().server, &format!("https://{addr}"))).unwrap();
    let started = Instant::now();
    let out = run(opm(shop.cache.path()).current_dir(shop.dir.path()).env("KUBECONFIG", &hung).args(["diff", "--timeout", "3s"]));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(20), "bounded: {:?}", started.elapsed());
    assert!(stderr(&out).contains(&addr.to_string()), "{}", stderr(&out));
    drop(stalled);
}

/// Runs `opm -v ARGS` and calls `at` on the first line of its stderr that
/// contains `mark` (then lets it run on); returns its output.
fn run_until(shop: &Shop, kubeconfig: &std::path::Path, args: &[&str], mark: &str, at: impl FnOnce(&std::process::Child)) -> Output {
    use std::io::BufRead as _;
    let mut child = opm(shop.cache.path())
        .current_dir(shop.dir.path())
        .env("KUBECONFIG", kubeconfig)
        .arg("-v")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut at = Some(at);
    let mut line = String::new();
    while err.read_line(&mut line).unwrap_or(0) > 0 {
        if line.contains(mark) {
            if let Some(f) = at.take() {
                f(&child);
            }
        }
        seen += &line;
        line.clear();
    }
    assert!(at.is_none(), "never saw {mark:?}: {seen}");
    let mut out = child.wait_with_output().unwrap();
    out.stderr = seen.into_bytes();
    out
}

#[test]
fn an_interrupted_apply_converges_on_the_next_even_of_a_smaller_release() {
    let c = cluster();
    let shop = Shop::new("sigint");
    // SIGINT while the last stage is being applied: some objects exist.
    let interrupted = run_until(&shop, &shop.kubeconfig, &["apply", "--no-wait"], "applied ConfigMap", |child| {
        let _ = rustix::process::kill_process(rustix::process::Pid::from_child(child), rustix::process::Signal::INT);
    });
    assert!(!interrupted.status.success());
    assert!(!owned(c, &shop.ns, "shop").is_empty(), "a partial apply");
    // The next apply is of a smaller release: what the interrupted one made
    // and this one does not want is pruned all the same.
    write(&shop.dir.path().join("values.cue"), "package shop\n\nmodule: values: extra: false\n");
    ok(&shop.opm(&["apply", "--no-wait"]));
    let listed = inventory_objects(&latest_revision(c, &shop.ns, "shop"));
    let left: Vec<String> = owned(c, &shop.ns, "shop").into_iter().filter(|o| o != "ConfigMap/kept-config" && o != "PersistentVolumeClaim/data").collect();
    assert_eq!(listed, left, "the inventory lists exactly what exists");
    assert!(!left.iter().any(|o| o.contains("extra")), "{left:?}");
}

/// A TCP proxy in front of the apiserver (TLS passes through it) that can
/// stall every byte or drop every connection: a cluster that hangs or
/// stops mid-command. Stopped when dropped.
struct FaultProxy {
    addr: std::net::SocketAddr,
    /// 0 forward, 1 stall, 2 drop.
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FaultProxy {
    fn start(upstream: &str) -> FaultProxy {
        use std::sync::atomic::Ordering::SeqCst;
        use std::sync::Arc;
        let upstream: std::net::SocketAddr = upstream.trim_start_matches("https://").parse().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let proxy = FaultProxy { addr: listener.local_addr().unwrap(), mode: Default::default(), stop: Default::default() };
        let (mode, stop) = (proxy.mode.clone(), proxy.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                if mode.load(SeqCst) == 2 {
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(upstream) else { continue };
                for (from, to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                    let (mode, stop) = (Arc::clone(&mode), Arc::clone(&stop));
                    std::thread::spawn(move || pipe(from, to, &mode, &stop));
                }
            }
        });
        proxy
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies bytes one way until either side closes, the proxy stops, or
/// (mode 2) connections are dropped; in mode 1 nothing moves.
fn pipe(mut from: std::net::TcpStream, mut to: std::net::TcpStream, mode: &std::sync::atomic::AtomicU8, stop: &std::sync::atomic::AtomicBool) {
    use std::io::{Read as _, Write as _};
    use std::sync::atomic::Ordering::SeqCst;
    from.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 16 << 10];
    while !stop.load(SeqCst) {
        match mode.load(SeqCst) {
            2 => break,
            1 => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            _ => {}
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

#[test]
fn an_apiserver_that_stalls_or_stops_mid_apply_is_bounded_named_and_exit_3() {
    let c = cluster();
    for (mode, what) in [(1u8, "stalls"), (2, "stops")] {
        let shop = Shop::new(&format!("fault-{what}"));
        let proxy = FaultProxy::start(&c.server);
        let text = std::fs::read_to_string(&shop.kubeconfig).unwrap();
        let through = shop.cache.path().join("through-proxy.yaml");
        std::fs::write(&through, text.replace(&c.server, &format!("https://{}", proxy.addr))).unwrap();
        let started = Instant::now();
        let out = run_until(&shop, &through, &["apply", "--no-wait", "--timeout", "6s"], "applied ", |_| proxy.set(mode));
        assert_eq!(code(&out), 3, "the apiserver {what}: {}", stderr(&out));
        assert!(started.elapsed() < Duration::from_secs(30), "bounded: {:?}", started.elapsed());
        assert!(stderr(&out).contains(&proxy.addr.to_string()), "named: {}", stderr(&out));
        // Once it answers again, an apply converges.
        proxy.set(0);
        ok(&run(opm(shop.cache.path()).current_dir(shop.dir.path()).env("KUBECONFIG", &through).args(["apply", "--no-wait"])));
        assert_eq!(inventory_objects(&latest_revision(c, &shop.ns, "shop")), owned(c, &shop.ns, "shop"));
    }
}

#[test]
fn apply_proves_the_dependencies_before_the_cluster_and_records_their_digests() {
    let c = cluster();
    let w = World::new();
    w.publish_files("example.com/words@v0", "v0.1.0", &[("words.cue", "package words\n\ngreeting: \"hello\"\n")]);
    w.publish_files("example.com/words@v0", "v0.2.0", &[("words.cue", "package words\n\ngreeting: \"tampered\"\n")]);
    let dir = publishable("example.com/shop@v0", "");
    write(
        &dir.path().join("shop.cue"),
        r#"package shop

import (
	"opmodel.dev/core@v0"
	"example.com/words@v0"
)

module: core.#Module & {
	metadata: {apiVersion: "example.com/shop@v0", name: "shop", version: "0.1.0"}
	#config: {}
	values: {}
	#components: settings: core.#ConfigMaps & {spec: configMaps: greeting: data: text: words.greeting}
}
"#,
    );
    let cache = tempdir();
    let ns = c.unique("trust");
    let kubeconfig = c.kubeconfig(cache.path(), &ns);
    let opm_in = |cache: &std::path::Path, args: &[&str]| {
        run(opm(cache).env("CUE_REGISTRY", &w.registry).env("KUBECONFIG", &kubeconfig).current_dir(dir.path()).args(args))
    };
    ok(&opm_in(cache.path(), &["mod", "get", "example.com/words@v0.1.0"]));
    ok(&opm_in(cache.path(), &["mod", "tidy"]));
    ok(&opm_in(cache.path(), &["apply", "--no-wait"]));
    let sums = std::fs::read_to_string(dir.path().join("cue.mod/opm.sum")).unwrap();
    let pinned = sums.lines().find(|l| l.starts_with("example.com/words@v0 v0.1.0 ")).unwrap().split(' ').nth(2).unwrap().to_string();
    let revision = latest_revision(c, &ns, "shop");
    let words = revision["modules"].as_array().unwrap().iter().find(|m| m["module"] == "example.com/words@v0").expect("the dependency is recorded");
    assert_eq!((words["version"].as_str(), words["digest"].as_str()), (Some("v0.1.0"), Some(pinned.as_str())));

    // A signature policy that covers the dependency, which nobody signed:
    // refused (exit 8) before the cluster sees anything.
    let keys = tempdir();
    let (_, public) = crate::signatures::key_pair(keys.path());
    let config = crate::signatures::policy(keys.path(), &public);
    let unsigned = c.unique("trust-unsigned");
    let signed_only = tempdir();
    let out = run(opm(signed_only.path())
        .env("CUE_REGISTRY", &w.registry)
        .env("KUBECONFIG", &kubeconfig)
        .env("OPM_CONFIG", &config)
        .current_dir(dir.path())
        .args(["apply", "--no-wait", "-n", &unsigned]));
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(c.get(&format!("/api/v1/namespaces/{unsigned}")).is_none(), "nothing applied, not even the namespace");

    // The registry moves v0.1.0 to other content: a machine with an empty
    // cache refuses before the cluster sees anything.
    w.registry_server().retag("example.com/words", "v0.2.0", "v0.1.0");
    let fresh = tempdir();
    let other = c.unique("trust-fresh");
    let out = opm_in(fresh.path(), &["apply", "--no-wait", "-n", &other]);
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert!(stderr(&out).contains("example.com/words@v0.1.0"), "{}", stderr(&out));
    assert!(c.get(&format!("/api/v1/namespaces/{other}")).is_none(), "nothing applied, not even the namespace");
}
