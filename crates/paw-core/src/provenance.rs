//! Provenance: what went into an image, as an in-toto Statement v1 with a SLSA Provenance v1
//! predicate, sealed in a DSSE envelope that a key signs (a local Ed25519 key here; KMS in
//! paw-aws, through `Signer`). Each statement names its parent's statement by digest, so that a
//! verifier can walk an image's lineage down to the root base AMI.

use async_trait::async_trait;
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use std::path::Path;

use crate::catalog::TestRun;
use crate::ec2::{Ec2, Image};
use crate::error::{Error, ErrorKind, Result};
use crate::fingerprint::Fingerprint;
use crate::workflow::{Step, Workflow};

pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What a paw step's build is, for a verifier's policy.
pub const BUILD_TYPE: &str = "https://github.com/paw/paw/build-types/step/v1";
/// What a copy of an image to another region or account is.
pub const COPY_BUILD_TYPE: &str = "https://github.com/paw/paw/build-types/copy/v1";

/// The sha256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref().to_vec()
}

/// The sha256 of `bytes`, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha256(bytes))
}

/// Bytes in lowercase hex, as digests are written.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What identifies an AMI beyond its tags, which anyone who may tag can change: its id, region,
/// owner, snapshots and creation date. A statement's subject is its digest; an AMI swapped for
/// another, or a snapshot swapped under it, no longer matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageIdentity {
    pub id: String,
    pub region: String,
    pub owner: String,
    pub snapshot_ids: Vec<String>,
    pub creation_date: String,
}

impl ImageIdentity {
    pub fn of(image: &Image, region: &str) -> ImageIdentity {
        let mut snapshot_ids = image.snapshot_ids.clone();
        snapshot_ids.sort();
        let owner = image.data.get("OwnerId").and_then(Value::as_str).unwrap_or_default().to_string();
        ImageIdentity {
            id: image.id.clone(),
            region: region.to_string(),
            owner,
            snapshot_ids,
            creation_date: image.creation_date.clone(),
        }
    }

    /// The sha256 of its canonical JSON (fields in this order, snapshots sorted).
    pub fn digest(&self) -> String {
        sha256_hex(serde_json::to_string(self).expect("an identity serialises").as_bytes())
    }

    /// The statement's subject: the AMI by account, region and id.
    pub fn subject(&self) -> Value {
        json!({"name": format!("ec2:{}:{}:{}", self.region, self.owner, self.id), "digest": {"sha256": self.digest()}})
    }
}

/// The name of a statement's parent in its resolved dependencies.
pub const PARENT_DEPENDENCY: &str = "parent_image";

/// What a statement says of an image paw recorded.
pub struct Made<'a> {
    pub identity: ImageIdentity,
    pub workflow: &'a Workflow,
    pub step: &'a Step,
    /// The AMI it was made from, and the sha256 of that AMI's envelope when it has one (none for
    /// the root base AMI, which paw did not make).
    pub parent: (&'a str, Option<String>),
    pub fingerprint: Option<&'a Fingerprint>,
    /// The instance a person made it from (`paw images from-instance`), not packer.
    pub from_instance: Option<&'a str>,
    /// The packer version that made it (`1.6.6`), when packer did.
    pub packer: Option<String>,
    /// The run that built it (its lease's id), when a build did.
    pub run_id: Option<String>,
    pub attester: &'a Attester<'a>,
    pub started_on: String,
    pub finished_on: String,
    /// What the build left besides the image (`tests_byproduct`, `sbom_byproduct`).
    pub byproducts: Vec<Value>,
}

/// What is the same in every statement a run writes, and what signs them.
pub struct Attester<'a> {
    /// None: the statements are written unsigned.
    pub signer: Option<&'a dyn Signer>,
    /// Who builds: the caller identity's ARN.
    pub builder_id: String,
    /// paw's own commit, when the binary was built from a git checkout.
    pub paw_commit: Option<String>,
    /// The workflow folder's git commit, when it is in a git work tree.
    pub folder_commit: Option<String>,
    /// The key a parent's chain of statements must verify with before a child is built on it
    /// (`require_provenance`); None when it is not required.
    pub required: Option<PublicKey>,
}

impl Attester<'static> {
    /// For services that record no image (`paw test`): it never writes a statement.
    pub const fn none() -> Attester<'static> {
        Attester { signer: None, builder_id: String::new(), paw_commit: None, folder_commit: None, required: None }
    }
}

/// The image's in-toto Statement v1, with a SLSA Provenance v1 predicate.
pub fn statement(made: &Made<'_>) -> Value {
    let workflow = made.workflow;
    let (parent_ami, parent_statement) = &made.parent;
    let mut parent = json!({"name": PARENT_DEPENDENCY, "uri": format!("ec2:{}::{parent_ami}", made.identity.region)});
    if let Some(digest) = parent_statement {
        parent["digest"] = json!({"sha256": digest});
    }
    let mut paw = json!({"name": "paw", "uri": format!("pkg:cargo/paw@{}", env!("CARGO_PKG_VERSION"))});
    if let Some(commit) = &made.attester.paw_commit {
        paw["digest"] = json!({"gitCommit": commit});
    }
    let mut dependencies = vec![parent, paw];
    if let Some(version) = &made.packer {
        dependencies.push(json!({"name": "packer", "uri": format!("pkg:generic/packer@{version}")}));
    }
    if let Some(commit) = &made.attester.folder_commit {
        dependencies.push(json!({"name": "workflow_folder", "digest": {"gitCommit": commit}}));
    }
    if let Some(fingerprint) = made.fingerprint {
        dependencies.extend(
            fingerprint
                .inputs
                .iter()
                .map(|(name, value)| json!({"name": format!("input:{name}"), "digest": {"blake3": value}})),
        );
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [made.identity.subject()],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "step_id": made.step.id,
                    "workflow_id": workflow.param.workflow_id,
                    "workflow_name": workflow.name,
                    "variant": workflow.variant,
                    "parameters": workflow.param.keys_deciding_images(),
                },
                "internalParameters": {
                    "fingerprint": made.fingerprint.map(|fingerprint| &fingerprint.digest),
                    "from_instance": made.from_instance,
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": made.attester.builder_id},
                "metadata": {
                    "invocationId": format!("{}/{}", workflow.param.workflow_id, made.run_id.as_deref().unwrap_or(&made.step.id)),
                    "startedOn": made.started_on,
                    "finishedOn": made.finished_on,
                },
                "byproducts": made.byproducts,
            },
        },
    })
}

/// The byproduct that says how the image's tests went in its build.
pub fn tests_byproduct(run: &TestRun) -> Value {
    let results: Vec<Value> =
        run.results.iter().map(|result| json!({"name": result.name, "passed": result.passed})).collect();
    json!({
        "name": "tests",
        "digest": {"blake3": run.tests_digest},
        "annotations": {"passed": run.passed(), "at": run.at, "results": results},
    })
}

/// The byproduct that names the image's SBOM (`sbom` in step_param.json) by its sha256.
pub fn sbom_byproduct(name: &str, sbom: &[u8]) -> Value {
    json!({"name": name, "digest": {"sha256": sha256_hex(sbom)}, "mediaType": "application/json"})
}

/// The commit checked out in `dir`'s git work tree, if it is in one (git may be missing: None).
pub fn git_commit(dir: &Path) -> Option<String> {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--verify", "--quiet", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !commit.is_empty()).then_some(commit)
}

/// The name of a copy's original in its statement's resolved dependencies.
pub const ORIGINAL_DEPENDENCY: &str = "original_image";

/// The statement of a copy (CopyImage to another region or account, packer's `ami_regions`): its
/// subject the copy, its one dependency the original, named by the digest of the original's
/// envelope.
fn copy_statement(
    copy: &ImageIdentity,
    original: &ImageIdentity,
    original_envelope: &str,
    attester: &Attester<'_>,
) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [copy.subject()],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": COPY_BUILD_TYPE,
                "externalParameters": {"original": original.subject()["name"], "region": copy.region, "account": copy.owner},
                "resolvedDependencies": [{
                    "name": ORIGINAL_DEPENDENCY,
                    "uri": original.subject()["name"],
                    "digest": {"sha256": sha256_hex(original_envelope.as_bytes())},
                }],
            },
            "runDetails": {
                "builder": {"id": attester.builder_id},
                "metadata": {"invocationId": format!("copy/{}/{}", original.id, copy.id), "finishedOn": now},
            },
        },
    })
}

/// A copy's statement, sealed by the attester's signer: `copy` in `copy_region`, of `original` in
/// `original_region`, whose envelope is `original_envelope`.
pub async fn seal_copy(
    copy: (&Image, &str),
    original: (&Image, &str),
    original_envelope: &str,
    attester: &Attester<'_>,
) -> Result<String> {
    let (copy, original) = (ImageIdentity::of(copy.0, copy.1), ImageIdentity::of(original.0, original.1));
    let statement = copy_statement(&copy, &original, original_envelope, attester);
    Ok(Envelope::seal(&statement, attester.signer).await?.to_text())
}

/// The envelope's sha256 as the `paw:provenance` tag of `image` and its snapshots (`ec2` is the
/// image's region's): what `paw verify` compares with the stored envelope.
pub async fn tag_image(ec2: &dyn Ec2, image: &Image, envelope: &str) -> Result<()> {
    let tag = [(crate::ami::PROVENANCE_TAG.to_string(), sha256_hex(envelope.as_bytes()))];
    ec2.create_tags(&image.ids_with_snapshots(), &tag).await
}

/// The dependency a statement names by `name` (`PARENT_DEPENDENCY`, `ORIGINAL_DEPENDENCY`): its
/// AMI id, and the sha256 of its envelope when it had one.
pub fn dependency_of(statement: &Value, name: &str) -> Option<(String, Option<String>)> {
    let dependencies = statement.pointer("/predicate/buildDefinition/resolvedDependencies")?.as_array()?;
    let dependency = dependencies.iter().find(|dependency| dependency["name"] == name)?;
    let ami = dependency["uri"].as_str()?.rsplit(':').next()?.to_string();
    Some((ami, dependency.pointer("/digest/sha256").and_then(Value::as_str).map(str::to_string)))
}

/// The parent a statement names: its AMI id, and the sha256 of its envelope when it had one.
pub fn parent_of(statement: &Value) -> Option<(String, Option<String>)> {
    dependency_of(statement, PARENT_DEPENDENCY)
}

/// The subject digest a statement names.
pub fn subject_digest(statement: &Value) -> Option<&str> {
    statement.pointer("/subject/0/digest/sha256").and_then(Value::as_str)
}

/// DSSE's pre-authentication encoding of a payload: what is signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut message = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    message.extend_from_slice(payload);
    message
}

/// A DSSE envelope, as DSSE's JSON has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The statement's JSON, in base64.
    pub payload: String,
    pub payload_type: String,
    /// None when no signer is set: the statement is written all the same, marked unsigned.
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    pub keyid: String,
    /// The signature over `pae`, in base64.
    pub sig: String,
}

impl Envelope {
    /// The statement, sealed: signed by `signer`, or unsigned without one. A signer that fails
    /// is an error: unsigned is never silent.
    pub async fn seal(statement: &Value, signer: Option<&dyn Signer>) -> Result<Envelope> {
        let payload = serde_json::to_vec(statement).expect("a statement serialises");
        let mut signatures = Vec::new();
        if let Some(signer) = signer {
            let sig = signer.sign(&pae(PAYLOAD_TYPE, &payload)).await?;
            signatures.push(EnvelopeSignature { keyid: signer.key_id(), sig: BASE64.encode(sig) });
        }
        Ok(Envelope { payload: BASE64.encode(payload), payload_type: PAYLOAD_TYPE.into(), signatures })
    }

    /// The envelope as stored: its JSON text.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("an envelope serialises")
    }

    /// An envelope from its stored text.
    pub fn parse(text: &str) -> std::result::Result<Envelope, String> {
        serde_json::from_str(text).map_err(|err| format!("the envelope is not DSSE JSON: {err}"))
    }

    /// A stored envelope in a few words, for tables: who signed it, and its sha256 (the tag's).
    pub fn describe(text: &str) -> String {
        let digest = sha256_hex(text.as_bytes());
        match Envelope::parse(text) {
            Ok(envelope) if envelope.signatures.is_empty() => format!("unsigned statement (sha256 {digest})"),
            Ok(envelope) => {
                let keys: Vec<&str> = envelope.signatures.iter().map(|signature| signature.keyid.as_str()).collect();
                format!("statement signed by {} (sha256 {digest})", keys.join(", "))
            }
            Err(problem) => format!("unreadable statement: {problem}"),
        }
    }

    /// The statement it carries.
    pub fn statement(&self) -> std::result::Result<Value, String> {
        let payload = BASE64.decode(&self.payload).map_err(|err| format!("the payload is not base64: {err}"))?;
        serde_json::from_slice(&payload).map_err(|err| format!("the payload is not a statement: {err}"))
    }

    /// Whether `key` signed it (one of its signatures verifies).
    pub fn verify(&self, key: &PublicKey) -> std::result::Result<(), String> {
        if self.signatures.is_empty() {
            return Err("it is unsigned".into());
        }
        let payload = BASE64.decode(&self.payload).map_err(|err| format!("the payload is not base64: {err}"))?;
        let message = pae(&self.payload_type, &payload);
        let verified = self
            .signatures
            .iter()
            .filter_map(|signature| BASE64.decode(&signature.sig).ok())
            .any(|sig| key.verifies(&message, &sig));
        if verified { Ok(()) } else { Err("no signature verifies with the key".into()) }
    }
}

/// What signs statements: a local key, or a KMS key (paw-aws).
#[async_trait]
pub trait Signer: Send + Sync {
    /// The key's name in the envelope (`keyid`): the KMS key's ARN, or the local key's digest.
    fn key_id(&self) -> String;

    /// The signature of `message`.
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;

    /// The public key that verifies its signatures.
    async fn public_key(&self) -> Result<PublicKey>;
}

/// How a public key verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeyAlgorithm {
    Ed25519,
    /// ECDSA P-256 with SHA-256, the signature DER-encoded (as KMS gives it).
    EcdsaP256Sha256,
    /// RSASSA-PSS with SHA-256 (MGF1 SHA-256, KMS's RSASSA_PSS_SHA_256: a 32-byte salt), 2048 to
    /// 4096 bits.
    RsaPssSha256,
}

/// A public key, as a SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub algorithm: KeyAlgorithm,
    pub spki_der: Vec<u8>,
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::Ed25519 => "Ed25519",
            KeyAlgorithm::EcdsaP256Sha256 => "ECDSA P-256",
            KeyAlgorithm::RsaPssSha256 => "RSASSA-PSS",
        })
    }
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo, before its 32 key bytes (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// The DER prefix of an ECDSA P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1), before its
/// 65-byte uncompressed point (RFC 5480).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The DER of the rsaEncryption OID (1.2.840.113549.1.1.1), which an RSA SubjectPublicKeyInfo's
/// algorithm names (RFC 8017).
const RSA_ENCRYPTION_OID: [u8; 11] = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// RSASSA-PSS with the longest salt the key allows: what some signers use (the emulator's KMS
/// among them) where KMS itself salts with the digest's length. Either is PSS under the same key,
/// and verifiers accept both (OpenSSL detects the length).
const RSA_PSS_MAX_SALT: signature::RsaParameters =
    signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(signature::RsaPssSaltLength::Max);

impl PublicKey {
    fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        // Ed25519's and P-256's SPKIs end with the raw key (32 bytes, a 65-byte point); RSA's is
        // read whole.
        let verifies = |algorithm: &'static dyn signature::VerificationAlgorithm, key: &[u8]| {
            signature::UnparsedPublicKey::new(algorithm, key).verify(message, sig).is_ok()
        };
        match self.algorithm {
            KeyAlgorithm::Ed25519 => verifies(&signature::ED25519, self.raw_key(32)),
            KeyAlgorithm::EcdsaP256Sha256 => verifies(&signature::ECDSA_P256_SHA256_ASN1, self.raw_key(65)),
            KeyAlgorithm::RsaPssSha256 => {
                verifies(&signature::RSA_PSS_2048_8192_SHA256, &self.spki_der)
                    || verifies(&RSA_PSS_MAX_SALT, &self.spki_der)
            }
        }
    }

    /// The last `len` bytes of the SPKI: the raw key of Ed25519 and P-256.
    fn raw_key(&self, len: usize) -> &[u8] {
        &self.spki_der[self.spki_der.len().saturating_sub(len)..]
    }

    /// A public key from its PEM (a SubjectPublicKeyInfo: Ed25519, or ECDSA P-256).
    pub fn from_pem(pem: &str) -> std::result::Result<PublicKey, String> {
        PublicKey::from_spki(pem_der(pem).map_err(|err| format!("it is not PEM: {err}"))?)
    }

    /// A public key from its SubjectPublicKeyInfo (DER): Ed25519, ECDSA P-256, or RSA (verified
    /// as RSASSA-PSS).
    pub fn from_spki(spki_der: Vec<u8>) -> std::result::Result<PublicKey, String> {
        // An RSA SPKI: SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING }, its OID right
        // after the two SEQUENCE headers (4 and 2 bytes).
        let names_rsa = spki_der.get(6..17).is_some_and(|oid| oid == RSA_ENCRYPTION_OID);
        let algorithm = match spki_der.len() {
            44 if spki_der.starts_with(&ED25519_SPKI_PREFIX) => KeyAlgorithm::Ed25519,
            91 if spki_der.starts_with(&P256_SPKI_PREFIX) => KeyAlgorithm::EcdsaP256Sha256,
            // 2048 to 4096 bits.
            290..=560 if names_rsa => KeyAlgorithm::RsaPssSha256,
            _ => {
                return Err("it is neither an Ed25519, an ECDSA P-256 nor an RSA (2048 to 4096 bits) public key".into());
            }
        };
        Ok(PublicKey { algorithm, spki_der })
    }

    /// The key as PEM, for any DSSE-aware verifier.
    pub fn pem(&self) -> String {
        let body = BASE64.encode(&self.spki_der);
        let lines: Vec<&str> =
            body.as_bytes().chunks(64).map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII")).collect();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
    }
}

/// A local Ed25519 key, from a PKCS#8 file (PEM or DER).
pub struct Ed25519Signer {
    key: signature::Ed25519KeyPair,
}

impl Ed25519Signer {
    /// The key in `text` (a file's content); `origin` names the file in errors.
    pub fn from_pkcs8(bytes: &[u8], origin: &str) -> Result<Ed25519Signer> {
        let der = match std::str::from_utf8(bytes).ok().filter(|text| text.contains("-----BEGIN")) {
            Some(pem) => pem_der(pem).map_err(|err| key_error(origin, &format!("its PEM is not base64: {err}")))?,
            None => bytes.to_vec(),
        };
        let key = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|err| key_error(origin, &format!("it is not an Ed25519 PKCS#8 key ({err})")))?;
        Ok(Ed25519Signer { key })
    }

    fn spki(&self) -> Vec<u8> {
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(self.key.public_key().as_ref());
        spki
    }
}

/// The DER a PEM block holds: its lines between the BEGIN and END lines, base64-decoded.
fn pem_der(pem: &str) -> std::result::Result<Vec<u8>, base64::DecodeError> {
    let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    BASE64.decode(body.trim())
}

fn key_error(origin: &str, what: &str) -> Error {
    Error::new(ErrorKind::Config, format!("the signing key {origin}: {what}"))
        .help("make one with `openssl genpkey -algorithm ed25519 -out key.pem`")
}

#[async_trait]
impl Signer for Ed25519Signer {
    fn key_id(&self) -> String {
        format!("sha256:{}", sha256_hex(&self.spki()))
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        Ok(self.key.sign(message).as_ref().to_vec())
    }

    async fn public_key(&self) -> Result<PublicKey> {
        Ok(PublicKey { algorithm: KeyAlgorithm::Ed25519, spki_der: self.spki() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated() -> Ed25519Signer {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        Ed25519Signer::from_pkcs8(pkcs8.as_ref(), "test").unwrap()
    }

    #[test]
    fn pae_is_dsse_s() {
        // DSSE's own example (protocol.md).
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[tokio::test]
    async fn a_sealed_statement_verifies_and_any_change_does_not() {
        let signer = generated();
        let key = signer.public_key().await.unwrap();
        let statement = json!({"_type": STATEMENT_TYPE, "subject": [], "predicateType": PREDICATE_TYPE});
        let envelope = Envelope::seal(&statement, Some(&signer)).await.unwrap();
        envelope.verify(&key).unwrap();
        assert_eq!(envelope.statement().unwrap(), statement);
        assert_eq!(Envelope::parse(&envelope.to_text()).unwrap(), envelope);

        let mut changed = envelope.clone();
        changed.payload = BASE64.encode(serde_json::to_vec(&json!({"_type": "forged"})).unwrap());
        assert_eq!(changed.verify(&key).unwrap_err(), "no signature verifies with the key");
        let other = generated().public_key().await.unwrap();
        assert!(envelope.verify(&other).is_err(), "another key");
        let unsigned = Envelope::seal(&statement, None).await.unwrap();
        assert_eq!(unsigned.verify(&key).unwrap_err(), "it is unsigned");
        assert!(key.pem().starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"), "{}", key.pem());
        assert_eq!(PublicKey::from_pem(&key.pem()).unwrap(), key);
    }

    #[test]
    fn an_rsa_pss_signature_verifies_with_the_key_s_spki() {
        use aws_lc_rs::encoding::AsDer;
        let pair = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
        let key = PublicKey::from_spki(spki).unwrap();
        assert_eq!(key.algorithm, KeyAlgorithm::RsaPssSha256);
        let message = pae(PAYLOAD_TYPE, b"{}");
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(&signature::RSA_PSS_SHA256, &aws_lc_rs::rand::SystemRandom::new(), &message, &mut sig).unwrap();
        assert!(key.verifies(&message, &sig));
        assert!(!key.verifies(&pae(PAYLOAD_TYPE, b"[]"), &sig), "another message");
        // The longest salt, as the emulator's KMS signs.
        let longest = &const { signature::RSA_PSS_SHA256.with_pss_salt_length(signature::RsaPssSaltLength::Max) };
        pair.sign(longest, &aws_lc_rs::rand::SystemRandom::new(), &message, &mut sig).unwrap();
        assert!(key.verifies(&message, &sig), "a longest-salt signature");
        assert_eq!(PublicKey::from_pem(&key.pem()).unwrap(), key);
    }

    #[test]
    fn an_image_s_identity_changes_with_its_snapshots_not_their_order() {
        let mut image = Image::available("ami-1");
        image.snapshot_ids = vec!["snap-2".into(), "snap-1".into()];
        image.data = json!({"OwnerId": "123456789012"});
        let identity = ImageIdentity::of(&image, "us-east-1");
        image.snapshot_ids.reverse();
        assert_eq!(ImageIdentity::of(&image, "us-east-1").digest(), identity.digest());
        image.snapshot_ids[0] = "snap-3".into();
        assert_ne!(ImageIdentity::of(&image, "us-east-1").digest(), identity.digest());
        assert_eq!(identity.subject()["name"], "ec2:us-east-1:123456789012:ami-1");
    }

    #[test]
    fn a_key_that_is_not_ed25519_pkcs8_is_named() {
        let err =
            Ed25519Signer::from_pkcs8(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "/k.pem")
                .err()
                .unwrap();
        assert!(err.message.starts_with("the signing key /k.pem: it is not an Ed25519 PKCS#8 key"), "{}", err.message);
    }
}
