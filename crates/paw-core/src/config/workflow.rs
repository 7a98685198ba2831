//! `workflow_param.json`: the keys paw knows, typed; every other key kept in file order for the
//! templates; variants and the root base AMI's filter.

use super::*;

/// The seed's WorkflowParam fields, in its order. Templates see each of them, `null` when not given,
/// as the seed's dataclass did.
pub(super) const SEED_WORKFLOW_KEYS: [&str; 14] = [
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

/// Where a root base AMI that follows comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseSource {
    /// A Parameter Store parameter that holds an AMI id, as AWS and OS vendors publish them.
    SsmParameter(String),
    /// The newest available AMI that matches.
    Filter(BaseAmiQuery),
}

impl fmt::Display for BaseSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaseSource::SsmParameter(name) => write!(f, "the SSM parameter {name}"),
            BaseSource::Filter(query) => {
                write!(f, "the newest AMI named {} of {}", query.name_pattern, query.owners.join(", "))
            }
        }
    }
}

/// A root base AMI that follows its source (`"root_base_ami"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedBase {
    pub source: BaseSource,
    /// `"root_base_ami"` as written, for the records.
    pub written: Value,
    /// Whether root_base_ami_id and root_base_ami_name hold what it resolved to in this run.
    resolved: bool,
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
    /// `"root_base_ami": {"ssm_parameter": NAME}` or `{"filter": {...}}`: the root base AMI follows
    /// it instead of being pinned; `source::follow_bases` reads it once per run into
    /// root_base_ami_id and root_base_ami_name.
    pub followed_base: Option<FollowedBase>,
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
    /// `"notify"`: where notices go (EventBridge, webhooks).
    pub notify: Vec<NotifyTarget>,
    /// `"provenance"`: what signs each image's statement; unsigned statements without it.
    pub provenance: Option<ProvenanceSetting>,
    /// `"require_provenance"`: a channel set and a child's build refuse an image whose chain of
    /// statements does not verify.
    pub require_provenance: bool,
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
        let followed_base = followed_base(&file)?;
        let (root_base_ami_id, root_base_ami_name) = match &followed_base {
            // What it resolves to is set for each run (`follow`).
            Some(_) => (String::new(), String::new()),
            None => (
                file.required_string("root_base_ami_id", "ami-0975ad60e5054592a")?,
                file.required_string(
                    "root_base_ami_name",
                    "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240607",
                )?,
            ),
        };
        if followed_base.is_none() && !root_base_ami_id.starts_with("ami-") {
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
        let session_token = file.optional_string("aws_session_token")?.map(Secret);
        let credentials =
            match (file.optional_string("aws_access_key_id")?, file.optional_string("aws_secret_access_key")?) {
                (Some(access_key_id), Some(secret)) => {
                    Some(StaticCredentials { access_key_id, secret_access_key: Secret(secret), session_token })
                }
                (None, None) if session_token.is_some() => {
                    return Err(file
                        .key_error(
                            "aws_session_token",
                            "aws_session_token is given without aws_access_key_id and aws_secret_access_key",
                        )
                        .help("give all three, or better none: use a profile or the environment"));
                }
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
        let provenance = ProvenanceSetting::of(&file)?;
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
            followed_base,
            name: workflow_name(&file)?,
            fingerprint_ignore: file.string_list(FINGERPRINT_IGNORE)?,
            variants: variants(&file)?,
            lifecycle: LifecyclePolicy::of(&file)?,
            distribution: DistributionTarget::list(&file)?,
            notify: NotifyTarget::list(&file)?,
            require_provenance: require_provenance(&file, provenance.as_ref())?,
            provenance,
            file,
        })
    }

    /// What templates see as `builder.workflow_param`: the file's keys in order, the seed's other
    /// fields as null, and `aws_region`.
    pub fn template_value(&self, aws_region: &str) -> Map<String, Value> {
        let mut map = self.file.object.clone();
        if self.followed_base.is_some() {
            map.insert("root_base_ami_id".into(), Value::String(self.root_base_ami_id.clone()));
            map.insert("root_base_ami_name".into(), Value::String(self.root_base_ami_name.clone()));
        }
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
        // What a followed base read counts as a pinned one does: following the same AMI changes
        // no fingerprint.
        if self.followed_base.is_some() {
            map.insert("root_base_ami_id".into(), Value::String(self.root_base_ami_id.clone()));
            map.insert("root_base_ami_name".into(), Value::String(self.root_base_ami_name.clone()));
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

    /// Sets the root base AMI a followed base resolved to in this run.
    pub fn follow(&mut self, id: String, name: String) {
        self.root_base_ami_id = id;
        self.root_base_ami_name = name;
        if let Some(followed) = &mut self.followed_base {
            followed.resolved = true;
        }
    }

    /// An internal error when the root base AMI follows a source not read in this run: nothing
    /// may be named, built or fingerprinted from a base that is not known.
    pub fn check_base_known(&self) -> Result<()> {
        match &self.followed_base {
            Some(followed) if !followed.resolved => {
                Err(Error::bug(format!("the root base AMI follows {} and was not read in this run", followed.source)))
            }
            _ => Ok(()),
        }
    }
}

pub const ROOT_BASE_AMI_FILTER: &str = "root_base_ami_filter";
pub const ROOT_BASE_AMI: &str = "root_base_ami";
pub const FINGERPRINT_IGNORE: &str = "fingerprint_ignore";
pub const WORKFLOW_NAME: &str = "name";
pub const VARIANTS: &str = "variants";

/// Keys a variant may not set: they say which workflow, line and catalog it is, not what it builds.
/// Nor where it runs and as whom, and who hears of it: variants share one region, profile, catalog
/// and notify block.
pub(super) const KEYS_NO_VARIANT_SETS: [&str; 13] = [
    "workflow_id",
    NOTIFY,
    PROVENANCE,
    REQUIRE_PROVENANCE,
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

/// workflow_param.json's keys that never decide an image: the run's id, the editor's schema, who runs it (profile,
/// credentials) and where it is recorded, which differ between teammates and runs; the root base
/// AMI's filter (what it resolves to, root_base_ami_id, is an input).
pub(super) const KEYS_NOT_DECIDING_IMAGES: [&str; 8] = [
    "workflow_id",
    SCHEMA_KEY,
    "profile_name",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "catalog",
    ROOT_BASE_AMI_FILTER,
];

/// Keys added after the first fingerprints, which those could not hold. Each variant's own keys
/// are merged in, and count; the list of variants does not.
/// `root_base_ami` counts through what it resolves to: the root step's source AMI.
pub(super) const KEYS_UNKNOWN_TO_V1: [&str; 9] = [
    WORKFLOW_NAME,
    FINGERPRINT_IGNORE,
    VARIANTS,
    LIFECYCLE,
    DISTRIBUTION,
    ROOT_BASE_AMI,
    NOTIFY,
    PROVENANCE,
    REQUIRE_PROVENANCE,
];

/// Keys that decided an image in the first fingerprints and do not since: tags are applied after
/// the build.
pub(super) const KEYS_NOT_DECIDING_IMAGES_SINCE_V2: [&str; 1] = ["aws_tags"];

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

pub(super) fn workflow_name(file: &JsonFile) -> Result<Option<String>> {
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

pub(super) fn root_base_ami_filter(file: &JsonFile) -> Result<Option<BaseAmiQuery>> {
    if file.object.get(ROOT_BASE_AMI_FILTER).is_none_or(Value::is_null) {
        return Ok(None);
    }
    let filter = file.optional_map(ROOT_BASE_AMI_FILTER)?;
    let wrong = |what: &str| {
        file.key_error(ROOT_BASE_AMI_FILTER, format!("\"{ROOT_BASE_AMI_FILTER}\" {what}")).help(format!(
            "write e.g. \"{ROOT_BASE_AMI_FILTER}\": {ROOT_BASE_AMI_FILTER_EXAMPLE} (\"architecture\" is optional)"
        ))
    };
    base_ami_query(&filter, wrong).map(Some)
}

/// A filter's keys: `name`, `owners`, and `architecture` if any; `wrong` makes the error of one
/// that is not right.
fn base_ami_query(filter: &Map<String, Value>, wrong: impl Fn(&str) -> Error) -> Result<BaseAmiQuery> {
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
    Ok(BaseAmiQuery { name_pattern: name, owners, architecture })
}

/// A `root_base_ami` for the help of its errors: Canonical's current Ubuntu 22.04.
pub const ROOT_BASE_AMI_EXAMPLE: &str =
    r#"{"ssm_parameter": "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id"}"#;

/// `"root_base_ami"`: `{"ssm_parameter": NAME}` or `{"filter": {...}}`. It replaces
/// root_base_ami_id and root_base_ami_name (paw sets them each run), and root_base_ami_filter
/// (which only advises a pinned base).
fn followed_base(file: &JsonFile) -> Result<Option<FollowedBase>> {
    let Some(written) = file.object.get(ROOT_BASE_AMI).filter(|value| !value.is_null()).cloned() else {
        return Ok(None);
    };
    let help = format!(
        "write \"{ROOT_BASE_AMI}\": {ROOT_BASE_AMI_EXAMPLE}, or {{\"filter\": {ROOT_BASE_AMI_FILTER_EXAMPLE}}}"
    );
    let wrong = |what: &str| file.key_error(ROOT_BASE_AMI, format!("\"{ROOT_BASE_AMI}\" {what}")).help(help.clone());
    let map = file.optional_map(ROOT_BASE_AMI).map_err(|err| err.help(help.clone()))?;
    let source = match (map.len(), map.get("ssm_parameter"), map.get("filter")) {
        (1, Some(Value::String(name)), _) if name.starts_with('/') || !name.contains('/') => {
            BaseSource::SsmParameter(name.clone())
        }
        (1, Some(_), _) => return Err(wrong("has an \"ssm_parameter\" that is not a parameter name")),
        (1, _, Some(Value::Object(filter))) => {
            BaseSource::Filter(base_ami_query(filter, |what| wrong(&format!("has a \"filter\" that {what}")))?)
        }
        _ => return Err(wrong("names neither one \"ssm_parameter\" nor one \"filter\"")),
    };
    for pinning in ["root_base_ami_id", "root_base_ami_name", ROOT_BASE_AMI_FILTER] {
        if file.object.get(pinning).is_some_and(|value| !value.is_null()) {
            return Err(file
                .key_error(pinning, format!("\"{pinning}\" is given, and \"{ROOT_BASE_AMI}\" follows {source}"))
                .help(format!(
                    "give one: leave out root_base_ami_id, root_base_ami_name and root_base_ami_filter to follow \
                     (paw reads {ROOT_BASE_AMI} each run), or leave out {ROOT_BASE_AMI} to pin the base"
                )));
        }
    }
    Ok(Some(FollowedBase { source, written, resolved: false }))
}
