//! The concrete stages of one step's build (the machinery that runs them: `pipeline.rs`).
//! `BuildStages::run` is the whole of what `paw build` does for a step, from its lease to its
//! release; `paw images from-instance` (ops::from_instance) shares the stages where the two do the
//! same. Between the stages up to the AMI and those after it, `run_pipeline` finds the AMI made in
//! EC2 (`find_made_image`).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::events::{Event, LeftAmi, StepFailure};
use super::image_tests::{self, OnFailure, Subject, Tester};
use super::lease::{Lease, Taken};
use super::pipeline::{
    Finished, ImageRun, Next, Stage, StageId, StepRun, enter, finish, keeping, run_list, run_stages,
};
use super::recording::{Attest, Record, TagImage};
use super::recover;
use super::services::Services;
use crate::ami;
use crate::catalog::PackerRun;
use crate::change;
use crate::ec2::{self, Image, ImageState};
use crate::error::{Error, ErrorKind, Result};
use crate::packer::{BuildRequest, Packer};
use crate::render::{self, StepLock};

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

/// Between the stages that make the AMI and those that finish it: EC2's description of the AMI
/// made in this region, with the step's name, and of its copies elsewhere. The AMI is the one
/// made (packer reported it, CreateImage returned it), or, should packer's report be lost, the
/// one AMI of the step's name made since packer started. Each copy is checked where it is.
async fn find_made_image(cx: &Services<'_>, run: &StepRun<'_>) -> Result<(Image, Vec<(String, Image)>), StepFailure> {
    enter(cx, &run.step.id, StageId::FindImage)?;
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
        let attest = Attest { on_failure };
        let before: [&dyn Stage<StepRun<'a>>; 7] =
            [&take_lease, &SourceAvailable, &ParentVerified, &Render, &NameFree, &replace, &packer];
        // ... then find_made_image, then:
        let after: [&dyn Stage<ImageRun<'a>>; 5] = [&TagImage, &Record, &test, &attest, &Distribute];
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
    fn id(&self) -> StageId {
        StageId::TakeLease
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        loop {
            let slot = self.slots.acquire().await.expect("the slots' semaphore is never closed");
            match Lease::try_take(cx, &run.claim(), self.ttl).await? {
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
                Taken::HeldByDead(holder, why) => {
                    drop(slot);
                    recover::settle(cx, &holder, &why).await?;
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
    fn id(&self) -> StageId {
        StageId::SourceAvailable
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

/// `require_provenance`: the parent's image, and its chain down to the root base AMI, verify with
/// the workflow's key before anything is built on it. (A parent built in this run was attested by
/// it a moment ago.)
pub struct ParentVerified;

#[async_trait]
impl<'a> Stage<StepRun<'a>> for ParentVerified {
    fn id(&self) -> StageId {
        StageId::ParentVerified
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        let Some(key) = &cx.attester.required else { return Ok(Next::Continue) };
        if run.step.parent.is_none() || run.source.is_placeholder() || run.source_is_fresh {
            return Ok(Next::Continue);
        }
        let records = cx.catalog.find_by_ami(&run.source.id).await?;
        let Some(parent) = records.iter().find(|record| record.provenance.is_some()).or(records.first()) else {
            let what =
                format!("step \"{}\" starts from {}, which the catalog does not hold", run.step.id, run.source.id);
            return Err(Error::new(ErrorKind::Unverified, what).into());
        };
        let refused = format!("step \"{}\" is not built on its parent", run.step.id);
        crate::ops::verify::require_verified(cx.catalog, cx.ec2, cx.region, parent, key, &refused).await?;
        Ok(Next::Continue)
    }
}

/// EC2's limits, the templates rendered from the source AMI and written, the HCL checked, under
/// the step folder's lock. (`packer validate` ran for every step before the build began, on
/// the same templates: only the source AMI's id may have changed since.)
pub struct Render;

#[async_trait]
impl<'a> Stage<StepRun<'a>> for Render {
    fn id(&self) -> StageId {
        StageId::Render
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        run.render_lock = Some(StepLock::acquire(run.step).await?);
        let prepared = render::prepare_step(cx.workflow, run.step, run.source.clone(), cx.region).await?;
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
    fn id(&self) -> StageId {
        StageId::NameFree
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
    fn id(&self) -> StageId {
        StageId::DryRun
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
    fn id(&self) -> StageId {
        StageId::ReplaceOld
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        let Some(old) = run.replaces else { return Ok(Next::Continue) };
        let what = if let Some(owner) = &old.reused_from {
            cx.catalog.mark_deregistered(&old.workflow_id, &old.step_id).await?;
            format!("--force: dropped the reuse of {} (it stays, for workflow {owner})", old.ami_id)
        } else {
            let request =
                change::DeleteRequest { delete_snapshots: self.delete_snapshots, ..change::DeleteRequest::default() };
            let done = change::delete_image(&cx.executor(), std::slice::from_ref(old), &request).await?;
            format!("--force: deregistered {} (inputs changed){}", old.ami_id, change::delete::snapshots_said(&done))
        };
        cx.reporter.event(Event::CleanedUp { step: &run.step.id, what: &what });
        check_name_free(cx, run).await?;
        Ok(Next::Continue)
    }
}

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
    fn id(&self) -> StageId {
        StageId::PackerBuild
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        let (var_files, vars) = (run.prepared()?.var_files(), run.packer_vars());
        let step_id = run.step.id.clone();
        let (started, started_at, started_on) = (Instant::now(), chrono::Utc::now(), std::time::SystemTime::now());
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
        // packer's version (for the statement) is asked while packer builds: it costs no time.
        let (version, output) =
            tokio::join!(self.packer.version_text(), self.packer.build(&request, &on_line, cx.cancel));
        let output = output?;
        run.packer_time = started.elapsed();
        run.made.extend(output.amis.iter().cloned());
        if let Some(failure) = output.failure {
            // An interrupt or a failing post-processor can come after packer made the AMI: what it
            // made is not recorded, so cleanup removes it, in every region.
            let reported: Vec<String> = run.made.iter().map(|(_, ami_id)| ami_id.clone()).collect();
            let amis = unreported_images(cx, &run.ami_name, &reported, started_at).await;
            return Err(StepFailure { error: Box::new(failure), amis, transient: output.transient });
        }
        run.packer_started = Some((started_on, version?));
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
        left.push(cx.undo_image(&run.step.id, region, ami_id).await);
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
        [image] if image.made_since(started_at) => {
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
            .filter(|image| !reported.contains(&image.id) && image.made_since(started_at))
            .map(|image| unproven(image, ami_name))
            .collect(),
        Err(err) => {
            vec![LeftAmi { ami_id: "?".into(), fate: format!("could not look for AMIs named \"{ami_name}\": {err}") }]
        }
    }
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

/// The step's image tests (`image_tests`), on the image just recorded, under the step's lease
/// (the journal knows each test's instance): its children wait for the verdict. Failed, the image
/// is marked so, and deregistered unless `--keep-failed`; the step fails.
pub struct TestImage<'a> {
    pub tester: &'a Tester<'a>,
    pub on_failure: OnFailure,
}

#[async_trait]
impl<'a> Stage<ImageRun<'a>> for TestImage<'_> {
    fn id(&self) -> StageId {
        StageId::TestImage
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
    fn id(&self) -> StageId {
        StageId::Distribute
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
