//! `paw build` as one call: what interrupted runs left is settled, each variant is planned (an
//! image that would be replaced is refused without `--force`), the run's plan is reported, every
//! variant's steps run, and the run's end is reported with every step's outcome.

use tokio_util::sync::CancellationToken;

use super::events::{Event, Reporter, RunEvent, StepOutcome, Summary, VariantReporter};
use super::services::Services;
use super::{BuildOptions, Engine, check_replacements, recover, run_variants};
use crate::catalog::Catalog;
use crate::ec2::Ec2;
use crate::error::Result;
use crate::notify::{Delivery, Notice, NoticeKind, Notifier};
use crate::packer::Packer;
use crate::plan::{self, PlannedStep, Rebuild};
use crate::provenance::Attester;
use crate::workflow::Workflow;

/// A build asked for, and what it works with: the binary's one call.
pub struct BuildRun<'a> {
    /// The folder's workflow, or one per variant.
    pub workflows: &'a [Workflow],
    /// The steps asked for; every step when empty.
    pub steps: &'a [String],
    pub rebuild: &'a Rebuild,
    pub options: BuildOptions,
    pub region: &'a str,
    pub ec2: &'a dyn Ec2,
    pub catalog: &'a dyn Catalog,
    pub packer: &'a dyn Packer,
    /// Packer's environment for a workflow: region, profile, credentials.
    pub packer_env: &'a (dyn Fn(&Workflow) -> Vec<(String, String)> + Sync),
    /// The run's reporter: each variant's steps are named `<variant>/<step>` on it.
    pub reporter: &'a dyn Reporter,
    pub cancel: &'a CancellationToken,
    /// How long a step's lease lasts unless renewed (`catalog::lease_ttl`), in seconds.
    pub lease_ttl: i64,
    /// Where the run's notices go (the workflow's `"notify"`), delivered before its summary.
    pub notifier: &'a Notifier,
    /// What writes each image's statement, and signs it (`"provenance"`).
    pub attester: &'a Attester<'a>,
}

/// A run's end: every step's outcome, in each variant's build order, and what became of its
/// notifications.
pub struct RunEnd {
    pub outcomes: Vec<StepOutcome>,
    pub deliveries: Vec<Delivery>,
}

/// Runs the build, then delivers its notices.
pub async fn build(run: &BuildRun<'_>) -> Result<RunEnd> {
    let noting = Noting { inner: run.reporter, notifier: run.notifier, workflows: run.workflows, region: run.region };
    let run = &BuildRun { reporter: &noting, ..*run };
    // Every step asked for exists, and --rebuild names some of them: before anything is settled.
    let mut selected = Vec::new();
    for workflow in run.workflows {
        selected.push(plan::select(workflow, run.steps, run.rebuild)?);
    }
    let reporters: Vec<Box<dyn Reporter + '_>> =
        run.workflows.iter().map(|workflow| VariantReporter::of(run.reporter, workflow.variant.as_deref())).collect();
    let engines: Vec<Engine<'_>> = run
        .workflows
        .iter()
        .zip(&reporters)
        .map(|(workflow, reporter)| Engine {
            cx: Services {
                workflow,
                region: run.region,
                ec2: run.ec2,
                catalog: run.catalog,
                reporter: reporter.as_ref(),
                cancel: run.cancel,
                attester: run.attester,
            },
            packer: run.packer,
            packer_env: (run.packer_env)(workflow),
            lease_ttl: run.lease_ttl,
        })
        .collect();
    let mut plans: Vec<Vec<PlannedStep<'_>>> = Vec::new();
    for (engine, steps) in engines.iter().zip(&selected) {
        let workflow = engine.cx.workflow;
        // An adopted AMI of an interrupted run changes the plan.
        if !run.options.dry_run {
            recover::recover(&engine.cx).await?;
        }
        let plan = plan::plan(workflow, run.catalog, run.region, steps, run.rebuild).await?;
        check_replacements(workflow, &plan, &run.options)?;
        plans.push(plan);
    }
    let steps = run
        .workflows
        .iter()
        .zip(&plans)
        .flat_map(|(workflow, plan)| plan.iter().map(|planned| planned.json(workflow.variant.as_deref())));
    run.reporter.run_event(&RunEvent::Started {
        workflow_name: &run.workflows[0].name,
        workflow_ids: run.workflows.iter().map(|workflow| workflow.param.workflow_id.as_str()).collect(),
        region: run.region,
        dry_run: run.options.dry_run,
        steps: steps.collect(),
    });
    let runs: Vec<(&Engine<'_>, &[PlannedStep<'_>])> =
        engines.iter().zip(&plans).map(|(engine, plan)| (engine, plan.as_slice())).collect();
    let outcomes: Vec<StepOutcome> = run_variants(&runs, run.options).await?.into_iter().flatten().collect();
    if let Some(notice) = build_failed(run.workflows, run.region, &outcomes) {
        run.notifier.note(notice);
    }
    let deliveries = run.notifier.deliver().await;
    run.reporter.run_event(&RunEvent::Finished { outcomes: &outcomes, deliveries: &deliveries });
    Ok(RunEnd { outcomes, deliveries })
}

/// The build's reporter, noting what its events say happened (an image built, a test failed)
/// before passing each on.
struct Noting<'a> {
    inner: &'a dyn Reporter,
    notifier: &'a Notifier,
    workflows: &'a [Workflow],
    region: &'a str,
}

impl Reporter for Noting<'_> {
    fn event(&self, event: Event<'_>) {
        let kind = match &event {
            Event::Built { .. } => Some(NoticeKind::ImageBuilt),
            Event::TestFinished { result, .. } if !result.passed => Some(NoticeKind::ImageTestFailed),
            _ => None,
        };
        if let Some(kind) = kind {
            let (record_type, fields) = event.record();
            let (variant, step) = super::events::split_label(event.step());
            let workflow = self.workflows.iter().find(|workflow| workflow.variant.as_deref() == variant);
            self.notifier.note(Notice::new(kind, record_type, workflow, Some(step), self.region, fields));
        }
        self.inner.event(event);
    }

    fn run_event(&self, event: &RunEvent<'_>) {
        self.inner.run_event(event);
    }
}

/// The notice of a build in which a step failed: the summary's record and the run's error.
fn build_failed(workflows: &[Workflow], region: &str, outcomes: &[StepOutcome]) -> Option<Notice> {
    let error = Summary::error(outcomes)?;
    let mut fields = serde_json::json!(Summary::of(outcomes));
    fields["error"] = super::events::error_record(&error);
    Some(Notice::new(NoticeKind::BuildFailed, "summary", workflows.first(), None, region, fields))
}
