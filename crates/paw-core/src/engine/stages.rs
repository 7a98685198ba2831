//! One step's build as a list of stages, in the manner of Packer's own `multistep`: the stages run
//! in turn; when they are done, or one fails, or the run is interrupted, every stage that ran is
//! cleaned up, in reverse order (a cleanup undoes only what is not to be kept). `BuildStages::run`
//! is the whole of what `paw build` does for a step, from its lease to its release;
//! `paw images from-instance` (ops::from_instance) shares the stages where the two do the same.
//!
//! The state is typed by phase: the stages up to the making of the AMI work on a `StepRun`; the
//! AMI is then found in EC2 (`find_made_image`), and the stages after it work on an `ImageRun`,
//! which holds the image itself, so no stage after the AMI can run without one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::events::{Event, LeftAmi, Reporter, StepFailure};
use super::image_tests::{self, OnFailure, Subject, Tester};
use super::lease::{Lease, Taken};
use crate::ami::{self, AmiRef};
use crate::blocking::off_the_task;
use crate::catalog::{Catalog, ImageRecord, PackerRun, TestRun};
use crate::change;
use crate::ec2::{self, Ec2, Image, ImageState};
use crate::error::{Error, ErrorKind, Result};
use crate::fingerprint::{self, Fingerprint};
use crate::packer::{BuildRequest, Packer};
use crate::render::{self, Prepared, StepLock};
use crate::workflow::{Step, Workflow};

/// What every stage may use: the workflow, where it builds, and the services it talks to (EC2,
/// the catalog, the reporter), with the run's cancel token. (The binary's `Context` builds it.)
pub struct Services<'a> {
    pub workflow: &'a Workflow,
    pub region: &'a str,
    pub ec2: &'a dyn Ec2,
    pub catalog: &'a dyn Catalog,
    pub reporter: &'a dyn Reporter,
    pub cancel: &'a CancellationToken,
}

impl Services<'_> {
    /// The executor of the plans a build makes outside its stages (replacing an image, a failed test's).
    pub fn executor(&self) -> crate::change::Executor<'_> {
        change::Executor::new(self.catalog, self.ec2, self.region, "paw build")
    }
}

/// One step's build up to its AMI: what the step starts from, and what the stages learn and hand on.
pub struct StepRun<'a> {
    pub step: &'a Step,
    pub source: AmiRef,
    /// The source is the AMI the parent got in this run: known to be available.
    pub source_is_fresh: bool,
    pub ami_name: String,
    /// The step's inputs, from this source (`inputs_fingerprint`: computed once per step).
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
        }
    }

    /// The `-var`s of packer's command line: the attempt's instance type.
    fn packer_vars(&self) -> Vec<(String, String)> {
        self.instance_type.iter().map(|instance_type| ("instance_type".to_string(), instance_type.clone())).collect()
    }

    /// The rendered files; a stage that needs them comes after `Render` in every list.
    fn prepared(&self) -> Result<&Prepared> {
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

/// The fingerprint of a step's inputs from `source`, computed off the async task (it reads and
/// hashes files).
pub async fn inputs_fingerprint(workflow: &Workflow, step: &Step, source: &AmiRef) -> Result<Fingerprint> {
    let (workflow, step, source) = (workflow.clone(), step.clone(), source.id.clone());
    off_the_task(move || fingerprint::fingerprint(&workflow, &step, &source)).await
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

/// One stage: `run` does its part; `cleanup`, called in reverse order once the list is over
/// (done, failed or interrupted), undoes what is not to be kept, and says what became of the AMIs
/// it touched.
#[async_trait]
pub trait Stage<S: StepState>: Send + Sync {
    fn name(&self) -> &'static str;

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
async fn run_list<S: StepState>(
    cx: &Services<'_>,
    stages: &[&dyn Stage<S>],
    state: &mut S,
) -> (usize, Result<Next, StepFailure>) {
    for (index, stage) in stages.iter().enumerate() {
        if let Err(interrupted) = enter(cx, &state.step_run().step.id, stage.name()) {
            return (index, Err(interrupted));
        }
        let lease = state.step_run().lease.clone();
        let started = std::time::Instant::now();
        let result = keeping(cx, lease, stage.run(cx, state)).await;
        cx.reporter.event(Event::StageFinished {
            step: &state.step_run().step.id,
            stage: stage.name(),
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
fn enter(cx: &Services<'_>, step_id: &str, stage: &'static str) -> Result<(), StepFailure> {
    if cx.cancel.is_cancelled() {
        return Err(Error::new(ErrorKind::Interrupted, format!("interrupted before {stage}")).into());
    }
    cx.reporter.event(Event::Stage { step: step_id, stage });
    Ok(())
}

/// Cleans up `ran` in reverse order; the AMIs they report join a failure's.
async fn finish<S: StepState, T>(
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
async fn keeping<T>(cx: &Services<'_>, lease: Option<Arc<Lease>>, work: impl Future<Output = T>) -> T {
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

/// A step's pipeline: the stages up to its AMI, the AMI found in EC2 (`find_made_image`), the
/// stages after it; then every stage that ran is cleaned up, last first, whatever happened.
pub async fn run_pipeline<'a>(
    cx: &Services<'_>,
    before: &[&dyn Stage<StepRun<'a>>],
    after: &[&dyn Stage<ImageRun<'a>>],
    mut run: StepRun<'a>,
) -> Result<Finished<'a>, StepFailure> {
    let (started, result) = run_list(cx, before, &mut run).await;
    let found = match result {
        Ok(Next::Continue) => {
            let lease = run.lease.clone();
            keeping(cx, lease, find_made_image(cx, &run)).await
        }
        Ok(Next::BuiltMeanwhile(record)) => {
            let done = finish(cx, &before[..started], &mut run, Ok(())).await;
            return done.map(|()| Finished::BuiltMeanwhile(record));
        }
        Err(failure) => Err(failure),
    };
    let (image, copies) = match found {
        Ok(found) => found,
        Err(failure) => return finish(cx, &before[..started], &mut run, Err(failure)).await,
    };
    let mut made = ImageRun { run, image, copies, tests: None };
    let (after_started, result) = run_list(cx, after, &mut made).await;
    let result = finish(cx, &after[..after_started], &mut made, result).await;
    let result = finish(cx, &before[..started], &mut made.run, result).await;
    result.map(|next| match next {
        Next::Continue => Finished::Built(Box::new(made)),
        Next::BuiltMeanwhile(record) => Finished::BuiltMeanwhile(record),
    })
}

/// The name of the stage that finds the AMI made.
const FIND_IMAGE: &str = "finding the AMI";

/// Between the stages that make the AMI and those that finish it: EC2's description of the AMI
/// made in this region, with the step's name, and of its copies elsewhere. The AMI is the one
/// made (packer reported it, CreateImage returned it), or, should packer's report be lost, the
/// one AMI of the step's name made since packer started. Each copy is checked where it is.
async fn find_made_image(cx: &Services<'_>, run: &StepRun<'_>) -> Result<(Image, Vec<(String, Image)>), StepFailure> {
    enter(cx, &run.step.id, FIND_IMAGE)?;
    let Some((_, ami_id)) = run.made.iter().find(|(region, _)| region.as_str() == cx.region) else {
        let what = format!("step {}: no stage made an AMI in {}", run.step.id, cx.region);
        return Err(Error::bug(what).into());
    };
    let image = match ec2::describe_new(cx.ec2, ami_id).await? {
        Some(image) if image.name == run.ami_name => image,
        Some(image) => {
            let (named, step) = (&image.name, &run.step.id);
            let what =
                format!("{ami_id} is named \"{named}\", not \"{}\" as step \"{step}\" names its AMI", run.ami_name);
            return Err(Error::new(ErrorKind::Usage, what).help(ami::PAW_NAMES_THE_AMI).into());
        }
        None => {
            return Err(Error::new(ErrorKind::Aws, format!("{ami_id} was made, but EC2 does not describe it")).into());
        }
    };
    let mut copies = Vec::new();
    for (region, ami_id) in run.made.iter().filter(|(region, _)| region.as_str() != cx.region) {
        match ec2::describe_new(cx.ec2.in_region(region).as_ref(), ami_id).await.map_err(|err| err.in_region(region))? {
            Some(copy) => copies.push((region.clone(), copy)),
            None => {
                let what = format!("{ami_id} was made in {region}, but EC2 does not describe it there");
                return Err(Error::new(ErrorKind::Aws, what).into());
            }
        }
    }
    Ok((image, copies))
}

/// What `paw build` does for a step to be built; a dry run stops before anything is made.
pub struct BuildStages<'a> {
    pub packer: &'a dyn Packer,
    pub packer_env: &'a [(String, String)],
    pub packer_debug: bool,
    pub delete_snapshots: bool,
    pub log_path: PathBuf,
    /// The `--jobs` slots, and how long a lease lasts unless renewed, in seconds.
    pub slots: &'a Semaphore,
    pub lease_ttl: i64,
    /// `--keep-failed`: an image that fails its tests is kept (marked failed), not deregistered.
    pub keep_failed: bool,
}

impl<'a> BuildStages<'a> {
    /// The pipeline, in order.
    pub async fn run(&self, cx: &Services<'_>, run: StepRun<'a>) -> Result<Finished<'a>, StepFailure> {
        let take_lease = TakeLease { slots: self.slots, ttl: self.lease_ttl };
        let packer = PackerBuild {
            packer: self.packer,
            env: self.packer_env,
            debug: self.packer_debug,
            log_path: &self.log_path,
        };
        let replace = ReplaceOld { delete_snapshots: self.delete_snapshots };
        let tester = Tester::of_build(self.packer, self.packer_env);
        let on_failure = if self.keep_failed { OnFailure::Keep } else { OnFailure::Deregister };
        let test = TestImage { tester: &tester, on_failure };
        let before: [&dyn Stage<StepRun<'a>>; 6] =
            [&take_lease, &SourceAvailable, &Render, &NameFree, &replace, &packer];
        // ... then find_made_image, then:
        let after: [&dyn Stage<ImageRun<'a>>; 4] = [&TagImage, &Record, &test, &Distribute];
        run_pipeline(cx, &before, &after, run).await
    }

    /// A dry run: the checks, the files rendered, and the exact packer command; nothing made.
    pub async fn dry_run(&self, cx: &Services<'_>, mut run: StepRun<'a>) -> Result<(), StepFailure> {
        let command = DryRun { packer: self.packer, debug: self.packer_debug };
        let stages: [&dyn Stage<StepRun<'a>>; 4] = [&SourceAvailable, &Render, &NameFree, &command];
        run_stages(cx, &stages, &mut run).await.map(|_| ())
    }
}

/// The step's lease, under one of the `--jobs` slots. While another run holds the lease, this
/// one gives the slot back (so that it builds other steps meanwhile) and waits; a step that run
/// built meanwhile, from the same inputs, needs nothing more. Cleanup releases both.
pub struct TakeLease<'a> {
    pub slots: &'a Semaphore,
    pub ttl: i64,
}

#[async_trait]
impl<'a> Stage<StepRun<'a>> for TakeLease<'a> {
    fn name(&self) -> &'static str {
        "taking the step's lease"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        loop {
            let slot = self.slots.acquire().await.expect("the slots' semaphore is never closed");
            match Lease::try_take(cx, run, self.ttl).await? {
                Taken::Held(lease) => {
                    run.lease = Some(lease);
                    run.slot = Some(slot);
                    return Ok(Next::Continue);
                }
                Taken::BuiltMeanwhile(record) => {
                    let what = format!("built meanwhile by another run: {}", record.ami_id);
                    cx.reporter.event(Event::Notice { step: &run.step.id, what: &what });
                    return Ok(Next::BuiltMeanwhile(record));
                }
                Taken::HeldBy(holder) => {
                    drop(slot);
                    Lease::wait_for(cx, &holder).await?;
                }
            }
        }
    }

    async fn cleanup(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Vec<LeftAmi> {
        if let Some(lease) = run.lease.take() {
            lease.release(cx).await;
        }
        run.slot = None;
        Vec::new()
    }
}

/// The source AMI must exist in this region (a placeholder, in a dry run, is not looked up).
pub struct SourceAvailable;

#[async_trait]
impl<'a> Stage<StepRun<'a>> for SourceAvailable {
    fn name(&self) -> &'static str {
        "checking the source AMI"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        if run.source.is_placeholder() || run.source_is_fresh {
            return Ok(Next::Continue);
        }
        let image = cx.ec2.describe_image(&run.source.id).await?;
        if image.is_some_and(|image| image.state == ImageState::Available) {
            return Ok(Next::Continue);
        }
        let error = Error::new(
            ErrorKind::Usage,
            format!(
                "step \"{}\" starts from AMI {} ({}), which is not available in {}",
                run.step.id, run.source.id, run.source.name, cx.region
            ),
        )
        .help(match &run.step.parent {
            None => "set root_base_ami_id to an AMI of this region; `paw base-ami find` lists them".to_string(),
            Some(parent) => format!("the parent's AMI is gone: rebuild it with `paw build {parent}`"),
        });
        Err(error.into())
    }
}

/// EC2's limits, the templates rendered from the source AMI and written, the HCL checked, under
/// the step folder's lock. (`packer validate` ran for every step before the build began, on
/// the same templates: only the source AMI's id may have changed since.)
pub struct Render;

#[async_trait]
impl<'a> Stage<StepRun<'a>> for Render {
    fn name(&self) -> &'static str {
        "rendering"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        run.render_lock = Some(StepLock::acquire(run.step).await?);
        let (workflow, step, source, region) =
            (cx.workflow.clone(), run.step.clone(), run.source.clone(), cx.region.to_string());
        let prepared = off_the_task(move || render::prepare_step(&workflow, &step, source, &region)).await?;
        run.prepared = Some(prepared);
        Ok(Next::Continue)
    }

    async fn cleanup(&self, _cx: &Services<'_>, run: &mut StepRun<'a>) -> Vec<LeftAmi> {
        run.render_lock = None;
        Vec::new()
    }
}

/// EC2 names are unique per region: stop before building when the step's name is taken. An AMI
/// that `--force` replaces still holds the name: ReplaceOld checks after deregistering it.
pub struct NameFree;

#[async_trait]
impl<'a> Stage<StepRun<'a>> for NameFree {
    fn name(&self) -> &'static str {
        "checking the AMI name"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        if run.replaces.is_none() {
            check_name_free(cx, run).await?;
        }
        Ok(Next::Continue)
    }
}

async fn check_name_free(cx: &Services<'_>, run: &StepRun<'_>) -> Result<()> {
    let Some(existing) = cx.ec2.images_named(&run.ami_name).await?.into_iter().next() else { return Ok(()) };
    // Had the catalog this AMI as the step's, the plan would not build the step: so it does not,
    // and `paw images delete` cannot remove it. A run stopped after packer made it, or a person.
    Err(Error::new(ErrorKind::Usage, format!("the AMI name \"{}\" is already taken by {}", run.ami_name, existing.id))
        .help(format!(
            "use a new workflow_id in {}, or, as the catalog does not know that AMI (a run stopped after packer made \
             it?), look at it, then deregister it with `aws ec2 deregister-image --image-id {}`",
            cx.workflow.param.path.display(),
            existing.id
        )))
}

/// A dry run's last stage: the exact packer command, and nothing made.
pub struct DryRun<'a> {
    pub packer: &'a dyn Packer,
    pub debug: bool,
}

#[async_trait]
impl<'a> Stage<StepRun<'a>> for DryRun<'_> {
    fn name(&self) -> &'static str {
        "dry run"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        let command = self.packer.build_command(&run.prepared()?.var_files(), &run.packer_vars(), self.debug);
        cx.reporter.event(Event::DryRun { step: &run.step.id, command: &command });
        Ok(Next::Continue)
    }
}

/// `--force`: this workflow's AMI of the step, made from other inputs, goes (or, when it is a
/// reuse, only this workflow's record of it); the name must then be free.
pub struct ReplaceOld {
    pub delete_snapshots: bool,
}

#[async_trait]
impl<'a> Stage<StepRun<'a>> for ReplaceOld {
    fn name(&self) -> &'static str {
        "replacing the old AMI"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        let Some(old) = run.replaces else { return Ok(Next::Continue) };
        let what = if let Some(owner) = &old.reused_from {
            cx.catalog.mark_deregistered(&old.workflow_id, &old.step_id).await?;
            format!("--force: dropped the reuse of {} (it stays, for workflow {owner})", old.ami_id)
        } else {
            let request = change::DeleteRequest { delete_snapshots: self.delete_snapshots, forced_because: None };
            let done = change::delete_image(&cx.executor(), std::slice::from_ref(old), &request).await?;
            format!("--force: deregistered {} (inputs changed){}", old.ami_id, change::delete::snapshots_said(&done))
        };
        cx.reporter.event(Event::CleanedUp { step: &run.step.id, what: &what });
        check_name_free(cx, run).await?;
        Ok(Next::Continue)
    }
}

/// The name of the stage in which packer runs: what an interrupt waits for.
pub const PACKER_BUILD: &str = "running packer build";

/// `packer build`, under the step's lease and one of the `--jobs` slots (`TakeLease`). Every AMI
/// packer reports is this run's from that moment (`made`), before anything checks it
/// (`find_made_image` does). Cleanup deregisters an AMI that was not recorded, and its copies.
pub struct PackerBuild<'a> {
    pub packer: &'a dyn Packer,
    pub env: &'a [(String, String)],
    pub debug: bool,
    pub log_path: &'a std::path::Path,
}

#[async_trait]
impl<'a> Stage<StepRun<'a>> for PackerBuild<'_> {
    fn name(&self) -> &'static str {
        PACKER_BUILD
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        let (var_files, vars) = (run.prepared()?.var_files(), run.packer_vars());
        let step_id = run.step.id.clone();
        let (started, started_at) = (Instant::now(), chrono::Utc::now());
        let mut run_lock = None;
        if let Some(lease) = &run.lease {
            let fingerprint = Some(run.fingerprint.digest.clone());
            let log_path = self.log_path.to_path_buf();
            lease.record_build(cx, PackerRun { started_at: started_at.to_rfc3339(), fingerprint, log_path }).await?;
            run_lock = lease.run_lock()?;
        }
        // packer has read the rendered files once it says anything: from then on they may change.
        let render_lock = Mutex::new(run.render_lock.take());
        let lease = run.lease.clone();
        let on_line = |line: &str| {
            render_lock.lock().expect("the render lock's holder is not poisoned").take();
            if let Some(lease) = &lease {
                lease.note_packer_line(line);
            }
            cx.reporter.event(Event::Packer { step: &step_id, line });
        };
        let request = BuildRequest {
            step_dir: &run.step.dir,
            var_files: &var_files,
            vars: &vars,
            debug: self.debug,
            env: self.env,
            log_path: self.log_path,
            run_lock: run_lock.as_ref(),
        };
        let output = self.packer.build(&request, &on_line, cx.cancel).await?;
        run.packer_time = started.elapsed();
        run.made.extend(output.amis.iter().cloned());
        if let Some(failure) = output.failure {
            // An interrupt or a failing post-processor can come after packer made the AMI: what it
            // made is not recorded, so cleanup removes it, in every region.
            let reported: Vec<String> = run.made.iter().map(|(_, ami_id)| ami_id.clone()).collect();
            let amis = unreported_images(cx, &run.ami_name, &reported, started_at).await;
            return Err(StepFailure { error: Box::new(failure), amis, transient: output.transient });
        }
        if !run.made.iter().any(|(region, _)| region.as_str() == cx.region) {
            let images = cx.ec2.images_named(&run.ami_name).await?;
            let image = adopt_unreported(cx, run, images, started_at, self.log_path)?;
            run.made.push((cx.region.to_string(), image.id));
        }
        Ok(Next::Continue)
    }

    async fn cleanup(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Vec<LeftAmi> {
        undo_unrecorded(cx, run).await
    }
}

/// The cleanup of a stage that made the AMI: not recorded, so not kept, nor are its copies.
pub async fn undo_unrecorded(cx: &Services<'_>, run: &StepRun<'_>) -> Vec<LeftAmi> {
    if run.recorded.is_some() {
        return Vec::new();
    }
    let mut left = Vec::new();
    for (region, ami_id) in &run.made {
        left.push(undo_image(cx, &run.step.id, region, ami_id).await);
    }
    left
}

/// Packer succeeded, but its output named no AMI in this region (lost output, or a template
/// without one): the AMI is this run's when it is the only one of the step's name and was made
/// after packer started — the name was free when the step began, and EC2 keeps names unique, so
/// no other build can have made it.
fn adopt_unreported(
    cx: &Services<'_>,
    run: &StepRun<'_>,
    images: Vec<Image>,
    started_at: chrono::DateTime<chrono::Utc>,
    log_path: &std::path::Path,
) -> Result<Image, StepFailure> {
    let ami_name = &run.ami_name;
    let no_ami = |what: String| {
        Error::new(ErrorKind::Packer, format!("packer succeeded but reported no AMI in {}; {what}", cx.region))
            .help(format!("packer's full output is in {}", log_path.display()))
    };
    match images.as_slice() {
        [] => Err(no_ami(format!("EC2 has no AMI named \"{ami_name}\" either")).into()),
        [image] if made_since(image, started_at) => {
            let what = format!(
                "packer's output named no AMI; {} is named \"{ami_name}\" and was made by this run: recording it",
                image.id
            );
            cx.reporter.event(Event::Notice { step: &run.step.id, what: &what });
            Ok(image.clone())
        }
        _ => Err(StepFailure {
            transient: None,
            error: Box::new(no_ami(format!(
                "EC2 has {} AMI(s) named \"{ami_name}\" that paw cannot prove are this run's",
                images.len()
            ))),
            amis: images.iter().map(|image| unproven(image, ami_name)).collect(),
        }),
    }
}

/// After a failed build: the AMIs named like the step's that packer did not report. Another run
/// may own them (a failed CreateImage is what a race for the name looks like), so they are named,
/// never deregistered.
async fn unreported_images(
    cx: &Services<'_>,
    ami_name: &str,
    reported: &[String],
    started_at: chrono::DateTime<chrono::Utc>,
) -> Vec<LeftAmi> {
    match cx.ec2.images_named(ami_name).await {
        Ok(images) => images
            .iter()
            .filter(|image| !reported.contains(&image.id) && made_since(image, started_at))
            .map(|image| unproven(image, ami_name))
            .collect(),
        Err(err) => {
            vec![LeftAmi { ami_id: "?".into(), fate: format!("could not look for AMIs named \"{ami_name}\": {err}") }]
        }
    }
}

/// Whether EC2 says the image was made at or after `since` (to the second, as EC2 keeps it).
pub(crate) fn made_since(image: &Image, since: chrono::DateTime<chrono::Utc>) -> bool {
    chrono::DateTime::parse_from_rfc3339(&image.creation_date)
        .is_ok_and(|created| created.timestamp() >= since.timestamp())
}

fn unproven(image: &Image, ami_name: &str) -> LeftAmi {
    LeftAmi {
        ami_id: image.id.clone(),
        fate: format!(
            "left in EC2: named \"{ami_name}\", made {}, but not proven this run's; if it is, \
             `aws ec2 deregister-image --image-id {}` removes it",
            image.creation_date, image.id
        ),
    }
}

/// Deregisters an AMI this run made but did not record, in its region, with its snapshots.
pub async fn undo_image(cx: &Services<'_>, step_id: &str, region: &str, ami_id: &str) -> LeftAmi {
    let ec2 = crate::ec2::ec2_in(cx.ec2, cx.region, region);
    let snapshots = match ec2.describe_image(ami_id).await {
        Ok(Some(image)) => image.snapshot_ids,
        _ => Vec::new(),
    };
    let place = if region == cx.region { String::new() } else { format!(" in {region}") };
    let fate = match ec2.deregister_image(ami_id, &snapshots).await {
        Ok(()) => format!("deregistered{place}, snapshots deleted: {snapshots:?}"),
        Err(err) => format!("could not be deregistered{place} ({err}); deregister it by hand"),
    };
    cx.reporter.event(Event::CleanedUp { step: step_id, what: &format!("{ami_id}: {fate}") });
    LeftAmi { ami_id: ami_id.to_string(), fate }
}

/// An image's id and its snapshots' ids: what its tags go on.
pub fn image_and_snapshots(image: &Image) -> Vec<String> {
    std::iter::once(image.id.clone()).chain(image.snapshot_ids.iter().cloned()).collect()
}

/// The step's tags, and the fingerprint, on the AMI and every one of its snapshots; and the
/// lifecycle policy's deprecation time on the AMI and its copies.
pub struct TagImage;

#[async_trait]
impl<'a> Stage<ImageRun<'a>> for TagImage {
    fn name(&self) -> &'static str {
        "tagging"
    }

    async fn run(&self, cx: &Services<'_>, made: &mut ImageRun<'a>) -> Result<Next, StepFailure> {
        let tags = step_tags(cx, &made.run);
        cx.ec2.create_tags(&image_and_snapshots(&made.image), &tags).await?;
        // The record describes the image as it is now, without asking EC2 again.
        made.image.add_tags(&tags);
        // Copies get the same tags where they are (CopyImage and ami_regions do not copy them).
        for (region, copy) in &made.copies {
            cx.ec2
                .in_region(region)
                .create_tags(&image_and_snapshots(copy), &tags)
                .await
                .map_err(|err| err.in_region(region))?;
        }
        // The lifecycle policy's deprecation, set now in EC2 for the image and its copies: EC2
        // hides it when the time comes, whether or not paw runs then.
        let policy = cx.workflow.param.lifecycle.with_step(&made.run.step.param)?;
        if let Some(days) = policy.deprecate_after_days {
            // EC2 takes a time in the future.
            let at = chrono::Utc::now() + chrono::Duration::days(days as i64) + chrono::Duration::minutes(1);
            let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            cx.ec2.deprecate_image(&made.image.id, &at).await?;
            for (region, copy) in &made.copies {
                cx.ec2.in_region(region).deprecate_image(&copy.id, &at).await.map_err(|err| err.in_region(region))?;
            }
        }
        Ok(Next::Continue)
    }
}

/// The tags of the step's AMI and its snapshots: the step's, and its inputs' fingerprint.
pub fn step_tags(cx: &Services<'_>, run: &StepRun<'_>) -> Vec<(String, String)> {
    let mut tags = ami::ami_tags(cx.workflow, run.step, &run.source);
    ami::set_tag(&mut tags, ami::FINGERPRINT_TAG, &run.fingerprint.digest);
    tags
}

/// The step's image tests (`image_tests`), on the image just recorded, under the step's lease
/// (the journal knows each test's instance): its children wait for the verdict. Failed, the image
/// is marked so, and deregistered unless `--keep-failed`; the step fails.
pub struct TestImage<'a> {
    pub tester: &'a Tester<'a>,
    pub on_failure: OnFailure,
}

#[async_trait]
impl<'a> Stage<ImageRun<'a>> for TestImage<'_> {
    fn name(&self) -> &'static str {
        "testing the image"
    }

    async fn run(&self, cx: &Services<'_>, made: &mut ImageRun<'a>) -> Result<Next, StepFailure> {
        let tests = made.run.step.image_tests()?;
        if tests.is_empty() {
            return Ok(Next::Continue);
        }
        let Some(record) = made.run.recorded.clone() else {
            return Err(Error::bug(format!("step {}: tests run on a recorded image", made.run.step.id)).into());
        };
        let subject = Subject { step: made.run.step, image: record.as_source(), source: made.run.source.clone() };
        let lease = made.run.lease.clone();
        let run = image_tests::run(cx, self.tester, &subject, &tests, lease.as_deref()).await?;
        image_tests::record_verdict(cx, &record, &run, self.on_failure).await?;
        made.tests = Some(run);
        Ok(Next::Continue)
    }
}

/// The distribution block's targets of the step (`change::distribute`): the tested image copied, or
/// shared, to every region and account that runs it. A place that fails fails the step; the image
/// and the copies made stay recorded, and `paw distribute STEP` finishes the job.
pub struct Distribute;

#[async_trait]
impl<'a> Stage<ImageRun<'a>> for Distribute {
    fn name(&self) -> &'static str {
        "distributing"
    }

    async fn run(&self, cx: &Services<'_>, made: &mut ImageRun<'a>) -> Result<Next, StepFailure> {
        let targets = change::distribute::targets_of(cx.workflow, made.run.step);
        if targets.is_empty() {
            return Ok(Next::Continue);
        }
        let Some(record) = made.run.recorded.clone() else {
            return Err(Error::bug(format!("step {}: an image is distributed once recorded", made.run.step.id)).into());
        };
        let step_id = made.run.step.id.as_str();
        let progress = |what: &str| cx.reporter.event(Event::Notice { step: step_id, what });
        let results = change::distribute::distribute(&cx.executor().telling(&progress), &record, &targets).await?;
        change::distribute::failure(&record, &results).map_or(Ok(Next::Continue), |error| Err(error.into()))
    }
}

/// The AMI in the catalog; from here on it is kept.
pub struct Record;

#[async_trait]
impl<'a> Stage<ImageRun<'a>> for Record {
    fn name(&self) -> &'static str {
        "recording"
    }

    async fn run(&self, cx: &Services<'_>, made: &mut ImageRun<'a>) -> Result<Next, StepFailure> {
        let run = &made.run;
        let mut record = ImageRecord::of_image(cx.workflow, run.step, &run.source, cx.region, &made.image);
        record.fingerprint = Some(run.fingerprint.digest.clone());
        record.fingerprint_inputs = Some(run.fingerprint.inputs.clone());
        record.from_instance = run.from_instance.clone();
        record.copies = made.copies.iter().map(|(region, copy)| (region.clone(), copy.id.clone())).collect();
        cx.catalog.record(&record).await?;
        made.run.recorded = Some(record);
        Ok(Next::Continue)
    }
}
