//! EC2 on the AWS SDK for Rust: paw-core's `Ec2` trait.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use crate::accounts::SharedReach;
use crate::aws_error;
use aws_sdk_ec2::types::{
    Filter, ImageAttributeName, ImageReferenceOptionName, ImageReferenceResourceType, ImageUsageResourceTypeRequest,
    LaunchPermission, LaunchPermissionModifications, OperationType, ResourceType, ResourceTypeOption,
    ResourceTypeRequest, SnapshotAttributeName, Tag, TagSpecification,
};
use paw_core::ec2::{
    AccountUse, BaseAmiQuery, Ec2, Image, ImageReference, ImageState, ImageUser, InstanceState, LaunchPermissions,
    ReportState, TemplateVersion,
};
use paw_core::{Error, ErrorKind, Result};
use serde_json::{Value, json};

/// How long an instance may take to terminate, and its security group to come free.
const TERMINATE_WAIT: Duration = Duration::from_secs(600);

pub struct AwsEc2 {
    client: Client,
    /// The build account's configuration, and the way into other accounts (distribution).
    home: aws_config::SdkConfig,
    reach: SharedReach,
}

impl AwsEc2 {
    pub fn new(config: &aws_config::SdkConfig) -> AwsEc2 {
        AwsEc2::reaching(config, SharedReach::default())
    }

    /// EC2 with `config`, which reaches other accounts through `reach`.
    pub fn reaching(config: &aws_config::SdkConfig, reach: SharedReach) -> AwsEc2 {
        AwsEc2 { client: Client::new(config), home: config.clone(), reach }
    }
}

fn is_not_found<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code().is_some_and(|code| code.ends_with(".NotFound") || code.ends_with(".Malformed"))
}

/// Gone: no such resource, or (an AMI just deregistered) no longer usable.
fn is_gone<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code().is_some_and(|code| code.ends_with(".NotFound") || code == "InvalidAMIID.Unavailable")
}

fn image_from_sdk(image: &aws_sdk_ec2::types::Image) -> Image {
    let tags: Vec<(String, String)> = image
        .tags()
        .iter()
        .map(|tag| (tag.key().unwrap_or_default().to_string(), tag.value().unwrap_or_default().to_string()))
        .collect();
    let snapshot_ids: Vec<String> = image
        .block_device_mappings()
        .iter()
        .filter_map(|mapping| mapping.ebs()?.snapshot_id().map(str::to_string))
        .collect();
    let mappings: Vec<Value> = image
        .block_device_mappings()
        .iter()
        .map(|mapping| {
            json!({
                "DeviceName": mapping.device_name(),
                "Ebs": mapping.ebs().map(|ebs| json!({
                    "SnapshotId": ebs.snapshot_id(),
                    "VolumeSize": ebs.volume_size(),
                    "VolumeType": ebs.volume_type().map(|kind| kind.as_str()),
                    "DeleteOnTermination": ebs.delete_on_termination(),
                })),
            })
        })
        .collect();
    let data = json!({
        "ImageId": image.image_id(),
        "Name": image.name(),
        "Description": image.description(),
        "State": image.state().map(|state| state.as_str()),
        "CreationDate": image.creation_date(),
        "DeprecationTime": image.deprecation_time(),
        "LastLaunchedTime": image.last_launched_time(),
        "OwnerId": image.owner_id(),
        "Public": image.public(),
        "Architecture": image.architecture().map(|arch| arch.as_str()),
        "ImageType": image.image_type().map(|kind| kind.as_str()),
        "RootDeviceType": image.root_device_type().map(|kind| kind.as_str()),
        "RootDeviceName": image.root_device_name(),
        "VirtualizationType": image.virtualization_type().map(|kind| kind.as_str()),
        "Hypervisor": image.hypervisor().map(|kind| kind.as_str()),
        "BlockDeviceMappings": mappings,
        "Tags": tags.iter().map(|(key, value)| json!({"Key": key, "Value": value})).collect::<Vec<_>>(),
    });
    Image {
        id: image.image_id().unwrap_or_default().to_string(),
        name: image.name().unwrap_or_default().to_string(),
        state: ImageState::from(image.state().map_or("", |state| state.as_str())),
        creation_date: image.creation_date().unwrap_or_default().to_string(),
        deprecation_time: image.deprecation_time().map(str::to_string),
        last_launched_time: image.last_launched_time().map(str::to_string),
        // "enabled", "enabled-with-cooldown", or "disabled-until <time>" / "disabled".
        deregistration_protected: image.deregistration_protection().is_some_and(|state| state.starts_with("enabled")),
        snapshot_ids,
        tags,
        data,
    }
}

/// A new request's ClientToken: the SDK's retries of it repeat it, so a retry whose first answer
/// was lost makes nothing a second time.
fn client_token() -> String {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("paw-{}-{}", std::process::id(), since_epoch.as_nanos())
}

/// The instance states in which an instance uses its image: all but terminated.
const USING_STATES: [&str; 5] = ["pending", "running", "shutting-down", "stopping", "stopped"];

/// The resource id at the end of an ARN (`…:instance/i-1` → `i-1`; an SSM parameter's ARN holds
/// its name without the leading slash, which the name has when it is a path).
fn arn_resource(arn: &str, prefix: &str) -> Option<String> {
    let (_, resource) = arn.split_once(&format!(":{prefix}/"))?;
    Some(resource.to_string())
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn sdk_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter().map(|(key, value)| Tag::builder().key(key).value(value).build()).collect()
}

#[async_trait]
impl Ec2 for AwsEc2 {
    fn in_region(&self, region: &str) -> Box<dyn Ec2> {
        let config =
            self.client.config().to_builder().region(aws_sdk_ec2::config::Region::new(region.to_string())).build();
        Box::new(AwsEc2 { client: Client::from_conf(config), home: self.home.clone(), reach: self.reach.clone() })
    }

    fn in_account(&self, account: &str, region: &str) -> Box<dyn Ec2> {
        let config = self.reach.config(&self.home, account, region);
        Box::new(AwsEc2 { client: Client::new(&config), home: self.home.clone(), reach: self.reach.clone() })
    }

    async fn region_names(&self) -> Result<Vec<String>> {
        let output = self
            .client
            .describe_regions()
            .all_regions(true)
            .send()
            .await
            .map_err(|err| aws_error("ec2:DescribeRegions", err))?;
        Ok(output.regions().iter().filter_map(|region| region.region_name().map(str::to_string)).collect())
    }

    /// With a client token, one per call: a retry whose first answer was lost gets the copy the
    /// first attempt made, not a second one.
    async fn copy_image(
        &self,
        source_region: &str,
        source_image_id: &str,
        name: &str,
        kms_key_id: Option<&str>,
    ) -> Result<String> {
        let token = client_token();
        // A key of this region (and account): a copy made without one is encrypted, if at all,
        // with the default aws/ebs key, which cannot be shared with another account.
        let encryption =
            |request: aws_sdk_ec2::operation::copy_image::builders::CopyImageFluentBuilder| match kms_key_id {
                Some(key) => request.encrypted(true).kms_key_id(key),
                None => request,
            };
        let output = encryption(self.client.copy_image())
            .source_region(source_region)
            .source_image_id(source_image_id)
            .name(name)
            .client_token(token)
            .send()
            .await
            .map_err(|err| aws_error("ec2:CopyImage", err))?;
        output
            .image_id()
            .map(str::to_string)
            .ok_or_else(|| Error::new(ErrorKind::Aws, "ec2:CopyImage returned no image id"))
    }

    async fn set_launch_permission(
        &self,
        image_id: &str,
        accounts: &[String],
        organization_arns: &[String],
        remove: bool,
    ) -> Result<()> {
        let permissions: Vec<LaunchPermission> = accounts
            .iter()
            .map(|account| LaunchPermission::builder().user_id(account).build())
            .chain(organization_arns.iter().map(|arn| LaunchPermission::builder().organization_arn(arn).build()))
            .collect();
        let modification = if remove {
            LaunchPermissionModifications::builder().set_remove(Some(permissions)).build()
        } else {
            LaunchPermissionModifications::builder().set_add(Some(permissions)).build()
        };
        self.client
            .modify_image_attribute()
            .image_id(image_id)
            .launch_permission(modification)
            .send()
            .await
            .map_err(|err| aws_error("ec2:ModifyImageAttribute", err))?;
        Ok(())
    }

    async fn set_create_volume_permission(&self, snapshot_id: &str, accounts: &[String], remove: bool) -> Result<()> {
        let operation = if remove { OperationType::Remove } else { OperationType::Add };
        self.client
            .modify_snapshot_attribute()
            .snapshot_id(snapshot_id)
            .attribute(SnapshotAttributeName::CreateVolumePermission)
            .operation_type(operation)
            .set_user_ids(Some(accounts.to_vec()))
            .send()
            .await
            .map_err(|err| aws_error("ec2:ModifySnapshotAttribute", err))?;
        Ok(())
    }

    async fn launch_permissions(&self, image_id: &str) -> Result<LaunchPermissions> {
        let request = self.client.describe_image_attribute().image_id(image_id);
        let output = match request.attribute(ImageAttributeName::LaunchPermission).send().await {
            Ok(output) => output,
            // An image that is gone: nobody may launch it.
            Err(err) if is_gone(&err) => return Ok(LaunchPermissions::default()),
            Err(err) => return Err(aws_error("ec2:DescribeImageAttribute", err)),
        };
        let mut permissions = LaunchPermissions::default();
        for permission in output.launch_permissions() {
            if let Some(account) = permission.user_id() {
                permissions.accounts.push(account.to_string());
            }
            if let Some(arn) = permission.organization_arn() {
                permissions.organization_arns.push(arn.to_string());
            }
        }
        Ok(permissions)
    }

    async fn describe_image(&self, image_id: &str) -> Result<Option<Image>> {
        // A revoked (disabled) AMI is still paw's to describe.
        match self.client.describe_images().image_ids(image_id).include_disabled(true).send().await {
            Ok(output) => Ok(output.images().first().map(image_from_sdk)),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(aws_error("ec2:DescribeImages", err)),
        }
    }

    async fn describe_images(&self, image_ids: &[String]) -> Result<Vec<Image>> {
        let mut images = Vec::new();
        // One request per 100 ids; an id EC2 does not know fails its whole request, so those
        // requests are asked again id by id.
        for ids in image_ids.chunks(100) {
            let request = self.client.describe_images().set_image_ids(Some(ids.to_vec())).include_disabled(true);
            match request.send().await {
                Ok(output) => images.extend(output.images().iter().map(image_from_sdk)),
                Err(err) if is_not_found(&err) => {
                    for id in ids {
                        images.extend(self.describe_image(id).await?);
                    }
                }
                Err(err) => return Err(aws_error("ec2:DescribeImages", err)),
            }
        }
        Ok(images)
    }

    async fn deprecate_image(&self, image_id: &str, at: &str) -> Result<()> {
        let at = aws_sdk_ec2::primitives::DateTime::from_str(at, aws_sdk_ec2::primitives::DateTimeFormat::DateTime)
            .map_err(|err| Error::new(ErrorKind::Internal, format!("\"{at}\" is not a time: {err}")))?;
        self.client
            .enable_image_deprecation()
            .image_id(image_id)
            .deprecate_at(at)
            .send()
            .await
            .map_err(|err| aws_error("ec2:EnableImageDeprecation", err))?;
        Ok(())
    }

    async fn set_deregistration_protection(&self, image_id: &str, on: bool) -> Result<()> {
        if on {
            match self.client.enable_image_deregistration_protection().image_id(image_id).send().await {
                Ok(_) => Ok(()),
                Err(err) if is_gone(&err) => Ok(()),
                Err(err) => Err(aws_error("ec2:EnableImageDeregistrationProtection", err)),
            }
        } else {
            match self.client.disable_image_deregistration_protection().image_id(image_id).send().await {
                Ok(_) => Ok(()),
                Err(err) if is_gone(&err) => Ok(()),
                Err(err) => Err(aws_error("ec2:DisableImageDeregistrationProtection", err)),
            }
        }
    }

    async fn images_named(&self, name: &str) -> Result<Vec<Image>> {
        let output = self
            .client
            .describe_images()
            .owners("self")
            .filters(filter("name", name))
            .send()
            .await
            .map_err(|err| aws_error("ec2:DescribeImages", err))?;
        Ok(output.images().iter().filter(|image| image.name() == Some(name)).map(image_from_sdk).collect())
    }

    async fn find_base_amis(&self, query: &BaseAmiQuery) -> Result<Vec<Image>> {
        let mut request = self
            .client
            .describe_images()
            .set_owners(Some(query.owners.clone()))
            .filters(filter("name", &query.name_pattern));
        if let Some(architecture) = &query.architecture {
            request = request.filters(filter("architecture", architecture));
        }
        let mut pages = request
            .filters(filter("state", "available"))
            .filters(filter("root-device-type", "ebs"))
            .filters(filter("virtualization-type", "hvm"))
            .into_paginator()
            .send();
        let mut images = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| aws_error("ec2:DescribeImages", err))?;
            images.extend(page.images().iter().map(image_from_sdk));
        }
        // ISO 8601 dates sort as text.
        images.sort_by(|a, b| b.creation_date.cmp(&a.creation_date));
        Ok(images)
    }

    async fn create_tags(&self, resource_ids: &[String], tags: &[(String, String)]) -> Result<()> {
        self.client
            .create_tags()
            .set_resources(Some(resource_ids.to_vec()))
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(|err| aws_error("ec2:CreateTags", err))?;
        Ok(())
    }

    async fn delete_tags(&self, resource_ids: &[String], keys: &[&str]) -> Result<()> {
        let tags = keys.iter().map(|key| Tag::builder().key(*key).build()).collect();
        self.client
            .delete_tags()
            .set_resources(Some(resource_ids.to_vec()))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|err| aws_error("ec2:DeleteTags", err))?;
        Ok(())
    }

    async fn disable_image(&self, image_id: &str) -> Result<()> {
        self.client
            .disable_image()
            .image_id(image_id)
            .send()
            .await
            .map_err(|err| aws_error("ec2:DisableImage", err))?;
        Ok(())
    }

    async fn enable_image(&self, image_id: &str) -> Result<()> {
        self.client.enable_image().image_id(image_id).send().await.map_err(|err| aws_error("ec2:EnableImage", err))?;
        Ok(())
    }

    /// Idempotent: an AMI or snapshot already gone (a retry after an answer was lost, another
    /// paw's cleanup) counts as done, and the snapshots are still deleted.
    async fn deregister_image(&self, image_id: &str, snapshot_ids: &[String]) -> Result<()> {
        match self.client.deregister_image().image_id(image_id).send().await {
            Ok(_) => {}
            Err(err) if is_gone(&err) => {}
            Err(err) => return Err(aws_error("ec2:DeregisterImage", err)),
        }
        for snapshot in snapshot_ids {
            match self.client.delete_snapshot().snapshot_id(snapshot).send().await {
                Ok(_) => {}
                Err(err) if is_gone(&err) => {}
                Err(err) => return Err(aws_error("ec2:DeleteSnapshot", err)),
            }
        }
        Ok(())
    }

    async fn instance_state(&self, instance_id: &str) -> Result<Option<InstanceState>> {
        match self.client.describe_instances().instance_ids(instance_id).send().await {
            Ok(output) => Ok(output
                .reservations()
                .iter()
                .flat_map(|reservation| reservation.instances())
                .find_map(|instance| instance.state()?.name().map(|name| InstanceState::from(name.as_str())))),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(aws_error("ec2:DescribeInstances", err)),
        }
    }

    async fn terminate_instance(&self, instance_id: &str) -> Result<bool> {
        match self.instance_state(instance_id).await? {
            None | Some(InstanceState::Terminated) => return Ok(false),
            Some(InstanceState::ShuttingDown) => {}
            Some(_) => {
                self.client
                    .terminate_instances()
                    .instance_ids(instance_id)
                    .send()
                    .await
                    .map_err(|err| aws_error("ec2:TerminateInstances", err))?;
            }
        }
        self.client.wait_until_instance_terminated().instance_ids(instance_id).wait(TERMINATE_WAIT).await.map_err(
            |err| Error::new(ErrorKind::Aws, format!("{instance_id} is being terminated but is not gone yet: {err}")),
        )?;
        Ok(true)
    }

    async fn delete_key_pair(&self, name: &str) -> Result<bool> {
        match self.client.describe_key_pairs().key_names(name).send().await {
            Ok(output) if !output.key_pairs().is_empty() => {}
            Ok(_) => return Ok(false),
            Err(err) if is_not_found(&err) => return Ok(false),
            Err(err) => return Err(aws_error("ec2:DescribeKeyPairs", err)),
        }
        match self.client.delete_key_pair().key_name(name).send().await {
            // Gone meanwhile: a retry after the answer was lost.
            Ok(_) => Ok(true),
            Err(err) if is_gone(&err) => Ok(true),
            Err(err) => Err(aws_error("ec2:DeleteKeyPair", err)),
        }
    }

    async fn delete_security_group(&self, name: &str) -> Result<bool> {
        let output = self
            .client
            .describe_security_groups()
            .filters(filter("group-name", name))
            .send()
            .await
            .map_err(|err| aws_error("ec2:DescribeSecurityGroups", err))?;
        let Some(group_id) = output.security_groups().iter().find_map(|group| group.group_id()) else {
            return Ok(false);
        };
        // A group stays in use for a while after its instance is terminated.
        let deadline = std::time::Instant::now() + TERMINATE_WAIT;
        loop {
            match self.client.delete_security_group().group_id(group_id).send().await {
                Ok(_) => return Ok(true),
                Err(err) if is_gone(&err) => return Ok(true),
                Err(err) if err.code() == Some("DependencyViolation") && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Err(err) => return Err(aws_error("ec2:DeleteSecurityGroup", err)),
            }
        }
    }

    /// The caller checked that the name was free: an AMI of that name made from this instance,
    /// found by a retry (`InvalidAMIName.Duplicate`), is this call's own, whose answer was lost.
    async fn create_image(&self, instance_id: &str, name: &str, tags: &[(String, String)]) -> Result<String> {
        let result = self
            .client
            .create_image()
            .instance_id(instance_id)
            .name(name)
            .tag_specifications(
                TagSpecification::builder().resource_type(ResourceType::Image).set_tags(Some(sdk_tags(tags))).build(),
            )
            .send()
            .await;
        match result {
            Ok(output) => output
                .image_id()
                .map(str::to_string)
                .ok_or_else(|| Error::new(ErrorKind::Aws, "ec2:CreateImage returned no image id")),
            Err(err) if err.code() == Some("InvalidAMIName.Duplicate") => {
                let output = self
                    .client
                    .describe_images()
                    .owners("self")
                    .filters(filter("name", name))
                    .filters(filter("source-instance-id", instance_id))
                    .send()
                    .await
                    .map_err(|err| aws_error("ec2:DescribeImages", err))?;
                match output.images() {
                    [image] => Ok(image.image_id().unwrap_or_default().to_string()),
                    _ => Err(aws_error("ec2:CreateImage", err)),
                }
            }
            Err(err) => Err(aws_error("ec2:CreateImage", err)),
        }
    }

    async fn wait_until_available(&self, image_id: &str, timeout: Duration) -> Result<Image> {
        self.client.wait_until_image_available().image_ids(image_id).wait(timeout).await.map_err(|err| {
            Error::new(ErrorKind::Aws, format!("{image_id} did not become available within {}s: {err}", timeout.as_secs()))
                .help("it may still become available: check later with `aws ec2 describe-images`, or wait longer with --timeout")
        })?;
        self.describe_image(image_id)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::Aws, format!("{image_id} is available but cannot be described")))
    }

    async fn image_references(&self, image_ids: &[String]) -> Result<Vec<ImageReference>> {
        let instances = ResourceTypeRequest::builder()
            .resource_type(ImageReferenceResourceType::Ec2Instance)
            .resource_type_options(
                ResourceTypeOption::builder()
                    .option_name(ImageReferenceOptionName::StateName)
                    .set_option_values(Some(USING_STATES.iter().map(ToString::to_string).collect()))
                    .build(),
            )
            .build();
        let mut found: Vec<(String, String, String)> = Vec::new();
        // DescribeImageReferences takes at most 10 image ids a request. An id EC2 does not know
        // (an image gone) fails its whole request: those are asked again id by id, and a gone
        // image has no users.
        let mut batches: Vec<Vec<String>> = image_ids.chunks(10).map(<[String]>::to_vec).collect();
        while let Some(ids) = batches.pop() {
            let mut pages = self
                .client
                .describe_image_references()
                .set_image_ids(Some(ids.clone()))
                .include_all_resource_types(true)
                .resource_types(instances.clone())
                .into_paginator()
                .send();
            let mut read = Vec::new();
            while let Some(page) = pages.next().await {
                let page = match page {
                    Ok(page) => page,
                    Err(err) if is_not_found(&err) && ids.len() > 1 => {
                        batches.extend(ids.iter().map(|id| vec![id.clone()]));
                        read.clear();
                        break;
                    }
                    Err(err) if is_not_found(&err) => break,
                    Err(err) => return Err(aws_error("ec2:DescribeImageReferences", err)),
                };
                for reference in page.image_references() {
                    let kind = reference.resource_type().map_or("", |kind| kind.as_str()).to_string();
                    let image_id = reference.image_id().unwrap_or_default().to_string();
                    read.push((image_id, kind, reference.arn().unwrap_or_default().to_string()));
                }
            }
            found.extend(read);
        }
        let instance_ids: Vec<String> = found
            .iter()
            .filter(|(_, kind, _)| kind == "ec2:Instance")
            .filter_map(|(_, _, arn)| arn_resource(arn, "instance"))
            .collect();
        let states = self.instance_states(&instance_ids).await?;
        let mut references = Vec::new();
        for (image_id, kind, arn) in found {
            let resource = |prefix: &str| arn_resource(&arn, prefix);
            let user = match (kind.as_str(), resource("instance"), resource("launch-template"), resource("parameter")) {
                ("ec2:Instance", Some(id), ..) => {
                    let state = states.iter().find(|(known, _)| *known == id).map(|(_, state)| state.clone());
                    ImageUser::Instance { id, state: state.unwrap_or_else(|| "unknown".into()) }
                }
                ("ec2:LaunchTemplate", _, Some(id), _) => {
                    let versions = self.template_versions_naming(&id, &image_id).await?;
                    ImageUser::LaunchTemplate { id, versions }
                }
                ("ssm:Parameter", .., Some(name)) => {
                    let name = if name.contains('/') { format!("/{name}") } else { name };
                    ImageUser::SsmParameter { name, channel: None }
                }
                ("imagebuilder:ImageRecipe" | "imagebuilder:ContainerRecipe", ..) => ImageUser::ImageRecipe { arn },
                _ => ImageUser::Other { resource_type: kind, arn },
            };
            references.push(ImageReference { image_id, user });
        }
        Ok(references)
    }

    async fn create_usage_report(&self, image_id: &str, accounts: &[String]) -> Result<String> {
        let kind = |name: &str| ImageUsageResourceTypeRequest::builder().resource_type(name).build();
        let token = client_token();
        let output = self
            .client
            .create_image_usage_report()
            .image_id(image_id)
            .client_token(token)
            .resource_types(kind("ec2:Instance"))
            .resource_types(kind("ec2:LaunchTemplate"))
            .set_account_ids((!accounts.is_empty()).then(|| accounts.to_vec()))
            .send()
            .await
            .map_err(|err| aws_error("ec2:CreateImageUsageReport", err))?;
        output
            .report_id()
            .map(str::to_string)
            .ok_or_else(|| Error::new(ErrorKind::Aws, "ec2:CreateImageUsageReport returned no report id"))
    }

    async fn usage_report_state(&self, report_id: &str) -> Result<ReportState> {
        let output = self
            .client
            .describe_image_usage_reports()
            .report_ids(report_id)
            .send()
            .await
            .map_err(|err| aws_error("ec2:DescribeImageUsageReports", err))?;
        let Some(report) = output.image_usage_reports().first() else {
            return Ok(ReportState::Failed(format!("EC2 no longer knows the usage report {report_id}")));
        };
        Ok(match report.state() {
            Some("available") => ReportState::Available,
            Some("pending") | None => ReportState::Pending,
            Some(other) => ReportState::Failed(report.state_reason().unwrap_or(other).to_string()),
        })
    }

    async fn usage_report_entries(&self, report_id: &str) -> Result<Vec<AccountUse>> {
        let mut pages = self.client.describe_image_usage_report_entries().report_ids(report_id).into_paginator().send();
        let mut entries = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| aws_error("ec2:DescribeImageUsageReportEntries", err))?;
            entries.extend(page.image_usage_report_entries().iter().map(|entry| AccountUse {
                account: entry.account_id().unwrap_or_default().to_string(),
                resource_type: entry.resource_type().unwrap_or_default().to_string(),
                count: entry.usage_count().unwrap_or_default(),
            }));
        }
        Ok(entries)
    }

    async fn delete_usage_report(&self, report_id: &str) -> Result<()> {
        match self.client.delete_image_usage_report().report_id(report_id).send().await {
            Ok(_) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(aws_error("ec2:DeleteImageUsageReport", err)),
        }
    }
}

impl AwsEc2 {
    /// Each instance's state, 100 ids a request; a request that names an instance gone meanwhile
    /// is left out (its instances' states read `unknown`: the state only describes a user).
    async fn instance_states(&self, instance_ids: &[String]) -> Result<Vec<(String, String)>> {
        let mut states = Vec::new();
        for ids in instance_ids.chunks(100) {
            let output = match self.client.describe_instances().set_instance_ids(Some(ids.to_vec())).send().await {
                Ok(output) => output,
                Err(err) if is_not_found(&err) => continue,
                Err(err) => return Err(aws_error("ec2:DescribeInstances", err)),
            };
            for instance in output.reservations().iter().flat_map(|reservation| reservation.instances()) {
                let state = instance.state().and_then(|state| state.name()).map_or("unknown", |name| name.as_str());
                states.push((instance.instance_id().unwrap_or_default().to_string(), state.to_string()));
            }
        }
        Ok(states)
    }

    /// The launch template's versions whose ImageId is the image, marked $Default and $Latest.
    async fn template_versions_naming(&self, template_id: &str, image_id: &str) -> Result<Vec<TemplateVersion>> {
        let mut pages =
            self.client.describe_launch_template_versions().launch_template_id(template_id).into_paginator().send();
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| aws_error("ec2:DescribeLaunchTemplateVersions", err))?;
            all.extend(page.launch_template_versions().iter().map(|version| {
                let named = version.launch_template_data().and_then(|data| data.image_id()) == Some(image_id);
                (version.version_number().unwrap_or_default(), version.default_version().unwrap_or(false), named)
            }));
        }
        let latest = all.iter().map(|(number, ..)| *number).max().unwrap_or_default();
        Ok(all
            .into_iter()
            .filter(|(_, _, named)| *named)
            .map(|(number, default, _)| TemplateVersion { number, default, latest: number == latest })
            .collect())
    }
}
