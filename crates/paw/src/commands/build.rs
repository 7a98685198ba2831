//! `paw plan` and `paw build`: the plan, then the engine on the AWS SDK, with live output and a
//! summary.

use std::sync::Arc;

use paw_core::catalog::TestRun;
use paw_core::engine::image_tests::Tester;
use paw_core::engine::recover::{self, Found};
use paw_core::engine::{
    self, BuildOptions, BuildRun, Outcome, RunEnd, SkipReason, StepOutcome, Summary, VariantReporter,
};
use paw_core::ops::test::Tested;
use paw_core::packer::PackerBinary;
use paw_core::plan::{self, PlannedStep, Rebuild};
use paw_core::provenance::Attester;
use paw_core::workflow::Workflow;
use paw_core::{Error, ErrorKind};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::output::{BuildReporter, Report, table};
use crate::signals;

/// Each variant's plan (one, of no variant, without variants), in the file's order.
pub struct Plan<'a> {
    plans: Vec<(Option<&'a str>, Vec<PlannedStep<'a>>)>,
    /// `--detailed-exitcode`: exit 2 when a step is to be built, reused or tested.
    detailed_exitcode: bool,
}

pub async fn plan<'a>(
    cx: &'a Context,
    ids: &[String],
    rebuild: &Rebuild,
    detailed_exitcode: bool,
) -> paw_core::Result<Plan<'a>> {
    let catalog = cx.catalog_for_reading().await?;
    let region = cx.region().await?;
    let mut plans = Vec::new();
    for workflow in cx.workflows_with_upstream().await? {
        let steps = plan::select(workflow, ids, rebuild)?;
        let planned = plan::plan(workflow, catalog.as_ref(), region, &steps, rebuild).await?;
        plans.push((workflow.variant.as_deref(), planned));
    }
    Ok(Plan { plans, detailed_exitcode })
}

impl Report for Plan<'_> {
    fn json(&self) -> Value {
        let steps = self.plans.iter().flat_map(|(variant, plan)| plan.iter().map(|planned| planned.json(*variant)));
        json!(steps.collect::<Vec<_>>())
    }

    fn exit_code(&self) -> i32 {
        let changes = self.plans.iter().flat_map(|(_, plan)| plan).any(|planned| {
            matches!(planned.action, plan::Action::Build { .. } | plan::Action::Reuse { .. })
                || planned.tests_note.is_some()
        });
        if self.detailed_exitcode && changes { 2 } else { 0 }
    }

    fn text(&self) -> String {
        let rows = self.plans.iter().flat_map(|(variant, plan)| {
            plan.iter().map(|planned| {
                let step = engine::variant_step(*variant, &planned.step.id);
                vec![step, planned.action.name().to_string(), planned.reason()]
            })
        });
        table(&["STEP", "ACTION", "REASON"], rows.collect())
    }
}

pub struct Built(RunEnd);

pub async fn build(
    cx: &Context,
    ids: &[String],
    rebuild: &Rebuild,
    options: BuildOptions,
    verbose: bool,
) -> paw_core::Result<Built> {
    // What the environment says, before anything talks to AWS.
    let lease_ttl = paw_core::catalog::lease_ttl()?;
    let packer = locate_packer()?;
    let region = cx.region().await?;
    let ec2 = cx.ec2(None).await?;
    let cancel = CancellationToken::new();
    // `--packer-debug` asks questions on the terminal: it gets packer's lines.
    let reporter = run_reporter(cx, ids, verbose || options.packer_debug, &cancel)?;
    let attester = cx.attester().await?;
    let run = BuildRun {
        workflows: cx.workflows_with_upstream().await?,
        steps: ids,
        rebuild,
        options,
        region,
        ec2: &ec2,
        catalog: cx.catalog().await?,
        packer: &packer,
        packer_env: &|workflow: &Workflow| paw_aws::packer_env(&workflow.param, region),
        reporter: reporter.as_ref(),
        cancel: &cancel,
        lease_ttl,
        notifier: cx.notifier().await?,
        attester: &attester,
    };
    let built = Built(engine::build(&run).await?);
    if let Some(ci) = cx.output.ci {
        ci.finish(&built.0.outcomes, region)
            .map_err(|err| Error::new(ErrorKind::Io, format!("cannot write the CI outputs: {err}")))?;
    }
    Ok(built)
}

/// Each variant's tested images.
pub struct TestedImages(Vec<(Option<String>, Tested)>);

/// `paw test`: the image tests of the steps' images, in each variant.
pub async fn test(cx: &Context, ids: &[String], verbose: bool) -> paw_core::Result<TestedImages> {
    let workflows = cx.workflows_with_upstream().await?;
    let packer = locate_packer()?;
    let region = cx.region().await?;
    let ec2 = cx.ec2(None).await?;
    let catalog = cx.catalog().await?;
    let cancel = CancellationToken::new();
    let reporter = run_reporter(cx, ids, verbose, &cancel)?;
    let mut tested = Vec::new();
    for workflow in workflows {
        let reporter = VariantReporter::of(reporter.as_ref(), workflow.variant.as_deref());
        // Tests record verdicts, not images: nothing to sign.
        let reporter = reporter.as_ref();
        let attester = &Attester::none();
        let services = engine::Services { workflow, region, ec2: &ec2, catalog, reporter, cancel: &cancel, attester };
        let env = paw_aws::packer_env(&workflow.param, region);
        let tester = Tester { packer: &packer, env: &env, by: format!("paw test ({})", cx.caller().await?) };
        let steps = workflow.select(ids)?;
        let results = paw_core::ops::test::test_images(&services, &tester, &steps, !ids.is_empty()).await?;
        tested.extend(results.into_iter().map(|result| (workflow.variant.clone(), result)));
    }
    Ok(TestedImages(tested))
}

impl Report for TestedImages {
    fn json(&self) -> Value {
        json!(
            self.0
                .iter()
                .map(|(variant, tested)| json!({
                    "step_id": tested.step_id,
                    "variant": variant,
                    "ami_id": tested.ami_id,
                    "passed": tested.run.passed(),
                    "run": tested.run,
                }))
                .collect::<Vec<_>>()
        )
    }

    fn text(&self) -> String {
        let rows = self
            .0
            .iter()
            .flat_map(|(variant, tested)| {
                let step = engine::variant_step(variant.as_deref(), &tested.step_id);
                tested.run.results.iter().map(move |result| {
                    vec![
                        step.clone(),
                        tested.ami_id.clone(),
                        result.name.clone(),
                        if result.passed { "passed".into() } else { "FAILED".into() },
                        format!("{:.1}", result.seconds),
                        result.log.clone(),
                    ]
                })
            })
            .collect();
        table(&["STEP", "AMI", "TEST", "VERDICT", "SECONDS", "LOG"], rows)
    }

    fn error(&self) -> Option<Error> {
        let failed: Vec<String> = self
            .0
            .iter()
            .filter(|(_, tested)| tested.failure.is_some())
            .map(|(variant, tested)| engine::variant_step(variant.as_deref(), &tested.step_id))
            .collect();
        if failed.is_empty() {
            return None;
        }
        Some(
            Error::new(ErrorKind::TestFailed, format!("the images of {} failed their tests", failed.join(", ")))
                .help("each failure is above, with its log; the images are marked failed (kept: `paw images revoke` withdraws one)"),
        )
    }
}

pub struct Recovered(Vec<Found>);

/// `paw recover`: settles what interrupted runs of the workflow (of each variant) left; lists
/// runs still at work.
pub async fn recover(cx: &Context) -> paw_core::Result<Recovered> {
    let region = cx.region().await?;
    let ec2 = cx.ec2(None).await?;
    let catalog = cx.catalog().await?;
    let cancel = CancellationToken::new();
    let attester = cx.attester().await?;
    let mut found = Vec::new();
    for workflow in cx.workflows_with_upstream().await? {
        let labels: Vec<String> =
            workflow.steps().iter().map(|step| engine::variant_step(workflow.variant.as_deref(), &step.id)).collect();
        let reporter = BuildReporter::choose(labels.iter().map(String::as_str), &cx.output, true);
        let reporter = VariantReporter::of(&reporter, workflow.variant.as_deref());
        let context = engine::Services {
            workflow,
            region,
            ec2: &ec2,
            catalog,
            reporter: reporter.as_ref(),
            cancel: &cancel,
            attester: &attester,
        };
        found.extend(recover::recover(&context).await?);
    }
    Ok(Recovered(found))
}

impl Report for Recovered {
    fn json(&self) -> Value {
        json!(
            self.0
                .iter()
                .map(|found| json!({
                    "step_id": found.entry.step_id,
                    "host": found.entry.host,
                    "pid": found.entry.pid,
                    "since": found.entry.since,
                    "state": if found.stale.is_some() { "settled" } else { "running" },
                    "reason": found.stale,
                }))
                .collect::<Vec<_>>()
        )
    }

    fn text(&self) -> String {
        if self.0.is_empty() {
            return "nothing to recover: no build of this workflow is in flight".into();
        }
        let rows = self
            .0
            .iter()
            .map(|found| {
                let state = match &found.stale {
                    Some(why) => format!("settled ({why})"),
                    None => "still running: left alone".to_string(),
                };
                vec![found.entry.step_id.clone(), found.entry.holder(), state]
            })
            .collect();
        table(&["STEP", "HELD BY", "STATE"], rows)
    }
}

impl Report for Built {
    fn json(&self) -> Value {
        json!(self.0.outcomes.iter().map(StepOutcome::json).collect::<Vec<_>>())
    }

    fn text(&self) -> String {
        let dash = || "-".to_string();
        let rows = self
            .0
            .outcomes
            .iter()
            .map(|step| {
                let tests = match &step.outcome {
                    Outcome::Built { tests, .. } | Outcome::UpToDate { tests, .. } => tests_cell(tests.as_ref()),
                    Outcome::Failed { error, .. } if error.kind == ErrorKind::TestFailed => "failed".into(),
                    _ => dash(),
                };
                let (result, ami, packer, paw) = match &step.outcome {
                    Outcome::Built { ami, packer_time, paw_time, attempt, instance_type, .. } => (
                        built_how(*attempt, instance_type.as_deref()),
                        ami.id.clone(),
                        format!("{:.1}", packer_time.as_secs_f64()),
                        format!("{:.1}", paw_time.as_secs_f64()),
                    ),
                    Outcome::UpToDate { ami, .. } => ("up-to-date".into(), ami.id.clone(), dash(), dash()),
                    Outcome::Reused { ami, from } => (format!("reused from {from}"), ami.id.clone(), dash(), dash()),
                    Outcome::DryRun => ("dry run".into(), dash(), dash(), dash()),
                    Outcome::Manual => ("manual: no AMI yet".into(), dash(), dash(), dash()),
                    Outcome::Failed { amis, .. } if !amis.is_empty() => {
                        let ids: Vec<&str> = amis.iter().map(|left| left.ami_id.as_str()).collect();
                        ("FAILED (AMIs below)".into(), ids.join(" "), dash(), dash())
                    }
                    Outcome::Failed { .. } => ("FAILED".into(), dash(), dash(), dash()),
                    Outcome::Skipped(reason) => (format!("skipped: {reason}"), dash(), dash(), dash()),
                };
                vec![step.label(), result, ami, tests, packer, paw]
            })
            .collect();
        let mut lines = vec![table(&["STEP", "RESULT", "AMI", "TESTS", "PACKER (s)", "PAW (s)"], rows)];
        // What became of the AMIs that failed steps made: nothing is left in EC2 unsaid.
        for step in &self.0.outcomes {
            if let Outcome::Failed { error, .. } = &step.outcome
                && error.kind == ErrorKind::TestFailed
            {
                let log = error.help.as_deref().unwrap_or_default();
                lines.push(format!("{}: {}; {log}", step.label(), error.message));
            }
            if let Outcome::Failed { amis, .. } = &step.outcome {
                lines.extend(amis.iter().map(|left| format!("{}: {}: {}", step.label(), left.ami_id, left.fate)));
            }
        }
        // Manual steps still waiting for a person, and what waits for them.
        for step in self.0.outcomes.iter().filter(|step| matches!(step.outcome, Outcome::Manual)) {
            let waiting = SkipReason::WaitsForManualStep(step.step_id.clone());
            let descendants: Vec<String> = self
                .0
                .outcomes
                .iter()
                .filter(|other| other.variant == step.variant)
                .filter(|other| matches!(&other.outcome, Outcome::Skipped(reason) if reason == &waiting))
                .map(StepOutcome::label)
                .collect();
            let after = if descendants.is_empty() {
                String::new()
            } else {
                format!("; then `paw build` builds {}", descendants.join(", "))
            };
            let variant = step.variant.as_ref().map(|variant| format!(" --variant {variant}")).unwrap_or_default();
            lines.push(format!(
                "{} is a manual step: make its AMI with `paw images from-instance {}{variant} --instance-id ID`{after}",
                step.label(),
                step.step_id
            ));
        }
        // A notification that could not be delivered fails nothing, and is said.
        lines.extend(self.0.deliveries.iter().filter_map(|delivery| delivery.failure()));
        lines.push(Summary::of(&self.0.outcomes).to_string());
        lines.join("\n")
    }

    fn error(&self) -> Option<Error> {
        Summary::error(&self.0.outcomes)
    }
}

/// The tests a build ran on a step's image, and how long they took: "2 passed (3.1 s)", "1 of 2
/// failed (0.4 s)", or "-" (none ran).
fn tests_cell(tests: Option<&TestRun>) -> String {
    let Some(run) = tests else { return "-".into() };
    let failed = run.results.iter().filter(|result| !result.passed).count();
    let seconds = run.duration().as_secs_f64();
    match failed {
        0 => format!("{} passed ({seconds:.1} s)", run.results.len()),
        failed => format!("{failed} of {} failed ({seconds:.1} s)", run.results.len()),
    }
}

/// The reporter of a run of the steps `ids` of every variant (each named as the run names it), and
/// the signals, from now on, as its interrupt.
fn run_reporter(
    cx: &Context,
    ids: &[String],
    verbose: bool,
    cancel: &CancellationToken,
) -> paw_core::Result<Arc<BuildReporter>> {
    let mut labels = Vec::new();
    for workflow in cx.workflows()? {
        let variant = workflow.variant.as_deref();
        labels.extend(workflow.select(ids)?.iter().map(|step| engine::variant_step(variant, &step.id)));
    }
    let reporter = Arc::new(BuildReporter::choose(labels.iter().map(String::as_str), &cx.output, verbose));
    signals::stop_on_signals(cancel.clone(), reporter.clone())
        .map_err(|err| Error::new(ErrorKind::Io, format!("cannot listen for signals: {err}")))?;
    Ok(reporter)
}

fn locate_packer() -> paw_core::Result<PackerBinary> {
    PackerBinary::locate().ok_or_else(|| {
        Error::new(ErrorKind::Usage, "no packer found").help("install packer, or set PAW_PACKER to a packer binary")
    })
}

/// "built", with the attempt and the instance type when either is worth saying.
fn built_how(attempt: u32, instance_type: Option<&str>) -> String {
    match (attempt, instance_type) {
        (1, None) => "built".into(),
        (1, Some(instance_type)) => format!("built ({instance_type})"),
        (attempt, None) => format!("built (attempt {attempt})"),
        (attempt, Some(instance_type)) => format!("built (attempt {attempt}, {instance_type})"),
    }
}
