//! `paw doctor`: is this machine ready to build this workflow? One line a check, in the order a
//! build needs them; a check that needs an earlier one that failed is not run.

use paw_aws::doctor;
use paw_core::ami::{AmiRef, PLACEHOLDER_AMI_ID};
use paw_core::change::distribute;
use paw_core::ec2::{Ec2 as _, ImageState, Place};
use paw_core::packer::PackerBinary;
use paw_core::source::root_source;
use paw_core::{Error, ErrorKind, render};
use serde_json::{Value, json};

use crate::context::Context;
use crate::output::{Report, plural};

pub struct Check {
    name: String,
    result: Result<String, Problem>,
    /// More for `--json`: a distribution check's account, region and what paw does there.
    more: Option<Value>,
}

/// A failed check: what is wrong (where, when there is a place) and, when known, the fix.
pub struct Problem {
    what: String,
    fix: Option<String>,
}

impl From<Error> for Problem {
    fn from(err: Error) -> Problem {
        let place = err.location.as_ref().map(|location| format!("{location}: ")).unwrap_or_default();
        Problem { what: format!("{place}{}", err.message), fix: err.help }
    }
}

pub struct Doctor(Vec<Check>);

impl Doctor {
    fn check(&mut self, name: impl Into<String>, result: paw_core::Result<String>) -> bool {
        let ok = result.is_ok();
        self.0.push(Check { name: name.into(), result: result.map_err(Problem::from), more: None });
        ok
    }
}

pub async fn doctor(cx: &Context) -> paw_core::Result<Doctor> {
    let mut doctor = Doctor(Vec::new());
    // Variants share their steps, region and catalog: the first stands for them here.
    let workflows = cx.workflows();
    doctor.check(
        "workflow folder",
        workflows.as_ref().map_err(Clone::clone).map(|workflows| {
            let w = &workflows[0];
            let variants = if workflows.len() > 1 {
                format!(", {}", plural(workflows.len(), "variant", "variants"))
            } else {
                String::new()
            };
            format!("{} ({}{variants}), name {}", w.root.display(), plural(w.steps().len(), "step", "steps"), w.name)
        }),
    );
    let Ok([workflow, ..]) = workflows else { return Ok(doctor) };
    let region = cx.region().await;
    // Rendering needs a region name for the templates, not AWS: the placeholder AMI stands in for
    // parents, and for a root base AMI that follows its source (read from AWS below).
    let mut offline = workflow.clone();
    if offline.param.followed_base.is_some() {
        offline.param.follow(PLACEHOLDER_AMI_ID.into(), "paw-placeholder/root-base-ami-read-at-each-run".into());
    }
    let workflow = &offline;
    let mut requires_plugins = false;
    let rendered = workflow.steps().iter().filter(|step| !step.manual).try_fold(0, |count, step| {
        let source = match &step.parent {
            None => root_source(workflow),
            Some(parent) => AmiRef::placeholder(parent),
        };
        let files = render::render_step(workflow, step, &source, region.as_deref().unwrap_or("us-east-1"))?;
        requires_plugins |=
            render::check_hcl(&files, &paw_core::ami::output_ami_name(workflow, step))?.requires_plugins;
        Ok::<_, Error>(count + 1)
    });
    doctor.check("templates render", rendered.map(|count| format!("{}, HCL ok", plural(count, "step", "steps"))));
    let packer = match PackerBinary::locate() {
        None => Err(Error::new(ErrorKind::Usage, "no packer on PATH or in PAW_PACKER")),
        Some(packer) => match packer.version().await {
            Ok(version) if requires_plugins && version < (1, 7, 0) => Err(Error::new(
                ErrorKind::Usage,
                format!("{} is too old for the templates' required_plugins (1.7 or newer)", packer.path.display()),
            )),
            Ok((major, minor, patch)) => Ok(format!("{} ({major}.{minor}.{patch})", packer.path.display())),
            Err(err) => Err(err),
        },
    };
    doctor.check("packer", packer);
    let has_region = doctor.check("region", region.as_ref().map(|region| region.to_string()).map_err(Clone::clone));
    let config = if has_region { cx.sdk_config().await.map(Some) } else { Ok(None) };
    let config = match config {
        Ok(Some(config)) => {
            let source = doctor::credentials_source(Some(&workflow.param));
            let account = doctor::caller(config).await.map(|(account, _)| format!("{source}; account {account}"));
            doctor.check("credentials", account).then_some(config)
        }
        Ok(None) => None,
        Err(err) => {
            doctor.check("credentials", Err(err));
            None
        }
    };
    if config.is_some() {
        let ec2 = cx.ec2(None).await;
        let (root, image) = match (&workflow.param.followed_base, &ec2) {
            (_, Err(err)) => (None, Err(err.clone())),
            // Reading it checks that it is an available AMI.
            (Some(followed), Ok(_)) => match cx.workflows_with_upstream().await {
                Ok([read, ..]) => {
                    let param = &read.param;
                    let said = format!(
                        "{} ({}) is available: the root base AMI, from {}",
                        param.root_base_ami_id, param.root_base_ami_name, followed.source
                    );
                    (Some(param.root_base_ami_id.clone()), Ok(said))
                }
                Ok([]) => unreachable!("a workflow has been loaded"),
                Err(err) => (None, Err(err)),
            },
            (None, Ok(ec2)) => {
                let root = &workflow.param.root_base_ami_id;
                let image = ec2.describe_image(root).await.and_then(|image| match image {
                    Some(image) if image.state == ImageState::Available => {
                        Ok(format!("{root} ({}) is available", image.name))
                    }
                    _ => Err(Error::new(ErrorKind::Config, format!("the root base AMI {root} is not available"))
                        .help("set root_base_ami_id to an AMI of this region; `paw base-ami find` lists them")),
                });
                (Some(root.clone()), image)
            }
        };
        doctor.check("EC2", image);
        if let (Ok(ec2), Some(root)) = (&ec2, &root) {
            // Retiring an image asks who uses it first; without the answer, nothing is retired.
            let usage = ec2.image_references(std::slice::from_ref(root)).await.map(|_| {
                "ec2:DescribeImageReferences answers: delete, prune, revoke and the lifecycle see who uses an image"
                    .to_string()
            });
            let usage = usage.map_err(|err| Error {
                message: format!("{}: paw keeps every image it cannot tell unused", err.message),
                ..err
            });
            doctor.check("image usage", usage);
        }
    }
    let catalog = match cx.catalog_for_reading().await {
        Ok(catalog) => match (catalog.schema().await, catalog.list_workflow(&workflow.param.workflow_id).await) {
            (Ok(schema), Ok(records)) => Ok(format!(
                "{}, {schema} ({} of this workflow)",
                catalog.uri(),
                plural(records.len(), "record", "records")
            )),
            (Err(err), _) | (_, Err(err)) => Err(err),
        },
        Err(err) => Err(err),
    };
    doctor.check("catalog", catalog);
    if workflow.param.provenance.is_some() {
        // The key is read as a build reads it: a KMS key's public key says it may sign.
        let signer = async {
            let signer = cx.signer().await?.ok_or_else(|| Error::bug("a provenance block names a signer"))?;
            let key = signer.public_key().await?;
            let required = if workflow.param.require_provenance { "; required" } else { "" };
            Ok(format!("statements signed by {} ({}){required}", signer.key_id(), key.algorithm))
        };
        doctor.check("provenance", signer.await);
    }
    if let Some(config) = config {
        // Every place the distribution block acts in, with the credentials paw acts there with.
        let reach = cx.reach()?;
        for target in &workflow.param.distribution {
            let acts = |place: &Place| place.account.is_none() || target.acts_in_accounts();
            for place in distribute::places(target).into_iter().filter(acts) {
                let here = match &place.account {
                    Some(account) => reach.config(config, account, &place.region),
                    None => config.to_builder().region(aws_config::Region::new(place.region.clone())).build(),
                };
                let kms_key_id =
                    target.kms_key_id.as_deref().filter(|_| place.account.is_none() || target.copy_to_accounts);
                let checked = doctor::distribution_place(
                    &here,
                    place.account.as_deref(),
                    kms_key_id,
                    target.ssm_parameter.as_deref(),
                )
                .await;
                doctor.check(format!("distribution to {place}"), checked);
                let does = match (&place.account, target.copy_to_accounts) {
                    (None, _) => "copies the images into this region",
                    (Some(_), true) => "shares the images with the account, which copies them (its own)",
                    (Some(_), false) => "shares the build account's copy with the account",
                };
                let more = json!({"account": place.account, "region": place.region, "does": does,
                    "kms_key_id": kms_key_id, "ssm_parameter": target.ssm_parameter});
                doctor.0.last_mut().expect("a check was added").more = Some(more);
            }
        }
    }
    if let Some(config) = config {
        let param = workflow.param.json();
        let named = |key: &str| param.optional_string(key).ok().flatten();
        let default_vpc = named("is_default_vpc").as_deref() == Some("true");
        let vpc_name = named("vpc_name");
        if default_vpc || vpc_name.is_some() {
            let vpc = doctor::vpc(config, vpc_name.as_deref(), default_vpc).await;
            let vpc_id = vpc.as_ref().ok().cloned();
            doctor.check("VPC", vpc);
            if let Some(vpc_id) = vpc_id {
                if let Some(subnet) = named("subnet_name") {
                    doctor.check("subnet", doctor::subnet(config, &vpc_id, &subnet).await);
                }
                if let Some(group) = named("security_group_name") {
                    doctor.check("security group", doctor::security_group(config, &vpc_id, &group).await);
                }
            }
        }
        if let Some(profile) = named("ec2_iam_role_name") {
            doctor.check("instance profile", doctor::instance_profile(config, &profile).await);
        }
    }
    Ok(doctor)
}

impl Report for Doctor {
    fn json(&self) -> Value {
        json!(
            self.0
                .iter()
                .map(|check| {
                    let mut entry = match &check.result {
                        Ok(detail) => json!({"check": check.name, "ok": true, "detail": detail}),
                        Err(problem) => {
                            json!({"check": check.name, "ok": false, "detail": problem.what, "fix": problem.fix})
                        }
                    };
                    if let (Some(Value::Object(more)), Value::Object(fields)) = (&check.more, &mut entry) {
                        fields.extend(more.clone());
                    }
                    entry
                })
                .collect::<Vec<_>>()
        )
    }

    fn text(&self) -> String {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|check| match &check.result {
                Ok(detail) => format!("✓ {}: {detail}", check.name),
                Err(Problem { what, fix: Some(fix) }) => format!("✗ {}: {what}\n    fix: {fix}", check.name),
                Err(Problem { what, fix: None }) => format!("✗ {}: {what}", check.name),
            })
            .collect();
        lines.join("\n")
    }

    fn error(&self) -> Option<Error> {
        let failed: Vec<&str> =
            self.0.iter().filter(|check| check.result.is_err()).map(|check| check.name.as_str()).collect();
        (!failed.is_empty()).then(|| {
            Error::new(
                ErrorKind::Config,
                format!("{} of {} checks failed: {}", failed.len(), self.0.len(), failed.join(", ")),
            )
            .help("each ✗ line above says what is wrong")
        })
    }
}
