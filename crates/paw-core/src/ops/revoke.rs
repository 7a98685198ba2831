//! Revocation: an AMI withdrawn from use, in EC2 as well as in the catalog. It is disabled (no
//! instance can be launched from it), tagged `paw:revoked`, in every place it was copied to, and
//! every record of it, in every workflow that reuses it, is `revoked`: never a source, never
//! reused, never up to date. Restoring undoes all three. Both are planned whole (`change`), from
//! an inventory of each image's records and copies, then applied.

use serde::Serialize;

use super::lineage;
use crate::catalog::{Catalog, ImageRecord, ImageStatus, Line};
use crate::change::delete::check_usage;
use crate::change::usage::{self, Sharing, Target, Usage};
use crate::change::{Action, Plan};
use crate::ec2::{Ec2, Image, ImageState, Place, ec2_in};
use crate::error::{Error, ErrorKind, Result};

pub const REVOKED_TAG: &str = "paw:revoked";

/// A record whose status changes: what the commands print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub ami_id: String,
    pub step_id: String,
    pub workflow_id: String,
    pub status: &'static str,
}

/// One image as revoking or restoring decides from it: its records, each copy as EC2 describes
/// it where it is (None: gone), and (revoking) who uses it.
#[derive(Debug, Clone)]
pub struct ImageInventory {
    pub records: Vec<ImageRecord>,
    pub copies: Vec<(Place, String, Option<Image>)>,
    pub usage: Usage,
}

impl ImageInventory {
    /// `records` (one AMI's; the first's copies) and each of their copies, described where it is.
    async fn gather(ec2: &dyn Ec2, region: &str, records: Vec<ImageRecord>) -> Result<ImageInventory> {
        let mut copies = Vec::new();
        for (key, ami_id) in records[0].every_copy() {
            let image = ec2_in(ec2, region, &key).describe_image(&ami_id).await.map_err(|err| err.in_region(&key))?;
            copies.push((Place::parse(&key), ami_id, image));
        }
        Ok(ImageInventory { records, copies, usage: Usage::default() })
    }
}

/// The images a revocation of `record` reaches (with `cascade`, every image of the line built on
/// it, directly or not), each with its available records. `ec2` is `record.region`'s.
pub async fn gather_revocation(
    ec2: &dyn Ec2,
    catalog: &dyn Catalog,
    line: &Line,
    record: &ImageRecord,
    cascade: bool,
) -> Result<Vec<ImageInventory>> {
    if record.status == ImageStatus::Deregistered {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{} of step \"{}\" is deregistered: there is nothing to revoke", record.ami_id, record.step_id),
        )
        .help("`paw images list` shows the step's images and their status"));
    }
    let mut amis = vec![record.ami_id.clone()];
    if cascade {
        for child in lineage::descendants(catalog, &record.ami_id, line).await? {
            if !amis.contains(&child.ami_id) {
                amis.push(child.ami_id);
            }
        }
    }
    let mut images = Vec::new();
    for ami_id in &amis {
        let records = if *ami_id == record.ami_id {
            catalog.records_of(record).await?
        } else {
            catalog.find_by_ami(ami_id).await?
        };
        let records: Vec<ImageRecord> =
            records.into_iter().filter(|record| record.status == ImageStatus::Available).collect();
        if !records.is_empty() {
            images.push(ImageInventory::gather(ec2, &record.region, records).await?);
        }
    }
    // Who uses them, read for all of them at once.
    let channels = crate::catalog::current_entries(catalog, None).await?;
    let firsts: Vec<Target> = images.iter().map(|image| Target::from(&image.records[0])).collect();
    let mut usage = usage::gather(ec2, &record.region, &firsts, Sharing::AskEc2, &channels).await;
    for image in &mut images {
        image.usage = usage.remove(&image.records[0].ami_id).unwrap_or_default();
    }
    Ok(images)
}

/// The plan of a revocation: every copy of each image disabled (unless it is) and tagged with the
/// reason, then every record revoked. An image in use (or whose usage is unknown) refuses it,
/// unless `forced`: then its records note the override first. Pure.
pub fn decide_revocation(images: &[ImageInventory], reason: &str, forced: bool) -> Plan {
    let mut plan = Plan::default();
    if reason.trim().is_empty() {
        plan.refuse("the reason is empty", "say why, e.g. --reason \"CVE-2026-1234 in openssl\"");
    }
    for image in images {
        let forced_command = "paw images revoke STEP --reason TEXT --force";
        check_usage(&mut plan, &image.records, &image.usage, "revoke", forced.then_some(reason), forced_command);
        for (place, ami_id, described) in &image.copies {
            let Some(described) = described else { continue };
            let (place, ami_id) = (place.clone(), ami_id.clone());
            if described.state != ImageState::Disabled {
                plan.actions.push(Action::Disable { place: place.clone(), ami_id: ami_id.clone() });
            }
            let value = Some(reason.to_string());
            plan.actions.push(Action::Tag { place, ami_id, key: REVOKED_TAG.into(), value });
        }
        plan.actions.extend(image.records.iter().map(|record| Action::SetStatus {
            workflow_id: record.workflow_id.clone(),
            step_id: record.step_id.clone(),
            status: ImageStatus::Revoked,
            reason: Some(reason.to_string()),
        }));
    }
    plan
}

/// What restoring `record` decides from: its image's revoked records and copies.
pub async fn gather_restoration(ec2: &dyn Ec2, catalog: &dyn Catalog, record: &ImageRecord) -> Result<ImageInventory> {
    if record.status != ImageStatus::Revoked {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{} of step \"{}\" is {}, not revoked", record.ami_id, record.step_id, record.status.as_str()),
        )
        .help("only a revoked image can be restored"));
    }
    let records = catalog.records_of(record).await?;
    let records = records.into_iter().filter(|other| other.status == ImageStatus::Revoked).collect();
    ImageInventory::gather(ec2, &record.region, records).await
}

/// The plan of a restoration: every copy enabled (where disabled) and untagged, every revoked
/// record available again. Pure.
pub fn decide_restoration(image: &ImageInventory) -> Plan {
    let mut plan = Plan::default();
    for (place, ami_id, described) in &image.copies {
        let Some(described) = described else { continue };
        if described.state == ImageState::Disabled {
            plan.actions.push(Action::Enable { place: place.clone(), ami_id: ami_id.clone() });
        }
        plan.actions.push(Action::Tag {
            place: place.clone(),
            ami_id: ami_id.clone(),
            key: REVOKED_TAG.into(),
            value: None,
        });
    }
    plan.actions.extend(image.records.iter().map(|record| Action::SetStatus {
        workflow_id: record.workflow_id.clone(),
        step_id: record.step_id.clone(),
        status: ImageStatus::Available,
        reason: None,
    }));
    plan
}

/// The records a plan's status changes reach, as the commands print them.
pub fn changed(plan: &Plan, images: &[ImageInventory]) -> Vec<Changed> {
    let ami_of = |workflow_id: &str, step_id: &str| {
        let records = images.iter().flat_map(|image| &image.records);
        let record = records.into_iter().find(|record| record.workflow_id == workflow_id && record.step_id == step_id);
        record.map(|record| record.ami_id.clone()).unwrap_or_default()
    };
    plan.actions
        .iter()
        .filter_map(|action| match action {
            Action::SetStatus { workflow_id, step_id, status, .. } => Some(Changed {
                ami_id: ami_of(workflow_id, step_id),
                step_id: step_id.clone(),
                workflow_id: workflow_id.clone(),
                status: status.as_str(),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::conformance::sample_record;

    fn copy(key: &str, id: &str, state: ImageState) -> (Place, String, Option<Image>) {
        let image = Image { state, ..Image::available(id) };
        (Place::parse(key), id.into(), Some(image))
    }

    #[test]
    fn a_revocation_disables_and_tags_each_copy_then_revokes_every_record_and_a_restoration_undoes_it() {
        let record = sample_record("wf", "app", "ami-1", "2026-01-01T00:00:00.000000+0000");
        let reuse = sample_record("other", "app", "ami-1", "2026-01-02T00:00:00.000000+0000");
        let image = ImageInventory {
            records: vec![record, reuse],
            copies: vec![
                copy("us-east-1", "ami-1", ImageState::Available),
                copy("222222222222:eu-west-1", "ami-2", ImageState::Disabled),
                (Place::region("us-west-2"), "ami-gone".into(), None),
            ],
            usage: Usage::default(),
        };
        let plan = decide_revocation(std::slice::from_ref(&image), "CVE", false);
        let said: Vec<String> = plan
            .actions
            .iter()
            .map(|action| {
                let (verb, place, what) = action.describe();
                format!("{verb} {place} {what}")
            })
            .collect();
        assert_eq!(
            said,
            [
                "disable us-east-1 ami-1",
                "tag us-east-1 ami-1 paw:revoked=CVE",
                "tag eu-west-1 of account 222222222222 ami-2 paw:revoked=CVE",
                "set status catalog step app of workflow wf: revoked",
                "set status catalog step app of workflow other: revoked",
            ]
        );
        let changed = changed(&plan, std::slice::from_ref(&image));
        assert_eq!(
            changed.iter().map(|c| (c.ami_id.as_str(), c.status)).collect::<Vec<_>>(),
            [("ami-1", "revoked"); 2]
        );
        assert!(
            decide_revocation(std::slice::from_ref(&image), " ", false)
                .check()
                .unwrap_err()
                .message
                .starts_with("the reason is empty")
        );

        let restored = decide_restoration(&image);
        let verbs: Vec<&str> = restored.actions.iter().map(|action| action.describe().0).collect();
        assert_eq!(verbs, ["untag", "enable", "untag", "set status", "set status"]);
    }

    #[test]
    fn an_image_in_use_is_revoked_only_with_force_and_its_records_say_so() {
        let instance = crate::ec2::ImageUser::Instance { id: "i-1".into(), state: "running".into() };
        let image = ImageInventory {
            records: vec![sample_record("wf", "app", "ami-1", "2026-01-01T00:00:00.000000+0000")],
            copies: vec![copy("us-east-1", "ami-1", ImageState::Available)],
            usage: Usage {
                users: vec![usage::Use { place: Place::region("us-east-1"), ami_id: "ami-1".into(), user: instance }],
                unknown: Vec::new(),
            },
        };
        let refused = decide_revocation(std::slice::from_ref(&image), "CVE", false).check().unwrap_err();
        assert!(refused.message.starts_with("ami-1 is in use by 1 instance"), "{refused}");
        assert!(refused.help.unwrap().contains("--force"));

        let forced = decide_revocation(std::slice::from_ref(&image), "CVE", true);
        assert!(forced.refusals.is_empty());
        let said: Vec<String> = forced.actions.iter().map(|action| action.describe().2).collect();
        assert_eq!(
            said,
            [
                "step app of workflow wf: revoke while in use by 1 instance",
                "ami-1",
                "ami-1 paw:revoked=CVE",
                "step app of workflow wf: revoked"
            ],
            "the override noted first"
        );
    }
}
