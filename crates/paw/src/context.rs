//! What every command works with, resolved once from the global options: the workflow folder
//! (when there is one) and, when a command first needs them, the region, the AWS SDK's
//! configuration, EC2 and the catalog.

use std::path::{Path, PathBuf};

use paw_aws::accounts::{Access, Reach, SharedReach};
use paw_aws::dynamodb::DynamoCatalog;
use paw_aws::ec2::AwsEc2;
use paw_aws::eventbridge::EventBridgeTarget;
use paw_aws::kms::KmsSigner;
use paw_aws::ssm::AwsSsm;
use paw_core::catalog::{Catalog, CatalogUri, Line, SqliteCatalog};
use paw_core::config::{ParamOverride, WORKFLOW_PARAM_FILE};
use paw_core::notify::{Delivery, NoticeTarget, Notifier};
use paw_core::provenance::{self, Attester, Ed25519Signer, PublicKey, Signer};
use paw_core::workflow::Workflow;
use paw_core::{Error, ErrorKind, Result};
use tokio::sync::OnceCell;

use std::sync::Arc;

use crate::ci::CiSystem;
use crate::cli::{Cli, Command, EventsFormat};
use crate::events::EventStream;
use crate::output::RunOutput;
use crate::webhook::WebhookTarget;

pub struct Context {
    /// Where output goes: JSON or text, the event stream, the CI system.
    pub output: RunOutput,
    /// The workflow once per variant chosen (once when it has none), or why there is none.
    workflows: std::result::Result<Vec<Workflow>, Error>,
    /// Whether the workflow folder was named (-w): then a broken one is an error for every command.
    workflow_named: bool,
    catalog_arg: Option<CatalogUri>,
    /// `--workflow-id` / PAW_WORKFLOW_ID: this run's workflow id, instead of workflow_param.json's.
    workflow_id: Option<String>,
    /// `--name` / PAW_NAME: the line of images to work with, instead of the folder's.
    name: Option<String>,
    /// `--variant` / PAW_VARIANT.
    variant: Option<String>,
    /// The workflows with their upstream read, once per run.
    with_upstream: OnceCell<Vec<Workflow>>,
    region: OnceCell<String>,
    sdk_config: OnceCell<aws_config::SdkConfig>,
    catalog: OnceCell<Box<dyn Catalog>>,
    notifier: OnceCell<Notifier>,
    signer: OnceCell<Option<Box<dyn Signer>>>,
}

impl Context {
    pub fn new(cli: &Cli) -> Context {
        // -w DIR, else the current folder if it is a workflow, else ./workflow.
        let dir = cli.workflow.clone().unwrap_or_else(|| {
            if Path::new(WORKFLOW_PARAM_FILE).is_file() { PathBuf::from(".") } else { PathBuf::from("workflow") }
        });
        // An empty PAW_WORKFLOW_ID is no id.
        let workflow_id = cli.workflow_id.clone().filter(|id| !id.is_empty());
        // PAW_PARAM_<KEY> first, then --param: the command line wins.
        let overrides = ParamOverride::from_env(std::env::vars()).and_then(|mut overrides| {
            for arg in &cli.params {
                overrides.push(ParamOverride::from_arg(arg)?);
            }
            Ok(overrides)
        });
        let variant = cli.variant.as_deref().filter(|variant| !variant.is_empty());
        let workflows =
            overrides.and_then(|overrides| Workflow::load_variants(&dir, &overrides, variant)).map(|mut workflows| {
                for workflow in &mut workflows {
                    if let Some(workflow_id) = &workflow_id {
                        workflow.set_workflow_id(workflow_id);
                    }
                }
                workflows
            });
        if let Ok([workflow, ..]) = workflows.as_deref()
            && workflow.param.credentials.is_some()
        {
            eprintln!(
                "warning: {} holds AWS credentials; secrets don't belong in files: use a profile (profile_name) or the environment",
                workflow.param.path.display()
            );
        }
        let events = match &cli.command {
            Command::Build { events: Some(EventsFormat::Jsonl), events_packer, .. } => {
                Some(Arc::new(EventStream::new(*events_packer)))
            }
            _ => None,
        };
        let ci = CiSystem::detect(cli.ci);
        if let (Some(ci), Ok(workflows)) = (ci, &workflows) {
            ci.mask_secrets(workflows);
        }
        Context {
            output: RunOutput { json: cli.json, events, ci },
            workflows,
            workflow_named: cli.workflow.is_some(),
            catalog_arg: cli.catalog.clone(),
            workflow_id,
            name: cli.name.clone().filter(|name| !name.is_empty()),
            variant: variant.map(str::to_string),
            with_upstream: OnceCell::new(),
            region: OnceCell::new(),
            sdk_config: OnceCell::new(),
            catalog: OnceCell::new(),
            notifier: OnceCell::new(),
            signer: OnceCell::new(),
        }
    }

    /// The workflow folder, as one workflow: an error for the commands that need one when there is
    /// none, or when it has several variants and --variant names none.
    pub fn workflow(&self) -> Result<&Workflow> {
        match self.workflows()? {
            [workflow] => Ok(workflow),
            workflows => {
                let names: Vec<&str> = workflows.iter().filter_map(|workflow| workflow.variant.as_deref()).collect();
                Err(Error::new(ErrorKind::Usage, format!("the workflow has variants ({})", names.join(", ")))
                    .help(format!("name the one to work with: --variant {}", names[0])))
            }
        }
    }

    /// The workflow once per variant chosen (once when it has none).
    pub fn workflows(&self) -> Result<&[Workflow]> {
        self.workflows.as_deref().map_err(Clone::clone)
    }

    /// The workflows as `workflows` gives them, with what moves under them read once per run
    /// (`upstream`): the root base AMI of those whose base follows a source, and what the steps'
    /// upstream probes print. What plans, builds, renders, tests and reports work from. Without a
    /// followed base, AWS is not asked.
    pub async fn workflows_with_upstream(&self) -> Result<&[Workflow]> {
        let workflows = self
            .with_upstream
            .get_or_try_init(|| async {
                let mut workflows = self.workflows()?.to_vec();
                if workflows.iter().any(|workflow| workflow.param.followed_base.is_some()) {
                    let (ec2, ssm) = (self.ec2(None).await?, self.ssm().await?);
                    paw_core::upstream::follow_bases(&mut workflows, &ec2, &ssm).await?;
                }
                paw_core::upstream::run_probes(&mut workflows).await?;
                Ok::<_, Error>(workflows)
            })
            .await?;
        Ok(workflows)
    }

    /// The workflow, as one (`workflow`), with its upstream read (`workflows_with_upstream`).
    pub async fn workflow_with_upstream(&self) -> Result<&Workflow> {
        let workflow = self.workflow()?;
        let read = self.workflows_with_upstream().await?;
        Ok(read.iter().find(|read| read.variant == workflow.variant).expect("the same workflows"))
    }

    /// The workflow when one is named with -w or is at the default place; for commands that work
    /// without one (the workflow only supplies defaults: region, profile, catalog and steps, which
    /// its variants share).
    pub fn optional_workflow(&self) -> Result<Option<&Workflow>> {
        match &self.workflows {
            Ok(workflows) => Ok(workflows.first()),
            Err(err) if self.workflow_named => Err(err.clone()),
            Err(_) => Ok(None),
        }
    }

    /// The workflow id given on the command line (or PAW_WORKFLOW_ID), if one was.
    pub fn workflow_id_given(&self) -> Option<&str> {
        self.workflow_id.as_deref()
    }

    /// This run's workflow id: the one given, else workflow_param.json's; a variant's has the
    /// variant's name in it (`Workflow::set_workflow_id`).
    pub fn workflow_id(&self) -> Result<String> {
        match (&self.workflow_id, self.optional_workflow()?) {
            (Some(workflow_id), None) => Ok(workflow_id.clone()),
            _ => Ok(self.workflow()?.param.workflow_id.clone()),
        }
    }

    /// The line of images to work with: `--name`'s (and `--variant`'s), else the workflow
    /// folder's (and its variant's).
    pub fn line(&self) -> Result<Line> {
        match &self.name {
            Some(name) => {
                paw_core::config::check_workflow_name(name).map_err(|message| {
                    Error::new(ErrorKind::Usage, format!("--name: {message}"))
                        .help("a workflow name is what \"name\" in workflow_param.json says, e.g. web-base")
                })?;
                Ok(Line { name: name.clone(), variant: self.variant.clone() })
            }
            None => {
                let workflow = self.workflow().map_err(|err| {
                    let help = match &err.help {
                        Some(help) => format!("{help}; or name the images' workflow with --name NAME"),
                        None => "name the images' workflow with --name NAME".to_string(),
                    };
                    err.help(help)
                })?;
                Ok(Line::of(workflow))
            }
        }
    }

    /// `region_name` from the params, else the AWS SDK's standard resolution.
    pub async fn region(&self) -> Result<&str> {
        let region = self
            .region
            .get_or_try_init(|| async {
                let param = self.optional_workflow()?.map(|workflow| &workflow.param);
                let region_name = param.and_then(|param| param.region_name.as_deref());
                let profile_name = param.and_then(|param| param.profile_name.as_deref());
                paw_aws::region::resolve(region_name, profile_name).await.ok_or_else(|| {
                    let error = Error::new(ErrorKind::Config, "no AWS region is set").help(
                        "add \"region_name\": \"us-east-1\" to workflow_param.json, set AWS_REGION, or give your AWS profile a region",
                    );
                    match param {
                        Some(param) => error.in_file(&param.path),
                        None => error,
                    }
                })
            })
            .await?;
        Ok(region)
    }

    /// The AWS SDK's configuration for the workflow's region, profile and credentials, checked
    /// once: a named profile must exist, and credentials must load.
    pub async fn sdk_config(&self) -> Result<&aws_config::SdkConfig> {
        self.sdk_config
            .get_or_try_init(|| async {
                let param = self.optional_workflow()?.map(|workflow| &workflow.param);
                let profile = self.check_profile()?;
                let region = self.region().await?;
                let config = paw_aws::sdk_config(param, region).await;
                paw_aws::check_credentials(&config, profile.as_deref()).await?;
                Ok(config)
            })
            .await
    }

    /// The profile in use (workflow_param.json's profile_name, else AWS_PROFILE), which must be one
    /// of the AWS config or credentials files'.
    fn check_profile(&self) -> Result<Option<String>> {
        let param = self.optional_workflow()?.map(|workflow| &workflow.param);
        let from_param = param.and_then(|param| param.profile_name.clone());
        let Some(profile) = from_param.clone().or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
        else {
            return Ok(None);
        };
        let known = paw_aws::profiles::configured();
        if known.contains(&profile) {
            return Ok(Some(profile));
        }
        let have =
            if known.is_empty() { "there are none".to_string() } else { format!("there are: {}", known.join(", ")) };
        let error = Error::new(
            ErrorKind::Config,
            format!("the AWS profile \"{profile}\" is not in the AWS config or credentials files ({have})"),
        )
        .help("name one of those, or add the profile with `aws configure --profile NAME` (or `aws configure sso`)");
        Err(match (from_param, param) {
            (Some(_), Some(param)) => error.at(param.json().key_location("profile_name")),
            _ => Error { message: format!("{} (from AWS_PROFILE)", error.message), ..error },
        })
    }

    /// EC2 in the workflow's region, or in `region` when an image lives elsewhere.
    /// It reaches the accounts of the distribution block.
    pub async fn ec2(&self, region: Option<&str>) -> Result<AwsEc2> {
        let config = self.sdk_config().await?;
        Ok(match region {
            Some(region) if region != self.region().await? => AwsEc2::reaching(
                &config.to_builder().region(aws_config::Region::new(region.to_string())).build(),
                self.reach()?,
            ),
            _ => AwsEc2::reaching(config, self.reach()?),
        })
    }

    /// How paw gets into the accounts the workflow's distribution block names (every variant's):
    /// each account's role (`{account}` filled in) or profile.
    pub fn reach(&self) -> Result<SharedReach> {
        let mut accounts = std::collections::HashMap::new();
        for workflow in self.optional_workflow()?.map(|_| self.workflows()).transpose()?.unwrap_or_default() {
            for target in &workflow.param.distribution {
                for account in &target.accounts {
                    let access = match (target.role_in(account), &target.profile) {
                        (Some(role), _) => Access::Role(role),
                        (None, Some(profile)) => Access::Profile(profile.clone()),
                        (None, None) => continue,
                    };
                    accounts.entry(account.clone()).or_insert(access);
                }
            }
        }
        Ok(Arc::new(Reach::new(accounts)))
    }

    /// Who runs paw, for the channels' history: `user@host`, and the AWS caller's ARN when AWS
    /// says (a caller AWS does not name is still `user@host`).
    pub async fn caller(&self) -> Result<String> {
        let local = paw_core::catalog::who();
        Ok(match paw_aws::doctor::caller(self.sdk_config().await?).await {
            Ok((_, arn)) => format!("{local} ({arn})"),
            Err(_) => local,
        })
    }

    /// SSM Parameter Store in the workflow's region; it reaches the distribution block's accounts.
    pub async fn ssm(&self) -> Result<AwsSsm> {
        Ok(AwsSsm::reaching(self.sdk_config().await?, self.reach()?))
    }

    /// Where this run's notices go: the workflow's `"notify"` targets (variants share them), made
    /// once; no targets without a workflow. A webhook's secret that is not set is an error here,
    /// before anything is done.
    pub async fn notifier(&self) -> Result<&Notifier> {
        self.notifier
            .get_or_try_init(|| async {
                let Some(workflow) = self.optional_workflow()? else { return Ok(Notifier::none()) };
                let mut targets: Vec<Box<dyn NoticeTarget>> = Vec::new();
                for target in &workflow.param.notify {
                    if target.eventbridge_bus.is_some() {
                        targets.push(Box::new(EventBridgeTarget::new(self.sdk_config().await?, target)));
                        continue;
                    }
                    let webhook = WebhookTarget::new(target).map_err(|what| {
                        Error::new(ErrorKind::Config, what)
                            .at(workflow.param.json().key_location(paw_core::config::NOTIFY))
                            .help("export the secret in the variable, or leave out secret_env for unsigned posts")
                    })?;
                    targets.push(Box::new(webhook));
                }
                Ok::<_, Error>(Notifier::new(targets))
            })
            .await
    }

    /// What signs the images' statements: the workflow's `"provenance"` (a KMS key, or a local key
    /// whose file an environment variable names), made once; None without one (unsigned). A key
    /// file that cannot be read is an error here, before anything is built.
    pub async fn signer(&self) -> Result<Option<&dyn Signer>> {
        let signer = self
            .signer
            .get_or_try_init(|| async {
                let Some(workflow) = self.optional_workflow()? else { return Ok(None) };
                let Some(setting) = &workflow.param.provenance else { return Ok(None) };
                let at = workflow.param.json().key_location(paw_core::config::PROVENANCE);
                let signer: Box<dyn Signer> = match (&setting.kms_key, &setting.key_file_env) {
                    (Some(key), _) => Box::new(KmsSigner::new(self.sdk_config().await?, key)),
                    (None, Some(name)) => {
                        let path = std::env::var(name).ok().filter(|path| !path.is_empty()).ok_or_else(|| {
                            Error::new(ErrorKind::Config, format!("the signing key's variable {name} is not set"))
                                .at(at.clone())
                                .help(format!("export {name}=PATH of an Ed25519 PKCS#8 key file"))
                        })?;
                        let bytes = std::fs::read(&path)
                            .map_err(|err| Error::io(Path::new(&path), "read the signing key", err))?;
                        Box::new(Ed25519Signer::from_pkcs8(&bytes, &path).map_err(|err| err.at(at))?)
                    }
                    (None, None) => unreachable!("checked: a provenance block names a signer"),
                };
                Ok::<_, Error>(Some(signer))
            })
            .await?;
        Ok(signer.as_deref())
    }

    /// What writes the images' statements: the signer, the AWS caller's ARN as who built them (a
    /// statement names its builder: AWS not answering is an error), and paw's own commit; with
    /// `require_provenance`, the signer's key that parents must verify with.
    pub async fn attester(&self) -> Result<Attester<'_>> {
        let signer = self.signer().await?;
        let (_, builder_id) = paw_aws::doctor::caller(self.sdk_config().await?).await?;
        let paw_commit = option_env!("PAW_COMMIT").map(str::to_string);
        let folder_commit = self.optional_workflow()?.and_then(|workflow| provenance::git_commit(&workflow.root));
        Ok(Attester { signer, builder_id, paw_commit, folder_commit, required: self.required_key().await? })
    }

    /// The key images must verify with when the workflow requires provenance
    /// (`require_provenance`, which names a signer): the signer's; None when it does not.
    pub async fn required_key(&self) -> Result<Option<PublicKey>> {
        if !self.optional_workflow()?.is_some_and(|workflow| workflow.param.require_provenance) {
            return Ok(None);
        }
        self.signer_key().await
    }

    /// The public key of the workflow's signer; None without one.
    pub async fn signer_key(&self) -> Result<Option<PublicKey>> {
        match self.signer().await? {
            Some(signer) => Ok(Some(signer.public_key().await?)),
            None => Ok(None),
        }
    }

    /// Delivers what commands noted and did not deliver themselves (the build delivers its own
    /// before its summary): what became of each target's.
    pub async fn deliver_notices(&self) -> Vec<Delivery> {
        match self.notifier.get() {
            Some(notifier) => notifier.deliver().await,
            None => Vec::new(),
        }
    }

    /// Without --catalog, the workflow says where its catalog is, so there must be one.
    fn catalog_uri(&self) -> Result<CatalogUri> {
        // Variants share the catalog: the first one's is theirs.
        let workflow = match &self.catalog_arg {
            Some(_) => self.optional_workflow()?,
            None => Some(&self.workflows()?[0]),
        };
        CatalogUri::resolve(self.catalog_arg.as_ref(), workflow)
    }

    /// The catalog, opened (and, for DynamoDB, created or completed) once.
    pub async fn catalog(&self) -> Result<&dyn Catalog> {
        let catalog = self.catalog.get_or_try_init(|| async { self.open_catalog(self.catalog_uri()?).await }).await?;
        Ok(catalog.as_ref())
    }

    /// Opens a catalog named by its URI (for `catalog migrate`).
    pub async fn open_catalog(&self, uri: CatalogUri) -> Result<Box<dyn Catalog>> {
        Ok(match uri {
            CatalogUri::Sqlite(path) => Box::new(SqliteCatalog::open(&path)?),
            CatalogUri::DynamoDb(table) => Box::new(
                DynamoCatalog::open(&self.catalog_config().await?, &table, &|notice| eprintln!("paw: {notice}"))
                    .await?,
            ),
        })
    }

    /// The SDK configuration a DynamoDB catalog is reached with: the build's, unless the catalog
    /// lives in an account or region of its own (workflow_param.json's `"catalog"` object; or
    /// PAW_CATALOG_REGION, PAW_CATALOG_ROLE_ARN, PAW_CATALOG_PROFILE, which win): then one
    /// catalog serves several build accounts.
    async fn catalog_config(&self) -> Result<aws_config::SdkConfig> {
        let base = self.sdk_config().await?;
        let param = self.optional_workflow()?.map(|workflow| workflow.param.catalog_access.clone()).unwrap_or_default();
        let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let region = env("PAW_CATALOG_REGION").or(param.region).unwrap_or(self.region().await?.to_string());
        let access = match (env("PAW_CATALOG_ROLE_ARN"), env("PAW_CATALOG_PROFILE")) {
            (Some(role_arn), _) => Some(Access::Role(role_arn)),
            (None, Some(profile)) => Some(Access::Profile(profile)),
            (None, None) => param.role_arn.map(Access::Role).or(param.profile.map(Access::Profile)),
        };
        Ok(match access {
            Some(access) => paw_aws::accounts::acting_as(base, &access, &region),
            None => base.to_builder().region(aws_config::Region::new(region)).build(),
        })
    }

    /// The catalog for reading only: render and plan never create or change one, so a catalog
    /// that does not exist yet reads as an empty one, quietly (the first build creates it; a step
    /// whose parent it lacks says so itself).
    pub async fn catalog_for_reading(&self) -> Result<Box<dyn Catalog>> {
        let stand_in = |uri: String| -> Result<Box<dyn Catalog>> { Ok(Box::new(SqliteCatalog::stand_in(&uri)?)) };
        match self.catalog_uri()? {
            CatalogUri::Sqlite(path) if path.exists() && !path.is_file() => {
                Err(Error::new(ErrorKind::Usage, format!("the catalog sqlite:{} is not a file", path.display()))
                    .help("name an SQLite file (it is created by the first build): --catalog sqlite:PATH"))
            }
            CatalogUri::Sqlite(path) if !path.is_file() => stand_in(format!("sqlite:{}", path.display())),
            CatalogUri::Sqlite(path) => Ok(Box::new(SqliteCatalog::open(&path)?)),
            CatalogUri::DynamoDb(table) => {
                match DynamoCatalog::open_existing(&self.catalog_config().await?, &table).await? {
                    Some(catalog) => Ok(Box::new(catalog)),
                    None => stand_in(format!("dynamodb:{table}")),
                }
            }
        }
    }
}
