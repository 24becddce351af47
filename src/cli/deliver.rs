//! `opm apply | diff | status | delete | rollback`: delivery of a module or
//! bundle release to a cluster.

use super::Global;
use crate::cluster::kubeconfig::Selection;
use crate::context::Context;
use crate::error::{count, fail, Kind};
use crate::ops::deliver::{self, ApplyOptions, Difference, ReleaseOptions};
use crate::ui;
use std::path::PathBuf;

pub const APPLY_EXAMPLES: &str = "\
Examples:
  opm apply                              Apply the release in this directory and wait
  opm apply -f prod.yaml -n shop         Values and namespace, as `opm mod build` takes them
  opm apply --context staging --no-wait  Another kubeconfig context; do not wait
  opm apply --force-conflicts            Take fields another manager owns
  opm apply --force                      Recreate objects whose immutable fields change

Server-side apply as field manager `opm`, in stages: Namespaces and CRDs
(waited for until established), cluster-scoped objects, the rest. The
dependencies are proven against cue.mod/opm.sum and the signature policy
first (exit 7 or 8, nothing applied). An existing object that is not the
release's is refused unless --adopt. The release's inventory is a Secret
opm-release.NAME in its namespace; objects of the previous revision that
are gone from the release are pruned if they carry the release's labels
(not Namespaces, PVCs or CRDs, unless --prune-storage; never one
annotated opmodel.dev/keep=true). -v shows each request and object.";

pub const DIFF_EXAMPLES: &str = "\
Examples:
  opm diff                   What `opm apply` would change, field by field
  opm diff -f prod.yaml      With values files
  opm diff --json | jq .     For scripts

The server's dry run of the apply: its defaults, admission and immutable
fields. Secrets are masked. Exit 0 in sync, 6 when there is something to
apply.";

pub const STATUS_EXAMPLES: &str = "\
Examples:
  opm status                 The release of this directory
  opm status --name blog -n web --json";

pub const DELETE_EXAMPLES: &str = "\
Examples:
  opm delete                       Delete the release of this directory
  opm delete --name blog -n web    By name
  opm delete --prune-storage       Its Namespaces, PVCs and CRDs too

Deletes every object of the latest revision that carries the release's
labels (not one annotated opmodel.dev/keep=true), then the inventory.
Namespaces, PersistentVolumeClaims and CRDs (and so what is in them) stay
unless --prune-storage.";

pub const ROLLBACK_EXAMPLES: &str = "\
Examples:
  opm rollback               Apply the revision before the latest again
  opm rollback 3 --name blog Apply revision 3 of release blog again
  opm rollback 3 ./app       The release of the package in ./app";

/// Which cluster, as kubectl takes it.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current-context)
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// The namespace of the release (default: the context's, else "default")
    #[arg(short = 'n', long)]
    namespace: Option<String>,
}

/// The release, as `opm mod build` takes it, and the cluster.
#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    release: super::mod_build::Release,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    release: ReleaseArgs,
    /// Take the fields other field managers own instead of failing
    #[arg(long)]
    force_conflicts: bool,
    /// Delete and create again the objects whose change the server refuses as immutable
    #[arg(long)]
    force: bool,
    /// Leave objects that are gone from the release in the cluster
    #[arg(long)]
    no_prune: bool,
    /// Prune Namespaces, PersistentVolumeClaims and CRDs too (their contents go with them)
    #[arg(long)]
    prune_storage: bool,
    /// Do not wait for the objects to become ready
    #[arg(long)]
    no_wait: bool,
    /// Take over objects that exist and are not the release's (made by other means or another release)
    #[arg(long)]
    adopt: bool,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    #[command(flatten)]
    release: ReleaseArgs,
    /// Show the diff of an apply with --force-conflicts
    #[arg(long)]
    force_conflicts: bool,
    /// Show the pruning of Namespaces, PersistentVolumeClaims and CRDs too
    #[arg(long)]
    prune_storage: bool,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    release: ReleaseArgs,
    /// Delete the release's Namespaces, PersistentVolumeClaims and CRDs too (their contents go with them)
    #[arg(long)]
    prune_storage: bool,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The revision to apply again (default: the one before the latest)
    revision: Option<u32>,
    #[command(flatten)]
    release: ReleaseArgs,
    /// Do not wait for the objects to become ready
    #[arg(long)]
    no_wait: bool,
}

impl ReleaseArgs {
    fn context(&self, g: Global) -> Context {
        let ctx = g.context(None);
        let c = &self.cluster;
        ctx.select_cluster(Selection { kubeconfig: c.kubeconfig.clone(), context: c.context.clone(), namespace: c.namespace.clone() });
        ctx
    }

    fn options(&self) -> ReleaseOptions {
        let r = &self.release;
        ReleaseOptions { dir: r.dir.clone(), values: r.values.clone(), name: r.name.clone(), tags: r.tags.clone() }
    }

    /// The release's name: --name, else what the package's release is called.
    fn name(&self, ctx: &Context) -> anyhow::Result<String> {
        if let Some(name) = &self.release.name {
            return Ok(name.clone());
        }
        let namespace = ctx.cluster_namespace()?;
        Ok(deliver::render_release(ctx, &self.options(), &namespace)?.name)
    }
}

pub fn apply(args: ApplyArgs, g: Global) -> anyhow::Result<()> {
    let ctx = args.release.context(g);
    let how = ApplyOptions {
        force_conflicts: args.force_conflicts,
        recreate: args.force,
        prune: !args.no_prune,
        prune_storage: args.prune_storage,
        adopt: args.adopt,
    };
    let applied = deliver::apply(&ctx, &args.release.options(), &how)?;
    finish(&ctx, applied, !args.no_wait, args.release.json)
}

pub fn rollback(args: RollbackArgs, g: Global) -> anyhow::Result<()> {
    let ctx = args.release.context(g);
    let name = args.release.name(&ctx)?;
    let how = ApplyOptions { prune: true, ..ApplyOptions::default() };
    let applied = deliver::rollback(&ctx, &name, args.revision, &how)?;
    finish(&ctx, applied, !args.no_wait, args.release.json)
}

/// Says what was applied, then waits: a wait that fails is told after
/// what was done, not instead of it (with --json: `ready: false`).
fn finish(ctx: &Context, mut applied: deliver::Applied, wait: bool, json: bool) -> anyhow::Result<()> {
    if !json {
        print_applied(&applied);
    }
    let waited = wait.then(|| deliver::wait(ctx, &applied));
    applied.ready = waited.as_ref().map(Result::is_ok);
    if json {
        ui::print_json(&applied)?;
    }
    match waited {
        Some(Err(e)) => Err(super::after_json(json, e)),
        Some(Ok(())) if !json => {
            ui::print_status(&format!("all {} ready", count(applied.objects.len(), "object")));
            Ok(())
        }
        _ => Ok(()),
    }
}

fn print_applied(a: &deliver::Applied) {
    for ns in &a.namespaces_created {
        ui::print_status(&format!("created namespace {ns}"));
    }
    for (list, verb) in [(&a.created, "created"), (&a.changed, "configured"), (&a.recreated, "recreated"), (&a.pruned, "pruned")] {
        for o in list {
            ui::print_status(&format!("{verb} {o}"));
        }
    }
    for o in &a.kept {
        ui::print_status(&format!("kept {o}"));
    }
    let unchanged = a.objects.len().saturating_sub(a.created.len() + a.changed.len());
    ui::print_status(&format!(
        "applied release {} revision {} to namespace {}: {} ({} unchanged)",
        a.release,
        a.revision,
        a.namespace,
        count(a.objects.len(), "object"),
        unchanged
    ));
}

pub fn diff(args: DiffArgs, g: Global) -> anyhow::Result<()> {
    let ctx = args.release.context(g);
    let json = args.release.json;
    let report = deliver::diff(&ctx, &args.release.options(), args.force_conflicts, args.prune_storage)?;
    let work = report.differences.iter().filter(|d| d.is_work()).count();
    if json {
        ui::print_json(&report)?;
    } else {
        let mut out = String::new();
        for d in &report.differences {
            match d {
                Difference::Create { object } => out += &format!("+ {object}\n"),
                Difference::Prune { object } => out += &format!("- {object} (pruned)\n"),
                Difference::Keep { object, why } => out += &format!("  {object} stays: {why}\n"),
                Difference::Change { object, fields } => {
                    out += &format!("~ {object}\n");
                    for f in fields {
                        out += &format!("      {}\n", crate::fields::describe(f));
                    }
                }
                Difference::Immutable { object, message } => out += &format!("! {object}: {message} (apply --force recreates it)\n"),
                Difference::Conflict { object, message } => out += &format!("! {object}: {message} (apply --force-conflicts takes the fields)\n"),
            }
        }
        ui::write_stdout(&out)?;
        ui::print_status(&format!(
            "release {} in namespace {}: {} to apply, {} in sync",
            report.release,
            report.namespace,
            count(work, "object"),
            report.unchanged
        ));
    }
    if work > 0 {
        return Err(super::after_json(
            json,
            fail(
                Kind::Outdated,
                format!(
                    "{} of release {} {} from the cluster: run 'opm apply'",
                    count(work, "object"),
                    report.release,
                    if work == 1 { "differs" } else { "differ" }
                ),
            ),
        ));
    }
    Ok(())
}

pub fn status(args: ReleaseArgs, g: Global) -> anyhow::Result<()> {
    let ctx = args.context(g);
    let name = args.name(&ctx)?;
    let report = deliver::status(&ctx, &name)?;
    if args.json {
        return ui::print_json(&report);
    }
    let mut out = format!("release {} in namespace {}: revision {} applied {}\n", report.release, report.namespace, report.revision, report.applied_at);
    for m in &report.modules {
        let digest = if m.digest.is_empty() { String::new() } else { format!(" {}", m.digest) };
        out += &format!("  module {}{digest}\n", crate::cluster::plan::module_version(m));
    }
    let width = report.objects.iter().map(|o| o.object.len()).max().unwrap_or(0);
    for o in &report.objects {
        let drift = match &o.drift {
            Some(d) if !d.is_empty() => format!("  drifted: {}", d.join("; ")),
            Some(_) => String::new(),
            None => String::new(),
        };
        let reason = if o.reason.is_empty() { String::new() } else { format!(" ({})", o.reason) };
        let module = if o.module.is_empty() { String::new() } else { format!("  from {}", o.module) };
        out += &format!("{:<width$}  {}{reason}{module}{drift}\n", o.object, o.health);
    }
    ui::write_stdout(&out)
}

pub fn delete(args: DeleteArgs, g: Global) -> anyhow::Result<()> {
    let ctx = args.release.context(g);
    let name = args.release.name(&ctx)?;
    let deleted = deliver::delete(&ctx, &name, args.prune_storage)?;
    if args.release.json {
        return ui::print_json(&deleted);
    }
    for o in &deleted.deleted {
        ui::print_status(&format!("deleted {o}"));
    }
    for o in &deleted.kept {
        ui::print_status(&format!("kept {o}"));
    }
    ui::print_status(&format!("deleted release {} from namespace {}: {}", deleted.release, deleted.namespace, count(deleted.deleted.len(), "object")));
    Ok(())
}
