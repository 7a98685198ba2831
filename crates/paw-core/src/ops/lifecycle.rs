//! Lifecycle policies (`paw lifecycle plan|apply`): per image of the line (and every copy), what
//! its step's policy says is due — keep, deprecate, disable, delete — and why; then doing it with
//! EC2's own mechanisms (EnableImageDeprecation, DisableImage, DeregisterImage). Lineage-aware as
//! prune is: never an image a channel points at, an ancestor of a kept image, one launched within
//! the protection window, nor one another line uses. Planning asks EC2 in batches
//! (`Ec2::describe_images`), never once per image.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::prune::{Inventory, used_by_another_line};
use crate::catalog::{
    CREATE_AT_FORMAT, Catalog, ImageRecord, ImageStatus, InFlight, LEASE_TTL_ENV, Line, lease_ttl, now_create_at,
    now_unix, this_host,
};
use crate::change::DeleteRequest;
use crate::change::Executor;
use crate::change::distribute::shared_places;
use crate::change::usage::{self, Sharing, Target, Usage};
use crate::config::{LifecyclePolicy, Retiring};
use crate::ec2::{Ec2, Image, ImageState, ec2_in};
use crate::error::{Error, ErrorKind, Result};
use crate::notify::{Notice, Notifier};
use crate::packer::PackerResources;
use crate::run_lock::RunLock;
use crate::workflow::Workflow;

/// What the policy says is due for an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Due {
    Keep,
    Deprecate,
    Disable,
    Delete,
}

impl Due {
    /// The retiring action it is; None for keep.
    fn retiring(self) -> Option<Retiring> {
        match self {
            Due::Keep => None,
            Due::Deprecate => Some(Retiring::Deprecate),
            Due::Disable => Some(Retiring::Disable),
            Due::Delete => Some(Retiring::Delete),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Due::Keep => "keep",
            Due::Deprecate => "deprecate",
            Due::Disable => "disable",
            Due::Delete => "delete",
        }
    }
}

/// One image's decision (an AMI several workflows recorded is one image).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub ami_id: String,
    pub step_id: String,
    pub workflow_id: String,
    pub region: String,
    /// Its copies in other regions: region → AMI id; the action is carried out on each.
    pub copies: BTreeMap<String, String>,
    pub created_at: String,
    pub action: Due,
    pub reason: String,
    /// It is already so (deprecated, disabled): apply has nothing to do.
    pub done: bool,
    pub deprecation_time: Option<String>,
    pub last_launched_time: Option<String>,
    /// With delete: its snapshots go too.
    pub delete_snapshots: bool,
    /// Who uses it (read for the images due for an action): what kept it, or what its policy
    /// retires it in spite of (`retire_in_use`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Its policy retires it while in use (`retire_in_use`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub in_use_allowed: bool,
}

/// Every image of the line's steps and what its step's policy says is due, in step order, newest
/// first; an image due for an action that something uses, or whose usage is unknown, is kept
/// (unless its policy's `retire_in_use` takes that action all the same). Changes nothing.
pub async fn plan(workflow: &Workflow, catalog: &dyn Catalog, ec2: &dyn Ec2) -> Result<Vec<Decision>> {
    let now = chrono::Utc::now();
    let line = Line::of(workflow);
    let inventory = Inventory::gather(workflow, &line, catalog).await?;
    let ids: Vec<String> = inventory.images.iter().map(|(ami_id, _)| ami_id.clone()).collect();
    let described: HashMap<String, Image> =
        ec2.describe_images(&ids).await?.into_iter().map(|image| (image.id.clone(), image)).collect();
    let mut policies = HashMap::new();
    for step in workflow.steps() {
        policies.insert(step.id.clone(), workflow.param.lifecycle.with_step(&step.param)?);
    }
    let mut decisions = Vec::new();
    for (action, reason, (ami_id, records)) in decide(&inventory, &policies, &described, now) {
        let record = &records[0];
        let (action, reason) = match action {
            Due::Keep => (action, reason),
            _ => match used_by_another_line(catalog, &line, ami_id).await? {
                Some(used) => (Due::Keep, used),
                None => (action, reason),
            },
        };
        let image = described.get(ami_id);
        let done = match action {
            Due::Keep | Due::Delete => false,
            Due::Deprecate => image.is_some_and(|image| image.deprecation_time.is_some()),
            Due::Disable => {
                image.is_some_and(|image| image.state == ImageState::Disabled)
                    && record.status != ImageStatus::Available
            }
        };
        decisions.push(Decision {
            ami_id: ami_id.clone(),
            step_id: record.step_id.clone(),
            workflow_id: record.workflow_id.clone(),
            region: record.region.clone(),
            copies: record.copies.clone(),
            created_at: record.create_at.clone(),
            action,
            reason,
            done,
            deprecation_time: image.and_then(|image| image.deprecation_time.clone()),
            last_launched_time: image.and_then(|image| image.last_launched_time.clone()),
            delete_snapshots: policies.get(&record.step_id).and_then(|policy| policy.delete_snapshots).unwrap_or(false),
            usage: None,
            in_use_allowed: false,
        });
    }
    respect_usage(workflow, catalog, ec2, &inventory, &policies, &mut decisions).await?;
    Ok(decisions)
}

/// Reads who uses the images due for an action (batched: `usage::gather`; the accounts each place
/// shares with are the distribution block's), and keeps those in use, or of unknown use, unless
/// their policy's `retire_in_use` says otherwise.
async fn respect_usage(
    workflow: &Workflow,
    catalog: &dyn Catalog,
    ec2: &dyn Ec2,
    inventory: &Inventory,
    policies: &HashMap<String, LifecyclePolicy>,
    decisions: &mut [Decision],
) -> Result<()> {
    let due = |decision: &Decision| decision.action != Due::Keep && !decision.done;
    let records: Vec<&ImageRecord> = inventory
        .images
        .iter()
        .filter(|(ami_id, _)| decisions.iter().any(|decision| decision.ami_id == *ami_id && due(decision)))
        .map(|(_, records)| &records[0])
        .collect();
    if records.is_empty() {
        return Ok(());
    }
    let images: Vec<Target> = records.iter().map(|record| Target::from(*record)).collect();
    let shared = shared_places(&workflow.param.distribution);
    let channels = crate::catalog::current_entries(catalog, None).await?;
    let region = records[0].region.clone();
    let mut usage = usage::gather(ec2, &region, &images, Sharing::Known(&shared), &channels).await;
    // Kept for its users, an image can be rebuilt: its ancestors are kept too.
    let mut kept: HashMap<String, String> = HashMap::new();
    for decision in decisions.iter_mut().filter(|decision| due(decision)) {
        let Some(read) = usage.remove(&decision.ami_id) else { continue };
        if let Some(why) = read.holds() {
            let policy = policies.get(&decision.step_id).copied().unwrap_or_default();
            let allowed = decision
                .action
                .retiring()
                .is_some_and(|action| policy.retire_in_use.is_some_and(|retire_in_use| retire_in_use.allows(action)));
            match allowed {
                true => decision.in_use_allowed = true,
                false => {
                    kept.insert(decision.ami_id.clone(), why.clone());
                    (decision.action, decision.reason) = (Due::Keep, why);
                }
            }
        }
        decision.usage = Some(read);
    }
    inventory.keep_depended_on(&mut kept);
    for decision in decisions.iter_mut().filter(|decision| due(decision)) {
        if let Some(reason) = kept.get(&decision.ami_id) {
            (decision.action, decision.reason) = (Due::Keep, reason.clone());
        }
    }
    Ok(())
}

/// An AMI of the inventory and every record of it.
type InventoryImage = (String, Vec<ImageRecord>);

/// The decisions, from what was read: kept (newest N of each step, what channels point at, what
/// was launched within the window, and the ancestors of all of these), else due for the furthest
/// action its age has reached.
fn decide<'i>(
    inventory: &'i Inventory,
    policies: &HashMap<String, LifecyclePolicy>,
    described: &HashMap<String, Image>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<(Due, String, &'i InventoryImage)> {
    let age_days = |text: &str| {
        let created = chrono::DateTime::parse_from_str(text, CREATE_AT_FORMAT).ok()?;
        Some((now - created.to_utc()).num_days().max(0) as u64)
    };
    let mut kept: HashMap<String, String> = HashMap::new();
    let mut newest: HashMap<&str, u64> = HashMap::new();
    for (ami_id, records) in &inventory.images {
        let record = &records[0];
        let policy = policies.get(&record.step_id).copied().unwrap_or_default();
        if record.status == ImageStatus::Available
            && let Some(keep) = policy.keep
        {
            let count = newest.entry(record.step_id.as_str()).or_default();
            if *count < keep {
                *count += 1;
                kept.insert(ami_id.clone(), format!("newest {keep} of step {}", record.step_id));
                continue;
            }
        }
        let launched = described.get(ami_id).and_then(|image| image.last_launched_time.as_deref());
        if let (Some(window), Some(launched)) = (policy.protect_launched_within_days, launched)
            && let Ok(at) = chrono::DateTime::parse_from_rfc3339(launched)
        {
            let days = (now - at.to_utc()).num_days().max(0) as u64;
            if days <= window {
                kept.insert(ami_id.clone(), format!("launched {days} days ago (protected for {window})"));
            }
        }
    }
    inventory.keep_depended_on(&mut kept);
    inventory
        .images
        .iter()
        .map(|image| {
            let (ami_id, records) = image;
            if let Some(reason) = kept.get(ami_id) {
                return (Due::Keep, reason.clone(), image);
            }
            let policy = policies.get(&records[0].step_id).copied().unwrap_or_default();
            if policy.is_empty() {
                return (Due::Keep, "no lifecycle policy".into(), image);
            }
            let Some(age) = age_days(&records[0].create_at) else {
                return (Due::Keep, format!("its creation time {} cannot be read", records[0].create_at), image);
            };
            let rules = [
                (Due::Delete, policy.delete_after_days),
                (Due::Disable, policy.disable_after_days),
                (Due::Deprecate, policy.deprecate_after_days),
            ];
            match rules.into_iter().find_map(|(due, days)| Some((due, days?)).filter(|(_, days)| age >= *days)) {
                Some((due, days)) => (due, format!("{age} days old ({} after {days})", due.as_str()), image),
                None => (Due::Keep, format!("{age} days old"), image),
            }
        })
        .collect()
}

/// What `apply` did: the decisions it carried out, or nothing because another run holds the line's
/// apply lease (and does the work).
#[derive(Debug, Default)]
pub struct Applied {
    pub carried_out: Vec<Decision>,
    /// `host/pid since T` of the run that holds the lease.
    pub held_by: Option<String>,
}

/// Plans and carries out what is due and not done yet, on every copy, under the line's apply
/// lease: one apply at a time per line, on any machine, each planning from what the one before it
/// left. Each action is whole before the next starts, so an apply that stops (an error, a kill)
/// leaves nothing half-done that the next one does not finish: running it again finds the rest
/// done.
/// Carries out what is due, noting each retirement on `notifier`.
pub async fn apply(workflow: &Workflow, catalog: &dyn Catalog, ec2: &dyn Ec2, notifier: &Notifier) -> Result<Applied> {
    let mut lease = match ApplyLease::take(catalog, &Line::of(workflow)).await? {
        Ok(lease) => lease,
        Err(holder) => return Ok(Applied { carried_out: Vec::new(), held_by: Some(holder.holder()) }),
    };
    let result = match plan(workflow, catalog, ec2).await {
        Ok(decisions) => carry_out(catalog, ec2, notifier, &decisions, &mut lease).await,
        Err(err) => Err(err),
    };
    let released = lease.release(catalog).await;
    let carried_out = result?;
    released?;
    Ok(Applied { carried_out, held_by: None })
}

async fn carry_out(
    catalog: &dyn Catalog,
    ec2: &dyn Ec2,
    notifier: &Notifier,
    decisions: &[Decision],
    lease: &mut ApplyLease,
) -> Result<Vec<Decision>> {
    let now = chrono::Utc::now();
    let mut applied = Vec::new();
    for decision in decisions.iter().filter(|decision| decision.action != Due::Keep && !decision.done) {
        lease.renew(catalog).await?;
        let records = catalog.find_by_ami(&decision.ami_id).await?;
        let Some(record) = records.iter().find(|record| record.status != ImageStatus::Deregistered) else { continue };
        let every_copy = record.every_copy();
        match decision.action {
            Due::Deprecate => {
                // EC2 takes a time in the future: the next minute.
                let at = (now + chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                for (region, ami_id) in &every_copy {
                    let regional = ec2_in(ec2, &record.region, region);
                    regional.deprecate_image(ami_id, &at).await.map_err(|err| err.in_region(region))?;
                }
            }
            Due::Disable => {
                for (region, ami_id) in &every_copy {
                    let regional = ec2_in(ec2, &record.region, region);
                    let image = regional.describe_image(ami_id).await.map_err(|err| err.in_region(region))?;
                    if image.is_some_and(|image| image.state != ImageState::Disabled) {
                        regional.disable_image(ami_id).await.map_err(|err| err.in_region(region))?;
                    }
                }
                for record in records.iter().filter(|record| record.status == ImageStatus::Available) {
                    catalog.set_status(&record.workflow_id, &record.step_id, ImageStatus::Disabled, None).await?;
                    notifier.note(Notice::image_retired(record, "disabled"));
                }
            }
            Due::Delete => {
                let request = DeleteRequest {
                    delete_snapshots: decision.delete_snapshots,
                    forced_because: None,
                    retire_in_use: decision.in_use_allowed,
                };
                let records: Vec<ImageRecord> =
                    records.iter().filter(|record| record.status != ImageStatus::Deregistered).cloned().collect();
                let executor = Executor::new(catalog, ec2, &record.region, "paw lifecycle apply").notifying(notifier);
                crate::change::delete_image(&executor, &records, &request).await?;
            }
            Due::Keep => unreachable!("filtered out"),
        }
        applied.push(decision.clone());
    }
    Ok(applied)
}

/// The build journal's workflow id of apply leases: no workflow id starts with '#' (EC2 allows none
/// in AMI names), so no build's entry is one of them.
const APPLY_JOURNAL: &str = "#lifecycle";

/// A line's apply lease: its entry in the build journal (the step id is the line), and the run's
/// lock that tells this machine's runs whether it is alive, as a build's lease.
struct ApplyLease {
    entry: InFlight,
    lock: RunLock,
    ttl: i64,
}

impl ApplyLease {
    /// Takes the lease, settling a dead holder's entry first; Err with the live holder's entry.
    async fn take(catalog: &dyn Catalog, line: &Line) -> Result<std::result::Result<ApplyLease, InFlight>> {
        let host = this_host();
        let run_id = format!(
            "{host}-{}-{}-lifecycle",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let lock = RunLock::take(&run_id)?;
        let mut entry = InFlight {
            workflow_id: APPLY_JOURNAL.to_string(),
            step_id: line.to_string(),
            run_id,
            host: host.clone(),
            pid: std::process::id(),
            lock_path: Some(lock.path().to_path_buf()),
            since: now_create_at(),
            expires_at: 0,
            ami_name: String::new(),
            source_ami_id: String::new(),
            source_ami_name: String::new(),
            build: None,
            resources: PackerResources::default(),
        };
        let ttl = lease_ttl()?;
        loop {
            entry.expires_at = now_unix() + ttl;
            let holder = match catalog.begin_build(&entry).await {
                Ok(holder) => holder,
                Err(err) => {
                    lock.release();
                    return Err(err);
                }
            };
            // None: taken. This very entry: the write applied, and only its answer was lost.
            let Some(holder) = holder.filter(|holder| holder.run_id != entry.run_id) else {
                return Ok(Ok(ApplyLease { entry, lock, ttl }));
            };
            if holder.stale_because(now_unix(), &host).is_none() {
                lock.release();
                return Ok(Err(holder));
            }
            // A dead run's: it left nothing but the entry.
            if let Err(err) = catalog.end_build(&holder).await {
                lock.release();
                return Err(err);
            }
        }
    }

    async fn renew(&mut self, catalog: &dyn Catalog) -> Result<()> {
        self.entry.expires_at = now_unix() + self.ttl;
        if catalog.renew_build(&self.entry).await? {
            return Ok(());
        }
        Err(Error::new(ErrorKind::Catalog, "the lifecycle apply lost its lease: another run took it over")
            .help(format!("its lease expired; raise {LEASE_TTL_ENV}, and run `paw lifecycle apply` again")))
    }

    async fn release(self, catalog: &dyn Catalog) -> Result<()> {
        let ended = catalog.end_build(&self.entry).await;
        self.lock.release();
        ended
    }
}
