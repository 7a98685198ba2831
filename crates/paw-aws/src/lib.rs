//! paw's AWS side: region and credential resolution, EC2 and DynamoDB, on the AWS SDK for Rust.

pub mod doctor;
pub mod dynamodb;
pub mod ec2;
pub mod profiles;
pub mod region;
pub mod ssm;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials as _;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use paw_core::config::WorkflowParam;
use paw_core::error::causes;
use paw_core::{Error, ErrorKind};

/// The SDK's configuration for this workflow: its region, `profile_name` when given, the seed's
/// static credentials when the params hold them, else the standard chain. `AWS_ENDPOINT_URL`
/// (the local emulator) is honoured by the SDK itself.
pub async fn sdk_config(param: Option<&WorkflowParam>, region: &str) -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(aws_config::Region::new(region.to_string()));
    if let Some(profile) = param.and_then(|param| param.profile_name.as_deref()) {
        loader = loader.profile_name(profile);
    }
    if let Some(credentials) = param.and_then(|param| param.credentials.as_ref()) {
        loader = loader.credentials_provider(Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.expose().to_string(),
            credentials.session_token.as_ref().map(|token| token.expose().to_string()),
            None,
            "workflow_param.json",
        ));
    }
    loader.load().await
}

/// Resolves the credentials once, before the first call, so that their absence or an expired SSO
/// session is one clear error rather than a failed call with the SDK's chain of causes. `profile`
/// names the profile in use, for the help.
pub async fn check_credentials(config: &SdkConfig, profile: Option<&str>) -> Result<(), Error> {
    let Some(provider) = config.credentials_provider() else { return Ok(()) };
    let Err(err) = provider.provide_credentials().await else { return Ok(()) };
    let cause = causes(&err);
    let login =
        profile.map_or_else(|| "aws sso login".to_string(), |profile| format!("aws sso login --profile {profile}"));
    let (message, help) = match &err {
        _ if cause.to_ascii_lowercase().contains("sso") || cause.contains("token") && profile.is_some() => {
            (format!("the AWS SSO session is missing or has expired ({cause})"), format!("log in again: `{login}`"))
        }
        CredentialsError::CredentialsNotLoaded(_) => (
            "no AWS credentials found".to_string(),
            "set profile_name in workflow_param.json or AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
             or run on an instance with a role"
                .to_string(),
        ),
        CredentialsError::ProviderTimedOut(_) => (
            format!("loading the AWS credentials timed out ({cause})"),
            "check the network, or set the credentials in the environment".to_string(),
        ),
        _ => (
            format!("the AWS credentials cannot be loaded: {cause}"),
            "check the AWS config and credentials files".to_string(),
        ),
    };
    Err(Error::new(ErrorKind::Aws, message).help(help))
}

/// Environment variables that give packer the same region, profile and credentials as paw.
pub fn packer_env(param: &WorkflowParam, region: &str) -> Vec<(String, String)> {
    let mut env =
        vec![("AWS_REGION".to_string(), region.to_string()), ("AWS_DEFAULT_REGION".to_string(), region.to_string())];
    if let Some(profile) = &param.profile_name {
        env.push(("AWS_PROFILE".into(), profile.clone()));
    }
    if let Some(credentials) = &param.credentials {
        env.push(("AWS_ACCESS_KEY_ID".into(), credentials.access_key_id.clone()));
        env.push(("AWS_SECRET_ACCESS_KEY".into(), credentials.secret_access_key.expose().to_string()));
        if let Some(token) = &credentials.session_token {
            env.push(("AWS_SESSION_TOKEN".into(), token.expose().to_string()));
        }
    }
    env
}

/// An SDK error as one clear message: the action, AWS's code and message, and what to do.
pub fn aws_error<E>(action: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = err.code().unwrap_or_default().to_string();
    let status = err.raw_response().map(|response| response.status().as_u16());
    // A 403 whose body the SDK cannot read (an emulator's, or a proxy's) is still a denial.
    let denied = matches!(code.as_str(), "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException")
        || (code.is_empty() && status == Some(403));
    if let SdkError::DispatchFailure(failure) = &err {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".to_string());
        let cause = failure.as_connector_error().map_or_else(|| causes(&err), |connector| causes(connector));
        return Error::new(ErrorKind::Aws, format!("{action} failed: cannot reach {endpoint}: {cause}"))
            .help("check the network, the region, and AWS_ENDPOINT_URL if it is set");
    }
    if let SdkError::TimeoutError(_) = &err {
        return Error::new(ErrorKind::Aws, format!("{action} failed: AWS did not answer in time"))
            .help("check the network; run again");
    }
    let message = match err.message() {
        Some(message) => message.to_string(),
        None if denied => "access denied (HTTP 403)".to_string(),
        None => causes(&err),
    };
    let code = if code.is_empty() { String::new() } else { format!("{code}: ") };
    let error = Error::new(ErrorKind::Aws, format!("{action} failed: {code}{message}"));
    if denied {
        return error
            .help(format!("the AWS credentials in use lack the permission {action}; see the README's IAM policy"));
    }
    match code.trim_end_matches(": ") {
        "AuthFailure"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "SignatureDoesNotMatch"
        | "InvalidAccessKeyId" => error.help(
            "AWS rejects these credentials: `aws sts get-caller-identity` shows which ones are in use; \
             check profile_name, AWS_PROFILE and the environment",
        ),
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException" => {
            error.help("AWS throttled paw after its retries: run again later, or with fewer --jobs")
        }
        "" => error.help("check the network and AWS_ENDPOINT_URL, and that credentials and a region are set"),
        _ => error,
    }
}
