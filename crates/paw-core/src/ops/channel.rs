//! Channels in use: set, roll back, list, resolve. A channel belongs to one line of images (a
//! workflow name, and variant) and points one of its steps at one of its images; with an SSM
//! parameter, every change is published there too.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, ChannelEntry, ImageRecord, ImageStatus, Line, check_channel_name, now_create_at};
use crate::error::{Error, ErrorKind, Result};
use crate::ssm::Ssm;

/// How often `set` tries again when another paw set the same channel at the same moment.
const ATTEMPTS: usize = 5;

/// Points the channel at the record's image; the SSM parameter, when given or remembered from
/// the channel's last entry, is published.
pub async fn set(
    catalog: &dyn Catalog,
    ssm: &dyn Ssm,
    line: &Line,
    channel: &str,
    record: &ImageRecord,
    ssm_parameter: Option<String>,
) -> Result<ChannelEntry> {
    check_channel_name(channel)?;
    usable(record, Some(channel))?;
    if !line.holds(record) {
        let theirs = record.line().map_or("no workflow name (older than names)".to_string(), |line| line.to_string());
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "{} (workflow {}) belongs to {theirs}, not to {line}, whose channel this is",
                record.ami_id, record.workflow_id
            ),
        )
        .help(match record.line() {
            Some(_) => {
                "set the channel from that workflow's folder (or with its --name), or pick one of this line's images"
            }
            None => "assign old records to their workflow name first: `paw catalog adopt --workflow-id ID`",
        }));
    }
    let mut tried: Option<ChannelEntry> = None;
    for _ in 0..ATTEMPTS {
        let history = catalog.channel_history(line, channel, &record.step_id).await?;
        // The entry last tried is there: it was written, and only the answer was lost.
        if let Some(entry) = tried.take().filter(|tried| history.contains(tried)) {
            publish(ssm, &entry).await?;
            return Ok(entry);
        }
        let entry = ChannelEntry {
            channel: channel.to_string(),
            step_id: record.step_id.clone(),
            seq: history.first().map_or(1, |newest| newest.seq + 1),
            ami_id: record.ami_id.clone(),
            workflow_id: record.workflow_id.clone(),
            set_at: now_create_at(),
            ssm_parameter: ssm_parameter
                .clone()
                .or_else(|| history.first().and_then(|newest| newest.ssm_parameter.clone())),
            rolled_back: false,
            workflow_name: Some(line.name.clone()),
            variant: line.variant.clone(),
        };
        if catalog.add_channel_entry(&entry).await? {
            publish(ssm, &entry).await?;
            return Ok(entry);
        }
        tried = Some(entry);
    }
    Err(Error::new(ErrorKind::Catalog, format!("channel {channel} kept changing while paw set it"))
        .help("another paw sets it at the same time; try again"))
}

/// Moves the channel back to its entry before the current one; returns (from, to).
pub async fn rollback(
    catalog: &dyn Catalog,
    ssm: &dyn Ssm,
    line: &Line,
    channel: &str,
    step_id: &str,
) -> Result<(ChannelEntry, ChannelEntry)> {
    check_channel_name(channel)?;
    let history = catalog.channel_history(line, channel, step_id).await?;
    let mut live = history.iter().filter(|entry| !entry.rolled_back);
    let Some(current) = live.next() else {
        return Err(unknown_channel(line, channel, step_id));
    };
    let Some(previous) = live.next() else {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("channel {channel} of step \"{step_id}\" has no entry before {}", current.ami_id),
        )
        .help(format!("`paw channel history {channel} {step_id}` shows its entries")));
    };
    let target = catalog.get(&previous.workflow_id, step_id).await?.filter(|record| record.ami_id == previous.ami_id);
    match target {
        Some(record) => usable(&record, Some(channel))?,
        None => {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("the previous image of channel {channel}, {}, is no longer in the catalog", previous.ami_id),
            )
            .help(format!(
                "set the channel to an image instead: `paw channel set {channel} {step_id} --workflow-id ID`"
            )));
        }
    }
    let mut rolled_back = current.clone();
    rolled_back.rolled_back = true;
    catalog.update_channel_entry(&rolled_back).await?;
    let mut published = previous.clone();
    published.ssm_parameter = previous.ssm_parameter.clone().or_else(|| current.ssm_parameter.clone());
    publish(ssm, &published).await?;
    Ok((rolled_back, previous.clone()))
}

/// Every channel's current entry per step, of `line`, or of every line (and of none, for entries
/// older than names) when it is None; by line, channel, then step.
pub async fn current_entries(catalog: &dyn Catalog, line: Option<&Line>) -> Result<Vec<ChannelEntry>> {
    let mut by_pointer: BTreeMap<(Option<Line>, String, String), Vec<ChannelEntry>> = BTreeMap::new();
    for entry in catalog.channel_entries().await? {
        if line.is_some_and(|line| entry.line().as_ref() != Some(line)) {
            continue;
        }
        by_pointer.entry((entry.line(), entry.channel.clone(), entry.step_id.clone())).or_default().push(entry);
    }
    Ok(by_pointer
        .into_values()
        .filter_map(|mut history| {
            history.sort_by_key(|entry| std::cmp::Reverse(entry.seq));
            ChannelEntry::current(&history).cloned()
        })
        .collect())
}

/// The record a channel points at for a step; an error when there is none, or it is not usable.
pub async fn resolve(catalog: &dyn Catalog, line: &Line, channel: &str, step_id: &str) -> Result<ImageRecord> {
    check_channel_name(channel)?;
    let history = catalog.channel_history(line, channel, step_id).await?;
    let current = ChannelEntry::current(&history).ok_or_else(|| unknown_channel(line, channel, step_id))?;
    let record =
        catalog.get(&current.workflow_id, step_id).await?.filter(|record| record.ami_id == current.ami_id).ok_or_else(
            || {
                Error::new(
                    ErrorKind::Catalog,
                    format!("channel {channel} points at {}, which is no longer in the catalog", current.ami_id),
                )
            },
        )?;
    usable(&record, Some(channel))?;
    Ok(record)
}

/// The newest available image of a step of the line, in any of its workflows.
pub async fn newest_available(catalog: &dyn Catalog, line: &Line, step_id: &str) -> Result<ImageRecord> {
    let records = catalog.list_line(line, step_id).await?;
    records.into_iter().find(|record| record.status == ImageStatus::Available).ok_or_else(|| {
        Error::new(ErrorKind::Usage, format!("step \"{step_id}\" of {line} has no available image in {}", catalog.uri()))
            .help("`paw images list --step STEP` shows its images; `paw build` makes one; records made before workflow names need `paw catalog adopt`")
    })
}

/// Only an available image may be pointed at, or resolved (through `channel`, when one).
pub fn usable(record: &ImageRecord, channel: Option<&str>) -> Result<()> {
    match record.status {
        ImageStatus::Available => Ok(()),
        ImageStatus::Revoked => Err(Error::new(
            ErrorKind::Usage,
            format!(
                "{} of step \"{}\" (workflow {}{}) is revoked: {}",
                record.ami_id,
                record.step_id,
                record.workflow_id,
                channel.map(|channel| format!(", channel {channel}")).unwrap_or_default(),
                record.revoked_reason.as_deref().unwrap_or("no reason given")
            ),
        )
        .help(match channel {
            Some(channel) => format!(
                "point the channel at another image (`paw channel set {channel} {0} --workflow-id ID`, or `paw channel \
                 rollback {channel} {0}`), or restore this one with `paw images restore {0}`",
                record.step_id
            ),
            None => format!(
                "use another image of the step, or restore this one with `paw images restore {}`",
                record.step_id
            ),
        })),
        ImageStatus::Deregistered => Err(Error::new(
            ErrorKind::Usage,
            format!("{} of step \"{}\" is deregistered", record.ami_id, record.step_id),
        )
        .help("point the channel at an available image")),
    }
}

fn unknown_channel(line: &Line, channel: &str, step_id: &str) -> Error {
    Error::new(ErrorKind::Usage, format!("{line} has no channel {channel} for step \"{step_id}\""))
        .help(format!("`paw channel list` shows the channels; `paw channel set {channel} {step_id}` makes this one"))
}

async fn publish(ssm: &dyn Ssm, entry: &ChannelEntry) -> Result<()> {
    match &entry.ssm_parameter {
        Some(name) => ssm.put_image_parameter(name, &entry.ami_id).await,
        None => Ok(()),
    }
}
