//! SBOMs: the SPDX 2.x or CycloneDX JSON a step's build leaves (`"sbom"` in step_param.json),
//! read as its packages, and what differs between two images' (`paw images sbom-diff`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

/// Which standard an SBOM follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SbomFormat {
    Spdx,
    CycloneDx,
}

/// An SBOM's packages: each name with its versions (a name may come in several, one per
/// architecture, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbom {
    pub format: SbomFormat,
    pub packages: BTreeMap<String, BTreeSet<String>>,
}

impl Sbom {
    /// Reads SPDX 2.x JSON (`spdxVersion`, `packages[].name`/`versionInfo`) or CycloneDX JSON
    /// (`bomFormat`, `components[].group`/`name`/`version`, nested components too).
    pub fn parse(text: &str) -> Result<Sbom, String> {
        let document: Value = serde_json::from_str(text).map_err(|err| format!("it is not JSON: {err}"))?;
        let mut packages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut add = |name: String, version: Option<&str>| {
            packages.entry(name).or_default().extend(version.map(str::to_string));
        };
        let format = if document["spdxVersion"].as_str().is_some_and(|version| version.starts_with("SPDX-")) {
            for package in document["packages"].as_array().into_iter().flatten() {
                let name = package["name"].as_str().ok_or("an SPDX package has no name")?;
                add(name.to_string(), package["versionInfo"].as_str());
            }
            SbomFormat::Spdx
        } else if document["bomFormat"] == "CycloneDX" {
            let mut pending: Vec<&Value> = document["components"].as_array().into_iter().flatten().collect();
            while let Some(component) = pending.pop() {
                let name = component["name"].as_str().ok_or("a CycloneDX component has no name")?;
                let name = match component["group"].as_str().filter(|group| !group.is_empty()) {
                    Some(group) => format!("{group}/{name}"),
                    None => name.to_string(),
                };
                add(name, component["version"].as_str());
                pending.extend(component["components"].as_array().into_iter().flatten());
            }
            SbomFormat::CycloneDx
        } else {
            return Err("it is neither SPDX JSON (\"spdxVersion\") nor CycloneDX JSON (\"bomFormat\")".into());
        };
        Ok(Sbom { format, packages })
    }
}

/// A package of one SBOM: its name and versions (comma-separated when several).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub name: String,
    pub version: String,
}

/// A package in both SBOMs, in other versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub name: String,
    pub from: String,
    pub to: String,
}

/// What changed from one image's SBOM to another's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SbomDiff {
    /// In the second only.
    pub added: Vec<Package>,
    /// In the first only.
    pub removed: Vec<Package>,
    pub changed: Vec<Changed>,
}

impl SbomDiff {
    pub fn between(first: &Sbom, second: &Sbom) -> SbomDiff {
        let versions = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
        let mut diff = SbomDiff::default();
        for (name, was) in &first.packages {
            match second.packages.get(name) {
                None => diff.removed.push(Package { name: name.clone(), version: versions(was) }),
                Some(now) if now != was => {
                    diff.changed.push(Changed { name: name.clone(), from: versions(was), to: versions(now) })
                }
                Some(_) => {}
            }
        }
        for (name, now) in &second.packages {
            if !first.packages.contains_key(name) {
                diff.added.push(Package { name: name.clone(), version: versions(now) });
            }
        }
        diff
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spdx_and_cyclonedx_read_as_packages() {
        let spdx = r#"{"spdxVersion": "SPDX-2.3", "packages": [
            {"name": "openssl", "versionInfo": "3.0.11"}, {"name": "libc6", "versionInfo": "2.36"},
            {"name": "libc6", "versionInfo": "2.36-i386"}, {"name": "base-files"}]}"#;
        let sbom = Sbom::parse(spdx).unwrap();
        assert_eq!(sbom.format, SbomFormat::Spdx);
        assert_eq!(sbom.packages["libc6"].len(), 2);
        assert!(sbom.packages["base-files"].is_empty());

        let cyclonedx = r#"{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [
            {"name": "openssl", "version": "3.0.13"},
            {"group": "org.example", "name": "agent", "version": "2", "components": [{"name": "zlib", "version": "1.3"}]}]}"#;
        let sbom = Sbom::parse(cyclonedx).unwrap();
        assert_eq!(sbom.format, SbomFormat::CycloneDx);
        let names: Vec<&str> = sbom.packages.keys().map(String::as_str).collect();
        assert_eq!(names, ["openssl", "org.example/agent", "zlib"]);
    }

    #[test]
    fn the_diff_names_what_was_added_removed_and_changed() {
        let first = Sbom::parse(
            r#"{"spdxVersion": "SPDX-2.3", "packages": [
            {"name": "openssl", "versionInfo": "3.0.11"}, {"name": "curl", "versionInfo": "7.88"},
            {"name": "bash", "versionInfo": "5.2"}]}"#,
        )
        .unwrap();
        // The same packages in the other standard compare by name and version.
        let second = Sbom::parse(
            r#"{"bomFormat": "CycloneDX", "components": [
            {"name": "openssl", "version": "3.0.13"}, {"name": "bash", "version": "5.2"},
            {"name": "jq", "version": "1.7"}]}"#,
        )
        .unwrap();
        let diff = SbomDiff::between(&first, &second);
        let package = |name: &str, version: &str| Package { name: name.into(), version: version.into() };
        assert_eq!(diff.added, [package("jq", "1.7")]);
        assert_eq!(diff.removed, [package("curl", "7.88")]);
        assert_eq!(diff.changed, [Changed { name: "openssl".into(), from: "3.0.11".into(), to: "3.0.13".into() }]);
        assert!(SbomDiff::between(&first, &first).is_empty());
    }

    #[test]
    fn what_is_not_an_sbom_is_named() {
        assert!(Sbom::parse("{").unwrap_err().starts_with("it is not JSON"));
        assert!(Sbom::parse(r#"{"packages": []}"#).unwrap_err().contains("neither SPDX JSON"));
        assert_eq!(
            Sbom::parse(r#"{"spdxVersion": "SPDX-2.3", "packages": [{"versionInfo": "1"}]}"#).unwrap_err(),
            "an SPDX package has no name"
        );
    }
}
