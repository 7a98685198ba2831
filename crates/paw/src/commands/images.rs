//! `paw images ...` and `paw base-ami find`: the catalog's records and the seed's AMI operations.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::Duration;

use paw_core::catalog::{Catalog, ImageRecord, ImageStatus};
use paw_core::ec2::{BaseAmiQuery, Ec2 as _};
use paw_core::workflow::Workflow;
use paw_core::{Error, ErrorKind, engine};
use serde_json::json;

use super::{Globals, aws_region};
use crate::cli::Arch;
use crate::output;

fn default_workflow_id(given: Option<String>, workflow: &Workflow) -> String {
    given.unwrap_or_else(|| workflow.param.workflow_id.clone())
}

fn print_records(records: &[ImageRecord], json: bool) {
    if json {
        output::print_json(&json!(records.iter().map(ImageRecord::to_json).collect::<Vec<_>>()));
        return;
    }
    let rows = records
        .iter()
        .map(|record| {
            vec![
                record.workflow_id.clone(),
                record.step_id.clone(),
                record.ami_id.clone(),
                record.status.as_str().to_string(),
                record.create_at.clone(),
                record.ami_name.clone(),
            ]
        })
        .collect();
    println!("{}", output::table(&["WORKFLOW", "STEP", "AMI", "STATUS", "CREATED (UTC)", "NAME"], rows));
}

pub async fn list(globals: &Globals, workflow_id: Option<String>, step: Option<String>) -> anyhow::Result<()> {
    // A workflow folder is needed only for defaults: the workflow id, and the catalog's place.
    let needs_workflow = globals.catalog.is_none() || (workflow_id.is_none() && step.is_none());
    let workflow = if needs_workflow { Some(globals.load()?) } else { globals.optional_workflow()? };
    let catalog = globals.open_catalog(workflow.as_ref()).await?;
    let records = match (workflow_id, step) {
        (Some(workflow_id), Some(step)) => catalog.get(&workflow_id, &step).await?.into_iter().collect(),
        (Some(workflow_id), None) => catalog.list_workflow(&workflow_id).await?,
        (None, Some(step)) => catalog.list_step(&step).await?,
        (None, None) => catalog.list_workflow(&workflow.expect("loaded above").param.workflow_id).await?,
    };
    print_records(&records, globals.json);
    Ok(())
}

/// The record of one step, or an error saying how to make one.
async fn find_record(
    catalog: &dyn Catalog,
    workflow: &Workflow,
    step: &str,
    workflow_id: Option<String>,
) -> anyhow::Result<ImageRecord> {
    let workflow_id = default_workflow_id(workflow_id, workflow);
    catalog.get(&workflow_id, step).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::Usage,
            format!("no AMI of step \"{step}\" of workflow \"{workflow_id}\" in {}", catalog.uri()),
        )
        .help("`paw images list` shows what the catalog has; `paw build` makes AMIs")
        .into()
    })
}

pub async fn show(globals: &Globals, step: &str, workflow_id: Option<String>) -> anyhow::Result<()> {
    let workflow = globals.load()?;
    let catalog = globals.open_catalog(Some(&workflow)).await?;
    let record = find_record(catalog.as_ref(), &workflow, step, workflow_id).await?;
    if globals.json {
        output::print_json(&record.to_json());
        return Ok(());
    }
    let rows = record
        .to_json()
        .as_object()
        .expect("a record is an object")
        .iter()
        .map(|(key, value)| vec![key.clone(), value.as_str().map_or_else(|| value.to_string(), str::to_string)])
        .collect();
    println!("{}", output::table(&["FIELD", "VALUE"], rows));
    Ok(())
}

pub async fn from_instance(
    globals: &Globals,
    step_id: &str,
    instance_id: &str,
    wait: Option<Duration>,
) -> anyhow::Result<()> {
    let workflow = globals.load()?;
    let step = workflow.select(&[step_id.to_string()])?[0];
    let region = aws_region(Some(&workflow)).await?;
    let config = paw_aws::sdk_config(Some(&workflow.param), &region).await;
    let ec2 = paw_aws::ec2::AwsEc2::new(&config);
    let catalog = globals.open_catalog(Some(&workflow)).await?;
    let record =
        engine::image_from_instance(&workflow, &region, &ec2, catalog.as_ref(), step, instance_id, wait).await?;
    if globals.json {
        output::print_json(&record.to_json());
    } else {
        println!("{step_id}: created {} from {instance_id} and recorded it in {}", record.ami_id, catalog.uri());
        if wait.is_none() {
            println!("not waiting: the AMI may still be pending, and its snapshots are not tagged");
        }
    }
    Ok(())
}

pub async fn delete(
    globals: &Globals,
    step: &str,
    workflow_id: Option<String>,
    delete_snapshots: bool,
    yes: bool,
) -> anyhow::Result<()> {
    let workflow = globals.load()?;
    let catalog = globals.open_catalog(Some(&workflow)).await?;
    let record = find_record(catalog.as_ref(), &workflow, step, workflow_id).await?;
    if record.status == ImageStatus::Deregistered {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{} of step \"{step}\" is already deregistered", record.ami_id),
        )
        .into());
    }
    let what = format!(
        "deregister {} ({}){}",
        record.ami_id,
        record.ami_name,
        if delete_snapshots { " and delete its snapshots" } else { "" }
    );
    if !yes && !confirm(&what)? {
        println!("nothing done");
        return Ok(());
    }
    let region = &record.region;
    let config = paw_aws::sdk_config(Some(&workflow.param), region).await;
    let ec2 = paw_aws::ec2::AwsEc2::new(&config);
    let snapshots = engine::delete_image(&ec2, catalog.as_ref(), &record, delete_snapshots).await?;
    if globals.json {
        output::print_json(&json!({"ami_id": record.ami_id, "deleted_snapshots": snapshots, "status": "deregistered"}));
    } else {
        println!(
            "deregistered {}; deleted snapshots: {}",
            record.ami_id,
            if snapshots.is_empty() { "none".to_string() } else { snapshots.join(", ") }
        );
    }
    Ok(())
}

/// A y/N question on the terminal; without a terminal there is nobody to ask, so paw refuses.
fn confirm(what: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("refusing to {what} without confirmation: there is no terminal to ask on"),
        )
        .help("pass --yes to confirm")
        .into());
    }
    eprint!("{what}? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

pub async fn find_base_ami(globals: &Globals, name: String, owner: String, arch: Arch) -> anyhow::Result<()> {
    // The workflow gives the region and the profile.
    let workflow = globals.optional_workflow()?;
    let region = aws_region(workflow.as_ref()).await?;
    let config = paw_aws::sdk_config(workflow.as_ref().map(|workflow| &workflow.param), &region).await;
    let ec2 = paw_aws::ec2::AwsEc2::new(&config);
    let images =
        ec2.find_base_amis(&BaseAmiQuery { name_pattern: name, owner, architecture: arch.as_str().into() }).await?;
    if globals.json {
        let images: Vec<_> = images
            .iter()
            .map(|image| json!({"id": image.id, "name": image.name, "creation_date": image.creation_date, "deprecation_time": image.deprecation_time}))
            .collect();
        output::print_json(&json!(images));
        return Ok(());
    }
    let rows = images
        .iter()
        .map(|image| {
            vec![
                image.id.clone(),
                image.name.clone(),
                image.creation_date.clone(),
                image.deprecation_time.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    println!("{}", output::table(&["ID", "NAME", "CREATED", "DEPRECATED"], rows));
    Ok(())
}
