//! Deregistering a recorded AMI: never from under another workflow that reuses it.

use crate::catalog::{Catalog, ImageRecord, ImageStatus};
use crate::ec2::{Ec2, ec2_in};
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
    let snapshots = deregister_with_copies(ec2, record, delete_snapshots).await?;
    catalog.mark_deregistered(&record.workflow_id, &record.step_id).await?;
    Ok(snapshots)
}

/// Deregisters the record's AMI (`ec2` is its region's) and its copies in every other region,
/// their snapshots too when asked; returns the snapshots deleted. An AMI already gone is passed
/// over. A region that fails does not stop the others; the error names each failed region, and
/// a second run finishes the job.
pub async fn deregister_with_copies(
    ec2: &dyn Ec2,
    record: &ImageRecord,
    delete_snapshots: bool,
) -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for (region, ami_id) in record.every_copy() {
        let regional = ec2_in(ec2, &record.region, &region);
        let result = async {
            let Some(image) = regional.describe_image(&ami_id).await? else { return Ok(Vec::new()) };
            let snapshots = if delete_snapshots { image.snapshot_ids } else { Vec::new() };
            regional.deregister_image(&ami_id, &snapshots).await?;
            Ok::<_, Error>(snapshots)
        };
        match result.await {
            Ok(snapshots) => deleted.extend(snapshots),
            Err(err) => failed.push(format!("{ami_id} in {region}: {err}")),
        }
    }
    if failed.is_empty() {
        return Ok(deleted);
    }
    Err(Error::new(ErrorKind::Aws, format!("{} could not be deregistered everywhere", record.ami_id))
        .details(failed.join("\n"))
        .help("the other regions are done; fix what the error says and run the command again"))
}
