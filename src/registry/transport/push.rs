//! Uploads: blobs (each once, one upload of a blob at a time) and the
//! manifest that tags them.

use super::authorize::Access;
use super::retry::{attempts, Fault};
use super::{sha256, short, Manifest, Request, Result, Transport, MIN_RATE};
use crate::cue::Location;
use crate::registry::Progress;
use std::time::Duration;

impl Transport {
    /// Whether the repository of `loc` has a blob (asked with the push
    /// scope: only a pusher wants to know).
    pub async fn has_blob(&self, loc: &Location, digest: &str) -> Result<bool> {
        let key = (loc.host.clone(), loc.repository.clone(), digest.to_string());
        if self.present.lock().expect("blob set").contains(&key) {
            return Ok(true);
        }
        let head = Request {
            method: reqwest::Method::HEAD,
            url: format!("/v2/{}/blobs/{digest}", loc.repository),
            access: Access::Push,
            headers: vec![],
            body: None,
            progress: None,
        };
        let exists = self.run(&format!("HEAD blobs/{}", short(digest)), loc, head, self.limits.request, |r| async move { Ok(r.status().is_success()) }).await?;
        if exists {
            self.present.lock().expect("blob set").insert(key);
        }
        Ok(exists)
    }

    /// Uploads a blob unless the repository has it already (one POST and
    /// one PUT, tried again as a pair), counted on `progress`.
    pub async fn push_blob(&self, loc: &Location, data: &[u8], digest: &str, progress: &Progress) -> Result<()> {
        if !self.push_blob_from(loc, digest, progress, || async { Ok(data) }).await? {
            progress.inc(data.len() as u64);
        }
        Ok(())
    }

    /// Uploads the blob that `data` yields (asked for only when the
    /// repository lacks it, so a copy fetches only what is missing), one
    /// upload of each blob at a time. Whether it was uploaded.
    pub async fn push_blob_from<D, F, Fut>(&self, loc: &Location, digest: &str, progress: &Progress, data: F) -> Result<bool>
    where
        D: AsRef<[u8]>,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<D>>,
    {
        let key = (loc.host.clone(), loc.repository.clone(), digest.to_string());
        let lock = self.uploads.lock().expect("upload locks").entry(key.clone()).or_default().clone();
        let _held = lock.lock().await;
        if self.has_blob(loc, digest).await? {
            return Ok(false);
        }
        let data = data().await?;
        let data = data.as_ref();
        let start = progress.position();
        let host = self.host(loc).await?;
        let deadline = self.limits.request + Duration::from_secs(data.len() as u64 / MIN_RATE);
        let host_ref = &host;
        attempts(&self.limits, &format!("PUT blobs/{}", short(digest)), loc, &host.credentials, || async move {
            progress.set_position(start);
            self.limits
                .within(deadline, async {
                    let post = Request {
                        method: reqwest::Method::POST,
                        url: format!("/v2/{}/blobs/uploads/", loc.repository),
                        access: Access::Push,
                        headers: vec![],
                        body: None,
                        progress: None,
                    };
                    let r = self.send(loc, host_ref, &post).await?;
                    let location = r
                        .headers()
                        .get(http::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| Fault::Malformed("the registry gave no upload location".into()))?
                        .to_string();
                    let location = if location.starts_with('/') { format!("{}{location}", host_ref.base) } else { location };
                    let sep = if location.contains('?') { '&' } else { '?' };
                    let put = Request {
                        method: reqwest::Method::PUT,
                        url: format!("{location}{sep}digest={digest}"),
                        access: Access::Push,
                        headers: vec![(http::header::CONTENT_TYPE, "application/octet-stream".into())],
                        body: Some(data),
                        progress: Some(progress),
                    };
                    self.send(loc, host_ref, &put).await?;
                    Ok(())
                })
                .await?
        })
        .await?;
        self.present.lock().expect("blob set").insert(key);
        Ok(true)
    }

    /// Uploads a manifest under `loc.tag`, with its media type set.
    pub async fn push_manifest(&self, loc: &Location, data: &[u8], media_type: &str) -> Result<()> {
        let req = Request {
            method: reqwest::Method::PUT,
            url: format!("/v2/{}/manifests/{}", loc.repository, loc.tag),
            access: Access::Push,
            headers: vec![(http::header::CONTENT_TYPE, media_type.to_string())],
            body: Some(data),
            progress: None,
        };
        self.run(&format!("PUT manifests/{}", loc.tag), loc, req, self.limits.request, |_| async { Ok(()) }).await?;
        // What this run reads of the tag from now on.
        let key = (loc.host.clone(), loc.repository.clone(), loc.tag.clone());
        self.manifests.lock().expect("manifest memo").insert(key, Some(Manifest { data: data.to_vec(), digest: sha256(data) }));
        Ok(())
    }
}
