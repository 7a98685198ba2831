//! `paw verify` and `paw images provenance`: images' signed statements, checked or handed out.

use paw_core::ops::verify::{self, Checked};
use paw_core::provenance::{Envelope, PublicKey};
use paw_core::{Error, ErrorKind};
use serde_json::{Value, json};

use super::images::{find_record, step_or_ami};
use crate::context::Context;
use crate::output::{Report, table};

pub struct Verified(Vec<Checked>);

/// The key to verify with: the file given, else the workflow's signer's.
async fn public_key(cx: &Context, file: Option<&std::path::Path>) -> paw_core::Result<PublicKey> {
    if let Some(path) = file {
        let pem = std::fs::read_to_string(path).map_err(|err| Error::io(path, "read the public key", err))?;
        return PublicKey::from_pem(&pem).map_err(|what| {
            Error::new(ErrorKind::Usage, format!("--public-key {}: {what}", path.display()))
                .help("give the PEM `paw images provenance` prints (a SubjectPublicKeyInfo)")
        });
    }
    match cx.signer().await? {
        Some(signer) => signer.public_key().await,
        None => Err(Error::new(ErrorKind::Usage, "no key to verify with: the workflow has no \"provenance\" signer")
            .help("give the signer's public key with --public-key FILE, or add \"provenance\" to workflow_param.json")),
    }
}

pub async fn verify(
    cx: &Context,
    step: Option<&str>,
    ami: Option<&str>,
    chain: bool,
    key_file: Option<&std::path::Path>,
) -> paw_core::Result<Verified> {
    let record = step_or_ami(cx, step, ami).await?;
    let key = public_key(cx, key_file).await?;
    let ec2 = cx.ec2(None).await?;
    Ok(Verified(verify::verify(cx.catalog().await?, &ec2, cx.region().await?, record, &key, chain).await?))
}

impl Report for Verified {
    fn json(&self) -> Value {
        json!(
            self.0
                .iter()
                .map(|checked| json!({
                    "step_id": checked.step_id,
                    "workflow_id": checked.workflow_id,
                    "ami_id": checked.ami_id,
                    "verified": checked.problems.is_empty(),
                    "problems": checked.problems,
                }))
                .collect::<Vec<_>>()
        )
    }

    fn text(&self) -> String {
        let rows = self
            .0
            .iter()
            .map(|checked| {
                let result = match checked.problems.as_slice() {
                    [] => "verified".to_string(),
                    problems => format!("FAILED: {}", problems.join("; ")),
                };
                vec![checked.step_id.clone(), checked.ami_id.clone(), checked.workflow_id.clone(), result]
            })
            .collect();
        table(&["STEP", "AMI", "WORKFLOW", "PROVENANCE"], rows)
    }

    fn error(&self) -> Option<Error> {
        let failed: Vec<String> = self
            .0
            .iter()
            .filter(|checked| !checked.problems.is_empty())
            .map(|checked| format!("{} ({})", checked.step_id, checked.ami_id))
            .collect();
        (!failed.is_empty()).then(|| {
            Error::new(ErrorKind::Unverified, format!("the provenance of {} does not verify", failed.join(", "))).help(
                "each failed check is named above: an image, tag or record changed since its statement was signed",
            )
        })
    }
}

pub struct Provenance {
    envelope: Envelope,
    public_key: Option<String>,
}

/// `paw images provenance STEP`: the envelope and the signer's public key.
pub async fn provenance(cx: &Context, step: &str) -> paw_core::Result<Provenance> {
    let record = find_record(cx, step).await?;
    let text = record.provenance.ok_or_else(|| {
        Error::new(ErrorKind::Usage, format!("{} of step \"{step}\" has no statement", record.ami_id))
            .help("images recorded before paw wrote statements have none; build the step again for one")
    })?;
    let envelope =
        Envelope::parse(&text).map_err(|what| Error::new(ErrorKind::Catalog, format!("{}: {what}", record.ami_id)))?;
    let public_key = match cx.signer().await? {
        Some(signer) => Some(signer.public_key().await?.pem()),
        None => None,
    };
    Ok(Provenance { envelope, public_key })
}

impl Report for Provenance {
    fn json(&self) -> Value {
        json!({"envelope": self.envelope, "public_key": self.public_key})
    }

    fn text(&self) -> String {
        let envelope = serde_json::to_string_pretty(&self.envelope).expect("an envelope serialises");
        match &self.public_key {
            Some(pem) => format!("{envelope}\n{}", pem.trim_end()),
            None => envelope,
        }
    }
}
