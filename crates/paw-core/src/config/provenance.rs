//! The `"provenance"` block: what signs each image's statement of what went into it.

use super::*;

/// workflow_param.json's key of the provenance block: who signs, not what an image is, so it is no
/// input of the fingerprint.
pub const PROVENANCE: &str = "provenance";

/// The signer of the statements: a KMS key, or a local Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceSetting {
    /// A KMS key of the build's region (id, ARN or alias), ECC_NIST_P256, SIGN_VERIFY: `kms:Sign`.
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
