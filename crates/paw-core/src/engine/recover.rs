//! `paw recover`, and a lease's dead holder: what a run that died left is settled. Packer's
//! instance, key pair and security group go; the AMI the dead run made is adopted when it is whole
//! and its inputs still match (through the recording stages, as its own build would have), else
//! deregistered; a distribution it began is finished.

use std::time::Duration;

use super::events::Event;
use super::image_tests::OnFailure;
use super::pipeline::{ImageRun, StepRun, run_stages};
use super::recording::{Attest, Record, TagImage};
use super::services::Services;
use crate::ami::AmiRef;
use crate::catalog::{self, ImageStatus, InFlight, PackerRun, Verdict};
use crate::change;
use crate::ec2::{Image, ImageState};
use crate::error::Result;
use crate::fingerprint::{self, Fingerprint};
use crate::packer::MachineLine;
use crate::run_lock::RunLock;

/// How long a settled run's AMI, still pending, may take to become available.
const PENDING_AMI_WAIT: Duration = Duration::from_secs(1800);

/// A journal entry of the workflow, as `paw recover` found it.
#[derive(Debug)]
pub struct Found {
    pub entry: InFlight,
    /// Why its run is gone (it was settled), or None: still at work.
    pub stale: Option<String>,
}

/// Settles every stale journal entry of the workflow; the live ones are listed, untouched.
pub async fn recover(cx: &Services<'_>) -> Result<Vec<Found>> {
    let host = catalog::this_host();
    let mut found = Vec::new();
    for entry in cx.catalog.builds_in_flight(&cx.workflow.param.workflow_id).await? {
        let stale = entry.stale_because(catalog::now_unix(), &host);
        if let Some(why) = &stale {
            settle(cx, &entry, why).await?;
        }
        found.push(Found { entry, stale });
    }
    Ok(found)
}

/// Cleans up after a dead run: packer's temporary resources (named in its entry, and in its log
/// when that is on this machine) go; an AMI of the step's name that it made is adopted, when it is
/// available, not recorded, and the step's inputs still match; otherwise it is deregistered with
/// its snapshots. Then the entry ends. paw touches only what that run made.
pub async fn settle(cx: &Services<'_>, entry: &InFlight, why: &str) -> Result<()> {
    let step_id = entry.step_id.as_str();
    let tell = |what: String| cx.reporter.event(Event::Notice { step: step_id, what: &what });
    tell(format!("settling the build of an interrupted run: {why}"));
    let mut resources = entry.resources.clone();
    if let Some(build) = entry.build.as_ref().filter(|_| entry.host == catalog::this_host()) {
        let log = std::fs::read_to_string(&build.log_path).unwrap_or_default();
        for line in log.lines().filter_map(MachineLine::parse) {
            if let Some((_, text)) = line.ui_text() {
                text.lines().for_each(|text_line| {
                    resources.note(text_line);
                });
            }
        }
    }
    for instance in &resources.instances {
        if cx.ec2.terminate_instance(instance).await? {
            tell(format!("terminated {instance} left by an interrupted run"));
        }
    }
    for key_pair in &resources.key_pairs {
        if cx.ec2.delete_key_pair(key_pair).await? {
            tell(format!("deleted the key pair {key_pair} left by an interrupted run"));
        }
    }
    for group in &resources.security_groups {
        if cx.ec2.delete_security_group(group).await? {
            tell(format!("deleted the security group {group} left by an interrupted run"));
        }
    }
    if let Some(build) = &entry.build {
        settle_ami(cx, entry, build, &resources.copy_regions).await?;
    }
    finish_distribution(cx, entry).await?;
    cx.catalog.end_build(entry).await?;
    if let Some(lock) = entry.lock_here(&catalog::this_host()) {
        RunLock::remove(lock);
    }
    Ok(())
}

/// The distribution a dead run may have begun: its step's image, recorded and (when the step has
/// tests) passed, goes to the places the distribution block names; copies the run made are
/// finished (recorded or not: a copy has the original's name), missing ones made. A place that
/// fails is told, not fatal: `paw distribute STEP` does it again.
async fn finish_distribution(cx: &Services<'_>, entry: &InFlight) -> Result<()> {
    let step = match cx.workflow.step(&entry.step_id) {
        Some(step) if cx.workflow.param.workflow_id == entry.workflow_id => step,
        _ => return Ok(()),
    };
    let targets = change::distribute::targets_of(cx.workflow, step);
    if targets.is_empty() {
        return Ok(());
    }
    let record = cx.catalog.get(&entry.workflow_id, &entry.step_id).await?;
    let Some(record) = record.filter(|record| record.status == ImageStatus::Available) else { return Ok(()) };
    if !step.image_tests()?.is_empty() && record.verdict() != Verdict::Passed {
        return Ok(());
    }
    let tell = |what: &str| cx.reporter.event(Event::Notice { step: &entry.step_id, what });
    let results = change::distribute::distribute(&cx.executor().telling(&tell), &record, &targets).await?;
    if let Some(error) = change::distribute::failure(&record, &results) {
        tell(&error.to_string());
    }
    Ok(())
}

/// The AMI a dead run made, if any, with its copies in `copy_regions`: adopted, or deregistered.
async fn settle_ami(cx: &Services<'_>, entry: &InFlight, build: &PackerRun, copy_regions: &[String]) -> Result<()> {
    let Ok(started_at) = chrono::DateTime::parse_from_rfc3339(&build.started_at) else { return Ok(()) };
    let made_by_it = |image: &Image| image.made_since(started_at.to_utc());
    let recorded = cx.catalog.get(&entry.workflow_id, &entry.step_id).await?;
    let recorded = recorded.filter(|record| record.status == ImageStatus::Available);
    let mut copies = Vec::new();
    for region in copy_regions {
        for copy in cx.ec2.in_region(region).images_named(&entry.ami_name).await.map_err(|err| err.in_region(region))? {
            let known = recorded.as_ref().is_some_and(|record| record.copies.get(region) == Some(&copy.id));
            if made_by_it(&copy) && !known {
                copies.push((region.clone(), copy));
            }
        }
    }
    let recorded = recorded.map(|record| record.ami_id);
    let images = cx.ec2.images_named(&entry.ami_name).await?;
    for image in images.into_iter().filter(|image| made_by_it(image) && recorded.as_ref() != Some(&image.id)) {
        match adoptable(cx, entry, build, image, recorded.is_some()).await? {
            Ok((image, fingerprint)) => adopt(cx, entry, image, fingerprint, std::mem::take(&mut copies)).await?,
            Err((ami_id, why)) => undo(cx, entry, cx.region, &ami_id, &why).await,
        }
    }
    // Copies of an AMI that was not adopted (or is gone) are not kept either.
    for (region, copy) in copies {
        undo(cx, entry, &region, &copy.id, "its AMI was not kept").await;
    }
    Ok(())
}

async fn undo(cx: &Services<'_>, entry: &InFlight, region: &str, ami_id: &str, why: &str) {
    let left = cx.undo_image(&entry.step_id, region, ami_id).await;
    let what = format!("{ami_id} left by an interrupted run ({why}): {}", left.fate);
    cx.reporter.event(Event::Notice { step: &entry.step_id, what: &what });
}

/// The image, ready to adopt, with the step's fingerprint; or its id and why it is not to be kept.
async fn adoptable(
    cx: &Services<'_>,
    entry: &InFlight,
    build: &PackerRun,
    image: Image,
    step_recorded: bool,
) -> Result<std::result::Result<(Image, Fingerprint), (String, String)>> {
    let image_id = image.id.clone();
    let refuse = |why: &str| Ok(Err((image_id.clone(), why.to_string())));
    if step_recorded {
        return refuse("the step has another AMI in the catalog");
    }
    let step = match cx.workflow.step(&entry.step_id) {
        Some(step) if cx.workflow.param.workflow_id == entry.workflow_id => step,
        _ => return refuse("its step is not in this workflow folder, so its inputs cannot be checked"),
    };
    let now = fingerprint::fingerprint(cx.workflow, step, &entry.source_ami_id).await?;
    if !now.matches(build.fingerprint.as_deref()) {
        return refuse("the step's inputs changed since");
    }
    match &image.state {
        ImageState::Available => Ok(Ok((image, now))),
        ImageState::Pending => match cx.ec2.wait_until_available(&image.id, PENDING_AMI_WAIT).await {
            Ok(image) => Ok(Ok((image, now))),
            Err(_) => refuse("it did not become available"),
        },
        state => refuse(&format!("it is {state}")),
    }
}

/// Tags and records a dead run's AMI, and its copies, as the step's, as its own build would have.
async fn adopt(
    cx: &Services<'_>,
    entry: &InFlight,
    image: Image,
    fingerprint: Fingerprint,
    copies: Vec<(String, Image)>,
) -> Result<()> {
    let step = cx.workflow.step(&entry.step_id).expect("adoptable checked the step");
    let source = AmiRef { id: entry.source_ami_id.clone(), name: entry.source_ami_name.clone() };
    let ami_id = image.id.clone();
    let mut made = ImageRun { run: StepRun::new(cx.workflow, step, source, fingerprint), image, copies, tests: None };
    let attest = Attest { on_failure: OnFailure::Deregister };
    run_stages(cx, &[&TagImage, &Record, &attest], &mut made).await.map_err(|failure| *failure.error)?;
    let what = format!("adopted {ami_id} left by an interrupted run (its inputs still match)");
    cx.reporter.event(Event::Notice { step: &entry.step_id, what: &what });
    Ok(())
}
