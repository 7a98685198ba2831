//! One AMI of one step of one workflow, as the catalog keeps it: the seed's fields plus paw's own.
//! Its fields are written down once, here; the JSON output and both backends map through serde.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::Line;
use super::test_run::{TestRun, Verdict};
use crate::ami::AmiRef;
use crate::ec2::Image;
use crate::error::{Error, ErrorKind, Result};
use crate::workflow::{Step, Workflow};

/// The seed's `create_at` format, always UTC: `2026-11-27T23:48:07.000000+0000`.
pub const CREATE_AT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f%z";

pub fn now_create_at() -> String {
    chrono::Utc::now().format(CREATE_AT_FORMAT).to_string()
}

pub fn console_url(region: &str, ami_id: &str) -> String {
    format!("https://{region}.console.aws.amazon.com/ec2/home?region={region}#ImageDetails:imageId={ami_id}")
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    /// The seed's items have no status: theirs are available.
    #[default]
    Available,
    /// Deregistered in EC2; kept for the record and never used as a source again.
    Deregistered,
    /// Withdrawn (`paw images revoke`): disabled in EC2, never a source, never reused, never
    /// up to date, until restored.
    Revoked,
    /// Disabled in EC2 by the lifecycle policy, for its age: as revoked, but not for a fault.
    Disabled,
    /// Failed its tests and kept in EC2 (`paw build --keep-failed`, or `paw test` on an image that
    /// may be in use): never a source, never reused, never up to date, until its tests pass.
    Failed,
}

impl ImageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Available => "available",
            ImageStatus::Deregistered => "deregistered",
            ImageStatus::Revoked => "revoked",
            ImageStatus::Disabled => "disabled",
            ImageStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub workflow_id: String,
    /// The workflow's name: the line of images it belongs to. None in records made before names
    /// existed, until `paw catalog adopt` assigns one.
    #[serde(default)]
    pub workflow_name: Option<String>,
    /// The workflow's variant (`"variants"` in workflow_param.json), when it has variants.
    #[serde(default)]
    pub variant: Option<String>,
    pub step_id: String,
    pub ami_id: String,
    pub ami_name: String,
    pub create_at: String,
    pub aws_console_url: String,
    pub base_ami_id: String,
    pub base_ami_name: String,
    pub root_base_ami_id: String,
    pub root_base_ami_name: String,
    /// Where root_base_ami_id was read from, when the base follows a source: workflow_param.json's
    /// `"root_base_ami"` as written (`{"ssm_parameter": NAME}`, `{"filter": ...}`).
    #[serde(default, deserialize_with = "optional_json_or_text", skip_serializing_if = "Option::is_none")]
    pub root_base_ami_from: Option<Value>,
    /// The image as EC2 described it: `{"id", "name", ..., "tags": {...}, "data": {...}}`.
    #[serde(deserialize_with = "json_or_text")]
    pub details: Value,
    /// The step's metadata map.
    #[serde(deserialize_with = "json_or_text")]
    pub metadata: Map<String, Value>,
    /// Empty in the seed's items; `from_attributes` reads it from their console URL.
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub status: ImageStatus,
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Each input of the fingerprint and its hash, to tell later what changed.
    #[serde(default, deserialize_with = "optional_json_or_text")]
    pub fingerprint_inputs: Option<BTreeMap<String, String>>,
    /// The workflow whose AMI this record reuses, when paw reused it instead of building.
    #[serde(default)]
    pub reused_from: Option<String>,
    /// The instance a person made this AMI from (`paw images from-instance`), not packer.
    #[serde(default)]
    pub from_instance: Option<String>,
    /// The AMI's copies in other regions (packer's `ami_regions`, `paw images copy`): region → AMI id.
    #[serde(default, deserialize_with = "json_or_text")]
    pub copies: BTreeMap<String, String>,
    /// Why and when the AMI was revoked, while it is.
    #[serde(default)]
    pub revoked_reason: Option<String>,
    #[serde(default)]
    pub revoked_at: Option<String>,
    /// The image's test history, oldest first (`TestRun`): the latest run is its verdict.
    #[serde(default, deserialize_with = "json_or_text", skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<TestRun>,
    /// Retirements done with `--force` while something used the image, oldest first.
    #[serde(default, deserialize_with = "json_or_text", skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Override>,
    /// What went into the image: its DSSE envelope (`provenance::Envelope`), as JSON text. The
    /// AMI's `paw:provenance` tag holds its sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
    /// The SBOM the build left (`"sbom"` in step_param.json), as the file's text: the statement
    /// names its sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<String>,
    /// Each copy's own statement (place → its envelope's JSON text), naming this image's: the
    /// copy's `paw:provenance` tag holds its sha256.
    #[serde(default, deserialize_with = "json_or_text", skip_serializing_if = "BTreeMap::is_empty")]
    pub copy_provenance: BTreeMap<String, String>,
}

/// A retirement done all the same (`--force --reason`) while something used the image, or while
/// who did was not known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// When, in the catalog's `create_at` format.
    pub at: String,
    /// `user@host`.
    pub by: String,
    /// `delete` or `revoke`.
    pub action: String,
    pub reason: String,
    /// Who used it then, or why that was not known.
    pub usage: String,
}

/// An AMI in `region` and its `copies`: (place, AMI id), its own region first.
pub fn every_copy(region: &str, ami_id: &str, copies: &BTreeMap<String, String>) -> Vec<(String, String)> {
    std::iter::once((region.to_string(), ami_id.to_string()))
        .chain(copies.iter().map(|(place, copy)| (place.clone(), copy.clone())))
        .collect()
}

/// A JSON value, or a string holding one (as the catalogs store nested values).
fn json_or_text<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(deserializer: D) -> Result<T, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(text) => serde_json::from_str(&text).map_err(serde::de::Error::custom),
        value => serde_json::from_value(value).map_err(serde::de::Error::custom),
    }
}

fn optional_json_or_text<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(text) => serde_json::from_str(&text).map(Some).map_err(serde::de::Error::custom),
        value => serde_json::from_value(value).map(Some).map_err(serde::de::Error::custom),
    }
}

impl ImageRecord {
    /// The record of a step's AMI that this run made.
    pub fn of_image(workflow: &Workflow, step: &Step, source: &AmiRef, region: &str, image: &Image) -> ImageRecord {
        ImageRecord {
            workflow_id: workflow.param.workflow_id.clone(),
            workflow_name: Some(workflow.name.clone()),
            variant: workflow.variant.clone(),
            step_id: step.id.clone(),
            ami_id: image.id.clone(),
            ami_name: image.name.clone(),
            create_at: now_create_at(),
            aws_console_url: console_url(region, &image.id),
            base_ami_id: source.id.clone(),
            base_ami_name: source.name.clone(),
            root_base_ami_id: workflow.param.root_base_ami_id.clone(),
            root_base_ami_name: workflow.param.root_base_ami_name.clone(),
            root_base_ami_from: workflow.param.followed_base.as_ref().map(|followed| followed.written.clone()),
            details: image.details(),
            metadata: step.param.metadata.clone(),
            region: region.to_string(),
            status: ImageStatus::Available,
            fingerprint: None,
            fingerprint_inputs: None,
            reused_from: None,
            from_instance: None,
            copies: BTreeMap::new(),
            revoked_reason: None,
            revoked_at: None,
            tests: Vec::new(),
            overrides: Vec::new(),
            provenance: None,
            sbom: None,
            copy_provenance: BTreeMap::new(),
        }
    }

    /// What its latest test run says.
    pub fn verdict(&self) -> Verdict {
        Verdict::of(&self.tests)
    }

    /// Its latest verdict in a word or two, as lists and reports show it ("passed", "failed: boot");
    /// None when it was never tested.
    pub fn test_badge(&self) -> Option<String> {
        let run = self.tests.last()?;
        Some(match run.failure() {
            None => Verdict::Passed.as_str().to_string(),
            Some(test) => format!("{}: {}", Verdict::Failed.as_str(), test.name),
        })
    }

    /// Where it stands, from the record alone.
    pub fn standing(&self) -> super::Standing {
        super::Standing::of(self)
    }

    /// The test its image failed last, and its log: what errors and reports name.
    pub fn failed_test(&self) -> String {
        match self.tests.last().and_then(|run| run.failure()) {
            Some(test) => format!("{} (log: {})", test.name, test.log),
            None => "no test failed".into(),
        }
    }

    /// The AMI and its copies: (region, AMI id), its own region first.
    pub fn every_copy(&self) -> Vec<(String, String)> {
        every_copy(&self.region, &self.ami_id, &self.copies)
    }

    /// The line it belongs to; None before `paw catalog adopt`, for records older than names.
    pub fn line(&self) -> Option<Line> {
        Line::named(self.workflow_name.as_deref(), self.variant.as_deref())
    }

    /// The AMI this record's was built on.
    pub fn base_source(&self) -> AmiRef {
        AmiRef { id: self.base_ami_id.clone(), name: self.base_ami_name.clone() }
    }

    /// Appends the override, unless the newest one says the same (a repeated write); whether it
    /// did.
    pub fn note_override(&mut self, entry: &Override) -> bool {
        let same = |newest: &Override| {
            (&newest.action, &newest.reason, &newest.usage) == (&entry.action, &entry.reason, &entry.usage)
        };
        if self.overrides.last().is_some_and(same) {
            return false;
        }
        self.overrides.push(entry.clone());
        true
    }

    /// This record's AMI as the source of a child step.
    pub fn as_source(&self) -> AmiRef {
        AmiRef { id: self.ami_id.clone(), name: self.ami_name.clone() }
    }

    /// The seed's field names plus paw's, as `paw images --json` prints them.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a record serialises")
    }

    /// The record as the catalogs store it, in the seed's layout: every attribute a string, nested
    /// values as JSON text, absent values absent (DynamoDB index keys cannot be empty).
    pub fn to_attributes(&self) -> BTreeMap<String, String> {
        let Value::Object(fields) = self.to_json() else { unreachable!("a record serialises to an object") };
        fields
            .into_iter()
            .filter_map(|(name, value)| match value {
                Value::Null => None,
                Value::String(text) => Some((name, text)),
                nested => Some((name, nested.to_string())),
            })
            .collect()
    }

    /// A record from its stored attributes, paw's or the seed's (no status: available; no region:
    /// the console URL's). `place` names the catalog in the error.
    pub fn from_attributes(attributes: impl IntoIterator<Item = (String, String)>, place: &str) -> Result<ImageRecord> {
        let fields: Map<String, Value> =
            attributes.into_iter().map(|(name, text)| (name, Value::String(text))).collect();
        let mut record: ImageRecord = serde_json::from_value(Value::Object(fields))
            .map_err(|err| Error::new(ErrorKind::Catalog, format!("a record of {place} cannot be read: {err}")))?;
        if record.region.is_empty() {
            let host = record.aws_console_url.trim_start_matches("https://");
            record.region = host.split('.').next().unwrap_or_default().to_string();
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_attributes_read_back_and_the_seeds_items_too() {
        let record = crate::catalog::conformance::sample_record("wf", "s1", "ami-1", "2026-01-01T00:00:01.000000+0000");
        let attributes = record.to_attributes();
        assert_eq!(attributes["status"], "available");
        assert!(attributes["metadata"].starts_with('{'));
        assert!(!attributes.contains_key("reused_from"));
        assert_eq!(ImageRecord::from_attributes(attributes.clone(), "t").unwrap(), record);

        let mut seed = attributes;
        for paw_only in ["status", "region", "fingerprint", "fingerprint_inputs", "workflow_name"] {
            seed.remove(paw_only);
        }
        let read = ImageRecord::from_attributes(seed, "t").unwrap();
        assert_eq!(read.line(), None, "a record older than names has no line until adopted");
        assert_eq!((read.status, read.region.as_str(), read.fingerprint), (ImageStatus::Available, "us-east-1", None));

        let mut broken = record.to_attributes();
        broken.insert("metadata".into(), "{not json".into());
        let err = ImageRecord::from_attributes(broken, "sqlite:x").unwrap_err();
        assert!(err.message.starts_with("a record of sqlite:x cannot be read: "), "{}", err.message);
    }
}
