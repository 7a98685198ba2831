//! Which AMI a step starts from: the root base AMI for a first step, else its parent's recorded AMI.

use crate::ami::AmiRef;
use crate::catalog::{Catalog, ImageStatus, Standing, Verdict, own_record};
use crate::error::{Error, ErrorKind, Result};
use crate::workflow::{Step, Workflow};

/// The AMI a step starts from for rendering and validation: the root base AMI, the parent's
/// recorded AMI, or a placeholder while the parent has none.
pub async fn render_source(workflow: &Workflow, catalog: &dyn Catalog, step: &Step) -> Result<AmiRef> {
    let Some(parent) = &step.parent else {
        return Ok(root_source(workflow));
    };
    let record = own_record(catalog, workflow, parent).await?.filter(|record| record.status == ImageStatus::Available);
    Ok(record.map_or_else(|| AmiRef::placeholder(parent), |record| record.as_source()))
}

/// The source AMI of a build: the root base AMI, or the parent's available record, which, when the
/// parent step has tests, passed them: no step starts from an image that has not.
pub async fn recorded_source(workflow: &Workflow, catalog: &dyn Catalog, step: &Step) -> Result<AmiRef> {
    let Some(parent) = &step.parent else {
        return Ok(root_source(workflow));
    };
    let workflow_id = &workflow.param.workflow_id;
    let parent_tested = match workflow.step(parent) {
        Some(parent_step) => !parent_step.image_tests()?.is_empty(),
        None => false,
    };
    match own_record(catalog, workflow, parent).await? {
        Some(record)
            if record.status == ImageStatus::Available && parent_tested && record.verdict() != Verdict::Passed =>
        {
            Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "step \"{}\" starts from step \"{parent}\", whose AMI {} has not been tested",
                    step.id, record.ami_id
                ),
            )
            .help(format!("test it first: `paw test {parent}`, or build both: `paw build {parent} {}`", step.id)))
        }
        Some(record) if record.status == ImageStatus::Available => Ok(record.as_source()),
        Some(record) if record.status != ImageStatus::Deregistered => {
            let standing = record.standing();
            let help = match standing {
                Standing::Failed { .. } => format!(
                    "fix it and test it again (`paw test {parent}`), or rebuild it: `paw build --force {parent}`"
                ),
                Standing::Revoked { .. } => format!(
                    "rebuild the parent: `paw build --force {parent}`, or restore it: `paw images restore {parent}`"
                ),
                _ => "build the chain under a new workflow id (`--workflow-id ID`): the unchanged steps are rebuilt \
                      or reused"
                    .into(),
            };
            Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "step \"{}\" starts from step \"{parent}\", whose AMI {} cannot be used: {standing}",
                    step.id, record.ami_id
                ),
            )
            .help(help))
        }
        _ => Err(Error::new(
            ErrorKind::Usage,
            format!(
                "step \"{}\" starts from step \"{parent}\", which has no AMI in {} for workflow \"{workflow_id}\"",
                step.id,
                catalog.uri()
            ),
        )
        .help(format!("build the parent first: `paw build {parent}`, or the whole chain: `paw build`"))),
    }
}

/// Why a first step's image, built on `built_on`, is not on the root base AMI now: what plan,
/// status and the report say.
pub fn base_moved(workflow: &Workflow, built_on: &str) -> Option<String> {
    let param = &workflow.param;
    if built_on == param.root_base_ami_id {
        return None;
    }
    let from = match &param.followed_base {
        Some(followed) => format!(" ({})", followed.source),
        None => " (root_base_ami_id)".to_string(),
    };
    Some(format!("base moved: {built_on} → {}{from}", param.root_base_ami_id))
}

pub fn root_source(workflow: &Workflow) -> AmiRef {
    AmiRef { id: workflow.param.root_base_ami_id.clone(), name: workflow.param.root_base_ami_name.clone() }
}
