//! `opm apply`, `opm rollback` and `opm delete`: server-side apply in
//! stages, the inventory written, then pruning and waiting.

use super::{manifests, missing_namespaces, read_inventory, render_release, Release, ReleaseOptions};
use crate::cluster::health::{self, Health};
use crate::cluster::inventory::{self, Inventory, Revision};
use crate::cluster::object::{self, ObjectRef};
use crate::cluster::plan;
use crate::cluster::{Apply, Cluster, Error, ErrorKind};
use crate::context::{Context, Unit};
use crate::error::{fail, Kind};
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(500);
/// The time a wait leaves for its last look.
const WAIT_MARGIN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Take fields other managers own.
    pub force_conflicts: bool,
    /// Delete and create again the objects whose change the server refuses
    /// as immutable.
    pub recreate: bool,
    pub prune: bool,
    /// Prune what holds data too: Namespaces, PersistentVolumeClaims and
    /// CustomResourceDefinitions (their custom resources go with them).
    pub prune_storage: bool,
    /// Take over objects that exist and are not the release's.
    pub adopt: bool,
}

/// What an apply did.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    pub release: String,
    pub namespace: String,
    pub revision: u32,
    /// `Kind namespace/name` of each object applied; which were created,
    /// changed and recreated.
    pub objects: Vec<String>,
    pub created: Vec<String>,
    pub changed: Vec<String>,
    pub recreated: Vec<String>,
    pub pruned: Vec<String>,
    /// Left in place though gone from the release, and why.
    pub kept: Vec<String>,
    pub namespaces_created: Vec<String>,
    /// The objects applied, for [`wait`].
    #[serde(skip)]
    pub refs: Vec<ObjectRef>,
    /// Whether they all became ready, when waited for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

/// Applies the release in `opts.dir`.
pub fn apply(ctx: &Context, opts: &ReleaseOptions, how: &ApplyOptions) -> anyhow::Result<Applied> {
    // Rendered (and its dependencies proven) before the cluster is contacted.
    let namespace = namespace_of(ctx)?;
    let release = render_release(ctx, opts, &namespace)?;
    let cluster = ctx.cluster()?;
    let inventory = read_inventory(cluster, &release.name, &release.namespace)?;
    deliver(ctx, cluster, &release, inventory, how)
}

/// The namespace of the release: -n, else the kubeconfig context's (no
/// credentials read yet).
pub(crate) fn namespace_of(ctx: &Context) -> anyhow::Result<String> {
    ctx.cluster_namespace()
}

/// Applies revision `number` of the release again (default: the one
/// before the latest), as a new revision.
pub fn rollback(ctx: &Context, name: &str, number: Option<u32>, how: &ApplyOptions) -> anyhow::Result<Applied> {
    let cluster = ctx.cluster()?;
    let namespace = cluster.namespace.clone();
    let inventory = read_inventory(cluster, name, &namespace)?;
    let latest =
        inventory.latest().ok_or_else(|| fail(Kind::NotFound, format!("release {name} has no revisions in namespace {namespace}: nothing to roll back")))?;
    let target = match number {
        Some(n) => inventory.revision(n).ok_or_else(|| {
            let kept: Vec<String> = inventory.revisions.iter().map(|r| r.number.to_string()).collect();
            fail(Kind::NotFound, format!("release {name} has no revision {n}; it keeps {}", kept.join(", ")))
        })?,
        None => inventory
            .revisions
            .iter()
            .rev()
            .find(|r| r.number < latest.number)
            .ok_or_else(|| fail(Kind::NotFound, format!("release {name} has one revision: nothing to roll back to")))?,
    };
    if target.manifests.is_empty() {
        return Err(fail(
            Kind::NotFound,
            format!("revision {} of release {name} no longer keeps its manifests (dropped for size): apply that version of the module instead", target.number),
        ));
    }
    let release = Release {
        name: name.to_string(),
        namespace,
        kind: if target.kind == "bundle" { crate::cue::ReleaseKind::Bundle } else { crate::cue::ReleaseKind::Module },
        package: target.package.clone(),
        objects: target.manifests.iter().map(|m| (m.clone(), None)).collect(),
        modules: target.modules.clone(),
        values_digest: target.values_digest.clone(),
    };
    deliver(ctx, cluster, &release, inventory.clone(), how)
}

/// Plans and applies `release`, records it, prunes and waits.
fn deliver(ctx: &Context, cluster: &Cluster, release: &Release, mut inventory: Inventory, how: &ApplyOptions) -> anyhow::Result<Applied> {
    let mut applied = Applied { release: release.name.clone(), namespace: release.namespace.clone(), ..Applied::default() };
    let known = inventory.known();
    let plan = plan::plan(manifests(cluster, &release.objects)?, &release.name, &release.namespace, &known);
    // Objects the release has not had: taking over one of someone else's
    // (and pruning it later) needs --adopt.
    let new: Vec<ObjectRef> = plan.refs().into_iter().filter(|r| !known.iter().any(|k| k.identity() == r.identity())).collect();
    if !how.adopt {
        refuse_foreign(cluster, &new, release)?;
    }
    applied.namespaces_created = ensure_namespaces(cluster, release)?;
    // What this apply may create is recorded first: if it stops half-way,
    // the next apply knows what may exist.
    if !new.is_empty() {
        inventory.pending.extend(new.iter().cloned());
        write_inventory(cluster, &mut inventory, release)?;
    }
    // What the latest revision applied, and the version each had then.
    let previous: Vec<(&ObjectRef, &str, Option<&Value>)> = inventory
        .latest()
        .map(|r| r.objects.iter().enumerate().map(|(i, o)| (o, r.versions.get(i).map_or("", String::as_str), r.manifests.get(i))).collect())
        .unwrap_or_default();
    let bar = ctx.progress(&format!("applying {}", crate::error::count(plan.objects().count(), "object")), Unit::Items);
    bar.inc_length(plan.objects().count() as u64);
    let mut versions = Vec::new();
    for (stage, objects) in plan.stages.iter().enumerate() {
        let answers = cluster.block_on(cluster.each(objects, |o| apply_one(cluster, o, how)));
        let mut failures = Vec::new();
        for (object, answer) in objects.iter().zip(answers) {
            let r = ObjectRef::of(object).expect("planned objects have names");
            match answer {
                Ok((live, recreated)) => {
                    bar.inc(1);
                    let version = applied_version(&live);
                    match previous.iter().find(|(p, _, _)| p.identity() == r.identity()) {
                        None if !recreated => applied.created.push(r.to_string()),
                        Some((_, before, sent)) if !recreated && !changed_by_apply(before, &version, *sent, object) => {}
                        _ => applied.changed.push(r.to_string()),
                    }
                    if recreated {
                        applied.recreated.push(r.to_string());
                    }
                    tracing::debug!("applied {r} ({version})");
                    applied.objects.push(r.to_string());
                    versions.push(version);
                }
                Err(e) => failures.push(e),
            }
        }
        if let Some(first) = failures.into_iter().next() {
            bar.done();
            return Err(first.into());
        }
        if stage == 0 {
            established(cluster, objects)?;
        }
    }
    bar.done();
    let revision = Revision {
        number: inventory.next_number(),
        applied_at: now_rfc3339(),
        package: release.package.clone(),
        kind: match release.kind {
            crate::cue::ReleaseKind::Module => "module".into(),
            crate::cue::ReleaseKind::Bundle => "bundle".into(),
        },
        modules: release.modules.clone(),
        values_digest: release.values_digest.clone(),
        objects: plan.refs(),
        versions,
        manifests: plan.objects().cloned().collect(),
    };
    // An apply that changed nothing adds no revision (history keeps what
    // happened, and a rollback goes to something else).
    let same = inventory.latest().is_some_and(|l| {
        // Not the versions: a controller writing status moves them.
        l.objects == revision.objects && l.manifests == revision.manifests && l.modules == revision.modules
    });
    let changed = !same || inventory.pending != plan.prune;
    if !same {
        inventory.push(revision);
    }
    applied.revision = inventory.latest().map_or(0, |r| r.number);
    // Recorded before anything is pruned: what it lists exists; what is to
    // be pruned stays pending until it is gone (with --no-prune, until an
    // apply prunes it).
    if changed {
        inventory.pending = plan.prune.clone();
        write_inventory(cluster, &mut inventory, release)?;
    }
    if how.prune && !inventory.pending.is_empty() {
        prune(cluster, &plan.prune, &release.name, &release.namespace, how.prune_storage, &mut applied)?;
        inventory.pending.clear();
        write_inventory(cluster, &mut inventory, release)?;
    }
    applied.refs = plan.refs();
    Ok(applied)
}

/// Writes the inventory over the version it was read at (or creates it):
/// a concurrent apply of the same release is refused, not overwritten.
fn write_inventory(cluster: &Cluster, inventory: &mut Inventory, release: &Release) -> anyhow::Result<()> {
    let secret = inventory.to_secret(&release.name, &release.namespace);
    let written = match inventory.resource_version {
        None => cluster.block_on(cluster.create(&secret))?,
        Some(_) => match cluster.block_on(cluster.replace(&secret)) {
            Err(e) if e.kind == ErrorKind::Conflict => None,
            other => Some(other?),
        },
    };
    let written = written.ok_or_else(|| {
        Error::new(ErrorKind::Conflict, format!("another opm apply of release {} wrote its inventory at the same time: run this one again", release.name))
    })?;
    inventory.resource_version = written["metadata"]["resourceVersion"].as_str().map(str::to_string);
    Ok(())
}

/// Refuses objects that exist and are not this release's (another
/// release's, or made by other means): nothing is applied.
fn refuse_foreign(cluster: &Cluster, new: &[ObjectRef], release: &Release) -> anyhow::Result<()> {
    let live = cluster.block_on(cluster.each(new, |r| cluster.find(r)));
    for (r, live) in new.iter().zip(live) {
        let Some(live) = live? else { continue };
        if !object::owned_by(&live, &release.name, &release.namespace) {
            let owner = match object::meta_value(&live, "labels", object::RELEASE_LABEL) {
                Some(other) => format!("it belongs to opm release {other}"),
                None => "opm did not make it".to_string(),
            };
            return Err(fail(
                Kind::Other,
                format!("{r} exists and is not release {}'s ({owner}): delete it, or apply with --adopt to take it over", release.name),
            ));
        }
    }
    Ok(())
}

/// Server-side apply of one object; with `recreate`, an object whose
/// change the server refuses as immutable is deleted and created again.
async fn apply_one(cluster: &Cluster, object: &Value, how: &ApplyOptions) -> Result<(Value, bool), Error> {
    let mode = Apply { dry_run: false, force: how.force_conflicts };
    match cluster.apply(object, mode).await {
        Ok(live) => Ok((live, false)),
        Err(e) if e.kind == ErrorKind::Invalid && is_immutable(&e.message) && how.recreate => {
            let r = ObjectRef::of(object).expect("planned objects have names");
            cluster.delete(&r).await?;
            gone(cluster, &r).await?;
            cluster.apply(object, mode).await.map(|live| (live, true))
        }
        Err(e) if e.kind == ErrorKind::Invalid && is_immutable(&e.message) => {
            Err(Error::new(e.kind, format!("{}: --force deletes and creates again the objects whose immutable fields change", e.message)))
        }
        Err(e) if e.kind == ErrorKind::Conflict => Err(Error::new(e.kind, format!("{}: --force-conflicts takes these fields from their manager", e.message))),
        Err(e) => Err(e),
    }
}

/// An object's version after an apply: its resourceVersion and when opm's
/// apply last changed it, as its managed fields record it (a no-op apply
/// leaves both; the server's status updates move the first only).
fn applied_version(live: &Value) -> String {
    let fields = live["metadata"]["managedFields"].as_array().into_iter().flatten();
    let ours =
        fields.filter(|f| f["manager"] == object::FIELD_MANAGER && f["operation"] == "Apply" && f["subresource"].is_null()).find_map(|f| f["time"].as_str());
    format!("{} {}", live["metadata"]["resourceVersion"].as_str().unwrap_or(""), ours.unwrap_or(""))
}

/// Whether this apply changed an object the latest revision applied too:
/// it has another resourceVersion, and opm's apply time moved or what was
/// sent differs (the time has whole seconds: two applies in one second).
fn changed_by_apply(before: &str, after: &str, sent_before: Option<&Value>, sent: &Value) -> bool {
    let (rv_before, time_before) = before.split_once(' ').unwrap_or((before, ""));
    let (rv, time) = after.split_once(' ').unwrap_or((after, ""));
    rv != rv_before && (time != time_before || sent_before != Some(sent))
}

/// Whether an apiserver refusal is about an immutable field.
pub(crate) fn is_immutable(message: &str) -> bool {
    message.contains("is immutable")
}

/// Waits until `r` no longer exists.
async fn gone(cluster: &Cluster, r: &ObjectRef) -> Result<(), Error> {
    while cluster.get(r).await?.is_some() {
        if Instant::now() >= cluster.deadline() {
            return Err(Error::new(ErrorKind::Timeout, format!("{r} was deleted but still exists (a finalizer?): out of time")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Creates the namespaces the release's objects go to that do not exist
/// and are not among its objects (the release's own, for its inventory).
fn ensure_namespaces(cluster: &Cluster, release: &Release) -> anyhow::Result<Vec<String>> {
    let needed = release.objects.iter().filter_map(|(o, _)| o["metadata"]["namespace"].as_str());
    let own: Vec<&str> = release.objects.iter().filter(|(o, _)| o["kind"] == "Namespace").filter_map(|(o, _)| o["metadata"]["name"].as_str()).collect();
    let mut created = Vec::new();
    for ns in missing_namespaces(cluster, needed.chain([release.namespace.as_str()]))?.into_iter().filter(|ns| !own.contains(&ns.as_str())) {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        // Made meanwhile by someone else: theirs, left as it is.
        if cluster.block_on(cluster.create(&body))?.is_some() {
            created.push(ns);
        }
    }
    Ok(created)
}

/// Waits for the CRDs of the first stage to be established, then forgets
/// what discovery said of their groups.
fn established(cluster: &Cluster, objects: &[Value]) -> anyhow::Result<()> {
    let out_of_time = |what: String| Error::new(ErrorKind::Timeout, format!("{what}: out of time (--timeout)"));
    for crd in objects.iter().filter(|o| o["kind"] == "CustomResourceDefinition") {
        let r = ObjectRef::of(crd).expect("planned objects have names");
        loop {
            let live = cluster.block_on(cluster.get(&r))?;
            if live.as_ref().is_some_and(|l| health::health(l, Duration::ZERO) == Health::Ready) {
                break;
            }
            if Instant::now() >= cluster.deadline() {
                return Err(out_of_time(format!("{r} is not established")).into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Established comes a moment before discovery serves the kind.
        let (group, kind) = (crd["spec"]["group"].as_str().unwrap_or(""), crd["spec"]["names"]["kind"].as_str().unwrap_or(""));
        for v in crd["spec"]["versions"].as_array().into_iter().flatten().filter(|v| v["served"] != false) {
            let api_version = format!("{group}/{}", v["name"].as_str().unwrap_or(""));
            loop {
                cluster.forget(&api_version);
                match cluster.block_on(cluster.resource(&api_version, kind)) {
                    Ok(_) => break,
                    Err(e) if e.kind == ErrorKind::NotFound && Instant::now() < cluster.deadline() => std::thread::sleep(Duration::from_millis(100)),
                    Err(e) if e.kind == ErrorKind::NotFound => {
                        return Err(out_of_time(format!("{r} is established but {kind} of {api_version} is not served")).into())
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

/// Why a prune candidate stays, if it does.
fn keeps(live: &Value, name: &str, namespace: &str, prune_storage: bool) -> Option<&'static str> {
    if !object::owned_by(live, name, namespace) {
        Some("not labelled as this release's")
    } else if object::is_kept(live) {
        Some("annotated opmodel.dev/keep")
    } else if !prune_storage && matches!(live["kind"].as_str(), Some("Namespace" | "PersistentVolumeClaim" | "CustomResourceDefinition")) {
        Some("Namespaces, PersistentVolumeClaims and CRDs go only with --prune-storage")
    } else {
        None
    }
}

/// Each prune candidate of release `name` in `namespace` that still
/// exists, and why it stays if it does (None: it goes).
pub(crate) fn judge(
    cluster: &Cluster,
    refs: &[ObjectRef],
    name: &str,
    namespace: &str,
    prune_storage: bool,
) -> anyhow::Result<Vec<(ObjectRef, Option<&'static str>)>> {
    let live = cluster.block_on(cluster.each(refs, |r| cluster.find(r)));
    let mut out = Vec::new();
    for (r, live) in refs.iter().zip(live) {
        if let Some(live) = live? {
            out.push((r.clone(), keeps(&live, name, namespace, prune_storage)));
        }
    }
    Ok(out)
}

/// Deletes each of `refs` that is still release `name`'s.
fn prune(cluster: &Cluster, refs: &[ObjectRef], name: &str, namespace: &str, prune_storage: bool, applied: &mut Applied) -> anyhow::Result<()> {
    for (r, kept) in judge(cluster, refs, name, namespace, prune_storage)? {
        match kept {
            Some(why) => applied.kept.push(format!("{r} ({why})")),
            None if cluster.block_on(cluster.delete(&r))? => applied.pruned.push(r.to_string()),
            None => {}
        }
    }
    Ok(())
}

/// Waits until every object applied is ready, one fails, or the
/// command's time runs out.
pub fn wait(ctx: &Context, applied: &Applied) -> anyhow::Result<()> {
    let cluster = ctx.cluster()?;
    let refs = applied.refs.clone();
    let started = Instant::now();
    let bar = ctx.progress(&format!("waiting for {}", crate::error::count(refs.len(), "object")), Unit::Items);
    bar.inc_length(refs.len() as u64);
    let mut pending: Vec<ObjectRef> = refs;
    let mut polls = 0u32;
    loop {
        let answers = cluster.block_on(cluster.each(&pending, |r| cluster.get(r)));
        let mut still = Vec::new();
        for (r, answer) in pending.iter().zip(answers) {
            let live = answer?.ok_or_else(|| Error::new(ErrorKind::NotFound, format!("{r} vanished while opm waited for it")))?;
            match health::health(&live, started.elapsed()) {
                Health::Ready => bar.inc(1),
                Health::Failed(why) => {
                    bar.done();
                    let event = warning(cluster, &r.kind, &r.namespace, &r.name);
                    return Err(fail(Kind::Other, format!("{r} failed: {why}{event}")));
                }
                Health::Progressing(why) => still.push((r.clone(), why, live)),
            }
        }
        if still.is_empty() {
            bar.done();
            return Ok(());
        }
        // Every few looks: a pod that crash-loops fails the wait now.
        if polls % 4 == 3 {
            for (r, _, live) in &still {
                if let Some((pod, why)) = crash_loop(cluster, r, live)? {
                    bar.done();
                    let event = warning(cluster, "Pod", &r.namespace, &pod);
                    return Err(fail(Kind::Other, format!("{r} will not become ready: {why}{event}")));
                }
            }
        }
        // Stopped while a look still fits in the time left: running out in
        // the middle of one would read as an unreachable cluster.
        if Instant::now() + POLL + WAIT_MARGIN >= cluster.deadline() {
            bar.done();
            let (r, why, _) = &still[0];
            let more = if still.len() > 1 { format!(" (and {})", crate::error::count(still.len() - 1, "more object")) } else { String::new() };
            return Err(Error::new(ErrorKind::Timeout, format!("{r} is not ready: {why}{more}; waited {} s (--timeout)", started.elapsed().as_secs())).into());
        }
        pending = still.into_iter().map(|(r, _, _)| r).collect();
        polls += 1;
        std::thread::sleep(POLL);
    }
}

/// `; last event: REASON: MESSAGE` of an object's newest warning event,
/// or nothing (events are a help, never a failure of their own).
fn warning(cluster: &Cluster, kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        return String::new();
    }
    match cluster.block_on(cluster.last_warning(kind, namespace, name)) {
        Ok(Some(event)) => format!("; last event: {event}"),
        _ => String::new(),
    }
}

/// Which pod of a workload will not start (crash loops, images), and why.
fn crash_loop(cluster: &Cluster, r: &ObjectRef, live: &Value) -> anyhow::Result<Option<(String, String)>> {
    let Some(labels) =
        live["spec"]["selector"]["matchLabels"].as_object().filter(|_| matches!(r.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet" | "Job"))
    else {
        return Ok(None);
    };
    let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
    let pods = cluster.block_on(cluster.list("v1", "Pod", &r.namespace, &selector.join(",")))?;
    Ok(pods.iter().find_map(health::pod_failure))
}

/// Deletes every object of the release's latest revision (and pending)
/// that carries its labels and is not annotated to be kept (Namespaces,
/// PVCs and CRDs only with `storage`), then its inventory.
pub fn delete(ctx: &Context, name: &str, storage: bool) -> anyhow::Result<Deleted> {
    let cluster = ctx.cluster()?;
    let namespace = cluster.namespace.clone();
    let inventory = read_inventory(cluster, name, &namespace)?;
    inventory.latest().ok_or_else(|| {
        fail(Kind::NotFound, format!("release {name} is not in namespace {namespace} (no inventory Secret {})", inventory::secret_name(name)))
    })?;
    let plan = plan::plan(vec![], name, &namespace, &inventory.known());
    let mut applied = Applied::default();
    prune(cluster, &plan.prune, name, &namespace, storage, &mut applied)?;
    cluster.block_on(cluster.delete(&inventory::secret_ref(name, &namespace)))?;
    Ok(Deleted { release: name.to_string(), namespace, deleted: applied.pruned, kept: applied.kept })
}

#[derive(Debug, Serialize)]
pub struct Deleted {
    pub release: String,
    pub namespace: String,
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
}

/// Now, as RFC 3339 in UTC (no date library: days from the civil
/// calendar, Howard Hinnant's algorithm).
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_change_is_a_new_version_made_by_the_apply() {
        let (a, b) = (json!({"spec": 1}), json!({"spec": 2}));
        assert!(!super::changed_by_apply("7 T1", "7 T1", Some(&a), &a), "nothing moved");
        assert!(!super::changed_by_apply("7 T1", "9 T1", Some(&a), &a), "a status update");
        assert!(super::changed_by_apply("7 T1", "9 T2", Some(&a), &a), "opm's fields changed");
        assert!(super::changed_by_apply("7 T1", "9 T1", Some(&a), &b), "in the same second as before");
    }

    #[test]
    fn dates_are_rfc3339() {
        let now = super::now_rfc3339();
        assert_eq!(now.len(), 20);
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    }
}
