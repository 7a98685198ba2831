//! Channels in use: set, roll back, list, resolve. A channel belongs to one line of images (a
//! workflow name, and variant) and points one of its steps at one of its images; with an SSM
//! parameter, every change is published there too.

use crate::catalog::{
    Catalog, ChannelAction, ChannelEntry, ImageRecord, ImageStatus, Line, Standing, Verdict, check_channel_name,
};
use crate::change::distribute;
use crate::change::{Action, ChannelMove, Plan};
use crate::config::DistributionTarget;
use crate::ec2::{Ec2, Place};
use crate::error::{Error, ErrorKind, Result};

/// What planning a channel change reads: the catalog (its history), EC2 (its image's state), and
/// the distribution targets of its step, whose `ssm_parameter` it is published to in each of
/// their places.
#[derive(Clone, Copy)]
pub struct Stores<'a> {
    pub catalog: &'a dyn Catalog,
    pub ec2: &'a dyn Ec2,
    pub distribution: &'a [&'a DistributionTarget],
}

/// Who changes a channel, and why: what its history keeps of each change.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// `user@host`, and the AWS caller's ARN where AWS answered.
    pub by: String,
    pub reason: Option<String>,
    /// Point the channel at a deprecated image all the same: an override, with its reason.
    pub force: bool,
}

/// The plan of pointing the channel at the record's image: its history's entry; the SSM parameter,
/// when given or remembered from the channel's last entry, and the distribution targets' published;
/// EC2's deregistration protection on the image, and off the image the channel pointed at before,
/// unless another channel points at it. An image of a step with tests (`tested`) must have passed
/// them: anything else is an override. `stores.ec2` is the record's region's.
pub async fn plan_set(
    stores: Stores<'_>,
    line: &Line,
    channel: &str,
    record: &ImageRecord,
    ssm_parameter: Option<String>,
    change: &Change,
    tested: bool,
) -> Result<Plan> {
    let Stores { catalog, ec2, .. } = stores;
    check_channel_name(channel)?;
    let overriding = change.force && change.reason.is_some();
    let not_passed = match record.verdict() {
        Verdict::Passed => None,
        _ if !tested => None,
        Verdict::Untested => Some("has not been tested".to_string()),
        Verdict::Failed => Some(format!("failed its test {}", record.failed_test())),
    };
    if let Some(why) = &not_passed
        && !overriding
    {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{} of step \"{}\" {why}: channel {channel} points at images that passed their tests", record.ami_id, record.step_id),
        )
        .help(format!(
            "test it with `paw test {} --workflow-id {}`, or override on purpose: --force --reason TEXT (the history keeps both)",
            record.step_id, record.workflow_id
        )));
    }
    // A failed image may be pointed at only by that override.
    if !(record.status == ImageStatus::Failed && not_passed.is_some()) {
        usable(record, Some(channel))?;
    }
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
    let image = ec2.describe_image(&record.ami_id).await?;
    let action = match image.as_ref().and_then(|image| image.deprecated_since()) {
        None if not_passed.is_some() => ChannelAction::Override,
        None => ChannelAction::Set,
        Some(_) if overriding => ChannelAction::Override,
        Some(at) => {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("{} is deprecated (from {at}): pointing channel {channel} at it is an override", record.ami_id),
            )
            .help("pick a current image, or override on purpose: --force --reason TEXT (the history keeps both)"));
        }
    };
    let history = catalog.channel_history(line, channel, &record.step_id).await?;
    let ssm_parameter = ssm_parameter.or_else(|| history.first().and_then(|newest| newest.ssm_parameter.clone()));
    let elsewhere = publications(stores.distribution, line, channel, record)?;
    let point = ChannelMove {
        line: line.clone(),
        channel: channel.to_string(),
        step_id: record.step_id.clone(),
        ami_id: record.ami_id.clone(),
        workflow_id: record.workflow_id.clone(),
        kind: action,
        ssm_parameter,
        reason: change.reason.clone(),
    };
    let home = Place::region(&record.region);
    moving(catalog, point, &home, &elsewhere, ChannelEntry::current(&history)).await
}

/// The plan of moving the channel back to the image before the current one, as a new entry of its
/// history (published and protected as `plan_set`'s); with the entry it moves from. `stores.ec2`
/// is `region`'s.
pub async fn plan_rollback(
    stores: Stores<'_>,
    line: &Line,
    channel: &str,
    step_id: &str,
    change: &Change,
    region: &str,
) -> Result<(ChannelEntry, Plan)> {
    let Stores { catalog, .. } = stores;
    check_channel_name(channel)?;
    let history = catalog.channel_history(line, channel, step_id).await?;
    let stack = ChannelEntry::stack(&history);
    let Some(current) = stack.last() else {
        return Err(unknown_channel(line, channel, step_id));
    };
    let Some(previous) = stack.len().checked_sub(2).map(|at| stack[at]) else {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("channel {channel} of step \"{step_id}\" has no entry before {}", current.ami_id),
        )
        .help(format!("`paw channel history {channel} {step_id}` shows its entries")));
    };
    let target = catalog.get(&previous.workflow_id, step_id).await?.filter(|record| record.ami_id == previous.ami_id);
    let elsewhere = match target {
        Some(record) => {
            usable(&record, Some(channel))?;
            publications(stores.distribution, line, channel, &record)?
        }
        None => {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("the previous image of channel {channel}, {}, is no longer in the catalog", previous.ami_id),
            )
            .help(format!(
                "set the channel to an image instead: `paw channel set {channel} {step_id} --workflow-id ID`"
            )));
        }
    };
    let from = (*current).clone();
    let point = ChannelMove {
        line: line.clone(),
        channel: channel.to_string(),
        step_id: step_id.to_string(),
        ami_id: previous.ami_id.clone(),
        workflow_id: previous.workflow_id.clone(),
        kind: ChannelAction::Rollback,
        ssm_parameter: history.first().and_then(|newest| newest.ssm_parameter.clone()),
        reason: change.reason.clone(),
    };
    let plan = moving(catalog, point, &Place::region(region), &elsewhere, Some(&from)).await?;
    Ok((from, plan))
}

/// The plan of a channel's move from `before`: the entry; its own parameter, and each publication
/// elsewhere; EC2's deregistration protection on its image (in `home`), so that nobody deregisters
/// it from the console, and off the image it pointed at before, unless a channel (of any line)
/// still points at that.
async fn moving(
    catalog: &dyn Catalog,
    point: ChannelMove,
    home: &Place,
    elsewhere: &[Publication],
    before: Option<&ChannelEntry>,
) -> Result<Plan> {
    let ami_id = point.ami_id.clone();
    let pointer = ChannelEntry::pointer(Some(&point.line), &point.channel, &point.step_id);
    let own_parameter = point.ssm_parameter.clone();
    let still_used = match before.filter(|before| before.ami_id != ami_id) {
        None => true,
        Some(before) => crate::catalog::current_entries(catalog, None).await?.iter().any(|entry| {
            entry.ami_id == before.ami_id
                && ChannelEntry::pointer(entry.line().as_ref(), &entry.channel, &entry.step_id) != pointer
        }),
    };
    let mut plan = Plan::default();
    plan.actions.push(Action::PointChannel(point));
    if let Some(name) = own_parameter {
        plan.actions.push(Action::PutParameter { place: home.clone(), name, ami_id: ami_id.clone() });
    }
    plan.actions.extend(elsewhere.iter().map(|Publication { place, parameter, ami_id }| Action::PutParameter {
        place: place.clone(),
        name: parameter.clone(),
        ami_id: ami_id.clone(),
    }));
    plan.actions.push(Action::Protect { place: home.clone(), ami_id });
    if let Some(before) = before.filter(|_| !still_used) {
        plan.actions.push(Action::Unprotect { place: home.clone(), ami_id: before.ami_id.clone() });
    }
    Ok(plan)
}

/// The record a channel points at for a step; an error when there is none, or it is not usable.
pub async fn resolve(catalog: &dyn Catalog, line: &Line, channel: &str, step_id: &str) -> Result<ImageRecord> {
    check_channel_name(channel)?;
    let history = catalog.channel_history(line, channel, step_id).await?;
    let current = ChannelEntry::current(&history).ok_or_else(|| unknown_channel(line, channel, step_id))?;
    if current.action == ChannelAction::Deleted {
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "channel {channel} of step \"{step_id}\" points at nothing: its image {} was deleted at {}{}: {}",
                current.ami_id,
                current.set_at,
                current.set_by.as_ref().map(|by| format!(" by {by}")).unwrap_or_default(),
                current.reason.as_deref().unwrap_or("no reason given")
            ),
        )
        .help(format!("point it at an image: `paw channel set {channel} {step_id} --workflow-id ID`")));
    }
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
    let standing = record.standing();
    let step = &record.step_id;
    let help = match (&standing, channel) {
        (Standing::Available, _) => return Ok(()),
        (Standing::Revoked { .. }, Some(channel)) => format!(
            "point the channel at another image (`paw channel set {channel} {step} --workflow-id ID`, or `paw channel \
             rollback {channel} {step}`), or restore this one with `paw images restore {step}`"
        ),
        (Standing::Revoked { .. }, None) => {
            format!("use another image of the step, or restore this one with `paw images restore {step}`")
        }
        (Standing::Failed { .. }, _) => format!(
            "use another image of the step, or fix what failed and test it again: `paw test {step} --workflow-id {}`",
            record.workflow_id
        ),
        (Standing::Disabled | Standing::Deregistered { .. }, _) => "point the channel at an available image".into(),
    };
    let through = channel.map(|channel| format!(", channel {channel}")).unwrap_or_default();
    Err(Error::new(
        ErrorKind::Usage,
        format!(
            "{} of step \"{step}\" (workflow {}{through}) cannot be used: {standing}",
            record.ami_id, record.workflow_id
        ),
    )
    .help(help))
}

fn unknown_channel(line: &Line, channel: &str, step_id: &str) -> Error {
    Error::new(ErrorKind::Usage, format!("{line} has no channel {channel} for step \"{step_id}\""))
        .help(format!("`paw channel list` shows the channels; `paw channel set {channel} {step_id}` makes this one"))
}

/// One SSM parameter a channel is published to in a distribution target's place: where, its
/// name, and the image there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub place: Place,
    pub parameter: String,
    pub ami_id: String,
}

/// Where pointing the channel at the record's image publishes it besides its own parameter: each
/// distribution target's `ssm_parameter`, in each of its places, with the image there. Checked
/// before the channel changes: an image not distributed yet to a place is refused.
pub fn publications(
    targets: &[&DistributionTarget],
    line: &Line,
    channel: &str,
    record: &ImageRecord,
) -> Result<Vec<Publication>> {
    let mut publications = Vec::new();
    for target in targets {
        let Some(template) = &target.ssm_parameter else { continue };
        for place in distribute::places(target) {
            let Some(ami_id) = distribute::image_at(record, target, &place) else {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("{} has no copy in {place}, where channel {channel} is published", record.ami_id),
                )
                .help(format!("`paw distribute {}` distributes it first", record.step_id)));
            };
            let parameter = template
                .replace("{name}", &line.name)
                .replace("{variant}", line.variant.as_deref().unwrap_or_default())
                .replace("{step}", &record.step_id)
                .replace("{channel}", channel)
                .replace("{account}", place.account.as_deref().unwrap_or_default())
                .replace("{region}", &place.region);
            publications.push(Publication { place, parameter, ami_id });
        }
    }
    Ok(publications)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::conformance::sample_record;
    use crate::change::distribute::tests::workflow;

    #[test]
    fn a_channel_is_published_to_the_copy_in_each_place_of_a_target() {
        let block = r#"[{"region": "eu-west-1", "accounts": ["222222222222"], "copy_to_accounts": true,
            "role_arn": "arn:aws:iam::{account}:role/r", "ssm_parameter": "/i/{name}/{variant}/{step}/{channel}/{account}/{region}"}]"#;
        let (_dir, workflow) = workflow(block);
        let target = &workflow.param.distribution[0];
        let mut record = sample_record("w", "b", "ami-b", "2026-01-01T00:00:00.000000+0000");
        let line = Line { name: "web".into(), variant: Some("arm64".into()) };
        let refused = publications(&[target], &line, "prod", &record).unwrap_err();
        assert!(refused.message.contains("has no copy in eu-west-1 of account 222222222222"), "{refused}");
        let in_222 = Place { account: Some("222222222222".into()), region: "eu-west-1".into() };
        record.copies.insert(in_222.key(), "ami-222".into());
        let published = publications(&[target], &line, "prod", &record).unwrap();
        assert_eq!(published[0].parameter, "/i/web/arm64/b/prod/222222222222/eu-west-1");
        assert_eq!((published[0].ami_id.as_str(), &published[0].place), ("ami-222", &in_222));
    }
}
