//! `paw images share`: launch permission on every copy of the step's AMI, in every region, and
//! create-volume permission on their snapshots (for accounts: EC2 has no organization-wide
//! snapshot permission).

use serde::Serialize;

use crate::catalog::ImageRecord;
use crate::ec2::{Ec2, ec2_in};
use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shared {
    pub region: String,
    pub ami_id: String,
    pub snapshot_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Grants (or with `remove`, withdraws) the permissions; `ec2` is the record's region's. A region
/// that fails is reported, and the others still complete.
pub async fn share(
    ec2: &dyn Ec2,
    record: &ImageRecord,
    accounts: &[String],
    organization_arns: &[String],
    remove: bool,
) -> Result<Vec<Shared>> {
    if accounts.is_empty() && organization_arns.is_empty() {
        return Err(Error::new(ErrorKind::Usage, "no one to share with")
            .help("name accounts with --account ID (12 digits), or an organization with --org-arn ARN"));
    }
    if let Some(bad) =
        accounts.iter().find(|account| account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Error::new(ErrorKind::Usage, format!("\"{bad}\" is not an AWS account id"))
            .help("an account id is 12 digits, e.g. 123456789012"));
    }
    let mut results = Vec::new();
    for (region, ami_id) in record.every_copy() {
        let regional = ec2_in(ec2, &record.region, &region);
        results.push(match grant(&*regional, &ami_id, accounts, organization_arns, remove).await {
            Ok(snapshot_ids) => Shared { region, ami_id, snapshot_ids, error: None },
            Err(err) => Shared { region, ami_id, snapshot_ids: Vec::new(), error: Some(err.to_string()) },
        });
    }
    Ok(results)
}

/// Launch permission on one AMI (`regional` is its region's), and create-volume permission on its
/// snapshots for the accounts; returns the snapshots.
pub async fn grant(
    regional: &dyn Ec2,
    ami_id: &str,
    accounts: &[String],
    organization_arns: &[String],
    remove: bool,
) -> Result<Vec<String>> {
    regional.set_launch_permission(ami_id, accounts, organization_arns, remove).await?;
    let snapshots = regional.describe_image(ami_id).await?.map(|image| image.snapshot_ids).unwrap_or_default();
    if !accounts.is_empty() {
        for snapshot in &snapshots {
            regional.set_create_volume_permission(snapshot, accounts, remove).await?;
        }
    }
    Ok(snapshots)
}
