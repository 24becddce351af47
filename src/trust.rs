//! Signatures in cosign's key-based format, offline (no transparency log,
//! no keyless signing): the key files `cosign generate-key-pair` writes,
//! the "simple signing" payload cosign signs, and the signature policy of
//! the config file (`verify:`) with its keys loaded.
//!
//! Where signatures are stored (the `sha256-<digest>.sig` tag) is the
//! registry client's business; this module only signs and checks bytes.

use crate::config::{self, VerifyRule};
use crate::error::{fail, Kind};
use crate::module::ModuleVersion;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// The DER prefix of an ECDSA P-256 SubjectPublicKeyInfo: what precedes
/// the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const PAYLOAD_TYPE: &str = "cosign container image signature";
/// scrypt's cost parameter above which a key file is refused (cosign
/// writes 2^16): a hostile file must not cost gigabytes to open.
const MAX_SCRYPT_LOG_N: u8 = 20;

/// A cosign public key (ECDSA P-256).
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub path: PathBuf,
    /// The uncompressed point.
    point: Vec<u8>,
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` file, as `cosign generate-key-pair` writes.
    pub fn load(path: &Path) -> anyhow::Result<PublicKey> {
        let text = read_key(path, "the public key")?;
        let der = pem(&text, "PUBLIC KEY")
            .ok_or_else(|| fail(Kind::Other, format!("{} is not a public key file (PEM `PUBLIC KEY`, as cosign generate-key-pair writes)", path.display())))?;
        let point = der
            .strip_prefix(&P256_SPKI_PREFIX[..])
            .filter(|p| p.len() == 65 && p[0] == 4)
            .ok_or_else(|| fail(Kind::Other, format!("{}: only ECDSA P-256 keys are supported (cosign generate-key-pair's kind)", path.display())))?;
        Ok(PublicKey { path: path.to_path_buf(), point: point.to_vec() })
    }

    /// The key's identity in records: the SHA-256 of its point.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.point)
    }

    /// Whether `signature` (ASN.1 DER, as cosign writes) signs `payload`.
    fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.point).verify(payload, signature).is_ok()
    }

    /// What a stored signature says with this key: None when this key did
    /// not make it (or it was tampered with), else whether its payload
    /// vouches for `manifest_digest`.
    pub fn vouches(&self, manifest_digest: &str, s: &Signature) -> Option<bool> {
        let sig = base64::engine::general_purpose::STANDARD.decode(s.signature.trim()).ok()?;
        self.verifies(&s.payload, &sig).then(|| payload_digest(&s.payload).as_deref() == Some(manifest_digest))
    }
}

/// A cosign private key, decrypted.
pub struct SigningKey {
    pair: EcdsaKeyPair,
}

impl SigningKey {
    /// Reads and decrypts an `ENCRYPTED SIGSTORE PRIVATE KEY` (or the
    /// older `ENCRYPTED COSIGN PRIVATE KEY`): scrypt derives the key of a
    /// NaCl secretbox that holds the PKCS#8 key.
    pub fn load(path: &Path, password: &[u8]) -> anyhow::Result<SigningKey> {
        #[derive(serde::Deserialize)]
        struct Sealed {
            kdf: Kdf,
            cipher: Cipher,
            ciphertext: String,
        }
        #[derive(serde::Deserialize)]
        struct Kdf {
            name: String,
            params: KdfParams,
            salt: String,
        }
        #[derive(serde::Deserialize)]
        #[allow(non_snake_case)]
        struct KdfParams {
            N: u64,
            r: u32,
            p: u32,
        }
        #[derive(serde::Deserialize)]
        struct Cipher {
            name: String,
            nonce: String,
        }
        let shown = path.display();
        let text = read_key(path, "the private key")?;
        let not_a_key = || fail(Kind::Other, format!("{shown} is not a cosign private key (cosign generate-key-pair writes one)"));
        let sealed = pem(&text, "ENCRYPTED SIGSTORE PRIVATE KEY").or_else(|| pem(&text, "ENCRYPTED COSIGN PRIVATE KEY")).ok_or_else(not_a_key)?;
        let sealed: Sealed = serde_json::from_slice(&sealed).map_err(|_| not_a_key())?;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| not_a_key());
        if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" || !sealed.kdf.params.N.is_power_of_two() {
            return Err(not_a_key());
        }
        let log_n = sealed.kdf.params.N.trailing_zeros() as u8;
        if log_n > MAX_SCRYPT_LOG_N || sealed.kdf.params.r > 32 || sealed.kdf.params.p > 16 {
            return Err(fail(Kind::Other, format!("{shown}: its scrypt parameters are beyond what opm accepts (N at most 2^{MAX_SCRYPT_LOG_N})")));
        }
        let params = scrypt::Params::new(log_n, sealed.kdf.params.r, sealed.kdf.params.p, 32).map_err(|_| not_a_key())?;
        let mut key = [0u8; 32];
        scrypt::scrypt(password, &b64(&sealed.kdf.salt)?, &params, &mut key).map_err(|_| not_a_key())?;
        use crypto_secretbox::aead::{Aead as _, KeyInit as _};
        let nonce = b64(&sealed.cipher.nonce)?;
        if nonce.len() != 24 {
            return Err(not_a_key());
        }
        let pkcs8 = crypto_secretbox::XSalsa20Poly1305::new(&key.into())
            .decrypt(crypto_secretbox::Nonce::from_slice(&nonce), b64(&sealed.ciphertext)?.as_slice())
            .map_err(|_| fail(Kind::Auth, format!("the password does not open the private key {shown} (COSIGN_PASSWORD, or the one typed)")))?;
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8)
            .map_err(|_| fail(Kind::Other, format!("{shown}: only ECDSA P-256 keys are supported (cosign generate-key-pair's kind)")))?;
        Ok(SigningKey { pair })
    }

    /// The ASN.1 DER signature of `payload`.
    pub fn sign(&self, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
        let sig = self.pair.sign(&SystemRandom::new(), payload).map_err(|_| fail(Kind::Other, "signing failed"))?;
        Ok(sig.as_ref().to_vec())
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(self.pair.public_key().as_ref())
    }

    /// The public half, to recognise this key's signatures.
    pub fn public(&self) -> PublicKey {
        PublicKey { path: PathBuf::new(), point: self.pair.public_key().as_ref().to_vec() }
    }
}

/// A key file's text: a regular file of at most 64 KiB (a key is a few
/// hundred bytes).
fn read_key(path: &Path, what: &str) -> anyhow::Result<String> {
    let data = crate::files::read_regular(path, 64 << 10, what)?
        .ok_or_else(|| fail(Kind::Other, format!("cannot read {what} {}: it does not exist", path.display())))?;
    String::from_utf8(data).map_err(|_| fail(Kind::Other, format!("{} is not a key file (not text)", path.display())))
}

fn fingerprint(point: &[u8]) -> String {
    Sha256::digest(point).iter().map(|b| format!("{b:02x}")).collect()
}

/// The body of the PEM block labelled `label`.
fn pem(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = text.split_once(&begin)?.1.split_once(&end)?.0;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// cosign's simple signing payload for a manifest digest: the JSON `cosign
/// sign` signs, byte for byte (Go's encoding of its struct).
pub fn payload(reference: &str, manifest_digest: &str) -> Vec<u8> {
    let quote = |s: &str| serde_json::to_string(s).expect("a string encodes");
    format!(
        "{{\"critical\":{{\"identity\":{{\"docker-reference\":{}}},\"image\":{{\"docker-manifest-digest\":{}}},\"type\":{}}},\"optional\":null}}",
        quote(reference),
        quote(manifest_digest),
        quote(PAYLOAD_TYPE)
    )
    .into_bytes()
}

/// The manifest digest a payload vouches for, as cosign's claim check
/// reads it (the identity is not checked, so that mirrors keep working).
fn payload_digest(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let critical = v.get("critical")?;
    (critical.get("type")?.as_str()? == PAYLOAD_TYPE).then(|| critical.pointer("/image/docker-manifest-digest")?.as_str().map(str::to_string)).flatten()
}

/// A signature as stored next to an artifact: the payload and its
/// base64 signature.
#[derive(Debug, Clone)]
pub struct Signature {
    pub payload: Vec<u8>,
    pub signature: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeptSignature {
    payload: String,
    signature: String,
}

/// Signatures as the cache keeps them beside a version (JSON, payloads in
/// base64): evidence that is checked again on every use, never believed.
pub fn encode_signatures(signatures: &[Signature]) -> Vec<u8> {
    let kept: Vec<KeptSignature> = signatures
        .iter()
        .map(|s| KeptSignature { payload: base64::engine::general_purpose::STANDARD.encode(&s.payload), signature: s.signature.clone() })
        .collect();
    serde_json::to_vec(&kept).expect("signatures encode")
}

/// The signatures [`encode_signatures`] wrote; None when the bytes are not that.
pub fn decode_signatures(data: &[u8]) -> Option<Vec<Signature>> {
    let kept: Vec<KeptSignature> = serde_json::from_slice(data).ok()?;
    kept.into_iter().map(|k| Some(Signature { payload: base64::engine::general_purpose::STANDARD.decode(k.payload).ok()?, signature: k.signature })).collect()
}

/// The keys a module version must be signed by, under the config file's
/// `verify:` rules (the longest matching prefix wins).
#[derive(Debug, Default)]
pub struct Policy {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    prefix: String,
    keys: Vec<PublicKey>,
}

/// What a policy check found.
pub enum Verdict<'a> {
    /// No rule covers the module.
    Exempt,
    Signed(&'a PublicKey),
}

impl Policy {
    /// The config file's policy, every key read now (a missing key file is
    /// an error before anything is fetched).
    pub fn load() -> anyhow::Result<Policy> {
        let rules = config::verify_rules()?
            .into_iter()
            .map(|VerifyRule { prefix, keys }| {
                let keys = keys.iter().map(|k| PublicKey::load(k)).collect::<anyhow::Result<_>>()?;
                Ok(Rule { prefix, keys })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Policy { rules })
    }

    /// The rule for a module path (with or without its major version).
    /// `"*"` covers every module, as in `registries:`, and loses to any
    /// other prefix that matches.
    fn rule(&self, module: &str) -> Option<&Rule> {
        let base = crate::module::base_path(module);
        self.rules
            .iter()
            .filter(|r| r.prefix == config::CATCH_ALL || base == r.prefix || base.strip_prefix(&r.prefix).is_some_and(|rest| rest.starts_with('/')))
            .max_by_key(|r| if r.prefix == config::CATCH_ALL { 0 } else { r.prefix.len() })
    }

    /// The keys a module must be signed by; None when no rule covers it.
    pub fn keys_for(&self, module: &str) -> Option<&[PublicKey]> {
        self.rule(module).map(|r| r.keys.as_slice())
    }

    /// Checks the signatures found for a version's manifest digest.
    /// Unsigned, signed by no accepted key, or signed for another digest:
    /// refused (exit 8), saying which.
    pub fn check<'a>(&'a self, mv: &ModuleVersion, manifest_digest: &str, signatures: &[Signature]) -> anyhow::Result<Verdict<'a>> {
        let Some(rule) = self.rule(mv.module()) else { return Ok(Verdict::Exempt) };
        let keys = rule.keys.iter().map(|k| k.path.display().to_string()).collect::<Vec<_>>().join(", ");
        let refuse = |why: String| {
            fail(
                Kind::Untrusted,
                format!(
                    "{mv} ({manifest_digest}) {why}; the verify policy for {} in {} requires a signature by {keys}: nothing was written",
                    rule.prefix,
                    config::config_path().display()
                ),
            )
        };
        if signatures.is_empty() {
            return Err(refuse("is not signed".into()));
        }
        let mut other_digest = false;
        for s in signatures {
            for key in &rule.keys {
                match key.vouches(manifest_digest, s) {
                    Some(true) => return Ok(Verdict::Signed(key)),
                    Some(false) => other_digest = true,
                    None => {}
                }
            }
        }
        Err(refuse(if other_digest {
            "carries a signature for other content".into()
        } else {
            format!("carries {}, none valid for the accepted keys (signed by another key, or tampered)", crate::error::count(signatures.len(), "signature"))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_cosigns_json() {
        let p = payload("127.0.0.1:5000/a/b", "sha256:00");
        assert_eq!(
            String::from_utf8(p.clone()).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/a/b"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"},"optional":null}"#
        );
        assert_eq!(payload_digest(&p).as_deref(), Some("sha256:00"));
        assert_eq!(payload_digest(br#"{"critical":{"type":"other","image":{"docker-manifest-digest":"sha256:00"}}}"#), None);
    }

    #[test]
    fn rules_match_whole_path_components_longest_first() {
        let key = PublicKey { path: "k".into(), point: vec![4; 65] };
        let policy = Policy {
            rules: vec![
                Rule { prefix: "example.com".into(), keys: vec![key.clone()] },
                Rule { prefix: "example.com/team".into(), keys: vec![PublicKey { path: "t".into(), ..key.clone() }] },
            ],
        };
        assert_eq!(policy.rule("example.com/team/app@v0").unwrap().prefix, "example.com/team");
        assert_eq!(policy.rule("example.com/teamwork@v1").unwrap().prefix, "example.com");
        assert_eq!(policy.rule("example.com@v0").unwrap().prefix, "example.com");
        assert!(policy.rule("example.community/x@v0").is_none());
        let everything = Policy { rules: vec![Rule { prefix: "*".into(), keys: vec![key.clone()] }, Rule { prefix: "example.com".into(), keys: vec![key] }] };
        assert_eq!(everything.rule("other.org/x@v1").unwrap().prefix, "*");
        assert_eq!(everything.rule("example.com/x@v1").unwrap().prefix, "example.com");
    }
}
