//! `paw images ...` and `paw base-ami find`: the catalog's records and the seed's AMI operations.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::Duration;

use paw_core::catalog::{ImageRecord, ImageStatus};
use paw_core::ec2::{BaseAmiQuery, Ec2 as _, Image};
use paw_core::{Error, ErrorKind, engine, ops};
use serde_json::{Value, json};

use crate::cli::Arch;
use crate::context::Context;
use crate::output::{Report, table};

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

pub struct Shown(ImageRecord);

pub async fn show(cx: &Context, step: &str) -> paw_core::Result<Shown> {
    Ok(Shown(find_record(cx, step).await?))
}

impl Report for Shown {
    fn json(&self) -> Value {
        self.0.to_json()
    }

    fn text(&self) -> String {
        let rows = self
            .0
            .to_json()
            .as_object()
            .expect("a record is an object")
            .iter()
            .map(|(key, value)| vec![key.clone(), value.as_str().map_or_else(|| value.to_string(), str::to_string)])
            .collect();
        table(&["FIELD", "VALUE"], rows)
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
    let workflow = cx.workflow()?;
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

pub enum Deleted {
    NothingDone,
    Deregistered { ami_id: String, snapshots: Vec<String> },
}

pub async fn delete(cx: &Context, step: &str, delete_snapshots: bool, yes: bool) -> paw_core::Result<Deleted> {
    let record = find_record(cx, step).await?;
    if record.status == ImageStatus::Deregistered {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{} of step \"{step}\" is already deregistered", record.ami_id),
        ));
    }
    let what = format!(
        "deregister {} ({}){}",
        record.ami_id,
        record.ami_name,
        if delete_snapshots { " and delete its snapshots" } else { "" }
    );
    if !yes && !confirm(&what)? {
        return Ok(Deleted::NothingDone);
    }
    let ec2 = cx.ec2(Some(&record.region)).await?;
    let snapshots = ops::delete_image(&ec2, cx.catalog().await?, &record, delete_snapshots).await?;
    Ok(Deleted::Deregistered { ami_id: record.ami_id, snapshots })
}

impl Report for Deleted {
    fn json(&self) -> Value {
        match self {
            Deleted::NothingDone => json!({"status": "unchanged"}),
            Deleted::Deregistered { ami_id, snapshots } => {
                json!({"ami_id": ami_id, "deleted_snapshots": snapshots, "status": "deregistered"})
            }
        }
    }

    fn text(&self) -> String {
        match self {
            Deleted::NothingDone => "nothing done".into(),
            Deleted::Deregistered { ami_id, snapshots } => format!(
                "deregistered {ami_id}; deleted snapshots: {}",
                if snapshots.is_empty() { "none".to_string() } else { snapshots.join(", ") }
            ),
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
