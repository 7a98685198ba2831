//! `paw verify`: an image's statement checked against its key, its tag and what EC2 says of the
//! AMI now; then each copy's, which names it; then its parent's, down to the root base AMI. Every
//! check that fails is named.

use serde::Serialize;

use crate::ami::PROVENANCE_TAG;
use crate::catalog::{Catalog, ImageRecord};
use crate::ec2::{Ec2, ec2_in};
use crate::error::{Error, ErrorKind, Result};
use crate::provenance::{self, Envelope, ImageIdentity, PublicKey};

/// One image of the chain, and what did not match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checked {
    pub step_id: String,
    pub workflow_id: String,
    pub ami_id: String,
    /// Where a copy of the image is (`REGION`, `ACCOUNT:REGION`); None for the image itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_in: Option<String>,
    /// Empty when it verified.
    pub problems: Vec<String>,
}

/// Checks `record`'s image and its copies and, with `chain`, each parent's down to the root base
/// AMI.
pub async fn verify(
    catalog: &dyn Catalog,
    ec2: &dyn Ec2,
    home_region: &str,
    record: ImageRecord,
    key: &PublicKey,
    chain: bool,
) -> Result<Vec<Checked>> {
    let mut checked = Vec::new();
    let copies = check_copies(ec2, home_region, &record, key).await?;
    let mut next = Some(record);
    while let Some(record) = next.take() {
        let regional = ec2_in(ec2, home_region, &record.region);
        let sealed = Sealed { ami_id: &record.ami_id, region: &record.region, envelope: record.provenance.as_deref() };
        let (mut problems, statement) = check_sealed(&*regional, &sealed, key).await?;
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
            copy_in: None,
            problems,
        });
    }
    // The image's copies right after the image.
    checked.splice(1..1, copies);
    Ok(checked)
}

/// Each copy of `record`'s image: its own statement checked as the image's is, and naming the
/// image's statement as its original.
async fn check_copies(ec2: &dyn Ec2, home_region: &str, record: &ImageRecord, key: &PublicKey) -> Result<Vec<Checked>> {
    let mut checked = Vec::new();
    for (place, ami_id) in &record.copies {
        let there = ec2_in(ec2, home_region, place);
        let region = crate::ec2::Place::parse(place).region;
        let sealed =
            Sealed { ami_id, region: &region, envelope: record.copy_provenance.get(place).map(String::as_str) };
        let (mut problems, statement) = check_sealed(&*there, &sealed, key).await?;
        if let Some(statement) = statement {
            let original_digest = record.provenance.as_deref().map(|text| provenance::sha256_hex(text.as_bytes()));
            match provenance::dependency_of(&statement, provenance::ORIGINAL_DEPENDENCY) {
                Some((original, digest)) if original == record.ami_id && digest == original_digest => {}
                Some((original, _)) if original != record.ami_id => {
                    problems.push(format!("its statement names {original} as its original, not {}", record.ami_id))
                }
                Some(_) => problems.push(format!(
                    "its statement names a statement of its original {} other than the one the catalog holds",
                    record.ami_id
                )),
                None => problems.push("its statement names no original".into()),
            }
        }
        checked.push(Checked {
            step_id: record.step_id.clone(),
            workflow_id: record.workflow_id.clone(),
            ami_id: ami_id.clone(),
            copy_in: Some(place.clone()),
            problems,
        });
    }
    Ok(checked)
}

/// An image and the envelope the catalog keeps of it.
struct Sealed<'a> {
    ami_id: &'a str,
    region: &'a str,
    envelope: Option<&'a str>,
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
async fn check_sealed(
    ec2: &dyn Ec2,
    sealed: &Sealed<'_>,
    key: &PublicKey,
) -> Result<(Vec<String>, Option<serde_json::Value>)> {
    let Some(text) = sealed.envelope else { return Ok((vec!["it has no statement".into()], None)) };
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
    match ec2.describe_image(sealed.ami_id).await? {
        None => problems.push(format!("{} is no longer in EC2", sealed.ami_id)),
        Some(image) => {
            let digest = provenance::sha256_hex(text.as_bytes());
            match image.tags.iter().find(|(name, _)| name == PROVENANCE_TAG) {
                Some((_, tagged)) if *tagged == digest => {}
                Some((_, tagged)) => problems.push(format!(
                    "its {PROVENANCE_TAG} tag says {tagged}, but the stored envelope's sha256 is {digest}"
                )),
                None => problems.push(format!("it has no {PROVENANCE_TAG} tag")),
            }
            let now = ImageIdentity::of(&image, sealed.region);
            if provenance::subject_digest(&statement) != Some(now.digest().as_str()) {
                problems.push(format!(
                    "{} is not the AMI its statement names: its id, owner, snapshots ({}) or creation date differ",
                    sealed.ami_id,
                    now.snapshot_ids.join(", ")
                ));
            }
        }
    }
    Ok((problems, Some(statement)))
}

/// `require_provenance`'s gate: `record`'s image, and its chain, verify with `key`; otherwise an
/// `Unverified` error that says what `refused` (a channel set, a child's build) and each check
/// that failed.
pub async fn require_verified(
    catalog: &dyn Catalog,
    ec2: &dyn Ec2,
    home_region: &str,
    record: &ImageRecord,
    key: &PublicKey,
    refused: &str,
) -> Result<()> {
    let failed = chain_problems(catalog, ec2, home_region, record, key).await?;
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Unverified,
        format!(
            "{refused}: {} of step \"{}\" does not verify, and the workflow requires provenance",
            record.ami_id, record.step_id
        ),
    )
    .details(failed.join("\n"))
    .help(format!(
        "`paw verify {}` shows each check; rebuild the image whose statement fails (`paw build --force`)",
        record.step_id
    )))
}

/// How an image's statement stands, for the report's badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Badge {
    /// Its chain verifies with the key.
    Verified,
    /// Its chain does not verify.
    Failed,
    /// Its statement is unsigned.
    Unsigned,
    /// It has no statement (recorded before paw wrote them, or its signing failed).
    Missing,
    /// Signed, but there was no key (or no EC2) to check it with.
    Unchecked,
}

/// The badge of `record`'s image, with the checks that failed.
pub async fn badge(
    catalog: &dyn Catalog,
    ec2: Option<&dyn Ec2>,
    home_region: &str,
    record: &ImageRecord,
    key: Option<&PublicKey>,
) -> Result<(Badge, Vec<String>)> {
    let Some(text) = &record.provenance else { return Ok((Badge::Missing, Vec::new())) };
    if Envelope::parse(text).is_ok_and(|envelope| envelope.signatures.is_empty()) {
        return Ok((Badge::Unsigned, Vec::new()));
    }
    let (Some(ec2), Some(key)) = (ec2, key) else { return Ok((Badge::Unchecked, Vec::new())) };
    let problems = chain_problems(catalog, ec2, home_region, record, key).await?;
    Ok((if problems.is_empty() { Badge::Verified } else { Badge::Failed }, problems))
}

/// Every check that fails along `record`'s chain, each with its image: `AMI (STEP): what`.
async fn chain_problems(
    catalog: &dyn Catalog,
    ec2: &dyn Ec2,
    home_region: &str,
    record: &ImageRecord,
    key: &PublicKey,
) -> Result<Vec<String>> {
    let checked = verify(catalog, ec2, home_region, record.clone(), key, true).await?;
    Ok(checked
        .iter()
        .flat_map(|image| {
            image.problems.iter().map(move |problem| format!("{} ({}): {problem}", image.ami_id, image.step_id))
        })
        .collect())
}
