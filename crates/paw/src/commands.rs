//! One function per subcommand; each turns the parsed arguments into library calls and output.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use paw_core::config::WORKFLOW_PARAM_FILE;
use paw_core::packer::Packer;
use paw_core::render::{self, SourceAmi};
use paw_core::workflow::{Step, Workflow};
use paw_core::{Error, ErrorKind};
use serde_json::json;

use crate::cli::{Cli, Command};
use crate::output;

/// Exit codes, documented in the README.
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_BAD_INPUT: i32 = 2;
pub const EXIT_INTERRUPTED: i32 = 130;

pub fn run(cli: Cli) -> i32 {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime starts");
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit_code(&err)
        }
    }
}

fn exit_code(err: &anyhow::Error) -> i32 {
    match err.downcast_ref::<Error>().map(|err| err.kind) {
        Some(ErrorKind::Interrupted) => EXIT_INTERRUPTED,
        Some(
            ErrorKind::Config
            | ErrorKind::Graph
            | ErrorKind::Template
            | ErrorKind::Validation
            | ErrorKind::Limit
            | ErrorKind::Usage,
        ) => EXIT_BAD_INPUT,
        _ => EXIT_FAILURE,
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Init { dir } => init(&dir),
        Command::Steps => steps(&load(cli.workflow)?, json),
        Command::Render { steps } => render(&load(cli.workflow)?, &steps, json).await,
        Command::Validate { steps } => validate(&load(cli.workflow)?, &steps, json).await,
    }
}

/// `-w DIR`, else the current folder if it is a workflow, else `./workflow`.
fn workflow_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| {
        if Path::new(WORKFLOW_PARAM_FILE).is_file() { PathBuf::from(".") } else { PathBuf::from("workflow") }
    })
}

fn load(flag: Option<PathBuf>) -> anyhow::Result<Workflow> {
    Ok(Workflow::load(&workflow_dir(flag))?)
}

fn init(dir: &Path) -> anyhow::Result<()> {
    let files = paw_core::scaffold::init(dir)?;
    for file in files {
        println!("created {}", dir.join(file).display());
    }
    println!("next: edit {}, then run `paw validate -w {}`", dir.join(WORKFLOW_PARAM_FILE).display(), dir.display());
    Ok(())
}

fn steps(workflow: &Workflow, json: bool) -> anyhow::Result<()> {
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

/// The region templates see as `builder.workflow_param.aws_region`.
async fn aws_region(workflow: &Workflow) -> anyhow::Result<String> {
    let param = &workflow.param;
    paw_aws::region::resolve(param.region_name.as_deref(), param.profile_name.as_deref()).await.ok_or_else(|| {
        Error::new(ErrorKind::Config, "no AWS region is set")
            .in_file(&param.path)
            .help("add \"region_name\": \"us-east-1\" to workflow_param.json, set AWS_REGION, or give your AWS profile a region")
            .into()
    })
}

/// The AMI a step starts from when rendering: the root base AMI for a first step, else a
/// placeholder for the parent's AMI.
fn render_source(workflow: &Workflow, step: &Step) -> SourceAmi {
    match &step.parent {
        None => {
            SourceAmi { id: workflow.param.root_base_ami_id.clone(), name: workflow.param.root_base_ami_name.clone() }
        }
        Some(parent) => SourceAmi::placeholder(parent),
    }
}

async fn render(workflow: &Workflow, ids: &[String], json: bool) -> anyhow::Result<()> {
    let region = aws_region(workflow).await?;
    let mut report = Vec::new();
    for step in workflow.select(ids)? {
        let prepared = render::prepare_step(workflow, step, render_source(workflow, step), &region)?;
        let files: Vec<_> = prepared.files.iter().map(|file| file.path.display().to_string()).collect();
        if !json {
            println!("{}: rendered {}", step.id, files.join(", "));
        }
        report.push(json!({ "step_id": step.id, "source_ami_id": prepared.source.id, "files": files }));
    }
    if json {
        output::print_json(&json!(report));
    }
    Ok(())
}

async fn validate(workflow: &Workflow, ids: &[String], json: bool) -> anyhow::Result<()> {
    let region = aws_region(workflow).await?;
    let packer = Packer::locate()?;
    let mut report = Vec::new();
    for step in workflow.select(ids)? {
        let prepared = render::prepare_step(workflow, step, render_source(workflow, step), &region)?;
        let packer_check = match &packer {
            Some(packer) => {
                packer
                    .validate(&step.dir, &prepared.var_files(), prepared.hcl.requires_plugins)
                    .with_context(|| format!("step \"{}\" is not valid", step.id))?;
                format!("ok (packer {})", packer.version_string())
            }
            None => "skipped".to_string(),
        };
        if !json {
            println!("{}: {} files rendered, HCL ok, packer validate {packer_check}", step.id, prepared.files.len());
        }
        report.push(json!({
            "step_id": step.id,
            "files": prepared.files.iter().map(|file| &file.path).collect::<Vec<_>>(),
            "hcl": "ok",
            "packer": if packer.is_some() { "ok" } else { "skipped" },
        }));
    }
    if packer.is_none() {
        eprintln!("warning: the packer check was skipped: no packer found (set PAW_PACKER or put packer on PATH)");
    }
    if json {
        output::print_json(&json!(report));
    }
    Ok(())
}
