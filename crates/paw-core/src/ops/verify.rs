//! `paw verify`: an image's statement checked against its key, its tag and what EC2 says of the
//! AMI now; then its parent's, down to the root base AMI. Every check that fails is named.

use serde::Serialize;

use crate::ami::PROVENANCE_TAG;
use crate::catalog::{Catalog, ImageRecord};
use crate::ec2::{Ec2, ec2_in};
use crate::error::Result;
use crate::provenance::{self, Envelope, ImageIdentity, PublicKey};

/// One image of the chain, and what did not match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checked {
    pub step_id: String,
    pub workflow_id: String,
    pub ami_id: String,
    /// Empty when it verified.
    pub problems: Vec<String>,
}

/// Checks `record`'s image and, with `chain`, each parent's down to the root base AMI.
pub async fn verify(
    catalog: &dyn Catalog,
    ec2: &dyn Ec2,
    home_region: &str,
    record: ImageRecord,
    key: &PublicKey,
    chain: bool,
) -> Result<Vec<Checked>> {
    let mut checked = Vec::new();
    let mut next = Some(record);
    while let Some(record) = next.take() {
        let regional = ec2_in(ec2, home_region, &record.region);
        let (mut problems, statement) = check_image(&*regional, &record, key).await?;
        if chain && let Some(statement) = &statement {
            match provenance::parent_of(statement) {
                None => problems.push("its statement names no parent".into()),
                Some((parent_ami, parent_digest)) => {
                    if record.base_ami_id != parent_ami {
                        problems.push(format!(
                            "the catalog says it was built on {}, its statement says {parent_ami}",
                            record.base_ami_id
                        ));
                    }
                    match parent_digest {
                        // The root base AMI: paw did not make it, so no statement names it.
                        None if parent_ami == record.root_base_ami_id => {}
                        None => problems.push(format!(
                            "its statement names no statement for its parent {parent_ami}, which is not the root base AMI {}",
                            record.root_base_ami_id
                        )),
                        Some(digest) => match parent_record(catalog, &parent_ami, &digest).await? {
                            Ok(parent) => next = Some(parent),
                            Err(problem) => problems.push(problem),
                        },
                    }
                }
            }
        }
        checked.push(Checked {
            step_id: record.step_id.clone(),
            workflow_id: record.workflow_id.clone(),
            ami_id: record.ami_id.clone(),
            problems,
        });
    }
    Ok(checked)
}

/// The record of `ami_id` whose envelope has the sha256 `digest`, or why there is none.
async fn parent_record(
    catalog: &dyn Catalog,
    ami_id: &str,
    digest: &str,
) -> Result<std::result::Result<ImageRecord, String>> {
    let records = catalog.find_by_ami(ami_id).await?;
    let with_statements: Vec<&ImageRecord> = records.iter().filter(|record| record.provenance.is_some()).collect();
    let sealed =
        |record: &&ImageRecord| record.provenance.as_deref().map(|text| provenance::sha256_hex(text.as_bytes()));
    Ok(match with_statements.iter().find(|record| sealed(record).as_deref() == Some(digest)) {
        Some(record) => Ok((*record).clone()),
        None if with_statements.is_empty() => Err(format!("the catalog holds no statement of its parent {ami_id}")),
        None => Err(format!(
            "its parent {ami_id}'s statement is not the one its statement names (sha256 {}, not {digest})",
            with_statements.iter().filter_map(sealed).next().unwrap_or_default()
        )),
    })
}

/// One image's checks: its statement, its signature, its tag, and the AMI EC2 describes now.
async fn check_image(
    ec2: &dyn Ec2,
    record: &ImageRecord,
    key: &PublicKey,
) -> Result<(Vec<String>, Option<serde_json::Value>)> {
    let Some(text) = &record.provenance else { return Ok((vec!["it has no statement".into()], None)) };
    let mut problems = Vec::new();
    let envelope = match Envelope::parse(text) {
        Ok(envelope) => envelope,
        Err(problem) => return Ok((vec![problem], None)),
    };
    if let Err(problem) = envelope.verify(key) {
        problems.push(format!("its signature does not verify: {problem}"));
    }
    let statement = match envelope.statement() {
        Ok(statement) => statement,
        Err(problem) => {
            problems.push(problem);
            return Ok((problems, None));
        }
    };
    match ec2.describe_image(&record.ami_id).await? {
        None => problems.push(format!("{} is no longer in EC2", record.ami_id)),
        Some(image) => {
            let digest = provenance::sha256_hex(text.as_bytes());
            match image.tags.iter().find(|(name, _)| name == PROVENANCE_TAG) {
                Some((_, tagged)) if *tagged == digest => {}
                Some((_, tagged)) => problems.push(format!(
                    "its {PROVENANCE_TAG} tag says {tagged}, but the stored envelope's sha256 is {digest}"
                )),
                None => problems.push(format!("it has no {PROVENANCE_TAG} tag")),
            }
            let now = ImageIdentity::of(&image, &record.region);
            if provenance::subject_digest(&statement) != Some(now.digest().as_str()) {
                problems.push(format!(
                    "{} is not the AMI its statement names: its id, owner, snapshots ({}) or creation date differ",
                    record.ami_id,
                    now.snapshot_ids.join(", ")
                ));
            }
        }
    }
    Ok((problems, Some(statement)))
}
