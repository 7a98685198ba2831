//! Channels: named pointers (`prod`, `staging`) from a step to one of its images, with their
//! history. Each `paw channel set` adds an entry; a rollback marks the current entry rolled back,
//! so the one before it is current again. The catalog keeps them beside the records.

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
    #[serde(default)]
    pub rolled_back: bool,
    /// The line whose channel it is (`Line`); None in entries made before names existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
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
}
