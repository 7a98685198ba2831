//! A line of images: one workflow name (HCP Packer's bucket), and one variant of it when the
//! workflow has variants. Resolve, prune, channels, status and report stay within a line; only
//! reuse by fingerprint crosses lines (the same inputs make the same image).

use std::fmt;

use super::ImageRecord;
use crate::workflow::Workflow;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Line {
    pub name: String,
    pub variant: Option<String>,
}

impl Line {
    pub fn of(workflow: &Workflow) -> Line {
        Line { name: workflow.name.clone(), variant: workflow.variant.clone() }
    }

    /// The line a record or channel entry names; None for those made before lines existed, until
    /// `paw catalog adopt` assigns them one.
    pub fn named(name: Option<&str>, variant: Option<&str>) -> Option<Line> {
        name.map(|name| Line { name: name.to_string(), variant: variant.map(str::to_string) })
    }

    pub fn holds(&self, record: &ImageRecord) -> bool {
        record.workflow_name.as_deref() == Some(self.name.as_str()) && record.variant == self.variant
    }
}

/// `name`, or `name/variant`: how catalog keys and messages write it.
impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.variant {
            Some(variant) => write!(f, "{}/{variant}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// In JSON as messages write it: `name`, or `name/variant`.
impl serde::Serialize for Line {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
