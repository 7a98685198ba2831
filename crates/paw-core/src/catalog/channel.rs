//! Channels: named pointers (`prod`, `staging`) from a step to one of its images, with their
//! history, an append-only audit log: each `paw channel set` and each rollback adds an entry, with
//! when, who and why. The catalog keeps them beside the records.

use serde::{Deserialize, Serialize};

use super::Line;
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
}

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
            }
        }
        stack
    }
}
