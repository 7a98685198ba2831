//! `paw catalog adopt`: records made before workflow names existed belong to no line, so resolve,
//! prune, channels and report do not see them. A person assigns them, by workflow id, to the
//! folder's line; paw never guesses (two teams may have step ids in common).

use std::collections::{BTreeMap, BTreeSet};

use super::{Catalog, ChannelEntry, ImageRecord, Line};
use crate::error::{Error, ErrorKind, Result};

/// What `adopt` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Adopted {
    /// The records assigned to the line: (workflow id, step id, AMI id).
    pub records: Vec<(String, String, String)>,
    /// Records of those workflows that were already the line's.
    pub already: usize,
    /// Channel entries without a line that point at an adopted AMI, now the line's too.
    pub channel_entries: usize,
    /// Channels (channel, step) the line had set since the upgrade: their older entries stay out,
    /// as they would come after the newer ones.
    pub channels_left: Vec<(String, String)>,
}

/// The records without a line among these steps (the folder's), by workflow id: what `adopt` may
/// be asked to assign.
pub async fn unnamed(catalog: &dyn Catalog, step_ids: &[&str]) -> Result<BTreeMap<String, Vec<ImageRecord>>> {
    let mut by_workflow: BTreeMap<String, Vec<ImageRecord>> = BTreeMap::new();
    for step_id in step_ids {
        for record in catalog.list_step(step_id).await?.into_iter().filter(|record| record.line().is_none()) {
            by_workflow.entry(record.workflow_id.clone()).or_default().push(record);
        }
    }
    Ok(by_workflow)
}

/// Assigns every record of these workflows to `line`; a workflow with a record of another line is
/// refused before anything changes. Channel entries older than names that point at an adopted AMI
/// are added to the line's channel history, with their numbers. Running it again changes nothing.
pub async fn adopt(catalog: &dyn Catalog, line: &Line, workflow_ids: &[String]) -> Result<Adopted> {
    let mut records = Vec::new();
    for workflow_id in workflow_ids {
        let found = catalog.list_workflow(workflow_id).await?;
        if found.is_empty() {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("the catalog {} has no records of workflow \"{workflow_id}\"", catalog.uri()),
            )
            .help("`paw catalog adopt` without ids lists the workflows whose records have no name"));
        }
        if let Some(other) = found.iter().find(|record| record.line().is_some_and(|theirs| theirs != *line)) {
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "workflow \"{workflow_id}\" is {}'s (its step \"{}\" is {}), not {line}'s",
                    other.line().expect("found with a line"),
                    other.step_id,
                    other.ami_id
                ),
            )
            .help("adopt only the workflows this folder built"));
        }
        records.extend(found);
    }
    let mut adopted = Adopted::default();
    let mut amis = BTreeSet::new();
    for record in records {
        amis.insert(record.ami_id.clone());
        if record.line().is_some() {
            adopted.already += 1;
            continue;
        }
        catalog.set_line(&record.workflow_id, &record.step_id, line).await?;
        adopted.records.push((record.workflow_id, record.step_id, record.ami_id));
    }
    let mut by_pointer: BTreeMap<(String, String), Vec<ChannelEntry>> = BTreeMap::new();
    for entry in catalog.channel_entries().await? {
        if entry.line().is_none() && amis.contains(&entry.ami_id) {
            let named = ChannelEntry { workflow_name: Some(line.name.clone()), variant: line.variant.clone(), ..entry };
            by_pointer.entry((named.channel.clone(), named.step_id.clone())).or_default().push(named);
        }
    }
    for ((channel, step_id), entries) in by_pointer {
        // A history the line began itself would be continued by older entries: left alone. One
        // made of adopted entries (a run before this one) is completed.
        let history = catalog.channel_history(line, &channel, &step_id).await?;
        if !history.iter().all(|entry| entries.contains(entry)) {
            adopted.channels_left.push((channel, step_id));
            continue;
        }
        for entry in entries {
            if catalog.add_channel_entry(&entry).await? {
                adopted.channel_entries += 1;
            }
        }
    }
    Ok(adopted)
}
