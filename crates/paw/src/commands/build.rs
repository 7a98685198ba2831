//! `paw plan` and `paw build`: the plan, then the engine on the AWS SDK, with live output and a summary.

use paw_core::engine::{self, BuildOptions, Engine, Outcome, StepOutcome};
use paw_core::packer::Packer;
use paw_core::plan::{self, PlannedStep};
use paw_core::{Error, ErrorKind};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Globals, aws_region};
use crate::output::{self, TextReporter};

fn plan_json(plan: &[PlannedStep<'_>]) -> serde_json::Value {
    json!(
        plan.iter()
            .map(|planned| json!({
                "step_id": planned.step.id,
                "action": planned.action.name(),
                "reason": planned.action.reason(),
                "fingerprint": planned.fingerprint.as_ref().map(|fingerprint| &fingerprint.digest),
                "source_ami_id": planned.source.as_ref().map(|source| &source.id),
            }))
            .collect::<Vec<_>>()
    )
}

pub async fn plan(globals: &Globals, ids: &[String]) -> anyhow::Result<()> {
    let workflow = globals.load()?;
    let steps = workflow.select(ids)?;
    let region = aws_region(Some(&workflow)).await?;
    let catalog = globals.catalog_for_reading(&workflow).await?;
    let plan = plan::plan(&workflow, catalog.as_ref(), &region, &steps).await?;
    if globals.json {
        output::print_json(&plan_json(&plan));
        return Ok(());
    }
    let rows = plan
        .iter()
        .map(|planned| vec![planned.step.id.clone(), planned.action.name().to_string(), planned.action.reason()])
        .collect();
    println!("{}", output::table(&["STEP", "ACTION", "REASON"], rows));
    Ok(())
}

pub async fn build(globals: &Globals, ids: &[String], options: BuildOptions) -> anyhow::Result<()> {
    let workflow = globals.load()?;
    let steps = workflow.select(ids)?;
    let packer = Packer::locate()?.ok_or_else(|| {
        Error::new(ErrorKind::Usage, "no packer found").help("install packer, or set PAW_PACKER to a packer binary")
    })?;
    let region = aws_region(Some(&workflow)).await?;
    let config = paw_aws::sdk_config(Some(&workflow.param), &region).await;
    let ec2 = paw_aws::ec2::AwsEc2::new(&config);
    let catalog = globals.open_catalog(Some(&workflow)).await?;
    let plan = plan::plan(&workflow, catalog.as_ref(), &region, &steps).await?;
    engine::check_replacements(&workflow, &plan, &options)?;

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
    let outcomes = engine.run(&plan, options).await;
    report(&outcomes, globals.json);
    failure(&outcomes)
}

fn report(outcomes: &[StepOutcome], json: bool) {
    if json {
        let report: Vec<_> = outcomes
            .iter()
            .map(|step| {
                let mut entry = json!({"step_id": step.step_id, "result": step.outcome.name()});
                match &step.outcome {
                    Outcome::Built { ami, packer_time, paw_time } => {
                        entry["ami_id"] = json!(ami.id);
                        entry["packer_seconds"] = json!(packer_time.as_secs_f64());
                        entry["paw_seconds"] = json!(paw_time.as_secs_f64());
                    }
                    Outcome::UpToDate { ami } => entry["ami_id"] = json!(ami.id),
                    Outcome::Reused { ami, from } => {
                        entry["ami_id"] = json!(ami.id);
                        entry["reused_from"] = json!(from);
                    }
                    Outcome::Failed { error, amis } => {
                        entry["error"] = json!(error.to_string());
                        entry["amis"] = json!(
                            amis.iter()
                                .map(|left| json!({"ami_id": left.ami_id, "fate": left.fate}))
                                .collect::<Vec<_>>()
                        );
                    }
                    Outcome::Skipped(reason) => entry["reason"] = json!(reason),
                    Outcome::DryRun => {}
                }
                entry
            })
            .collect();
        output::print_json(&json!(report));
        return;
    }
    let dash = || "-".to_string();
    let rows = outcomes
        .iter()
        .map(|step| {
            let (result, ami, packer, paw) = match &step.outcome {
                Outcome::Built { ami, packer_time, paw_time } => (
                    "built".to_string(),
                    ami.id.clone(),
                    format!("{:.1}", packer_time.as_secs_f64()),
                    format!("{:.1}", paw_time.as_secs_f64()),
                ),
                Outcome::UpToDate { ami } => ("up-to-date".into(), ami.id.clone(), dash(), dash()),
                Outcome::Reused { ami, from } => (format!("reused from {from}"), ami.id.clone(), dash(), dash()),
                Outcome::DryRun => ("dry run".into(), dash(), dash(), dash()),
                Outcome::Failed { amis, .. } if !amis.is_empty() => {
                    let ids: Vec<&str> = amis.iter().map(|left| left.ami_id.as_str()).collect();
                    ("FAILED (AMIs below)".into(), ids.join(" "), dash(), dash())
                }
                Outcome::Failed { .. } => ("FAILED".into(), dash(), dash(), dash()),
                Outcome::Skipped(reason) => (format!("skipped: {reason}"), dash(), dash(), dash()),
            };
            vec![step.step_id.clone(), result, ami, packer, paw]
        })
        .collect();
    println!("{}", output::table(&["STEP", "RESULT", "AMI", "PACKER (s)", "PAW (s)"], rows));
    // What became of the AMIs that failed steps made: nothing is left in EC2 unsaid.
    for step in outcomes {
        if let Outcome::Failed { amis, .. } = &step.outcome {
            for left in amis {
                println!("{}: {}: {}", step.step_id, left.ami_id, left.fate);
            }
        }
    }
    let count = |name: &str| outcomes.iter().filter(|step| step.outcome.name() == name).count();
    println!(
        "{} built, {} reused, {} up-to-date, {} failed, {} skipped",
        count("built"),
        count("reused"),
        count("up-to-date"),
        count("failed"),
        count("skipped")
    );
}

/// The run's error, if any step failed: interrupted (130) wins, else the first failure's kind.
fn failure(outcomes: &[StepOutcome]) -> anyhow::Result<()> {
    let failed: Vec<(&str, &Error)> = outcomes
        .iter()
        .filter_map(|step| match &step.outcome {
            Outcome::Failed { error, .. } => Some((step.step_id.as_str(), error)),
            _ => None,
        })
        .collect();
    let Some((_, first)) = failed.first() else {
        return Ok(());
    };
    let interrupted = failed.iter().any(|(_, error)| error.kind == ErrorKind::Interrupted);
    let kind = if interrupted { ErrorKind::Interrupted } else { first.kind };
    let ids: Vec<&str> = failed.iter().map(|(id, _)| *id).collect();
    Err(Error::new(kind, format!("{} of {} steps failed: {}", failed.len(), outcomes.len(), ids.join(", ")))
        .help("each step's error is above; fix it and run `paw build` again")
        .into())
}
