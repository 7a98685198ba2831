//! `paw images copy`: the step's AMI copied to other regions, each copy recorded on every record of
//! the AMI and tagged like the original (CopyImage copies no tags) at once, then waited for.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::catalog::{Catalog, ImageRecord};
use crate::ec2::{self, Ec2, Place, ec2_in};
use crate::error::{Error, ErrorKind, Result};

/// How long a copy may take to become available.
const COPY_WAIT: Duration = Duration::from_secs(3600);

/// What became of one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copied {
    pub region: String,
    /// Another account's copy (distribution); None: the build account's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub ami_id: Option<String>,
    pub result: CopyResult,
    /// Why it failed, or what was cleaned up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What became of one destination; in JSON and text `copied`, `already there`, `shared` (launch
/// permission on the build account's copy) or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CopyResult {
    #[serde(rename = "copied")]
    Copied,
    #[serde(rename = "already there")]
    AlreadyThere,
    #[serde(rename = "shared")]
    Shared,
    #[serde(rename = "failed")]
    Failed,
}

impl std::fmt::Display for CopyResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CopyResult::Copied => "copied",
            CopyResult::AlreadyThere => "already there",
            CopyResult::Shared => "shared",
            CopyResult::Failed => "failed",
        })
    }
}

/// Where a copy goes, and the KMS key it is encrypted with there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub place: Place,
    pub kms_key_id: Option<String>,
}

/// Copies the record's AMI (`ec2` is its region's) into each region of the build account.
pub async fn copy_image(
    ec2: &dyn Ec2,
    catalog: &dyn Catalog,
    record: &ImageRecord,
    regions: &[String],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<Copied>> {
    let destinations: Vec<Destination> =
        regions.iter().map(|region| Destination { place: Place::region(region), kms_key_id: None }).collect();
    copy_to(ec2, catalog, record, &destinations, progress).await
}

/// Copies the record's AMI (`ec2` is its region's) to each destination: a region of the build
/// account, or of another account, which then owns its copy (the AMI and its snapshots are shared
/// with it first, and CopyImage runs there). Each copy is recorded (`copies`, keyed by
/// `Place::key`) as soon as it exists, then tagged as the original and waited for. A destination
/// that fails is reported and the others still complete.
pub async fn copy_to(
    ec2: &dyn Ec2,
    catalog: &dyn Catalog,
    record: &ImageRecord,
    destinations: &[Destination],
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
    for Destination { place, kms_key_id } in destinations {
        let (key, region, account) = (place.key(), place.region.clone(), place.account.clone());
        let outcome = |ami_id: Option<String>, result: CopyResult, error: Option<String>| Copied {
            region: region.clone(),
            account: account.clone(),
            ami_id,
            result,
            error,
        };
        if place.account.is_none() && region == record.region {
            progress(&format!("{place}: already has {}; nothing to do", record.ami_id));
            results.push(outcome(Some(record.ami_id.clone()), CopyResult::AlreadyThere, None));
            continue;
        }
        if !known.contains(&region) {
            results.push(outcome(None, CopyResult::Failed, Some(format!("\"{region}\" is not an EC2 region"))));
            continue;
        }
        // Another account copies what it may launch: the AMI and its snapshots, shared first.
        if let Some(account) = &place.account
            && let Err(err) = super::share::grant(ec2, &record.ami_id, std::slice::from_ref(account), &[], false).await
        {
            results.push(outcome(None, CopyResult::Failed, Some(format!("sharing {} with it: {err}", record.ami_id))));
            continue;
        }
        let destination = ec2_in(ec2, &record.region, &key);
        let found = match copies.get(&key) {
            Some(ami_id) => check_recorded(&*destination, ami_id, &source).await,
            // A copy a stopped run made, before it could record it: it has the original's name,
            // which EC2 keeps unique, and is this copy.
            None => destination.images_named(&record.ami_name).await.map(|images| match images.into_iter().next() {
                Some(image) => Found::Unfinished(image.id),
                None => Found::Missing,
            }),
        };
        let ami_id = match found {
            Ok(Found::Done(ami_id)) => {
                progress(&format!("{place}: already has {ami_id}; nothing to do"));
                results.push(outcome(Some(ami_id), CopyResult::AlreadyThere, None));
                continue;
            }
            Ok(Found::Unfinished(ami_id)) => {
                progress(&format!("{place}: {ami_id}, copied by a run that stopped, is finished now"));
                ami_id
            }
            Ok(Found::Missing) => {
                progress(&format!("{place}: copying {}", record.ami_id));
                let made = destination
                    .copy_image(&record.region, &record.ami_id, &record.ami_name, kms_key_id.as_deref())
                    .await;
                match made {
                    Ok(ami_id) => ami_id,
                    Err(err) => {
                        results.push(outcome(None, CopyResult::Failed, Some(err.to_string())));
                        continue;
                    }
                }
            }
            Err(err) => {
                results.push(outcome(None, CopyResult::Failed, Some(err.to_string())));
                continue;
            }
        };
        // Recorded before it is waited for: a paw stopped meanwhile leaves the copy known.
        copies.insert(key.clone(), ami_id.clone());
        record_copies(catalog, record, &copies).await?;
        progress(&format!("{place}: {} copied as {ami_id}; waiting until it is available", record.ami_id));
        match finish(&*destination, &ami_id, &source).await {
            Ok(()) => {
                progress(&format!("{place}: {ami_id} is available and tagged"));
                // The account owns its copy: it no longer needs the original.
                let error = match &place.account {
                    Some(account) => super::share::grant(ec2, &record.ami_id, std::slice::from_ref(account), &[], true)
                        .await
                        .err()
                        .map(|err| format!("copied, but {}'s share could not be withdrawn: {err}", record.ami_id)),
                    None => None,
                };
                results.push(outcome(Some(ami_id), CopyResult::Copied, error));
            }
            Err(err) => {
                // A copy that cannot be finished is deregistered again, and no longer recorded.
                let snapshots = destination.describe_image(&ami_id).await.ok().flatten().map(|copy| copy.snapshot_ids);
                let undone = match destination.deregister_image(&ami_id, &snapshots.unwrap_or_default()).await {
                    Ok(()) => {
                        copies.remove(&key);
                        record_copies(catalog, record, &copies).await?;
                        "the copy was deregistered again".to_string()
                    }
                    Err(undo) => format!("the copy could not be deregistered ({undo}); it stays recorded"),
                };
                results.push(outcome(Some(ami_id), CopyResult::Failed, Some(format!("{err}; {undone}"))));
            }
        }
    }
    Ok(results)
}

/// What a destination has of the image.
enum Found {
    /// Its copy, available and tagged as the original.
    Done(String),
    /// A copy not finished: a run stopped before it was tagged, or waited for.
    Unfinished(String),
    Missing,
}

/// A recorded copy: done, unfinished, or gone from EC2 (then it is made again).
async fn check_recorded(destination: &dyn Ec2, ami_id: &str, source: &ec2::Image) -> Result<Found> {
    Ok(match destination.describe_image(ami_id).await? {
        Some(copy)
            if copy.state == ec2::ImageState::Available && source.tags.iter().all(|tag| copy.tags.contains(tag)) =>
        {
            Found::Done(ami_id.to_string())
        }
        Some(_) => Found::Unfinished(ami_id.to_string()),
        None => Found::Missing,
    })
}

/// Every record of the AMI gets its copies.
async fn record_copies(catalog: &dyn Catalog, record: &ImageRecord, copies: &BTreeMap<String, String>) -> Result<()> {
    for same in catalog.records_of(record).await? {
        catalog.set_copies(&same.workflow_id, &same.step_id, copies).await?;
    }
    Ok(())
}

/// A copy made: tagged as soon as EC2 knows it, deprecated when the original is (the lifecycle
/// policy's time, while it is to come: EC2 takes no past time), waited for, then its snapshots
/// tagged too.
async fn finish(destination: &dyn Ec2, ami_id: &str, source: &ec2::Image) -> Result<()> {
    if ec2::describe_new(destination, ami_id).await?.is_none() {
        return Err(Error::new(ErrorKind::Aws, format!("{ami_id} was made, but EC2 does not describe it")));
    }
    destination.create_tags(&[ami_id.to_string()], &source.tags).await?;
    if let Some(at) = source.deprecation_time.as_ref().filter(|_| source.deprecated_since().is_none()) {
        destination.deprecate_image(ami_id, at).await?;
    }
    let copy = destination.wait_until_available(ami_id, COPY_WAIT).await?;
    if copy.snapshot_ids.is_empty() {
        return Ok(());
    }
    destination.create_tags(&copy.snapshot_ids, &source.tags).await
}
