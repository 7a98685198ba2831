//! JSON Schemas of workflow_param.json and step_param.json for editors (`schema/`, and the `$schema`
//! that `paw init` writes). The blocks are paw's own config types (LifecyclePolicy,
//! DistributionTarget, CatalogObject); the files' keys are written once more here, as the shape an
//! editor checks, and a test holds both to what the loaders accept and refuse.

use std::collections::BTreeMap;

use schemars::JsonSchema;

use super::*;

/// The key an editor reads the schema's address from; paw accepts it, and it decides no image.
pub const SCHEMA_KEY: &str = "$schema";

/// What workflow_param.json may hold; any other key is kept and reaches the templates.
#[derive(JsonSchema)]
#[schemars(title = "workflow_param.json", description = "paw's workflow parameters: one per workflow folder")]
#[allow(dead_code, reason = "the file's shape, for schemars; WorkflowParam::load reads the file")]
struct WorkflowParamFile {
    /// The schema this file follows (for editors).
    #[serde(rename = "$schema")]
    schema: Option<String>,
    /// One run of the whole chain; a sortable timestamp by convention: paw-2024-06-13-12-00-00.
    workflow_id: String,
    /// The line of images this workflow makes; the folder's name when absent.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"))]
    name: Option<String>,
    /// The AMI the first step starts from.
    #[schemars(regex(pattern = r"^ami-"))]
    root_base_ami_id: String,
    /// Its name: the first part of every AMI name of the workflow.
    root_base_ami_name: String,
    /// Where `paw status` and `paw base-ami update` look for a newer root base AMI.
    root_base_ami_filter: Option<BaseAmiFilter>,
    /// Where the root base AMI comes from, read at each run, instead of root_base_ami_id and
    /// root_base_ami_name (paw sets them): an SSM parameter, or the newest AMI a filter matches.
    root_base_ami: Option<FollowedBaseSetting>,
    region_name: Option<String>,
    profile_name: Option<String>,
    vpc_name: Option<String>,
    /// "true" or "false": a string, as the seed has it.
    is_default_vpc: Option<VpcFlag>,
    subnet_name: Option<String>,
    security_group_name: Option<String>,
    ec2_iam_role_name: Option<String>,
    /// Accepted for the seed's sake, with a warning: use a profile or the environment.
    #[schemars(extend("deprecated" = true))]
    aws_access_key_id: Option<String>,
    #[schemars(extend("deprecated" = true))]
    aws_secret_access_key: Option<String>,
    #[schemars(extend("deprecated" = true))]
    aws_session_token: Option<String>,
    /// Put on every AMI and its snapshots, besides paw's own tags.
    aws_tags: Option<BTreeMap<String, String>>,
    /// sqlite:PATH or dynamodb:TABLE, or an object with the catalog's own account.
    catalog: Option<CatalogSetting>,
    /// Keys that do not change the image, left out of the fingerprint.
    fingerprint_ignore: Option<Vec<String>>,
    /// Each variant's name and the keys it sets over the file's.
    variants: Option<BTreeMap<String, serde_json::Map<String, serde_json::Value>>>,
    lifecycle: Option<LifecyclePolicy>,
    distribution: Option<Vec<DistributionTarget>>,
    /// Where notices go: EventBridge buses, webhooks.
    notify: Option<Vec<NotifyTarget>>,
    /// What signs each image's statement of what went into it.
    provenance: Option<ProvenanceSetting>,
    /// A channel set, and a child's build, refuse an image whose chain of statements does not
    /// verify; needs "provenance".
    require_provenance: Option<bool>,
}

/// What step_param.json may hold; any other key is kept and reaches the templates.
#[derive(JsonSchema)]
#[schemars(title = "step_param.json", description = "paw's step parameters: one per step folder")]
#[allow(dead_code, reason = "the file's shape, for schemars; StepParam::load reads the file")]
struct StepParamFile {
    /// The schema this file follows (for editors).
    #[serde(rename = "$schema")]
    schema: Option<String>,
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"))]
    step_id: String,
    /// The step this one starts from; null or absent for a first step.
    previous_step_id: Option<String>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Files outside the step folder that its AMI depends on: glob patterns, relative to it.
    inputs: Option<Vec<String>>,
    /// EC2 instance types to build on, one per attempt.
    instance_types: Option<Vec<String>>,
    /// This step's keys of the retention policy, over the workflow's.
    lifecycle: Option<LifecyclePolicy>,
    /// How long each image test may run (default 30).
    #[schemars(range(min = 1, max = 1440))]
    test_timeout_minutes: Option<u64>,
    /// Executables run at plan time, relative to the step folder, whose output joins the
    /// fingerprint: a package repository's Release digest, a vendor's latest version, a Git tag.
    upstream: Option<Vec<ProbeSetting>>,
    /// The SBOM (SPDX or CycloneDX JSON) the step's provisioners leave in the step folder, by its
    /// path there: stored with the image's statement, its sha256 among the statement's byproducts.
    sbom: Option<String>,
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "a probe's two forms, for schemars; StepParam::load reads them")]
enum ProbeSetting {
    Path(#[schemars(regex(pattern = r"^[^/]"))] String),
    Object(ProbeObject),
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "a probe's shape, for schemars")]
struct ProbeObject {
    /// The executable, relative to the step folder.
    #[schemars(regex(pattern = r"^[^/]"))]
    run: String,
    /// How long it may run (default 60).
    #[schemars(range(min = 1, max = 600))]
    timeout_seconds: Option<u64>,
    /// Whether it gets AWS credentials (default false).
    aws: Option<bool>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "the filter's shape, for schemars; root_base_ami_filter reads it")]
struct BaseAmiFilter {
    /// A name pattern: ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*
    #[schemars(length(min = 1))]
    name: String,
    /// Account ids, or "self", "amazon".
    #[schemars(length(min = 1))]
    owners: Vec<String>,
    architecture: Option<String>,
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "the key's two forms, for schemars; WorkflowParam::load reads it")]
enum FollowedBaseSetting {
    SsmParameter(SsmParameterSource),
    Filter(FilterSource),
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "the form's shape, for schemars")]
struct SsmParameterSource {
    /// A parameter holding an AMI id: /aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id
    #[schemars(length(min = 1))]
    ssm_parameter: String,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "the form's shape, for schemars")]
struct FilterSource {
    filter: BaseAmiFilter,
}

#[derive(JsonSchema)]
#[allow(dead_code, reason = "the values the seed takes, for schemars")]
enum VpcFlag {
    #[serde(rename = "true")]
    True,
    #[serde(rename = "false")]
    False,
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "the key's two forms, for schemars; CatalogParam::of reads it")]
enum CatalogSetting {
    Uri(String),
    Object(CatalogObject),
}

/// Where a workflow folder keeps the schemas (`paw init`, `paw import`), and what its parameter
/// files' `$schema` say: found offline, and the schemas of the paw that wrote them.
pub const WORKFLOW_PARAM_SCHEMA_FILE: &str = ".schema/workflow_param.schema.json";
pub const STEP_PARAM_SCHEMA_FILE: &str = ".schema/step_param.schema.json";
pub const WORKFLOW_PARAM_SCHEMA_REF: &str = "./.schema/workflow_param.schema.json";
pub const STEP_PARAM_SCHEMA_REF: &str = "../.schema/step_param.schema.json";

/// The schemas' files for a workflow folder: each path and its text.
pub fn schema_files() -> [(&'static str, String); 2] {
    [(WORKFLOW_PARAM_SCHEMA_FILE, workflow_param_schema()), (STEP_PARAM_SCHEMA_FILE, step_param_schema())]
        .map(|(path, schema)| (path, serde_json::to_string_pretty(&schema).expect("a schema is JSON") + "\n"))
}

/// workflow_param.json's schema. A variant takes the file's keys but those `KEYS_NO_VARIANT_SETS`
/// names, and its name is a plain name, as `variants` checks.
pub fn workflow_param_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(WorkflowParamFile).to_value();
    let mut keys = schema["properties"].clone();
    let keys = keys.as_object_mut().expect("the file's schema has properties");
    for key in KEYS_NO_VARIANT_SETS.iter().chain([&SCHEMA_KEY]) {
        keys.remove(*key);
    }
    schema["properties"][VARIANTS]["additionalProperties"] = serde_json::json!({
        "type": "object",
        "properties": keys,
        "propertyNames": {"not": {"enum": KEYS_NO_VARIANT_SETS}},
    });
    schema["properties"][VARIANTS]["propertyNames"] =
        serde_json::json!({"pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"});
    // The root base AMI may be each variant's instead of the file's, and pinned or followed, not both.
    let root_base_ami = ["root_base_ami_id", "root_base_ami_name"];
    let required = schema["required"].as_array_mut().expect("the file has required keys");
    required.retain(|key| !root_base_ami.contains(&key.as_str().unwrap_or_default()));
    schema["anyOf"] =
        serde_json::json!([{"required": root_base_ami}, {"required": [ROOT_BASE_AMI]}, {"required": [VARIANTS]}]);
    let pinning = [root_base_ami[0], root_base_ami[1], ROOT_BASE_AMI_FILTER];
    schema["allOf"] =
        pinning.iter().map(|key| serde_json::json!({"not": {"required": [ROOT_BASE_AMI, key]}})).collect();
    schema
}

/// step_param.json's schema.
pub fn step_param_schema() -> serde_json::Value {
    schemars::schema_for!(StepParamFile).to_value()
}
