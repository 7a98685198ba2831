//! `paw images copy`, `paw images share` and `paw distribute`: an AMI in other regions, and for
//! (and in) other accounts.

use paw_core::ec2::Place;
use paw_core::ops::copy::{self, Copied, CopyResult};
use paw_core::ops::share::{self, Shared};
use paw_core::ops::{channel, distribute};
use paw_core::{Error, ErrorKind};
use serde_json::{Value, json};

use super::images::find_record;
use crate::context::Context;
use crate::output::Report;

pub struct Copies(Vec<Copied>);

pub async fn copy(cx: &Context, step: &str, regions: &[String]) -> paw_core::Result<Copies> {
    let record = find_record(cx, step).await?;
    let ec2 = cx.ec2(Some(&record.region)).await?;
    let progress = |line: &str| eprintln!("paw: {line}");
    Ok(Copies(copy::copy_image(&ec2, cx.catalog().await?, &record, regions, &progress).await?))
}

/// `paw distribute STEP`: the step's image to the places the distribution block names for it.
pub async fn distribute(cx: &Context, step: &str) -> paw_core::Result<Copies> {
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
    let ec2 = cx.ec2(Some(&record.region)).await?;
    let progress = |line: &str| eprintln!("paw: {line}");
    Ok(Copies(distribute::distribute(&ec2, cx.catalog().await?, &record, &targets, &progress).await?))
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
    accounts: &[String],
    org_arns: &[String],
    remove: bool,
) -> paw_core::Result<Shares> {
    let record = find_record(cx, step).await?;
    let ec2 = cx.ec2(Some(&record.region)).await?;
    Ok(Shares(share::share(&ec2, &record, accounts, org_arns, remove).await?))
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
