//! Revocation: an AMI withdrawn from use, in EC2 as well as in the catalog. It is disabled (no
//! instance can be launched from it), tagged `paw:revoked`, in every region it was copied to, and
//! every record of it, in every
//! workflow that reuses it, is `revoked`: never a source, never reused, never up to date. Restoring
//! undoes all three.

use serde::Serialize;

use super::lineage;
use crate::catalog::{Catalog, ImageRecord, ImageStatus, Line, now_create_at};
use crate::ec2::{Ec2, ImageState, ec2_in};
use crate::error::{Error, ErrorKind, Result};

pub const REVOKED_TAG: &str = "paw:revoked";

/// A record whose status changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub ami_id: String,
    pub step_id: String,
    pub workflow_id: String,
    pub status: &'static str,
}

/// Revokes the record's AMI, and with `cascade` every AMI of the line built on it, directly or not.
pub async fn revoke(
    ec2: &dyn Ec2,
    catalog: &dyn Catalog,
    line: &Line,
    record: &ImageRecord,
    reason: &str,
    cascade: bool,
) -> Result<Vec<Changed>> {
    if record.status == ImageStatus::Deregistered {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{} of step \"{}\" is deregistered: there is nothing to revoke", record.ami_id, record.step_id),
        )
        .help("`paw images list` shows the step's images and their status"));
    }
    if reason.trim().is_empty() {
        return Err(Error::new(ErrorKind::Usage, "the reason is empty")
            .help("say why, e.g. --reason \"CVE-2026-1234 in openssl\""));
    }
    let mut amis = vec![record.ami_id.clone()];
    if cascade {
        for child in lineage::descendants(catalog, &record.ami_id, line).await? {
            if !amis.contains(&child.ami_id) {
                amis.push(child.ami_id);
            }
        }
    }
    let at = now_create_at();
    let mut changed = Vec::new();
    for ami_id in &amis {
        let records = if *ami_id == record.ami_id {
            catalog.records_of(record).await?
        } else {
            catalog.find_by_ami(ami_id).await?
        };
        let records: Vec<ImageRecord> =
            records.into_iter().filter(|record| record.status == ImageStatus::Available).collect();
        if records.is_empty() {
            continue;
        }
        // Every copy, in every region.
        for (region, copy_id) in records[0].every_copy() {
            let regional = ec2_in(ec2, &record.region, &region);
            if let Some(image) = regional.describe_image(&copy_id).await.map_err(|err| err.in_region(&region))? {
                if image.state != ImageState::Disabled {
                    regional.disable_image(&copy_id).await.map_err(|err| err.in_region(&region))?;
                }
                let tag = [(REVOKED_TAG.to_string(), reason.to_string())];
                regional.create_tags(&[copy_id], &tag).await.map_err(|err| err.in_region(&region))?;
            }
        }
        for record in records {
            catalog.set_status(&record.workflow_id, &record.step_id, ImageStatus::Revoked, Some((reason, &at))).await?;
            changed.push(Changed {
                ami_id: record.ami_id,
                step_id: record.step_id,
                workflow_id: record.workflow_id,
                status: ImageStatus::Revoked.as_str(),
            });
        }
    }
    Ok(changed)
}

/// Restores a revoked AMI: enabled, untagged, and every record of it available again.
pub async fn restore(ec2: &dyn Ec2, catalog: &dyn Catalog, record: &ImageRecord) -> Result<Vec<Changed>> {
    if record.status != ImageStatus::Revoked {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{} of step \"{}\" is {}, not revoked", record.ami_id, record.step_id, record.status.as_str()),
        )
        .help("only a revoked image can be restored"));
    }
    for (region, copy_id) in record.every_copy() {
        let regional = ec2_in(ec2, &record.region, &region);
        if let Some(image) = regional.describe_image(&copy_id).await.map_err(|err| err.in_region(&region))? {
            if image.state == ImageState::Disabled {
                regional.enable_image(&copy_id).await.map_err(|err| err.in_region(&region))?;
            }
            regional.delete_tags(&[copy_id], &[REVOKED_TAG]).await.map_err(|err| err.in_region(&region))?;
        }
    }
    let mut changed = Vec::new();
    for other in catalog.records_of(record).await? {
        if other.status == ImageStatus::Revoked {
            catalog.set_status(&other.workflow_id, &other.step_id, ImageStatus::Available, None).await?;
            changed.push(Changed {
                ami_id: other.ami_id,
                step_id: other.step_id,
                workflow_id: other.workflow_id,
                status: ImageStatus::Available.as_str(),
            });
        }
    }
    Ok(changed)
}
