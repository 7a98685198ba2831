//! The `"provenance"` block: what signs each image's statement of what went into it.

use super::*;

/// workflow_param.json's key of the provenance block: who signs, not what an image is, so it is no
/// input of the fingerprint.
pub const PROVENANCE: &str = "provenance";

/// workflow_param.json's key that makes verified statements a condition: a channel set, and a child
/// built on its parent, refuse an image whose chain does not verify.
pub const REQUIRE_PROVENANCE: &str = "require_provenance";

/// `"require_provenance": true`, which needs a signer (`"provenance"`): unsigned statements never
/// verify.
pub(super) fn require_provenance(file: &JsonFile, signer: Option<&ProvenanceSetting>) -> Result<bool> {
    let required = match file.object.get(REQUIRE_PROVENANCE) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(required)) => *required,
        Some(other) => {
            return Err(file
                .key_error(REQUIRE_PROVENANCE, format!("\"{REQUIRE_PROVENANCE}\" is {other}, not true or false"))
                .help(format!("write \"{REQUIRE_PROVENANCE}\": true")));
        }
    };
    if required && signer.is_none() {
        return Err(file
            .key_error(REQUIRE_PROVENANCE, format!("\"{REQUIRE_PROVENANCE}\" is true, but no \"{PROVENANCE}\" signs the statements"))
            .help("add \"provenance\": {\"kms_key\": \"alias/paw-provenance\"} (or {\"key_file_env\": ...}): unsigned statements never verify"));
    }
    Ok(required)
}

/// The signer of the statements: a KMS key, or a local Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceSetting {
    /// A KMS key of the build's region (id, ARN or alias), SIGN_VERIFY, ECC_NIST_P256 (ECDSA) or
    /// RSA_2048 to RSA_4096 (RSASSA-PSS): `kms:Sign`.
    #[serde(default)]
    pub kms_key: Option<String>,
    /// The environment variable that holds the path of an Ed25519 PKCS#8 key file (PEM or DER).
    /// Never the key itself.
    #[serde(default)]
    pub key_file_env: Option<String>,
}

impl ProvenanceSetting {
    pub(super) fn of(file: &JsonFile) -> Result<Option<ProvenanceSetting>> {
        let Some(value) = file.object.get(PROVENANCE).filter(|value| !value.is_null()) else { return Ok(None) };
        let wrong = |what: String| {
            file.key_error(PROVENANCE, format!("\"{PROVENANCE}\" {what}")).help(
                "write \"provenance\": {\"kms_key\": \"alias/paw-provenance\"}, or {\"key_file_env\": \"PAW_SIGNING_KEY\"}",
            )
        };
        let setting: ProvenanceSetting =
            serde_json::from_value(value.clone()).map_err(|err| wrong(format!("is not a signer: {err}")))?;
        match (&setting.kms_key, &setting.key_file_env) {
            (Some(_), Some(_)) => Err(wrong("names both a kms_key and a key_file_env: one signer".into())),
            (None, None) => Err(wrong("names neither a kms_key nor a key_file_env".into())),
            (Some(key), None) if key.is_empty() => Err(wrong("has an empty kms_key".into())),
            (None, Some(name)) if !is_env_var_name(name) => {
                Err(wrong(format!("has a key_file_env \"{name}\" that is not an environment variable's name")))
            }
            _ => Ok(Some(setting)),
        }
    }
}
