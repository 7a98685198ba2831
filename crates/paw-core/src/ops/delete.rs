//! Deregistering a recorded AMI: never from under another workflow that reuses it.

use crate::catalog::{Catalog, ImageRecord, ImageStatus};
use crate::ec2::{Ec2, Image, ec2_in};
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
    let users: Vec<String> = catalog
        .find_by_ami(&record.ami_id)
        .await?
        .iter()
        .filter(|other| other.status == ImageStatus::Available)
        .filter(|other| other.workflow_id != record.workflow_id || other.step_id != record.step_id)
        .map(|other| format!("workflow {} step {}", other.workflow_id, other.step_id))
        .collect();
    if !users.is_empty() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{} is also recorded for {}; deregistering it would break them", record.ami_id, users.join(", ")),
        )
        .help(
            "delete those records' AMIs first (`paw images delete STEP --workflow-id ID`), or use a new workflow_id",
        ));
    }
    let images = deregister_with_copies(ec2, record, delete_snapshots).await?;
    catalog.mark_deregistered(&record.workflow_id, &record.step_id).await?;
    let snapshots = images.into_iter().flat_map(|image| image.snapshot_ids);
    Ok(if delete_snapshots { snapshots.collect() } else { Vec::new() })
}

/// Deregisters the record's AMI (`ec2` is its region's) and its copies in every other region,
/// their snapshots too when asked; returns the images deregistered, as EC2 described them just
/// before. An AMI already gone is passed over. A region that fails does not stop the others;
/// the error names each failed region, and a second run finishes the job.
pub async fn deregister_with_copies(ec2: &dyn Ec2, record: &ImageRecord, delete_snapshots: bool) -> Result<Vec<Image>> {
    let mut deregistered = Vec::new();
    let mut failed = Vec::new();
    for (region, ami_id) in record.every_copy() {
        let regional = ec2_in(ec2, &record.region, &region);
        let result = async {
            let Some(image) = regional.describe_image(&ami_id).await? else { return Ok(None) };
            let snapshots = if delete_snapshots { image.snapshot_ids.as_slice() } else { &[] };
            regional.deregister_image(&ami_id, snapshots).await?;
            Ok::<_, Error>(Some(image))
        };
        match result.await {
            Ok(image) => deregistered.extend(image),
            Err(err) => failed.push(format!("{ami_id} in {region}: {err}")),
        }
    }
    if failed.is_empty() {
        return Ok(deregistered);
    }
    Err(Error::new(ErrorKind::Aws, format!("{} could not be deregistered everywhere", record.ami_id))
        .details(failed.join("\n"))
        .help("the other regions are done; fix what the error says and run the command again"))
}
