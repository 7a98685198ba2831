//! `paw build`: the engine on the AWS SDK, with live output and a summary.

use paw_core::engine::{BuildOptions, Engine, Outcome};
use paw_core::packer::Packer;
use paw_core::{Error, ErrorKind};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Globals, aws_region};
use crate::output::{self, TextReporter};

pub async fn build(globals: &Globals, ids: &[String], dry_run: bool, packer_debug: bool) -> anyhow::Result<()> {
    let workflow = globals.load()?;
    let steps = workflow.select(ids)?;
    let packer = Packer::locate()?.ok_or_else(|| {
        Error::new(ErrorKind::Usage, "no packer found").help("install packer, or set PAW_PACKER to a packer binary")
    })?;
    let region = aws_region(Some(&workflow)).await?;
    let config = paw_aws::sdk_config(Some(&workflow.param), &region).await;
    let ec2 = paw_aws::ec2::AwsEc2::new(&config);
    let catalog = globals.open_catalog(Some(&workflow)).await?;
    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel();
        }
    });
    let reporter = TextReporter::new(steps.iter().map(|step| step.id.as_str()), globals.json);
    let engine = Engine {
        workflow: &workflow,
        packer_env: paw_aws::packer_env(&workflow.param, &region),
        region,
        ec2: &ec2,
        catalog: catalog.as_ref(),
        packer,
        reporter: &reporter,
        cancel,
    };
    let outcomes = engine.build(&steps, BuildOptions { dry_run, packer_debug }).await;

    if globals.json {
        let report: Vec<_> = outcomes
            .iter()
            .map(|step| match &step.outcome {
                Outcome::Built { ami_id, packer_time, paw_time } => json!({
                    "step_id": step.step_id, "result": "built", "ami_id": ami_id,
                    "packer_seconds": packer_time.as_secs_f64(), "paw_seconds": paw_time.as_secs_f64(),
                }),
                Outcome::DryRun => json!({"step_id": step.step_id, "result": "dry-run"}),
                Outcome::Failed(error) => {
                    json!({"step_id": step.step_id, "result": "failed", "error": error.to_string()})
                }
                Outcome::Skipped(reason) => json!({"step_id": step.step_id, "result": "skipped", "reason": reason}),
            })
            .collect();
        output::print_json(&json!(report));
    } else {
        let rows = outcomes
            .iter()
            .map(|step| match &step.outcome {
                Outcome::Built { ami_id, packer_time, paw_time } => vec![
                    step.step_id.clone(),
                    "built".into(),
                    ami_id.clone(),
                    format!("{:.1}", packer_time.as_secs_f64()),
                    format!("{:.1}", paw_time.as_secs_f64()),
                ],
                Outcome::DryRun => vec![step.step_id.clone(), "dry run".into(), "-".into(), "-".into(), "-".into()],
                Outcome::Failed(_) => vec![step.step_id.clone(), "FAILED".into(), "-".into(), "-".into(), "-".into()],
                Outcome::Skipped(reason) => {
                    vec![step.step_id.clone(), format!("skipped: {reason}"), "-".into(), "-".into(), "-".into()]
                }
            })
            .collect();
        println!("{}", output::table(&["STEP", "RESULT", "AMI", "PACKER (s)", "PAW (s)"], rows));
    }

    let failed: Vec<&Error> = outcomes
        .iter()
        .filter_map(|step| match &step.outcome {
            Outcome::Failed(error) => Some(error),
            _ => None,
        })
        .collect();
    let failed_ids: Vec<&str> = outcomes
        .iter()
        .filter(|step| matches!(step.outcome, Outcome::Failed(_)))
        .map(|step| step.step_id.as_str())
        .collect();
    match failed.first() {
        None => Ok(()),
        Some(first) => {
            let kind = if failed.iter().any(|error| error.kind == ErrorKind::Interrupted) {
                ErrorKind::Interrupted
            } else {
                first.kind
            };
            Err(Error::new(
                kind,
                format!("{} of {} steps failed: {}", failed.len(), outcomes.len(), failed_ids.join(", ")),
            )
            .help("each step's error is above; fix it and run `paw build` again")
            .into())
        }
    }
}
