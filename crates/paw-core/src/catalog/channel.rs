//! Channels: named pointers (`prod`, `staging`) from a step to one of its images, with their
//! history, an append-only audit log: each `paw channel set` and each rollback adds an entry, with
//! when, who and why. The catalog keeps them beside the records.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::{Catalog, Channels, Line, now_create_at};
use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEntry {
    pub channel: String,
    pub step_id: String,
    /// 1, 2, ... per channel and step: the order of the history.
    pub seq: u64,
    pub ami_id: String,
    pub workflow_id: String,
    /// The catalog's `create_at` format.
    pub set_at: String,
    /// The SSM parameter the channel is published to, for this step.
    #[serde(default)]
    pub ssm_parameter: Option<String>,
    /// Set by an older paw on the entry a rollback undid (it added none); new rollbacks are
    /// entries of their own.
    #[serde(default)]
    pub rolled_back: bool,
    #[serde(default)]
    pub action: ChannelAction,
    /// Who: `user@host`, and the AWS caller's ARN where AWS answered.
    #[serde(default)]
    pub set_by: Option<String>,
    /// Why, when given (`--reason`).
    #[serde(default)]
    pub reason: Option<String>,
    /// The line whose channel it is (`Line`); None in entries made before names existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// What an entry did to its channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelAction {
    /// Pointed the channel at an image.
    #[default]
    Set,
    /// Pointed it back at the image before the current one.
    Rollback,
    /// Pointed it at an image the lifecycle policy retired (deprecated), or one of a step with
    /// tests that has not passed them, on purpose (`--force`, with a reason).
    Override,
    /// Its image was deleted on purpose (`paw images delete --force --reason`): the channel points
    /// at nothing until it is set again.
    Deleted,
}

/// How often `append_entry` tries again when another paw changed the same channel at the same moment.
const ATTEMPTS: usize = 5;

/// Channel names are short words: letters, digits, `.`, `_`, `-` (they are part of catalog keys).
pub fn check_channel_name(channel: &str) -> Result<()> {
    let valid = !channel.is_empty()
        && channel.len() <= 64
        && channel.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        return Ok(());
    }
    Err(Error::new(ErrorKind::Usage, format!("\"{channel}\" is not a channel name"))
        .help("use 1 to 64 letters, digits, '.', '_' or '-', e.g. prod or staging"))
}

impl ChannelEntry {
    /// An entry of the channel after `history` (newest first): the next number, now, `(by, why)`;
    /// the image is the caller's to fill in.
    pub fn next(
        line: &Line,
        channel: &str,
        step_id: &str,
        action: ChannelAction,
        (by, reason): (&str, Option<&str>),
        history: &[ChannelEntry],
    ) -> ChannelEntry {
        ChannelEntry {
            channel: channel.to_string(),
            step_id: step_id.to_string(),
            seq: history.first().map_or(1, |newest| newest.seq + 1),
            ami_id: String::new(),
            workflow_id: String::new(),
            set_at: now_create_at(),
            ssm_parameter: None,
            rolled_back: false,
            action,
            set_by: Some(by.to_string()).filter(|by| !by.is_empty()),
            reason: reason.map(str::to_string),
            workflow_name: Some(line.name.clone()),
            variant: line.variant.clone(),
        }
    }

    pub fn line(&self) -> Option<Line> {
        Line::named(self.workflow_name.as_deref(), self.variant.as_deref())
    }

    /// How catalogs key its channel: `@line#channel#step` (`channel#step` before names existed;
    /// no channel name holds '@').
    pub fn pointer(line: Option<&Line>, channel: &str, step_id: &str) -> String {
        match line {
            Some(line) => format!("@{line}#{channel}#{step_id}"),
            None => format!("{channel}#{step_id}"),
        }
    }

    /// The entry the channel points at now: the newest that was not rolled back. `history` is
    /// newest first.
    pub fn current(history: &[ChannelEntry]) -> Option<&ChannelEntry> {
        history.iter().find(|entry| !entry.rolled_back)
    }

    /// The images the channel can go back through, oldest first, the current one last: replaying
    /// `history` (newest first), a set pushes and a rollback pops.
    pub fn stack(history: &[ChannelEntry]) -> Vec<&ChannelEntry> {
        let mut stack = Vec::new();
        for entry in history.iter().rev().filter(|entry| !entry.rolled_back) {
            match entry.action {
                ChannelAction::Set | ChannelAction::Override => stack.push(entry),
                ChannelAction::Rollback => {
                    stack.pop();
                }
                // Nothing before a deleted image is gone back to: the channel starts again.
                ChannelAction::Deleted => stack.clear(),
            }
        }
        stack
    }
}

/// Adds the entry `make` makes from the channel's history, once, even when another paw changes the
/// channel at the same moment or an answer is lost; returns it and the entry that was current.
pub async fn append_entry(
    catalog: &dyn Channels,
    line: &Line,
    channel: &str,
    step_id: &str,
    make: impl Fn(&[ChannelEntry]) -> ChannelEntry,
) -> Result<(ChannelEntry, Option<ChannelEntry>)> {
    let mut tried: Option<ChannelEntry> = None;
    for _ in 0..ATTEMPTS {
        let history = catalog.channel_history(line, channel, step_id).await?;
        // The entry last tried is there: it was written, and only the answer was lost.
        if let Some(entry) = tried.take().filter(|tried| history.contains(tried)) {
            let before = history.iter().skip_while(|other| **other != entry).nth(1).cloned();
            return Ok((entry, before));
        }
        let entry = make(&history);
        if catalog.add_channel_entry(&entry).await? {
            return Ok((entry, ChannelEntry::current(&history).cloned()));
        }
        tried = Some(entry);
    }
    Err(Error::new(ErrorKind::Catalog, format!("channel {channel} kept changing while paw set it"))
        .help("another paw sets it at the same time; try again"))
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
