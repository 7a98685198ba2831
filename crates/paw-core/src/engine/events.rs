//! What a build tells the world: events as they happen (a reporter renders them), and each
//! step's outcome at the end.

use std::time::Duration;

use serde_json::{Value, json};

use super::pipeline::StageId;
use crate::ami::AmiRef;
use crate::catalog::{TestResult, TestRun};
use crate::error::{Error, ErrorKind};

/// What the engine tells its reporter, as it happens.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    StepStarted {
        step: &'a str,
        source: &'a AmiRef,
    },
    /// One line of packer's own output.
    Packer {
        step: &'a str,
        line: &'a str,
    },
    /// A dry run stops here: the exact command packer would have run, in the step folder.
    DryRun {
        step: &'a str,
        command: &'a str,
    },
    Built {
        step: &'a str,
        ami_id: &'a str,
    },
    UpToDate {
        step: &'a str,
        ami_id: &'a str,
        /// The tags set on it because they differed from what the workflow says now (aws_tags
        /// changed; tags do not change an image, so it was not rebuilt).
        tags_set: &'a [String],
    },
    Reused {
        step: &'a str,
        ami_id: &'a str,
        from: &'a str,
    },
    Failed {
        step: &'a str,
        error: &'a Error,
    },
    /// A manual step without an AMI: a person makes it (`paw images from-instance`).
    Manual {
        step: &'a str,
    },
    /// A step not started because its parent did not finish, or the run was interrupted.
    Skipped {
        step: &'a str,
        reason: &'a SkipReason,
    },
    /// A step enters a stage of its build (`stages.rs`), e.g. "running packer build".
    Stage {
        step: &'a str,
        stage: StageId,
    },
    /// The stage ended: done (`ok`), or failed, after `seconds`.
    StageFinished {
        step: &'a str,
        stage: StageId,
        ok: bool,
        seconds: f64,
    },
    /// Another run holds the step's lease: this one waits for it. `held_by`: "host/pid since T".
    Waiting {
        step: &'a str,
        held_by: &'a str,
    },
    /// Something the engine found out and acted on, which the user should know.
    Notice {
        step: &'a str,
        what: &'a str,
    },
    /// Something the engine undid or replaced.
    CleanedUp {
        step: &'a str,
        what: &'a str,
    },
    /// One of the step's image tests begins (`image_tests`).
    TestStarted {
        step: &'a str,
        test: &'a str,
    },
    /// It ended: passed or not, after how long, its log, and why it failed.
    TestFinished {
        step: &'a str,
        result: &'a TestResult,
    },
}

pub trait Reporter: Send + Sync {
    fn event(&self, event: Event<'_>);

    /// The run's own events (its start and its end); most reporters show only the steps'.
    fn run_event(&self, _event: &RunEvent<'_>) {}
}

/// What the engine tells its reporter of the run as a whole.
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// The run's plan, before any step starts: each planned step as `PlannedStep::json` gives it.
    Started { workflow_name: &'a str, workflow_ids: Vec<&'a str>, region: &'a str, dry_run: bool, steps: Vec<Value> },
    /// Every step's outcome, and what became of the notifications of the run.
    Finished { outcomes: &'a [StepOutcome], deliveries: &'a [crate::notify::Delivery] },
}

impl RunEvent<'_> {
    /// The event's type in the stream, and its own fields.
    pub fn record(&self) -> (&'static str, Value) {
        match self {
            RunEvent::Started { workflow_name, workflow_ids, region, dry_run, steps } => (
                "run_started",
                json!({"workflow_name": workflow_name, "workflow_ids": workflow_ids, "region": region,
                    "dry_run": dry_run, "steps": steps}),
            ),
            RunEvent::Finished { outcomes, deliveries } => {
                let mut summary = json!(Summary::of(outcomes));
                summary["steps"] = json!(outcomes.iter().map(StepOutcome::json).collect::<Vec<_>>());
                summary["ok"] = json!(Summary::error(outcomes).is_none());
                summary["notifications"] = json!(deliveries);
                ("summary", summary)
            }
        }
    }
}

/// One event of the stream, as a line (`notify::event_record`): of `label`'s step (`variant/step`
/// for a variant's; None for the run's own events), with the type's own `fields`.
pub fn event_line(kind: &str, label: Option<&str>, fields: Value) -> String {
    let (variant, step) = match label.map(split_label) {
        Some((variant, step)) => (variant, Some(step)),
        None => (None, None),
    };
    crate::notify::event_record(kind, step, variant, fields).to_string()
}

/// A step's label (`variant_step`'s): its variant, if any, and its step.
pub fn split_label(label: &str) -> (Option<&str>, &str) {
    match label.split_once('/') {
        Some((variant, step)) => (Some(variant), step),
        None => (None, label),
    }
}

/// An error as events carry it: what, where (file, line, column), and what to do.
pub fn error_record(error: &Error) -> Value {
    let location = error.location.as_ref();
    json!({
        "kind": error.kind,
        "message": error.message,
        "file": location.map(|at| at.path.display().to_string()),
        "line": location.map(|at| at.line).filter(|line| *line > 0),
        "column": location.map(|at| at.column).filter(|column| *column > 0),
        "help": error.help,
    })
}

impl Event<'_> {
    /// The event's type in the stream, and its own fields.
    pub fn record(&self) -> (&'static str, Value) {
        match self {
            Event::StepStarted { source, .. } => {
                ("step_started", json!({"source_ami_id": source.id, "source_ami_name": source.name}))
            }
            Event::Stage { stage, .. } => ("stage_started", json!({"stage": stage.as_str()})),
            Event::StageFinished { stage, ok, seconds, .. } => {
                ("stage_finished", json!({"stage": stage.as_str(), "ok": ok, "seconds": seconds}))
            }
            Event::Packer { line, .. } => ("packer_line", json!({"line": line})),
            Event::DryRun { command, .. } => ("dry_run", json!({"command": command})),
            Event::Built { ami_id, .. } => ("built", json!({"ami_id": ami_id})),
            Event::UpToDate { ami_id, tags_set, .. } => ("up_to_date", json!({"ami_id": ami_id, "tags_set": tags_set})),
            Event::Reused { ami_id, from, .. } => ("reused", json!({"ami_id": ami_id, "from_workflow_id": from})),
            Event::Failed { error, .. } => ("failed", json!({"error": error_record(error)})),
            Event::Manual { .. } => ("manual", json!({})),
            Event::Skipped { reason, .. } => ("skipped", json!({"reason": reason.to_string()})),
            Event::Waiting { held_by, .. } => ("waiting", json!({"held_by": held_by})),
            Event::Notice { what, .. } => ("notice", json!({"what": what})),
            Event::CleanedUp { what, .. } => ("cleaned_up", json!({"what": what})),
            Event::TestStarted { test, .. } => ("test_started", json!({"test": test})),
            Event::TestFinished { result, .. } => ("test_finished", json!(result)),
        }
    }
}

impl<R: Reporter + ?Sized> Reporter for &R {
    fn event(&self, event: Event<'_>) {
        (**self).event(event);
    }

    fn run_event(&self, event: &RunEvent<'_>) {
        (**self).run_event(event);
    }
}

impl<'a> Event<'a> {
    /// The same event, of the step named `step` (a variant's step: `amd64/app`).
    fn of_step<'b>(self, step: &'b str) -> Event<'b>
    where
        'a: 'b,
    {
        match self {
            Event::StepStarted { source, .. } => Event::StepStarted { step, source },
            Event::Packer { line, .. } => Event::Packer { step, line },
            Event::DryRun { command, .. } => Event::DryRun { step, command },
            Event::Built { ami_id, .. } => Event::Built { step, ami_id },
            Event::UpToDate { ami_id, tags_set, .. } => Event::UpToDate { step, ami_id, tags_set },
            Event::Reused { ami_id, from, .. } => Event::Reused { step, ami_id, from },
            Event::Failed { error, .. } => Event::Failed { step, error },
            Event::Manual { .. } => Event::Manual { step },
            Event::Skipped { reason, .. } => Event::Skipped { step, reason },
            Event::Stage { stage, .. } => Event::Stage { step, stage },
            Event::StageFinished { stage, ok, seconds, .. } => Event::StageFinished { step, stage, ok, seconds },
            Event::Waiting { held_by, .. } => Event::Waiting { step, held_by },
            Event::Notice { what, .. } => Event::Notice { step, what },
            Event::CleanedUp { what, .. } => Event::CleanedUp { step, what },
            Event::TestStarted { test, .. } => Event::TestStarted { step, test },
            Event::TestFinished { result, .. } => Event::TestFinished { step, result },
        }
    }

    pub fn step(&self) -> &'a str {
        match self {
            Event::StepStarted { step, .. }
            | Event::Packer { step, .. }
            | Event::DryRun { step, .. }
            | Event::Built { step, .. }
            | Event::UpToDate { step, .. }
            | Event::Reused { step, .. }
            | Event::Failed { step, .. }
            | Event::Manual { step }
            | Event::Skipped { step, .. }
            | Event::Stage { step, .. }
            | Event::StageFinished { step, .. }
            | Event::Waiting { step, .. }
            | Event::Notice { step, .. }
            | Event::CleanedUp { step, .. }
            | Event::TestStarted { step, .. }
            | Event::TestFinished { step, .. } => step,
        }
    }
}

/// One variant's events, to the run's reporter: each step named `<variant>/<step>`, as
/// `variant_step` writes it, so that the variants of one run can share a terminal.
pub struct VariantReporter<'a> {
    pub inner: &'a dyn Reporter,
    pub variant: &'a str,
}

impl<'a> VariantReporter<'a> {
    /// `inner`, as the reporter of `variant`'s steps: itself when there is no variant.
    pub fn of(inner: &'a dyn Reporter, variant: Option<&'a str>) -> Box<dyn Reporter + 'a> {
        match variant {
            Some(variant) => Box::new(VariantReporter { inner, variant }),
            None => Box::new(inner),
        }
    }
}

impl Reporter for VariantReporter<'_> {
    fn event(&self, event: Event<'_>) {
        let step = variant_step(Some(self.variant), event.step());
        self.inner.event(event.of_step(&step));
    }
}

/// How a step of a variant is named in a run's output: `amd64/app` (just `app` without variants).
pub fn variant_step(variant: Option<&str>, step: &str) -> String {
    match variant {
        Some(variant) => format!("{variant}/{step}"),
        None => step.to_string(),
    }
}

#[derive(Debug)]
pub enum Outcome {
    Built {
        ami: AmiRef,
        /// packer's time and paw's own, in the attempt that built it.
        packer_time: Duration,
        paw_time: Duration,
        /// Which attempt built it: 1, or more after packer failed for a passing cause; on which
        /// of the step's `instance_types`, when it names them.
        attempt: u32,
        instance_type: Option<String>,
        /// The image's tests, run in this build (None: the step has none).
        tests: Option<TestRun>,
    },
    UpToDate {
        ami: AmiRef,
        /// The image's tests, when this build ran them (it had none yet).
        tests: Option<TestRun>,
    },
    Reused {
        ami: AmiRef,
        from: String,
    },
    DryRun,
    /// A manual step that has no AMI yet; its descendants wait for it.
    Manual,
    /// `amis`: the AMIs the failed build made, or may have made, and what paw did with each.
    Failed {
        error: Error,
        amis: Vec<LeftAmi>,
    },
    Skipped(SkipReason),
}

/// Why a step was not started; shown (text and JSON) as the sentence `Display` makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The run was interrupted before the step could start.
    Interrupted,
    /// A manual step above it has no AMI yet (named: the nearest one).
    WaitsForManualStep(String),
    /// Its parent (named) failed or was skipped.
    ParentDidNotFinish(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Interrupted => f.write_str("interrupted"),
            SkipReason::WaitsForManualStep(step) => f.write_str(&crate::plan::waits_for_manual_step(step)),
            SkipReason::ParentDidNotFinish(parent) => write!(f, "{parent} did not finish"),
        }
    }
}

/// An AMI a failed step made, or may have made, and what paw did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftAmi {
    pub ami_id: String,
    /// e.g. "deregistered, snapshots deleted: snap-1, snap-2", or why it was left in EC2.
    pub fate: String,
}

/// Why a step failed, with the AMIs it left behind.
#[derive(Debug)]
pub struct StepFailure {
    /// Boxed: a step's result is passed up through every stage.
    pub error: Box<Error>,
    pub amis: Vec<LeftAmi>,
    /// Why packer failed, when the cause passes (packer::transient_cause): the step may be tried again.
    pub transient: Option<&'static str>,
}

impl From<Error> for StepFailure {
    fn from(error: Error) -> StepFailure {
        StepFailure { error: Box::new(error), amis: Vec::new(), transient: None }
    }
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Built { .. } => "built",
            Outcome::UpToDate { .. } => "up-to-date",
            Outcome::Reused { .. } => "reused",
            Outcome::DryRun => "dry-run",
            Outcome::Manual => "manual",
            Outcome::Failed { .. } => "failed",
            Outcome::Skipped(_) => "skipped",
        }
    }

    /// The AMI the step has after this run, for its children to start from.
    pub fn ami(&self) -> Option<&AmiRef> {
        match self {
            Outcome::Built { ami, .. } | Outcome::UpToDate { ami, .. } | Outcome::Reused { ami, .. } => Some(ami),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct StepOutcome {
    pub step_id: String,
    /// The variant whose step it is, when the workflow has variants.
    pub variant: Option<String>,
    pub outcome: Outcome,
}

impl StepOutcome {
    /// The step as a run's output names it: `amd64/app` for a variant's.
    pub fn label(&self) -> String {
        variant_step(self.variant.as_deref(), &self.step_id)
    }

    /// As `paw build --json` and the `summary` event list it.
    pub fn json(&self) -> Value {
        let mut entry = json!({"step_id": self.step_id, "variant": self.variant, "result": self.outcome.name()});
        match &self.outcome {
            Outcome::Built { ami, packer_time, paw_time, attempt, instance_type, tests } => {
                entry["ami_id"] = json!(ami.id);
                entry["packer_seconds"] = json!(packer_time.as_secs_f64());
                entry["paw_seconds"] = json!(paw_time.as_secs_f64());
                entry["attempt"] = json!(attempt);
                entry["instance_type"] = json!(instance_type);
                entry["tests"] = json!(tests);
            }
            Outcome::UpToDate { ami, tests } => {
                entry["ami_id"] = json!(ami.id);
                entry["tests"] = json!(tests);
            }
            Outcome::Reused { ami, from } => {
                entry["ami_id"] = json!(ami.id);
                entry["reused_from"] = json!(from);
            }
            Outcome::Failed { error, amis } => {
                entry["error"] = json!(error.to_string());
                entry["amis"] = json!(
                    amis.iter().map(|left| json!({"ami_id": left.ami_id, "fate": left.fate})).collect::<Vec<_>>()
                );
            }
            Outcome::Skipped(reason) => entry["reason"] = json!(reason.to_string()),
            Outcome::DryRun | Outcome::Manual => {}
        }
        entry
    }
}

/// How many steps ended which way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub built: usize,
    pub reused: usize,
    pub up_to_date: usize,
    pub failed: usize,
    pub skipped: usize,
    pub manual: usize,
}

impl Summary {
    pub fn of(outcomes: &[StepOutcome]) -> Summary {
        let mut summary = Summary::default();
        for step in outcomes {
            match step.outcome {
                Outcome::Built { .. } => summary.built += 1,
                Outcome::Reused { .. } => summary.reused += 1,
                Outcome::UpToDate { .. } => summary.up_to_date += 1,
                Outcome::Failed { .. } => summary.failed += 1,
                Outcome::Skipped(_) => summary.skipped += 1,
                Outcome::Manual => summary.manual += 1,
                Outcome::DryRun => {}
            }
        }
        summary
    }

    /// The run's error when a step failed: interrupted wins (exit 130), else the first failure's
    /// kind decides the exit code.
    pub fn error(outcomes: &[StepOutcome]) -> Option<Error> {
        let failed: Vec<(String, &Error)> = outcomes
            .iter()
            .filter_map(|step| match &step.outcome {
                Outcome::Failed { error, .. } => Some((step.label(), error)),
                _ => None,
            })
            .collect();
        let (_, first) = failed.first()?;
        let interrupted = failed.iter().any(|(_, error)| error.kind == ErrorKind::Interrupted);
        let kind = if interrupted { ErrorKind::Interrupted } else { first.kind };
        let ids: Vec<&str> = failed.iter().map(|(id, _)| id.as_str()).collect();
        Some(
            Error::new(kind, format!("{} of {} steps failed: {}", failed.len(), outcomes.len(), ids.join(", ")))
                .help("each step's error is above; fix it and run `paw build` again"),
        )
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Summary { built, reused, up_to_date, failed, skipped, manual } = self;
        write!(f, "{built} built, {reused} reused, {up_to_date} up-to-date, {failed} failed, {skipped} skipped")?;
        if *manual > 0 {
            write!(f, ", {manual} manual (waiting for an AMI from an instance)")?;
        }
        Ok(())
    }
}
