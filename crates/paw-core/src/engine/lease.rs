//! Leases and the journal at work (the entries themselves: catalog::journal). A step is built only
//! under its lease: a second paw, on this machine or another, waits for the holder and then uses
//! its AMI. A holder that died leaves its entry; whoever finds it stale settles it (`recover`) and
//! takes the lease again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::events::Event;
use super::services::Services;
use crate::ami::AmiRef;
use crate::catalog::{self, ImageRecord, ImageStatus, InFlight, PackerRun};
use crate::error::{Error, ErrorKind, Result};
use crate::packer::PackerResources;
use crate::run_lock::RunLock;

/// How often a waiting paw asks whether the step is free.
const POLL: Duration = Duration::from_millis(500);

/// A step's lease, held while this run builds it.
pub struct Lease {
    entry: Mutex<InFlight>,
    /// The run's lock on this machine, until the lease is released.
    lock: Mutex<Option<RunLock>>,
    /// Wakes the renewal to write a change (a new resource packer made) at once.
    changed: tokio::sync::Notify,
    /// When the entry was last written: the lease is kept by each stage in turn (`pipeline::keeping`),
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
    /// A run that is gone holds it: its entry, and why it is stale (settle it, then try again).
    HeldByDead(Box<InFlight>, String),
}

/// What a run claims the step's lease for: written in the journal entry, and checked against a
/// record made meanwhile.
pub struct Claim<'a> {
    pub step_id: &'a str,
    pub ami_name: &'a str,
    pub source: &'a AmiRef,
    /// The fingerprint of the step's inputs.
    pub fingerprint: &'a str,
    /// The AMI `--force` replaces, which is not "built meanwhile".
    pub replaces: Option<&'a str>,
}

impl Lease {
    /// Tries to take the step's lease, for `ttl` seconds, once.
    pub async fn try_take(cx: &Services<'_>, run: &Claim<'_>, ttl: i64) -> Result<Taken> {
        let host = catalog::this_host();
        let now = chrono::Utc::now();
        let run_id =
            format!("{host}-{}-{}-{}", std::process::id(), now.timestamp_nanos_opt().unwrap_or_default(), run.step_id);
        let lock = RunLock::take(&run_id)?;
        let mut entry = InFlight {
            workflow_id: cx.workflow.param.workflow_id.clone(),
            step_id: run.step_id.to_string(),
            run_id,
            host,
            pid: std::process::id(),
            lock_path: Some(lock.path().to_path_buf()),
            since: catalog::now_create_at(),
            expires_at: 0,
            ami_name: run.ami_name.to_string(),
            source_ami_id: run.source.id.clone(),
            source_ami_name: run.source.name.clone(),
            build: None,
            resources: PackerResources::default(),
        };
        match write_entry(cx, &mut entry, ttl).await {
            Ok(None) => {}
            Ok(Some(holder)) => {
                lock.release();
                let host = catalog::this_host();
                return Ok(match holder.stale_because(catalog::now_unix(), &host) {
                    Some(why) => Taken::HeldByDead(Box::new(holder), why),
                    None => Taken::HeldBy(Box::new(holder)),
                });
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
        let current = cx.catalog.get(&cx.workflow.param.workflow_id, run.step_id).await;
        let built = match current {
            Ok(Some(record))
                if record.status == ImageStatus::Available
                    && run.replaces.is_none_or(|replaced| replaced != record.ami_id) =>
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
            Some(digest) => digest == run.fingerprint,
            None => built.base_ami_id == run.source.id,
        };
        if !same_inputs {
            return Err(Error::new(
                ErrorKind::Catalog,
                format!(
                    "step \"{}\" of workflow \"{}\" was built meanwhile by another run, from other inputs ({})",
                    run.step_id, built.workflow_id, built.ami_id
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
    /// The run's id on the step: this attempt's, in the journal and in the image's statement.
    pub fn run_id(&self) -> String {
        self.entry.lock().expect("the lease's entry is not poisoned").run_id.clone()
    }

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

/// Writes the step's journal entry: None when written, or the entry of the run that holds the step.
async fn write_entry(cx: &Services<'_>, entry: &mut InFlight, ttl: i64) -> Result<Option<InFlight>> {
    entry.expires_at = catalog::now_unix() + ttl;
    let Some(holder) = cx.catalog.begin_build(entry).await? else { return Ok(None) };
    // This very entry: the write applied, its answer was lost, and the retry found it.
    Ok((holder.run_id != entry.run_id).then_some(holder))
}
