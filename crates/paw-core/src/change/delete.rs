//! Deleting a recorded image in every place it has a copy, planned whole (`change`): `paw images
//! delete`, and every deletion of prune, the lifecycle and the build (`--force`, a failed test).
//! Refused before anything is touched while another workflow reuses the image or a build of its
//! step runs; a channel's image, or one EC2 protects from deregistration, only with `--force` and a
//! reason, and then its protection is lifted, every copy goes and the channel says so.

use crate::catalog::{Catalog, ChannelAction, ChannelEntry, ImageRecord, ImageStatus, InFlight, now_unix, this_host};
use crate::change::usage::{self, Sharing, Target, Usage};
use crate::change::{Action, Executor, Plan};
use crate::ec2::{Ec2, Image, Place, ec2_in};
use crate::error::Result;

/// What is asked for.
#[derive(Debug, Clone, Default)]
pub struct DeleteRequest {
    pub delete_snapshots: bool,
    /// `--force --reason`: delete a channel's image, or a protected one, or one in use, all the
    /// same.
    pub forced_because: Option<String>,
    /// A lifecycle policy deletes it while in use (`retire_in_use`).
    pub retire_in_use: bool,
}

/// What deleting decides from, read before anything is decided.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The records deleted together (a reused AMI is one image), the one whose copies they are first.
    pub records: Vec<ImageRecord>,
    /// Every other record of the AMI: another workflow that reuses it.
    pub others: Vec<ImageRecord>,
    /// The channels that point at it now.
    pub channels: Vec<ChannelEntry>,
    /// Each copy (its own region's first): where, its id, and EC2's description (None: gone).
    pub copies: Vec<(Place, String, Option<Image>)>,
    /// Builds of its step that another live run holds now (a dead run's is `paw recover`'s).
    pub building: Vec<InFlight>,
    /// Who uses it, in every place.
    pub usage: Usage,
}

impl Inventory {
    /// Reads what deleting `records` (one AMI; `records[0]`'s copies) decides from: the catalog's
    /// other records of it, channels and leases, each copy as EC2 describes it where it is, and
    /// who uses it (unless `usage` was read already, with other images', in fewer requests).
    pub async fn gather(
        catalog: &dyn Catalog,
        ec2: &dyn Ec2,
        region: &str,
        records: &[ImageRecord],
        usage: Option<Usage>,
    ) -> Result<Inventory> {
        let record = &records[0];
        let same = |other: &ImageRecord| {
            records.iter().any(|ours| ours.workflow_id == other.workflow_id && ours.step_id == other.step_id)
        };
        let others = catalog.records_of(record).await?.into_iter().filter(|other| !same(other)).collect();
        let channels: Vec<ChannelEntry> = crate::catalog::current_entries(catalog, None)
            .await?
            .into_iter()
            .filter(|entry| entry.ami_id == record.ami_id && entry.action != ChannelAction::Deleted)
            .collect();
        let mut copies = Vec::new();
        for (key, ami_id) in record.every_copy() {
            let regional = ec2_in(ec2, region, &key);
            let image = regional.describe_image(&ami_id).await.map_err(|err| err.in_region(&key))?;
            copies.push((Place::parse(&key), ami_id, image));
        }
        // Who uses the copies that are there.
        let usage = match usage {
            Some(usage) => usage,
            None => {
                let there = copies.iter().filter(|(.., image)| image.is_some());
                let copies = there.map(|(place, ami_id, _)| (place.key(), ami_id.clone())).collect();
                let target = Target { ami_id: record.ami_id.clone(), copies };
                let mut read = usage::gather(ec2, region, &[target], Sharing::AskEc2, &channels).await;
                read.remove(&record.ami_id).unwrap_or_default()
            }
        };
        let (host, pid) = (this_host(), std::process::id());
        let mut building = Vec::new();
        for record in records {
            let entries = catalog.builds_in_flight(&record.workflow_id).await?;
            // This process's own build (it replaces the image, or its test failed) is no other run.
            building.extend(entries.into_iter().filter(|entry| {
                let ours = entry.host == host && entry.pid == pid;
                entry.step_id == record.step_id && !ours && entry.stale_because(now_unix(), &host).is_none()
            }));
        }
        Ok(Inventory { records: records.to_vec(), others, channels, copies, building, usage })
    }
}

/// The plan of deleting the inventory's image: pure.
pub fn decide(inventory: &Inventory, request: &DeleteRequest) -> Plan {
    let mut plan = Plan::default();
    let record = &inventory.records[0];
    let users: Vec<String> = inventory
        .others
        .iter()
        .filter(|other| other.status == ImageStatus::Available)
        .map(|other| format!("workflow {} step {}", other.workflow_id, other.step_id))
        .collect();
    if !users.is_empty() {
        plan.refuse(
            format!("{} is also recorded for {}; deregistering it would break them", record.ami_id, users.join(", ")),
            "delete those records' AMIs first (`paw images delete STEP --workflow-id ID`), or use a new workflow_id",
        );
    }
    for build in &inventory.building {
        plan.refuse(
            format!(
                "a build of step \"{}\" holds its lease: paw {} on {} since {}",
                build.step_id, build.pid, build.host, build.since
            ),
            "wait for that build to end (or `paw recover` if its machine died)",
        );
    }
    let forced = request.forced_because.as_deref();
    if !request.retire_in_use {
        let forced_command = "paw images delete STEP --force --reason TEXT";
        check_usage(&mut plan, &inventory.records, &inventory.usage, "delete", forced, forced_command);
    }
    for entry in &inventory.channels {
        let line = entry.line().map_or("no line".into(), |line| line.to_string());
        if forced.is_none() || entry.line().is_none() {
            plan.refuse(
                format!("channel {} of step \"{}\" ({line}) points at {}", entry.channel, entry.step_id, record.ami_id),
                format!(
                    "point the channel at another image first (`paw channel set {0} {1} --workflow-id ID`, or `paw \
                     channel rollback {0} {1}`), or delete the image all the same: --force --reason TEXT",
                    entry.channel, entry.step_id
                ),
            );
        }
    }
    for (place, ami_id, image) in &inventory.copies {
        let protected = image.as_ref().is_some_and(|image| image.deregistration_protected);
        if protected && forced.is_none() && inventory.channels.is_empty() {
            plan.refuse(
                format!("{ami_id} in {place} is protected from deregistration"),
                "lift it in EC2 first (DisableImageDeregistrationProtection), or delete the image all the same: `paw \
                 images delete STEP --force --reason TEXT`",
            );
        }
    }

    let home = Place::region(&record.region);
    // The copies elsewhere first: the record lists each until it is gone.
    let mut copies: Vec<&(Place, String, Option<Image>)> = inventory.copies.iter().collect();
    copies.sort_by_key(|(place, ..)| *place == home);
    for (place, ami_id, image) in copies {
        if let Some(image) = image {
            if image.deregistration_protected {
                plan.actions.push(Action::Unprotect { place: place.clone(), ami_id: ami_id.clone() });
            }
            let snapshots = if request.delete_snapshots { image.snapshot_ids.clone() } else { Vec::new() };
            plan.actions.push(Action::Deregister { place: place.clone(), ami_id: ami_id.clone(), snapshots });
        }
        if *place != home {
            for record in &inventory.records {
                let (workflow_id, step_id) = (record.workflow_id.clone(), record.step_id.clone());
                plan.actions.push(Action::ForgetCopy { workflow_id, step_id, place: place.clone() });
            }
        }
    }
    for record in inventory.records.iter().filter(|record| record.status != ImageStatus::Deregistered) {
        let (workflow_id, step_id) = (record.workflow_id.clone(), record.step_id.clone());
        plan.actions.push(Action::MarkDeregistered { workflow_id, step_id });
    }
    if let Some(reason) = forced {
        for entry in &inventory.channels {
            let Some(line) = entry.line() else { continue };
            plan.actions.push(Action::ClearChannel {
                line,
                channel: entry.channel.clone(),
                step_id: entry.step_id.clone(),
                ami_id: record.ami_id.clone(),
                reason: reason.to_string(),
            });
        }
    }
    plan
}

/// The usage precondition of retiring `records`' image (`retirement`: delete, revoke): one that
/// something uses, or whose usage is unknown, refuses the plan, saying who or why, unless it is
/// forced (with the reason): then each record notes the override before anything else is done.
/// `forced_command` is the command that does it all the same.
pub fn check_usage(
    plan: &mut Plan,
    records: &[ImageRecord],
    usage: &Usage,
    retirement: &str,
    forced: Option<&str>,
    forced_command: &str,
) {
    let Some(why) = usage.holds() else { return };
    let Some(reason) = forced else {
        let ami_id = &records[0].ami_id;
        let (refusal, help) = match usage.in_use() {
            true => (
                format!("{ami_id} is {why}"),
                format!("move its users to another image first (`paw images usage` lists them), or `{forced_command}`"),
            ),
            false => (
                format!("who uses {ami_id} is not known, so it is not retired: {}", usage.unknown.join("; ")),
                format!(
                    "paw reads who uses an image before it retires one: give it ec2:DescribeImageReferences (and, \
                     for shared images, ec2:CreateImageUsageReport, ec2:DescribeImageUsageReports, \
                     ec2:DescribeImageUsageReportEntries, ec2:DeleteImageUsageReport), and run it again; or \
                     `{forced_command}`"
                ),
            ),
        };
        plan.refuse(refusal, help);
        return;
    };
    plan.actions.extend(records.iter().map(|record| Action::NoteOverride {
        workflow_id: record.workflow_id.clone(),
        step_id: record.step_id.clone(),
        retirement: retirement.to_string(),
        reason: reason.to_string(),
        usage: why.clone(),
    }));
}

/// Plans and applies the deletion of `records`' image (one AMI, reused by them all) in every
/// place; returns the actions done. `ec2` is the workflow's region's (`region`).
pub async fn delete_image(
    executor: &Executor<'_>,
    records: &[ImageRecord],
    request: &DeleteRequest,
) -> Result<Vec<Action>> {
    let inventory = Inventory::gather(executor.catalog, executor.ec2, executor.region, records, None).await?;
    executor.apply(&decide(&inventory, request)).await
}

/// The snapshots the actions deleted (or, planned, will delete).
pub fn deleted_snapshots(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .flat_map(|action| match action {
            Action::Deregister { snapshots, .. } => snapshots.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// "; deleted snapshots: snap-1, snap-2", or nothing when none were: how messages say it.
pub fn snapshots_said(actions: &[Action]) -> String {
    let snapshots = deleted_snapshots(actions);
    if snapshots.is_empty() { String::new() } else { format!("; deleted snapshots: {}", snapshots.join(", ")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::conformance::{journal_entry, sample_record};
    use crate::catalog::{ChannelAction, Line};

    fn image(id: &str, protected: bool) -> Option<Image> {
        Some(Image {
            name: format!("name-{id}"),
            deregistration_protected: protected,
            snapshot_ids: vec![format!("snap-{id}")],
            ..Image::available(id)
        })
    }

    fn pinned() -> Inventory {
        let mut record = sample_record("wf", "app", "ami-d001", "2026-01-01T00:00:00.000000+0000");
        record.region = "us-east-1".into();
        record.workflow_name = Some("app".into());
        record.copies.insert("eu-west-1".into(), "ami-eu".into());
        record.copies.insert("222222222222:eu-west-1".into(), "ami-222".into());
        let line = Line { name: "app".into(), variant: None };
        let channel = ChannelEntry {
            ami_id: "ami-d001".into(),
            workflow_id: "wf".into(),
            ..ChannelEntry::next(&line, "prod", "app", ChannelAction::Set, ("me", None), &[])
        };
        Inventory {
            copies: vec![
                (Place::region("us-east-1"), "ami-d001".into(), image("ami-d001", true)),
                (Place::parse("222222222222:eu-west-1"), "ami-222".into(), image("ami-222", false)),
                (Place::region("eu-west-1"), "ami-eu".into(), image("ami-eu", false)),
            ],
            records: vec![record],
            others: Vec::new(),
            channels: vec![channel],
            building: Vec::new(),
            usage: Usage::default(),
        }
    }

    #[test]
    fn a_channels_image_is_refused_before_anything_and_forced_goes_everywhere() {
        let inventory = pinned();
        let plan = decide(&inventory, &DeleteRequest { delete_snapshots: true, ..DeleteRequest::default() });
        assert_eq!(plan.refusals.len(), 1, "{plan:#?}");
        assert!(plan.refusals[0].reason.contains("channel prod of step \"app\" (app) points at ami-d001"));
        let err = plan.check().unwrap_err();
        assert!(err.message.ends_with("nothing was changed"), "{err}");
        assert!(err.help.unwrap().contains("--force --reason TEXT"));

        let forced = DeleteRequest { delete_snapshots: true, forced_because: Some("CVE".into()), retire_in_use: false };
        let plan = decide(&inventory, &forced);
        assert!(plan.refusals.is_empty(), "{plan:#?}");
        let verbs: Vec<String> = plan
            .actions
            .iter()
            .map(|action| {
                let (verb, place, _) = action.describe();
                format!("{verb} {place}")
            })
            .collect();
        assert_eq!(
            verbs,
            [
                "deregister eu-west-1 of account 222222222222",
                "forget copy catalog",
                "deregister eu-west-1",
                "forget copy catalog",
                "unprotect us-east-1",
                "deregister us-east-1",
                "mark deregistered catalog",
                "clear channel catalog",
            ]
        );
        assert_eq!(deleted_snapshots(&plan.actions), ["snap-ami-222", "snap-ami-eu", "snap-ami-d001"]);
    }

    #[test]
    fn reuse_a_build_and_protection_refuse_and_what_is_gone_is_only_forgotten() {
        let mut inventory = pinned();
        inventory.channels.clear();
        let plan = decide(&inventory, &DeleteRequest::default());
        assert_eq!(plan.refusals.len(), 1);
        assert!(plan.refusals[0].reason.contains("ami-d001 in us-east-1 is protected from deregistration"));

        inventory.copies[0].2 = image("ami-d001", false);
        let mut other = sample_record("other", "app", "ami-d001", "2026-01-02T00:00:00.000000+0000");
        other.reused_from = Some("wf".into());
        inventory.others.push(other);
        inventory.building.push(journal_entry("wf", "app", "r"));
        let plan = decide(&inventory, &DeleteRequest::default());
        assert_eq!(plan.refusals.len(), 2, "{plan:#?}");
        assert!(plan.check().unwrap_err().message.starts_with("2 things refuse this change"));

        // A second run after a first that deregistered the copies: what is gone is forgotten.
        inventory.others.clear();
        inventory.building.clear();
        inventory.copies[1].2 = None;
        inventory.copies[2].2 = None;
        let plan = decide(&inventory, &DeleteRequest::default());
        let verbs: Vec<&str> = plan.actions.iter().map(|action| action.describe().0).collect();
        assert_eq!(verbs, ["forget copy", "forget copy", "deregister", "mark deregistered"]);
    }

    #[test]
    fn an_image_in_use_or_of_unknown_use_is_refused_unless_forced() {
        let mut inventory = pinned();
        inventory.channels.clear();
        inventory.copies[0].2 = image("ami-d001", false);
        let instance = crate::ec2::ImageUser::Instance { id: "i-1".into(), state: "running".into() };
        inventory.usage.users.push(usage::Use {
            place: Place::region("us-east-1"),
            ami_id: "ami-d001".into(),
            user: instance,
        });
        let plan = decide(&inventory, &DeleteRequest::default());
        assert_eq!(plan.refusals.len(), 1, "{plan:#?}");
        assert_eq!(plan.refusals[0].reason, "ami-d001 is in use by 1 instance");
        assert!(plan.refusals[0].help.contains("paw images usage"), "{}", plan.refusals[0].help);
        let forced = DeleteRequest { forced_because: Some("replaced".into()), ..DeleteRequest::default() };
        let plan = decide(&inventory, &forced);
        assert!(plan.refusals.is_empty());
        assert_eq!(
            plan.actions[0].describe(),
            ("note override", "catalog".into(), "step app of workflow wf: delete while in use by 1 instance".into()),
            "noted before anything goes"
        );

        inventory.usage =
            Usage { users: vec![], unknown: vec!["us-east-1: ec2:DescribeImageReferences failed: denied".into()] };
        let plan = decide(&inventory, &DeleteRequest::default());
        assert!(plan.refusals[0].reason.starts_with("who uses ami-d001 is not known"), "{:?}", plan.refusals);
        assert!(plan.refusals[0].help.contains("ec2:DescribeImageReferences"));
    }
}
