//! `paw channel set|list|history|rollback` and `paw resolve`.

use paw_core::catalog::{ChannelAction, ChannelEntry, ImageRecord};
use paw_core::change::distribute;
use paw_core::change::{Executor, Plan};
use paw_core::config::DistributionTarget;
use paw_core::ec2::Place;
use paw_core::ops::channel::{self, Change, Stores};
use paw_core::ops::verify;
use paw_core::{Error, ErrorKind};
use serde_json::{Value, json};

use super::images::find_record;
use crate::context::Context;
use crate::output::{Planned, Report, table};

/// What `channel set` and `rollback` did: the entry written, and the one moved from.
pub enum Moved {
    Set(Box<ChannelEntry>),
    RolledBack { from: Box<ChannelEntry>, to: Box<ChannelEntry> },
}

/// `change` as the command line gives it: who makes it is found here.
pub async fn set(
    cx: &Context,
    name: &str,
    step: &str,
    ssm_parameter: Option<String>,
    change: Change,
    dry_run: bool,
) -> paw_core::Result<Box<dyn Report>> {
    let record = find_record(cx, step).await?;
    let ec2 = cx.ec2(Some(&record.region)).await?;
    if let Some(key) = cx.required_key().await? {
        let refused = format!("channel {name} is not set");
        verify::require_verified(cx.catalog().await?, &ec2, &record.region, &record, &key, &refused).await?;
    }
    let change = Change { by: cx.caller().await?, ..change };
    let targets = distribution_of(cx, step)?;
    let stores = Stores { catalog: cx.catalog().await?, ec2: &ec2, distribution: &targets };
    // The folder's step says whether the image must have passed tests.
    let tested = match cx.workflow()?.step(step) {
        Some(step) => !step.image_tests()?.is_empty(),
        None => false,
    };
    let plan = channel::plan_set(stores, &cx.line()?, name, &record, ssm_parameter, &change, tested).await?;
    if dry_run {
        return Ok(Box::new(Planned(plan.actions)));
    }
    Ok(Box::new(Moved::Set(Box::new(apply(cx, &ec2, &record.region, &change, &plan, name, step).await?))))
}

/// Applies a channel's plan; returns the entry it wrote (the channel's current one).
async fn apply(
    cx: &Context,
    ec2: &dyn paw_core::ec2::Ec2,
    region: &str,
    change: &Change,
    plan: &Plan,
    name: &str,
    step: &str,
) -> paw_core::Result<ChannelEntry> {
    let (catalog, ssm) = (cx.catalog().await?, cx.ssm().await?);
    let executor = Executor::new(catalog, ec2, region, &change.by).with_ssm(&ssm);
    executor.notifying(cx.notifier().await?).apply(plan).await?;
    let history = catalog.channel_history(&cx.line()?, name, step).await?;
    ChannelEntry::current(&history).cloned().ok_or_else(|| Error::bug("a channel just set has no entry"))
}

impl Report for Moved {
    fn json(&self) -> Value {
        match self {
            Moved::Set(entry) => json!(entry),
            Moved::RolledBack { from, to } => json!({"from": from, "to": to}),
        }
    }

    fn text(&self) -> String {
        let entry = match self {
            Moved::RolledBack { from, to } => {
                return format!(
                    "channel {} of step {}: {} → {} (workflow {})",
                    to.channel, to.step_id, from.ami_id, to.ami_id, to.workflow_id
                );
            }
            Moved::Set(entry) => entry,
        };
        let mut text = format!(
            "channel {} of step {} → {} (workflow {})",
            entry.channel, entry.step_id, entry.ami_id, entry.workflow_id
        );
        if let Some(name) = &entry.ssm_parameter {
            text.push_str(&format!("; published to SSM parameter {name}"));
        }
        text
    }
}

pub struct Entries {
    entries: Vec<ChannelEntry>,
    /// A history (one channel and step, with the current entry marked), or a list of channels.
    history: bool,
}

pub async fn list(cx: &Context) -> paw_core::Result<Entries> {
    let line = cx.line()?;
    Ok(Entries { entries: paw_core::catalog::current_entries(cx.catalog().await?, Some(&line)).await?, history: false })
}

pub async fn history(cx: &Context, name: &str, step: &str) -> paw_core::Result<Entries> {
    paw_core::catalog::check_channel_name(name)?;
    let line = cx.line()?;
    Ok(Entries { entries: cx.catalog().await?.channel_history(&line, name, step).await?, history: true })
}

impl Report for Entries {
    fn json(&self) -> Value {
        json!(self.entries)
    }

    fn text(&self) -> String {
        if self.entries.is_empty() {
            return "no channel yet: `paw channel set CHANNEL STEP` makes one".into();
        }
        let current = ChannelEntry::current(&self.entries).map(|entry| entry.seq);
        let dash = |text: &Option<String>| text.clone().unwrap_or_else(|| "-".into());
        let rows = self
            .entries
            .iter()
            .map(|entry| {
                let mut row = vec![entry.channel.clone(), entry.step_id.clone()];
                if self.history {
                    let action = match (entry.action, entry.rolled_back) {
                        (_, true) => "set (undone)",
                        (ChannelAction::Set, false) => "set",
                        (ChannelAction::Rollback, false) => "rollback",
                        (ChannelAction::Override, false) => "override",
                        (ChannelAction::Deleted, false) => "image deleted",
                    };
                    row.push(action.to_string());
                }
                row.extend([
                    entry.ami_id.clone(),
                    entry.workflow_id.clone(),
                    entry.set_at.clone(),
                    dash(&entry.set_by),
                    dash(&entry.ssm_parameter),
                ]);
                if self.history {
                    row.push(dash(&entry.reason));
                    row.push(if Some(entry.seq) == current { "current" } else { "earlier" }.to_string());
                }
                row
            })
            .collect();
        let header: &[&str] = if self.history {
            &["CHANNEL", "STEP", "ACTION", "AMI", "WORKFLOW", "AT (UTC)", "BY", "SSM PARAMETER", "WHY", "STATE"]
        } else {
            &["CHANNEL", "STEP", "AMI", "WORKFLOW", "SET AT (UTC)", "BY", "SSM PARAMETER"]
        };
        table(header, rows)
    }
}

/// The distribution targets of the folder's step, whose parameters its channels are published to.
fn distribution_of<'a>(cx: &'a Context, step: &str) -> paw_core::Result<Vec<&'a DistributionTarget>> {
    let workflow = cx.workflow()?;
    Ok(workflow.step(step).map(|step| distribute::targets_of(workflow, step)).unwrap_or_default())
}

pub async fn rollback(
    cx: &Context,
    name: &str,
    step: &str,
    reason: Option<String>,
    dry_run: bool,
) -> paw_core::Result<Box<dyn Report>> {
    let ec2 = cx.ec2(None).await?;
    let region = cx.region().await?;
    let change = Change { by: cx.caller().await?, reason, force: false };
    let targets = distribution_of(cx, step)?;
    let stores = Stores { catalog: cx.catalog().await?, ec2: &ec2, distribution: &targets };
    let (from, plan) = channel::plan_rollback(stores, &cx.line()?, name, step, &change, region).await?;
    if dry_run {
        return Ok(Box::new(Planned(plan.actions)));
    }
    let to = apply(cx, &ec2, region, &change, &plan, name, step).await?;
    Ok(Box::new(Moved::RolledBack { from: Box::new(from), to: Box::new(to) }))
}

pub struct Resolved {
    record: ImageRecord,
    channel: Option<String>,
    /// The AMI in the region (and account) asked for: the record's own, or its copy there.
    region: String,
    account: Option<String>,
    ami_id: String,
}

pub async fn resolve(
    cx: &Context,
    step: &str,
    name: Option<String>,
    region: Option<&str>,
    account: Option<&str>,
) -> paw_core::Result<Resolved> {
    let catalog = cx.catalog().await?;
    let record = match (&name, cx.workflow_id_given()) {
        (Some(name), _) => channel::resolve(catalog, &cx.line()?, name, step).await?,
        (None, Some(_)) => {
            let record = find_record(cx, step).await?;
            channel::usable(&record, None)?;
            record
        }
        (None, None) => channel::newest_available(catalog, &cx.line()?, step).await?,
    };
    let place = Place { account: account.map(str::to_string), region: region.unwrap_or(&record.region).to_string() };
    let ami_id = record.every_copy().into_iter().find(|(key, _)| *key == place.key()).map(|(_, id)| id);
    let ami_id = ami_id.ok_or_else(|| {
        let help = match &place.account {
            Some(_) => {
                format!("distribute it there: `paw distribute {step}` (the distribution block names the places)")
            }
            None => format!("copy it there: `paw images copy {step} --to-region {}`", place.region),
        };
        Error::new(ErrorKind::Usage, format!("{} of step \"{step}\" has no copy in {place}", record.ami_id)).help(help)
    })?;
    Ok(Resolved { record, channel: name, region: place.region, account: place.account, ami_id })
}

impl Report for Resolved {
    fn json(&self) -> Value {
        json!({
            "ami_id": self.ami_id,
            "step_id": self.record.step_id,
            "workflow_id": self.record.workflow_id,
            "region": self.region,
            "account": self.account,
            "channel": self.channel,
        })
    }

    fn text(&self) -> String {
        self.ami_id.clone()
    }
}
