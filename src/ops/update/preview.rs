//! `opm mod update --diff`: what each update changes in the rendered
//! objects, each update rendered on its own in a staged copy of the module.

use super::prove::{render_options, resolve_updates, staged};
use super::Plan;
use crate::cue::{self, Diagnostic, Encoding, ReleaseKind};
use crate::error::Failure;
use crate::fields::{self, FieldChange};
use crate::files::{self, display_path};
use crate::ops::render::{self, RenderOptions};
use crate::ops::Workspace;
use serde::Serialize;
use std::path::PathBuf;

/// What one update changes in the rendered objects.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub module: String,
    pub current: String,
    pub available: String,
    /// `Kind namespace/name` of objects the update adds and removes.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<ObjectChange>,
    /// Why the module's release does not render after the update, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ObjectChange {
    pub object: String,
    pub fields: Vec<FieldChange>,
}

type Objects = std::collections::BTreeMap<String, serde_json::Value>;

/// The module's release (else its bundle release) as objects by
/// `Kind namespace/name`; a module with neither (a plain CUE module): its
/// `cue export`, by top-level field.
fn rendered(ws_root: &std::path::Path, ws: &Workspace, values: &[PathBuf]) -> anyhow::Result<Objects> {
    let mut errors = Vec::new();
    for kind in [ReleaseKind::Module, ReleaseKind::Bundle] {
        let opts = RenderOptions { dir: ws_root.to_path_buf(), encoding: Encoding::Json, ..render_options(ws, kind, values) };
        match render::render(&ws.ctx, &opts) {
            Ok(r) => {
                let mut out = Objects::new();
                for o in r.objects {
                    let name = if o.namespace.is_empty() { o.name.clone() } else { format!("{}/{}", o.namespace, o.name) };
                    out.insert(format!("{} {name}", o.kind), serde_json::from_str(&o.text)?);
                }
                return Ok(out);
            }
            Err(e) => errors.push(e),
        }
    }
    // A release that exists and is broken is the error to report.
    if let Some(i) = errors.iter().position(|e| !render::declares_no_release(e)) {
        return Err(errors.swap_remove(i));
    }
    let exported = cue::export(ws_root, &files::current_dir()?, ws.cache.dir().unwrap_or(std::path::Path::new(""))).map_err(Failure::from)?;
    Ok(match exported {
        serde_json::Value::Object(fields) => fields.into_iter().map(|(k, v)| (format!("field {k}"), v)).collect(),
        other => Objects::from([("export".to_string(), other)]),
    })
}

/// An error found in a staged copy, in the user's terms: its first CUE
/// error at its place in the user's own files (every error with -v).
fn in_user_paths(e: &anyhow::Error, copy: &std::path::Path, root: &std::path::Path) -> String {
    let cwd = files::current_dir().unwrap_or_default();
    let shown = |file: &str| {
        let path = std::path::Path::new("/").join(file);
        let path = path.strip_prefix(copy).map(|rel| root.join(rel)).unwrap_or(path);
        display_path(&cwd, &path)
    };
    let Some(failure) = e.chain().find_map(|c| c.downcast_ref::<Failure>()).filter(|f| !f.diagnostics.is_empty()) else {
        return format!("{e:#}").replace(&copy.display().to_string(), &root.display().to_string());
    };
    let one = |d: &Diagnostic| match d.positions.first() {
        Some(p) => format!("{} ({}:{}:{})", d.message, shown(&p.file), p.line, p.column),
        None => d.message.clone(),
    };
    if crate::ui::is_verbose() {
        failure.diagnostics.iter().map(one).collect::<Vec<_>>().join("; ")
    } else {
        let more = failure.diagnostics.len() - 1;
        one(&failure.diagnostics[0]) + &if more > 0 { format!(" (and {}; -v shows all)", crate::error::count(more, "more error")) } else { String::new() }
    }
}

/// For each update of the plan, on its own: the release rendered before
/// and after it, compared object by object. Nothing of the module changes:
/// the update is rendered in a copy of the module.
pub fn preview(plan: &Plan) -> anyhow::Result<Vec<Preview>> {
    let ws = &plan.ws;
    ws.ensure_deps()?;
    let before = rendered(&ws.root, ws, &plan.values)?;
    let mut out = Vec::new();
    for u in &plan.updates {
        let applied = resolve_updates(plan, &[u])?;
        let (copy, copied) = staged(plan, &applied)?;
        let mut p = Preview {
            module: u.module.clone(),
            current: u.current.clone(),
            available: u.available.clone(),
            added: vec![],
            removed: vec![],
            changed: vec![],
            error: None,
        };
        match rendered(copy.path(), &copied, &plan.values) {
            Err(e) => p.error = Some(in_user_paths(&e, copy.path(), &ws.root)),
            Ok(after) => {
                p.added = after.keys().filter(|k| !before.contains_key(*k)).cloned().collect();
                p.removed = before.keys().filter(|k| !after.contains_key(*k)).cloned().collect();
                for (k, a) in &before {
                    if let Some(b) = after.get(k) {
                        let fields = fields::changes(a, b);
                        if !fields.is_empty() {
                            p.changed.push(ObjectChange { object: k.clone(), fields });
                        }
                    }
                }
            }
        }
        out.push(p);
    }
    Ok(out)
}
