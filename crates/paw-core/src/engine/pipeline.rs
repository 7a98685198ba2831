//! The machinery of a step's build, in the manner of Packer's own `multistep`: the stages run in
//! turn; when they are done, or one fails, or the run is interrupted, every stage that ran is
//! cleaned up, in reverse order (a cleanup undoes only what is not to be kept). The concrete
//! stages are `stages.rs`'s and `recording.rs`'s.
//!
//! The state is typed by phase: the stages up to the making of the AMI work on a `StepRun`; the
//! AMI is then found in EC2, and the stages after it work on an `ImageRun`, which holds the image
//! itself, so no stage after the AMI can run without one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::SemaphorePermit;

use super::events::{Event, LeftAmi, StepFailure};
use super::lease::{Claim, Lease};
use super::services::Services;
use crate::ami::{self, AmiRef};
use crate::catalog::{ImageRecord, TestRun};
use crate::ec2::Image;
use crate::error::{Error, ErrorKind, Result};
use crate::fingerprint::Fingerprint;
use crate::render::{Prepared, StepLock};
use crate::workflow::{Step, Workflow};

/// One step's build up to its AMI: what the step starts from, and what the stages learn and hand on.
pub struct StepRun<'a> {
    pub step: &'a Step,
    pub source: AmiRef,
    /// The source is the AMI the parent got in this run: known to be available.
    pub source_is_fresh: bool,
    pub ami_name: String,
    /// The step's inputs, from this source (`fingerprint::fingerprint`: computed once per step).
    pub fingerprint: Fingerprint,
    /// This workflow's AMI of the step that `--force` replaces.
    pub replaces: Option<&'a ImageRecord>,
    /// The instance the AMI is made from, by hand, instead of packer.
    pub from_instance: Option<String>,
    /// This attempt's instance type, from the step's `instance_types`.
    pub instance_type: Option<String>,
    /// The rendered files packer reads: set by `Render`.
    pub prepared: Option<Prepared>,
    /// The step folder's rendered files are this run's from rendering until packer has read them.
    pub render_lock: Option<StepLock>,
    /// The step's lease and one of the `--jobs` slots, while this run builds it (`TakeLease`).
    pub lease: Option<Arc<Lease>>,
    pub slot: Option<SemaphorePermit<'a>>,
    /// Every AMI this run made, with its region, from the moment it is known (packer reported it,
    /// CreateImage returned it) and before anything checks it: cleanup deregisters each one not
    /// recorded, whatever failed after.
    pub made: Vec<(String, String)>,
    /// Set once the AMI is in the catalog: from then on nothing undoes it.
    pub recorded: Option<ImageRecord>,
    pub packer_time: Duration,
    /// When packer started, and its version: for the statement, and to tell this build's SBOM
    /// from one an earlier build left. None when no packer made the AMI.
    pub packer_started: Option<(std::time::SystemTime, String)>,
}

impl<'a> StepRun<'a> {
    pub fn new(workflow: &Workflow, step: &'a Step, source: AmiRef, fingerprint: Fingerprint) -> StepRun<'a> {
        StepRun {
            step,
            source,
            source_is_fresh: false,
            ami_name: ami::output_ami_name(workflow, step),
            fingerprint,
            replaces: None,
            from_instance: None,
            instance_type: None,
            prepared: None,
            render_lock: None,
            lease: None,
            slot: None,
            made: Vec::new(),
            recorded: None,
            packer_time: Duration::ZERO,
            packer_started: None,
        }
    }

    /// The `-var`s of packer's command line: the attempt's instance type.
    pub(super) fn packer_vars(&self) -> Vec<(String, String)> {
        self.instance_type.iter().map(|instance_type| ("instance_type".to_string(), instance_type.clone())).collect()
    }

    /// What taking the step's lease writes in the journal, and checks a record against.
    pub fn claim(&self) -> Claim<'_> {
        Claim {
            step_id: &self.step.id,
            ami_name: &self.ami_name,
            source: &self.source,
            fingerprint: &self.fingerprint.digest,
            replaces: self.replaces.map(|record| record.ami_id.as_str()),
        }
    }

    /// The rendered files; a stage that needs them comes after `Render` in every list.
    pub(super) fn prepared(&self) -> Result<&Prepared> {
        let missing = || Error::bug(format!("step {}: a stage needs the rendered files before Render", self.step.id));
        self.prepared.as_ref().ok_or_else(missing)
    }
}

/// The step's AMI, made and found in EC2: what the stages after it work on.
pub struct ImageRun<'a> {
    pub run: StepRun<'a>,
    pub image: Image,
    /// Its copies in other regions (packer's `ami_regions`), with their regions.
    pub copies: Vec<(String, Image)>,
    /// Its tests' run, once `TestImage` ran them (None: the step has no tests).
    pub tests: Option<TestRun>,
}

/// What a stage says when it is done: go on, or the step needs nothing more.
#[derive(Debug)]
pub enum Next {
    Continue,
    /// Another run built the step meanwhile, from the same inputs: its record.
    BuiltMeanwhile(Box<ImageRecord>),
}

/// The state stages work on: either phase knows its step and its lease.
pub trait StepState: Send {
    fn step_run(&self) -> &StepRun<'_>;
}

impl StepState for StepRun<'_> {
    fn step_run(&self) -> &StepRun<'_> {
        self
    }
}

impl StepState for ImageRun<'_> {
    fn step_run(&self) -> &StepRun<'_> {
        &self.run
    }
}

/// Which stage a step is in: in events and output as the phrase its `Display` gives
/// ("running packer build"), so code compares ids, never phrases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageId {
    /// Before the run: every step's templates rendered and `packer validate`d.
    Validate,
    TakeLease,
    SourceAvailable,
    ParentVerified,
    Render,
    NameFree,
    DryRun,
    ReplaceOld,
    PackerBuild,
    FindImage,
    TagImage,
    Record,
    TestImage,
    Attest,
    Distribute,
    /// `paw images from-instance`'s own.
    CheckLimits,
    CheckInstance,
    CreateImage,
    WaitForImage,
}

impl StageId {
    pub fn as_str(self) -> &'static str {
        match self {
            StageId::Validate => "validating",
            StageId::TakeLease => "taking the step's lease",
            StageId::SourceAvailable => "checking the source AMI",
            StageId::ParentVerified => "verifying the parent's statement",
            StageId::Render => "rendering",
            StageId::NameFree => "checking the AMI name",
            StageId::DryRun => "dry run",
            StageId::ReplaceOld => "replacing the old AMI",
            StageId::PackerBuild => "running packer build",
            StageId::FindImage => "finding the AMI",
            StageId::TagImage => "tagging",
            StageId::Record => "recording",
            StageId::TestImage => "testing the image",
            StageId::Attest => "signing its statement",
            StageId::Distribute => "distributing",
            StageId::CheckLimits => "checking EC2's limits",
            StageId::CheckInstance => "checking the instance",
            StageId::CreateImage => "creating the AMI",
            StageId::WaitForImage => "waiting for the AMI",
        }
    }
}

impl std::fmt::Display for StageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stage: `run` does its part; `cleanup`, called in reverse order once the list is over
/// (done, failed or interrupted), undoes what is not to be kept, and says what became of the AMIs
/// it touched.
#[async_trait]
pub trait Stage<S: StepState>: Send + Sync {
    fn id(&self) -> StageId;

    async fn run(&self, cx: &Services<'_>, state: &mut S) -> Result<Next, StepFailure>;

    async fn cleanup(&self, _cx: &Services<'_>, _state: &mut S) -> Vec<LeftAmi> {
        Vec::new()
    }
}

/// Runs the stages in order, then cleans up every stage that ran, the failed one included, last
/// first. An interrupt stops the list before the next stage.
pub async fn run_stages<S: StepState>(
    cx: &Services<'_>,
    stages: &[&dyn Stage<S>],
    state: &mut S,
) -> Result<Next, StepFailure> {
    let (started, result) = run_list(cx, stages, state).await;
    finish(cx, &stages[..started], state, result).await
}

/// Runs the stages until one fails or says the step needs nothing more: how many started, and
/// how it went. Nothing is cleaned up yet.
pub(super) async fn run_list<S: StepState>(
    cx: &Services<'_>,
    stages: &[&dyn Stage<S>],
    state: &mut S,
) -> (usize, Result<Next, StepFailure>) {
    for (index, stage) in stages.iter().enumerate() {
        if let Err(interrupted) = enter(cx, &state.step_run().step.id, stage.id()) {
            return (index, Err(interrupted));
        }
        let lease = state.step_run().lease.clone();
        let started = std::time::Instant::now();
        let result = keeping(cx, lease, stage.run(cx, state)).await;
        cx.reporter.event(Event::StageFinished {
            step: &state.step_run().step.id,
            stage: stage.id(),
            ok: result.is_ok(),
            seconds: started.elapsed().as_secs_f64(),
        });
        match result {
            Ok(Next::Continue) => {}
            done => return (index + 1, done),
        }
    }
    (stages.len(), Ok(Next::Continue))
}

/// Before a stage: an interrupt stops the step here; otherwise the reporter hears the stage begin.
pub(super) fn enter(cx: &Services<'_>, step_id: &str, stage: StageId) -> Result<(), StepFailure> {
    if cx.cancel.is_cancelled() {
        return Err(Error::new(ErrorKind::Interrupted, format!("interrupted before {stage}")).into());
    }
    cx.reporter.event(Event::Stage { step: step_id, stage });
    Ok(())
}

/// Cleans up `ran` in reverse order; the AMIs they report join a failure's.
pub(super) async fn finish<S: StepState, T>(
    cx: &Services<'_>,
    ran: &[&dyn Stage<S>],
    state: &mut S,
    mut result: Result<T, StepFailure>,
) -> Result<T, StepFailure> {
    for stage in ran.iter().rev() {
        let lease = state.step_run().lease.clone();
        let left = keeping(cx, lease, stage.cleanup(cx, state)).await;
        if let Err(failure) = &mut result {
            failure.amis.extend(left);
        }
    }
    result
}

/// `work`, with the step's lease renewed while it runs (when the step holds one).
pub(super) async fn keeping<T>(cx: &Services<'_>, lease: Option<Arc<Lease>>, work: impl Future<Output = T>) -> T {
    match lease {
        Some(lease) => tokio::select! {
            out = work => out,
            () = lease.keep(cx) => unreachable!("a lease is kept until dropped"),
        },
        None => work.await,
    }
}

/// How a step's pipeline ended, when it did not fail.
pub enum Finished<'a> {
    Built(Box<ImageRun<'a>>),
    BuiltMeanwhile(Box<ImageRecord>),
}
