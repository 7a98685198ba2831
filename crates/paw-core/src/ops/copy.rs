//! `paw images copy`: the step's AMI copied to other regions, each copy recorded on every record of
//! the AMI and tagged like the original (CopyImage copies no tags) at once, then waited for.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::catalog::{Catalog, ImageRecord};
use crate::ec2::{self, Ec2};
use crate::error::{Error, ErrorKind, Result};

/// How long a copy may take to become available.
const COPY_WAIT: Duration = Duration::from_secs(3600);

/// What became of one destination region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copied {
    pub region: String,
    pub ami_id: Option<String>,
    pub result: CopyResult,
    /// Why it failed, or what was cleaned up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What became of one region's copy; in JSON and text `copied`, `already there` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CopyResult {
    #[serde(rename = "copied")]
    Copied,
    #[serde(rename = "already there")]
    AlreadyThere,
    #[serde(rename = "failed")]
    Failed,
}

impl std::fmt::Display for CopyResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CopyResult::Copied => "copied",
            CopyResult::AlreadyThere => "already there",
            CopyResult::Failed => "failed",
        })
    }
}

/// Copies the record's AMI (`ec2` is its region's) into each region; a region that fails is
/// reported and the others still complete. `progress` hears what happens.
pub async fn copy_image(
    ec2: &dyn Ec2,
    catalog: &dyn Catalog,
    record: &ImageRecord,
    regions: &[String],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<Copied>> {
    let source = ec2.describe_image(&record.ami_id).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::Usage,
            format!("{} of step \"{}\" is not in EC2 ({})", record.ami_id, record.step_id, record.region),
        )
        .help("`paw images list` shows what the catalog has; `paw build` makes it again")
    })?;
    let known = ec2.region_names().await?;
    let mut copies = record.copies.clone();
    let mut results = Vec::new();
    for region in regions {
        if region == &record.region || copies.contains_key(region) {
            let ami_id = if region == &record.region { record.ami_id.clone() } else { copies[region].clone() };
            progress(&format!("{region}: already has {ami_id}; nothing to do"));
            results.push(Copied {
                region: region.clone(),
                ami_id: Some(ami_id),
                result: CopyResult::AlreadyThere,
                error: None,
            });
            continue;
        }
        if !known.contains(region) {
            let error = format!("\"{region}\" is not an EC2 region");
            results.push(Copied {
                region: region.clone(),
                ami_id: None,
                result: CopyResult::Failed,
                error: Some(error),
            });
            continue;
        }
        let destination = ec2.in_region(region);
        let ami_id = match destination.copy_image(&record.region, &record.ami_id, &record.ami_name).await {
            Ok(ami_id) => ami_id,
            Err(err) => {
                results.push(Copied {
                    region: region.clone(),
                    ami_id: None,
                    result: CopyResult::Failed,
                    error: Some(err.to_string()),
                });
                continue;
            }
        };
        // Recorded before it is waited for: a paw stopped meanwhile leaves the copy known.
        copies.insert(region.clone(), ami_id.clone());
        record_copies(catalog, record, &copies).await?;
        progress(&format!("{region}: copying {} as {ami_id}; waiting until it is available", record.ami_id));
        match finish(&*destination, &ami_id, &source.tags).await {
            Ok(()) => {
                progress(&format!("{region}: {ami_id} is available and tagged"));
                results.push(Copied {
                    region: region.clone(),
                    ami_id: Some(ami_id),
                    result: CopyResult::Copied,
                    error: None,
                });
            }
            Err(err) => {
                // A copy that cannot be finished is deregistered again, and no longer recorded.
                let snapshots = destination.describe_image(&ami_id).await.ok().flatten().map(|copy| copy.snapshot_ids);
                let undone = match destination.deregister_image(&ami_id, &snapshots.unwrap_or_default()).await {
                    Ok(()) => {
                        copies.remove(region);
                        record_copies(catalog, record, &copies).await?;
                        "the copy was deregistered again".to_string()
                    }
                    Err(undo) => format!("the copy could not be deregistered ({undo}); it stays recorded"),
                };
                let error = Some(format!("{err}; {undone}"));
                results.push(Copied {
                    region: region.clone(),
                    ami_id: Some(ami_id),
                    result: CopyResult::Failed,
                    error,
                });
            }
        }
    }
    Ok(results)
}

/// Every record of the AMI gets its copies.
async fn record_copies(catalog: &dyn Catalog, record: &ImageRecord, copies: &BTreeMap<String, String>) -> Result<()> {
    for same in catalog.records_of(record).await? {
        catalog.set_copies(&same.workflow_id, &same.step_id, copies).await?;
    }
    Ok(())
}

/// A copy made: tagged as soon as EC2 knows it, waited for, then its snapshots tagged too.
async fn finish(destination: &dyn Ec2, ami_id: &str, tags: &[(String, String)]) -> Result<()> {
    if ec2::describe_new(destination, ami_id).await?.is_none() {
        return Err(Error::new(ErrorKind::Aws, format!("{ami_id} was made, but EC2 does not describe it")));
    }
    destination.create_tags(&[ami_id.to_string()], tags).await?;
    let copy = destination.wait_until_available(ami_id, COPY_WAIT).await?;
    if copy.snapshot_ids.is_empty() {
        return Ok(());
    }
    destination.create_tags(&copy.snapshot_ids, tags).await
}
