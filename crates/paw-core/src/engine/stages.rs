//! One step's build as a list of stages, in the manner of Packer's own `multistep`: the stages run
//! in turn; when one fails, or the run is interrupted, every stage that ran is cleaned up, in
//! reverse order. `build_stages` is the whole pipeline of `paw build`; `paw images from-instance`
//! (ops::from_instance) shares its stages where the two do the same thing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::events::{Event, LeftAmi, Reporter, StepFailure};
use super::lease::Lease;
use crate::ami::{self, AmiRef};
use crate::blocking::off_the_task;
use crate::catalog::{self, Catalog, ImageRecord, PackerRun};
use crate::ec2::{Ec2, Image, ImageState};
use crate::error::{Error, ErrorKind, Result};
use crate::fingerprint::{self, Fingerprint};
use crate::ops;
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

/// One step's build as it goes: what the stages learn and hand on.
pub struct StepRun<'a> {
    pub step: &'a Step,
    pub source: AmiRef,
    /// The source is the AMI the parent got in this run: known to be available.
    pub source_is_fresh: bool,
    pub ami_name: String,
    pub fingerprint: Option<Fingerprint>,
    /// This workflow's AMI of the step that `--force` replaces.
    pub replaces: Option<&'a ImageRecord>,
    /// The instance the AMI is made from, by hand, instead of packer.
    pub from_instance: Option<String>,
    pub prepared: Option<Prepared>,
    /// The step folder's rendered files are this run's from rendering until packer has read them.
    pub render_lock: Option<StepLock>,
    /// The step's lease, while this run builds it (not in a dry run).
    pub lease: Option<Arc<Lease>>,
    /// Every AMI this run made, with its region, from the moment it is known (packer reported it,
    /// CreateImage returned it) and before anything checks it: cleanup deregisters each one not
    /// recorded, whatever failed after.
    pub made: Vec<(String, String)>,
    /// The AMI this run made, once EC2 has described it.
    pub image: Option<Image>,
    /// Its copies in other regions (packer's `ami_regions`), with their regions.
    pub copies: Vec<(String, Image)>,
    /// Set once the AMI is in the catalog: from then on nothing undoes it.
    pub recorded: Option<ImageRecord>,
    pub packer_time: Duration,
}

impl<'a> StepRun<'a> {
    pub fn new(workflow: &Workflow, step: &'a Step, source: AmiRef) -> StepRun<'a> {
        StepRun {
            step,
            source,
            source_is_fresh: false,
            ami_name: ami::output_ami_name(workflow, step),
            fingerprint: None,
            replaces: None,
            from_instance: None,
            prepared: None,
            render_lock: None,
            lease: None,
            made: Vec::new(),
            image: None,
            copies: Vec::new(),
            recorded: None,
            packer_time: Duration::ZERO,
        }
    }
}

/// One stage: `run` does its part; `cleanup`, called in reverse order after a later stage (or this
/// one) failed, undoes what is not to be kept, and says what became of the AMIs it touched.
#[async_trait]
pub trait Stage: Send + Sync {
    fn name(&self) -> &'static str;

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'_>) -> Result<(), StepFailure>;

    async fn cleanup(&self, _cx: &Services<'_>, _run: &mut StepRun<'_>) -> Vec<LeftAmi> {
        Vec::new()
    }
}

/// Runs the stages in order; on a failure or an interrupt, cleans up every stage that ran, the
/// failed one included, last first.
pub async fn run_stages(cx: &Services<'_>, stages: &[&dyn Stage], run: &mut StepRun<'_>) -> Result<(), StepFailure> {
    for (index, stage) in stages.iter().enumerate() {
        let (result, started) = if cx.cancel.is_cancelled() {
            (Err(Error::new(ErrorKind::Interrupted, format!("interrupted before {}", stage.name())).into()), index)
        } else {
            cx.reporter.event(Event::Stage { step: &run.step.id, stage: stage.name() });
            (stage.run(cx, run).await, index + 1)
        };
        if let Err(mut failure) = result {
            for stage in stages[..started].iter().rev() {
                failure.amis.extend(stage.cleanup(cx, run).await);
            }
            return Err(failure);
        }
    }
    Ok(())
}

/// What `paw build` does for a step to be built; a dry run stops before anything is made.
pub struct BuildStages<'a> {
    pub packer: &'a dyn Packer,
    pub packer_env: &'a [(String, String)],
    pub packer_debug: bool,
    pub dry_run: bool,
    pub delete_snapshots: bool,
    pub log_path: PathBuf,
}

impl BuildStages<'_> {
    /// The pipeline, in order.
    pub async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'_>) -> Result<(), StepFailure> {
        if self.dry_run {
            let command = DryRun { packer: self.packer, debug: self.packer_debug };
            return run_stages(cx, &[&SourceAvailable, &ComputeFingerprint, &Render, &NameFree, &command], run).await;
        }
        let packer = PackerBuild {
            packer: self.packer,
            env: self.packer_env,
            debug: self.packer_debug,
            log_path: &self.log_path,
        };
        let stages: [&dyn Stage; 8] = [
            &SourceAvailable,
            &ComputeFingerprint,
            &Render,
            &NameFree,
            &ReplaceOld { delete_snapshots: self.delete_snapshots },
            &packer,
            &TagImage,
            &Record,
        ];
        run_stages(cx, &stages, run).await
    }
}

/// The source AMI must exist in this region (a placeholder, in a dry run, is not looked up).
pub struct SourceAvailable;

#[async_trait]
impl Stage for SourceAvailable {
    fn name(&self) -> &'static str {
        "checking the source AMI"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'_>) -> Result<(), StepFailure> {
        if run.source.is_placeholder() || run.source_is_fresh {
            return Ok(());
        }
        let image = cx.ec2.describe_image(&run.source.id).await?;
        if image.is_some_and(|image| image.state == ImageState::Available) {
            return Ok(());
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

/// The plan's fingerprint, or, when the parent was rebuilt in this run, one from its new AMI.
pub struct ComputeFingerprint;

#[async_trait]
impl Stage for ComputeFingerprint {
    fn name(&self) -> &'static str {
        "fingerprinting the inputs"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'_>) -> Result<(), StepFailure> {
        if run.fingerprint.is_none() {
            let (workflow, step, source) = (cx.workflow.clone(), run.step.clone(), run.source.id.clone());
            let fingerprint = off_the_task(move || fingerprint::fingerprint(&workflow, &step, &source)).await?;
            run.fingerprint = Some(fingerprint);
        }
        Ok(())
    }
}

/// EC2's limits, the templates rendered from the source AMI and written, the HCL checked.
/// (`packer validate` ran for every step before the build began: only the source AMI's id has
/// changed since.)
pub struct Render;

#[async_trait]
impl Stage for Render {
    fn name(&self) -> &'static str {
        "rendering"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'_>) -> Result<(), StepFailure> {
        run.render_lock = Some(StepLock::acquire(run.step).await?);
        let (workflow, step, source, region) =
            (cx.workflow.clone(), run.step.clone(), run.source.clone(), cx.region.to_string());
        let prepared = off_the_task(move || render::prepare_step(&workflow, &step, source, &region)).await?;
        run.prepared = Some(prepared);
        Ok(())
    }
}

/// EC2 names are unique per region: stop before building when the step's name is taken. An AMI
/// that `--force` replaces still holds the name: ReplaceOld checks after deregistering it.
pub struct NameFree;

#[async_trait]
impl Stage for NameFree {
    fn name(&self) -> &'static str {
        "checking the AMI name"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'_>) -> Result<(), StepFailure> {
        if run.replaces.is_none() {
            check_name_free(cx, run).await?;
        }
        Ok(())
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
impl Stage for DryRun<'_> {
    fn name(&self) -> &'static str {
        "dry run"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'_>) -> Result<(), StepFailure> {
        let var_files = run.prepared.as_ref().map(Prepared::var_files).unwrap_or_default();
        let command = self.packer.build_command(&var_files, self.debug);
        cx.reporter.event(Event::DryRun { step: &run.step.id, command: &command });
        Ok(())
    }
}

/// `--force`: this workflow's AMI of the step, made from other inputs, goes (or, when it is a
/// reuse, only this workflow's record of it); the name must then be free.
pub struct ReplaceOld {
    pub delete_snapshots: bool,
}

#[async_trait]
impl Stage for ReplaceOld {
    fn name(&self) -> &'static str {
        "replacing the old AMI"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'_>) -> Result<(), StepFailure> {
        let Some(old) = run.replaces else { return Ok(()) };
        let what = if let Some(owner) = &old.reused_from {
            cx.catalog.mark_deregistered(&old.workflow_id, &old.step_id).await?;
            format!("--force: dropped the reuse of {} (it stays, for workflow {owner})", old.ami_id)
        } else {
            let snapshots = ops::delete_image(cx.ec2, cx.catalog, old, self.delete_snapshots).await?;
            format!("--force: deregistered {} (inputs changed); deleted snapshots: {snapshots:?}", old.ami_id)
        };
        cx.reporter.event(Event::CleanedUp { step: &run.step.id, what: &what });
        check_name_free(cx, run).await?;
        Ok(())
    }
}

/// The name of the stage in which packer runs: what an interrupt waits for.
pub const PACKER_BUILD: &str = "running packer build";

/// `packer build` (the step holds one of the `--jobs` slots: `Engine::build_step`). Its AMI is
/// the one packer reports, or, should the report be lost, the one AMI of the step's name made
/// since packer started. Cleanup deregisters an AMI that was not recorded, and its copies.
pub struct PackerBuild<'a> {
    pub packer: &'a dyn Packer,
    pub env: &'a [(String, String)],
    pub debug: bool,
    pub log_path: &'a std::path::Path,
}

#[async_trait]
impl Stage for PackerBuild<'_> {
    fn name(&self) -> &'static str {
        PACKER_BUILD
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'_>) -> Result<(), StepFailure> {
        if cx.cancel.is_cancelled() {
            return Err(Error::new(ErrorKind::Interrupted, "interrupted before packer started").into());
        }
        let var_files = run.prepared.as_ref().map(Prepared::var_files).unwrap_or_default();
        let step_id = run.step.id.clone();
        let (started, started_at) = (Instant::now(), chrono::Utc::now());
        let mut env = self.env.to_vec();
        if let Some(lease) = &run.lease {
            let fingerprint = run.fingerprint.as_ref().map(|fingerprint| fingerprint.digest.clone());
            let log_path = self.log_path.to_path_buf();
            lease.record_build(cx, PackerRun { started_at: started_at.to_rfc3339(), fingerprint, log_path }).await?;
            env.push((catalog::RUN_ID_ENV.to_string(), lease.run_id()));
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
            debug: self.debug,
            env: &env,
            log_path: self.log_path,
        };
        let output = self.packer.build(&request, &on_line, cx.cancel).await?;
        run.packer_time = started.elapsed();
        // What packer reports is this run's before anything is checked: a failing look-up below
        // must not leave it in EC2 unknown (cleanup deregisters what `made` holds).
        run.made.extend(output.amis.iter().cloned());
        let (here, elsewhere): (Vec<_>, Vec<_>) =
            output.amis.into_iter().partition(|(region, _)| region.as_str() == cx.region);
        let reported: Vec<String> = here.into_iter().map(|(_, ami_id)| ami_id).collect();
        if let Some(failure) = output.failure {
            // An interrupt or a failing post-processor can come after packer made the AMI: what it
            // made is not recorded, so cleanup removes it, in every region.
            let amis = unreported_images(cx, &run.ami_name, &reported, started_at).await;
            return Err(StepFailure { error: Box::new(failure), amis });
        }
        let images = cx.ec2.images_named(&run.ami_name).await?;
        let image = match reported.first() {
            Some(ami_id) => images.into_iter().find(|image| &image.id == ami_id).ok_or_else(|| {
                Error::new(
                    ErrorKind::Aws,
                    format!("packer reported {ami_id}, but EC2 has no such AMI named \"{}\"", run.ami_name),
                )
            })?,
            None => {
                let image = adopt_unreported(cx, run, images, started_at, self.log_path)?;
                run.made.push((cx.region.to_string(), image.id.clone()));
                image
            }
        };
        run.image = Some(image);
        // Each copy is checked where it is; cleanup undoes every one found so far.
        for (region, ami_id) in elsewhere {
            match cx.ec2.in_region(&region).describe_image(&ami_id).await? {
                Some(copy) => run.copies.push((region, copy)),
                None => {
                    return Err(Error::new(
                        ErrorKind::Aws,
                        format!("packer reported {ami_id} in {region}, but EC2 has no such AMI there"),
                    )
                    .into());
                }
            }
        }
        Ok(())
    }

    async fn cleanup(&self, cx: &Services<'_>, run: &mut StepRun<'_>) -> Vec<LeftAmi> {
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

/// The step's tags, and the fingerprint, on the AMI and every one of its snapshots.
pub struct TagImage;

#[async_trait]
impl Stage for TagImage {
    fn name(&self) -> &'static str {
        "tagging"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'_>) -> Result<(), StepFailure> {
        let tags = step_tags(cx, run);
        let image = run.image.as_mut().expect("PackerBuild ran");
        cx.ec2.create_tags(&image_and_snapshots(image), &tags).await?;
        // The record describes the image as it is now, without asking EC2 again.
        image.add_tags(&tags);
        // Copies get the same tags where they are (CopyImage and ami_regions do not copy them).
        for (region, copy) in &run.copies {
            cx.ec2
                .in_region(region)
                .create_tags(&image_and_snapshots(copy), &tags)
                .await
                .map_err(|err| err.in_region(region))?;
        }
        Ok(())
    }
}

/// The tags of the step's AMI and its snapshots: the step's, and its inputs' fingerprint.
pub fn step_tags(cx: &Services<'_>, run: &StepRun<'_>) -> Vec<(String, String)> {
    let mut tags = ami::ami_tags(cx.workflow, run.step, &run.source);
    if let Some(fingerprint) = &run.fingerprint {
        ami::set_tag(&mut tags, ami::FINGERPRINT_TAG, &fingerprint.digest);
    }
    tags
}

/// The AMI in the catalog; from here on it is kept.
pub struct Record;

#[async_trait]
impl Stage for Record {
    fn name(&self) -> &'static str {
        "recording"
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'_>) -> Result<(), StepFailure> {
        let image = run.image.as_ref().expect("the AMI exists before it is recorded");
        let mut record = ImageRecord::of_image(cx.workflow, run.step, &run.source, cx.region, image);
        if let Some(fingerprint) = &run.fingerprint {
            record.fingerprint = Some(fingerprint.digest.clone());
            record.fingerprint_inputs = Some(fingerprint.inputs.clone());
        }
        record.from_instance = run.from_instance.clone();
        record.copies = run.copies.iter().map(|(region, copy)| (region.clone(), copy.id.clone())).collect();
        cx.catalog.record(&record).await?;
        run.recorded = Some(record);
        Ok(())
    }
}
