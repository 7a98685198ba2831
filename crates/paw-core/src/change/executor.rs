//! The one executor of plans.

use std::time::Duration;

use super::{Action, ChannelMove, CopyOrder, Plan};
use crate::ami::PROVENANCE_TAG;
use crate::catalog::{Catalog, ChannelAction, ChannelEntry, ImageStatus, Override, append_entry, now_create_at};
use crate::ec2::{self, Ec2, Place, ec2_in};
use crate::error::{Error, ErrorKind, Result};
use crate::notify::{Notice, Notifier};
use crate::provenance::{self, Attester};
use crate::ssm::Ssm;

/// How long a copy may take to become available.
const COPY_WAIT: Duration = Duration::from_secs(3600);

/// What the plan changes: the catalog, and EC2 from the home region (the record's) to any
/// region and account (`ec2_in`).
pub struct Executor<'a> {
    pub(crate) catalog: &'a dyn Catalog,
    pub(crate) ec2: &'a dyn Ec2,
    pub(crate) region: &'a str,
    /// Who applies it: `user@host`, kept in the history entries it writes.
    by: &'a str,
    /// Parameter Store, for plans that publish a channel (`PutParameter`).
    ssm: Option<&'a dyn Ssm>,
    /// Told what a long action (a copy) is doing.
    progress: &'a (dyn Fn(&str) + Sync),
    /// Notes the channels moved and the images revoked and retired (`notify`).
    notifier: Option<&'a Notifier>,
    /// Writes each copy's statement, naming its original's (`provenance`).
    attester: Option<&'a Attester<'a>>,
}

fn quiet(_: &str) {}

impl<'a> Executor<'a> {
    pub fn new(catalog: &'a dyn Catalog, ec2: &'a dyn Ec2, region: &'a str, by: &'a str) -> Executor<'a> {
        Executor { catalog, ec2, region, by, ssm: None, progress: &quiet, notifier: None, attester: None }
    }

    /// Parameter Store too: for plans that publish a channel.
    pub fn with_ssm(self, ssm: &'a dyn Ssm) -> Executor<'a> {
        Executor { ssm: Some(ssm), ..self }
    }

    /// Tells `progress` what a long action is doing.
    pub fn telling(self, progress: &'a (dyn Fn(&str) + Sync)) -> Executor<'a> {
        Executor { progress, ..self }
    }

    /// Notes what people hear of (a channel moved, an image revoked or retired) on `notifier`.
    pub fn notifying(self, notifier: &'a Notifier) -> Executor<'a> {
        Executor { notifier: Some(notifier), ..self }
    }

    /// Gives each copy it makes a statement of its own, naming its original's.
    pub fn attesting(self, attester: &'a Attester<'a>) -> Executor<'a> {
        Executor { attester: Some(attester), ..self }
    }

    fn note(&self, notice: impl FnOnce() -> Notice) {
        if let Some(notifier) = self.notifier {
            notifier.note(notice());
        }
    }

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

    /// Checks the whole plan, then carries out every action, each on its own: one that fails
    /// does not stop the others (the places of a copy or a share are independent). Returns each
    /// action's outcome, in the plan's order.
    pub async fn apply_each(&self, plan: &Plan) -> Result<Vec<Result<()>>> {
        plan.check()?;
        let mut outcomes = Vec::new();
        for action in &plan.actions {
            outcomes.push(self.carry_out(action).await);
        }
        Ok(outcomes)
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
                let mut statements = record.copy_provenance.clone();
                if statements.remove(&place.key()).is_some() {
                    self.catalog.set_copy_provenance(workflow_id, step_id, &statements).await?;
                }
                Ok(())
            }
            Action::MarkDeregistered { workflow_id, step_id } => {
                let record = self.catalog.get(workflow_id, step_id).await?;
                if let Some(record) = record.filter(|record| record.status != ImageStatus::Deregistered) {
                    self.catalog.mark_deregistered(workflow_id, step_id).await?;
                    self.note(|| Notice::image_retired(&record, "deregistered"));
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
            Action::NoteOverride { workflow_id, step_id, retirement, reason, usage } => {
                let entry = Override {
                    at: now_create_at(),
                    by: self.by.to_string(),
                    action: retirement.clone(),
                    reason: reason.clone(),
                    usage: usage.clone(),
                };
                self.catalog.add_override(workflow_id, step_id, &entry).await
            }
            Action::SetStatus { workflow_id, step_id, status, reason } => {
                let Some(record) = self.catalog.get(workflow_id, step_id).await? else { return Ok(()) };
                if record.status == *status && record.revoked_reason == *reason {
                    return Ok(());
                }
                let at = now_create_at();
                let revocation = reason.as_deref().map(|reason| (reason, at.as_str()));
                self.catalog.set_status(workflow_id, step_id, *status, revocation).await?;
                match status {
                    ImageStatus::Revoked => self.note(|| Notice::image_revoked(&record, reason.as_deref())),
                    ImageStatus::Disabled => self.note(|| Notice::image_retired(&record, "disabled")),
                    _ => {}
                }
                Ok(())
            }
            Action::PointChannel(
                channel_move @ ChannelMove { line, channel, step_id, ami_id, workflow_id, kind, ssm_parameter, reason },
            ) => {
                let make = |history: &[ChannelEntry]| ChannelEntry {
                    ami_id: ami_id.clone(),
                    workflow_id: workflow_id.clone(),
                    ssm_parameter: ssm_parameter.clone(),
                    ..ChannelEntry::next(line, channel, step_id, *kind, (self.by, reason.as_deref()), history)
                };
                append_entry(self.catalog, line, channel, step_id, make).await?;
                self.note(|| channel_move.notice(self.region));
                Ok(())
            }
            Action::PutParameter { place, name, ami_id } => {
                let Some(ssm) = self.ssm else {
                    return Err(Error::bug("a plan that publishes an SSM parameter was applied without SSM"));
                };
                ssm.at(place).put_image_parameter(name, ami_id).await.map_err(|err| err.in_region(&place.to_string()))
            }
            Action::Copy(order) => self.copy(order).await,
            Action::Share { place, ami_id, accounts, organization_arns, remove } => {
                super::share::grant(&*self.at(place), ami_id, accounts, organization_arns, *remove).await
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

    async fn copy(&self, order: &CopyOrder) -> Result<()> {
        let CopyOrder { ami_id: original, place, .. } = order;
        let source = self.ec2.describe_image(original).await?.ok_or_else(|| {
            Error::new(ErrorKind::Aws, format!("{original}, the image copied, is no longer in EC2 ({})", self.region))
        })?;
        let destination = self.at(place);
        let ami_id = match &order.unfinished {
            Some(made) => {
                (self.progress)(&format!("{place}: {made}, copied by a run that stopped, is finished now"));
                made.clone()
            }
            None => {
                (self.progress)(&format!("{place}: copying {original}"));
                destination.copy_image(self.region, original, &order.name, order.kms_key_id.as_deref()).await?
            }
        };
        // Recorded before it is waited for: a paw stopped meanwhile leaves the copy known.
        self.record_copy(order, Some(&ami_id)).await?;
        (self.progress)(&format!("{place}: {original} copied as {ami_id}; waiting until it is available"));
        let finished = match finish_copy(&*destination, &ami_id, &source).await {
            Ok(copy) => self.attest_copy(order, &source, &copy).await,
            Err(err) => Err(err),
        };
        if let Err(err) = finished {
            // A copy that cannot be finished is deregistered again, and no longer recorded.
            let snapshots = destination.describe_image(&ami_id).await.ok().flatten().map(|copy| copy.snapshot_ids);
            let undone = match destination.deregister_image(&ami_id, &snapshots.unwrap_or_default()).await {
                Ok(()) => {
                    self.record_copy(order, None).await?;
                    "the copy was deregistered again".to_string()
                }
                Err(undo) => format!("the copy could not be deregistered ({undo}); it stays recorded"),
            };
            return Err(Error { message: format!("{}; {undone}", err.message), ..err });
        }
        (self.progress)(&format!("{place}: {ami_id} is available and tagged"));
        if !order.share_with.is_empty() {
            super::share::grant(&*destination, &ami_id, &order.share_with, &[], false).await?;
            (self.progress)(&format!("{place}: {ami_id} shared with {}", order.share_with.join(", ")));
        }
        Ok(())
    }

    /// Every record of the copied image lists its copy at the order's place (or, with None, no
    /// longer does, nor its statement).
    async fn record_copy(&self, order: &CopyOrder, ami_id: Option<&str>) -> Result<()> {
        let Some(record) = self.catalog.get(&order.workflow_id, &order.step_id).await? else { return Ok(()) };
        for same in self.catalog.records_of(&record).await? {
            let mut copies = same.copies.clone();
            match ami_id {
                Some(ami_id) => copies.insert(order.place.key(), ami_id.to_string()),
                None => copies.remove(&order.place.key()),
            };
            if copies != same.copies {
                self.catalog.set_copies(&same.workflow_id, &same.step_id, &copies).await?;
            }
            // A copy undone takes its statement with it.
            let mut statements = same.copy_provenance.clone();
            if ami_id.is_none() && statements.remove(&order.place.key()).is_some() {
                self.catalog.set_copy_provenance(&same.workflow_id, &same.step_id, &statements).await?;
            }
        }
        Ok(())
    }

    /// The copy's own statement, naming its original's, when the executor attests and the
    /// original has one: sealed, tagged on the copy and its snapshots, and kept with every record
    /// of the image.
    async fn attest_copy(&self, order: &CopyOrder, source: &ec2::Image, copy: &ec2::Image) -> Result<()> {
        let Some(attester) = self.attester else { return Ok(()) };
        let Some(record) = self.catalog.get(&order.workflow_id, &order.step_id).await? else { return Ok(()) };
        let Some(original_envelope) = &record.provenance else { return Ok(()) };
        let place = order.place.key();
        let envelope =
            provenance::seal_copy((copy, &order.place.region), (source, self.region), original_envelope, attester)
                .await?;
        provenance::tag_image(&*self.at(&order.place), copy, &envelope).await?;
        for same in self.catalog.records_of(&record).await? {
            let mut statements = same.copy_provenance.clone();
            statements.insert(place.clone(), envelope.clone());
            self.catalog.set_copy_provenance(&same.workflow_id, &same.step_id, &statements).await?;
        }
        Ok(())
    }

    fn at(&self, place: &Place) -> crate::ec2::InRegion<'_> {
        ec2_in(self.ec2, self.region, &place.key())
    }
}

/// A copy made: tagged as soon as EC2 knows it, deprecated when the original is (the lifecycle
/// policy's time, while it is to come: EC2 takes no past time), waited for, then its snapshots
/// tagged too.
async fn finish_copy(destination: &dyn Ec2, ami_id: &str, source: &ec2::Image) -> Result<ec2::Image> {
    if ec2::describe_new(destination, ami_id).await?.is_none() {
        return Err(Error::new(ErrorKind::Aws, format!("{ami_id} was made, but EC2 does not describe it")));
    }
    // The original's statement is not the copy's: the copy gets its own (`attest_copy`).
    let tags: Vec<(String, String)> = source.tags.iter().filter(|(name, _)| name != PROVENANCE_TAG).cloned().collect();
    destination.create_tags(&[ami_id.to_string()], &tags).await?;
    if let Some(at) = source.deprecation_time.as_ref().filter(|_| source.deprecated_since().is_none()) {
        destination.deprecate_image(ami_id, at).await?;
    }
    let copy = destination.wait_until_available(ami_id, COPY_WAIT).await?;
    if !copy.snapshot_ids.is_empty() {
        destination.create_tags(&copy.snapshot_ids, &tags).await?;
    }
    Ok(copy)
}
