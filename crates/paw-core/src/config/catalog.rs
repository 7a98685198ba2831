//! The `"catalog"` key: where the catalog is, and as whom paw reaches it.

use super::*;

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
pub(super) struct CatalogParam {
    pub(super) uri: Option<String>,
    pub(super) access: CatalogAccess,
}

/// The object form of `"catalog"`: a DynamoDB catalog in an account (and region) of its own.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CatalogObject {
    uri: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    role_arn: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

impl CatalogParam {
    pub(super) fn of(file: &JsonFile) -> Result<CatalogParam> {
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
