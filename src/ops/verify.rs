//! `opm mod verify`: the module's dependencies in the cache, and with
//! `remote` in their registries, against cue.mod/opm.sum.

use super::{sums, Workspace};
use crate::cache::SignatureStatus;
use crate::context::Context;
use crate::error::{fail, failure_kind, Kind};
use crate::files;
use crate::module::ModuleVersion;
use serde::Serialize;

pub struct VerifyOptions {
    /// Also ask each registry what the version's tag points to now.
    pub remote: bool,
}

/// `opm mod verify --signatures`: every dependency in module.cue, as
/// cached, against the signature policy (asking the registries again
/// unless offline).
pub fn signatures(ctx: &Context) -> anyhow::Result<Vec<Checked>> {
    let ws = Workspace::open(ctx, &files::current_dir()?)?;
    let main = ws.main_file()?;
    let mut out = Vec::new();
    for mv in main.roots() {
        let (status, signer, problem) = match ws.cache.signature_status(&mv)? {
            SignatureStatus::Exempt => (Status::Exempt, None, None),
            SignatureStatus::Signed(key) => (Status::Signed, Some(key), None),
            SignatureStatus::Refused(why) => (Status::Refused, None, Some(why)),
            SignatureStatus::NotCached => (Status::NotCached, None, None),
            SignatureStatus::Unchecked => (Status::Unchecked, None, Some("never checked; run without --offline".to_string())),
        };
        out.push(Checked { module: mv.module().to_string(), version: mv.version().to_string(), status, signer, problem });
    }
    Ok(out)
}

/// What a check found of one version, as scripts read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    Mismatch,
    NotCached,
    /// module.cue and the sums file disagree.
    Stale,
    /// `--signatures`: a signature by a policy key holds.
    Signed,
    Refused,
    /// The policy covers no key for it.
    Exempt,
    /// Offline, with no signature kept.
    Unchecked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Mismatch => "mismatch",
            Status::NotCached => "not-cached",
            Status::Stale => "stale",
            Status::Signed => "signed",
            Status::Refused => "refused",
            Status::Exempt => "exempt",
            Status::Unchecked => "unchecked",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Checked {
    pub module: String,
    pub version: String,
    pub status: Status,
    /// With --signatures: the key file whose signature holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

pub fn verify(ctx: &Context, opts: &VerifyOptions) -> anyhow::Result<Vec<Checked>> {
    if opts.remote && ctx.offline() {
        return Err(fail(Kind::Other, "--remote asks the registries, --offline forbids it: choose one"));
    }
    let ws = Workspace::open(ctx, &files::current_dir()?)?;
    let Some(pins) = &ws.pins else {
        return Err(fail(Kind::Other, format!("this module has no {}: run 'opm mod tidy' to record its dependencies", sums::SUMS_FILE)));
    };
    let main = ws.main_file()?;
    let mut out = Vec::new();
    let row = |mv: &ModuleVersion, status, problem: Option<String>| Checked {
        module: mv.module().to_string(),
        version: mv.version().to_string(),
        status,
        signer: None,
        problem,
    };
    for s in sums::stale(pins, &main.roots()) {
        out.push(Checked {
            module: String::new(),
            version: String::new(),
            status: Status::Stale,
            signer: None,
            problem: Some(format!("{} {s}", sums::SUMS_FILE)),
        });
    }
    for (mv, pin) in pins {
        if !ws.cache.entry(mv)?.is_complete() {
            out.push(row(mv, Status::NotCached, None));
        } else {
            // The whole chain the cache holds, and the pin.
            match ws.cache.prove_cached(mv) {
                Ok(_) => out.push(row(mv, Status::Ok, None)),
                Err(e) if matches!(failure_kind(&e), Some(Kind::Integrity | Kind::Untrusted)) => out.push(row(mv, Status::Mismatch, Some(format!("{e:#}")))),
                Err(e) => return Err(e),
            }
        }
        // The core model opm carries is compared with the binary's own.
        if opts.remote {
            let now = if crate::catalog::is_embedded(mv) {
                let (packed, _) = crate::catalog::pack()?;
                crate::registry::ModuleManifest::parse(packed.manifest.into_bytes())
                    .map_err(|why| fail(Kind::Other, format!("the core model opm carries {why}")))?
            } else {
                ws.cache.manifest_in_registry(mv)?
            };
            let moved = if now.digest != pin.manifest {
                Some(format!("the registry's tag now points to {}, the sums file records {}: a moved tag, or tampering", now.digest, pin.manifest))
            } else if now.zip.0 != pin.zip {
                Some(format!("the registry's manifest names the zip {}, the sums file records {}", now.zip.0, pin.zip))
            } else {
                None
            };
            if let Some(problem) = moved {
                out.pop();
                out.push(row(mv, Status::Mismatch, Some(problem)));
            }
        }
    }
    Ok(out)
}
