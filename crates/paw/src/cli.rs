//! The command line, a stable contract: users, scripts and CI rely on these names.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use paw_core::catalog::CatalogUri;

#[derive(Debug, Parser)]
#[command(name = "paw", version = env!("PAW_VERSION"), about = "Build chains of AWS AMIs with Packer: render, validate, build, tag, record.")]
pub struct Cli {
    /// The workflow folder [default: the current folder if it holds workflow_param.json, else ./workflow]
    #[arg(short, long, global = true, value_name = "DIR")]
    pub workflow: Option<PathBuf>,

    /// Print data as JSON (for scripts) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Where AMIs are recorded: sqlite:PATH or dynamodb:TABLE [default: "catalog" in
    /// workflow_param.json, else sqlite:WORKFLOW/.paw/catalog.sqlite]
    #[arg(long, global = true, env = "PAW_CATALOG", value_name = "URI")]
    pub catalog: Option<CatalogUri>,

    /// The workflow id of this run, instead of workflow_param.json's (e.g. one per commit in CI);
    /// for `images`, the workflow whose records to show.
    #[arg(long, global = true, env = "PAW_WORKFLOW_ID", value_name = "ID")]
    pub workflow_id: Option<String>,

    /// The workflow name whose images to work with (resolve, channels, images), instead of the
    /// workflow folder's ("name" in workflow_param.json, else the folder's name).
    #[arg(long, global = true, env = "PAW_NAME", value_name = "NAME")]
    pub name: Option<String>,

    /// The variant to work with ("variants" in workflow_param.json) [default: every variant for
    /// build, plan, status, validate and recover; others need one named when there are several]
    #[arg(long, global = true, env = "PAW_VARIANT", value_name = "VARIANT")]
    pub variant: Option<String>,

    /// Speak a CI system's language: errors as annotations, packer's output of each step in a
    /// collapsible group, a summary, and the AMI ids as the job's outputs [default: github when
    /// GITHUB_ACTIONS=true, gitlab when GITLAB_CI=true]
    #[arg(long, global = true, env = "PAW_CI", value_enum, value_name = "SYSTEM")]
    pub ci: Option<CiArg>,

    /// Set a key of workflow_param.json for this run, over the file and PAW_PARAM_KEY: VALUE is
    /// JSON, else a string (e.g. --param instance_size=large). Counted in the fingerprint.
    #[arg(long = "param", global = true, value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the steps in build order: id, parent, folder, metadata.
    Steps,
    /// Render the steps' templates into their folders (all steps when none is named).
    Render {
        /// Step ids.
        steps: Vec<String>,
    },
    /// Render, check the HCL, then run `packer validate` (all steps when none is named).
    Validate {
        /// Step ids.
        steps: Vec<String>,
    },
    /// Per step, in build order: up-to-date, reuse (another workflow's AMI), or build, and why.
    /// Changes nothing; needs no packer.
    Plan {
        /// Step ids; all steps when none is named.
        steps: Vec<String>,
        /// Plan these steps (every step when none is named) as built again, though their inputs
        /// match, and so their descendants.
        #[arg(long, num_args = 0.., value_name = "STEP")]
        rebuild: Option<Vec<String>>,
        /// Exit 0 when there is nothing to build, reuse or test, 2 when there is, 1 on an error
        /// (as Terraform's `plan -detailed-exitcode`).
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Build what the plan says, parents first and branches in parallel; tag and record the AMIs.
    Build {
        /// Step ids; a named step's parent must already have an AMI in the catalog.
        steps: Vec<String>,
        /// Build these steps (every step when none is named) again, though their inputs match (to
        /// pick up the OS's updates), and so their descendants. Under the same workflow id, with
        /// --force.
        #[arg(long, num_args = 0.., value_name = "STEP")]
        rebuild: Option<Vec<String>>,
        /// Stop before `packer build` and print the exact packer command.
        #[arg(long)]
        dry_run: bool,
        /// Run `packer build -debug`, which pauses for Enter at every packer step.
        #[arg(long)]
        packer_debug: bool,
        /// Deregister this workflow's AMIs whose inputs changed, and rebuild them and their descendants.
        #[arg(long)]
        force: bool,
        /// With --force: delete the deregistered AMIs' snapshots too.
        #[arg(long, requires = "force")]
        delete_snapshots: bool,
        /// How many packer builds may run at once.
        #[arg(long, short, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
        jobs: u16,
        /// How many more times a step is built when packer failed for a passing cause (AWS
        /// throttling or failing on its side, no capacity for the instance type, a pending source
        /// AMI, SSH/WinRM not up in time); other failures are not retried.
        #[arg(long, value_name = "N", default_value_t = 2)]
        retries: u32,
        /// Seconds before the first retry; doubled for each next one.
        #[arg(long, value_name = "SECONDS", default_value_t = 15, env = "PAW_RETRY_DELAY")]
        retry_delay: u64,
        /// Keep a new image that fails its tests, to look into it: marked failed, tagged
        /// paw:tests=failed, never a source, never reused (else it is deregistered with its snapshots).
        #[arg(long)]
        keep_failed: bool,
        /// Stream packer's output, each line prefixed with its step, instead of one live line per
        /// step (which is what a terminal gets otherwise; pipes and --json always get the lines).
        #[arg(long, short)]
        verbose: bool,
        /// Write every event of the run to stdout, one JSON object a line (schema in the README);
        /// people's output goes to stderr meanwhile.
        #[arg(long, value_enum, value_name = "FORMAT", conflicts_with = "json")]
        events: Option<EventsFormat>,
        /// With --events: each line of packer's output as an event too.
        #[arg(long, requires = "events")]
        events_packer: bool,
    },
    /// Run the image tests of the steps' existing images (every step with tests when none is
    /// named) and add the results to each image's test history. A failure marks the image failed,
    /// but keeps it (it may be in use: `paw images revoke` withdraws it); the exit code is then 1.
    Test {
        /// Step ids.
        steps: Vec<String>,
        /// Stream packer's output, each line prefixed with its step.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Settle what interrupted runs of this workflow left (every build does this first): packer's
    /// instances, key pairs and security groups go; an AMI is adopted when whole and its inputs still
    /// match, else deregistered. Builds still running elsewhere are listed and left alone.
    Recover,
    /// The AMIs in the catalog.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Per step, in build order: is this workflow's image current, stale (and why), missing or
    /// revoked?
    Status,
    /// One self-contained HTML page: the step tree, each step's images with their status, parent,
    /// channels, copies and console link. Printed, or written to FILE.
    Report {
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Every workflow's images of the folder's steps, not only this workflow's.
        #[arg(long)]
        all_workflows: bool,
    },
    /// Channels: named pointers (prod, staging) from a step to one of its images, with history.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Lifecycle policies ("lifecycle" in workflow_param.json and step_param.json): what is due
    /// for each image of the workflow's name — keep, deprecate, disable, delete — and doing it.
    #[command(subcommand)]
    Lifecycle(LifecycleCommand),
    /// Print a step's AMI id alone, for scripts: `$(paw resolve app --channel prod)`. Default: the
    /// newest available image of the step (of --workflow-id, when given).
    Resolve {
        step: String,
        /// The image this channel points at.
        #[arg(long)]
        channel: Option<String>,
        /// Its copy in this region.
        #[arg(long)]
        region: Option<String>,
        /// Its copy owned by this account (distribution), in --region (default: the image's).
        #[arg(long, value_name = "ACCOUNT_ID")]
        account: Option<String>,
    },
    /// Copy (or share) the step's existing image to every region and account the distribution
    /// block of workflow_param.json names for it, as `paw build` does for new images; only what is
    /// missing is done.
    Distribute {
        step: String,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Root base AMIs: find them, and move the workflow to the newest.
    #[command(subcommand, name = "base-ami")]
    BaseAmi(BaseAmiCommand),
    /// The catalog itself.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Check the step's image (or --ami ID's) against its signed statement: the signature, its
    /// paw:provenance tag, the AMI and snapshots EC2 describes now; then each parent's statement,
    /// down to the root base AMI. Exit 1 naming each check that fails.
    Verify {
        #[arg(required_unless_present = "ami")]
        step: Option<String>,
        /// The image by its AMI id instead of its step.
        #[arg(long, value_name = "ID", conflicts_with = "step")]
        ami: Option<String>,
        /// Check the image alone, not its parents.
        #[arg(long)]
        no_chain: bool,
        /// The public key (PEM) to verify with, instead of the workflow's signer's.
        #[arg(long, value_name = "FILE")]
        public_key: Option<std::path::PathBuf>,
    },
    /// Notifications: the workflow_param.json's "notify" targets.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Check, one line each, what a build needs: the workflow, its templates, packer, the region,
    /// credentials, EC2, the catalog, and the VPC, subnet, security group and instance profile it names.
    Doctor,
    /// The packer paw runs.
    #[command(subcommand)]
    Packer(PackerCommand),
    /// Print a shell completion script: `paw completions bash > /etc/bash_completion.d/paw`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print paw's man page (roff): `paw man > /usr/local/share/man/man1/paw.1`.
    Man {
        /// Every command and option as Markdown instead: the book's command reference.
        #[arg(long)]
        markdown: bool,
    },
    /// Create a new workflow folder with one step, in the seed's layout.
    Init {
        /// The folder to create; it must be new or empty.
        dir: PathBuf,
    },
    /// Make a one-step workflow from a plain Packer (HCL2) project, and say what was changed.
    Import {
        /// The folder with the project's *.pkr.hcl files; it is not changed.
        packer_dir: PathBuf,
        /// The workflow folder to create; it must be new or empty [default: ./PROJECT-workflow, after the project folder]
        #[arg(long, value_name = "DIR")]
        into: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// List recorded AMIs: all steps of a workflow, or one step across workflows (--step).
    /// (--workflow-id: only that workflow; by default workflow_param.json's, unless --step is given.)
    List {
        /// Only this step.
        #[arg(long)]
        step: Option<String>,
        /// At most N records, the newest.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// Show one step's AMI record.
    Show { step: String },
    /// Who uses the step's image (or --ami ID, an image the catalog records), in every region and
    /// account it has a copy: instances, launch templates ($Default, $Latest), SSM parameters
    /// (paw's channels marked), Image Builder recipes, and other accounts that launch it shared.
    Usage {
        #[arg(required_unless_present = "ami")]
        step: Option<String>,
        /// The image by its AMI id instead of its step.
        #[arg(long, value_name = "ID", conflicts_with = "step")]
        ami: Option<String>,
    },
    /// The step's signed statement of what went into its image (a DSSE envelope of an in-toto
    /// Statement with a SLSA Provenance predicate), and the public key that verifies it as PEM:
    /// for any DSSE-aware verifier.
    Provenance { step: String },
    /// The SBOM the step's build left (`"sbom"` in step_param.json), as paw stored it beside the
    /// image's statement.
    Sbom { step: String },
    /// The packages added, removed and changed from one of the step's images to another, each
    /// named by its workflow id or AMI id; SPDX and CycloneDX JSON alike.
    SbomDiff {
        step: String,
        /// The first image: a workflow id, or an AMI id.
        first: String,
        /// The second image: a workflow id, or an AMI id.
        second: String,
    },
    /// Create the step's AMI from a stopped EC2 instance, and record it.
    FromInstance {
        step: String,
        #[arg(long, value_name = "ID")]
        instance_id: String,
        /// Record the AMI and return at once, without waiting for it (its snapshots stay untagged).
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for the AMI to become available.
        #[arg(long, value_name = "SECS", default_value_t = 3600)]
        timeout: u64,
    },
    /// Deregister the step's AMI and its copies in every region and account (after a y/N prompt);
    /// the record is kept as `deregistered`. Planned whole first: an image a channel points at, or
    /// that EC2 protects, is refused before anything changes, unless --force --reason.
    Delete {
        step: String,
        /// Delete the AMI's EBS snapshots too.
        #[arg(long)]
        delete_snapshots: bool,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Delete a channel's image, a protected one, or one in use (or whose users are not
        /// known), all the same: its protection is lifted, and each channel that pointed at it
        /// records the deletion (needs --reason).
        #[arg(long, requires = "reason")]
        force: bool,
        /// Why, kept in the history of each channel that pointed at it.
        #[arg(long, value_name = "TEXT", requires = "force")]
        reason: Option<String>,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// The step's image and its ancestry up to the root base AMI; with --descendants, every image,
    /// in any workflow, built on it.
    Lineage {
        step: String,
        #[arg(long)]
        descendants: bool,
    },
    /// Per step of the folder, across workflows: keep the newest N images and every image a channel,
    /// a kept image (its ancestors) or a reuse depends on; deregister the rest.
    Prune {
        /// How many of each step's newest available images to keep.
        #[arg(long, value_name = "N")]
        keep: usize,
        /// Keep every image younger than DAYS as well.
        #[arg(long, value_name = "DAYS")]
        older_than: Option<u64>,
        /// Delete the deregistered AMIs' snapshots too.
        #[arg(long)]
        delete_snapshots: bool,
        /// Say what would be deleted; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Withdraw the step's AMI: disabled in EC2, tagged paw:revoked, every record of it revoked
    /// (never a source, never reused, never up to date) until restored.
    Revoke {
        step: String,
        /// Why (kept with the records and on the AMI's tag).
        #[arg(long)]
        reason: String,
        /// Revoke every image built on it too, directly or not.
        #[arg(long)]
        cascade: bool,
        /// Revoke it all the same while something uses it (or who does is not known): the records
        /// keep who did with the reason.
        #[arg(long)]
        force: bool,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Undo a revocation: the AMI enabled, its tag removed, its records available again.
    Restore {
        step: String,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy the step's AMI to other regions: each copy waited for, tagged like the original, and
    /// recorded with it.
    Copy {
        step: String,
        #[arg(long = "to-region", value_name = "REGION", required = true)]
        to_regions: Vec<String>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Grant launch permission on every copy of the step's AMI, in every region, and create-volume
    /// permission on their snapshots (--remove withdraws them).
    Share {
        step: String,
        /// An AWS account id (12 digits); repeat for more.
        #[arg(long = "account", value_name = "ID")]
        accounts: Vec<String>,
        /// An AWS Organizations ARN (launch permission only).
        #[arg(long = "org-arn", value_name = "ARN")]
        org_arns: Vec<String>,
        #[arg(long)]
        remove: bool,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Point CHANNEL at the step's image of this workflow (or --workflow-id's).
    Set {
        channel: String,
        step: String,
        /// Also publish the AMI id to this SSM parameter (DataType aws:ec2:image), now and on
        /// every later set and rollback of this channel and step.
        #[arg(long, value_name = "NAME")]
        ssm_parameter: Option<String>,
        /// Why, kept in the channel's history.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Point the channel at a deprecated image all the same (an override; needs --reason).
        #[arg(long, requires = "reason")]
        force: bool,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Every channel, per step: the image it points at, who set it and when.
    List,
    /// A channel's history for a step, newest first: every set and rollback, when, by whom, why.
    History { channel: String, step: String },
    /// Move the channel back to the image before the current one (a new entry of its history).
    Rollback {
        channel: String,
        step: String,
        /// Why, kept in the channel's history.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PackerCommand {
    /// Download packer from HashiCorp's releases site (or PAW_PACKER_MIRROR), verify its checksum,
    /// and put it where paw finds it when PAW_PACKER and PATH have none.
    Install {
        /// e.g. 1.11.2 [default: the newest release]
        #[arg(long)]
        version: Option<String>,
        /// [default: ~/.local/share/paw/bin]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Which packer paw runs, its version, and where paw found it.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Copy every record from one catalog to another (SQLite ⇄ DynamoDB); safe to run again.
    Migrate {
        /// The catalog to read: sqlite:PATH or dynamodb:TABLE.
        #[arg(long, value_name = "URI")]
        from: CatalogUri,
        /// The catalog to write: sqlite:PATH or dynamodb:TABLE (created when missing).
        #[arg(long, value_name = "URI")]
        to: CatalogUri,
        /// Steps to copy besides the workflow folder's (a DynamoDB source cannot list its steps without a scan).
        #[arg(long = "step", value_name = "STEP")]
        steps: Vec<String>,
        /// Print what would be copied, and what conflicts; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Assign records made before workflow names existed to this folder's name (or --name), by
    /// workflow id, with the channel entries that point at them. Without ids: list the workflows
    /// whose records of the folder's steps have no name.
    Adopt {
        /// Workflow ids whose records to assign.
        workflow_ids: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send one sample notice (detail-type paw.notify.test) to each target; exit 1 when one
    /// could not be delivered.
    Test,
}

#[derive(Debug, Subcommand)]
pub enum BaseAmiCommand {
    /// Available EBS/HVM AMIs by name pattern and owner, newest first.
    Find {
        /// A name pattern with * wildcards, e.g. 'ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*'
        #[arg(long)]
        name: String,
        /// The owner's account id [default: Canonical's]
        #[arg(long, default_value = "099720109477")]
        owner: String,
        #[arg(long, value_enum, default_value_t = Arch::X86_64)]
        arch: Arch,
    },
    /// Set root_base_ami_id and root_base_ami_name in workflow_param.json to the newest AMI of its
    /// root_base_ami_filter (comments and formatting are kept).
    Update {
        /// Say what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "arm64")]
    Arm64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

pub fn parse() -> Cli {
    Cli::parse()
}

/// The command line's definition, for completions and the man page.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CiArg {
    Github,
    Gitlab,
    /// Not in CI, whatever the environment says.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventsFormat {
    /// JSON Lines: one JSON object a line.
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum LifecycleCommand {
    /// Per image of the workflow's name (and its copies): the action the policy says is due, and
    /// why. Changes nothing.
    Plan,
    /// Carry out the plan's actions that are not done yet; without a terminal, only with --yes.
    Apply {
        #[arg(long)]
        yes: bool,
        /// Print the plan and change nothing (as `paw lifecycle plan`).
        #[arg(long)]
        dry_run: bool,
    },
}
