//! Other accounts (distribution, a catalog of its own): per account, how paw gets its credentials
//! (a role to assume from the build account's credentials, or a named profile), and the SDK
//! configuration that acts there. Credentials are fetched when first used, cached by the SDK, and
//! never printed.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};

/// How to act in one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// AssumeRole into this role, with the build account's credentials.
    Role(String),
    /// A profile of the AWS config files.
    Profile(String),
}

/// The accounts paw may act in besides its own, and the configuration it acts there with.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    accounts: HashMap<String, Access>,
}

impl Reach {
    pub fn new(accounts: HashMap<String, Access>) -> Reach {
        Reach { accounts }
    }

    /// `base` (the build account's configuration), acting in `account` and `region`. An account
    /// without access gets credentials that fail, saying so, at the first call.
    pub fn config(&self, base: &SdkConfig, account: &str, region: &str) -> SdkConfig {
        match self.accounts.get(account) {
            Some(access) => acting_as(base, access, region),
            None => in_region(base, SharedCredentialsProvider::new(NoAccess { account: account.to_string() }), region),
        }
    }
}

/// `base` (the build account's configuration) in `region`, with the credentials `access` gives.
pub fn acting_as(base: &SdkConfig, access: &Access, region: &str) -> SdkConfig {
    let provider = match access {
        Access::Role(role_arn) => SharedCredentialsProvider::new(AssumedRole {
            sts: aws_sdk_sts::Client::new(base),
            role_arn: role_arn.clone(),
        }),
        Access::Profile(profile) => SharedCredentialsProvider::new(
            aws_config::profile::ProfileFileCredentialsProvider::builder().profile_name(profile).build(),
        ),
    };
    in_region(base, provider, region)
}

fn in_region(base: &SdkConfig, provider: SharedCredentialsProvider, region: &str) -> SdkConfig {
    base.to_builder().region(aws_config::Region::new(region.to_string())).credentials_provider(provider).build()
}

/// Credentials from STS AssumeRole, with the build account's credentials.
#[derive(Debug)]
struct AssumedRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
}

impl ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let output =
                self.sts.assume_role().role_arn(&self.role_arn).role_session_name("paw").send().await.map_err(
                    |err| {
                        let why = paw_core::error::causes(&err);
                        CredentialsError::provider_error(format!("cannot assume the role {}: {why}", self.role_arn))
                    },
                )?;
            let credentials = output.credentials().ok_or_else(|| {
                CredentialsError::provider_error(format!("sts:AssumeRole gave no credentials for {}", self.role_arn))
            })?;
            let expires = std::time::SystemTime::try_from(*credentials.expiration()).ok();
            Ok(Credentials::new(
                credentials.access_key_id(),
                credentials.secret_access_key(),
                Some(credentials.session_token().to_string()),
                expires,
                "paw-assume-role",
            ))
        })
    }
}

/// An account the distribution block gives no way into.
#[derive(Debug)]
struct NoAccess {
    account: String,
}

impl ProvideCredentials for NoAccess {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let why = format!(
            "paw has no credentials for account {}: give its distribution target a role_arn or a profile",
            self.account
        );
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(why)))
    }
}

/// A shared handle, as the EC2 and SSM clients keep it.
pub type SharedReach = Arc<Reach>;
