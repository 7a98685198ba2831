//! One function per subcommand; each turns the parsed arguments into library calls and output.

mod build;
mod catalog;
mod images;
mod offline;

use std::path::{Path, PathBuf};

use paw_aws::dynamodb::DynamoCatalog;
use paw_core::catalog::{Catalog, CatalogUri, SqliteCatalog};
use paw_core::config::WORKFLOW_PARAM_FILE;
use paw_core::engine::BuildOptions;
use paw_core::workflow::Workflow;
use paw_core::{Error, ErrorKind};

use crate::cli::{BaseAmiCommand, CatalogCommand, Cli, Command, ImagesCommand};

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

/// The global options every command may use.
pub struct Globals {
    workflow: Option<PathBuf>,
    json: bool,
    catalog: Option<String>,
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let globals = Globals { workflow: cli.workflow, json: cli.json, catalog: cli.catalog };
    match cli.command {
        Command::Init { dir } => offline::init(&dir),
        Command::Steps => offline::steps(&globals.load()?, globals.json),
        Command::Render { steps } => offline::render(&globals, &steps).await,
        Command::Validate { steps } => offline::validate(&globals, &steps).await,
        Command::Plan { steps } => build::plan(&globals, &steps).await,
        Command::Build { steps, dry_run, packer_debug, force, delete_snapshots, jobs } => {
            let options = BuildOptions { dry_run, packer_debug, force, delete_snapshots, jobs: usize::from(jobs) };
            build::build(&globals, &steps, options).await
        }
        Command::Images(ImagesCommand::List { workflow_id, step }) => images::list(&globals, workflow_id, step).await,
        Command::Images(ImagesCommand::Show { step, workflow_id }) => images::show(&globals, &step, workflow_id).await,
        Command::Images(ImagesCommand::FromInstance { step, instance_id, no_wait, timeout }) => {
            images::from_instance(
                &globals,
                &step,
                &instance_id,
                (!no_wait).then(|| std::time::Duration::from_secs(timeout)),
            )
            .await
        }
        Command::Images(ImagesCommand::Delete { step, workflow_id, delete_snapshots, yes }) => {
            images::delete(&globals, &step, workflow_id, delete_snapshots, yes).await
        }
        Command::BaseAmi(BaseAmiCommand::Find { name, owner, arch }) => {
            images::find_base_ami(&globals, name, owner, arch).await
        }
        Command::Catalog(CatalogCommand::Migrate { from, to, steps }) => {
            catalog::migrate(&globals, &from, &to, steps).await
        }
    }
}

impl Globals {
    /// `-w DIR`, else the current folder if it is a workflow, else `./workflow`.
    fn workflow_dir(&self) -> PathBuf {
        self.workflow.clone().unwrap_or_else(|| {
            if Path::new(WORKFLOW_PARAM_FILE).is_file() { PathBuf::from(".") } else { PathBuf::from("workflow") }
        })
    }

    fn load(&self) -> anyhow::Result<Workflow> {
        let workflow = Workflow::load(&self.workflow_dir())?;
        if workflow.param.credentials.is_some() {
            eprintln!(
                "warning: {} holds AWS credentials; secrets don't belong in files: use a profile (profile_name) or the environment",
                workflow.param.path.display()
            );
        }
        Ok(workflow)
    }

    /// The workflow when one is named with -w or is at the default place; commands that work
    /// without one (the workflow only supplies defaults) use this.
    fn optional_workflow(&self) -> anyhow::Result<Option<Workflow>> {
        if self.workflow.is_some() { self.load().map(Some) } else { Ok(self.load().ok()) }
    }

    /// `--catalog` / PAW_CATALOG, else workflow_param.json's "catalog" (relative to the workflow),
    /// else the embedded SQLite catalog in the workflow's `.paw/`.
    fn catalog_uri(&self, workflow: Option<&Workflow>) -> anyhow::Result<CatalogUri> {
        if let Some(uri) = &self.catalog {
            return Ok(uri.parse()?);
        }
        let workflow = match workflow {
            Some(workflow) => workflow,
            None => &self.load()?,
        };
        Ok(match &workflow.param.catalog {
            Some(uri) => {
                match uri.parse::<CatalogUri>().map_err(|err| err.at(workflow.param.json().key_location("catalog")))? {
                    CatalogUri::Sqlite(path) => CatalogUri::Sqlite(workflow.root.join(path)),
                    other => other,
                }
            }
            None => CatalogUri::Sqlite(workflow.state_dir().join("catalog.sqlite")),
        })
    }

    async fn open_catalog(&self, workflow: Option<&Workflow>) -> anyhow::Result<Box<dyn Catalog>> {
        open_catalog(self.catalog_uri(workflow)?, workflow).await
    }

    /// The catalog for reading only: render and plan never create or change one, so a catalog
    /// that does not exist yet reads as an empty one.
    async fn catalog_for_reading(&self, workflow: &Workflow) -> anyhow::Result<Box<dyn Catalog>> {
        let stand_in =
            |uri: String| -> anyhow::Result<Box<dyn Catalog>> { Ok(Box::new(SqliteCatalog::stand_in(&uri)?)) };
        match self.catalog_uri(Some(workflow))? {
            CatalogUri::Sqlite(path) if !path.is_file() => stand_in(format!("sqlite:{}", path.display())),
            CatalogUri::Sqlite(path) => Ok(Box::new(SqliteCatalog::open(&path)?)),
            CatalogUri::DynamoDb(table) => {
                let config = aws_config_for(Some(workflow)).await?;
                match DynamoCatalog::open_existing(&config, &table).await? {
                    Some(catalog) => Ok(Box::new(catalog)),
                    None => stand_in(format!("dynamodb:{table}")),
                }
            }
        }
    }
}

/// Opens (and, for DynamoDB, creates or completes) a catalog; the workflow, when given, supplies the
/// region and the profile.
async fn open_catalog(uri: CatalogUri, workflow: Option<&Workflow>) -> anyhow::Result<Box<dyn Catalog>> {
    Ok(match uri {
        CatalogUri::Sqlite(path) => Box::new(SqliteCatalog::open(&path)?),
        CatalogUri::DynamoDb(table) => {
            let config = aws_config_for(workflow).await?;
            Box::new(DynamoCatalog::open(&config, &table, &|notice| eprintln!("paw: {notice}")).await?)
        }
    })
}

/// The AWS SDK's configuration for the workflow's region, profile and credentials.
async fn aws_config_for(workflow: Option<&Workflow>) -> anyhow::Result<aws_config::SdkConfig> {
    let region = aws_region(workflow).await?;
    Ok(paw_aws::sdk_config(workflow.map(|workflow| &workflow.param), &region).await)
}

/// `region_name` from the params, else the AWS SDK's standard resolution.
async fn aws_region(workflow: Option<&Workflow>) -> anyhow::Result<String> {
    let param = workflow.map(|workflow| &workflow.param);
    let region_name = param.and_then(|param| param.region_name.as_deref());
    let profile_name = param.and_then(|param| param.profile_name.as_deref());
    paw_aws::region::resolve(region_name, profile_name).await.ok_or_else(|| {
        let error = Error::new(ErrorKind::Config, "no AWS region is set").help(
            "add \"region_name\": \"us-east-1\" to workflow_param.json, set AWS_REGION, or give your AWS profile a region",
        );
        match param {
            Some(param) => error.in_file(&param.path).into(),
            None => error.into(),
        }
    })
}
