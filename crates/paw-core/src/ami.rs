//! The step's AMI as EC2 sees it: the source it starts from, its name, its tags, and EC2's rules
//! for names and tags, checked before anything is built.

use crate::error::{Error, ErrorKind, Result};
use crate::workflow::{Step, Workflow};

/// Stands in for the AMI of a parent that is not built yet: well-formed, so validation accepts it,
/// and owned by nobody, so a build from it can never start.
pub const PLACEHOLDER_AMI_ID: &str = "ami-00000000000000000";

/// An AMI by its id and name: the one a step starts from, or the one a step made (which its
/// children start from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmiRef {
    pub id: String,
    pub name: String,
}

impl AmiRef {
    pub fn placeholder(parent: &str) -> AmiRef {
        AmiRef { id: PLACEHOLDER_AMI_ID.to_string(), name: format!("paw-placeholder/{parent}-is-not-built-yet") }
    }

    pub fn is_placeholder(&self) -> bool {
        self.id == PLACEHOLDER_AMI_ID
    }
}

/// The seed's naming rule: `<root_base_ami_name without trailing "/">/<workflow_id>/<step_id>`.
pub fn output_ami_name(workflow: &Workflow, step: &Step) -> String {
    format!("{}/{}/{}", workflow.param.root_base_ami_name.trim_end_matches('/'), workflow.param.workflow_id, step.id)
}

/// packer's Amazon builders that make an AMI, named by their `ami_name`, from their `source_ami`.
pub const AMI_BUILDERS: [&str; 4] = ["amazon-ebs", "amazon-ebssurrogate", "amazon-instance", "amazon-chroot"];

/// What to do about a template that names its AMI itself.
pub const PAW_NAMES_THE_AMI: &str = "paw names each step's AMI, and finds, records and cleans it up by that name: set \
                                     `ami_name = var.output_ami_name` in the template's source block and \
                                     `output_ami_name = \"{{ builder.output_ami_name }}\"` in its .pkrvars.hcl, as \
                                     the seed's templates do";

/// The tags that say which line of images an AMI belongs to: the workflow's name and variant.
pub const NAME_TAG: &str = "paw:name";
pub const VARIANT_TAG: &str = "paw:variant";

/// The tag that holds a built AMI's fingerprint.
pub const FINGERPRINT_TAG: &str = "paw:fingerprint";

/// The tag that holds the sha256 of the AMI's provenance envelope (`provenance`).
pub const PROVENANCE_TAG: &str = "paw:provenance";

/// The tags of a step's AMI: the seed's, then `aws_tags`, then paw's own (which nothing overrides).
pub fn ami_tags(workflow: &Workflow, step: &Step, source: &AmiRef) -> Vec<(String, String)> {
    let param = &workflow.param;
    let mut tags = vec![
        ("Name".to_string(), output_ami_name(workflow, step)),
        ("packer:base_ami_id".to_string(), source.id.clone()),
        ("packer:base_ami_name".to_string(), source.name.clone()),
        ("packer:root_base_ami_id".to_string(), param.root_base_ami_id.clone()),
        ("packer:root_base_ami_name".to_string(), param.root_base_ami_name.clone()),
    ];
    for (key, value) in &param.aws_tags {
        set_tag(&mut tags, key, value);
    }
    set_tag(&mut tags, "paw:workflow_id", &param.workflow_id);
    set_tag(&mut tags, "paw:step_id", &step.id);
    set_tag(&mut tags, NAME_TAG, &workflow.name);
    if let Some(variant) = &workflow.variant {
        set_tag(&mut tags, VARIANT_TAG, variant);
    }
    tags
}

/// EC2's limits on the step's AMI name and tags, checked before anything runs.
pub fn check_limits(workflow: &Workflow, step: &Step, source: &AmiRef) -> Result<()> {
    let json = workflow.param.json();
    check_ami_name(&output_ami_name(workflow, step)).map_err(|message| {
        Error::new(ErrorKind::Limit, format!("step \"{}\": {message}", step.id))
            .at(json.key_location("root_base_ami_name"))
            .help("the name is <root_base_ami_name>/<workflow_id>/<step_id>: shorten or rename one of them")
    })?;
    // The paw:fingerprint and paw:provenance tags are added at build time; count them now so that
    // they cannot tip the limit.
    let mut tags = ami_tags(workflow, step, source);
    set_tag(&mut tags, FINGERPRINT_TAG, "");
    set_tag(&mut tags, PROVENANCE_TAG, "");
    check_tags(&tags).map_err(|message| {
        Error::new(ErrorKind::Limit, format!("step \"{}\": {message}", step.id)).at(json.key_location("aws_tags")).help(
            format!(
                "paw adds {} tags of its own to aws_tags; keep the total within EC2's limits",
                tags.len() - workflow.param.aws_tags.len()
            ),
        )
    })
}

pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_KEY: usize = 128;
pub const MAX_TAG_VALUE: usize = 256;
const AMI_NAME_LENGTH: std::ops::RangeInclusive<usize> = 3..=128;
const AMI_NAME_SYMBOLS: &str = "()[] ./-'@_";

pub fn check_ami_name(name: &str) -> Result<(), String> {
    let length = name.chars().count();
    if !AMI_NAME_LENGTH.contains(&length) {
        return Err(format!(
            "AMI name \"{name}\" is {length} characters long; EC2 allows {} to {}",
            AMI_NAME_LENGTH.start(),
            AMI_NAME_LENGTH.end()
        ));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || AMI_NAME_SYMBOLS.contains(*c))) {
        return Err(format!(
            "AMI name \"{name}\" contains {bad:?}; EC2 allows only letters, digits and {AMI_NAME_SYMBOLS:?}"
        ));
    }
    Ok(())
}

pub fn check_tags(tags: &[(String, String)]) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!("{} tags on one AMI; EC2 allows at most {MAX_TAGS}", tags.len()));
    }
    for (key, value) in tags {
        if key.is_empty() {
            return Err("a tag key is empty".into());
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(format!("tag key \"{key}\" starts with \"aws:\", which AWS reserves"));
        }
        let key_length = key.chars().count();
        if key_length > MAX_TAG_KEY {
            return Err(format!("tag key \"{key}\" is {key_length} characters; EC2 allows at most {MAX_TAG_KEY}"));
        }
        let value_length = value.chars().count();
        if value_length > MAX_TAG_VALUE {
            return Err(format!(
                "the value of tag \"{key}\" is {value_length} characters; EC2 allows at most {MAX_TAG_VALUE}"
            ));
        }
    }
    Ok(())
}

/// Adds or replaces a tag, keeping the first position of its key.
pub fn set_tag(tags: &mut Vec<(String, String)>, key: &str, value: &str) {
    match tags.iter_mut().find(|(existing, _)| existing == key) {
        Some(tag) => tag.1 = value.to_string(),
        None => tags.push((key.to_string(), value.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ami_names() {
        assert!(check_ami_name("ubuntu/images/hvm-ssd/x (1) [a] @b 'c'_d.e").is_ok());
        assert!(check_ami_name("ab").unwrap_err().contains("2 characters long"));
        assert!(check_ami_name(&"a".repeat(129)).unwrap_err().contains("129 characters long"));
        assert!(check_ami_name(&"a".repeat(128)).is_ok());
        assert!(check_ami_name("a:b:c").unwrap_err().contains("contains ':'"));
    }

    #[test]
    fn tags() {
        let tag = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert!(check_tags(&[tag("Name", "")]).is_ok());
        assert!(check_tags(&[tag("aws:x", "1")]).unwrap_err().contains("reserves"));
        assert!(check_tags(&[tag("AWS:x", "1")]).is_err());
        assert!(check_tags(&[tag(&"k".repeat(129), "1")]).unwrap_err().contains("at most 128"));
        assert!(check_tags(&[tag("k", &"v".repeat(257))]).unwrap_err().contains("at most 256"));
        let many: Vec<_> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert!(check_tags(&many).unwrap_err().contains("51 tags"));
        assert!(check_tags(&many[..50]).is_ok());
    }

    #[test]
    fn set_tag_replaces_in_place() {
        let mut tags = vec![("a".to_string(), "1".to_string()), ("b".into(), "2".into())];
        set_tag(&mut tags, "a", "3");
        set_tag(&mut tags, "c", "4");
        assert_eq!(tags, [("a".into(), "3".into()), ("b".into(), "2".into()), ("c".to_string(), "4".to_string())]);
    }
}
