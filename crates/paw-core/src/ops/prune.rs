//! Retention (`paw images prune`): per step of the folder, across the workflows of its line (its
//! name and variant), the newest images are kept, and so is every image something depends on: a
//! channel points at it, a kept image was built on it (so every kept image can be rebuilt from its
//! recorded parent), another line recorded it too (reuse) or built on it, or it is younger than
//! `--older-than`. The rest are deregistered (with their snapshots, when asked) and their records
//! marked `deregistered`. An AMI that several workflows recorded (reuse) is one image: kept or
//! deleted as one.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::catalog::{CREATE_AT_FORMAT, Catalog, ImageRecord, ImageStatus, Line};
use crate::change::Executor;
use crate::change::delete::{self, DeleteRequest};
use crate::change::usage::{self, Sharing, Target, Usage};
use crate::ec2::Ec2;
use crate::error::{Error, ErrorKind, Result};
use crate::notify::Notifier;
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
    notifier: &Notifier,
) -> Result<Pruned> {
    if options.keep == 0 {
        return Err(Error::new(ErrorKind::Usage, "--keep 0 would delete every image of every step")
            .help("keep at least 1; `paw images delete STEP` removes one image"));
    }
    let line = Line::of(workflow);
    let inventory = Inventory::gather(workflow, &line, catalog).await?;
    let decided = decide(&inventory, options, chrono::Utc::now());
    let mut kept: HashMap<&str, String> = HashMap::new();
    for (ami_id, _) in &inventory.images {
        let reason = match decided.get(ami_id) {
            Some(reason) => Some(reason.clone()),
            None => used_by_another_line(catalog, &line, ami_id).await?,
        };
        kept.extend(reason.map(|reason| (ami_id.as_str(), reason)));
    }
    // Who uses the images to delete, read for all of them at once.
    let doomed: Vec<Target> = inventory
        .images
        .iter()
        .filter(|(ami_id, _)| !kept.contains_key(ami_id.as_str()))
        .map(|(_, records)| Target::from(&records[0]))
        .collect();
    let channels = crate::catalog::current_entries(catalog, None).await?;
    let mut usage = usage::gather(ec2, region, &doomed, Sharing::AskEc2, &channels).await;
    let mut pruned = Pruned { dry_run: options.dry_run, ..Pruned::default() };
    for (ami_id, records) in &inventory.images {
        let (action, reason) = match kept.remove(ami_id.as_str()) {
            Some(reason) => (PruneAction::Kept, reason),
            None => match delete(ec2, region, catalog, records, usage.remove(ami_id), options, notifier).await? {
                Ok(gib) => {
                    pruned.snapshot_gib_freed += gib;
                    (PruneAction::Deleted, format!("older than the newest {} and nothing depends on it", options.keep))
                }
                // Its deletion is refused (in use, protected by hand, a build of its step running): kept.
                Err(refused) => (PruneAction::Kept, refused),
            },
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

/// What prune decides from, read from the catalog before anything is decided.
#[derive(Debug, Default)]
pub(super) struct Inventory {
    /// Each step's images that are not deregistered, newest first: one entry per AMI, with every
    /// record of it (a reused AMI is one image).
    pub(super) images: Vec<(String, Vec<ImageRecord>)>,
    /// The AMIs that channels point at now, with the channel's name.
    pub(super) channels: Vec<(String, String)>,
    /// The recorded parent of every AMI on the way up from those images and channel AMIs.
    pub(super) parents: HashMap<String, String>,
}

impl Inventory {
    /// Adds to `kept` (AMI id → why) what the kept images depend on: what channels point at, then
    /// the ancestors of everything kept, up the recorded parents, so that every kept image can be
    /// rebuilt.
    pub(super) fn keep_depended_on(&self, kept: &mut HashMap<String, String>) {
        for (ami_id, channel) in &self.channels {
            kept.entry(ami_id.clone()).or_insert_with(|| format!("channel {channel}"));
        }
        let mut to_visit: Vec<String> = kept.keys().cloned().collect();
        let mut visited: HashSet<String> = HashSet::new();
        while let Some(ami_id) = to_visit.pop() {
            if !visited.insert(ami_id.clone()) {
                continue;
            }
            let Some(base) = self.parents.get(&ami_id) else { continue };
            if !kept.contains_key(base) && self.images.iter().any(|(candidate, _)| candidate == base) {
                kept.insert(base.clone(), format!("ancestor of {ami_id}"));
            }
            to_visit.push(base.clone());
        }
    }

    pub(super) async fn gather(workflow: &Workflow, line: &Line, catalog: &dyn Catalog) -> Result<Inventory> {
        let mut inventory = Inventory::default();
        let mut by_step: HashMap<String, Vec<ImageRecord>> = HashMap::new();
        for record in catalog.list_name(&line.name).await?.into_iter().filter(|record| line.holds(record)) {
            by_step.entry(record.step_id.clone()).or_default().push(record);
        }
        for step in workflow.steps() {
            let mut at: HashMap<String, usize> = HashMap::new();
            for record in by_step.remove(&step.id).unwrap_or_default() {
                if record.status == ImageStatus::Deregistered {
                    continue;
                }
                inventory.parents.entry(record.ami_id.clone()).or_insert_with(|| record.base_ami_id.clone());
                match at.get(&record.ami_id) {
                    Some(index) => inventory.images[*index].1.push(record),
                    None => {
                        at.insert(record.ami_id.clone(), inventory.images.len());
                        inventory.images.push((record.ami_id.clone(), vec![record]));
                    }
                }
            }
        }
        // Every line's channels: an image another line's channel points at is never deleted.
        for entry in crate::catalog::current_entries(catalog, None).await? {
            inventory.channels.push((entry.ami_id, entry.channel));
        }
        // The parents the records above do not give, up to the root base AMI.
        let mut to_visit: Vec<String> = inventory.parents.values().cloned().collect();
        to_visit.extend(inventory.channels.iter().map(|(ami_id, _)| ami_id.clone()));
        while let Some(ami_id) = to_visit.pop() {
            if inventory.parents.contains_key(&ami_id) {
                continue;
            }
            let Some(record) = catalog.find_by_ami(&ami_id).await?.into_iter().next() else { continue };
            to_visit.push(record.base_ami_id.clone());
            inventory.parents.insert(ami_id, record.base_ami_id);
        }
        Ok(inventory)
    }
}

/// The images to keep, and why (the rest are deleted): per step the newest `keep` available
/// ones, those younger than `older_than_days`, what channels point at, and the ancestors of all
/// of these. Decides only: it reads and changes nothing.
fn decide(inventory: &Inventory, options: PruneOptions, now: chrono::DateTime<chrono::Utc>) -> HashMap<String, String> {
    let mut kept: HashMap<String, String> = HashMap::new();
    let mut newest_per_step: HashMap<&str, usize> = HashMap::new();
    let cutoff = options.older_than_days.map(|days| now - chrono::Duration::days(days as i64));
    for (ami_id, records) in &inventory.images {
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
    inventory.keep_depended_on(&mut kept);
    kept
}

/// Why an image of the line that prune would delete is kept for another line (or for records older
/// than names): one of them recorded the same AMI (reuse), or built an image on it.
pub(super) async fn used_by_another_line(catalog: &dyn Catalog, line: &Line, ami_id: &str) -> Result<Option<String>> {
    let theirs = |record: &ImageRecord| record.status != ImageStatus::Deregistered && !line.holds(record);
    let owner =
        |record: &ImageRecord| record.line().map_or("a record older than names".into(), |line| line.to_string());
    if let Some(other) = catalog.find_by_ami(ami_id).await?.iter().find(|record| theirs(record)) {
        return Ok(Some(format!("also recorded by {} (workflow {})", owner(other), other.workflow_id)));
    }
    if let Some(child) = catalog.find_by_base(ami_id).await?.iter().find(|record| theirs(record)) {
        return Ok(Some(format!("{} of {} is built on it", child.ami_id, owner(child))));
    }
    Ok(None)
}

/// Deletes the AMI in every place (their snapshots too, when asked) and marks its records, as one
/// plan (`delete`), knowing who uses it (`usage`, read with the other images'); returns the GiB of snapshots deleted, or why the plan is refused (nothing
/// changed). A dry run only plans. `ec2` is `region`'s.
async fn delete(
    ec2: &dyn Ec2,
    region: &str,
    catalog: &dyn Catalog,
    records: &[ImageRecord],
    usage: Option<Usage>,
    options: PruneOptions,
    notifier: &Notifier,
) -> Result<std::result::Result<u64, String>> {
    let request = DeleteRequest { delete_snapshots: options.delete_snapshots, ..DeleteRequest::default() };
    let inventory = delete::Inventory::gather(catalog, ec2, region, records, usage).await?;
    let plan = delete::decide(&inventory, &request);
    if let Some(refused) = plan.refusals.first() {
        return Ok(Err(refused.reason.clone()));
    }
    if !options.dry_run {
        Executor::new(catalog, ec2, region, "paw images prune").notifying(notifier).apply(&plan).await?;
    }
    let described = inventory.copies.iter().filter_map(|(_, _, image)| image.as_ref());
    Ok(Ok(if options.delete_snapshots { described.map(|image| snapshot_gib(&image.data)).sum() } else { 0 }))
}

/// The GiB of the image's EBS volumes, as DescribeImages reports them.
fn snapshot_gib(data: &Value) -> u64 {
    data["BlockDeviceMappings"]
        .as_array()
        .map(|mappings| mappings.iter().filter_map(|mapping| mapping["Ebs"]["VolumeSize"].as_u64()).sum())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::conformance::sample_record;

    fn image(step: &str, ami_id: &str, base: &str, created: &str) -> (String, Vec<ImageRecord>) {
        let mut record = sample_record("wf", step, ami_id, &format!("2026-01-{created}T00:00:00.000000+0000"));
        record.base_ami_id = base.into();
        (ami_id.into(), vec![record])
    }

    #[test]
    fn the_newest_what_channels_point_at_and_their_ancestors_are_kept() {
        let images = vec![
            image("base", "ami-base2", "ami-root", "03"),
            image("base", "ami-base1", "ami-root", "02"),
            image("base", "ami-base0", "ami-root", "01"),
            image("web", "ami-web2", "ami-base2", "04"),
            image("web", "ami-web1", "ami-base0", "02"),
            image("web", "ami-web0", "ami-base0", "01"),
        ];
        let parents = images.iter().map(|(ami_id, records)| (ami_id.clone(), records[0].base_ami_id.clone())).collect();
        let inventory = Inventory { images, channels: vec![("ami-web1".into(), "prod".into())], parents };
        let options = PruneOptions { keep: 1, older_than_days: None, delete_snapshots: false, dry_run: true };
        let now = chrono::DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z").unwrap().to_utc();
        let kept = decide(&inventory, options, now);
        let mut names: Vec<(&str, &str)> = kept.iter().map(|(ami_id, why)| (ami_id.as_str(), why.as_str())).collect();
        names.sort();
        assert_eq!(
            names,
            [
                ("ami-base0", "ancestor of ami-web1"),
                ("ami-base2", "newest 1"),
                ("ami-web1", "channel prod"),
                ("ami-web2", "newest 1"),
            ]
        );
        let younger = PruneOptions { older_than_days: Some(31), ..options };
        assert!(decide(&inventory, younger, now).contains_key("ami-base1"), "younger than 31 days");
    }
}
