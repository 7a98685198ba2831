//! Distribution (workflow_param.json's `"distribution"`): an image copied to every region and
//! account that runs it, each copy owned where it runs (or the build account's copy shared there),
//! encrypted with the target's key, tagged, and recorded on the image's record (`copies`, keyed
//! by account and region). `paw build` distributes each new image of the steps the block names;
//! `paw distribute STEP` an existing one. Running it again does only what is missing.

use super::Executor;
use super::copy::{self, Copied, CopyResult, Destination};
use std::collections::BTreeMap;

use crate::catalog::ImageRecord;
use crate::config::DistributionTarget;
use crate::ec2::Place;
use crate::error::{Error, ErrorKind, Result};
use crate::workflow::{Step, Workflow};

/// The targets that distribute the step's images: those that name it, and, naming no step, those
/// of the last step of each branch.
pub fn targets_of<'a>(workflow: &'a Workflow, step: &Step) -> Vec<&'a DistributionTarget> {
    let is_leaf = !workflow.steps().iter().any(|other| other.parent.as_deref() == Some(step.id.as_str()));
    workflow
        .param
        .distribution
        .iter()
        .filter(|target| match &target.steps {
            Some(steps) => steps.contains(&step.id),
            None => is_leaf,
        })
        .collect()
}

/// Every place a target puts the image: each account's region (a copy of its own, or the build
/// account's shared), or the build account's region.
pub fn places(target: &DistributionTarget) -> Vec<Place> {
    if target.accounts.is_empty() {
        return vec![Place::region(&target.region)];
    }
    target
        .accounts
        .iter()
        .map(|account| Place { account: Some(account.clone()), region: target.region.clone() })
        .collect()
}

/// The image id at a place of a target, once distributed: its own copy there, or the build
/// account's copy in the region (shared with the account).
pub fn image_at(record: &ImageRecord, target: &DistributionTarget, place: &Place) -> Option<String> {
    let own = |region: &str| match region == record.region {
        true => Some(record.ami_id.clone()),
        false => record.copies.get(region).cloned(),
    };
    match &place.account {
        Some(_) if target.copy_to_accounts => record.copies.get(&place.key()).cloned(),
        _ => own(&place.region),
    }
}

/// Where the targets put the record's image: each account's region, for targets whose accounts
/// own a copy; otherwise the build account's region, with the accounts that share its copy there
/// (the image itself, in its own region). A place named twice is one destination.
pub fn destinations(targets: &[&DistributionTarget]) -> Vec<Destination> {
    let mut destinations: Vec<Destination> = Vec::new();
    let wanted = targets.iter().flat_map(|target| {
        let kms_key_id = target.kms_key_id.clone();
        match target.copy_to_accounts {
            true => places(target)
                .into_iter()
                .map(|place| Destination { place, kms_key_id: kms_key_id.clone(), share_with: Vec::new() })
                .collect(),
            false => vec![Destination {
                place: Place::region(&target.region),
                kms_key_id,
                share_with: target.accounts.clone(),
            }],
        }
    });
    for destination in wanted {
        match destinations.iter_mut().find(|known| known.place == destination.place) {
            Some(known) => {
                for account in destination.share_with {
                    if !known.share_with.contains(&account) {
                        known.share_with.push(account);
                    }
                }
            }
            None => destinations.push(destination),
        }
    }
    destinations
}

/// The places where the distribution block shares the build account's copy (place key → the
/// accounts that launch it): what a plan of many images knows of sharing without asking EC2.
pub fn shared_places(targets: &[DistributionTarget]) -> BTreeMap<String, Vec<String>> {
    let targets: Vec<&DistributionTarget> = targets.iter().collect();
    destinations(&targets)
        .into_iter()
        .filter(|destination| !destination.share_with.is_empty())
        .map(|destination| (destination.place.key(), destination.share_with))
        .collect()
}

/// Distributes the record's image (the executor's home region is its region) to the targets:
/// planned from what each place has, and what is there already is left as it is; a place that
/// fails is reported, and the others still complete.
pub async fn distribute(
    executor: &Executor<'_>,
    record: &ImageRecord,
    targets: &[&DistributionTarget],
) -> Result<Vec<Copied>> {
    copy::copy_to(executor, record, &destinations(targets)).await
}

/// The places that failed, as one error; None when none did.
pub fn failure(record: &ImageRecord, results: &[Copied]) -> Option<Error> {
    let failed: Vec<String> = results
        .iter()
        .filter(|copied| copied.result == CopyResult::Failed)
        .map(|copied| {
            let place = Place { account: copied.account.clone(), region: copied.region.clone() };
            format!("{place}: {}", copied.error.as_deref().unwrap_or("failed"))
        })
        .collect();
    if failed.is_empty() {
        return None;
    }
    Some(
        Error::new(ErrorKind::Aws, format!("{} could not be distributed everywhere", record.ami_id))
            .details(failed.join("\n"))
            .help(format!(
                "the image and the copies made are recorded; fix what failed, then `paw distribute {}` finishes the job",
                record.step_id
            )),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalog::conformance::sample_record;
    use crate::config::{STEP_PARAM_FILE, WORKFLOW_PARAM_FILE};

    /// a -> {b, c}, with the distribution block `distribution`.
    pub(crate) fn workflow(distribution: &str) -> (tempfile::TempDir, Workflow) {
        let dir = tempfile::tempdir().unwrap();
        let param = format!(
            r#"{{"workflow_id": "w", "root_base_ami_id": "ami-1", "root_base_ami_name": "r", "distribution": {distribution}}}"#
        );
        std::fs::write(dir.path().join(WORKFLOW_PARAM_FILE), param).unwrap();
        for (step, parent) in [("a", "null"), ("b", "\"a\""), ("c", "\"a\"")] {
            std::fs::create_dir_all(dir.path().join(step).join("templates")).unwrap();
            let step_param = format!(r#"{{"step_id": "{step}", "previous_step_id": {parent}}}"#);
            std::fs::write(dir.path().join(step).join(STEP_PARAM_FILE), step_param).unwrap();
        }
        let workflow = Workflow::load(dir.path()).unwrap();
        (dir, workflow)
    }

    #[test]
    fn places_keys_targets_and_the_image_at_each_place() {
        for key in ["eu-west-1", "222222222222:eu-west-1"] {
            assert_eq!(Place::parse(key).key(), key);
        }
        assert_eq!(Place::parse("222222222222:eu-west-1").to_string(), "eu-west-1 of account 222222222222");

        let block = r#"[{"region": "us-west-2"},
            {"region": "eu-west-1", "accounts": ["222222222222"], "copy_to_accounts": true, "role_arn": "arn:aws:iam::{account}:role/r",
             "ssm_parameter": "/i/{name}/{variant}/{step}/{channel}/{account}/{region}"},
            {"region": "us-east-1", "accounts": ["444444444444"], "steps": ["a"]}]"#;
        let (_dir, workflow) = workflow(block);
        let step = |id: &str| workflow.step(id).unwrap();
        assert_eq!(targets_of(&workflow, step("a")).len(), 1, "a target naming steps distributes those");
        assert_eq!(targets_of(&workflow, step("b")).len(), 2, "one naming none, the last step of each branch");
        let targets = &workflow.param.distribution;
        assert_eq!(targets[1].role_in("222222222222").as_deref(), Some("arn:aws:iam::222222222222:role/r"));

        let mut record = sample_record("w", "b", "ami-b", "2026-01-01T00:00:00.000000+0000");
        record.copies = [("us-west-2".to_string(), "ami-west".to_string())].into();
        let in_222 = Place { account: Some("222222222222".into()), region: "eu-west-1".into() };
        assert_eq!(image_at(&record, &targets[0], &Place::region("us-west-2")).as_deref(), Some("ami-west"));
        assert_eq!(image_at(&record, &targets[1], &in_222), None, "not copied there yet");
        record.copies.insert(in_222.key(), "ami-222".into());
        assert_eq!(image_at(&record, &targets[1], &in_222).as_deref(), Some("ami-222"), "its own copy");
        let shared = Place { account: Some("444444444444".into()), region: "us-east-1".into() };
        assert_eq!(image_at(&record, &targets[2], &shared).as_deref(), Some("ami-b"), "the build account's, shared");
    }

    #[test]
    fn a_target_that_cannot_work_is_refused() {
        for (block, said) in [
            (r#"[{"region": "eu west"}]"#, "\"eu west\" is not a region name"),
            (r#"[{"region": "mars-1"}]"#, "target 1: \"mars-1\" is not a region name (e.g. eu-west-1)"),
            (
                r#"[{"region": "eu-west-1", "accounts": ["222222222222"], "role_arn": "paw-target", "copy_to_accounts": true}]"#,
                "target 1: role_arn \"paw-target\" is not a role's ARN (arn:aws:iam::{account}:role/NAME)",
            ),
            (r#"[{"region": "eu-west-1", "copy_to_accounts": true}]"#, "copy_to_accounts needs accounts"),
            (r#"[{"region": "eu-west-1", "acounts": []}]"#, "unknown field `acounts`"),
            (
                r#"[{"region": "eu-west-1", "accounts": ["222222222222"], "role_arn": "arn:aws:iam::{account}:role/r", "profile": "p"}]"#,
                "names both a role_arn and a profile",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let param = format!(
                r#"{{"workflow_id": "w", "root_base_ami_id": "ami-1", "root_base_ami_name": "r", "distribution": {block}}}"#
            );
            std::fs::write(dir.path().join(WORKFLOW_PARAM_FILE), param).unwrap();
            let err = crate::config::WorkflowParam::load(&dir.path().join(WORKFLOW_PARAM_FILE), &[]).unwrap_err();
            assert!(err.message.contains(said), "{block}: {err}");
            assert_eq!(err.location.map(|at| at.line), Some(1));
        }
    }
}
