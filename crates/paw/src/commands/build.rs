//! `paw plan` and `paw build`: the plan, then the engine on the AWS SDK, with live output and a
//! summary.

use std::sync::Arc;

use paw_core::engine::lease::{self, Found};
use paw_core::engine::{self, BuildOptions, Engine, Outcome, SkipReason, StepOutcome, Summary};
use paw_core::packer::PackerBinary;
use paw_core::plan::{self, PlannedStep, Rebuild};
use paw_core::{Error, ErrorKind};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::output::{BuildReporter, Report, table};
use crate::signals;

pub struct Plan<'a>(Vec<PlannedStep<'a>>);

pub async fn plan<'a>(cx: &'a Context, ids: &[String], rebuild: &Rebuild) -> paw_core::Result<Plan<'a>> {
    let workflow = cx.workflow()?;
    let steps = workflow.select(ids)?;
    let catalog = cx.catalog_for_reading().await?;
    Ok(Plan(plan::plan(workflow, catalog.as_ref(), cx.region().await?, &steps, rebuild).await?))
}

impl Report for Plan<'_> {
    fn json(&self) -> Value {
        json!(
            self.0
                .iter()
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

    fn text(&self) -> String {
        let rows = self
            .0
            .iter()
            .map(|planned| vec![planned.step.id.clone(), planned.action.name().to_string(), planned.action.reason()])
            .collect();
        table(&["STEP", "ACTION", "REASON"], rows)
    }
}

pub struct Built(Vec<StepOutcome>);

pub async fn build(
    cx: &Context,
    ids: &[String],
    rebuild: &Rebuild,
    options: BuildOptions,
    verbose: bool,
) -> paw_core::Result<Built> {
    let workflow = cx.workflow()?;
    let steps = workflow.select(ids)?;
    // Before anything is settled or built.
    rebuild.check(workflow, &steps)?;
    let packer = PackerBinary::locate().ok_or_else(|| {
        Error::new(ErrorKind::Usage, "no packer found").help("install packer, or set PAW_PACKER to a packer binary")
    })?;
    let lease_ttl = paw_core::catalog::lease_ttl()?;
    let region = cx.region().await?;
    let ec2 = cx.ec2(None).await?;
    let catalog = cx.catalog().await?;

    let cancel = CancellationToken::new();
    // `--packer-debug` asks questions on the terminal: it gets packer's lines.
    let verbose = verbose || options.packer_debug;
    let reporter = Arc::new(BuildReporter::choose(steps.iter().map(|step| step.id.as_str()), cx.json, verbose));
    signals::stop_on_signals(cancel.clone(), reporter.clone())
        .map_err(|err| Error::new(ErrorKind::Io, format!("cannot listen for signals: {err}")))?;
    let engine = Engine {
        cx: engine::Services { workflow, region, ec2: &ec2, catalog, reporter: reporter.as_ref(), cancel: &cancel },
        packer: &packer,
        packer_env: paw_aws::packer_env(&workflow.param, region),
        lease_ttl,
    };
    // What interrupted runs left is settled first: an adopted AMI changes the plan.
    if !options.dry_run {
        lease::recover(&engine.cx).await?;
    }
    let plan = plan::plan(workflow, catalog, region, &steps, rebuild).await?;
    engine::check_replacements(workflow, &plan, &options)?;
    Ok(Built(engine.run(&plan, options).await?))
}

pub struct Recovered(Vec<Found>);

/// `paw recover`: settles what interrupted runs of the workflow left; lists runs still at work.
pub async fn recover(cx: &Context) -> paw_core::Result<Recovered> {
    let workflow = cx.workflow()?;
    let region = cx.region().await?;
    let ec2 = cx.ec2(None).await?;
    let catalog = cx.catalog().await?;
    let cancel = CancellationToken::new();
    let reporter = BuildReporter::choose(workflow.steps().iter().map(|step| step.id.as_str()), cx.json, true);
    let context = engine::Services { workflow, region, ec2: &ec2, catalog, reporter: &reporter, cancel: &cancel };
    Ok(Recovered(lease::recover(&context).await?))
}

impl Report for Recovered {
    fn json(&self) -> Value {
        json!(
            self.0
                .iter()
                .map(|found| json!({
                    "step_id": found.entry.step_id,
                    "host": found.entry.host,
                    "pid": found.entry.pid,
                    "since": found.entry.since,
                    "state": if found.stale.is_some() { "settled" } else { "running" },
                    "reason": found.stale,
                }))
                .collect::<Vec<_>>()
        )
    }

    fn text(&self) -> String {
        if self.0.is_empty() {
            return "nothing to recover: no build of this workflow is in flight".into();
        }
        let rows = self
            .0
            .iter()
            .map(|found| {
                let state = match &found.stale {
                    Some(why) => format!("settled ({why})"),
                    None => "still running: left alone".to_string(),
                };
                vec![found.entry.step_id.clone(), found.entry.holder(), state]
            })
            .collect();
        table(&["STEP", "HELD BY", "STATE"], rows)
    }
}

impl Report for Built {
    fn json(&self) -> Value {
        let report: Vec<_> = self
            .0
            .iter()
            .map(|step| {
                let mut entry = json!({"step_id": step.step_id, "result": step.outcome.name()});
                match &step.outcome {
                    Outcome::Built { ami, packer_time, paw_time, attempt, instance_type } => {
                        entry["ami_id"] = json!(ami.id);
                        entry["packer_seconds"] = json!(packer_time.as_secs_f64());
                        entry["paw_seconds"] = json!(paw_time.as_secs_f64());
                        entry["attempt"] = json!(attempt);
                        entry["instance_type"] = json!(instance_type);
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
                    Outcome::Skipped(reason) => entry["reason"] = json!(reason.to_string()),
                    Outcome::DryRun | Outcome::Manual => {}
                }
                entry
            })
            .collect();
        json!(report)
    }

    fn text(&self) -> String {
        let dash = || "-".to_string();
        let rows = self
            .0
            .iter()
            .map(|step| {
                let (result, ami, packer, paw) = match &step.outcome {
                    Outcome::Built { ami, packer_time, paw_time, attempt, instance_type } => (
                        built_how(*attempt, instance_type.as_deref()),
                        ami.id.clone(),
                        format!("{:.1}", packer_time.as_secs_f64()),
                        format!("{:.1}", paw_time.as_secs_f64()),
                    ),
                    Outcome::UpToDate { ami } => ("up-to-date".into(), ami.id.clone(), dash(), dash()),
                    Outcome::Reused { ami, from } => (format!("reused from {from}"), ami.id.clone(), dash(), dash()),
                    Outcome::DryRun => ("dry run".into(), dash(), dash(), dash()),
                    Outcome::Manual => ("manual: no AMI yet".into(), dash(), dash(), dash()),
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
        let mut lines = vec![table(&["STEP", "RESULT", "AMI", "PACKER (s)", "PAW (s)"], rows)];
        // What became of the AMIs that failed steps made: nothing is left in EC2 unsaid.
        for step in &self.0 {
            if let Outcome::Failed { amis, .. } = &step.outcome {
                lines.extend(amis.iter().map(|left| format!("{}: {}: {}", step.step_id, left.ami_id, left.fate)));
            }
        }
        // Manual steps still waiting for a person, and what waits for them.
        for step in self.0.iter().filter(|step| matches!(step.outcome, Outcome::Manual)) {
            let waiting = SkipReason::WaitsForManualStep(step.step_id.clone());
            let descendants: Vec<&str> = self
                .0
                .iter()
                .filter(|other| matches!(&other.outcome, Outcome::Skipped(reason) if reason == &waiting))
                .map(|other| other.step_id.as_str())
                .collect();
            let after = if descendants.is_empty() {
                String::new()
            } else {
                format!("; then `paw build` builds {}", descendants.join(", "))
            };
            lines.push(format!(
                "{0} is a manual step: make its AMI with `paw images from-instance {0} --instance-id ID`{after}",
                step.step_id
            ));
        }
        lines.push(Summary::of(&self.0).to_string());
        lines.join("\n")
    }

    fn error(&self) -> Option<Error> {
        Summary::error(&self.0)
    }
}

/// "built", with the attempt and the instance type when either is worth saying.
fn built_how(attempt: u32, instance_type: Option<&str>) -> String {
    match (attempt, instance_type) {
        (1, None) => "built".into(),
        (1, Some(instance_type)) => format!("built ({instance_type})"),
        (attempt, None) => format!("built (attempt {attempt})"),
        (attempt, Some(instance_type)) => format!("built (attempt {attempt}, {instance_type})"),
    }
}
