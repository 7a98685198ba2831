//! `paw catalog migrate`: every record from one catalog to another.

use std::collections::BTreeSet;

use paw_core::catalog::{self, CatalogUri};
use paw_core::{Error, ErrorKind};
use serde_json::json;

use super::{Globals, open_catalog};
use crate::output;

pub async fn migrate(globals: &Globals, from: &str, to: &str, steps: Vec<String>) -> anyhow::Result<()> {
    // The workflow, when there is one, gives the region and its step ids.
    let workflow = globals.optional_workflow()?;
    let source = open_catalog(from.parse::<CatalogUri>()?, workflow.as_ref()).await?;
    let target = open_catalog(to.parse::<CatalogUri>()?, workflow.as_ref()).await?;
    let mut step_ids: BTreeSet<String> = steps.into_iter().collect();
    step_ids.extend(workflow.iter().flat_map(|workflow| workflow.steps().iter().map(|step| step.id.clone())));
    match source.step_ids().await? {
        Some(all) => step_ids.extend(all),
        None if step_ids.is_empty() => {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("{from} cannot list its steps without scanning the table"),
            )
            .help("run this from the workflow folder (-w DIR), or name the steps with --step")
            .into());
        }
        None => {}
    }
    let step_ids: Vec<String> = step_ids.into_iter().collect();
    let report = catalog::copy_records(source.as_ref(), target.as_ref(), &step_ids).await?;
    if globals.json {
        output::print_json(&json!({
            "copied": report.copied, "already_there": report.already_there, "conflicts": report.conflicts,
        }));
    } else {
        println!(
            "copied {} records from {} to {} ({} already there; steps: {})",
            report.copied,
            source.uri(),
            target.uri(),
            report.already_there,
            step_ids.join(", ")
        );
    }
    if report.conflicts.is_empty() {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::Catalog, format!("{} records were left alone:", report.conflicts.len()))
            .details(report.conflicts.join("\n"))
            .help("the target has another, available AMI for those steps; deregister it there first, or keep it")
            .into())
    }
}
