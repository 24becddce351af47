//! Signatures next to module versions, where cosign v2 keeps them: the tag
//! `sha256-<hex>.sig` in the module's repository names an OCI manifest
//! whose layers are simple-signing payloads, each with its base64
//! signature in the annotation `dev.cosignproject.cosign/signature`.
//! OCI 1.1 referrers are not used: Debian's docker-registry and many
//! mirrors lack that API, and cosign v2 reads and writes the tag.

use super::{Client, Error, ErrorKind, PARALLEL};
use crate::cue::Location;
use crate::module::ModuleVersion;
use crate::registry::Progress;
use crate::trust::Signature;
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// What opm reads of a signature manifest: a payload is a few hundred
/// bytes, and a version signed more often than this is not plausible.
const MAX_PAYLOAD: u64 = 64 << 10;
const MAX_SIGNATURES: usize = 64;

/// Where the signatures of a manifest are: its repository, the
/// `sha256-<hex>.sig` tag.
pub fn signature_location(version: &Location, manifest_digest: &str) -> Location {
    Location { tag: format!("{}.sig", manifest_digest.replacen(':', "-", 1)), ..version.clone() }
}

/// The name a signature payload gives the artifact (cosign's
/// `docker-reference`): the repository, without tag or digest.
pub fn signed_reference(version: &Location) -> String {
    format!("{}/{}", version.host, version.repository)
}

impl Client {
    /// The signatures stored for a version's manifest digest (none: an
    /// empty list).
    pub async fn signatures(&self, mv: &ModuleVersion, manifest_digest: &str) -> anyhow::Result<Vec<Signature>> {
        self.signatures_at(&self.locate(mv)?, manifest_digest).await
    }

    /// The signatures stored for the manifest digest of the version at
    /// `version`.
    pub async fn signatures_at(&self, version: &Location, manifest_digest: &str) -> anyhow::Result<Vec<Signature>> {
        let loc = signature_location(version, manifest_digest);
        let Some(manifest) = self.transport.manifest(&loc).await? else { return Ok(Vec::new()) };
        let corrupt = |why: &str| Error::new(ErrorKind::Corrupt, format!("the signature manifest {}/{}:{} {why}", loc.host, loc.repository, loc.tag));
        let parsed: SignatureManifest = serde_json::from_slice(&manifest.data).map_err(|_| corrupt("is not a cosign signature manifest"))?;
        let wanted: Vec<(String, u64, String)> = parsed
            .layers
            .into_iter()
            .filter(|l| l.media_type == SIMPLE_SIGNING && l.size <= MAX_PAYLOAD)
            .filter_map(|mut l| Some((l.digest, l.size, l.annotations.remove(ANNOTATION)?)))
            .take(MAX_SIGNATURES)
            .collect();
        let loc = &loc;
        futures_util::stream::iter(wanted)
            .map(|(digest, size, signature)| async move {
                let payload = self.transport.blob(loc, &digest, size, None).await?;
                anyhow::Ok(Signature { payload, signature })
            })
            .buffered(PARALLEL)
            .try_collect()
            .await
    }

    /// Adds a signature of a version's manifest where cosign looks for it:
    /// a layer appended to the signature manifest (created when there is
    /// none), written as cosign writes it. Blobs first, the manifest last.
    pub async fn attach_signature(&self, version: &Location, manifest_digest: &str, payload: &[u8], signature: &str) -> anyhow::Result<()> {
        let loc = signature_location(version, manifest_digest);
        let payload_digest = super::sha256(payload);
        let mut layers: Vec<Layer> = match self.transport.manifest(&loc).await? {
            Some(m) => serde_json::from_slice::<SignatureManifest>(&m.data).map(|m| m.layers).unwrap_or_default(),
            None => Vec::new(),
        };
        layers.push(Layer {
            media_type: SIMPLE_SIGNING.into(),
            size: payload.len() as u64,
            digest: payload_digest.clone(),
            annotations: [(ANNOTATION.to_string(), signature.to_string())].into(),
        });
        let config = serde_json::to_vec(&ImageConfig::of(&layers))?;
        let config_digest = super::sha256(&config);
        let manifest = serde_json::to_vec(&SignatureManifest {
            schema_version: 2,
            media_type: super::MANIFEST_MEDIA_TYPE.into(),
            config: Descriptor { media_type: CONFIG_MEDIA_TYPE.into(), size: config.len() as u64, digest: config_digest.clone() },
            layers,
        })?;
        let quiet = Progress::none();
        self.transport.push_blob(&loc, &config, &config_digest, &quiet).await?;
        self.transport.push_blob(&loc, payload, &payload_digest, &quiet).await?;
        self.transport.push_manifest(&loc, &manifest, super::MANIFEST_MEDIA_TYPE).await?;
        Ok(())
    }
}

// cosign's documents, their fields in the order go-containerregistry
// writes them.

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignatureManifest {
    schema_version: u32,
    media_type: String,
    config: Descriptor,
    layers: Vec<Layer>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    size: u64,
    digest: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layer {
    media_type: String,
    size: u64,
    digest: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// The image configuration cosign writes: one diff_id per layer.
#[derive(Serialize)]
struct ImageConfig {
    architecture: &'static str,
    created: &'static str,
    history: Vec<History>,
    os: &'static str,
    rootfs: RootFs,
    config: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct History {
    created: &'static str,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

impl ImageConfig {
    fn of(layers: &[Layer]) -> ImageConfig {
        const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
        ImageConfig {
            architecture: "",
            created: ZERO_TIME,
            history: layers.iter().map(|_| History { created: ZERO_TIME }).collect(),
            os: "",
            rootfs: RootFs { kind: "layers", diff_ids: layers.iter().map(|l| l.digest.clone()).collect() },
            config: BTreeMap::new(),
        }
    }
}
