//! `paw test`: runs the steps' image tests on the images they have (nightly, or after a test was
//! added or changed), and writes each run to the image's test history. A failure marks the image
//! failed but keeps it: it may be in use, and `paw images revoke` is the tool to withdraw it.

use crate::catalog::{ImageStatus, TestRun, own_record};
use crate::engine::Services;
use crate::engine::image_tests::{self, OnFailure, Subject, Tester};
use crate::error::{Error, ErrorKind, Result};
use crate::workflow::Step;

/// One step's image, and its tests' run.
#[derive(Debug)]
pub struct Tested {
    pub step_id: String,
    pub ami_id: String,
    pub run: TestRun,
    /// Why it failed, when it did (the failed test, its output's last lines, its log).
    pub failure: Option<Error>,
}

/// Tests the image of each step (each step with tests, when none is named): the workflow's
/// record of it, available or failed. Every step is tested, whatever the others' verdicts; an
/// interrupt stops them.
pub async fn test_images(cx: &Services<'_>, tester: &Tester<'_>, steps: &[&Step], named: bool) -> Result<Vec<Tested>> {
    let workflow_id = &cx.workflow.param.workflow_id;
    let mut tested = Vec::new();
    for step in steps {
        let tests = step.image_tests()?;
        if tests.is_empty() {
            if named {
                return Err(Error::new(ErrorKind::Usage, format!("step \"{}\" has no tests", step.id)).help(format!(
                    "add packer templates under {0}/tests/templates/ or executables under {0}/tests/ (README: Testing images)",
                    step.dir.display()
                )));
            }
            continue;
        }
        let record = own_record(cx.catalog, cx.workflow, &step.id).await?;
        let record = match record {
            Some(record) if matches!(record.status, ImageStatus::Available | ImageStatus::Failed) => record,
            Some(record) => {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!(
                        "{} of step \"{}\" is {}: paw tests available images",
                        record.ami_id,
                        step.id,
                        record.status.as_str()
                    ),
                )
                .help("`paw images list --step STEP` shows the step's images; `paw build` makes a new one"));
            }
            None => {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("step \"{}\" of workflow \"{workflow_id}\" has no image to test", step.id),
                )
                .help("`paw build` makes (and tests) it; --workflow-id ID tests another workflow's"));
            }
        };
        let subject = Subject { step, image: record.as_source(), source: record.base_source() };
        let run = image_tests::run(cx, tester, &subject, &tests, None).await?;
        let failure = match image_tests::record_verdict(cx, &record, &run, OnFailure::Keep).await {
            Ok(()) => None,
            Err(failure) if failure.error.kind == ErrorKind::TestFailed => Some(*failure.error),
            Err(failure) => return Err(*failure.error),
        };
        tested.push(Tested { step_id: step.id.clone(), ami_id: record.ami_id, run, failure });
    }
    if tested.is_empty() {
        return Err(Error::new(ErrorKind::Usage, "no step of the workflow has tests")
            .help("add packer templates under STEP/tests/templates/ or executables under STEP/tests/ (README: Testing images)"));
    }
    Ok(tested)
}
