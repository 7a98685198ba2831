//! EC2's rules for AMI names and tags, checked before anything is built.

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
