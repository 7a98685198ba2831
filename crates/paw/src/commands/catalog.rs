//! `paw catalog migrate`: every record from one catalog to another.

use std::collections::BTreeSet;

use paw_core::catalog::{self, CatalogUri, MigrateReport};
use paw_core::{Error, ErrorKind};
use serde_json::{Value, json};

use crate::context::Context;
use crate::output::Report;

pub struct Migrated {
    report: MigrateReport,
    from: String,
    to: String,
    step_ids: Vec<String>,
}

pub async fn migrate(
    cx: &Context,
    from: &CatalogUri,
    to: &CatalogUri,
    steps: Vec<String>,
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
    let report = catalog::copy_records(source.as_ref(), target.as_ref(), &step_ids).await?;
    Ok(Migrated { report, from: source.uri(), to: target.uri(), step_ids })
}

impl Report for Migrated {
    fn json(&self) -> Value {
        let MigrateReport { copied, already_there, conflicts } = &self.report;
        json!({ "copied": copied, "already_there": already_there, "conflicts": conflicts })
    }

    fn text(&self) -> String {
        format!(
            "copied {} records from {} to {} ({} already there; steps: {})",
            self.report.copied,
            self.from,
            self.to,
            self.report.already_there,
            self.step_ids.join(", ")
        )
    }

    fn error(&self) -> Option<Error> {
        let conflicts = &self.report.conflicts;
        (!conflicts.is_empty()).then(|| {
            Error::new(ErrorKind::Catalog, format!("{} records were left alone:", conflicts.len()))
                .details(conflicts.join("\n"))
                .help("the target has another, available AMI for those steps; deregister it there first, or keep it")
        })
    }
}
