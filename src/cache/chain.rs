//! The trust chain of a cached module version, walked through one function
//! ([`Cache::prove`]) by every command that pins a version or reports on
//! its trust:
//!
//! signature (when a `verify:` rule covers the version) -> manifest digest
//! -> the manifest's own bytes, kept beside the entry -> the zip and module
//! file digests that manifest names -> their bytes -> the extracted tree.
//!
//! Nothing on file is believed: the kept manifest is hashed, the kept
//! signatures are verified with the policy's keys (an ECDSA check, well
//! under a millisecond), the zip and the module file are hashed. A link
//! the cache lacks (the manifest of an entry cue downloaded, signatures of
//! a version fetched before a rule covered it) is fetched from its
//! registry and kept, unless offline. A link that does not match what the
//! one before it names means the cache changed after the download: exit 7.

use super::{Cache, Entry, PARALLEL};
use crate::catalog;
use crate::error::{fail, Kind};
use crate::module::ModuleVersion;
use crate::registry::ModuleManifest;
use crate::trust::{Policy, Verdict};
use futures_util::stream::{self, StreamExt, TryStreamExt};

/// How much of the chain a check walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// What vet and build check on a warm cache, at a small cost per
    /// module: the signature, the kept manifest, the zip's and the module
    /// file's bytes against the digests it names.
    Warm,
    /// Everything: also the extracted tree against the zip, and the module
    /// file against the version's path.
    Full,
}

/// What a walk proved of a version.
#[derive(Debug, Clone)]
pub struct Proven {
    /// The manifest digest; None for an entry cue downloaded and nothing
    /// required more of (a warm or offline check without a signature rule:
    /// its zip is then checked against the pin alone, as cue trusts it).
    pub manifest: Option<String>,
    pub zip: String,
    /// The key file whose signature vouches for the manifest, when a rule
    /// covers the version.
    pub signer: Option<String>,
}

/// Why a walk stopped.
pub(super) enum Gap {
    /// A link the registry can supply.
    Missing(Link),
    /// A link that is not what the one before it names.
    Broken(String),
}

pub(super) enum Link {
    Manifest,
    Signature,
}

impl Entry {
    /// Walks the chain with what the cache holds; `policy` when a rule
    /// covers the version.
    /// The content first: a signature is asked for only for content that
    /// holds.
    pub(super) fn walk(&self, policy: Option<&Policy>, depth: Depth) -> Result<Proven, Gap> {
        let manifest = self.kept_manifest().ok_or(Gap::Missing(Link::Manifest))?;
        self.check_against(&manifest, depth)?;
        let signer = match policy {
            None => None,
            Some(policy) => match policy.check(self.module_version(), &manifest.digest, &self.kept_signatures()) {
                Ok(Verdict::Signed(key)) => Some(key.path.display().to_string()),
                Ok(Verdict::Exempt) => None,
                // A forged or foreign file proves nothing: ask again.
                Err(_) => return Err(Gap::Missing(Link::Signature)),
            },
        };
        Ok(Proven { manifest: Some(manifest.digest), zip: manifest.zip.0, signer })
    }

    /// An entry without a kept manifest (cue downloaded it): its zip, and
    /// at `Depth::Full` its tree against the zip.
    fn walk_unanchored(&self, depth: Depth) -> Result<Proven, Gap> {
        let zip = self.zip_digest()?;
        if depth == Depth::Full {
            self.check_tree()?;
        }
        Ok(Proven { manifest: None, zip, signer: None })
    }
}

/// A cache entry whose chain is broken, as the person reads it.
fn broken(mv: &ModuleVersion, why: &str) -> anyhow::Error {
    fail(
        Kind::Integrity,
        format!(
            "the CUE cache entry of {mv} is not what was downloaded ({why}): the cache was changed after the download; \
             nothing was written. Run 'opm mod get --force {mv}' to fetch it again"
        ),
    )
}

/// A cached version as the signature policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureStatus {
    /// No rule of the policy covers it.
    Exempt,
    /// Signed by this key (its file).
    Signed(String),
    /// Refused, and why.
    Refused(String),
    NotCached,
    /// Offline, and no signature by the policy's keys is kept.
    Unchecked,
}

impl Cache {
    /// Proves versions complete in the cache through their chains, to
    /// `depth`, and against the sums file's pins. Links the cache lacks
    /// are fetched (in parallel) and kept, unless offline.
    pub fn prove(&self, mvs: &[ModuleVersion], depth: Depth) -> anyhow::Result<Vec<Proven>> {
        let mut out = Vec::with_capacity(mvs.len());
        let mut missing = Vec::new();
        for (i, mv) in mvs.iter().enumerate() {
            // A full walk also sweeps what an interrupted run left beside the entry.
            if depth == Depth::Full && self.entry(mv)?.has_leftovers() {
                self.entry(mv)?.collect_leftovers()?;
            }
            match self.walk(mv, depth)? {
                Ok(p) => out.push(Some(p)),
                Err(link) => {
                    out.push(None);
                    missing.push((i, link));
                }
            }
        }
        if !missing.is_empty() {
            self.fetch_links(mvs, &missing, depth)?;
            for (i, _) in &missing {
                let mv = &mvs[*i];
                out[*i] = Some(self.walk(mv, depth)?.map_err(|_| broken(mv, "the links fetched do not hold"))?);
            }
        }
        let out: Vec<Proven> = out.into_iter().map(|p| p.expect("every version walked")).collect();
        for (mv, p) in mvs.iter().zip(&out) {
            self.check_pin(mv, p)?;
            if depth == Depth::Warm && self.pins.contains_key(mv) {
                self.pinned_warm.borrow_mut().insert(mv.clone(), p.clone());
            }
        }
        Ok(out)
    }

    /// One walk: the link to fetch when the cache lacks it.
    fn walk(&self, mv: &ModuleVersion, depth: Depth) -> anyhow::Result<Result<Proven, Link>> {
        if let Some(p) = self.installed.borrow().get(mv) {
            // Installed by this command: walked whole on the way in.
            return Ok(Ok(p.clone()));
        }
        let entry = self.entry(mv)?;
        let policy = if self.must_be_signed(mv)? { Some(self.policy()?) } else { None };
        let walked = match entry.walk(policy, depth) {
            Err(Gap::Missing(Link::Manifest)) if policy.is_none() && !catalog::is_embedded(mv) && (depth == Depth::Warm || self.offline) => {
                entry.walk_unanchored(depth)
            }
            other => other,
        };
        match walked {
            Ok(p) => Ok(Ok(p)),
            Err(Gap::Missing(link)) => Ok(Err(link)),
            Err(Gap::Broken(why)) => Err(broken(mv, &why)),
        }
    }

    /// Fetches the links the walks lacked and keeps them, once they are
    /// checked: the manifest against the pin, the signatures against the
    /// policy, the cache's files against the manifest. The core model's
    /// manifest comes from the binary.
    fn fetch_links(&self, mvs: &[ModuleVersion], missing: &[(usize, Link)], depth: Depth) -> anyhow::Result<()> {
        let mut remote = Vec::new();
        for (i, link) in missing {
            let mv = &mvs[*i];
            if catalog::is_embedded(mv) {
                let (packed, _) = catalog::pack()?;
                let manifest =
                    ModuleManifest::parse(packed.manifest.into_bytes()).map_err(|why| fail(Kind::Other, format!("the core model opm carries {why}")))?;
                self.keep_fetched(mv, &manifest, None, depth)?;
            } else if self.offline {
                // Offline, a walk stops short only where a rule covers the version.
                return Err(fail(
                    Kind::Untrusted,
                    format!(
                        "--offline: {mv} is covered by the verify policy, but the CUE cache keeps no signature of it by the policy's keys \
                         (never checked); run once without --offline"
                    ),
                ));
            } else {
                remote.push((mv, link));
            }
        }
        if remote.is_empty() {
            return Ok(());
        }
        let client = self.client()?;
        client.block_on(client.preauthorize(&remote.iter().map(|(mv, _)| *mv).collect::<Vec<_>>()));
        client.block_on(
            stream::iter(remote)
                .map(|(mv, link)| async move {
                    let entry = self.entry(mv)?;
                    match (link, entry.kept_manifest()) {
                        // The walk proved the content to `depth` before it
                        // stopped at the signature: its manifest's signatures
                        // are asked for.
                        (Link::Signature, Some(manifest)) => {
                            let signatures = client.signatures(mv, &manifest.digest).await.map_err(super::naming(mv, "fetching the signatures of"))?;
                            self.judge(mv, &manifest.digest, Some(&signatures))?;
                            entry.keep_evidence(&manifest, Some(&signatures))
                        }
                        _ => {
                            let (manifest, signatures) =
                                client.manifest(mv, self.must_be_signed(mv)?).await.map_err(super::naming(mv, "fetching the manifest of"))?;
                            self.judge(mv, &manifest.digest, signatures.as_deref())?;
                            self.keep_fetched(mv, &manifest, signatures.as_deref(), depth)
                        }
                    }
                })
                .buffer_unordered(PARALLEL)
                .try_collect::<()>(),
        )
    }

    /// Keeps a manifest fetched for a cached version, once the pin agrees
    /// and the cache's files are what it names.
    fn keep_fetched(&self, mv: &ModuleVersion, manifest: &ModuleManifest, signatures: Option<&[crate::trust::Signature]>, depth: Depth) -> anyhow::Result<()> {
        self.check_download(mv, &manifest.digest, None)?;
        let entry = self.entry(mv)?;
        match entry.check_against(manifest, depth) {
            Ok(()) => entry.keep_evidence(manifest, signatures),
            Err(Gap::Broken(why)) => Err(fail(
                Kind::Integrity,
                format!(
                    "{mv}: the CUE cache's copy is not the one the registry's tag names now ({why}): nothing was written. \
                     Run 'opm mod get --force {mv}' to fetch it again"
                ),
            )),
            Err(Gap::Missing(_)) => unreachable!("check_against reports broken links only"),
        }
    }

    /// A proven version against the sums file.
    fn check_pin(&self, mv: &ModuleVersion, p: &Proven) -> anyhow::Result<()> {
        let Some(pin) = self.pins.get(mv) else { return Ok(()) };
        let stale = |what: &str, held: &str, pinned: &str| {
            fail(
                Kind::Integrity,
                format!(
                    "{mv}: the CUE cache holds a {what} with digest {held}, but cue.mod/opm.sum records {pinned}: the cached copy is not \
                     the pinned one; run 'opm mod get --force {mv}' to fetch it again (checked against the pin)"
                ),
            )
        };
        match &p.manifest {
            Some(m) if *m != pin.manifest => Err(stale("manifest", m, &pin.manifest)),
            _ if p.zip != pin.zip => Err(stale("zip", &p.zip, &pin.zip)),
            _ => Ok(()),
        }
    }

    /// `opm mod verify --signatures`: a cached version's whole chain
    /// against the policy, its signatures read from its registry again
    /// (offline: the signatures the cache keeps, checked again).
    pub fn signature_status(&self, mv: &ModuleVersion) -> anyhow::Result<SignatureStatus> {
        if !self.must_be_signed(mv)? {
            return Ok(SignatureStatus::Exempt);
        }
        if !self.entry(mv)?.is_complete() {
            return Ok(SignatureStatus::NotCached);
        }
        let checked = if self.offline {
            match self.walk(mv, Depth::Full) {
                Ok(Ok(p)) => self.check_pin(mv, &p).map(|()| p.signer),
                Ok(Err(_)) => return Ok(SignatureStatus::Unchecked),
                Err(e) => Err(e),
            }
        } else {
            self.prove(std::slice::from_ref(mv), Depth::Full).and_then(|_| {
                let entry = self.entry(mv)?;
                let manifest = entry.kept_manifest().ok_or_else(|| broken(mv, "its manifest is gone"))?;
                let client = self.client()?;
                let signatures = client.block_on(client.signatures(mv, &manifest.digest))?;
                let signer = self.judge(mv, &manifest.digest, Some(&signatures))?;
                entry.keep_evidence(&manifest, Some(&signatures))?;
                Ok(signer.map(|k| k.path.display().to_string()))
            })
        };
        match checked {
            Ok(signer) => Ok(SignatureStatus::Signed(signer.unwrap_or_default())),
            Err(e) if matches!(crate::error::failure_kind(&e), Some(Kind::Integrity | Kind::Untrusted)) => Ok(SignatureStatus::Refused(format!("{e:#}"))),
            Err(e) => Err(e),
        }
    }

    /// Whether the signature policy would refuse a version not yet fetched
    /// (`update --check` marks such offers): its manifest and signatures
    /// asked of its registry, nothing written. False when no rule covers
    /// it, or offline (what is not cached cannot be judged).
    pub fn would_refuse(&self, mv: &ModuleVersion) -> anyhow::Result<bool> {
        if !self.must_be_signed(mv)? || self.offline {
            return Ok(false);
        }
        let client = self.client()?;
        let (manifest, signatures) = client.block_on(client.manifest(mv, true))?;
        Ok(self.judge(mv, &manifest.digest, signatures.as_deref()).is_err())
    }

    /// The whole chain as far as the cache holds it (nothing is fetched):
    /// without a kept signature, the content's own chain; without a kept
    /// manifest (cue's entry), the zip and the tree. The Err of the inner
    /// result is why it is broken.
    fn walk_cached(&self, mv: &ModuleVersion) -> anyhow::Result<Result<Proven, String>> {
        let entry = self.entry(mv)?;
        let policy = if self.must_be_signed(mv)? { Some(self.policy()?) } else { None };
        let walked = match entry.walk(policy, Depth::Full) {
            Err(Gap::Missing(Link::Signature)) => entry.walk(None, Depth::Full),
            other => other,
        };
        let walked = match walked {
            Err(Gap::Missing(Link::Manifest)) => entry.walk_unanchored(Depth::Full),
            other => other,
        };
        Ok(walked.map_err(|gap| match gap {
            Gap::Broken(why) => why,
            Gap::Missing(_) => unreachable!("every missing link was walked around"),
        }))
    }

    /// `opm mod verify`: a cached version's chain as the cache holds it,
    /// and the pin; asks no registry.
    pub fn prove_cached(&self, mv: &ModuleVersion) -> anyhow::Result<Proven> {
        let proven = self.walk_cached(mv)?.map_err(|why| broken(mv, &why))?;
        self.check_pin(mv, &proven)?;
        Ok(proven)
    }

    /// `opm cache verify`: what is wrong with a cached version's chain, as
    /// far as the cache holds it (nothing is fetched); None when sound.
    pub fn audit(&self, mv: &ModuleVersion) -> anyhow::Result<Option<String>> {
        Ok(self.walk_cached(mv)?.err())
    }
}
