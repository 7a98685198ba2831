//! What `paw doctor` asks AWS: where the credentials come from and whose they are, and whether the
//! network and the instance profile that workflow_param.json names exist.

use aws_config::SdkConfig;
use aws_sdk_ec2::types::Filter;
use paw_core::config::WorkflowParam;
use paw_core::{Error, ErrorKind, Result};

use crate::aws_error;

/// Where the credentials come from, in the order the SDK looks (never the secret).
pub fn credentials_source(param: Option<&WorkflowParam>) -> String {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.is_empty());
    let profile = param.and_then(|param| param.profile_name.clone()).or_else(|| std::env::var("AWS_PROFILE").ok());
    match profile {
        _ if param.is_some_and(|param| param.credentials.is_some()) => "workflow_param.json (move them out)".into(),
        Some(profile) => format!("profile {profile}"),
        None if set("AWS_ACCESS_KEY_ID") => "the environment (AWS_ACCESS_KEY_ID)".into(),
        None if set("AWS_WEB_IDENTITY_TOKEN_FILE") => "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)".into(),
        None => "the default profile, or the instance's role".into(),
    }
}

/// Who the credentials are (they were loaded once already: `check_credentials`): their account,
/// and the caller's ARN.
pub async fn caller(config: &SdkConfig) -> Result<(String, String)> {
    let output = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|err| aws_error("sts:GetCallerIdentity", err))?;
    Ok((output.account().unwrap_or("?").to_string(), output.arn().unwrap_or("?").to_string()))
}

/// The VPC (the default one when `default_vpc`, else by its Name tag): its id.
pub async fn vpc(config: &SdkConfig, name: Option<&str>, default_vpc: bool) -> Result<String> {
    let filter = if default_vpc {
        Filter::builder().name("is-default").values("true").build()
    } else {
        let name = name.ok_or_else(|| {
            Error::new(ErrorKind::Config, "vpc_name is not set")
                .help("set vpc_name in workflow_param.json, or is_default_vpc to true")
        })?;
        Filter::builder().name("tag:Name").values(name).build()
    };
    let output = aws_sdk_ec2::Client::new(config)
        .describe_vpcs()
        .filters(filter)
        .send()
        .await
        .map_err(|err| aws_error("ec2:DescribeVpcs", err))?;
    let found = output.vpcs().first().and_then(|vpc| vpc.vpc_id()).map(str::to_string);
    found.ok_or_else(|| {
        let what = match name {
            Some(name) if !default_vpc => format!("no VPC named \"{name}\""),
            _ => "no default VPC".to_string(),
        };
        Error::new(ErrorKind::Config, what).help(
            "set vpc_name in workflow_param.json to the Name tag of a VPC of this region (`aws ec2 describe-vpcs`)",
        )
    })
}

/// The subnet named `name` (its Name tag) in the VPC: its id.
pub async fn subnet(config: &SdkConfig, vpc_id: &str, name: &str) -> Result<String> {
    let output = aws_sdk_ec2::Client::new(config)
        .describe_subnets()
        .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
        .filters(Filter::builder().name("tag:Name").values(name).build())
        .send()
        .await
        .map_err(|err| aws_error("ec2:DescribeSubnets", err))?;
    let found = output.subnets().first().and_then(|subnet| subnet.subnet_id()).map(str::to_string);
    found.ok_or_else(|| {
        Error::new(ErrorKind::Config, format!("no subnet named \"{name}\" in {vpc_id}")).help(format!(
            "set subnet_name in workflow_param.json to the Name tag of one of its subnets \
             (`aws ec2 describe-subnets --filters Name=vpc-id,Values={vpc_id}`)"
        ))
    })
}

/// The security group named `name` (its Name tag, else its group name) in the VPC: its id.
pub async fn security_group(config: &SdkConfig, vpc_id: &str, name: &str) -> Result<String> {
    let client = aws_sdk_ec2::Client::new(config);
    for by in ["tag:Name", "group-name"] {
        let output = client
            .describe_security_groups()
            .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
            .filters(Filter::builder().name(by).values(name).build())
            .send()
            .await
            .map_err(|err| aws_error("ec2:DescribeSecurityGroups", err))?;
        if let Some(id) = output.security_groups().first().and_then(|group| group.group_id()) {
            return Ok(id.to_string());
        }
    }
    Err(Error::new(ErrorKind::Config, format!("no security group named \"{name}\" in {vpc_id}")).help(format!(
        "set security_group_name in workflow_param.json to one of its groups \
         (`aws ec2 describe-security-groups --filters Name=vpc-id,Values={vpc_id}`)"
    )))
}

/// The instance profile named `name`: its ARN.
pub async fn instance_profile(config: &SdkConfig, name: &str) -> Result<String> {
    match aws_sdk_iam::Client::new(config).get_instance_profile().instance_profile_name(name).send().await {
        Ok(output) => Ok(output.instance_profile().map(|profile| profile.arn().to_string()).unwrap_or_default()),
        Err(err) if err.as_service_error().is_some_and(|err| err.is_no_such_entity_exception()) => Err(Error::new(
            ErrorKind::Config,
            format!("no instance profile named \"{name}\""),
        )
        .help(
            "set ec2_iam_role_name in workflow_param.json to an instance profile (`aws iam list-instance-profiles`)",
        )),
        Err(err) => Err(aws_error("iam:GetInstanceProfile", err)),
    }
}

/// What a distribution target needs in one place, checked with the credentials paw acts there
/// with (`config`): that they act in `account` (None: the build account), that the KMS key is
/// enabled for encryption, and that Parameter Store answers (whether the role may write the
/// parameter is known only when a channel is set: IAM has no dry run for it).
pub async fn distribution_place(
    config: &SdkConfig,
    account: Option<&str>,
    kms_key_id: Option<&str>,
    ssm_parameter: Option<&str>,
) -> Result<String> {
    let (acting_in, arn) = caller(config).await?;
    if let Some(account) = account.filter(|account| *account != acting_in) {
        return Err(Error::new(
            ErrorKind::Config,
            format!("the credentials act in account {acting_in}, not {account}"),
        )
        .help("the target's role_arn (or profile) must be one of that account"));
    }
    let mut said = vec![format!("as {arn}")];
    if let Some(key) = kms_key_id {
        let described = aws_sdk_kms::Client::new(config)
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|err| aws_error("kms:DescribeKey", err))?;
        let metadata = described
            .key_metadata()
            .ok_or_else(|| Error::new(ErrorKind::Aws, format!("kms:DescribeKey says nothing of {key}")))?;
        if !metadata.enabled() {
            return Err(Error::new(
                ErrorKind::Config,
                format!("the KMS key {key} ({}) is disabled", metadata.key_id()),
            )
            .help("enable it, or name another key in the target's kms_key_id"));
        }
        said.push(format!("key {key} ({}) enabled", metadata.key_id()));
    }
    if let Some(parameter) = ssm_parameter {
        aws_sdk_ssm::Client::new(config)
            .describe_parameters()
            .max_results(1)
            .send()
            .await
            .map_err(|err| aws_error("ssm:DescribeParameters", err))?;
        said.push(format!("Parameter Store answers (channels write {parameter})"));
    }
    Ok(said.join("; "))
}
