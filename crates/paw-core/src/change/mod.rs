//! Every change to AWS and the catalog outside a build, planned whole, then applied.
//!
//! A command reads what it decides from (an inventory, in batched reads), then decides a [`Plan`]:
//! typed [`Action`]s and the [`Refusal`]s that stop it. Deciding is pure, so it is unit-tested
//! directly. The plan is shown (`--dry-run`, `--json`), then [`Executor::apply`] carries it out:
//! it refuses the whole plan before the first action when anything stops it, so a refusal
//! changes nothing. Each action is idempotent and leaves the catalog telling the truth about what
//! it did (a copy deregistered is a copy the record no longer lists), so a plan that stopped partway
//! (an error, a kill, an answer lost) is finished by running the command again: it plans from what
//! the last run left, and an action already done is done again as a no-op.

use serde::Serialize;

use crate::catalog::{Catalog, ChannelAction, ChannelEntry, ImageStatus, Line, append_entry, now_create_at};
use crate::ec2::{Ec2, Place, ec2_in};
use crate::error::{Error, ErrorKind, Result};
use crate::ssm::Ssm;

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

/// Why a plan may not be applied, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub reason: String,
    pub help: String,
}

/// A change decided whole: its actions, in the order they are applied, and what refuses it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub refusals: Vec<Refusal>,
}

impl Plan {
    pub fn refuse(&mut self, reason: impl Into<String>, help: impl Into<String>) {
        self.refusals.push(Refusal { reason: reason.into(), help: help.into() });
    }

    /// The refusals as one error (each reason, each help), or Ok when nothing refuses the plan.
    pub fn check(&self) -> Result<()> {
        let Some(first) = self.refusals.first() else { return Ok(()) };
        let mut helps: Vec<&str> = Vec::new();
        for refusal in &self.refusals {
            if !helps.contains(&refusal.help.as_str()) {
                helps.push(&refusal.help);
            }
        }
        let err = match self.refusals.len() {
            1 => Error::new(ErrorKind::Usage, format!("{}; nothing was changed", first.reason)),
            count => Error::new(ErrorKind::Usage, format!("{count} things refuse this change; nothing was changed"))
                .details(self.refusals.iter().map(|refusal| refusal.reason.as_str()).collect::<Vec<_>>().join("\n")),
        };
        Err(err.help(helps.join("; ")))
    }
}

/// What the plan changes: the catalog, and EC2 from the home region (the record's) to any
/// region and account (`ec2_in`).
pub struct Executor<'a> {
    pub catalog: &'a dyn Catalog,
    pub ec2: &'a dyn Ec2,
    pub region: &'a str,
    /// Who applies it: `user@host`, kept in the history entries it writes.
    pub by: &'a str,
    /// Parameter Store, for plans that publish a channel (`PutParameter`).
    pub ssm: Option<&'a dyn Ssm>,
}

impl Executor<'_> {
    /// Checks the whole plan, then carries out each action in order; returns the actions done.
    /// An action that fails stops the plan: the error says which, and how many were done.
    pub async fn apply(&self, plan: &Plan) -> Result<Vec<Action>> {
        plan.check()?;
        for (done, action) in plan.actions.iter().enumerate() {
            if let Err(err) = self.carry_out(action).await {
                let (verb, place, what) = action.describe();
                return Err(Error {
                    message: format!("{verb} {what} in {place}: {}", err.message),
                    help: Some(format!(
                        "{done} of {} actions were done, and the catalog says so; fix what the error says and \
                         run the command again: it plans from what is left",
                        plan.actions.len()
                    )),
                    ..err
                });
            }
        }
        Ok(plan.actions.clone())
    }

    async fn carry_out(&self, action: &Action) -> Result<()> {
        match action {
            Action::Unprotect { place, ami_id } => self.at(place).set_deregistration_protection(ami_id, false).await,
            Action::Deregister { place, ami_id, snapshots } => self.at(place).deregister_image(ami_id, snapshots).await,
            Action::ForgetCopy { workflow_id, step_id, place } => {
                let Some(record) = self.catalog.get(workflow_id, step_id).await? else { return Ok(()) };
                let mut copies = record.copies.clone();
                if copies.remove(&place.key()).is_some() {
                    self.catalog.set_copies(workflow_id, step_id, &copies).await?;
                }
                Ok(())
            }
            Action::MarkDeregistered { workflow_id, step_id } => {
                let record = self.catalog.get(workflow_id, step_id).await?;
                if record.is_some_and(|record| record.status != ImageStatus::Deregistered) {
                    self.catalog.mark_deregistered(workflow_id, step_id).await?;
                }
                Ok(())
            }
            Action::Disable { place, ami_id } => self.at(place).disable_image(ami_id).await,
            Action::Enable { place, ami_id } => self.at(place).enable_image(ami_id).await,
            Action::Tag { place, ami_id, key, value: Some(value) } => {
                self.at(place).create_tags(std::slice::from_ref(ami_id), &[(key.clone(), value.clone())]).await
            }
            Action::Tag { place, ami_id, key, value: None } => {
                self.at(place).delete_tags(std::slice::from_ref(ami_id), &[key.as_str()]).await
            }
            Action::SetStatus { workflow_id, step_id, status, reason } => {
                let Some(record) = self.catalog.get(workflow_id, step_id).await? else { return Ok(()) };
                if record.status == *status && record.revoked_reason == *reason {
                    return Ok(());
                }
                let at = now_create_at();
                let revocation = reason.as_deref().map(|reason| (reason, at.as_str()));
                self.catalog.set_status(workflow_id, step_id, *status, revocation).await
            }
            Action::PointChannel(ChannelMove {
                line,
                channel,
                step_id,
                ami_id,
                workflow_id,
                kind,
                ssm_parameter,
                reason,
            }) => {
                let make = |history: &[ChannelEntry]| ChannelEntry {
                    ami_id: ami_id.clone(),
                    workflow_id: workflow_id.clone(),
                    ssm_parameter: ssm_parameter.clone(),
                    ..ChannelEntry::next(line, channel, step_id, *kind, (self.by, reason.as_deref()), history)
                };
                append_entry(self.catalog, line, channel, step_id, make).await.map(|_| ())
            }
            Action::PutParameter { place, name, ami_id } => {
                let Some(ssm) = self.ssm else {
                    return Err(Error::bug("a plan that publishes an SSM parameter was applied without SSM"));
                };
                ssm.at(place).put_image_parameter(name, ami_id).await.map_err(|err| err.in_region(&place.to_string()))
            }
            Action::Protect { place, ami_id } => self.at(place).set_deregistration_protection(ami_id, true).await,
            Action::ClearChannel { line, channel, step_id, ami_id, reason } => {
                let history = self.catalog.channel_history(line, channel, step_id).await?;
                let cleared = |entry: &ChannelEntry| entry.action == ChannelAction::Deleted && entry.ami_id == *ami_id;
                if ChannelEntry::current(&history).is_some_and(cleared) {
                    return Ok(());
                }
                let make = |history: &[ChannelEntry]| ChannelEntry {
                    ami_id: ami_id.clone(),
                    workflow_id: ChannelEntry::current(history)
                        .map(|entry| entry.workflow_id.clone())
                        .unwrap_or_default(),
                    ssm_parameter: history.first().and_then(|newest| newest.ssm_parameter.clone()),
                    ..ChannelEntry::next(
                        line,
                        channel,
                        step_id,
                        ChannelAction::Deleted,
                        (self.by, Some(reason)),
                        history,
                    )
                };
                append_entry(self.catalog, line, channel, step_id, make).await.map(|_| ())
            }
        }
    }

    fn at(&self, place: &Place) -> crate::ec2::InRegion<'_> {
        ec2_in(self.ec2, self.region, &place.key())
    }
}
