//! The plan: per step, in build order, whether its AMI is up to date, can be reused from another
//! workflow, or must be built, and why. Planning reads the catalog and the step folders; it changes
//! nothing and needs neither packer nor EC2.

use std::collections::HashMap;

use crate::catalog::{Catalog, ImageRecord, ImageStatus};
use crate::engine::{recorded_source, root_source};
use crate::error::Result;
use crate::fingerprint::{self, Fingerprint};
use crate::render::SourceAmi;
use crate::workflow::{Step, Workflow};

#[derive(Debug, Clone)]
pub enum Action {
    /// This workflow already has an available AMI with this fingerprint.
    UpToDate { record: ImageRecord },
    /// Another workflow has an available AMI with this fingerprint: record it for this one too.
    Reuse { record: ImageRecord },
    /// Build it: `reason` says why; `replaces` is this workflow's AMI of the step, made from other
    /// inputs, which only `--force` may deregister.
    Build { reason: String, replaces: Option<ImageRecord> },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::UpToDate { .. } => "up-to-date",
            Action::Reuse { .. } => "reuse",
            Action::Build { .. } => "build",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            Action::UpToDate { record } => format!("{} has this fingerprint", record.ami_id),
            Action::Reuse { record } => {
                format!("{} of workflow {} has this fingerprint", record.ami_id, record.workflow_id)
            }
            Action::Build { reason, .. } => reason.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PlannedStep<'a> {
    pub step: &'a Step,
    pub action: Action,
    /// The source AMI, unless the parent is rebuilt in this run (then it is known only after).
    pub source: Option<SourceAmi>,
    /// The fingerprint, when the source AMI is known.
    pub fingerprint: Option<Fingerprint>,
}

/// Plans the steps (in build order).
pub async fn plan<'a>(
    workflow: &'a Workflow,
    catalog: &dyn Catalog,
    region: &str,
    steps: &[&'a Step],
) -> Result<Vec<PlannedStep<'a>>> {
    let workflow_id = &workflow.param.workflow_id;
    let mut planned: Vec<PlannedStep<'a>> = Vec::with_capacity(steps.len());
    let mut index: HashMap<&str, usize> = HashMap::new();
    for step in steps {
        let existing =
            catalog.get(workflow_id, &step.id).await?.filter(|record| record.status == ImageStatus::Available);
        let source = match &step.parent {
            None => Some(root_source(workflow)),
            Some(parent) => match index.get(parent.as_str()).map(|at| &planned[*at].action) {
                Some(Action::Build { .. }) => None,
                Some(Action::UpToDate { record } | Action::Reuse { record }) => {
                    Some(SourceAmi { id: record.ami_id.clone(), name: record.ami_name.clone() })
                }
                None => Some(recorded_source(workflow, catalog, step).await?),
            },
        };
        let (action, fingerprint) = match &source {
            None => {
                let parent = step.parent.as_deref().unwrap_or_default();
                (Action::Build { reason: format!("the parent step {parent} is rebuilt"), replaces: existing }, None)
            }
            Some(source) => {
                let fingerprint = fingerprint::fingerprint(workflow, step, &source.id)?;
                let action = decide(catalog, workflow_id, region, step, &fingerprint, existing).await?;
                (action, Some(fingerprint))
            }
        };
        index.insert(&step.id, planned.len());
        planned.push(PlannedStep { step, action, source, fingerprint });
    }
    Ok(planned)
}

async fn decide(
    catalog: &dyn Catalog,
    workflow_id: &str,
    region: &str,
    step: &Step,
    fingerprint: &Fingerprint,
    existing: Option<ImageRecord>,
) -> Result<Action> {
    if let Some(record) = existing {
        if record.fingerprint.as_deref() == Some(fingerprint.digest.as_str()) {
            return Ok(Action::UpToDate { record });
        }
        let reason = match &record.fingerprint_inputs {
            Some(inputs) => {
                format!("changed since {}: {}", record.ami_id, fingerprint.changed_since(inputs).join(", "))
            }
            None => format!("{} has no recorded fingerprint to compare with", record.ami_id),
        };
        return Ok(Action::Build { reason, replaces: Some(record) });
    }
    let reusable = catalog.find_by_fingerprint(&fingerprint.digest).await?.into_iter().find(|record| {
        record.status == ImageStatus::Available && record.region == region && record.workflow_id != workflow_id
    });
    if let Some(record) = reusable {
        return Ok(Action::Reuse { record });
    }
    // Say what changed since the newest AMI of this step in any workflow, if there is one.
    let previous = catalog.list_step(&step.id).await?.into_iter().find(|record| record.fingerprint_inputs.is_some());
    let reason = match previous {
        Some(record) => format!(
            "changed since {} of workflow {}: {}",
            record.ami_id,
            record.workflow_id,
            fingerprint.changed_since(record.fingerprint_inputs.as_ref().expect("found with inputs")).join(", ")
        ),
        None => "no AMI yet".into(),
    };
    Ok(Action::Build { reason, replaces: None })
}
