//! `paw catalog migrate`: every record from one catalog to another; `paw catalog adopt`: records
//! older than workflow names, assigned to one.

use std::collections::BTreeSet;

use paw_core::catalog::{self, Adopted, CatalogUri, ImageRecord, Line, MigratePlan};
use paw_core::{Error, ErrorKind};
use serde_json::{Value, json};

use crate::context::Context;
use crate::output::{Report, plural, table};

pub struct Migrated {
    plan: MigratePlan,
    from: String,
    to: String,
    step_ids: Vec<String>,
    dry_run: bool,
}

pub async fn migrate(
    cx: &Context,
    from: &CatalogUri,
    to: &CatalogUri,
    steps: Vec<String>,
    dry_run: bool,
) -> paw_core::Result<Migrated> {
    // The workflow, when there is one, gives the region and its step ids.
    let workflow = cx.optional_workflow()?;
    let source = cx.open_catalog(from.clone()).await?;
    let target = cx.open_catalog(to.clone()).await?;
    let mut step_ids: BTreeSet<String> = steps.into_iter().collect();
    step_ids.extend(workflow.iter().flat_map(|workflow| workflow.steps().iter().map(|step| step.id.clone())));
    match source.step_ids().await? {
        Some(all) => step_ids.extend(all),
        None if step_ids.is_empty() => {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("{} cannot list its steps without scanning the table", source.uri()),
            )
            .help("run this from the workflow folder (-w DIR), or name the steps with --step"));
        }
        None => {}
    }
    let step_ids: Vec<String> = step_ids.into_iter().collect();
    let plan = catalog::plan_migration(source.as_ref(), target.as_ref(), &step_ids).await?;
    if !dry_run {
        catalog::apply_migration(target.as_ref(), &plan).await?;
    }
    Ok(Migrated { plan, from: source.uri(), to: target.uri(), step_ids, dry_run })
}

impl Report for Migrated {
    fn json(&self) -> Value {
        let plan = &self.plan;
        json!({
            "copied": plan.records_copied(),
            "already_there": plan.records_there,
            "test_runs": plan.test_runs.len(),
            "channel_entries": plan.channel_entries.len(),
            "channel_entries_already_there": plan.channel_entries_there,
            "conflicts": plan.conflicts,
            "dry_run": self.dry_run,
        })
    }

    fn text(&self) -> String {
        let plan = &self.plan;
        let rows = vec![
            vec!["records".into(), plan.records_copied().to_string(), plan.records_there.to_string()],
            vec!["test runs".into(), plan.test_runs.len().to_string(), "-".into()],
            vec![
                "channel entries".into(),
                plan.channel_entries.len().to_string(),
                plan.channel_entries_there.to_string(),
            ],
        ];
        let verb = if self.dry_run { "would copy" } else { "copied" };
        format!(
            "{}\n{verb} from {} to {} (steps: {}){}",
            table(&["WHAT", "TO COPY", "ALREADY THERE"], rows),
            self.from,
            self.to,
            self.step_ids.join(", "),
            if self.dry_run { "\ndry run: nothing was changed" } else { "" }
        )
    }

    fn error(&self) -> Option<Error> {
        // A dry run shows what would refuse the migration, and fails as the migration would.
        let conflicts = &self.plan.conflicts;
        (self.dry_run && !conflicts.is_empty()).then(|| {
            Error::new(
                ErrorKind::Catalog,
                format!("{} entries of {} conflict with the source", conflicts.len(), self.to),
            )
            .details(conflicts.join("\n"))
            .help("migrate into an empty catalog, or delete those there first")
        })
    }
}

pub enum Adoption {
    /// No ids given: the workflows whose records of the folder's steps have no name.
    Candidates {
        line: Line,
        unnamed: Vec<(String, Vec<ImageRecord>)>,
    },
    Done {
        line: Line,
        adopted: Adopted,
    },
}

pub async fn adopt(cx: &Context, workflow_ids: Vec<String>) -> paw_core::Result<Adoption> {
    let line = cx.line()?;
    let catalog = cx.catalog().await?;
    if workflow_ids.is_empty() {
        let steps: Vec<&str> = cx.workflow()?.steps().iter().map(|step| step.id.as_str()).collect();
        let unnamed = catalog::unnamed(catalog, &steps).await?.into_iter().collect();
        return Ok(Adoption::Candidates { line, unnamed });
    }
    let adopted = catalog::adopt(catalog, &line, &workflow_ids).await?;
    Ok(Adoption::Done { line, adopted })
}

impl Report for Adoption {
    fn json(&self) -> Value {
        match self {
            Adoption::Candidates { line, unnamed } => json!({
                "name": line.name,
                "unnamed": unnamed.iter().map(|(workflow_id, records)| json!({
                    "workflow_id": workflow_id,
                    "steps": records.iter().map(|record| &record.step_id).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }),
            Adoption::Done { line, adopted } => json!({
                "name": line.name,
                "adopted": adopted.records.iter().map(|(workflow_id, step_id, ami_id)| {
                    json!({"workflow_id": workflow_id, "step_id": step_id, "ami_id": ami_id})
                }).collect::<Vec<_>>(),
                "already": adopted.already,
                "channel_entries": adopted.channel_entries,
                "channels_left": adopted.channels_left,
            }),
        }
    }

    fn text(&self) -> String {
        match self {
            Adoption::Candidates { line, unnamed } if unnamed.is_empty() => {
                format!("every record of this folder's steps has a workflow name; nothing to adopt into {line}")
            }
            Adoption::Candidates { line, unnamed } => {
                let mut text = String::from("records older than workflow names, of this folder's steps:\n");
                for (workflow_id, records) in unnamed {
                    let steps: Vec<&str> = records.iter().map(|record| record.step_id.as_str()).collect();
                    text.push_str(&format!("  workflow {workflow_id}: {}\n", steps.join(", ")));
                }
                text.push_str(&format!(
                    "assign those this folder built to {line} with `paw catalog adopt WORKFLOW_ID...`; \
                     another team's workflows may share step ids"
                ));
                text
            }
            Adoption::Done { line, adopted } => {
                let mut text = format!(
                    "adopted {} into {line} ({} already its), and {}",
                    plural(adopted.records.len(), "record", "records"),
                    adopted.already,
                    plural(adopted.channel_entries, "channel entry", "channel entries")
                );
                for (channel, step_id) in &adopted.channels_left {
                    text.push_str(&format!(
                        "\nchannel {channel} of step {step_id}: left as {line} set it since; its older entries were not added"
                    ));
                }
                text
            }
        }
    }
}
