//! What `paw report` shows: the step tree, each step's images (this workflow's, or every
//! workflow's of its line) with their status, parent, channels, copies and console link; for a
//! workflow with variants, the tree of each variant in turn. The binary renders it as one
//! self-contained HTML page.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::catalog::{Catalog, ImageRecord, Line, Standing, Verdict, every_copy, now_create_at};
use crate::change::usage::{self, Seen, Target};
use crate::ec2::{Ec2, Image};
use crate::error::Result;
use crate::ops::verify::Badge;
use crate::provenance::PublicKey;
use crate::workflow::Workflow;

#[derive(Debug, Clone, Serialize)]
pub struct ImageTree {
    /// The workflow ids of the report (one per variant).
    pub workflow_id: String,
    pub workflow_name: String,
    pub catalog: String,
    pub generated_at: String,
    pub all_workflows: bool,
    pub steps: Vec<ReportStep>,
    pub image_count: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportStep {
    pub step_id: String,
    /// The variant whose tree it is in, when the workflow has variants.
    pub variant: Option<String>,
    /// Its anchor in the page: `step-<step>`, `step-<variant>-<step>` for a variant's.
    pub anchor: String,
    /// The parent's anchor.
    pub parent_anchor: Option<String>,
    pub parent: Option<String>,
    /// How far below a first step it is, for the tree.
    pub depth: usize,
    pub manual: bool,
    /// Newest first.
    pub images: Vec<ReportImage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportImage {
    pub ami_id: String,
    pub workflow_id: String,
    pub region: String,
    /// `available`, `stale`, `revoked` or `deregistered`.
    pub status: &'static str,
    /// Why it is stale, or revoked.
    pub reasons: Vec<String>,
    pub created_at: String,
    /// The first 12 characters of the fingerprint.
    pub fingerprint: Option<String>,
    pub console_url: String,
    /// The image it was built on; `base_in_report` when that is an image of the report (a link).
    pub base_ami_id: String,
    pub base_in_report: bool,
    /// The first row of its AMI: where links to it point.
    pub anchor: bool,
    pub channels: Vec<String>,
    pub copies: BTreeMap<String, String>,
    pub reused_from: Option<String>,
    /// When EC2 deprecates (or deprecated) it.
    pub deprecation_time: Option<String>,
    /// Its tests' verdict; None when its step has no tests and it was never tested.
    pub tests: Option<ReportTests>,
    /// Who uses it, and when it was last seen in use (read when paw can ask EC2; not for a
    /// deregistered image).
    pub usage: Option<Seen>,
    /// How its statement stands (`paw verify`), and the checks that failed; None for a
    /// deregistered image.
    pub provenance: Option<ReportProvenance>,
}

/// An image's statement, as the report's badge shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReportProvenance {
    pub badge: Badge,
    /// The checks that failed along its chain.
    pub problems: Vec<String>,
}

/// An image's latest test verdict, as the report's badge shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReportTests {
    /// `passed`, `failed` or `untested`.
    pub verdict: &'static str,
    /// When the latest run began.
    pub at: Option<String>,
    /// The test that failed, with its log and why.
    pub failed_test: Option<String>,
    pub log: Option<String>,
    pub reason: Option<String>,
}

impl ReportTests {
    fn of(record: &ImageRecord, step_has_tests: bool) -> Option<ReportTests> {
        let Some(run) = record.tests.last() else {
            return step_has_tests.then_some(ReportTests {
                verdict: Verdict::Untested.as_str(),
                at: None,
                failed_test: None,
                log: None,
                reason: None,
            });
        };
        let failure = run.failure();
        Some(ReportTests {
            verdict: record.verdict().as_str(),
            at: Some(run.at.clone()),
            failed_test: failure.map(|test| test.name.clone()),
            log: failure.map(|test| test.log.clone()),
            reason: failure.and_then(|test| test.reason.clone()),
        })
    }
}

/// An available image is stale when the step's inputs, on the same parent, no longer give its
/// fingerprint; when its parent is stale, revoked or deregistered; or, for a first step, when
/// the workflow's root base AMI changed.
/// Each image's statement is checked, with its chain, with `key` when paw can ask EC2.
pub async fn report(
    workflows: &[Workflow],
    catalog: &dyn Catalog,
    ec2: Option<&dyn Ec2>,
    key: Option<&PublicKey>,
    all_workflows: bool,
) -> Result<ImageTree> {
    let mut steps = Vec::new();
    for workflow in workflows {
        steps.extend(variant_steps(workflow, catalog, (ec2, key), all_workflows).await?);
    }
    // The lifecycle policy's deprecation times, as EC2 has them (in one request per 100 images),
    // and who uses each image (one request per 10 images per place), when paw can ask EC2: the
    // report itself needs only the catalog.
    if let (Some(ec2), Some(workflow)) = (ec2, workflows.first()) {
        let images = || steps.iter().flat_map(|step| &step.images);
        let ids: Vec<String> = images().map(|image| image.ami_id.clone()).collect();
        let described: HashMap<String, Image> =
            ec2.describe_images(&ids).await?.into_iter().map(|image| (image.id.clone(), image)).collect();
        let mut targets: Vec<Target> = Vec::new();
        for image in images().filter(|image| image.status != "deregistered") {
            if targets.iter().any(|target| target.ami_id == image.ami_id) {
                continue;
            }
            let copies = every_copy(&image.region, &image.ami_id, &image.copies);
            targets.push(Target { ami_id: image.ami_id.clone(), copies });
        }
        let usage = usage::of_workflow(ec2, workflow, catalog, &targets).await?;
        for image in steps.iter_mut().flat_map(|step| step.images.iter_mut()) {
            let found = described.get(&image.ami_id);
            image.deprecation_time = found.and_then(|found| found.deprecation_time.clone());
            let launched = found.and_then(|found| found.last_launched_time.as_deref());
            image.usage = usage.get(&image.ami_id).map(|read| read.seen(launched));
        }
    }
    let mut anchored = std::collections::HashSet::new();
    let in_report: std::collections::HashSet<String> =
        steps.iter().flat_map(|step| step.images.iter().map(|image| image.ami_id.clone())).collect();
    for image in steps.iter_mut().flat_map(|step| step.images.iter_mut()) {
        image.base_in_report = in_report.contains(&image.base_ami_id);
        image.anchor = anchored.insert(image.ami_id.clone());
    }
    let image_count = steps.iter().map(|step| step.images.len()).sum();
    let ids: Vec<&str> = workflows.iter().map(|workflow| workflow.param.workflow_id.as_str()).collect();
    Ok(ImageTree {
        workflow_id: ids.join(", "),
        workflow_name: workflows.first().map(|workflow| workflow.name.clone()).unwrap_or_default(),
        catalog: catalog.uri(),
        generated_at: now_create_at(),
        all_workflows,
        steps,
        image_count,
    })
}

/// One workflow's (or variant's) steps, with their images.
async fn variant_steps(
    workflow: &Workflow,
    catalog: &dyn Catalog,
    (ec2, key): (Option<&dyn Ec2>, Option<&PublicKey>),
    all_workflows: bool,
) -> Result<Vec<ReportStep>> {
    let workflow_id = workflow.param.workflow_id.clone();
    let mut channels: HashMap<String, Vec<String>> = HashMap::new();
    let line = Line::of(workflow);
    for entry in crate::catalog::current_entries(catalog, Some(&line)).await? {
        channels.entry(entry.ami_id.clone()).or_default().push(entry.channel.clone());
    }
    let anchor = |step: &str| match &workflow.variant {
        Some(variant) => format!("step-{variant}-{step}"),
        None => format!("step-{step}"),
    };
    let mut statuses: HashMap<String, &'static str> = HashMap::new();
    let mut depths: HashMap<&str, usize> = HashMap::new();
    let mut steps = Vec::new();
    for step in workflow.steps() {
        let depth = step.parent.as_deref().and_then(|parent| depths.get(parent)).map_or(0, |depth| depth + 1);
        depths.insert(&step.id, depth);
        let records: Vec<ImageRecord> = catalog
            .list_line(&line, &step.id)
            .await?
            .into_iter()
            .filter(|record| all_workflows || record.workflow_id == workflow_id)
            .collect();
        let mut images = Vec::new();
        let step_has_tests = !step.image_tests()?.is_empty();
        for record in records {
            let mut reasons = Vec::new();
            let standing = record.standing();
            let status = match &standing {
                Standing::Deregistered { .. } => standing.name(),
                Standing::Disabled | Standing::Revoked { .. } | Standing::Failed { .. } => {
                    reasons.push(standing.to_string());
                    standing.name()
                }
                Standing::Available => {
                    if let Some(parent_status) =
                        statuses.get(&record.base_ami_id).filter(|status| **status != "available")
                    {
                        reasons.push(format!("its parent {} is {parent_status}", record.base_ami_id));
                    }
                    if step.parent.is_none() {
                        reasons.extend(crate::source::base_moved(workflow, &record.base_ami_id));
                    }
                    if super::status::changed_inputs(workflow, step, &record).await?.is_some() {
                        reasons.push("its inputs changed".to_string());
                    }
                    if reasons.is_empty() { "available" } else { "stale" }
                }
            };
            // Of an AMI recorded by several workflows, the status of its own workflow's record wins.
            if record.reused_from.is_none() || !statuses.contains_key(&record.ami_id) {
                statuses.insert(record.ami_id.clone(), status);
            }
            let provenance = match standing {
                Standing::Deregistered { .. } => None,
                _ => {
                    let (badge, problems) = super::verify::badge(catalog, ec2, &record.region, &record, key).await?;
                    Some(ReportProvenance { badge, problems })
                }
            };
            images.push(ReportImage {
                tests: ReportTests::of(&record, step_has_tests),
                usage: None,
                provenance,
                fingerprint: record.fingerprint.as_ref().map(|digest| digest.chars().take(12).collect()),
                channels: channels.get(&record.ami_id).cloned().unwrap_or_default(),
                base_in_report: false,
                anchor: false,
                status,
                reasons,
                ami_id: record.ami_id,
                workflow_id: record.workflow_id,
                region: record.region,
                created_at: record.create_at,
                console_url: record.aws_console_url,
                base_ami_id: record.base_ami_id,
                copies: record.copies,
                reused_from: record.reused_from,
                deprecation_time: None,
            });
        }
        steps.push(ReportStep {
            step_id: step.id.clone(),
            variant: workflow.variant.clone(),
            anchor: anchor(&step.id),
            parent_anchor: step.parent.as_deref().map(anchor),
            parent: step.parent.clone(),
            depth,
            manual: step.manual,
            images,
        });
    }
    Ok(steps)
}
