//! Leases and the journal at work (the entries themselves: catalog::journal). A step is built only
//! under its lease: a second paw, on this machine or another, waits for the holder and then uses
//! its AMI. A holder that died leaves its entry; whoever finds it stale settles it: packer's
//! instance, key pair and security group go, and the AMI the dead run made is adopted when it is
//! whole and its inputs still match, else deregistered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::events::Event;
use super::stages::{self, ImageRun, Record, Services, StepRun, TagImage, run_stages};
use crate::ami::AmiRef;
use crate::catalog::{self, ImageRecord, ImageStatus, InFlight, PackerRun, RunLock, Verdict};
use crate::change;
use crate::ec2::{Image, ImageState};
use crate::error::{Error, ErrorKind, Result};
use crate::fingerprint::{self, Fingerprint};
use crate::packer::{MachineLine, PackerResources};

/// How often a waiting paw asks whether the step is free.
const POLL: Duration = Duration::from_millis(500);
/// How long a settled run's AMI, still pending, may take to become available.
const PENDING_AMI_WAIT: Duration = Duration::from_secs(1800);

/// A step's lease, held while this run builds it.
pub struct Lease {
    entry: Mutex<InFlight>,
    /// The run's lock on this machine, until the lease is released.
    lock: Mutex<Option<RunLock>>,
    /// Wakes the renewal to write a change (a new resource packer made) at once.
    changed: tokio::sync::Notify,
    /// When the entry was last written: the lease is kept by each stage in turn (`stages::keeping`),
    /// and a renewal is due a third of the lifetime after the last one, whichever stage runs.
    renewed_at: Mutex<tokio::time::Instant>,
    ttl: i64,
}

/// What an attempt at a step's lease came to.
pub enum Taken {
    Held(Arc<Lease>),
    /// Another run built the step meanwhile: its record.
    BuiltMeanwhile(Box<ImageRecord>),
    /// A live run holds it: its entry (`wait_for` it, then try again).
    HeldBy(Box<InFlight>),
}

impl Lease {
    /// Tries to take the step's lease, for `ttl` seconds, once, settling a dead holder's entry
    /// first. The record the plan would replace (`--force`) is not "built meanwhile".
    pub async fn try_take(cx: &Services<'_>, run: &StepRun<'_>, ttl: i64) -> Result<Taken> {
        let host = catalog::this_host();
        let now = chrono::Utc::now();
        let run_id =
            format!("{host}-{}-{}-{}", std::process::id(), now.timestamp_nanos_opt().unwrap_or_default(), run.step.id);
        let lock = RunLock::take(&run_id)?;
        let mut entry = InFlight {
            workflow_id: cx.workflow.param.workflow_id.clone(),
            step_id: run.step.id.clone(),
            run_id,
            host,
            pid: std::process::id(),
            lock_path: Some(lock.path().to_path_buf()),
            since: catalog::now_create_at(),
            expires_at: 0,
            ami_name: run.ami_name.clone(),
            source_ami_id: run.source.id.clone(),
            source_ami_name: run.source.name.clone(),
            build: None,
            resources: PackerResources::default(),
        };
        match write_entry(cx, &mut entry, ttl).await {
            Ok(None) => {}
            Ok(Some(holder)) => {
                lock.release();
                return Ok(Taken::HeldBy(Box::new(holder)));
            }
            Err(err) => {
                lock.release();
                return Err(err);
            }
        }
        let lease = Lease {
            entry: Mutex::new(entry),
            lock: Mutex::new(Some(lock)),
            changed: tokio::sync::Notify::new(),
            renewed_at: Mutex::new(tokio::time::Instant::now()),
            ttl,
        };
        // The holder this run waited for, or a settled dead run, may have recorded the step.
        let current = cx.catalog.get(&cx.workflow.param.workflow_id, &run.step.id).await;
        let built = match current {
            Ok(Some(record))
                if record.status == ImageStatus::Available
                    && run.replaces.is_none_or(|replaced| replaced.ami_id != record.ami_id) =>
            {
                record
            }
            Ok(_) => return Ok(Taken::Held(Arc::new(lease))),
            Err(err) => {
                lease.release(cx).await;
                return Err(err);
            }
        };
        lease.release(cx).await;
        // A record without a fingerprint (the seed's) has at least to start from the same AMI.
        let same_inputs = match &built.fingerprint {
            Some(digest) => digest == &run.fingerprint.digest,
            None => built.base_ami_id == run.source.id,
        };
        if !same_inputs {
            return Err(Error::new(
                ErrorKind::Catalog,
                format!(
                    "step \"{}\" of workflow \"{}\" was built meanwhile by another run, from other inputs ({})",
                    run.step.id, built.workflow_id, built.ami_id
                ),
            )
            .help("two folders that differ share this workflow_id: give one of them a workflow_id of its own"));
        }
        Ok(Taken::BuiltMeanwhile(Box::new(built)))
    }

    /// Waits until `holder` no longer holds the step: it ended (the step is built, or its build
    /// failed), another run took over, or it went stale (the next attempt settles it).
    pub async fn wait_for(cx: &Services<'_>, holder: &InFlight) -> Result<()> {
        cx.reporter.event(Event::Waiting { step: &holder.step_id, held_by: &holder.holder() });
        let host = catalog::this_host();
        loop {
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = cx.cancel.cancelled() => {
                    return Err(Error::new(ErrorKind::Interrupted, format!(
                        "interrupted while waiting for step {} (held by {})", holder.step_id, holder.holder()
                    )));
                }
            }
            let entries = cx.catalog.builds_in_flight(&holder.workflow_id).await?;
            let still_held = entries.iter().any(|entry| {
                entry.step_id == holder.step_id
                    && entry.run_id == holder.run_id
                    && entry.stale_because(catalog::now_unix(), &host).is_none()
            });
            if !still_held {
                return Ok(());
            }
        }
    }

    /// Notes a resource that a line of packer's output names; written at the next renewal, which
    /// it hastens.
    pub fn note_packer_line(&self, line: &str) {
        if self.entry.lock().expect("the lease lock is not poisoned").resources.note(line) {
            self.changed.notify_one();
        }
    }

    /// Writes that packer is about to start, with what a settler needs to know of its build.
    pub async fn record_build(&self, cx: &Services<'_>, build: PackerRun) -> Result<()> {
        let entry = {
            let mut entry = self.entry.lock().expect("the lease lock is not poisoned");
            entry.build = Some(build);
            entry.expires_at = catalog::now_unix() + self.ttl;
            entry.clone()
        };
        if cx.catalog.renew_build(&entry).await? {
            *self.renewed_at.lock().expect("the lease lock is not poisoned") = tokio::time::Instant::now();
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Catalog,
            format!("the lease on step {} was lost before packer started", entry.step_id),
        )
        .help(format!("its lease expired and another run took it over; raise {}", catalog::LEASE_TTL_ENV)))
    }

    /// Renews the lease every third of its lifetime, and writes changes as they come. Runs until
    /// dropped; a failed renewal is told, not fatal (the lease may still be renewed next time).
    pub async fn keep(&self, cx: &Services<'_>) {
        let step = self.entry.lock().expect("the lease lock is not poisoned").step_id.clone();
        let every = Duration::from_secs(u64::try_from(self.ttl / 3).unwrap_or(1).max(1));
        loop {
            let due = *self.renewed_at.lock().expect("the lease lock is not poisoned") + every;
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = self.changed.notified() => {}
            }
            *self.renewed_at.lock().expect("the lease lock is not poisoned") = tokio::time::Instant::now();
            let entry = {
                let mut entry = self.entry.lock().expect("the lease lock is not poisoned");
                entry.expires_at = catalog::now_unix() + self.ttl;
                entry.clone()
            };
            let what = match cx.catalog.renew_build(&entry).await {
                Ok(true) => continue,
                Ok(false) => "lost its lease: another run took the step over".to_string(),
                Err(err) => format!("could not renew its lease: {err}"),
            };
            cx.reporter.event(Event::Notice { step: &step, what: &what });
        }
    }

    /// Ends the entry: the step is built, or its build failed and was cleaned up.
    pub async fn release(&self, cx: &Services<'_>) {
        let entry = self.entry.lock().expect("the lease lock is not poisoned").clone();
        if let Err(err) = cx.catalog.end_build(&entry).await {
            let what = format!("could not end its journal entry ({err}); the next paw run settles it");
            cx.reporter.event(Event::Notice { step: &entry.step_id, what: &what });
        }
        if let Some(lock) = self.lock.lock().expect("the lease lock is not poisoned").take() {
            lock.release();
        }
    }

    /// The run's lock file, for packer's processes to hold while they run (a handle of its own).
    pub fn run_lock(&self) -> Result<Option<std::fs::File>> {
        let lock = self.lock.lock().expect("the lease lock is not poisoned");
        let Some(lock) = lock.as_ref() else { return Ok(None) };
        let file = lock.file().try_clone().map_err(|err| Error::io(lock.path(), "share the run's lock", err))?;
        Ok(Some(file))
    }
}

/// Writes the step's journal entry, settling a dead holder's first: None when written, or the
/// live run's entry that holds the step.
async fn write_entry(cx: &Services<'_>, entry: &mut InFlight, ttl: i64) -> Result<Option<InFlight>> {
    let host = catalog::this_host();
    loop {
        entry.expires_at = catalog::now_unix() + ttl;
        let Some(holder) = cx.catalog.begin_build(entry).await? else { return Ok(None) };
        // This very entry: the write applied, its answer was lost, and the retry found it.
        if holder.run_id == entry.run_id {
            return Ok(None);
        }
        match holder.stale_because(catalog::now_unix(), &host) {
            Some(why) => settle(cx, &holder, &why).await?,
            None => return Ok(Some(holder)),
        }
    }
}

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
async fn settle(cx: &Services<'_>, entry: &InFlight, why: &str) -> Result<()> {
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
    let made_by_it = |image: &Image| stages::made_since(image, started_at.to_utc());
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
    let left = stages::undo_image(cx, &entry.step_id, region, ami_id).await;
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
    let now = fingerprint::fingerprint(cx.workflow, step, &entry.source_ami_id)?;
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
    run_stages(cx, &[&TagImage, &Record], &mut made).await.map_err(|failure| *failure.error)?;
    let what = format!("adopted {ami_id} left by an interrupted run (its inputs still match)");
    cx.reporter.event(Event::Notice { step: &entry.step_id, what: &what });
    Ok(())
}
