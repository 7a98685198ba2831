//! `paw images copy`, `paw images share` and `paw distribute`: an AMI in other regions, and for
//! (and in) other accounts.

use paw_core::catalog::ImageRecord;
use paw_core::change::copy::{self, Copied, CopyResult, Destination};
use paw_core::change::share::{self, ShareRequest, Shared};
use paw_core::change::{Executor, distribute};
use paw_core::ec2::Place;
use paw_core::ops::channel;
use paw_core::{Error, ErrorKind};
use serde_json::{Value, json};

use super::images::find_record;
use crate::context::Context;
use crate::output::{Planned, Report};

pub struct Copies(Vec<Copied>);

pub async fn copy(cx: &Context, step: &str, regions: &[String], dry_run: bool) -> paw_core::Result<Box<dyn Report>> {
    let record = find_record(cx, step).await?;
    let destinations: Vec<Destination> = regions.iter().map(|region| Destination::region(region)).collect();
    copy_to(cx, &record, &destinations, dry_run).await
}

/// `paw distribute STEP`: the step's image to the places the distribution block names for it.
pub async fn distribute(cx: &Context, step: &str, dry_run: bool) -> paw_core::Result<Box<dyn Report>> {
    let workflow = cx.workflow()?;
    let step_dir = workflow.select(&[step.to_string()])?[0];
    let targets = distribute::targets_of(workflow, step_dir);
    if targets.is_empty() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("the distribution block names no target for step \"{step}\""),
        )
        .in_file(&workflow.param.path)
        .help("add one to \"distribution\" (a target without \"steps\" is the last step of each branch's)"));
    }
    let record = find_record(cx, step).await?;
    channel::usable(&record, None)?;
    copy_to(cx, &record, &distribute::destinations(&targets), dry_run).await
}

/// The record's image copied to each destination: planned from what each has, then (without
/// `dry_run`) applied.
async fn copy_to(
    cx: &Context,
    record: &ImageRecord,
    destinations: &[Destination],
    dry_run: bool,
) -> paw_core::Result<Box<dyn Report>> {
    let ec2 = cx.ec2(Some(&record.region)).await?;
    let inventory = copy::gather(&ec2, record, destinations).await?;
    let decided = copy::decide(&inventory);
    decided.plan.check()?;
    if dry_run {
        return Ok(Box::new(Planned(decided.plan.actions)));
    }
    let by = cx.caller().await?;
    let progress = |line: &str| eprintln!("paw: {line}");
    let attester = cx.attester().await?;
    let executor =
        Executor::new(cx.catalog().await?, &ec2, &record.region, &by).telling(&progress).attesting(&attester);
    Ok(Box::new(Copies(copy::apply(&executor, &inventory, &decided).await?)))
}

impl Report for Copies {
    fn json(&self) -> Value {
        json!(self.0)
    }

    fn text(&self) -> String {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|copied| {
                let place = place_of(copied);
                match (&copied.ami_id, &copied.error) {
                    (_, Some(error)) => format!("{place}: FAILED: {error}"),
                    (Some(ami_id), None) => format!("{place}: {} {ami_id}", copied.result),
                    (None, None) => format!("{place}: {}", copied.result),
                }
            })
            .collect();
        lines.join("\n")
    }

    fn error(&self) -> Option<Error> {
        let failed: Vec<String> =
            self.0.iter().filter(|copied| copied.result == CopyResult::Failed).map(place_of).collect();
        failed_regions(failed.iter().map(String::as_str))
    }
}

/// Where a copy went: a region, or a region of another account.
fn place_of(copied: &Copied) -> String {
    Place { account: copied.account.clone(), region: copied.region.clone() }.to_string()
}

pub struct Shares(Vec<Shared>);

pub async fn share(
    cx: &Context,
    step: &str,
    request: ShareRequest,
    dry_run: bool,
) -> paw_core::Result<Box<dyn Report>> {
    request.check()?;
    let record = find_record(cx, step).await?;
    let ec2 = cx.ec2(Some(&record.region)).await?;
    let held = share::gather(&ec2, &record).await?;
    let plan = share::decide(&held, &request);
    plan.check()?;
    if dry_run {
        return Ok(Box::new(Planned(plan.actions)));
    }
    let by = cx.caller().await?;
    let executor = Executor::new(cx.catalog().await?, &ec2, &record.region, &by);
    Ok(Box::new(Shares(share::apply(&executor, &held, &plan).await?)))
}

impl Report for Shares {
    fn json(&self) -> Value {
        json!(self.0)
    }

    fn text(&self) -> String {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|shared| match &shared.error {
                Some(error) => format!("{}: {}: FAILED: {error}", shared.region, shared.ami_id),
                None => format!(
                    "{}: {} and its snapshots {}",
                    shared.region,
                    shared.ami_id,
                    if shared.snapshot_ids.is_empty() { "(none)".to_string() } else { shared.snapshot_ids.join(", ") }
                ),
            })
            .collect();
        lines.join("\n")
    }

    fn error(&self) -> Option<Error> {
        failed_regions(self.0.iter().filter(|shared| shared.error.is_some()).map(|shared| shared.region.as_str()))
    }
}

/// The command's error when some regions failed: the others are done.
fn failed_regions<'a>(regions: impl Iterator<Item = &'a str>) -> Option<Error> {
    let failed: Vec<&str> = regions.collect();
    (!failed.is_empty()).then(|| {
        Error::new(ErrorKind::Aws, format!("failed in {}", failed.join(", ")))
            .help("the other regions are done; each failure is above. Fix it and run the command again")
    })
}
