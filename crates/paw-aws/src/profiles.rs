//! The AWS profiles this machine has: the sections of the AWS config and credentials files, as the
//! SDK finds them (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/config and
//! ~/.aws/credentials). Read to say which profiles exist when a named one does not.

use std::path::PathBuf;

fn file(variable: &str, default: &str) -> Option<PathBuf> {
    match std::env::var_os(variable) {
        Some(path) => Some(PathBuf::from(path)),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".aws").join(default)),
    }
}

/// Every profile name in the config file (`[profile NAME]`, `[default]`) and the credentials file
/// (`[NAME]`), sorted, once each.
pub fn configured() -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    for (variable, default, in_config) in
        [("AWS_CONFIG_FILE", "config", true), ("AWS_SHARED_CREDENTIALS_FILE", "credentials", false)]
    {
        let Some(text) = file(variable, default).and_then(|path| std::fs::read_to_string(path).ok()) else { continue };
        for line in text.lines() {
            let Some(section) = line.trim().strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) else { continue };
            let section = section.trim();
            let name = match section.strip_prefix("profile ") {
                Some(name) => name.trim(),
                None if !in_config || section == "default" => section,
                // sso-session and services sections of the config file are not profiles.
                None => continue,
            };
            names.insert(name.to_string());
        }
    }
    names.into_iter().collect()
}
