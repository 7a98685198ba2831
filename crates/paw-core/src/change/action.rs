//! What a plan is made of: typed actions, each on one thing in one place.

use serde::Serialize;

use crate::catalog::{ChannelAction, ImageStatus, Line};
use crate::ec2::Place;
use crate::notify::{Notice, NoticeKind};

/// One change, to one thing in one place. In JSON `{"action": "deregister", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Lift EC2's deregistration protection of an image (a channel's, or set by hand).
    Unprotect {
        place: Place,
        ami_id: String,
    },
    /// DeregisterImage, then DeleteSnapshot of each of `snapshots`.
    Deregister {
        place: Place,
        ami_id: String,
        snapshots: Vec<String>,
    },
    /// The record no longer lists its copy in `place`: the copy is gone.
    ForgetCopy {
        workflow_id: String,
        step_id: String,
        place: Place,
    },
    /// The record says `deregistered`: its image is gone in every place.
    MarkDeregistered {
        workflow_id: String,
        step_id: String,
    },
    /// DisableImage: nothing launches from it until enabled.
    Disable {
        place: Place,
        ami_id: String,
    },
    Enable {
        place: Place,
        ami_id: String,
    },
    /// A tag set on the image (CreateTags), or with no value removed (DeleteTags).
    Tag {
        place: Place,
        ami_id: String,
        key: String,
        value: Option<String>,
    },
    /// The record's status; a revocation keeps its reason, with the time it is applied.
    SetStatus {
        workflow_id: String,
        step_id: String,
        status: ImageStatus,
        reason: Option<String>,
    },
    /// The channel's history gets an entry pointing it at an image.
    PointChannel(ChannelMove),
    /// An SSM parameter (DataType aws:ec2:image) set to the image id, where the copy is.
    PutParameter {
        place: Place,
        name: String,
        ami_id: String,
    },
    /// EC2's deregistration protection on: a channel's image.
    Protect {
        place: Place,
        ami_id: String,
    },
    /// CopyImage to another region or account, the copy recorded, tagged and waited for.
    Copy(CopyOrder),
    /// Launch permission on the image, and create-volume permission on its snapshots for the
    /// accounts (or with `remove`, both withdrawn).
    Share {
        place: Place,
        ami_id: String,
        accounts: Vec<String>,
        organization_arns: Vec<String>,
        remove: bool,
    },
    /// The record keeps a retirement forced while the image was in use (or who used it was not
    /// known): the action, the reason and the usage; who and when are taken when it is written.
    NoteOverride {
        workflow_id: String,
        step_id: String,
        retirement: String,
        reason: String,
        usage: String,
    },
    /// The channel's history gets an entry saying its image was deleted, by whom and why: it
    /// points at nothing until set again.
    ClearChannel {
        line: Line,
        channel: String,
        step_id: String,
        ami_id: String,
        reason: String,
    },
}

impl Action {
    /// What it does, in a few words, as the plan's table shows it: (verb, where, what).
    pub fn describe(&self) -> (&'static str, String, String) {
        match self {
            Action::Unprotect { place, ami_id } => ("unprotect", place.to_string(), ami_id.clone()),
            Action::Deregister { place, ami_id, snapshots } if snapshots.is_empty() => {
                ("deregister", place.to_string(), ami_id.clone())
            }
            Action::Deregister { place, ami_id, snapshots } => {
                ("deregister", place.to_string(), format!("{ami_id} and {}", snapshots.join(", ")))
            }
            Action::ForgetCopy { workflow_id, step_id, place } => {
                ("forget copy", "catalog".into(), format!("{place} of step {step_id} of workflow {workflow_id}"))
            }
            Action::MarkDeregistered { workflow_id, step_id } => {
                ("mark deregistered", "catalog".into(), format!("step {step_id} of workflow {workflow_id}"))
            }
            Action::Disable { place, ami_id } => ("disable", place.to_string(), ami_id.clone()),
            Action::Enable { place, ami_id } => ("enable", place.to_string(), ami_id.clone()),
            Action::Tag { place, ami_id, key, value: Some(value) } => {
                ("tag", place.to_string(), format!("{ami_id} {key}={value}"))
            }
            Action::Tag { place, ami_id, key, value: None } => ("untag", place.to_string(), format!("{ami_id} {key}")),
            Action::SetStatus { workflow_id, step_id, status, .. } => (
                "set status",
                "catalog".into(),
                format!("step {step_id} of workflow {workflow_id}: {}", status.as_str()),
            ),
            Action::PointChannel(ChannelMove { line, channel, step_id, ami_id, kind, .. }) => {
                let verb = match kind {
                    ChannelAction::Rollback => "roll back channel",
                    ChannelAction::Override => "override channel",
                    _ => "set channel",
                };
                (verb, "catalog".into(), format!("{channel} of step {step_id} ({line}) to {ami_id}"))
            }
            Action::PutParameter { place, name, ami_id } => {
                ("put parameter", place.to_string(), format!("{name} = {ami_id}"))
            }
            Action::Protect { place, ami_id } => ("protect", place.to_string(), ami_id.clone()),
            Action::Copy(CopyOrder { place, ami_id, unfinished: Some(copy), .. }) => {
                ("finish copy", place.to_string(), format!("{copy}, copied from {ami_id} by a run that stopped"))
            }
            Action::Copy(CopyOrder { place, ami_id, kms_key_id, share_with, .. }) => {
                let mut what = ami_id.clone();
                if let Some(key) = kms_key_id {
                    what.push_str(&format!(", encrypted with {key}"));
                }
                if !share_with.is_empty() {
                    what.push_str(&format!(", then shared with {}", share_with.join(", ")));
                }
                ("copy", place.to_string(), what)
            }
            Action::Share { place, ami_id, accounts, organization_arns, remove } => {
                let whom = accounts.iter().chain(organization_arns).cloned().collect::<Vec<_>>().join(", ");
                match remove {
                    true => ("unshare", place.to_string(), format!("{ami_id} from {whom}")),
                    false => ("share", place.to_string(), format!("{ami_id} with {whom}")),
                }
            }
            Action::NoteOverride { workflow_id, step_id, retirement, usage, .. } => (
                "note override",
                "catalog".into(),
                format!("step {step_id} of workflow {workflow_id}: {retirement} while {usage}"),
            ),
            Action::ClearChannel { line, channel, step_id, ami_id, .. } => {
                ("clear channel", "catalog".into(), format!("{channel} of step {step_id} ({line}), was {ami_id}"))
            }
        }
    }
}

/// A channel pointed at an image (set, override, rollback), by whom and why; the entry's number and
/// time are taken when it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelMove {
    pub line: Line,
    pub channel: String,
    pub step_id: String,
    pub ami_id: String,
    pub workflow_id: String,
    pub kind: ChannelAction,
    /// The channel's own SSM parameter, published with it.
    pub ssm_parameter: Option<String>,
    pub reason: Option<String>,
}

impl ChannelMove {
    /// Its notice (`paw.channel.moved`): the line's channel of the step now points at the image.
    pub fn notice(&self, region: &str) -> Notice {
        let ChannelMove { line, channel, step_id, ami_id, workflow_id, kind, reason, .. } = self;
        let fields = serde_json::json!({"channel": channel, "ami_id": ami_id, "action": kind, "reason": reason});
        let names = Some((line.name.as_str(), workflow_id.as_str()));
        let (step, variant) = (Some(step_id.as_str()), line.variant.as_deref());
        Notice::of_image(NoticeKind::ChannelMoved, "channel_moved", names, step, variant, region, fields)
    }
}

/// A copy of a recorded image made in another place: CopyImage there (for another account's
/// place, which may then copy it: shared with it first, see `copy::decide`), recorded on every
/// record of the image as soon as EC2 knows it, tagged as the original, deprecated with it,
/// waited for, and then shared with `share_with`. A copy that cannot be finished is deregistered
/// again and no longer recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyOrder {
    pub workflow_id: String,
    pub step_id: String,
    /// The original, in the executor's home region.
    pub ami_id: String,
    /// The copy's name: the original's (EC2 keeps a name unique where it is).
    pub name: String,
    pub place: Place,
    pub kms_key_id: Option<String>,
    /// A copy a run that stopped made there and did not finish: finished instead of copied again.
    pub unfinished: Option<String>,
    /// Accounts that launch the build account's copy there (a distribution target that shares).
    pub share_with: Vec<String>,
}
