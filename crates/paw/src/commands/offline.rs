//! Commands that need no AWS: init, steps, render, validate.

use std::path::Path;

use anyhow::Context as _;
use paw_core::config::WORKFLOW_PARAM_FILE;
use paw_core::engine;
use paw_core::packer::Packer;
use paw_core::render::{self, Prepared};
use paw_core::workflow::Workflow;
use serde_json::json;

use super::{Globals, aws_region};
use crate::output;

pub fn init(dir: &Path) -> anyhow::Result<()> {
    let files = paw_core::scaffold::init(dir)?;
    for file in files {
        println!("created {}", dir.join(file).display());
    }
    println!("next: edit {}, then run `paw validate -w {}`", dir.join(WORKFLOW_PARAM_FILE).display(), dir.display());
    Ok(())
}

pub fn steps(workflow: &Workflow, json: bool) -> anyhow::Result<()> {
    if json {
        let steps: Vec<_> = workflow
            .steps()
            .iter()
            .map(|step| {
                json!({
                    "step_id": step.id,
                    "previous_step_id": step.parent,
                    "folder": step.dir,
                    "metadata": step.param.metadata,
                })
            })
            .collect();
        output::print_json(&json!(steps));
        return Ok(());
    }
    let rows = workflow
        .steps()
        .iter()
        .map(|step| {
            vec![
                step.id.clone(),
                step.parent.clone().unwrap_or_else(|| "-".into()),
                step.dir.display().to_string(),
                serde_json::Value::Object(step.param.metadata.clone()).to_string(),
            ]
        })
        .collect();
    println!("{}", output::table(&["STEP", "PARENT", "FOLDER", "METADATA"], rows));
    Ok(())
}

/// Renders and checks the named steps, each from its parent's recorded AMI when there is one.
async fn prepare_all(
    globals: &Globals,
    workflow: &Workflow,
    ids: &[String],
) -> anyhow::Result<Vec<(String, Prepared)>> {
    let region = aws_region(Some(workflow)).await?;
    let catalog = globals.catalog_for_reading(workflow).await?;
    let mut prepared = Vec::new();
    for step in workflow.select(ids)? {
        let source = engine::render_source(workflow, catalog.as_ref(), step).await?;
        prepared.push((step.id.clone(), render::prepare_step(workflow, step, source, &region)?));
    }
    Ok(prepared)
}

pub async fn render(globals: &Globals, ids: &[String]) -> anyhow::Result<()> {
    let workflow = globals.load()?;
    let mut report = Vec::new();
    for (step_id, prepared) in prepare_all(globals, &workflow, ids).await? {
        let files: Vec<_> = prepared.files.iter().map(|file| file.path.display().to_string()).collect();
        if !globals.json {
            println!("{step_id}: rendered {}", files.join(", "));
        }
        report.push(json!({ "step_id": step_id, "source_ami_id": prepared.source.id, "files": files }));
    }
    if globals.json {
        output::print_json(&json!(report));
    }
    Ok(())
}

pub async fn validate(globals: &Globals, ids: &[String]) -> anyhow::Result<()> {
    let workflow = globals.load()?;
    let packer = Packer::locate()?;
    let mut report = Vec::new();
    for (step_id, prepared) in prepare_all(globals, &workflow, ids).await? {
        let step = workflow.step(&step_id).expect("prepared steps exist");
        let packer_check = match &packer {
            Some(packer) => {
                packer
                    .validate(&step.dir, &prepared.var_files(), prepared.hcl.requires_plugins)
                    .with_context(|| format!("step \"{step_id}\" is not valid"))?;
                format!("ok (packer {})", packer.version_string())
            }
            None => "skipped".to_string(),
        };
        if !globals.json {
            println!("{step_id}: {} files rendered, HCL ok, packer validate {packer_check}", prepared.files.len());
        }
        report.push(json!({
            "step_id": step_id,
            "files": prepared.files.iter().map(|file| &file.path).collect::<Vec<_>>(),
            "hcl": "ok",
            "packer": if packer.is_some() { "ok" } else { "skipped" },
        }));
    }
    if packer.is_none() {
        eprintln!("warning: the packer check was skipped: no packer found (set PAW_PACKER or put packer on PATH)");
    }
    if globals.json {
        output::print_json(&json!(report));
    }
    Ok(())
}
