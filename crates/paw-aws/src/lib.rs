//! paw's AWS side: region and credential resolution, EC2, DynamoDB, SSM, EventBridge and KMS
//! signing, on the AWS SDK for Rust.

pub mod accounts;
pub mod doctor;
pub mod dynamodb;
pub mod ec2;
pub mod eventbridge;
pub mod kms;
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

/// How many times paw's own AWS calls are tried (the SDK's default is 3): many parallel builds in
/// one account meet throttling. `AWS_MAX_ATTEMPTS` and `AWS_RETRY_MODE` override it, as in every SDK.
const MAX_ATTEMPTS: u32 = 5;

/// The attempts in use, for messages.
static ATTEMPTS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// The SDK's configuration for this workflow: its region, `profile_name` when given, the seed's
/// static credentials when the params hold them, else the standard chain; the standard retry mode
/// with `MAX_ATTEMPTS` unless the environment says otherwise. `AWS_ENDPOINT_URL` (the local
/// emulator) is honoured by the SDK itself.
pub async fn sdk_config(param: Option<&WorkflowParam>, region: &str) -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(aws_config::Region::new(region.to_string()));
    let from_env = ["AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"].iter().any(|name| std::env::var_os(name).is_some());
    if !from_env {
        loader = loader.retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
    }
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
    let config = loader.load().await;
    let attempts = config.retry_config().map_or(MAX_ATTEMPTS, |retry| retry.max_attempts());
    ATTEMPTS.get_or_init(|| attempts);
    config
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

/// packer's `AWS_MAX_ATTEMPTS`: how many times its waiters poll (15 s apart for an AMI), unless
/// the environment sets it. Its default, 40, gives a big AMI 10 minutes, and a build that made
/// its AMI fails when AWS takes longer (packer#6732, #9705, #13143): 120 gives it 30.
const PACKER_WAIT_ATTEMPTS: &str = "120";

/// Environment variables that give packer the same region, profile and credentials as paw, and
/// waiters that outlast a slow AMI.
pub fn packer_env(param: &WorkflowParam, region: &str) -> Vec<(String, String)> {
    let mut env =
        vec![("AWS_REGION".to_string(), region.to_string()), ("AWS_DEFAULT_REGION".to_string(), region.to_string())];
    if std::env::var_os("AWS_MAX_ATTEMPTS").is_none() {
        env.push(("AWS_MAX_ATTEMPTS".into(), PACKER_WAIT_ATTEMPTS.into()));
    }
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
    let attempts = ATTEMPTS.get().copied().unwrap_or(MAX_ATTEMPTS);
    if let SdkError::DispatchFailure(failure) = &err {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".to_string());
        let cause = failure.as_connector_error().map_or_else(|| causes(&err), |connector| causes(connector));
        // Refused, or no name or route: the request never left. Anything else: it was sent, and
        // may have been carried out, but no answer came back.
        let lowercase = cause.to_ascii_lowercase();
        let unreachable = ["(connect)", "tcp connect", "dns error", "refused", "lookup", "no route", "unreachable"]
            .iter()
            .any(|words| lowercase.contains(words));
        if unreachable {
            return Error::new(ErrorKind::Aws, format!("{action} failed: cannot reach {endpoint}: {cause}"))
                .help("check the network, the region, and AWS_ENDPOINT_URL if it is set");
        }
        return Error::new(
            ErrorKind::Aws,
            format!("{action} failed: AWS did not answer ({cause}; {attempts} attempts)"),
        )
        .help(RUN_AGAIN);
    }
    if let SdkError::TimeoutError(_) = &err {
        return Error::new(
            ErrorKind::Aws,
            format!("{action} failed: AWS did not answer in time ({attempts} attempts)"),
        )
        .help(RUN_AGAIN);
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
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "ProvisionedThroughputExceededException" => error.help(format!(
            "AWS throttled paw through all {attempts} attempts: run again later, or with fewer --jobs \
             (AWS_MAX_ATTEMPTS raises the attempts)"
        )),
        "" => error.help("check the network and AWS_ENDPOINT_URL, and that credentials and a region are set"),
        _ if status.is_some_and(|status| status >= 500) => {
            error.help(format!("an error on AWS's side, through all {attempts} attempts: {RUN_AGAIN}"))
        }
        _ => error.help("AWS's message says what it refused; fix that and run again"),
    }
}

/// What to do after an AWS failure that may be passing.
const RUN_AGAIN: &str = "run again: paw knows what it already did, and carries on from there";
