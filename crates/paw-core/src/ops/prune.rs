//! Retention (`paw images prune`): per step of the folder, across workflows, the newest images are
//! kept, and so is every image something depends on: a channel points at it, a kept image was
//! built on it (so every kept image can be rebuilt from its recorded parent), or it is younger than
//! `--older-than`. The rest are deregistered (with their snapshots, when asked) and their records
//! marked `deregistered`. An AMI that several workflows recorded (reuse) is one image: kept or
//! deleted as one.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::channel;
use crate::catalog::{CREATE_AT_FORMAT, Catalog, ImageRecord, ImageStatus};
use crate::ec2::{Ec2, ec2_in};
use crate::error::{Error, ErrorKind, Result};
use crate::workflow::Workflow;

#[derive(Debug, Clone, Copy)]
pub struct PruneOptions {
    /// How many of each step's newest available images to keep (1 or more).
    pub keep: usize,
    /// Keep every image younger than this many days as well.
    pub older_than_days: Option<u64>,
    pub delete_snapshots: bool,
    /// Decide, change nothing.
    pub dry_run: bool,
}

/// What became (or, in a dry run, would become) of one record's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub ami_id: String,
    pub step_id: String,
    pub workflow_id: String,
    pub action: PruneAction,
    pub reason: String,
}

/// What prune does with an image; in JSON and tables `kept` or `deleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PruneAction {
    Kept,
    Deleted,
}

impl std::fmt::Display for PruneAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PruneAction::Kept => "kept",
            PruneAction::Deleted => "deleted",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pruned {
    pub decisions: Vec<Decision>,
    /// The size of the snapshots deleted (or that would be).
    pub snapshot_gib_freed: u64,
    /// Nothing was changed: the decisions say what would be.
    pub dry_run: bool,
}

/// `ec2` is the workflow's region's (`region`); images of other regions are pruned where they are.
impl Pruned {
    /// The AMIs deleted (or, in a dry run, to be deleted), each once.
    pub fn deleted_amis(&self) -> std::collections::BTreeSet<&str> {
        self.decisions
            .iter()
            .filter(|decision| decision.action == PruneAction::Deleted)
            .map(|decision| decision.ami_id.as_str())
            .collect()
    }
}

pub async fn prune(
    workflow: &Workflow,
    catalog: &dyn Catalog,
    ec2: &dyn Ec2,
    region: &str,
    options: PruneOptions,
) -> Result<Pruned> {
    if options.keep == 0 {
        return Err(Error::new(ErrorKind::Usage, "--keep 0 would delete every image of every step")
            .help("keep at least 1; `paw images delete STEP` removes one image"));
    }
    // Each step's images, newest first, one entry per AMI with all its records.
    let mut images: Vec<(String, Vec<ImageRecord>)> = Vec::new();
    for step in workflow.steps() {
        let mut at: HashMap<String, usize> = HashMap::new();
        for record in catalog.list_step(&step.id).await? {
            if record.status == ImageStatus::Deregistered {
                continue;
            }
            match at.get(&record.ami_id) {
                Some(index) => images[*index].1.push(record),
                None => {
                    at.insert(record.ami_id.clone(), images.len());
                    images.push((record.ami_id.clone(), vec![record]));
                }
            }
        }
    }
    let mut kept: HashMap<String, String> = HashMap::new();
    let mut newest_per_step: HashMap<&str, usize> = HashMap::new();
    let cutoff = options.older_than_days.map(|days| chrono::Utc::now() - chrono::Duration::days(days as i64));
    for (ami_id, records) in &images {
        let newest = &records[0];
        if newest.status == ImageStatus::Available {
            let count = newest_per_step.entry(newest.step_id.as_str()).or_default();
            if *count < options.keep {
                *count += 1;
                kept.insert(ami_id.clone(), format!("newest {}", options.keep));
                continue;
            }
        }
        let created = chrono::DateTime::parse_from_str(&newest.create_at, CREATE_AT_FORMAT).ok();
        if let (Some(cutoff), Some(created)) = (cutoff, created)
            && created > cutoff
        {
            kept.insert(ami_id.clone(), format!("newer than {} days", options.older_than_days.unwrap_or_default()));
        }
    }
    for entry in channel::current_entries(catalog).await? {
        kept.entry(entry.ami_id.clone()).or_insert_with(|| format!("channel {}", entry.channel));
    }
    // Ancestors of what is kept, up the recorded parents.
    let mut to_visit: Vec<String> = kept.keys().cloned().collect();
    let mut visited: HashSet<String> = HashSet::new();
    while let Some(ami_id) = to_visit.pop() {
        if !visited.insert(ami_id.clone()) {
            continue;
        }
        let Some(base) = catalog.find_by_ami(&ami_id).await?.into_iter().next().map(|record| record.base_ami_id) else {
            continue;
        };
        if !kept.contains_key(&base) && images.iter().any(|(candidate, _)| *candidate == base) {
            kept.insert(base.clone(), format!("ancestor of {ami_id}"));
        }
        to_visit.push(base);
    }

    let mut pruned = Pruned { dry_run: options.dry_run, ..Pruned::default() };
    for (ami_id, records) in &images {
        let (action, reason) = match kept.get(ami_id) {
            Some(reason) => (PruneAction::Kept, reason.clone()),
            None => {
                let regional = ec2_in(ec2, region, &records[0].region);
                pruned.snapshot_gib_freed += delete(&*regional, catalog, records, options).await?;
                (PruneAction::Deleted, format!("older than the newest {} and nothing depends on it", options.keep))
            }
        };
        pruned.decisions.extend(records.iter().map(|record| Decision {
            ami_id: ami_id.clone(),
            step_id: record.step_id.clone(),
            workflow_id: record.workflow_id.clone(),
            action,
            reason: reason.clone(),
        }));
    }
    Ok(pruned)
}

/// Deregisters the AMI and its copies (their snapshots too, when asked) and marks its records;
/// returns the GiB of snapshots deleted. A dry run only counts. `ec2` is the AMI's region's.
async fn delete(ec2: &dyn Ec2, catalog: &dyn Catalog, records: &[ImageRecord], options: PruneOptions) -> Result<u64> {
    let record = &records[0];
    let images = if options.dry_run {
        let mut images = Vec::new();
        for (region, ami_id) in record.every_copy() {
            images.extend(ec2_in(ec2, &record.region, &region).describe_image(&ami_id).await?);
        }
        images
    } else {
        let images = super::deregister_with_copies(ec2, record, options.delete_snapshots).await?;
        for record in records {
            catalog.mark_deregistered(&record.workflow_id, &record.step_id).await?;
        }
        images
    };
    Ok(if options.delete_snapshots { images.iter().map(|image| snapshot_gib(&image.data)).sum() } else { 0 })
}

/// The GiB of the image's EBS volumes, as DescribeImages reports them.
fn snapshot_gib(data: &Value) -> u64 {
    data["BlockDeviceMappings"]
        .as_array()
        .map(|mappings| mappings.iter().filter_map(|mapping| mapping["Ebs"]["VolumeSize"].as_u64()).sum())
        .unwrap_or_default()
}
