//! Module versions copied from the command's registry to another, judged
//! by the signature policy exactly as a download is (refused before
//! anything is written); the core model opm carries is pushed from the
//! binary. Registry to registry: of what is copied, nothing is written
//! into the cache.

use super::{naming, Cache};
use crate::catalog;
use crate::module::ModuleVersion;
use crate::registry::{Client, Copied, Progress, Pushed, PARALLEL};
use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};

/// What became of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copy {
    /// Copied now.
    Copied,
    /// The target had it, with the same digest.
    Present,
    /// `dry_run`: judged, would be copied.
    WouldCopy,
}

#[derive(Debug, Clone)]
pub struct Mirrored {
    pub mv: ModuleVersion,
    /// The manifest digest, the same in both registries.
    pub digest: String,
    pub copy: Copy,
    pub copied: Copied,
    /// Whether cosign signatures came along.
    pub signed: bool,
}

impl Cache {
    /// Copies every version to `dst` (at most PARALLEL at once), calling
    /// `done` after each; in the order given.
    pub fn copy_to(&self, dst: &Client, mvs: &[ModuleVersion], dry_run: bool, done: &(dyn Fn() + Sync)) -> anyhow::Result<Vec<Mirrored>> {
        let client = self.client()?;
        client.block_on(
            stream::iter(mvs)
                .map(|mv| async move {
                    let out = if catalog::is_embedded(mv) { copy_embedded(dst, mv, dry_run).await? } else { self.copy_one(client, dst, mv, dry_run).await? };
                    done();
                    anyhow::Ok(out)
                })
                .buffered(PARALLEL)
                .try_collect(),
        )
    }

    async fn copy_one(&self, client: &Client, dst: &Client, mv: &ModuleVersion, dry_run: bool) -> anyhow::Result<Mirrored> {
        let (manifest, signatures) = client.manifest(mv, self.must_be_signed(mv)?).await.map_err(naming(mv, "fetching the manifest of"))?;
        self.judge(mv, &manifest.digest, signatures.as_deref())?;
        let row = |copy, copied, signed| Mirrored { mv: mv.clone(), digest: manifest.digest.clone(), copy, copied, signed };
        if dry_run {
            return Ok(row(Copy::WouldCopy, Copied::default(), false));
        }
        let (_, copied, signed) = client.mirror(dst, mv).await?;
        Ok(row(if copied.already { Copy::Present } else { Copy::Copied }, copied, signed))
    }
}

/// The core model opm carries, pushed from the binary itself: the target
/// then serves it to cue as a download of the published catalog would.
async fn copy_embedded(dst: &Client, mv: &ModuleVersion, dry_run: bool) -> anyhow::Result<Mirrored> {
    let (packed, zip) = catalog::pack()?;
    let copy = if dry_run {
        Copy::WouldCopy
    } else {
        match dst.publish(&dst.locate(mv)?, &packed, &zip, &Progress::none()).await? {
            Pushed::Published => Copy::Copied,
            Pushed::Unchanged => Copy::Present,
        }
    };
    Ok(Mirrored { mv: mv.clone(), digest: packed.manifest_digest, copy, copied: Copied::default(), signed: false })
}
