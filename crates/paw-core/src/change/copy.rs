//! `paw images copy`, and the copies of distribution: the step's AMI copied to other regions and
//! accounts, each copy recorded on every record of the AMI and tagged like the original (CopyImage
//! copies no tags) at once, then waited for. Planned from what each place has of it already, so
//! a run that stopped is finished, and a second run does nothing.

use std::ops::Range;

use serde::Serialize;

use super::{Action, CopyOrder, Executor, Plan};
use crate::ami::PROVENANCE_TAG;
use crate::catalog::ImageRecord;
use crate::ec2::{self, Ec2, Place, ec2_in};
use crate::error::{Error, ErrorKind, Result};

/// Where a copy goes, the KMS key it is encrypted with there, and the accounts that launch it
/// there (a distribution target that shares the build account's copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub place: Place,
    pub kms_key_id: Option<String>,
    pub share_with: Vec<String>,
}

impl Destination {
    pub fn region(region: &str) -> Destination {
        Destination { place: Place::region(region), kms_key_id: None, share_with: Vec::new() }
    }
}

/// What a destination has of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The image itself: the destination is its own region. With the accounts that may launch it.
    Original {
        launchers: Vec<String>,
    },
    /// Its copy, available and tagged as the original, with the accounts that may launch it.
    Done {
        ami_id: String,
        launchers: Vec<String>,
    },
    /// A copy not finished: a run stopped before it was tagged, or waited for.
    Unfinished(String),
    Missing,
    /// A region EC2 does not know.
    NoSuchRegion,
}

/// What copying decides from: the original as EC2 has it, and what each destination has.
#[derive(Debug, Clone)]
pub struct CopyInventory {
    pub record: ImageRecord,
    pub source: ec2::Image,
    pub found: Vec<(Destination, Found)>,
}

/// Reads the original (`ec2` is its region's) and, at each destination, its recorded copy (done
/// when available, tagged as the original, and with its own statement when the original has
/// one) or a copy a stopped run made and did not record (it has the original's name, which EC2 keeps
/// unique where it is).
pub async fn gather(ec2: &dyn Ec2, record: &ImageRecord, destinations: &[Destination]) -> Result<CopyInventory> {
    let source = ec2.describe_image(&record.ami_id).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::Usage,
            format!("{} of step \"{}\" is not in EC2 ({})", record.ami_id, record.step_id, record.region),
        )
        .help("`paw images list` shows what the catalog has; `paw build` makes it again")
    })?;
    let known = ec2.region_names().await?;
    let mut found = Vec::new();
    for destination in destinations {
        let place = &destination.place;
        let there = ec2_in(ec2, &record.region, &place.key());
        // Who may launch it, where accounts are to share it.
        let launchers = async |ami_id: &str| match destination.share_with.is_empty() {
            true => Ok::<_, Error>(Vec::new()),
            false => Ok(there.launch_permissions(ami_id).await?.accounts),
        };
        let at = if place.account.is_none() && place.region == record.region {
            Found::Original { launchers: launchers(&record.ami_id).await? }
        } else if !known.contains(&place.region) {
            Found::NoSuchRegion
        } else {
            match record.copies.get(&place.key()) {
                Some(ami_id) => match there.describe_image(ami_id).await? {
                    Some(copy)
                        if copy.state == ec2::ImageState::Available
                            && source.tags.iter().all(|tag| tag.0 == PROVENANCE_TAG || copy.tags.contains(tag))
                            && (record.provenance.is_none() || record.copy_provenance.contains_key(&place.key())) =>
                    {
                        Found::Done { ami_id: ami_id.clone(), launchers: launchers(ami_id).await? }
                    }
                    Some(_) => Found::Unfinished(ami_id.clone()),
                    // Gone from EC2: made again.
                    None => Found::Missing,
                },
                None => match there.images_named(&record.ami_name).await?.into_iter().next() {
                    Some(image) => Found::Unfinished(image.id),
                    None => Found::Missing,
                },
            }
        };
        found.push((destination.clone(), at));
    }
    Ok(CopyInventory { record: record.clone(), source, found })
}

/// The plan: per destination that lacks it, the copy (for another account's place, between a
/// share of the original with that account, which lets it copy, and the share's withdrawal: it
/// then owns its copy), and the launch permissions of accounts that share the build account's
/// copy. A region EC2 does not know refuses the plan.
pub fn decide(inventory: &CopyInventory) -> CopyPlan {
    let record = &inventory.record;
    let home = Place::region(&record.region);
    let mut plan = Plan::default();
    let mut of_destination = Vec::new();
    for (Destination { place, kms_key_id, share_with }, found) in &inventory.found {
        let first = plan.actions.len();
        let order = |unfinished: Option<String>| {
            Action::Copy(CopyOrder {
                workflow_id: record.workflow_id.clone(),
                step_id: record.step_id.clone(),
                ami_id: record.ami_id.clone(),
                name: record.ami_name.clone(),
                place: place.clone(),
                kms_key_id: kms_key_id.clone(),
                unfinished,
                share_with: share_with.clone(),
            })
        };
        let share = |ami_id: &str, place: &Place, accounts: &[String], remove: bool| Action::Share {
            place: place.clone(),
            ami_id: ami_id.to_string(),
            accounts: accounts.to_vec(),
            organization_arns: Vec::new(),
            remove,
        };
        match found {
            Found::NoSuchRegion => plan.refuse(
                format!("\"{}\" is not an EC2 region", place.region),
                "name a region that `aws ec2 describe-regions --all-regions` lists",
            ),
            Found::Original { launchers } | Found::Done { launchers, .. } => {
                let ami_id = match found {
                    Found::Done { ami_id, .. } => ami_id,
                    _ => &record.ami_id,
                };
                let missing: Vec<String> =
                    share_with.iter().filter(|account| !launchers.contains(account)).cloned().collect();
                if !missing.is_empty() {
                    plan.actions.push(share(ami_id, place, &missing, false));
                }
            }
            Found::Unfinished(ami_id) => plan.actions.push(order(Some(ami_id.clone()))),
            Found::Missing => match &place.account {
                Some(account) => {
                    let account = std::slice::from_ref(account);
                    plan.actions.push(share(&record.ami_id, &home, account, false));
                    plan.actions.push(order(None));
                    plan.actions.push(share(&record.ami_id, &home, account, true));
                }
                None => plan.actions.push(order(None)),
            },
        }
        of_destination.push(first..plan.actions.len());
    }
    CopyPlan { plan, of_destination }
}

/// A copy's plan, and which of its actions are each destination's (in the inventory's order).
#[derive(Debug, Clone)]
pub struct CopyPlan {
    pub plan: Plan,
    of_destination: Vec<Range<usize>>,
}

/// What became of one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copied {
    pub region: String,
    /// Another account's copy (distribution), or the accounts that share the build account's
    /// copy, joined by commas; None: the build account's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub ami_id: Option<String>,
    pub result: CopyResult,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What became of one destination; in JSON and text `copied`, `already there`, `shared` (launch
/// permission on the build account's copy) or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CopyResult {
    #[serde(rename = "copied")]
    Copied,
    #[serde(rename = "already there")]
    AlreadyThere,
    #[serde(rename = "shared")]
    Shared,
    #[serde(rename = "failed")]
    Failed,
}

impl std::fmt::Display for CopyResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CopyResult::Copied => "copied",
            CopyResult::AlreadyThere => "already there",
            CopyResult::Shared => "shared",
            CopyResult::Failed => "failed",
        })
    }
}

/// Applies the plan, each destination on its own (one that fails is reported, and the others
/// still complete), and says what became of each from what the catalog then records.
pub async fn apply(executor: &Executor<'_>, inventory: &CopyInventory, decided: &CopyPlan) -> Result<Vec<Copied>> {
    let outcomes = executor.apply_each(&decided.plan).await?;
    let record = &inventory.record;
    let now = executor.catalog.get(&record.workflow_id, &record.step_id).await?.unwrap_or_else(|| record.clone());
    let mut results = Vec::new();
    for ((Destination { place, share_with, .. }, found), mine) in inventory.found.iter().zip(&decided.of_destination) {
        let errors: Vec<String> = outcomes[mine.clone()]
            .iter()
            .filter_map(|outcome| outcome.as_ref().err().map(ToString::to_string))
            .collect();
        let copied = decided.plan.actions[mine.clone()].iter().any(|action| matches!(action, Action::Copy(_)));
        let result = if !errors.is_empty() {
            CopyResult::Failed
        } else if copied {
            CopyResult::Copied
        } else if !share_with.is_empty() {
            CopyResult::Shared
        } else {
            CopyResult::AlreadyThere
        };
        let ami_id = match found {
            Found::Original { .. } => Some(record.ami_id.clone()),
            _ => now.copies.get(&place.key()).cloned(),
        };
        let account = place.account.clone().or_else(|| (!share_with.is_empty()).then(|| share_with.join(",")));
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        results.push(Copied { region: place.region.clone(), account, ami_id, result, error });
    }
    Ok(results)
}

/// Copies the record's AMI into `destinations`, planned from what each has, with the executor.
pub async fn copy_to(
    executor: &Executor<'_>,
    record: &ImageRecord,
    destinations: &[Destination],
) -> Result<Vec<Copied>> {
    let inventory = gather(executor.ec2, record, destinations).await?;
    apply(executor, &inventory, &decide(&inventory)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::conformance::sample_record;

    fn inventory(found: Vec<(Destination, Found)>) -> CopyInventory {
        let record = sample_record("w", "s", "ami-1", "2026-01-01T00:00:00.000000+0000");
        let source = ec2::Image { name: record.ami_name.clone(), ..ec2::Image::available("ami-1") };
        CopyInventory { record, source, found }
    }

    #[test]
    fn only_what_a_place_lacks_is_planned_and_an_unknown_region_refuses_it_whole() {
        let in_222 = Destination {
            place: Place { account: Some("222222222222".into()), region: "eu-west-1".into() },
            kms_key_id: Some("alias/k".into()),
            share_with: Vec::new(),
        };
        let shared_home = Destination { share_with: vec!["444444444444".into()], ..Destination::region("us-east-1") };
        let found = vec![
            (Destination::region("us-west-2"), Found::Done { ami_id: "ami-west".into(), launchers: Vec::new() }),
            (Destination::region("ap-south-1"), Found::Unfinished("ami-half".into())),
            (in_222, Found::Missing),
            (shared_home.clone(), Found::Original { launchers: Vec::new() }),
        ];
        let plan = decide(&inventory(found)).plan;
        let said: Vec<(&str, String, String)> = plan.actions.iter().map(Action::describe).collect();
        assert_eq!(
            said,
            [
                ("finish copy", "ap-south-1".into(), "ami-half, copied from ami-1 by a run that stopped".into()),
                ("share", "us-east-1".into(), "ami-1 with 222222222222".into()),
                ("copy", "eu-west-1 of account 222222222222".into(), "ami-1, encrypted with alias/k".into()),
                ("unshare", "us-east-1".into(), "ami-1 from 222222222222".into()),
                ("share", "us-east-1".into(), "ami-1 with 444444444444".into()),
            ]
        );
        assert!(plan.check().is_ok());
        let granted = Found::Original { launchers: vec!["444444444444".into()] };
        assert!(decide(&inventory(vec![(shared_home, granted)])).plan.actions.is_empty(), "shared already");

        let refused = decide(&inventory(vec![(Destination::region("mars-1"), Found::NoSuchRegion)])).plan;
        let err = refused.check().unwrap_err();
        assert_eq!(err.message, "\"mars-1\" is not an EC2 region; nothing was changed");
    }
}
