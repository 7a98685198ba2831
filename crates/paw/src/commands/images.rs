//! `paw images ...` and `paw base-ami find`: the catalog's records and the seed's AMI operations.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::Duration;

use paw_core::catalog::ImageRecord;
use paw_core::change::usage::{self, Sharing, Usage};
use paw_core::change::{self, Action, DeleteRequest, Executor};
use paw_core::ec2::{BaseAmiQuery, Ec2 as _, Image, ImageUser};
use paw_core::provenance::Envelope;
use paw_core::{Error, ErrorKind, engine, ops};
use serde_json::{Value, json};

use crate::cli::Arch;
use crate::context::Context;
use crate::output::{Report, plan_table, table};

pub struct Records(Vec<ImageRecord>);

/// Newest first (the catalogs' order), at most `limit`.
pub async fn list(cx: &Context, step: Option<String>, limit: Option<u32>) -> paw_core::Result<Records> {
    let catalog = cx.catalog().await?;
    let mut records = match (cx.workflow_id_given(), step) {
        (Some(workflow_id), Some(step)) => catalog.get(workflow_id, &step).await?.into_iter().collect(),
        (None, Some(step)) => catalog.list_line(&cx.line()?, &step).await?,
        (_, None) => match cx.optional_workflow()? {
            // Every variant's, newest first.
            Some(_) => {
                let mut records = Vec::new();
                for workflow in cx.workflows()? {
                    records.extend(catalog.list_workflow(&workflow.param.workflow_id).await?);
                }
                records.sort_by(|a, b| b.create_at.cmp(&a.create_at));
                records
            }
            None => catalog.list_workflow(&cx.workflow_id()?).await?,
        },
    };
    records.truncate(limit.map_or(usize::MAX, |limit| limit as usize));
    Ok(Records(records))
}

impl Report for Records {
    fn json(&self) -> Value {
        json!(self.0.iter().map(ImageRecord::to_json).collect::<Vec<_>>())
    }

    fn text(&self) -> String {
        let variants = self.0.iter().any(|record| record.variant.is_some());
        let rows = self
            .0
            .iter()
            .map(|record| {
                let variant = variants.then(|| record.variant.clone().unwrap_or_else(|| "-".into()));
                vec![record.workflow_id.clone()]
                    .into_iter()
                    .chain(variant)
                    .chain([
                        record.step_id.clone(),
                        record.ami_id.clone(),
                        record.status.as_str().to_string(),
                        record.test_badge().unwrap_or_else(|| "-".into()),
                        record.create_at.clone(),
                        record.ami_name.clone(),
                        record
                            .copies
                            .iter()
                            .map(|(region, ami_id)| format!("{region}:{ami_id}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ])
                    .collect()
            })
            .collect();
        let header: &[&str] = if variants {
            &["WORKFLOW", "VARIANT", "STEP", "AMI", "STATUS", "TESTS", "CREATED (UTC)", "NAME", "COPIES"]
        } else {
            &["WORKFLOW", "STEP", "AMI", "STATUS", "TESTS", "CREATED (UTC)", "NAME", "COPIES"]
        };
        table(header, rows)
    }
}

/// The record of one step, or an error saying how to make one.
/// The record of a command's image: its step's (this workflow's), or an AMI's (`--ami ID`).
pub(super) async fn step_or_ami(cx: &Context, step: Option<&str>, ami: Option<&str>) -> paw_core::Result<ImageRecord> {
    let catalog = cx.catalog().await?;
    match (step, ami) {
        (Some(step), _) => find_record(cx, step).await,
        (None, Some(ami_id)) => catalog.find_by_ami(ami_id).await?.into_iter().next().ok_or_else(|| {
            Error::new(ErrorKind::Usage, format!("no record of {ami_id} in {}", catalog.uri()))
                .help("paw knows the images it recorded: `paw images list` shows them")
        }),
        (None, None) => unreachable!("clap requires a step or --ami"),
    }
}

pub(super) async fn find_record(cx: &Context, step: &str) -> paw_core::Result<ImageRecord> {
    let workflow_id = cx.workflow_id()?;
    let catalog = cx.catalog().await?;
    catalog.get(&workflow_id, step).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::Usage,
            format!("no AMI of step \"{step}\" of workflow \"{workflow_id}\" in {}", catalog.uri()),
        )
        .help("`paw images list` shows what the catalog has; `paw build` makes AMIs")
    })
}

/// `paw images show`: the record, and who uses its image (unless it is deregistered).
pub struct Shown {
    record: ImageRecord,
    usage: Option<Usage>,
}

pub async fn show(cx: &Context, step: &str) -> paw_core::Result<Shown> {
    let record = find_record(cx, step).await?;
    let usage = match record.status {
        paw_core::catalog::ImageStatus::Deregistered => None,
        _ => Some(read_usage(cx, &record).await?),
    };
    Ok(Shown { record, usage })
}

/// Who uses the record's image, in every place; what cannot be read is its `unknown`.
async fn read_usage(cx: &Context, record: &ImageRecord) -> paw_core::Result<Usage> {
    let catalog = cx.catalog().await?;
    let channels = paw_core::catalog::current_entries(catalog, None).await?;
    let read = match cx.ec2(Some(&record.region)).await {
        Ok(ec2) => usage::gather(&ec2, &record.region, &[record.into()], Sharing::AskEc2, &channels).await,
        Err(err) => [(record.ami_id.clone(), Usage { users: Vec::new(), unknown: vec![err.message] })].into(),
    };
    Ok(read.get(&record.ami_id).cloned().unwrap_or_default())
}

impl Report for Shown {
    fn json(&self) -> Value {
        let mut shown = self.record.to_json();
        if let Some(usage) = &self.usage {
            shown["usage"] = json!(usage);
        }
        shown
    }

    fn text(&self) -> String {
        let mut rows: Vec<Vec<String>> = self
            .record
            .to_json()
            .as_object()
            .expect("a record is an object")
            .iter()
            .map(|(key, value)| {
                let shown = match (key.as_str(), value.as_str()) {
                    // The envelopes are for verifiers (`paw images provenance`); people get who
                    // signed them; the SBOM is `paw images sbom`'s.
                    ("provenance", Some(envelope)) => Envelope::describe(envelope),
                    ("copy_provenance", None) => value
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(place, envelope)| {
                            format!("{place}: {}", Envelope::describe(envelope.as_str().unwrap_or("")))
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                    ("sbom", Some(sbom)) => format!(
                        "{} bytes, sha256 {} (`paw images sbom` prints it)",
                        sbom.len(),
                        paw_core::provenance::sha256_hex(sbom.as_bytes())
                    ),
                    (_, Some(text)) => text.to_string(),
                    (_, None) => value.to_string(),
                };
                vec![key.clone(), shown]
            })
            .collect();
        if let Some(usage) = &self.usage {
            rows.push(vec!["usage".into(), usage.said()]);
        }
        table(&["FIELD", "VALUE"], rows)
    }
}

/// `paw images usage`: one image's users, in every place.
pub struct UsageShown {
    ami_id: String,
    usage: Usage,
}

pub async fn usage(cx: &Context, step: Option<&str>, ami: Option<&str>) -> paw_core::Result<UsageShown> {
    let record = step_or_ami(cx, step, ami).await?;
    Ok(UsageShown { usage: read_usage(cx, &record).await?, ami_id: record.ami_id })
}

impl Report for UsageShown {
    fn json(&self) -> Value {
        let mut shown = json!(self.usage);
        shown["ami_id"] = json!(self.ami_id);
        shown["unknown"] = json!(self.usage.unknown);
        shown
    }

    fn text(&self) -> String {
        let mut lines = Vec::new();
        if self.usage.users.is_empty() && self.usage.unknown.is_empty() {
            lines.push(format!("nothing uses {}", self.ami_id));
        }
        if !self.usage.users.is_empty() {
            let rows = self.usage.users.iter().map(|one| {
                let (kind, user, detail) = match &one.user {
                    ImageUser::Instance { id, state } => ("instance", id.clone(), state.clone()),
                    ImageUser::LaunchTemplate { id, versions } => {
                        let versions: Vec<String> = versions.iter().map(ToString::to_string).collect();
                        ("launch template", id.clone(), versions.join(", "))
                    }
                    ImageUser::SsmParameter { name, channel } => {
                        let detail = channel.as_ref().map_or(String::new(), |channel| format!("channel {channel}"));
                        ("SSM parameter", name.clone(), detail)
                    }
                    ImageUser::ImageRecipe { arn } => ("Image Builder recipe", arn.clone(), String::new()),
                    ImageUser::Account { id, instances, launch_templates } => (
                        "account",
                        id.clone(),
                        format!(
                            "{}, {}",
                            crate::output::plural(*instances as usize, "instance", "instances"),
                            crate::output::plural(*launch_templates as usize, "launch template", "launch templates")
                        ),
                    ),
                    ImageUser::Other { resource_type, arn } => ("other", arn.clone(), resource_type.clone()),
                };
                vec![one.place.key(), one.ami_id.clone(), kind.to_string(), user, detail]
            });
            lines.push(table(&["PLACE", "AMI", "KIND", "USER", "DETAIL"], rows.collect()));
        }
        for unknown in &self.usage.unknown {
            lines.push(format!("unknown: {unknown}"));
        }
        lines.join("\n")
    }

    /// Users that could not be read in every place make the answer incomplete: a failure.
    fn error(&self) -> Option<Error> {
        (!self.usage.unknown.is_empty()).then(|| {
            Error::new(ErrorKind::Aws, format!("who uses {} is not known in every place", self.ami_id))
                .help("each `unknown:` line says why; `paw doctor` checks the permissions")
        })
    }
}

pub struct FromInstance {
    record: ImageRecord,
    instance_id: String,
    catalog: String,
    waited: bool,
}

/// Reports nothing as it goes: from-instance's stages say what they do in their errors.
struct Quiet;

impl engine::Reporter for Quiet {
    fn event(&self, _: engine::Event<'_>) {}
}

pub async fn from_instance(
    cx: &Context,
    step_id: &str,
    instance_id: &str,
    wait: Option<Duration>,
) -> paw_core::Result<FromInstance> {
    let workflow = cx.workflow_with_upstream().await?;
    let step = workflow.select(&[step_id.to_string()])?[0];
    let ec2 = cx.ec2(None).await?;
    let catalog = cx.catalog().await?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let stages_cx = engine::Services {
        workflow,
        region: cx.region().await?,
        ec2: &ec2,
        catalog,
        reporter: &Quiet,
        cancel: &cancel,
        attester: &cx.attester().await?,
    };
    let record = ops::image_from_instance(&stages_cx, step, instance_id, wait).await?;
    Ok(FromInstance { record, instance_id: instance_id.to_string(), catalog: catalog.uri(), waited: wait.is_some() })
}

impl Report for FromInstance {
    fn json(&self) -> Value {
        self.record.to_json()
    }

    fn text(&self) -> String {
        let mut text = format!(
            "{}: created {} from {} and recorded it in {}",
            self.record.step_id, self.record.ami_id, self.instance_id, self.catalog
        );
        if !self.waited {
            text.push_str("\nnot waiting: the AMI may still be pending, and its snapshots are not tagged");
        }
        text
    }
}

/// What `paw images delete` planned, and did unless it was a dry run (or the answer was no).
pub struct Deleted {
    ami_id: String,
    actions: Vec<Action>,
    outcome: Outcome,
}

#[derive(PartialEq)]
enum Outcome {
    Planned,
    NotConfirmed,
    Applied,
}

pub async fn delete(
    cx: &Context,
    step: &str,
    request: DeleteRequest,
    dry_run: bool,
    yes: bool,
) -> paw_core::Result<Deleted> {
    let record = find_record(cx, step).await?;
    let ec2 = cx.ec2(Some(&record.region)).await?;
    let catalog = cx.catalog().await?;
    let records = std::slice::from_ref(&record);
    let inventory = change::delete::Inventory::gather(catalog, &ec2, &record.region, records, None).await?;
    let plan = change::delete::decide(&inventory, &request);
    plan.check()?;
    if plan.actions.is_empty() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{} of step \"{step}\" is already deregistered, in every place", record.ami_id),
        ));
    }
    let deleted = |actions, outcome| Deleted { ami_id: record.ami_id.clone(), actions, outcome };
    if dry_run {
        return Ok(deleted(plan.actions, Outcome::Planned));
    }
    let places = plan.actions.iter().filter(|action| matches!(action, Action::Deregister { .. })).count();
    let what = format!(
        "deregister {} ({}) in {places} place{}{}",
        record.ami_id,
        record.ami_name,
        if places == 1 { "" } else { "s" },
        if request.delete_snapshots { " and delete its snapshots" } else { "" }
    );
    if !yes {
        // The plan, where someone is there to read it before answering.
        if std::io::stdin().is_terminal() {
            eprintln!("{}", plan_table(&plan.actions));
        }
        if !confirm(&what)? {
            return Ok(deleted(plan.actions, Outcome::NotConfirmed));
        }
    }
    let by = cx.caller().await?;
    let executor = Executor::new(catalog, &ec2, &record.region, &by).notifying(cx.notifier().await?);
    let done = executor.apply(&plan).await?;
    Ok(deleted(done, Outcome::Applied))
}

impl Report for Deleted {
    fn json(&self) -> Value {
        let actions = serde_json::to_value(&self.actions).expect("actions serialise");
        match self.outcome {
            Outcome::NotConfirmed => json!({"status": "unchanged", "actions": actions}),
            Outcome::Planned => json!({"ami_id": self.ami_id, "dry_run": true, "actions": actions}),
            Outcome::Applied => json!({
                "ami_id": self.ami_id,
                "deleted_snapshots": change::delete::deleted_snapshots(&self.actions),
                "status": "deregistered",
                "actions": actions,
            }),
        }
    }

    fn text(&self) -> String {
        let table = plan_table(&self.actions);
        match self.outcome {
            Outcome::NotConfirmed => "nothing done".into(),
            Outcome::Planned => format!("{table}\ndry run: nothing was changed"),
            Outcome::Applied => {
                format!("{table}\nderegistered {}{}", self.ami_id, change::delete::snapshots_said(&self.actions))
            }
        }
    }
}

/// A y/N question on the terminal; without a terminal there is nobody to ask, so paw refuses.
pub(super) fn confirm(what: &str) -> paw_core::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("refusing to {what} without confirmation: there is no terminal to ask on"),
        )
        .help("pass --yes to confirm"));
    }
    let failed = |err: std::io::Error| Error::new(ErrorKind::Io, format!("cannot ask on the terminal: {err}"));
    eprint!("{what}? [y/N] ");
    std::io::stderr().flush().map_err(failed)?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(failed)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

pub struct BaseAmis(Vec<Image>);

pub async fn find_base_ami(cx: &Context, name: String, owner: String, arch: Arch) -> paw_core::Result<BaseAmis> {
    let query = BaseAmiQuery { name_pattern: name, owners: vec![owner], architecture: Some(arch.as_str().into()) };
    Ok(BaseAmis(cx.ec2(None).await?.find_base_amis(&query).await?))
}

impl Report for BaseAmis {
    fn json(&self) -> Value {
        json!(self
            .0
            .iter()
            .map(|image| json!({"id": image.id, "name": image.name, "creation_date": image.creation_date, "deprecation_time": image.deprecation_time}))
            .collect::<Vec<_>>())
    }

    fn text(&self) -> String {
        let rows = self
            .0
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
        table(&["ID", "NAME", "CREATED", "DEPRECATED"], rows)
    }
}
