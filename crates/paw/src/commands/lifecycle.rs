//! The images after the build: `paw images lineage|prune|revoke|restore`, `paw status` and
//! `paw base-ami update`.

use paw_core::change::{Action, Executor, Plan};
use paw_core::engine;
use paw_core::notify::Notifier;
use paw_core::ops::base_ami::{self, BaseAmiUpdate};
use paw_core::ops::lifecycle::{self as policy, Decision, Due};
use paw_core::ops::lineage::{self, LineageImage};
use paw_core::ops::prune::{self, PruneOptions, Pruned};
use paw_core::ops::revoke::{self, Changed};
use paw_core::ops::status::{self, StepStatus};
use serde_json::{Value, json};

use super::images::{confirm, find_record};
use crate::context::Context;
use crate::output::{Report, plan_table, table};

pub struct Lineage {
    images: Vec<LineageImage>,
    descendants: bool,
}

pub async fn lineage(cx: &Context, step: &str, descendants: bool) -> paw_core::Result<Lineage> {
    let record = find_record(cx, step).await?;
    let catalog = cx.catalog().await?;
    let images = if descendants {
        lineage::descendant_images(catalog, &record.ami_id, &cx.line()?).await?
    } else {
        lineage::ancestry(catalog, &cx.ec2(Some(&record.region)).await?, &record).await?
    };
    Ok(Lineage { images, descendants })
}

impl Report for Lineage {
    fn json(&self) -> Value {
        json!(self.images)
    }

    fn text(&self) -> String {
        if self.descendants && self.images.is_empty() {
            return "no image is built on it".into();
        }
        let dash = || "-".to_string();
        let rows = self
            .images
            .iter()
            .map(|image| {
                let mut row = vec![
                    image.ami_id.clone(),
                    image.step_id.clone().unwrap_or_else(|| "(root base AMI)".into()),
                    image.workflow_id.clone().unwrap_or_else(dash),
                    image.status.clone(),
                    image.tests.clone().unwrap_or_else(dash),
                ];
                if self.descendants {
                    row.push(image.base_ami_id.clone().unwrap_or_else(dash));
                }
                row
            })
            .collect();
        let header: &[&str] = if self.descendants {
            &["AMI", "STEP", "WORKFLOW", "STATUS", "TESTS", "BUILT ON"]
        } else {
            &["AMI", "STEP", "WORKFLOW", "STATUS", "TESTS"]
        };
        table(header, rows)
    }
}

/// Each variant's steps (one workflow's without variants).
pub struct Status(Vec<(Option<String>, StepStatus)>);

pub async fn status(cx: &Context) -> paw_core::Result<Status> {
    let catalog = cx.catalog().await?;
    let ec2 = cx.ec2(None).await?;
    let mut steps = Vec::new();
    for workflow in cx.workflows_with_upstream().await? {
        let statuses = status::status(workflow, catalog, &ec2).await?;
        steps.extend(statuses.into_iter().map(|step| (workflow.variant.clone(), step)));
    }
    Ok(Status(steps))
}

impl Report for Status {
    fn json(&self) -> Value {
        let steps = self.0.iter().map(|(variant, step)| {
            let mut entry = json!(step);
            entry["variant"] = json!(variant);
            entry
        });
        json!(steps.collect::<Vec<_>>())
    }

    fn text(&self) -> String {
        // The deprecation column, when the lifecycle policy deprecates any of them.
        let deprecations = self.0.iter().any(|(_, step)| step.deprecation_time.is_some());
        let rows = self
            .0
            .iter()
            .map(|(variant, step)| {
                let mut row = vec![
                    engine::variant_step(variant.as_deref(), &step.step_id),
                    step.ami_id.clone().unwrap_or_else(|| "-".into()),
                    step.state.as_str().to_string(),
                ];
                if deprecations {
                    row.push(step.deprecation_time.clone().unwrap_or_else(|| "-".into()));
                }
                let (users, last) = match &step.usage {
                    Some(seen) => (
                        seen.users.map_or("unknown".to_string(), |users| users.to_string()),
                        match (seen.users, &seen.last_seen_in_use) {
                            (Some(1..), _) => "now".to_string(),
                            (_, Some(at)) => at.chars().take(16).collect::<String>().replace('T', " "),
                            (_, None) => "never".to_string(),
                        },
                    ),
                    None => ("-".to_string(), "-".to_string()),
                };
                row.extend([users, last, step.reasons.join("; ")]);
                row
            })
            .collect();
        let header: &[&str] = if deprecations {
            &["STEP", "AMI", "STATE", "DEPRECATED FROM", "USERS", "LAST IN USE", "WHY"]
        } else {
            &["STEP", "AMI", "STATE", "USERS", "LAST IN USE", "WHY"]
        };
        table(header, rows)
    }
}

/// `paw lifecycle plan` (or, `applied`, what `apply` carried out).
pub struct LifecyclePlan {
    decisions: Vec<Decision>,
    applied: bool,
    /// `apply` found another run holding the lease: who.
    held_by: Option<String>,
}

pub async fn lifecycle_plan(cx: &Context) -> paw_core::Result<LifecyclePlan> {
    let decisions = policy::plan(cx.workflow()?, cx.catalog().await?, &cx.ec2(None).await?).await?;
    Ok(LifecyclePlan { decisions, applied: false, held_by: None })
}

pub async fn lifecycle_apply(cx: &Context, yes: bool) -> paw_core::Result<LifecyclePlan> {
    let (catalog, ec2) = (cx.catalog().await?, cx.ec2(None).await?);
    if !yes {
        let decisions = policy::plan(cx.workflow()?, catalog, &ec2).await?;
        let due = decisions.iter().filter(|decision| decision.action != Due::Keep && !decision.done).count();
        let actions = crate::output::plural(due, "lifecycle action", "lifecycle actions");
        let what = format!("carry out {actions} (`paw lifecycle plan` lists them)");
        if due > 0 && !confirm(&what)? {
            return Ok(LifecyclePlan { decisions: Vec::new(), applied: true, held_by: None });
        }
    }
    let applied = policy::apply(cx.workflow()?, catalog, &ec2, cx.notifier().await?).await?;
    Ok(LifecyclePlan { decisions: applied.carried_out, applied: true, held_by: applied.held_by })
}

impl Report for LifecyclePlan {
    fn json(&self) -> Value {
        json!(self.decisions)
    }

    fn text(&self) -> String {
        if let Some(holder) = &self.held_by {
            return format!("another `paw lifecycle apply` of this workflow name runs ({holder}): it does the work");
        }
        if self.applied {
            if self.decisions.is_empty() {
                return "nothing to do: every image is as its policy says".into();
            }
            let lines: Vec<String> = self
                .decisions
                .iter()
                .map(|decision| {
                    format!(
                        "{}d {} of step {}: {}",
                        decision.action.as_str(),
                        decision.ami_id,
                        decision.step_id,
                        decision.reason
                    )
                })
                .collect();
            return lines.join("\n");
        }
        let rows = self
            .decisions
            .iter()
            .map(|decision| {
                let action = if decision.done {
                    format!("{} (done)", decision.action.as_str())
                } else {
                    decision.action.as_str().to_string()
                };
                let copies = decision.copies.keys().cloned().collect::<Vec<_>>().join(" ");
                vec![
                    decision.step_id.clone(),
                    decision.ami_id.clone(),
                    decision.workflow_id.clone(),
                    decision.created_at.chars().take(10).collect(),
                    if copies.is_empty() { "-".into() } else { copies },
                    action,
                    decision.reason.clone(),
                ]
            })
            .collect();
        table(&["STEP", "AMI", "WORKFLOW", "CREATED", "COPIES", "ACTION", "WHY"], rows)
    }
}

pub async fn prune(cx: &Context, options: PruneOptions, yes: bool) -> paw_core::Result<Pruned> {
    let workflow = cx.workflow()?;
    let catalog = cx.catalog().await?;
    let (ec2, region) = (cx.ec2(None).await?, cx.region().await?);
    if options.dry_run {
        return prune::prune(workflow, catalog, &ec2, region, options, &Notifier::none()).await;
    }
    if !yes {
        let dry_run = PruneOptions { dry_run: true, ..options };
        let planned = prune::prune(workflow, catalog, &ec2, region, dry_run, &Notifier::none()).await?;
        let doomed = planned.deleted_amis();
        if doomed.is_empty() {
            return Ok(planned);
        }
        let snapshots = if options.delete_snapshots { " and their snapshots" } else { "" };
        if !confirm(&format!("deregister {}{snapshots}", crate::output::plural(doomed.len(), "image", "images")))? {
            return Ok(Pruned::default());
        }
    }
    prune::prune(workflow, catalog, &ec2, region, options, cx.notifier().await?).await
}

impl Report for Pruned {
    fn json(&self) -> Value {
        json!(self.decisions)
    }

    fn text(&self) -> String {
        let rows = self
            .decisions
            .iter()
            .map(|decision| {
                vec![
                    decision.step_id.clone(),
                    decision.ami_id.clone(),
                    decision.workflow_id.clone(),
                    decision.action.to_string(),
                    decision.reason.clone(),
                ]
            })
            .collect();
        let (deleted, freed) =
            if self.dry_run { ("would be deleted (dry run)", "would be freed") } else { ("deleted", "freed") };
        format!(
            "{}\n{} {deleted}; snapshots {freed}: {} GiB",
            table(&["STEP", "AMI", "WORKFLOW", "ACTION", "WHY"], rows),
            crate::output::plural(self.deleted_amis().len(), "image", "images"),
            self.snapshot_gib_freed
        )
    }
}

/// What revoke or restore changed (or, in a dry run, would change): the records, and the actions.
pub struct Revoked {
    changed: Vec<Changed>,
    actions: Vec<Action>,
    dry_run: bool,
}

pub async fn revoke(
    cx: &Context,
    step: &str,
    reason: &str,
    cascade: bool,
    force: bool,
    dry_run: bool,
    yes: bool,
) -> paw_core::Result<Revoked> {
    let record = find_record(cx, step).await?;
    let ec2 = cx.ec2(Some(&record.region)).await?;
    let catalog = cx.catalog().await?;
    let images = revoke::gather_revocation(&ec2, catalog, &cx.line()?, &record, cascade).await?;
    let plan = revoke::decide_revocation(&images, reason, force);
    plan.check()?;
    let what = format!(
        "revoke {} of step {step}{} (it is disabled in EC2)",
        record.ami_id,
        if cascade { " and every image built on it" } else { "" }
    );
    if !dry_run && !yes && !confirm(&what)? {
        return Ok(Revoked { changed: Vec::new(), actions: Vec::new(), dry_run });
    }
    applied(cx, &ec2, &record.region, plan, &images, dry_run).await
}

pub async fn restore(cx: &Context, step: &str, dry_run: bool) -> paw_core::Result<Revoked> {
    let record = find_record(cx, step).await?;
    let ec2 = cx.ec2(Some(&record.region)).await?;
    let image = revoke::gather_restoration(&ec2, cx.catalog().await?, &record).await?;
    let plan = revoke::decide_restoration(&image);
    applied(cx, &ec2, &record.region, plan, std::slice::from_ref(&image), dry_run).await
}

/// The plan applied, unless this is a dry run: what revoke and restore report.
async fn applied(
    cx: &Context,
    ec2: &dyn paw_core::ec2::Ec2,
    region: &str,
    plan: Plan,
    images: &[revoke::ImageInventory],
    dry_run: bool,
) -> paw_core::Result<Revoked> {
    let changed = revoke::changed(&plan, images);
    if !dry_run {
        let by = cx.caller().await?;
        Executor::new(cx.catalog().await?, ec2, region, &by).notifying(cx.notifier().await?).apply(&plan).await?;
    }
    Ok(Revoked { changed, actions: plan.actions, dry_run })
}

impl Report for Revoked {
    fn json(&self) -> Value {
        match self.dry_run {
            true => json!({"dry_run": true, "changed": self.changed, "actions": self.actions}),
            false => json!(self.changed),
        }
    }

    fn text(&self) -> String {
        if self.dry_run {
            return format!("{}\ndry run: nothing was changed", plan_table(&self.actions));
        }
        if self.changed.is_empty() {
            return "nothing done".into();
        }
        let lines: Vec<String> = self
            .changed
            .iter()
            .map(|changed| {
                format!(
                    "{} of step {} (workflow {}): {}",
                    changed.ami_id, changed.step_id, changed.workflow_id, changed.status
                )
            })
            .collect();
        lines.join("\n")
    }
}

pub async fn update_base_ami(cx: &Context, dry_run: bool) -> paw_core::Result<BaseAmiUpdate> {
    let workflow = cx.workflow()?;
    // paw rewrites the file's own keys; a variant's root base AMI is inside "variants".
    let own_base = workflow.param.variants.iter().find(|(name, keys)| {
        workflow.variant.as_ref() == Some(name) && keys.keys().any(|key| key.starts_with("root_base_ami"))
    });
    if let Some((variant, _)) = own_base {
        return Err(paw_core::Error::new(
            paw_core::ErrorKind::Usage,
            format!("variant {variant} sets its own root base AMI, which `base-ami update` does not edit"),
        )
        .at(workflow.param.json().key_location(paw_core::config::VARIANTS))
        .help(format!(
            "set variants.{variant}.root_base_ami_id and root_base_ami_name by hand; `paw status --variant {variant}` \
             names the newest match of the filter"
        )));
    }
    base_ami::update(workflow, &cx.ec2(None).await?, dry_run).await
}

impl Report for BaseAmiUpdate {
    fn json(&self) -> Value {
        json!(self)
    }

    fn text(&self) -> String {
        if !self.changed {
            return format!("already newest: {} ({})", self.old_id, self.old_name);
        }
        let verb = if self.dry_run { "would set (dry run)" } else { "set" };
        format!(
            "{verb} in workflow_param.json:\nroot_base_ami_id: {} → {}\nroot_base_ami_name: {} → {}",
            self.old_id, self.new_id, self.old_name, self.new_name
        )
    }
}
