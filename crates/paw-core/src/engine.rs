//! The build engine. Per step, in the manner of Packer's own `multistep`: source AMI → render →
//! validate → name check → `packer build` → find the AMI → tag it and its snapshots → record it.
//! Once packer has made an AMI, any failure before it is recorded deregisters it again, so that no
//! AMI is ever made and then lost track of. The engine reports what happens as events; the binary
//! decides how they look.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::catalog::{self, Catalog, ImageRecord, ImageStatus};
use crate::ec2::{Ec2, Image};
use crate::error::{Error, ErrorKind, Result};
use crate::fingerprint::{self, Fingerprint};
use crate::limits;
use crate::packer::{BuildRequest, Packer};
use crate::plan::{Action, PlannedStep};
use crate::render::{self, SourceAmi};
use crate::workflow::{Step, Workflow};

/// What the engine tells its reporter, as it happens.
#[derive(Debug)]
pub enum Event<'a> {
    StepStarted {
        step: &'a str,
        source: &'a SourceAmi,
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
    /// A step not started because its parent did not finish, or the run was interrupted.
    Skipped {
        step: &'a str,
        reason: &'a str,
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
}

pub trait Reporter: Send + Sync {
    fn event(&self, event: Event<'_>);
}

/// Everything a build talks to.
pub struct Engine<'a> {
    pub workflow: &'a Workflow,
    pub region: String,
    pub ec2: &'a dyn Ec2,
    pub catalog: &'a dyn Catalog,
    pub packer: Packer,
    /// Region, profile and credentials for packer's environment.
    pub packer_env: Vec<(String, String)>,
    pub reporter: &'a dyn Reporter,
    pub cancel: CancellationToken,
}

#[derive(Debug, Clone, Copy)]
pub struct BuildOptions {
    pub dry_run: bool,
    pub packer_debug: bool,
    /// Deregister this workflow's AMIs whose inputs changed, and rebuild them.
    pub force: bool,
    /// With `force`: delete the deregistered AMIs' snapshots too.
    pub delete_snapshots: bool,
    /// How many packer builds may run at once.
    pub jobs: usize,
}

#[derive(Debug)]
pub enum Outcome {
    Built {
        ami: SourceAmi,
        packer_time: Duration,
        paw_time: Duration,
    },
    UpToDate {
        ami: SourceAmi,
    },
    Reused {
        ami: SourceAmi,
        from: String,
    },
    DryRun,
    /// `amis`: the AMIs the failed build made, or may have made, and what paw did with each.
    Failed {
        error: Error,
        amis: Vec<LeftAmi>,
    },
    Skipped(String),
}

/// An AMI a failed step made, or may have made, and what paw did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftAmi {
    pub ami_id: String,
    /// e.g. "deregistered, snapshots deleted: [...]", or why it was left in EC2.
    pub fate: String,
}

/// Why a step failed, with the AMIs it left behind.
#[derive(Debug)]
struct StepFailure {
    error: Error,
    amis: Vec<LeftAmi>,
}

impl From<Error> for StepFailure {
    fn from(error: Error) -> StepFailure {
        StepFailure { error, amis: Vec::new() }
    }
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Built { .. } => "built",
            Outcome::UpToDate { .. } => "up-to-date",
            Outcome::Reused { .. } => "reused",
            Outcome::DryRun => "dry-run",
            Outcome::Failed { .. } => "failed",
            Outcome::Skipped(_) => "skipped",
        }
    }

    /// The AMI the step has after this run, for its children to start from.
    fn ami(&self) -> Option<&SourceAmi> {
        match self {
            Outcome::Built { ami, .. } | Outcome::UpToDate { ami } | Outcome::Reused { ami, .. } => Some(ami),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct StepOutcome {
    pub step_id: String,
    pub outcome: Outcome,
}

/// The AMI a step starts from for rendering and validation: the root base AMI, the parent's
/// recorded AMI, or a placeholder while the parent has none.
pub async fn render_source(workflow: &Workflow, catalog: &dyn Catalog, step: &Step) -> Result<SourceAmi> {
    let Some(parent) = &step.parent else {
        return Ok(root_source(workflow));
    };
    let record = available(catalog, &workflow.param.workflow_id, parent).await?;
    Ok(record.map_or_else(|| SourceAmi::placeholder(parent), |record| record.as_source()))
}

/// The source AMI of a build: the root base AMI, or the parent's available record.
pub async fn recorded_source(workflow: &Workflow, catalog: &dyn Catalog, step: &Step) -> Result<SourceAmi> {
    let Some(parent) = &step.parent else {
        return Ok(root_source(workflow));
    };
    let workflow_id = &workflow.param.workflow_id;
    match available(catalog, workflow_id, parent).await? {
        Some(record) => Ok(record.as_source()),
        None => Err(Error::new(
            ErrorKind::Usage,
            format!(
                "step \"{}\" starts from step \"{parent}\", which has no AMI in {} for workflow \"{workflow_id}\"",
                step.id,
                catalog.uri()
            ),
        )
        .help(format!("build the parent first: `paw build {parent}`, or the whole chain: `paw build`"))),
    }
}

pub(crate) fn root_source(workflow: &Workflow) -> SourceAmi {
    SourceAmi { id: workflow.param.root_base_ami_id.clone(), name: workflow.param.root_base_ami_name.clone() }
}

async fn available(catalog: &dyn Catalog, workflow_id: &str, step_id: &str) -> Result<Option<ImageRecord>> {
    Ok(catalog.get(workflow_id, step_id).await?.filter(|record| record.status == ImageStatus::Available))
}

/// This workflow's AMIs that the plan would replace: refused unless `--force`.
pub fn check_replacements(workflow: &Workflow, plan: &[PlannedStep<'_>], options: &BuildOptions) -> Result<()> {
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
        format!("workflow \"{}\" already has AMIs that its inputs no longer match", workflow.param.workflow_id),
    )
    .details(replaced.join("\n"))
    .help(format!(
        "either set a new workflow_id in {} and build again (the unchanged steps are reused), or run `paw build --force` \
         to deregister those AMIs (add --delete-snapshots to delete their snapshots too) and rebuild them",
        workflow.param.path.display()
    )))
}

impl Engine<'_> {
    /// Runs the plan: a step starts as soon as its parent is done, with at most `jobs` packer
    /// builds at once. A failed step skips its descendants; other branches carry on. The outcomes
    /// come in the plan's order.
    pub async fn run(&self, plan: &[PlannedStep<'_>], options: BuildOptions) -> Vec<StepOutcome> {
        let packer_slots = Semaphore::new(options.jobs.max(1));
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
                    _ if self.cancel.is_cancelled() => Some("interrupted".to_string()),
                    Some(Some(outcome)) if outcome.ami().is_none() && !matches!(outcome, Outcome::DryRun) => {
                        Some(format!("{} did not finish", parent.expect("a parent outcome has a parent")))
                    }
                    _ => None,
                };
                if let Some(reason) = skip {
                    self.reporter.event(Event::Skipped { step: &planned.step.id, reason: &reason });
                    outcomes.insert(planned.step.id.clone(), Outcome::Skipped(reason));
                    continue;
                }
                let parent_ami = parent_outcome.flatten().and_then(Outcome::ami).cloned();
                let step = planned.step.id.clone();
                let slots = &packer_slots;
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
                outcome: outcomes.remove(&planned.step.id).expect("every planned step has an outcome"),
            })
            .collect()
    }

    async fn run_step(
        &self,
        planned: &PlannedStep<'_>,
        parent_ami: Option<SourceAmi>,
        options: BuildOptions,
        packer_slots: &Semaphore,
    ) -> Outcome {
        let step = planned.step;
        let result: std::result::Result<Outcome, StepFailure> = match &planned.action {
            Action::UpToDate { record } => {
                self.check_still_there(step, record).await.map_err(StepFailure::from).map(|()| {
                    self.reporter.event(Event::UpToDate { step: &step.id, ami_id: &record.ami_id });
                    Outcome::UpToDate { ami: record.as_source() }
                })
            }
            Action::Reuse { record } => self.reuse(planned, record, options).await.map_err(StepFailure::from),
            Action::Build { replaces, .. } => {
                // The plan's source, or the AMI the parent just got; a dry run's parent has none.
                let source = planned
                    .source
                    .clone()
                    .or(parent_ami)
                    .unwrap_or_else(|| SourceAmi::placeholder(step.parent.as_deref().unwrap_or_default()));
                let fingerprint = planned.fingerprint.as_ref();
                self.build_step(step, source, fingerprint, replaces.as_ref(), options, packer_slots).await
            }
        };
        result.unwrap_or_else(|StepFailure { error, amis }| {
            self.reporter.event(Event::Failed { step: &step.id, error: &error });
            Outcome::Failed { error, amis }
        })
    }

    /// A recorded AMI is only as good as EC2 says.
    async fn check_still_there(&self, step: &Step, record: &ImageRecord) -> Result<()> {
        match self.ec2.describe_image(&record.ami_id).await? {
            Some(image) if image.state == "available" => Ok(()),
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

    /// Records another workflow's AMI for this one: no packer, no new AMI, no renaming.
    async fn reuse(&self, planned: &PlannedStep<'_>, record: &ImageRecord, options: BuildOptions) -> Result<Outcome> {
        let step = planned.step;
        self.check_still_there(step, record).await?;
        if !options.dry_run {
            let reused = ImageRecord {
                workflow_id: self.workflow.param.workflow_id.clone(),
                create_at: catalog::now_create_at(),
                metadata: step.param.metadata.clone(),
                reused_from: Some(record.workflow_id.clone()),
                status: ImageStatus::Available,
                ..record.clone()
            };
            self.catalog.record(&reused).await?;
        }
        self.reporter.event(Event::Reused { step: &step.id, ami_id: &record.ami_id, from: &record.workflow_id });
        Ok(Outcome::Reused { ami: record.as_source(), from: record.workflow_id.clone() })
    }

    async fn build_step(
        &self,
        step: &Step,
        source: SourceAmi,
        // The plan's, when it knew the source; else computed once the parent's new AMI is known.
        planned_fingerprint: Option<&Fingerprint>,
        replaces: Option<&ImageRecord>,
        options: BuildOptions,
        packer_slots: &Semaphore,
    ) -> std::result::Result<Outcome, StepFailure> {
        let started = Instant::now();
        let workflow = self.workflow;
        self.reporter.event(Event::StepStarted { step: &step.id, source: &source });
        if !source.is_placeholder() {
            let source_image = self.ec2.describe_image(&source.id).await?;
            if source_image.is_none_or(|image| image.state != "available") {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!(
                        "step \"{}\" starts from AMI {} ({}), which is not available in {}",
                        step.id, source.id, source.name, self.region
                    ),
                )
                .help(match step.parent {
                    None => "set root_base_ami_id to an AMI of this region; `paw base-ami find` lists them".to_string(),
                    Some(ref parent) => format!("the parent's AMI is gone: rebuild it with `paw build {parent}`"),
                })
                .into());
            }
        }
        let fingerprint = match planned_fingerprint {
            Some(fingerprint) => fingerprint.clone(),
            None => fingerprint::fingerprint(workflow, step, &source.id)?,
        };
        let prepared = render::prepare_step(workflow, step, source, &self.region)?;
        let var_files = prepared.var_files();
        self.packer.validate(&step.dir, &var_files, prepared.hcl.requires_plugins)?;
        let ami_name = render::output_ami_name(workflow, step);
        // An AMI that --force replaces still holds the name until it is deregistered, below.
        if replaces.is_none() {
            check_name_free(self.ec2, workflow, step, &ami_name).await?;
        }
        if options.dry_run {
            let args = self.packer.build_args(&var_files, options.packer_debug);
            let command = std::iter::once(self.packer.path.as_os_str())
                .chain(args.iter().map(|arg| arg.as_os_str()))
                .map(|arg| arg.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ");
            self.reporter.event(Event::DryRun { step: &step.id, command: &command });
            return Ok(Outcome::DryRun);
        }
        if let Some(old) = replaces {
            // Only with --force (check_replacements refused the run otherwise). A reused AMI
            // belongs to the workflow that built it: only this workflow's record of it goes.
            let what = if let Some(owner) = &old.reused_from {
                self.catalog.mark_deregistered(&old.workflow_id, &old.step_id).await?;
                format!("--force: dropped the reuse of {} (it stays, for workflow {owner})", old.ami_id)
            } else {
                let snapshots = delete_image(self.ec2, self.catalog, old, options.delete_snapshots).await?;
                format!("--force: deregistered {} (inputs changed); deleted snapshots: {snapshots:?}", old.ami_id)
            };
            self.reporter.event(Event::CleanedUp { step: &step.id, what: &what });
            check_name_free(self.ec2, workflow, step, &ami_name).await?;
        }
        let log_path = self.log_path(step);
        let _slot = packer_slots.acquire().await.expect("the semaphore is never closed");
        if self.cancel.is_cancelled() {
            return Err(Error::new(ErrorKind::Interrupted, "interrupted before packer started").into());
        }
        let packer_started = Instant::now();
        let packer_started_at = chrono::Utc::now();
        let on_line = |line: &str| self.reporter.event(Event::Packer { step: &step.id, line });
        let request = BuildRequest {
            step_dir: &step.dir,
            var_files: &var_files,
            debug: options.packer_debug,
            env: &self.packer_env,
            log_path: &log_path,
        };
        let output = self.packer.build(&request, &on_line, &self.cancel).await?;
        let packer_time = packer_started.elapsed();
        let (here, elsewhere): (Vec<_>, Vec<_>) =
            output.amis.into_iter().partition(|(region, _)| *region == self.region);
        let reported: Vec<String> = here.into_iter().map(|(_, ami_id)| ami_id).collect();
        if let Some(failure) = output.failure {
            // An interrupt or a failing post-processor can come after packer made the AMI: what it
            // made is not recorded, so it goes.
            let mut amis = Vec::new();
            for ami_id in &reported {
                amis.push(self.undo_image(step, ami_id).await);
            }
            amis.extend(self.unreported_images(&ami_name, &reported, packer_started_at).await);
            amis.extend(elsewhere.into_iter().map(|(region, ami_id)| LeftAmi {
                ami_id,
                fate: format!("left in {region}: paw acts on {} only", self.region),
            }));
            return Err(StepFailure { error: failure, amis });
        }
        let ami_id = match reported.first() {
            Some(ami_id) => ami_id.clone(),
            None => self.adopt_unreported(step, &ami_name, packer_started_at, &log_path).await?,
        };
        // From here the AMI exists: record it, or deregister it again.
        match self.finish(step, &prepared.source, &ami_name, &ami_id, &fingerprint).await {
            Ok(()) => {
                self.reporter.event(Event::Built { step: &step.id, ami_id: &ami_id });
                Ok(Outcome::Built {
                    ami: SourceAmi { id: ami_id, name: ami_name },
                    packer_time,
                    paw_time: started.elapsed().saturating_sub(packer_time),
                })
            }
            Err(error) => Err(StepFailure { error, amis: vec![self.undo_image(step, &ami_id).await] }),
        }
    }

    /// Packer succeeded, but its output named no AMI in this region (lost output, or a template
    /// without one): the AMI is looked up by its name. It is this run's when it is the only one of
    /// that name and was made after packer started — the name was free when the step began, and
    /// EC2 keeps names unique, so no other build can have made it.
    async fn adopt_unreported(
        &self,
        step: &Step,
        ami_name: &str,
        packer_started_at: chrono::DateTime<chrono::Utc>,
        log_path: &std::path::Path,
    ) -> std::result::Result<String, StepFailure> {
        let images = self.ec2.images_named(ami_name).await?;
        let no_ami = |what: String| {
            Error::new(ErrorKind::Packer, format!("packer succeeded but reported no AMI in {}; {what}", self.region))
                .help(format!("packer's full output is in {}", log_path.display()))
        };
        match images.as_slice() {
            [] => Err(no_ami(format!("EC2 has no AMI named \"{ami_name}\" either")).into()),
            [image] if made_since(image, packer_started_at) => {
                let what = format!(
                    "packer's output named no AMI; {} is named \"{ami_name}\" and was made by this run: recording it",
                    image.id
                );
                self.reporter.event(Event::Notice { step: &step.id, what: &what });
                Ok(image.id.clone())
            }
            _ => Err(StepFailure {
                error: no_ami(format!(
                    "EC2 has {} AMI(s) named \"{ami_name}\" that paw cannot prove are this run's",
                    images.len()
                )),
                amis: images.iter().map(|image| unproven(image, ami_name)).collect(),
            }),
        }
    }

    /// After a failed build: the AMIs named like the step's that packer did not report. Another
    /// run may own them (a failed CreateImage is what a race for the name looks like), so they are
    /// named, never deregistered.
    async fn unreported_images(
        &self,
        ami_name: &str,
        reported: &[String],
        packer_started_at: chrono::DateTime<chrono::Utc>,
    ) -> Vec<LeftAmi> {
        match self.ec2.images_named(ami_name).await {
            Ok(images) => images
                .iter()
                .filter(|image| !reported.contains(&image.id) && made_since(image, packer_started_at))
                .map(|image| unproven(image, ami_name))
                .collect(),
            Err(err) => vec![LeftAmi {
                ami_id: "?".into(),
                fate: format!("could not look for AMIs named \"{ami_name}\": {err}"),
            }],
        }
    }

    /// Checks packer's AMI against EC2, tags it and its snapshots, and records it.
    async fn finish(
        &self,
        step: &Step,
        source: &SourceAmi,
        ami_name: &str,
        ami_id: &str,
        fingerprint: &Fingerprint,
    ) -> Result<()> {
        let image =
            self.ec2.images_named(ami_name).await?.into_iter().find(|image| image.id == ami_id).ok_or_else(|| {
                Error::new(
                    ErrorKind::Aws,
                    format!("packer reported {ami_id}, but EC2 has no such AMI named \"{ami_name}\""),
                )
            })?;
        let mut tags = render::ami_tags(self.workflow, step, source);
        limits::set_tag(&mut tags, render::FINGERPRINT_TAG, &fingerprint.digest);
        let mut resources = vec![image.id.clone()];
        resources.extend(image.snapshot_ids.iter().cloned());
        self.ec2.create_tags(&resources, &tags).await?;
        let image = self.ec2.describe_image(ami_id).await?.unwrap_or(image);
        let mut record = image_record(self.workflow, step, source, &self.region, &image);
        record.fingerprint = Some(fingerprint.digest.clone());
        record.fingerprint_inputs = Some(fingerprint.inputs.clone());
        self.catalog.record(&record).await
    }

    /// Deregisters an AMI this run made but could not record, with its snapshots.
    async fn undo_image(&self, step: &Step, ami_id: &str) -> LeftAmi {
        let snapshots = match self.ec2.describe_image(ami_id).await {
            Ok(Some(image)) => image.snapshot_ids,
            _ => Vec::new(),
        };
        let fate = match self.ec2.deregister_image(ami_id, &snapshots).await {
            Ok(()) => format!("deregistered, snapshots deleted: {snapshots:?}"),
            Err(err) => format!("could not be deregistered ({err}); deregister it by hand"),
        };
        self.reporter.event(Event::CleanedUp { step: &step.id, what: &format!("{ami_id}: {fate}") });
        LeftAmi { ami_id: ami_id.to_string(), fate }
    }

    fn log_path(&self, step: &Step) -> PathBuf {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        self.workflow
            .state_dir()
            .join("logs")
            .join(&self.workflow.param.workflow_id)
            .join(format!("{}-{stamp}.log", step.id))
    }
}

/// Whether EC2 says the image was made at or after `since` (to the second, as EC2 keeps it).
fn made_since(image: &Image, since: chrono::DateTime<chrono::Utc>) -> bool {
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

/// The catalog record of a step's AMI.
pub fn image_record(workflow: &Workflow, step: &Step, source: &SourceAmi, region: &str, image: &Image) -> ImageRecord {
    ImageRecord {
        workflow_id: workflow.param.workflow_id.clone(),
        step_id: step.id.clone(),
        ami_id: image.id.clone(),
        ami_name: image.name.clone(),
        create_at: catalog::now_create_at(),
        aws_console_url: catalog::console_url(region, &image.id),
        base_ami_id: source.id.clone(),
        base_ami_name: source.name.clone(),
        root_base_ami_id: workflow.param.root_base_ami_id.clone(),
        root_base_ami_name: workflow.param.root_base_ami_name.clone(),
        details: image.details(),
        metadata: step.param.metadata.clone(),
        region: region.to_string(),
        status: ImageStatus::Available,
        fingerprint: None,
        fingerprint_inputs: None,
        reused_from: None,
    }
}

/// EC2 names are unique per region: stop before building when the step's name is taken.
async fn check_name_free(ec2: &dyn Ec2, workflow: &Workflow, step: &Step, ami_name: &str) -> Result<()> {
    match ec2.images_named(ami_name).await?.first() {
        None => Ok(()),
        Some(existing) => Err(Error::new(
            ErrorKind::Usage,
            format!("the AMI name \"{ami_name}\" is already taken by {}", existing.id),
        )
        .help(format!(
            "use a new workflow_id in {}, or deregister that AMI with `paw images delete {}`",
            workflow.param.path.display(),
            step.id
        ))),
    }
}

/// The seed's manual path: an AMI of a stopped instance, with the step's name and tags, recorded as
/// soon as it exists (so that it is never lost), then waited for and its snapshots tagged.
pub async fn image_from_instance(
    workflow: &Workflow,
    region: &str,
    ec2: &dyn Ec2,
    catalog: &dyn Catalog,
    step: &Step,
    instance_id: &str,
    wait: Option<Duration>,
) -> Result<ImageRecord> {
    let source = recorded_source(workflow, catalog, step).await?;
    render::check_limits(workflow, step, &source)?;
    match ec2.instance_state(instance_id).await?.as_deref() {
        Some("stopped") => {}
        None => {
            return Err(Error::new(ErrorKind::Usage, format!("there is no instance {instance_id} in {region}"))
                .help("check the instance id and the region"));
        }
        Some(state) => {
            return Err(Error::new(ErrorKind::Usage, format!("instance {instance_id} is {state}, not stopped")).help(
                format!("stop it first: `aws ec2 stop-instances --instance-ids {instance_id}`, then run this again"),
            ));
        }
    }
    let ami_name = render::output_ami_name(workflow, step);
    check_name_free(ec2, workflow, step, &ami_name).await?;
    let tags = render::ami_tags(workflow, step, &source);
    let ami_id = ec2.create_image(instance_id, &ami_name, &tags).await?;
    let image = ec2.describe_image(&ami_id).await?.ok_or_else(|| {
        Error::new(ErrorKind::Aws, format!("CreateImage returned {ami_id}, but EC2 does not describe it"))
    })?;
    let record = image_record(workflow, step, &source, region, &image);
    if let Err(err) = catalog.record(&record).await {
        // Not recorded, so not kept: an AMI nobody can find is a cost nobody sees.
        return Err(match ec2.deregister_image(&ami_id, &[]).await {
            Ok(()) => err.details(format!("{ami_id} was deregistered again")),
            Err(undo) => err.details(format!(
                "{ami_id} is not recorded and could not be deregistered ({undo}); deregister it by hand"
            )),
        });
    }
    if let Some(timeout) = wait {
        let image = ec2.wait_until_available(&ami_id, timeout).await?;
        if !image.snapshot_ids.is_empty() {
            ec2.create_tags(&image.snapshot_ids, &tags).await?;
        }
    }
    Ok(record)
}

/// Deregisters a recorded AMI, and its snapshots when asked; the record stays, `deregistered`.
/// Returns the deleted snapshots.
pub async fn delete_image(
    ec2: &dyn Ec2,
    catalog: &dyn Catalog,
    record: &ImageRecord,
    delete_snapshots: bool,
) -> Result<Vec<String>> {
    // Other workflows may have reused this AMI: deregistering it would pull it from under them.
    let mut users = Vec::new();
    if let Some(fingerprint) = &record.fingerprint {
        for other in catalog.find_by_fingerprint(fingerprint).await? {
            let same_record = other.workflow_id == record.workflow_id && other.step_id == record.step_id;
            if other.ami_id == record.ami_id && other.status == ImageStatus::Available && !same_record {
                users.push(format!("workflow {} step {}", other.workflow_id, other.step_id));
            }
        }
    }
    if !users.is_empty() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{} is also recorded for {}; deregistering it would break them", record.ami_id, users.join(", ")),
        )
        .help(
            "delete those records' AMIs first (`paw images delete STEP --workflow-id ID`), or use a new workflow_id",
        ));
    }
    // An AMI already gone from EC2 only needs its record marked.
    let mut snapshots = Vec::new();
    if let Some(image) = ec2.describe_image(&record.ami_id).await? {
        if delete_snapshots {
            snapshots = image.snapshot_ids;
        }
        ec2.deregister_image(&record.ami_id, &snapshots).await?;
    }
    catalog.mark_deregistered(&record.workflow_id, &record.step_id).await?;
    Ok(snapshots)
}
