//! The `"distribution"` block: the regions and accounts an image goes to.

use super::*;

/// workflow_param.json's key of the distribution block: where images go, not what they are, so it
/// is no input of the fingerprint.
pub const DISTRIBUTION: &str = "distribution";

/// One target of the distribution block: a region, of the build account or of other accounts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DistributionTarget {
    pub region: String,
    /// Other accounts (12 digits); none: the build account.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Each account gets a copy of its own (CopyImage run there); else it is granted launch
    /// permission on the build account's copy in the region.
    #[serde(default)]
    pub copy_to_accounts: bool,
    /// The KMS key copies made for this target are encrypted with (the region's; the account's).
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// The role paw assumes in each account; `{account}` stands for the account's id.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// Or a profile of the AWS config files that acts in the accounts.
    #[serde(default)]
    pub profile: Option<String>,
    /// The SSM parameter channels publish in each place of the target: `{name}`, `{variant}`,
    /// `{step}`, `{channel}`, `{account}` and `{region}` are filled in.
    #[serde(default)]
    pub ssm_parameter: Option<String>,
    /// The steps distributed (by `paw build`); default: the last step of each branch.
    #[serde(default)]
    pub steps: Option<Vec<String>>,
}

impl DistributionTarget {
    pub(super) fn list(file: &JsonFile) -> Result<Vec<DistributionTarget>> {
        let Some(value) = file.object.get(DISTRIBUTION).filter(|value| !value.is_null()) else {
            return Ok(Vec::new());
        };
        let wrong = |what: String| {
            file.key_error(DISTRIBUTION, format!("\"{DISTRIBUTION}\" {what}")).help(
                "write e.g. \"distribution\": [{\"region\": \"eu-west-1\", \"accounts\": [\"222222222222\"], \
                 \"copy_to_accounts\": true, \"role_arn\": \"arn:aws:iam::{account}:role/paw-distribution\", \
                 \"kms_key_id\": \"alias/ami\", \"ssm_parameter\": \"/images/{name}/{step}/{channel}\"}]",
            )
        };
        let targets: Vec<DistributionTarget> =
            serde_json::from_value(value.clone()).map_err(|err| wrong(format!("is not a list of targets: {err}")))?;
        for (index, target) in targets.iter().enumerate() {
            target.check().map_err(|what| wrong(format!("target {}: {what}", index + 1)))?;
        }
        Ok(targets)
    }

    fn check(&self) -> std::result::Result<(), String> {
        check_region_name(&self.region)?;
        if let Some(role_arn) = &self.role_arn {
            check_role_arn(role_arn)?;
        }
        if let Some(account) =
            self.accounts.iter().find(|account| account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("\"{account}\" is not an account id (12 digits)"));
        }
        if self.role_arn.is_some() && self.profile.is_some() {
            return Err("names both a role_arn and a profile: one way into the accounts".into());
        }
        if !self.accounts.is_empty() && self.acts_in_accounts() && self.role_arn.is_none() && self.profile.is_none() {
            return Err(
                "acts in other accounts (copy_to_accounts, ssm_parameter) but names no role_arn or profile".into()
            );
        }
        if self.copy_to_accounts && self.accounts.is_empty() {
            return Err("copy_to_accounts needs accounts".into());
        }
        Ok(())
    }

    /// Whether paw acts in the accounts themselves (copies there, or publishes a parameter there),
    /// and so needs their credentials; else it only shares with them, from the build account.
    pub fn acts_in_accounts(&self) -> bool {
        self.copy_to_accounts || self.ssm_parameter.is_some()
    }

    /// The role paw assumes in `account`.
    pub fn role_in(&self, account: &str) -> Option<String> {
        self.role_arn.as_ref().map(|role| role.replace("{account}", account))
    }
}

/// A region's name has EC2's shape: `us-east-1`, `ap-southeast-2`, `us-gov-west-1`: two letters,
/// one or more words, a number. Checked before anything is built, not when the first copy fails.
pub(super) fn check_region_name(region: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let lowercase = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_lowercase());
    let valid = parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(|part| lowercase(part))
        && parts[parts.len() - 1].parse::<u8>().is_ok();
    if valid {
        return Ok(());
    }
    Err(format!("\"{region}\" is not a region name (e.g. eu-west-1)"))
}

/// A role's ARN: `arn:PARTITION:iam::ACCOUNT:role/NAME`, where ACCOUNT may be `{account}`.
pub(super) fn check_role_arn(role_arn: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let account = parts.get(4).copied().unwrap_or_default();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && (account == "{account}" || (account.len() == 12 && account.bytes().all(|byte| byte.is_ascii_digit())))
        && parts[5].strip_prefix("role/").is_some_and(|name| !name.is_empty());
    if valid {
        return Ok(());
    }
    Err(format!("role_arn \"{role_arn}\" is not a role's ARN (arn:aws:iam::{{account}}:role/NAME)"))
}
