//! `workflow_param.json` and `step_param.json`: the keys paw knows are typed, every other key is kept
//! in file order so that templates can use it (the seed needed subclassing for that).

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::ec2::BaseAmiQuery;
use crate::error::{Error, ErrorKind, Result};
use crate::json::JsonFile;

pub const WORKFLOW_PARAM_FILE: &str = "workflow_param.json";
pub const STEP_PARAM_FILE: &str = "step_param.json";

/// The seed's WorkflowParam fields, in its order. Templates see each of them, `null` when not given,
/// as the seed's dataclass did.
const SEED_WORKFLOW_KEYS: [&str; 14] = [
    "workflow_id",
    "vpc_name",
    "is_default_vpc",
    "subnet_name",
    "security_group_name",
    "ec2_iam_role_name",
    "root_base_ami_id",
    "root_base_ami_name",
    "profile_name",
    "region_name",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_tags",
];

/// A value that must never be printed or logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Static credentials written in workflow_param.json (accepted for the seed's sake, with a warning).
#[derive(Debug, Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct WorkflowParam {
    pub path: PathBuf,
    pub workflow_id: String,
    pub root_base_ami_id: String,
    pub root_base_ami_name: String,
    pub profile_name: Option<String>,
    pub region_name: Option<String>,
    pub credentials: Option<StaticCredentials>,
    pub aws_tags: Vec<(String, String)>,
    /// `"catalog": "sqlite:PATH"` or `"dynamodb:TABLE"`; the command line and PAW_CATALOG win.
    /// Or `{"uri": ..., "region": ..., "role_arn": ...}`: a catalog in an account of its own.
    pub catalog: Option<String>,
    /// The catalog's account and region, when they are not the build's (the object form).
    pub catalog_access: CatalogAccess,
    /// `"root_base_ami_filter": {"name": "...", "owners": [...], "architecture": "x86_64"}`: its
    /// newest available match is the current root base AMI (`paw status`, `paw base-ami update`).
    pub root_base_ami_filter: Option<BaseAmiQuery>,
    /// `"name"`: the line of images this workflow makes (checked by `check_workflow_name`); the
    /// folder's name when absent (`Workflow::name`).
    pub name: Option<String>,
    /// `"fingerprint_ignore"`: more keys that do not change the image, left out of the fingerprint.
    pub fingerprint_ignore: Vec<String>,
    /// `"variants"`: each a name and the keys it sets over the file's, in file order.
    pub variants: Vec<(String, Map<String, Value>)>,
    /// `"lifecycle"`: the retention policy of every step (a step's own keys win).
    pub lifecycle: LifecyclePolicy,
    /// `"distribution"`: where the images go after the build (regions, accounts, keys, SSM).
    pub distribution: Vec<DistributionTarget>,
    file: JsonFile,
}

/// A workflow_param.json key set for one run from outside the file: `--param KEY=VALUE` or the
/// environment's `PAW_PARAM_<KEY>`. It is counted in the fingerprint like any key.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamOverride {
    pub key: String,
    pub value: Value,
    /// Where it was set, for messages: `--param KEY` or `PAW_PARAM_KEY`.
    pub origin: String,
}

/// The environment variables that set a key: `PAW_PARAM_INSTANCE_SIZE` sets `instance_size`.
pub const PARAM_ENV_PREFIX: &str = "PAW_PARAM_";

impl ParamOverride {
    /// `KEY=VALUE` from the command line; VALUE is read as JSON, else taken as a string.
    pub fn from_arg(arg: &str) -> Result<ParamOverride> {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(Error::new(ErrorKind::Usage, format!("--param {arg}: expected KEY=VALUE")).help(
                "e.g. --param instance_size=large, or --param 'packages=[\"curl\"]' (VALUE is JSON, else a string)",
            ));
        };
        ParamOverride::new(key, value, format!("--param {key}"))
    }

    /// The `PAW_PARAM_<KEY>` variables among `vars`, the key in lower case.
    pub fn from_env(vars: impl Iterator<Item = (String, String)>) -> Result<Vec<ParamOverride>> {
        let mut overrides: Vec<ParamOverride> = vars
            .filter_map(|(name, value)| {
                let key = name.strip_prefix(PARAM_ENV_PREFIX)?.to_lowercase();
                Some(ParamOverride::new(&key, &value, name.clone()))
            })
            .collect::<Result<_>>()?;
        overrides.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(overrides)
    }

    fn new(key: &str, value: &str, origin: String) -> Result<ParamOverride> {
        if key.is_empty() {
            return Err(Error::new(ErrorKind::Usage, format!("{origin}: the key is empty"))
                .help("name a key of workflow_param.json: KEY=VALUE"));
        }
        if key == "workflow_id" {
            return Err(Error::new(ErrorKind::Usage, format!("{origin}: the workflow id is not a parameter"))
                .help("give it with --workflow-id ID (or PAW_WORKFLOW_ID)"));
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        Ok(ParamOverride { key: key.to_string(), value, origin })
    }
}

impl WorkflowParam {
    /// The file, with `overrides` over its keys (in order: a later one wins).
    pub fn load(path: &Path, overrides: &[ParamOverride]) -> Result<WorkflowParam> {
        let mut file = JsonFile::load(path)?;
        for ParamOverride { key, value, origin } in overrides {
            file.set_from(key, value.clone(), origin);
        }
        let workflow_id = file.required_string("workflow_id", "paw-2024-06-13-12-00-00")?;
        let root_base_ami_id = file.required_string("root_base_ami_id", "ami-0975ad60e5054592a")?;
        let root_base_ami_name = file
            .required_string("root_base_ami_name", "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240607")?;
        if !root_base_ami_id.starts_with("ami-") {
            return Err(file
                .key_error("root_base_ami_id", format!("\"root_base_ami_id\" is \"{root_base_ami_id}\", not an AMI id"))
                .help("an AMI id looks like ami-0975ad60e5054592a; `paw base-ami find` lists them"));
        }
        for key in ["vpc_name", "subnet_name", "security_group_name", "ec2_iam_role_name"] {
            file.optional_string(key)?;
        }
        if let Some(flag) = file.optional_string("is_default_vpc")?
            && flag != "true"
            && flag != "false"
        {
            return Err(file
                .key_error("is_default_vpc", format!("\"is_default_vpc\" is \"{flag}\""))
                .help("write \"true\" or \"false\" (a string, as the seed expects)"));
        }
        let credentials =
            match (file.optional_string("aws_access_key_id")?, file.optional_string("aws_secret_access_key")?) {
                (Some(access_key_id), Some(secret)) => Some(StaticCredentials {
                    access_key_id,
                    secret_access_key: Secret(secret),
                    session_token: file.optional_string("aws_session_token")?.map(Secret),
                }),
                (None, None) => None,
                (Some(_), None) | (None, Some(_)) => {
                    return Err(file
                        .key_error(
                            "aws_access_key_id",
                            "only one of aws_access_key_id / aws_secret_access_key is given",
                        )
                        .help("give both, or better neither: use a profile or the environment"));
                }
            };
        let catalog = CatalogParam::of(&file)?;
        Ok(WorkflowParam {
            path: path.to_path_buf(),
            workflow_id,
            root_base_ami_id,
            root_base_ami_name,
            profile_name: file.optional_string("profile_name")?,
            region_name: file.optional_string("region_name")?,
            credentials,
            aws_tags: file.string_map("aws_tags")?,
            catalog: catalog.uri,
            catalog_access: catalog.access,
            root_base_ami_filter: root_base_ami_filter(&file)?,
            name: workflow_name(&file)?,
            fingerprint_ignore: file.string_list(FINGERPRINT_IGNORE)?,
            variants: variants(&file)?,
            lifecycle: LifecyclePolicy::of(&file)?,
            distribution: DistributionTarget::list(&file)?,
            file,
        })
    }

    /// What templates see as `builder.workflow_param`: the file's keys in order, the seed's other
    /// fields as null, and `aws_region`.
    pub fn template_value(&self, aws_region: &str) -> Map<String, Value> {
        let mut map = self.file.object.clone();
        for key in SEED_WORKFLOW_KEYS {
            map.entry(key).or_insert(Value::Null);
        }
        map.insert("aws_region".into(), Value::String(aws_region.into()));
        map
    }

    /// The keys that decide the AMIs a workflow makes, in file order: all but those that cannot
    /// change an image (`KEYS_NOT_DECIDING_IMAGES`) and those `fingerprint_ignore` names.
    pub fn keys_deciding_images(&self) -> Map<String, Value> {
        let mut map = self.keys_deciding_images_v1();
        for key in
            KEYS_NOT_DECIDING_IMAGES_SINCE_V2.iter().copied().chain(self.fingerprint_ignore.iter().map(String::as_str))
        {
            map.shift_remove(key);
        }
        map
    }

    /// The keys the first fingerprints (paw 0.1) counted: also `aws_tags` and what
    /// `fingerprint_ignore` names. An image fingerprinted so is still up to date (see
    /// `fingerprint::Fingerprint::v1_digest`), so that an upgrade rebuilds nothing.
    pub fn keys_deciding_images_v1(&self) -> Map<String, Value> {
        let mut map = self.file.object.clone();
        for key in KEYS_NOT_DECIDING_IMAGES.iter().chain(&KEYS_UNKNOWN_TO_V1) {
            map.shift_remove(*key);
        }
        map
    }

    /// The keys set for this run from outside the file, with their values.
    pub fn overridden(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.file.set_from_outside()
    }

    pub fn json(&self) -> &JsonFile {
        &self.file
    }
}

pub const ROOT_BASE_AMI_FILTER: &str = "root_base_ami_filter";
pub const FINGERPRINT_IGNORE: &str = "fingerprint_ignore";
pub const WORKFLOW_NAME: &str = "name";
pub const VARIANTS: &str = "variants";

/// Keys a variant may not set: they say which workflow, line and catalog it is, not what it builds.
/// Nor where it runs and as whom: variants share one region, profile and catalog.
const KEYS_NO_VARIANT_SETS: [&str; 10] = [
    "workflow_id",
    WORKFLOW_NAME,
    VARIANTS,
    "catalog",
    FINGERPRINT_IGNORE,
    "region_name",
    "profile_name",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

/// workflow_param.json's keys that never decide an image: the run's id, who runs it (profile,
/// credentials) and where it is recorded, which differ between teammates and runs; the root base
/// AMI's filter (what it resolves to, root_base_ami_id, is an input).
const KEYS_NOT_DECIDING_IMAGES: [&str; 7] = [
    "workflow_id",
    "profile_name",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "catalog",
    ROOT_BASE_AMI_FILTER,
];

/// Keys added after the first fingerprints, which those could not hold. Each variant's own keys
/// are merged in, and count; the list of variants does not.
const KEYS_UNKNOWN_TO_V1: [&str; 5] = [WORKFLOW_NAME, FINGERPRINT_IGNORE, VARIANTS, LIFECYCLE, DISTRIBUTION];

/// Keys that decided an image in the first fingerprints and do not since: tags are applied after
/// the build.
const KEYS_NOT_DECIDING_IMAGES_SINCE_V2: [&str; 1] = ["aws_tags"];

/// A workflow name (`"name"`, or the folder's name): part of catalog keys, tags and SSM paths.
pub fn check_workflow_name(name: &str) -> std::result::Result<(), String> {
    check_short_name(name, "workflow name")
}

/// A name of up to 64 characters of `is_plain_name`'s; `what` names it in the message.
fn check_short_name(name: &str, what: &str) -> std::result::Result<(), String> {
    if is_plain_name(name) && name.len() <= 64 {
        return Ok(());
    }
    Err(format!(
        "\"{name}\" is not a {what}: use 1 to 64 letters, digits, '-', '_' and '.', starting with a letter or digit"
    ))
}

/// Letters, digits, '-', '_' and '.', starting with a letter or digit: safe in file names, AMI
/// names, tags and catalog keys (step ids, workflow names, variants).
pub fn is_plain_name(name: &str) -> bool {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    first_ok && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `"variants": {"amd64": {"root_base_ami_id": "...", ...}, "arm64": {...}}`.
pub(crate) fn variants(file: &JsonFile) -> Result<Vec<(String, Map<String, Value>)>> {
    let example = r#""variants": {"amd64": {"instance_type": "t3.small"}, "arm64": {"instance_type": "t4g.small"}}"#;
    let mut variants = Vec::new();
    for (name, keys) in file.optional_map(VARIANTS)? {
        check_short_name(&name, "variant name").map_err(|message| {
            file.key_error(VARIANTS, format!("variant {message}")).help(format!("write e.g. {example}"))
        })?;
        let Value::Object(keys) = keys else {
            return Err(file
                .key_error(VARIANTS, format!("variant \"{name}\" is not an object of keys to set"))
                .help(format!("write e.g. {example}")));
        };
        if let Some(key) = keys.keys().find(|key| KEYS_NO_VARIANT_SETS.contains(&key.as_str())) {
            return Err(file
                .key_error(VARIANTS, format!("variant \"{name}\" sets \"{key}\", which a variant cannot set"))
                .help(format!(
                    "variants share {}; set it once, outside \"variants\"",
                    KEYS_NO_VARIANT_SETS.join(", ")
                )));
        }
        variants.push((name, keys));
    }
    Ok(variants)
}

fn workflow_name(file: &JsonFile) -> Result<Option<String>> {
    let Some(name) = file.optional_string(WORKFLOW_NAME)? else { return Ok(None) };
    check_workflow_name(&name).map_err(|message| {
        file.key_error(WORKFLOW_NAME, message)
            .help("the name says which line of images this folder makes, e.g. \"name\": \"web-base\"")
    })?;
    Ok(Some(name))
}

/// A `root_base_ami_filter` for the help of its errors: Canonical's Ubuntu 22.04 images.
pub const ROOT_BASE_AMI_FILTER_EXAMPLE: &str = concat!(
    r#"{"name": "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*", "#,
    r#""owners": ["099720109477"], "architecture": "x86_64"}"#
);

fn root_base_ami_filter(file: &JsonFile) -> Result<Option<BaseAmiQuery>> {
    if file.object.get(ROOT_BASE_AMI_FILTER).is_none_or(Value::is_null) {
        return Ok(None);
    }
    let filter = file.optional_map(ROOT_BASE_AMI_FILTER)?;
    let wrong = |what: &str| {
        file.key_error(ROOT_BASE_AMI_FILTER, format!("\"{ROOT_BASE_AMI_FILTER}\" {what}")).help(format!(
            "write e.g. \"{ROOT_BASE_AMI_FILTER}\": {ROOT_BASE_AMI_FILTER_EXAMPLE} (\"architecture\" is optional)"
        ))
    };
    let name = match filter.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => return Err(wrong("needs \"name\", a name pattern")),
    };
    let owners: Vec<String> = match filter.get("owners") {
        Some(Value::Array(owners)) if !owners.is_empty() && owners.iter().all(Value::is_string) => {
            owners.iter().filter_map(|owner| owner.as_str().map(str::to_string)).collect()
        }
        _ => return Err(wrong("needs \"owners\", a list of account ids (or \"self\", \"amazon\")")),
    };
    let architecture = match filter.get("architecture") {
        None | Some(Value::Null) => None,
        Some(Value::String(architecture)) => Some(architecture.clone()),
        Some(_) => return Err(wrong("has an \"architecture\" that is not a string")),
    };
    if let Some(unknown) = filter.keys().find(|key| !matches!(key.as_str(), "name" | "owners" | "architecture")) {
        return Err(wrong(&format!("has an unknown key \"{unknown}\"")));
    }
    Ok(Some(BaseAmiQuery { name_pattern: name, owners, architecture }))
}

/// A retention policy (`paw lifecycle`): in workflow_param.json for every step, and in a
/// step_param.json for that step, key by key over the workflow's. Ages count from the image's
/// creation, in days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LifecyclePolicy {
    /// Each step's newest available images kept whatever their age (1 or more).
    pub keep: Option<u64>,
    /// EC2's deprecation (hidden from describe-images but for its owner; still launchable).
    pub deprecate_after_days: Option<u64>,
    /// DisableImage: no new launches; the catalog says `disabled`.
    pub disable_after_days: Option<u64>,
    /// Deregistered, its record kept as `deregistered`.
    pub delete_after_days: Option<u64>,
    /// With delete: the snapshots too.
    pub delete_snapshots: Option<bool>,
    /// An image launched this recently (EC2's lastLaunchedTime) is kept as it is.
    pub protect_launched_within_days: Option<u64>,
}

pub const LIFECYCLE: &str = "lifecycle";

/// Where the catalog is, and as whom paw reaches it: a DynamoDB table may live in an account (and
/// region) of its own, shared by several build accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogAccess {
    #[serde(default)]
    pub region: Option<String>,
    /// The role paw assumes, with the build's credentials, to use the catalog.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// Or a profile of the AWS config files.
    #[serde(default)]
    pub profile: Option<String>,
}

/// `"catalog"`: a URI, or an object with the URI and the catalog's own access.
struct CatalogParam {
    uri: Option<String>,
    access: CatalogAccess,
}

/// The object form of `"catalog"`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogObject {
    uri: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    role_arn: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

impl CatalogParam {
    fn of(file: &JsonFile) -> Result<CatalogParam> {
        let param = match file.object.get("catalog") {
            None | Some(Value::Null) => CatalogParam { uri: None, access: CatalogAccess::default() },
            Some(Value::String(uri)) => CatalogParam { uri: Some(uri.clone()), access: CatalogAccess::default() },
            Some(value) => serde_json::from_value(value.clone()).map(|CatalogObject { uri, region, role_arn, profile }| {
                CatalogParam { uri: Some(uri), access: CatalogAccess { region, role_arn, profile } }
            }).map_err(|err| {
                file.key_error("catalog", format!("\"catalog\" is not a catalog URI or its object: {err}")).help(
                    "write \"catalog\": \"dynamodb:TABLE\", or {\"uri\": \"dynamodb:TABLE\", \"region\": \"eu-central-1\", \
                     \"role_arn\": \"arn:aws:iam::555555555555:role/paw-catalog\"}",
                )
            })?,
        };
        if param.access.role_arn.is_some() && param.access.profile.is_some() {
            return Err(file
                .key_error("catalog", "\"catalog\" names both a role_arn and a profile")
                .help("one way into the catalog's account: a role_arn, or a profile"));
        }
        let region = param.access.region.as_deref().map(check_region_name);
        let role_arn = param.access.role_arn.as_deref().map(check_role_arn);
        if let Some(Err(what)) = region.into_iter().chain(role_arn).find(Result::is_err) {
            return Err(file
                .key_error("catalog", format!("\"catalog\": {what}"))
                .help("write the catalog's region as EC2 names it, and its role as arn:aws:iam::ACCOUNT:role/NAME"));
        }
        Ok(param)
    }
}

/// workflow_param.json's key of the distribution block: where images go, not what they are, so it
/// is no input of the fingerprint.
pub const DISTRIBUTION: &str = "distribution";

/// One target of the distribution block: a region, of the build account or of other accounts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
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
    fn list(file: &JsonFile) -> Result<Vec<DistributionTarget>> {
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
fn check_region_name(region: &str) -> std::result::Result<(), String> {
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
fn check_role_arn(role_arn: &str) -> std::result::Result<(), String> {
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

impl LifecyclePolicy {
    fn of(file: &JsonFile) -> Result<LifecyclePolicy> {
        let Some(value) = file.object.get(LIFECYCLE).filter(|value| !value.is_null()) else {
            return Ok(LifecyclePolicy::default());
        };
        let wrong = |what: String| {
            file.key_error(LIFECYCLE, format!("\"{LIFECYCLE}\" {what}")).help(
                "write e.g. \"lifecycle\": {\"keep\": 3, \"deprecate_after_days\": 30, \"disable_after_days\": 90, \
                 \"delete_after_days\": 180, \"delete_snapshots\": true, \"protect_launched_within_days\": 14}",
            )
        };
        let policy: LifecyclePolicy =
            serde_json::from_value(value.clone()).map_err(|err| wrong(format!("is not a policy: {err}")))?;
        policy.check().map_err(wrong)?;
        Ok(policy)
    }

    /// This policy with `step`'s keys over it; the result is checked again, at the step's file.
    pub fn with_step(&self, step: &StepParam) -> Result<LifecyclePolicy> {
        let own = step.lifecycle;
        let merged = LifecyclePolicy {
            keep: own.keep.or(self.keep),
            deprecate_after_days: own.deprecate_after_days.or(self.deprecate_after_days),
            disable_after_days: own.disable_after_days.or(self.disable_after_days),
            delete_after_days: own.delete_after_days.or(self.delete_after_days),
            delete_snapshots: own.delete_snapshots.or(self.delete_snapshots),
            protect_launched_within_days: own.protect_launched_within_days.or(self.protect_launched_within_days),
        };
        merged.check().map_err(|what| {
            step.json()
                .key_error(LIFECYCLE, format!("with workflow_param.json's \"{LIFECYCLE}\", this step's {what}"))
                .help("an image is deprecated, then disabled, then deleted: the days must not go down")
        })?;
        Ok(merged)
    }

    /// Whether it says to do anything at all.
    pub fn is_empty(&self) -> bool {
        self.deprecate_after_days.is_none() && self.disable_after_days.is_none() && self.delete_after_days.is_none()
    }

    /// `keep` of at least 1, and deprecate, disable and delete in that order.
    fn check(&self) -> std::result::Result<(), String> {
        if self.keep == Some(0) {
            return Err("has \"keep\": 0, which would leave a step without an image".into());
        }
        let steps = [
            ("deprecate_after_days", self.deprecate_after_days),
            ("disable_after_days", self.disable_after_days),
            ("delete_after_days", self.delete_after_days),
        ];
        let set: Vec<(&str, u64)> = steps.iter().filter_map(|(name, days)| Some((*name, (*days)?))).collect();
        for pair in set.windows(2) {
            let ((earlier, before), (later, after)) = (pair[0], pair[1]);
            if after < before {
                return Err(format!("has \"{later}\": {after}, before \"{earlier}\": {before}"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct StepParam {
    pub path: PathBuf,
    pub step_id: String,
    pub previous_step_id: Option<String>,
    pub metadata: Map<String, Value>,
    /// Files outside the step folder that the step's AMI depends on (glob patterns, relative to it).
    pub inputs: Vec<String>,
    /// EC2 instance types to build on, one per attempt (`-var instance_type=…`): the first, then
    /// the next when packer failed for a passing cause such as no capacity.
    pub instance_types: Vec<String>,
    /// `"lifecycle"`: this step's keys of the retention policy, over the workflow's.
    pub lifecycle: LifecyclePolicy,
    /// `"test_timeout_minutes"`: how long each of the step's image tests may run (30 by default).
    pub test_timeout: std::time::Duration,
    file: JsonFile,
}

/// The step_param.json key of the image tests' timeout, in minutes: like `"lifecycle"`, it says
/// nothing about the image, so it is not an input of its fingerprint.
pub const TEST_TIMEOUT: &str = "test_timeout_minutes";
const DEFAULT_TEST_TIMEOUT_MINUTES: u64 = 30;

fn test_timeout(file: &JsonFile) -> Result<std::time::Duration> {
    let minutes = match file.object.get(TEST_TIMEOUT) {
        None | Some(Value::Null) => DEFAULT_TEST_TIMEOUT_MINUTES,
        Some(value) => value.as_u64().filter(|minutes| (1..=24 * 60).contains(minutes)).ok_or_else(|| {
            file.key_error(
                TEST_TIMEOUT,
                format!("\"{TEST_TIMEOUT}\" is {value}, not a number of minutes from 1 to 1440"),
            )
            .help(format!("write e.g. \"{TEST_TIMEOUT}\": 10, or leave it out for {DEFAULT_TEST_TIMEOUT_MINUTES}"))
        })?,
    };
    Ok(std::time::Duration::from_secs(minutes * 60))
}

impl StepParam {
    pub fn load(path: &Path) -> Result<StepParam> {
        let file = JsonFile::load(path)?;
        Ok(StepParam {
            path: path.to_path_buf(),
            step_id: file.required_string("step_id", "step1")?,
            previous_step_id: file.optional_string("previous_step_id")?,
            metadata: file.optional_map("metadata")?,
            inputs: file.string_list("inputs")?,
            instance_types: file.string_list("instance_types")?,
            lifecycle: LifecyclePolicy::of(&file)?,
            test_timeout: test_timeout(&file)?,
            file,
        })
    }

    /// What templates see as `builder.step_param`.
    pub fn template_value(&self) -> Map<String, Value> {
        let mut map = self.file.object.clone();
        map.entry("previous_step_id").or_insert(Value::Null);
        map.entry("metadata").or_insert(Value::Object(Map::new()));
        map
    }

    pub fn json(&self) -> &JsonFile {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow_param(text: &str) -> Result<WorkflowParam> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WORKFLOW_PARAM_FILE);
        std::fs::write(&path, text).unwrap();
        WorkflowParam::load(&path, &[])
    }

    const MINIMAL: &str = r#"{"workflow_id": "w1", "root_base_ami_id": "ami-1", "root_base_ami_name": "base/"}"#;

    #[test]
    fn a_param_set_from_outside_the_file_wins_and_is_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WORKFLOW_PARAM_FILE);
        std::fs::write(
            &path,
            r#"{"workflow_id": "w1", "root_base_ami_id": "ami-1", "root_base_ami_name": "b", "size": "s"}"#,
        )
        .unwrap();
        let env = [("PAW_PARAM_SIZE".to_string(), "m".to_string()), ("HOME".to_string(), "/root".to_string())];
        let mut overrides = ParamOverride::from_env(env.into_iter()).unwrap();
        overrides.push(ParamOverride::from_arg("packages=[\"curl\"]").unwrap());
        overrides.push(ParamOverride::from_arg("size=l").unwrap());
        let param = WorkflowParam::load(&path, &overrides).unwrap();
        let set: Vec<(&str, &Value)> = param.overridden().collect();
        assert_eq!(set, [("packages", &serde_json::json!(["curl"])), ("size", &Value::from("l"))], "the last one wins");
        assert_eq!(param.keys_deciding_images()["size"], "l", "counted in the fingerprint");

        let bad = ParamOverride::from_arg("root_base_ami_id=img-1").unwrap();
        let err = WorkflowParam::load(&path, &[bad]).unwrap_err();
        assert_eq!(err.location.unwrap().to_string(), "--param root_base_ami_id");
        assert!(err.message.contains("\"root_base_ami_id\" is \"img-1\", not an AMI id"), "{}", err.message);
        assert!(ParamOverride::from_arg("size").unwrap_err().message.contains("expected KEY=VALUE"));
        assert!(ParamOverride::from_arg("workflow_id=x").unwrap_err().help.unwrap().contains("--workflow-id"));
    }

    #[test]
    fn unknown_keys_reach_templates_in_order() {
        let text = r#"{"zeta": 1, "workflow_id": "w1", "root_base_ami_id": "ami-1",
            "root_base_ami_name": "b", "aws_tags": {"b": "1", "a": "2"}, "alpha": {"x": true}}"#;
        let param = workflow_param(text).unwrap();
        assert_eq!(param.aws_tags, [("b".to_string(), "1".to_string()), ("a".into(), "2".into())]);
        let value = param.template_value("eu-west-1");
        let keys: Vec<_> = value.keys().map(String::as_str).collect();
        assert_eq!(&keys[..6], ["zeta", "workflow_id", "root_base_ami_id", "root_base_ami_name", "aws_tags", "alpha"]);
        assert_eq!(value["vpc_name"], Value::Null);
        assert_eq!(value["aws_region"], "eu-west-1");
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let text = MINIMAL.replace('}', r#", "aws_access_key_id": "AKIA1", "aws_secret_access_key": "hunter2"}"#);
        let param = workflow_param(&text).unwrap();
        let debug = format!("{:?}", param.credentials);
        assert!(debug.contains("AKIA1") && !debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn is_default_vpc_must_be_a_string_flag() {
        let err = workflow_param(&MINIMAL.replace('}', r#", "is_default_vpc": true}"#)).unwrap_err();
        assert_eq!(err.message, "\"is_default_vpc\" must be a string, found a boolean (true)");
        let err = workflow_param(&MINIMAL.replace('}', r#", "is_default_vpc": "yes"}"#)).unwrap_err();
        assert_eq!(err.message, "\"is_default_vpc\" is \"yes\"");
    }

    #[test]
    fn required_keys_are_named() {
        let err = workflow_param(r#"{"workflow_id": "w"}"#).unwrap_err();
        assert_eq!(err.message, "missing required key \"root_base_ami_id\"");
    }

    #[test]
    fn step_defaults_match_the_seed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STEP_PARAM_FILE);
        std::fs::write(&path, r#"{"step_id": "s", "extra": [1]}"#).unwrap();
        let step = StepParam::load(&path).unwrap();
        assert_eq!(step.previous_step_id, None);
        let value = step.template_value();
        assert_eq!(value["metadata"], serde_json::json!({}));
        assert_eq!(value["extra"], serde_json::json!([1]));
    }

    #[test]
    fn a_lifecycle_policy_is_checked_at_its_line_and_a_step_adds_its_keys() {
        let policy = |text: &str| {
            workflow_param(&MINIMAL.replace(
                '}',
                &format!(
                    r#",
            "lifecycle": {text}}}"#
                ),
            ))
        };
        let param = policy(r#"{"keep": 3, "deprecate_after_days": 30, "delete_after_days": 180}"#).unwrap();
        assert_eq!((param.lifecycle.keep, param.lifecycle.delete_after_days), (Some(3), Some(180)));
        for (text, message) in [
            (r#"{"keep": 3, "purge": 1}"#, "unknown field `purge`"),
            (
                r#"{"deprecate_after_days": 30, "delete_after_days": 10}"#,
                "\"delete_after_days\": 10, before \"deprecate_after_days\": 30",
            ),
            (r#"{"keep": 0}"#, "\"keep\": 0"),
            (r#"{"keep": -1}"#, "is not a policy"),
            (r#"[1]"#, "is not a policy"),
        ] {
            let err = policy(text).unwrap_err();
            assert!(err.message.contains(message), "{text}: {}", err.message);
            assert_eq!(err.location.unwrap().line, 2, "{text}: at the key");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STEP_PARAM_FILE);
        std::fs::write(&path, r#"{"step_id": "s", "lifecycle": {"deprecate_after_days": 200}}"#).unwrap();
        let step = StepParam::load(&path).unwrap();
        let err = param.lifecycle.with_step(&step).unwrap_err();
        assert!(err.message.contains("this step's has \"delete_after_days\": 180, before"), "{}", err.message);
        std::fs::write(&path, r#"{"step_id": "s", "lifecycle": {"keep": 1}}"#).unwrap();
        let merged = param.lifecycle.with_step(&StepParam::load(&path).unwrap()).unwrap();
        assert_eq!(
            (merged.keep, merged.deprecate_after_days),
            (Some(1), Some(30)),
            "the step's key wins, the rest stays"
        );
    }
}
