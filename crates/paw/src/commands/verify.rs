//! `paw verify`, `paw images provenance`, `paw images sbom` and `sbom-diff`: images' signed
//! statements, checked or handed out, and the SBOMs beside them.

use paw_core::catalog::ImageRecord;
use paw_core::ops::verify::{self, Checked};
use paw_core::provenance::{Envelope, PublicKey};
use paw_core::sbom::{Sbom, SbomDiff};
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
    cx.signer_key().await?.ok_or_else(|| {
        Error::new(ErrorKind::Usage, "no key to verify with: the workflow has no \"provenance\" signer")
            .help("give the signer's public key with --public-key FILE, or add \"provenance\" to workflow_param.json")
    })
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
                    "copy_in": checked.copy_in,
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
                let step = match &checked.copy_in {
                    Some(place) => format!("{} (copy in {place})", checked.step_id),
                    None => checked.step_id.clone(),
                };
                vec![step, checked.ami_id.clone(), checked.workflow_id.clone(), result]
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
    let public_key = cx.signer_key().await?.map(|key| key.pem());
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

/// `paw images sbom STEP`: the SBOM stored beside the image's statement.
pub struct StoredSbom(String);

pub async fn sbom(cx: &Context, step: &str) -> paw_core::Result<StoredSbom> {
    let record = find_record(cx, step).await?;
    Ok(StoredSbom(sbom_of(&record)?))
}

/// The SBOM stored with `record`, or why there is none.
fn sbom_of(record: &ImageRecord) -> paw_core::Result<String> {
    record.sbom.clone().ok_or_else(|| {
        Error::new(
            ErrorKind::Usage,
            format!("{} of step \"{}\" (workflow {}) has no SBOM", record.ami_id, record.step_id, record.workflow_id),
        )
        .help("name the file the step's provisioners leave with \"sbom\" in step_param.json, and build the step again")
    })
}

impl Report for StoredSbom {
    fn json(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or_else(|_| Value::String(self.0.clone()))
    }

    fn text(&self) -> String {
        self.0.trim_end().to_string()
    }
}

/// `paw images sbom-diff STEP A B`: what changed from A's packages to B's.
pub struct SbomChanges {
    first: ImageRecord,
    second: ImageRecord,
    diff: SbomDiff,
}

pub async fn sbom_diff(cx: &Context, step: &str, first: &str, second: &str) -> paw_core::Result<SbomChanges> {
    let first = image_of_step(cx, step, first).await?;
    let second = image_of_step(cx, step, second).await?;
    let read = |record: &ImageRecord| {
        Sbom::parse(&sbom_of(record)?).map_err(|what| {
            Error::new(
                ErrorKind::Catalog,
                format!("the SBOM of {} (workflow {}): {what}", record.ami_id, record.workflow_id),
            )
        })
    };
    let diff = SbomDiff::between(&read(&first)?, &read(&second)?);
    Ok(SbomChanges { first, second, diff })
}

/// One of the step's images, by its workflow id or its AMI id.
async fn image_of_step(cx: &Context, step: &str, which: &str) -> paw_core::Result<ImageRecord> {
    let catalog = cx.catalog().await?;
    let found = if which.starts_with("ami-") {
        catalog.find_by_ami(which).await?.into_iter().find(|record| record.step_id == step)
    } else {
        catalog.get(which, step).await?
    };
    found.ok_or_else(|| {
        Error::new(ErrorKind::Usage, format!("no image of step \"{step}\" is {which} in {}", catalog.uri()))
            .help(format!("name a workflow id or an AMI id that `paw images list {step}` shows"))
    })
}

impl Report for SbomChanges {
    fn json(&self) -> Value {
        json!({
            "first": {"workflow_id": self.first.workflow_id, "ami_id": self.first.ami_id},
            "second": {"workflow_id": self.second.workflow_id, "ami_id": self.second.ami_id},
            "added": self.diff.added,
            "removed": self.diff.removed,
            "changed": self.diff.changed,
        })
    }

    fn text(&self) -> String {
        let mut lines = vec![format!(
            "{} ({}) → {} ({}): {} added, {} removed, {} changed",
            self.first.ami_id,
            self.first.workflow_id,
            self.second.ami_id,
            self.second.workflow_id,
            self.diff.added.len(),
            self.diff.removed.len(),
            self.diff.changed.len()
        )];
        lines.extend(self.diff.added.iter().map(|package| format!("+ {} {}", package.name, package.version)));
        lines.extend(self.diff.removed.iter().map(|package| format!("- {} {}", package.name, package.version)));
        lines.extend(
            self.diff.changed.iter().map(|change| format!("~ {} {} → {}", change.name, change.from, change.to)),
        );
        lines.join("\n")
    }
}
