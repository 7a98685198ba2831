//! Deregistering a recorded AMI: never from under another workflow that reuses it.

use crate::catalog::{Catalog, ImageRecord, ImageStatus};
use crate::ec2::Ec2;
use crate::error::{Error, ErrorKind, Result};

/// Deregisters a recorded AMI, and its snapshots when asked; the record stays, `deregistered`.
/// Returns the deleted snapshots.
pub async fn delete_image(
    ec2: &dyn Ec2,
    catalog: &dyn Catalog,
    record: &ImageRecord,
    delete_snapshots: bool,
) -> Result<Vec<String>> {
    // Other workflows may have reused this AMI: deregistering it would pull it from under them.
    let mut users = Vec::new();
    if let Some(fingerprint) = &record.fingerprint {
        for other in catalog.find_by_fingerprint(fingerprint).await? {
            let same_record = other.workflow_id == record.workflow_id && other.step_id == record.step_id;
            if other.ami_id == record.ami_id && other.status == ImageStatus::Available && !same_record {
                users.push(format!("workflow {} step {}", other.workflow_id, other.step_id));
            }
        }
    }
    if !users.is_empty() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{} is also recorded for {}; deregistering it would break them", record.ami_id, users.join(", ")),
        )
        .help(
            "delete those records' AMIs first (`paw images delete STEP --workflow-id ID`), or use a new workflow_id",
        ));
    }
    // An AMI already gone from EC2 only needs its record marked.
    let mut snapshots = Vec::new();
    if let Some(image) = ec2.describe_image(&record.ami_id).await? {
        if delete_snapshots {
            snapshots = image.snapshot_ids;
        }
        ec2.deregister_image(&record.ami_id, &snapshots).await?;
    }
    catalog.mark_deregistered(&record.workflow_id, &record.step_id).await?;
    Ok(snapshots)
}
