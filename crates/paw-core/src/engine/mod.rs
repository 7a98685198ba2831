//! `paw build`: the plan, carried out. The binary makes one call, `build` (`run.rs`), which
//! settles, plans and reports the run; this file schedules its steps. Every step about to be built
//! is rendered and validated first, all at once, so that a broken template stops the run before
//! any instance starts. Then a step starts as soon as its parent is done, with at most `jobs`
//! packer builds at once; each step to build runs the stages of `stages.rs`. The engine reports
//! what happens as events; the binary decides how they look.

pub mod events;
pub mod image_tests;
pub mod lease;
pub mod pipeline;
pub mod recording;
pub mod recover;
mod run;
pub mod services;
pub mod stages;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::Semaphore;

pub use events::{
    Event, LeftAmi, Outcome, Reporter, RunEvent, SkipReason, StepFailure, StepOutcome, Summary, VariantReporter,
    error_record, event_line, variant_step,
};
pub use run::{BuildRun, RunEnd, build};
pub use services::Services;

use crate::ami::{self, AmiRef};
use crate::catalog::{ImageRecord, ImageStatus, Recorded, TestRun, Verdict, now_create_at};
use crate::ec2::{Image, ImageState};
use crate::error::{Error, ErrorKind, Result};
use crate::packer::Packer;
use crate::plan::{Action, PlannedStep};
use crate::render::{self, StepLock};
use crate::workflow::{Step, Workflow};
use image_tests::{OnFailure, Subject, Tester};
use pipeline::{Finished, StageId, StepRun};
use stages::BuildStages;

#[derive(Debug, Clone, Copy)]
pub struct BuildOptions {
    pub dry_run: bool,
    pub packer_debug: bool,
    /// Deregister this workflow's AMIs whose inputs changed, and rebuild them.
    pub force: bool,
    /// With `force`: delete the deregistered AMIs' snapshots too.
    pub delete_snapshots: bool,
    /// How many packer builds (and, before them, validations) may run at once.
    pub jobs: usize,
    /// How many more times a step is tried when packer failed for a passing cause
    /// (`packer::transient_cause`), and the wait before the first retry (doubled for each next).
    pub retries: u32,
    pub retry_delay: std::time::Duration,
    /// An image that fails its tests is kept (marked failed, tagged), not deregistered.
    pub keep_failed: bool,
}

/// Everything a build talks to.
struct Engine<'a> {
    cx: Services<'a>,
    packer: &'a dyn Packer,
    /// Region, profile and credentials for packer's environment.
    packer_env: Vec<(String, String)>,
    /// How long a step's lease lasts unless renewed (`catalog::lease_ttl`), in seconds.
    lease_ttl: i64,
}

/// This workflow's AMIs that the plan would replace (their inputs changed, or `--rebuild`):
/// refused unless `--force`.
fn check_replacements(workflow: &Workflow, plan: &[PlannedStep<'_>], options: &BuildOptions) -> Result<()> {
    let replaced: Vec<String> = plan
        .iter()
        .filter_map(|planned| match &planned.action {
            Action::Build { reason, replaces: Some(record) } => {
                Some(format!("{} has {}, but {reason}", planned.step.id, record.ami_id))
            }
            _ => None,
        })
        .collect();
    if replaced.is_empty() || options.force || options.dry_run {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Usage,
        format!("workflow \"{}\" already has AMIs of the steps to build", workflow.param.workflow_id),
    )
    .details(replaced.join("\n"))
    .help(format!(
        "either set a new workflow_id in {} and build again (the unchanged steps are reused), or run `paw build --force` \
         to deregister those AMIs (add --delete-snapshots to delete their snapshots too) and rebuild them",
        workflow.param.path.display()
    )))
}

/// Runs the plans of a workflow's variants (each with its engine) as one run: every step to build
/// of every variant is rendered and validated first, and nothing is made when one fails; then all
/// are built, `jobs` packer builds at a time across the variants. The outcomes come per variant.
async fn run_variants(
    runs: &[(&Engine<'_>, &[PlannedStep<'_>])],
    options: BuildOptions,
) -> Result<Vec<Vec<StepOutcome>>> {
    for (engine, plan) in runs {
        engine.validate_all(plan, options.jobs).await?;
    }
    let packer_slots = Semaphore::new(options.jobs.max(1));
    let slots = &packer_slots;
    Ok(futures_util::future::join_all(runs.iter().map(|(engine, plan)| engine.execute(plan, options, slots))).await)
}

impl Engine<'_> {
    /// Runs one workflow's plan, as `build` runs each variant's (the unit tests' way in).
    #[cfg(test)]
    async fn run(&self, plan: &[PlannedStep<'_>], options: BuildOptions) -> Result<Vec<StepOutcome>> {
        Ok(run_variants(&[(self, plan)], options).await?.remove(0))
    }

    /// Builds the validated plan, a packer build at a time per slot.
    async fn execute(
        &self,
        plan: &[PlannedStep<'_>],
        options: BuildOptions,
        packer_slots: &Semaphore,
    ) -> Vec<StepOutcome> {
        let in_plan: HashSet<&str> = plan.iter().map(|planned| planned.step.id.as_str()).collect();
        let mut outcomes: HashMap<String, Outcome> = HashMap::new();
        let mut waiting: Vec<&PlannedStep<'_>> = plan.iter().collect();
        let mut running = FuturesUnordered::new();
        loop {
            // Plan order is parents first, so one pass settles every step that can be settled now.
            let mut still_waiting = Vec::new();
            for planned in waiting {
                let parent = planned.step.parent.as_deref().filter(|parent| in_plan.contains(parent));
                let parent_outcome = parent.map(|parent| outcomes.get(parent));
                let skip = match parent_outcome {
                    Some(None) => {
                        still_waiting.push(planned);
                        continue;
                    }
                    _ if self.cx.cancel.is_cancelled() => Some(SkipReason::Interrupted),
                    Some(Some(Outcome::Manual)) => {
                        Some(SkipReason::WaitsForManualStep(parent.expect("a parent outcome has a parent").to_string()))
                    }
                    // What waits for a manual step waits for it all the way down.
                    Some(Some(Outcome::Skipped(reason @ SkipReason::WaitsForManualStep(_)))) => Some(reason.clone()),
                    Some(Some(outcome)) if outcome.ami().is_none() && !matches!(outcome, Outcome::DryRun) => {
                        Some(SkipReason::ParentDidNotFinish(parent.expect("a parent outcome has a parent").to_string()))
                    }
                    _ => None,
                };
                if let Some(reason) = skip {
                    self.cx.reporter.event(Event::Skipped { step: &planned.step.id, reason: &reason });
                    outcomes.insert(planned.step.id.clone(), Outcome::Skipped(reason));
                    continue;
                }
                let parent_ami = parent_outcome.flatten().and_then(Outcome::ami).cloned();
                let step = planned.step.id.clone();
                let slots = packer_slots;
                running.push(async move { (step, self.run_step(planned, parent_ami, options, slots).await) });
            }
            waiting = still_waiting;
            match running.next().await {
                Some((step, outcome)) => {
                    outcomes.insert(step, outcome);
                }
                None => break,
            }
        }
        plan.iter()
            .map(|planned| StepOutcome {
                step_id: planned.step.id.clone(),
                variant: self.cx.workflow.variant.clone(),
                outcome: outcomes.remove(&planned.step.id).expect("every planned step has an outcome"),
            })
            .collect()
    }

    /// Fail fast: every step to build, rendered (its parent's AMI a placeholder while the parent
    /// is still to be built) and validated, `jobs` at a time. The first broken step in plan order
    /// is the error; the others are named in it.
    async fn validate_all(&self, plan: &[PlannedStep<'_>], jobs: usize) -> Result<()> {
        let to_build = plan.iter().filter(|planned| matches!(planned.action, Action::Build { .. }));
        let checks = futures_util::stream::iter(to_build.map(|planned| async move {
            let step = planned.step;
            let source = planned.source.clone().unwrap_or_else(|| placeholder_for(step));
            self.cx.reporter.event(Event::Stage { step: &step.id, stage: StageId::Validate });
            let _lock = StepLock::acquire(step).await?;
            image_tests::validate_templates(self.cx.workflow, self.packer, step, &source, self.cx.region).await?;
            let prepared = render::prepare_step(self.cx.workflow, step, source, self.cx.region).await?;
            self.packer.validate(&step.dir, &prepared.var_files(), prepared.hcl.requires_plugins).await
        }))
        .buffered(jobs.max(1));
        let mut failures: Vec<Error> = checks.filter_map(|result| async move { result.err() }).collect().await;
        if failures.is_empty() {
            return Ok(());
        }
        let first = failures.remove(0);
        if failures.is_empty() {
            return Err(first);
        }
        let others: Vec<String> = failures.iter().map(|error| error.to_string()).collect();
        let details = format!("{} more step(s) fail too:\n{}", others.len(), others.join("\n"));
        Err(match first.details {
            Some(ref own) => {
                let own = own.clone();
                first.details(format!("{own}\n{details}"))
            }
            None => first.details(details),
        })
    }

    async fn run_step(
        &self,
        planned: &PlannedStep<'_>,
        parent_ami: Option<AmiRef>,
        options: BuildOptions,
        packer_slots: &Semaphore,
    ) -> Outcome {
        let step = planned.step;
        let result: std::result::Result<Outcome, StepFailure> = match &planned.action {
            Action::UpToDate { record } => self.up_to_date(step, record, options).await,
            Action::Reuse { record } => self.reuse(planned, record, options).await,
            Action::Manual => {
                self.cx.reporter.event(Event::Manual { step: &step.id });
                Ok(Outcome::Manual)
            }
            Action::Build { replaces, .. } => {
                // The plan's source, or the AMI the parent just got; a dry run's parent has none.
                let fresh = planned.source.is_none() && parent_ami.is_some();
                let source = planned.source.clone().or(parent_ami).unwrap_or_else(|| placeholder_for(step));
                self.build_step(planned, source, fresh, replaces.as_ref(), options, packer_slots).await
            }
        };
        result.unwrap_or_else(|StepFailure { error, amis, .. }| {
            self.cx.reporter.event(Event::Failed { step: &step.id, error: &error });
            Outcome::Failed { error: *error, amis }
        })
    }

    /// A step to build: one attempt, and more while packer fails for a passing cause. The AMIs that
    /// failed attempts made, and what became of them, stay in the step's failure.
    async fn build_step(
        &self,
        planned: &PlannedStep<'_>,
        source: AmiRef,
        source_is_fresh: bool,
        replaces: Option<&ImageRecord>,
        options: BuildOptions,
        packer_slots: &Semaphore,
    ) -> std::result::Result<Outcome, StepFailure> {
        let step = planned.step;
        self.cx.reporter.event(Event::StepStarted { step: &step.id, source: &source });
        // The plan's fingerprint, or, when the parent is built in this run, one from its new AMI.
        let fingerprint = match &planned.fingerprint {
            Some(fingerprint) => fingerprint.clone(),
            None => crate::fingerprint::fingerprint(self.cx.workflow, step, &source.id).await?,
        };
        let (mut attempt, mut earlier_amis) = (1, Vec::new());
        loop {
            let mut run = StepRun::new(self.cx.workflow, step, source.clone(), fingerprint.clone());
            run.source_is_fresh = source_is_fresh;
            run.instance_type = attempt_instance_type(step, attempt);
            // The first attempt replaced the old AMI already (packer runs after that stage).
            run.replaces = replaces.filter(|_| attempt == 1);
            let failure = match self.attempt_step(run, attempt, options, packer_slots).await {
                Err(failure) if failure.transient.is_some() && attempt <= options.retries => failure,
                Err(mut failure) => {
                    failure.amis.splice(0..0, earlier_amis);
                    return Err(failure);
                }
                result => return result,
            };
            let wait = options.retry_delay.saturating_mul(1 << (attempt - 1).min(4));
            let on = attempt_instance_type(step, attempt + 1).map(|next| format!(", on {next}")).unwrap_or_default();
            let what = format!(
                "packer failed ({}), and cleaned up; attempt {} of {} in {} s{on}",
                failure.transient.unwrap_or_default(),
                attempt + 1,
                options.retries + 1,
                wait.as_secs()
            );
            self.cx.reporter.event(Event::Notice { step: &step.id, what: &what });
            earlier_amis.extend(failure.amis.iter().cloned());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.cx.cancel.cancelled() => {
                    return Err(StepFailure { amis: earlier_amis, ..failure });
                }
            }
            attempt += 1;
        }
    }

    /// One attempt at a step to build, through its stages (`BuildStages`).
    async fn attempt_step<'a>(
        &self,
        run: StepRun<'a>,
        attempt: u32,
        options: BuildOptions,
        packer_slots: &'a Semaphore,
    ) -> std::result::Result<Outcome, StepFailure> {
        let started = Instant::now();
        let step = run.step;
        let stages = BuildStages {
            packer: self.packer,
            packer_env: &self.packer_env,
            packer_debug: options.packer_debug,
            delete_snapshots: options.delete_snapshots,
            log_path: log_path(self.cx.workflow, &step.id),
            slots: packer_slots,
            lease_ttl: self.lease_ttl,
            keep_failed: options.keep_failed,
        };
        if options.dry_run {
            stages.dry_run(&self.cx, run).await?;
            return Ok(Outcome::DryRun);
        }
        match stages.run(&self.cx, run).await? {
            Finished::BuiltMeanwhile(record) => {
                self.cx.reporter.event(Event::UpToDate { step: &step.id, ami_id: &record.ami_id, tags_set: &[] });
                Ok(Outcome::UpToDate { ami: record.as_source(), tests: None })
            }
            Finished::Built(made) => {
                self.cx.reporter.event(Event::Built { step: &step.id, ami_id: &made.image.id });
                let packer_time = made.run.packer_time;
                // The tests' time is theirs, as packer's is packer's.
                let tests_time = made.tests.as_ref().map_or(Duration::ZERO, TestRun::duration);
                Ok(Outcome::Built {
                    ami: AmiRef { id: made.image.id, name: made.run.ami_name },
                    packer_time,
                    paw_time: started.elapsed().saturating_sub(packer_time).saturating_sub(tests_time),
                    attempt,
                    instance_type: made.run.instance_type,
                    tests: made.tests,
                })
            }
        }
    }

    /// An up-to-date AMI, still in EC2, with the tags the workflow gives it now, on the AMI and its
    /// snapshots: tags do not change an image, so a changed `aws_tags` sets them instead of
    /// rebuilding (tags taken out of `aws_tags` stay: paw cannot tell them from tags someone else
    /// set). An AMI a person made from an instance keeps the tags it was given.
    async fn up_to_date(
        &self,
        step: &Step,
        record: &ImageRecord,
        options: BuildOptions,
    ) -> std::result::Result<Outcome, StepFailure> {
        let image = self.check_still_there(step, record).await?;
        let wanted = match record.from_instance {
            Some(_) => Vec::new(),
            None => ami::ami_tags(self.cx.workflow, step, &record.base_source()),
        };
        let differing: Vec<(String, String)> = wanted.into_iter().filter(|tag| !image.tags.contains(tag)).collect();
        if !differing.is_empty() && !options.dry_run {
            self.cx.ec2.create_tags(&image.ids_with_snapshots(), &differing).await?;
        }
        let keys: Vec<String> = differing.into_iter().map(|(key, _)| key).collect();
        let tests = if options.dry_run { None } else { self.test_when_due(step, record).await? };
        self.cx.reporter.event(Event::UpToDate { step: &step.id, ami_id: &record.ami_id, tags_set: &keys });
        Ok(Outcome::UpToDate { ami: record.as_source(), tests })
    }

    /// An up-to-date image that was never tested (its tests came later, its build was interrupted
    /// during them, or `recover` adopted it), or was tested by other tests than the step's now, is
    /// tested before a child starts from it. It may be in use, so a failure keeps it, marked failed.
    async fn test_when_due(
        &self,
        step: &Step,
        record: &ImageRecord,
    ) -> std::result::Result<Option<TestRun>, StepFailure> {
        let tests = step.image_tests()?;
        let tests_changed = || -> Result<bool> {
            let digest = crate::fingerprint::tests_digest(step)?.unwrap_or_default();
            Ok(record.tests.last().is_some_and(|run| run.tests_digest != digest))
        };
        if tests.is_empty() || (record.verdict() != Verdict::Untested && !tests_changed()?) {
            return Ok(None);
        }
        let tester = Tester::of_build(self.packer, &self.packer_env);
        let subject = Subject { step, image: record.as_source(), source: record.base_source() };
        let run = image_tests::run(&self.cx, &tester, &subject, &tests, None).await?;
        image_tests::record_verdict(&self.cx, record, &run, OnFailure::Keep).await?;
        Ok(Some(run))
    }

    /// A recorded AMI is only as good as EC2 says.
    async fn check_still_there(&self, step: &Step, record: &ImageRecord) -> Result<Image> {
        match self.cx.ec2.describe_image(&record.ami_id).await? {
            Some(image) if image.state == ImageState::Available => Ok(image),
            _ => Err(Error::new(
                ErrorKind::Usage,
                format!("{} of step \"{}\" is in the catalog but not available in EC2", record.ami_id, step.id),
            )
            .help(format!(
                "mark it gone with `paw images delete {} --workflow-id {} --yes`, then build again",
                step.id, record.workflow_id
            ))),
        }
    }

    /// Records another workflow's AMI for this one: no packer, no new AMI, no renaming. It passed
    /// its tests (`plan::decide`); when the step's tests changed since, they run again on it.
    async fn reuse(
        &self,
        planned: &PlannedStep<'_>,
        record: &ImageRecord,
        options: BuildOptions,
    ) -> std::result::Result<Outcome, StepFailure> {
        let step = planned.step;
        self.check_still_there(step, record).await?;
        if !options.dry_run {
            let reused = ImageRecord {
                workflow_id: self.cx.workflow.param.workflow_id.clone(),
                workflow_name: Some(self.cx.workflow.name.clone()),
                variant: self.cx.workflow.variant.clone(),
                create_at: now_create_at(),
                metadata: step.param.metadata.clone(),
                reused_from: Some(record.workflow_id.clone()),
                status: ImageStatus::Available,
                ..record.clone()
            };
            match self.cx.catalog.try_record(&reused).await? {
                Recorded::Written => {}
                // Another paw of this workflow reused it a moment before.
                Recorded::Taken(existing) if existing.ami_id == reused.ami_id => {}
                Recorded::Taken(existing) => {
                    return Err(crate::catalog::conflict_error(&self.cx.catalog.uri(), &existing).into());
                }
            }
            self.test_when_due(step, &reused).await?;
        }
        self.cx.reporter.event(Event::Reused { step: &step.id, ami_id: &record.ami_id, from: &record.workflow_id });
        Ok(Outcome::Reused { ami: record.as_source(), from: record.workflow_id.clone() })
    }
}

/// A new log of the workflow's: `.paw/logs/<workflow_id>/<name>-<time>.log`.
pub fn log_path(workflow: &Workflow, name: &str) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    workflow.state_dir().join("logs").join(&workflow.param.workflow_id).join(format!("{name}-{stamp}.log"))
}

/// The instance type of an attempt (1, 2, ...) from the step's `instance_types`: one per attempt,
/// the last one for any attempt after it; None when the step names none (the template decides).
fn attempt_instance_type(step: &Step, attempt: u32) -> Option<String> {
    let types = &step.param.instance_types;
    let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX).min(types.len().saturating_sub(1));
    types.get(index).cloned()
}

fn placeholder_for(step: &Step) -> AmiRef {
    AmiRef::placeholder(step.parent.as_deref().unwrap_or_default())
}

#[cfg(test)]
mod tests;
