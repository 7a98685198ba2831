//! Staleness (`paw status`): per step of the folder, whether this workflow's image is current,
//! and if not, why: its inputs changed, its parent was rebuilt or is stale itself, or a newer root
//! base AMI exists (`root_base_ami_filter`).

use std::collections::HashMap;

use serde::Serialize;

use crate::catalog::{Catalog, ImageRecord, ImageStatus, Standing, Verdict, own_record};
use crate::change::usage::{self, Seen, Target};
use crate::ec2::{Ec2, Image};
use crate::error::Result;
use crate::fingerprint;
use crate::workflow::{Step, Workflow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Current,
    Stale,
    Missing,
    Revoked,
    /// Current, but its step has tests that never ran on it.
    Untested,
    /// It failed its tests and is kept, marked failed.
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Current => "current",
            State::Stale => "stale",
            State::Missing => "missing",
            State::Revoked => "revoked",
            State::Untested => "untested",
            State::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepStatus {
    pub step_id: String,
    pub ami_id: Option<String>,
    pub state: State,
    pub reasons: Vec<String>,
    /// When EC2 deprecates (or deprecated) the image: the lifecycle policy's, set at build time.
    pub deprecation_time: Option<String>,
    /// Who uses the image, and when it was last seen in use; None when there is no image.
    pub usage: Option<Seen>,
}

/// Every step of the workflow, in build order.
pub async fn status(workflow: &Workflow, catalog: &dyn Catalog, ec2: &dyn Ec2) -> Result<Vec<StepStatus>> {
    let newest_root = match &workflow.param.root_base_ami_filter {
        Some(query) => ec2.find_base_amis(query).await?.into_iter().next(),
        None => None,
    };
    let mut states: HashMap<&str, (State, Option<String>)> = HashMap::new();
    let mut report = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    for step in workflow.steps() {
        let record = own_record(catalog, workflow, &step.id).await?;
        let (state, reasons) = match &record {
            None => (State::Missing, vec!["no image in the catalog".to_string()]),
            Some(record) if record.status != ImageStatus::Available => {
                let standing = record.standing();
                let said = standing.to_string();
                match standing {
                    Standing::Deregistered { .. } => (State::Missing, vec![format!("{} was {said}", record.ami_id)]),
                    Standing::Failed { why, .. } => (State::Failed, std::iter::once(said).chain(why).collect()),
                    _ => (State::Revoked, vec![said]),
                }
            }
            Some(record) => {
                let mut reasons = Vec::new();
                match &step.parent {
                    Some(parent) => match states.get(parent.as_str()) {
                        Some((State::Current | State::Untested, Some(parent_ami)))
                            if *parent_ami != record.base_ami_id =>
                        {
                            reasons.push(format!(
                                "parent rebuilt: {parent} is now {parent_ami}; this image is built on {}",
                                record.base_ami_id
                            ))
                        }
                        Some((State::Current | State::Untested, _)) => {}
                        Some((state, _)) => reasons.push(format!("parent {parent} is {}", state.as_str())),
                        None => {}
                    },
                    None => reasons.extend(root_reasons(workflow, &record.base_ami_id, newest_root.as_ref())),
                }
                if let Some(changed) = changed_inputs(workflow, step, record).await? {
                    reasons.push(format!("inputs changed: {changed}"));
                }
                let untested = record.verdict() == Verdict::Untested && !step.image_tests()?.is_empty();
                let state = match (reasons.is_empty(), untested) {
                    (false, _) => State::Stale,
                    (true, true) => State::Untested,
                    (true, false) => State::Current,
                };
                if untested {
                    reasons.push(format!("never tested: `paw test {}` runs the step's tests", step.id));
                }
                (state, reasons)
            }
        };
        targets.extend(record.iter().filter(|record| record.status != ImageStatus::Deregistered).map(Target::from));
        let ami_id = record.map(|record| record.ami_id);
        states.insert(&step.id, (state, ami_id.clone()));
        let deprecation_time = None;
        report.push(StepStatus { step_id: step.id.clone(), ami_id, state, reasons, deprecation_time, usage: None });
    }
    let ids: Vec<String> = report.iter().filter_map(|step| step.ami_id.clone()).collect();
    let described: HashMap<String, Image> =
        ec2.describe_images(&ids).await?.into_iter().map(|image| (image.id.clone(), image)).collect();
    let mut usage = usage::of_workflow(ec2, workflow, catalog, &targets).await?;
    for step in &mut report {
        let Some(ami_id) = &step.ami_id else { continue };
        let image = described.get(ami_id);
        step.deprecation_time = image.and_then(|image| image.deprecation_time.clone());
        let launched = image.and_then(|image| image.last_launched_time.as_deref());
        step.usage = usage.remove(ami_id).map(|read| read.seen(launched));
    }
    Ok(report)
}

/// What changed among the step's inputs since the image was made from them (on the same parent),
/// or None when nothing did. An image made by hand from an instance is not made from its inputs.
pub async fn changed_inputs(workflow: &Workflow, step: &Step, record: &ImageRecord) -> Result<Option<String>> {
    if step.manual || record.from_instance.is_some() {
        return Ok(None);
    }
    let now = fingerprint::fingerprint(workflow, step, &record.base_ami_id).await?;
    if now.matches(record.fingerprint.as_deref()) {
        return Ok(None);
    }
    Ok(Some(match &record.fingerprint_inputs {
        Some(inputs) => now.changed_since(inputs).join(", "),
        None => "no fingerprint was recorded".to_string(),
    }))
}

/// Why a first step's image is not on the current root base AMI.
fn root_reasons(workflow: &Workflow, base_ami_id: &str, newest: Option<&Image>) -> Vec<String> {
    let param = &workflow.param;
    let mut reasons = Vec::new();
    reasons.extend(crate::source::base_moved(workflow, base_ami_id));
    if let Some(newest) = newest.filter(|newest| newest.id != base_ami_id && newest.id != param.root_base_ami_id) {
        reasons.push(format!(
            "root base superseded: {} ({}) is newer than {base_ami_id}; `paw base-ami update` moves to it",
            newest.id, newest.name
        ));
    }
    reasons
}
