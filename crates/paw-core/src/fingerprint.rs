//! A step's fingerprint: a blake3 hash of everything that decides its AMI, the same on every machine.
//!
//! Inputs, each hashed on its own so that a change can be named:
//! - every file of the step folder (path, executable bit, content), except the rendered outputs,
//!   `.paw/`, the image tests (`tests/`: `tests_digest` hashes them on their own), the SBOM a
//!   build leaves (`"sbom"`), and what the step's `.gitignore` files ignore; step_param.json by its keys but `lifecycle`,
//!   `test_timeout_minutes` and `upstream`, as canonical JSON;
//! - the files outside the folder that step_param.json's `"inputs"` globs match;
//! - workflow_param.json's keys but those that cannot change the image: `workflow_id`, `name`,
//!   `aws_tags` (applied after the build), who runs it and where it is recorded (`profile_name`, the
//!   credential keys, `catalog`), `root_base_ami_filter`, `root_base_ami` (what it resolved to
//!   counts, as root_base_ami_id and root_base_ami_name), `fingerprint_ignore` and the keys it
//!   names; as canonical JSON (key order does not matter);
//! - what each upstream probe of the step (`"upstream"`) printed in this run, named `probe:PATH`;
//! - the resolved source AMI id.
//!
//! A `"lifecycle"` policy, in either file, is never an input: it says what becomes of the image.
//!
//! The first fingerprints (paw 0.1) counted `aws_tags` too, and step_param.json as a file: an image
//! with such a fingerprint is still up to date (`v1_digest`), so that an upgrade rebuilds nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::blocking::off_the_task;
use crate::config::STEP_PARAM_FILE;
use crate::error::{Error, ErrorKind, Result};
use crate::workflow::{Step, Workflow};

pub const SOURCE_AMI_INPUT: &str = "source_ami";
pub const WORKFLOW_PARAM_INPUT: &str = "workflow_param.json";
/// An upstream probe's input: `probe:` and its path as written, its output's hash.
pub const PROBE_INPUT_PREFIX: &str = "probe:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The hash of all inputs: what `paw:fingerprint` and the catalog hold.
    pub digest: String,
    /// Each input's name and its own hash (the source AMI's id as it is).
    pub inputs: BTreeMap<String, String>,
    /// The digest the first fingerprints gave the same inputs, when it differs: an image recorded
    /// with it is up to date too.
    pub v1_digest: Option<String>,
}

impl Fingerprint {
    fn from_inputs(inputs: BTreeMap<String, String>) -> Fingerprint {
        let mut hasher = blake3::Hasher::new();
        for (name, value) in &inputs {
            // Lengths first, so that no two different input sets hash the same stream.
            for part in [name, value] {
                hasher.update(&(part.len() as u64).to_le_bytes());
                hasher.update(part.as_bytes());
            }
        }
        Fingerprint { digest: hasher.finalize().to_hex().to_string(), inputs, v1_digest: None }
    }

    /// Whether a recorded fingerprint is this one, as it is written now or was first.
    pub fn matches(&self, recorded: Option<&str>) -> bool {
        recorded.is_some_and(|recorded| recorded == self.digest || Some(recorded) == self.v1_digest.as_deref())
    }

    /// The inputs that differ from an earlier fingerprint's, by name: changed, added or removed.
    pub fn changed_since(&self, earlier: &BTreeMap<String, String>) -> Vec<String> {
        let mut names: Vec<String> = self
            .inputs
            .iter()
            .filter(|(name, value)| earlier.get(*name) != Some(*value))
            .map(|(name, _)| name.clone())
            .collect();
        names.extend(
            earlier.keys().filter(|name| !self.inputs.contains_key(*name)).map(|name| format!("{name} (removed)")),
        );
        names
    }
}

/// The fingerprint of the step's inputs from `source_ami_id`, computed off the async task (it
/// reads and hashes files).
pub async fn fingerprint(workflow: &Workflow, step: &Step, source_ami_id: &str) -> Result<Fingerprint> {
    let (workflow, step, source) = (workflow.clone(), step.clone(), source_ami_id.to_string());
    off_the_task(move || compute(&workflow, &step, &source)).await
}

fn compute(workflow: &Workflow, step: &Step, source_ami_id: &str) -> Result<Fingerprint> {
    workflow.param.check_base_known()?;
    let mut inputs = BTreeMap::new();
    for (relative, path) in step_files(step)?.into_iter().filter(|(relative, _)| !is_test_file(relative)) {
        inputs.insert(relative, file_hash(&path)?);
    }
    for (relative, path) in declared_inputs(step)? {
        inputs.insert(format!("inputs:{relative}"), file_hash(&path)?);
    }
    for probe in &step.param.upstream {
        let output = workflow.probe_output(step, probe)?;
        inputs
            .insert(format!("{PROBE_INPUT_PREFIX}{}", probe.run), blake3::hash(output.as_bytes()).to_hex().to_string());
    }
    inputs.insert(SOURCE_AMI_INPUT.into(), source_ami_id.to_string());
    let mut v1_inputs = inputs.clone();
    inputs.insert(STEP_PARAM_FILE.into(), step_param_hash(step));
    inputs.insert(WORKFLOW_PARAM_INPUT.into(), workflow_param_input(&workflow.param));
    v1_inputs.insert(WORKFLOW_PARAM_INPUT.into(), params_hash(workflow.param.keys_deciding_images_v1()));
    let mut fingerprint = Fingerprint::from_inputs(inputs);
    let v1 = Fingerprint::from_inputs(v1_inputs);
    fingerprint.v1_digest = Some(v1.digest).filter(|digest| *digest != fingerprint.digest);
    Ok(fingerprint)
}

/// A file of the step's image tests (`tests/`): it decides whether an image is good, not what the
/// image is, so it is no input of the fingerprint; `tests_digest` hashes these files instead.
fn is_test_file(relative: &str) -> bool {
    relative.strip_prefix(crate::workflow::TESTS_DIR).is_some_and(|rest| rest.starts_with('/'))
}

/// The hash of the step's `tests/` folder (every file's path, executable bit and content), as a
/// test run records it: a different one now means the tests changed since. None without tests.
pub fn tests_digest(step: &Step) -> Result<Option<String>> {
    let files: Vec<(String, PathBuf)> =
        step_files(step)?.into_iter().filter(|(relative, _)| is_test_file(relative)).collect();
    if files.is_empty() {
        return Ok(None);
    }
    let mut inputs = BTreeMap::new();
    for (relative, path) in files {
        inputs.insert(relative, file_hash(&path)?);
    }
    Ok(Some(Fingerprint::from_inputs(inputs).digest))
}

/// The workflow_param.json input: the hash of the keys that decide images.
pub fn workflow_param_input(param: &crate::config::WorkflowParam) -> String {
    params_hash(param.keys_deciding_images())
}

fn params_hash(params: serde_json::Map<String, Value>) -> String {
    blake3::hash(canonical(&Value::Object(params)).to_string().as_bytes()).to_hex().to_string()
}

/// The step folder's files that decide its AMI, by path relative to the folder, `/`-separated.
fn step_files(step: &Step) -> Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    let walker = ignore::WalkBuilder::new(&step.dir)
        .hidden(false)
        .parents(false)
        .ignore(false)
        .git_global(false)
        .git_exclude(false)
        .git_ignore(true)
        .require_git(false)
        // A linked file counts by what it links to, as packer reads it.
        .follow_links(true)
        .filter_entry(|entry| entry.file_name() != ".paw" && entry.file_name() != ".git")
        .build();
    for entry in walker {
        let entry = entry.map_err(|err| {
            Error::new(ErrorKind::Io, format!("cannot read the step folder: {err}")).in_file(&step.dir)
        })?;
        if !entry.file_type().is_some_and(|kind| kind.is_file()) {
            continue;
        }
        let relative = relative_name(entry.path().strip_prefix(&step.dir).expect("the walk stays in the folder"));
        // The SBOM a build leaves in the folder says what the image is, and does not decide it.
        if !is_rendered_output(&relative) && step.param.sbom.as_deref() != Some(relative.as_str()) {
            files.push((relative, entry.path().to_path_buf()));
        }
    }
    Ok(files)
}

/// A rendered file: straight in the step folder, and rendering's output by its name.
fn is_rendered_output(relative: &str) -> bool {
    !relative.contains('/') && crate::render::is_rendered_output(relative)
}

fn relative_name(path: &Path) -> String {
    path.components().map(|part| part.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// The files step_param.json's `"inputs"` globs match, relative to the step folder as written.
fn declared_inputs(step: &Step) -> Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for pattern in &step.param.inputs {
        let bad = |message: String| {
            Error::new(ErrorKind::Config, message)
                .at(step.param.json().key_location("inputs"))
                .help("\"inputs\" lists glob patterns relative to the step folder, e.g. \"../common/*.sh\"")
        };
        let full = step.dir.join(pattern);
        let matches = glob::glob(&full.to_string_lossy())
            .map_err(|err| bad(format!("\"{pattern}\" is not a glob pattern: {err}")))?;
        let before = files.len();
        for path in matches {
            let path = path.map_err(|err| bad(format!("cannot read a match of \"{pattern}\": {err}")))?;
            if path.is_file() {
                let relative = path.strip_prefix(&step.dir).map(relative_name).unwrap_or_else(|_| relative_name(&path));
                files.push((relative, path));
            }
        }
        if files.len() == before {
            return Err(bad(format!("the input \"{pattern}\" of step \"{}\" matches no file", step.id)));
        }
    }
    Ok(files)
}

/// step_param.json's hash: of its keys but `"lifecycle"` (what becomes of the image later),
/// `"test_timeout_minutes"` (how long its tests may take) and `"$schema"` (for editors), as
/// canonical JSON; so neither a policy, nor a comment, nor key order changes the image. (The
/// first fingerprints hashed the file as any other: `v1_digest`.)
fn step_param_hash(step: &Step) -> String {
    let mut keys = step.param.json().object.clone();
    keys.shift_remove(crate::config::LIFECYCLE);
    keys.shift_remove(crate::config::TEST_TIMEOUT);
    keys.shift_remove(crate::config::SCHEMA_KEY);
    // The probes count by what they print (`probe:` inputs), not by how they are run.
    keys.shift_remove(crate::config::UPSTREAM);
    params_hash(keys)
}

/// blake3 of a file's executable bit and content; other mode bits vary with the umask, not the AMI.
fn file_hash(path: &Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let content = std::fs::read(path).map_err(|err| Error::io(path, "read the file", err))?;
    let executable =
        std::fs::metadata(path).map_err(|err| Error::io(path, "read the file", err))?.permissions().mode() & 0o111 != 0;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[u8::from(executable)]);
    hasher.update(&content);
    Ok(hasher.finalize().to_hex().to_string())
}

/// JSON with every object's keys sorted, so that reordering keys changes nothing.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, Value> = map.iter().map(|(key, value)| (key, canonical(value))).collect();
            Value::Object(sorted.into_iter().map(|(key, value)| (key.clone(), value)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{STEP_PARAM_FILE, WORKFLOW_PARAM_FILE};

    fn workflow_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join(WORKFLOW_PARAM_FILE),
            r#"{"workflow_id": "w1", "root_base_ami_id": "ami-1", "root_base_ami_name": "base", "a": 1, "b": 2}"#,
        )
        .unwrap();
        std::fs::create_dir_all(root.join("s/templates")).unwrap();
        std::fs::create_dir_all(root.join("common")).unwrap();
        std::fs::write(root.join("s").join(STEP_PARAM_FILE), r#"{"step_id": "s", "inputs": ["../common/*.sh"]}"#)
            .unwrap();
        std::fs::write(root.join("s/templates/.pkr.hcl"), "source {}").unwrap();
        std::fs::write(root.join("s/.gitignore"), "/*.pkr.hcl\n/*.pkrvars.hcl\n*.tmp\n").unwrap();
        std::fs::write(root.join("common/setup.sh"), "echo hi").unwrap();
        dir
    }

    fn fp(dir: &Path, source: &str) -> Fingerprint {
        let workflow = Workflow::load(dir).unwrap();
        compute(&workflow, &workflow.steps()[0], source).unwrap()
    }

    #[test]
    fn what_counts_and_what_does_not() {
        let dir = workflow_dir();
        let root = dir.path();
        let base = fp(root, "ami-1");
        let names: Vec<_> = base.inputs.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                ".gitignore",
                "inputs:../common/setup.sh",
                "source_ami",
                "step_param.json",
                "templates/.pkr.hcl",
                "workflow_param.json"
            ]
        );
        // Rendered outputs, ignored files, paw's state and the workflow id change nothing.
        std::fs::write(root.join("s/s.pkr.hcl"), "rendered").unwrap();
        std::fs::write(root.join("s/scratch.tmp"), "x").unwrap();
        std::fs::create_dir_all(root.join("s/.paw")).unwrap();
        std::fs::write(root.join("s/.paw/x"), "x").unwrap();
        let params = std::fs::read_to_string(root.join(WORKFLOW_PARAM_FILE)).unwrap();
        std::fs::write(
            root.join(WORKFLOW_PARAM_FILE),
            params.replace("\"w1\"", "\"w2\"").replace("\"a\": 1, \"b\": 2", "\"b\": 2, \"a\": 1"),
        )
        .unwrap();
        assert_eq!(fp(root, "ami-1"), base);
        // Nor do a lifecycle policy, comments or key order in step_param.json.
        let step_param = std::fs::read_to_string(root.join("s/step_param.json")).unwrap();
        let object: serde_json::Map<String, Value> = serde_json::from_str(&step_param).unwrap();
        let mut reordered: Vec<(String, Value)> = object.into_iter().collect();
        reordered.reverse();
        reordered.push(("lifecycle".into(), serde_json::json!({"keep": 2})));
        let text = serde_json::to_string_pretty(&serde_json::Map::from_iter(reordered)).unwrap();
        std::fs::write(root.join("s/step_param.json"), format!("// a comment\n{text}")).unwrap();
        assert_eq!(fp(root, "ami-1").digest, base.digest);
        std::fs::write(root.join("s/step_param.json"), step_param).unwrap();

        // Content, the executable bit, declared inputs, params and the source AMI all do.
        let changed = |edit: &dyn Fn()| {
            edit();
            let now = fp(root, "ami-1");
            assert_ne!(now.digest, base.digest);
            now.changed_since(&base.inputs)
        };
        assert_eq!(
            changed(&|| std::fs::write(root.join("s/templates/.pkr.hcl"), "source { }").unwrap()),
            ["templates/.pkr.hcl"]
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(root.join("s/templates/.pkr.hcl"), "source {}").unwrap();
        assert_eq!(
            changed(&|| std::fs::set_permissions(root.join("common/setup.sh"), std::fs::Permissions::from_mode(0o755))
                .unwrap()),
            ["inputs:../common/setup.sh"]
        );
        assert_eq!(
            changed(&|| std::fs::write(root.join("s/new.sh"), "x").unwrap()),
            ["inputs:../common/setup.sh", "new.sh"]
        );
        assert_eq!(fp(root, "ami-2").changed_since(&fp(root, "ami-1").inputs), ["source_ami"]);
    }

    #[test]
    fn the_sbom_a_build_leaves_is_no_input() {
        let dir = workflow_dir();
        let root = dir.path();
        let step_param = root.join("s").join(STEP_PARAM_FILE);
        let text = std::fs::read_to_string(&step_param).unwrap();
        std::fs::write(&step_param, text.replacen('{', r#"{"sbom": "./out/sbom.json", "#, 1)).unwrap();
        let before = fp(root, "ami-1");
        std::fs::create_dir_all(root.join("s/out")).unwrap();
        std::fs::write(root.join("s/out/sbom.json"), r#"{"spdxVersion": "SPDX-2.3"}"#).unwrap();
        assert_eq!(fp(root, "ami-1").digest, before.digest);
        std::fs::write(root.join("s/out/other.json"), "{}").unwrap();
        assert_eq!(fp(root, "ami-1").changed_since(&before.inputs), ["out/other.json"], "only the SBOM is left out");
    }

    #[test]
    fn an_input_that_matches_nothing_is_an_error() {
        let dir = workflow_dir();
        std::fs::remove_file(dir.path().join("common/setup.sh")).unwrap();
        let workflow = Workflow::load(dir.path()).unwrap();
        let err = compute(&workflow, &workflow.steps()[0], "ami-1").unwrap_err();
        assert_eq!(err.message, "the input \"../common/*.sh\" of step \"s\" matches no file");
    }

    #[test]
    fn removed_inputs_are_named() {
        let now = Fingerprint::from_inputs(BTreeMap::from([("a".to_string(), "1".to_string())]));
        let earlier = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]);
        assert_eq!(now.changed_since(&earlier), ["b (removed)"]);
    }

    /// The image tests are no input of the image: a changed test keeps the fingerprint and changes
    /// the tests' own digest; so does their timeout's key. The tests are found by kind and name.
    #[test]
    fn tests_are_hashed_apart_from_the_image() {
        use std::os::unix::fs::PermissionsExt;
        let dir = workflow_dir();
        let step_dir = dir.path().join("s");
        let step = || Workflow::load(dir.path()).unwrap().step("s").unwrap().clone();
        let workflow = Workflow::load(dir.path()).unwrap();
        assert_eq!(tests_digest(&step()).unwrap(), None);
        assert!(step().image_tests().unwrap().is_empty());
        let before = compute(&workflow, &step(), "ami-1").unwrap();

        std::fs::create_dir_all(step_dir.join("tests/templates")).unwrap();
        std::fs::write(step_dir.join("tests/templates/boot.pkr.hcl"), "build {}").unwrap();
        std::fs::write(step_dir.join("tests/tags.sh"), "exit 0").unwrap();
        std::fs::set_permissions(step_dir.join("tests/tags.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(step_dir.join("tests/expected.txt"), "data, not a test").unwrap();
        std::fs::write(step_dir.join("tests/.hidden"), "no").unwrap();
        let tests = step().image_tests().unwrap();
        let found: Vec<(&str, crate::workflow::TestKind)> =
            tests.iter().map(|test| (test.name.as_str(), test.kind)).collect();
        assert_eq!(
            found,
            [("boot", crate::workflow::TestKind::Template), ("tags.sh", crate::workflow::TestKind::Local)]
        );
        let first = tests_digest(&step()).unwrap().expect("a digest with tests");
        assert_eq!(compute(&workflow, &step(), "ami-1").unwrap(), before);

        std::fs::write(step_dir.join("tests/tags.sh"), "exit 1").unwrap();
        let step_param = r#"{"step_id": "s", "inputs": ["../common/*.sh"], "test_timeout_minutes": 5}"#;
        std::fs::write(step_dir.join(STEP_PARAM_FILE), step_param).unwrap();
        assert_ne!(tests_digest(&step()).unwrap().unwrap(), first);
        let workflow = Workflow::load(dir.path()).unwrap();
        assert_eq!(compute(&workflow, &step(), "ami-1").unwrap().digest, before.digest);
        assert_eq!(step().param.test_timeout, std::time::Duration::from_secs(300));

        std::fs::write(step_dir.join(STEP_PARAM_FILE), r#"{"step_id": "s", "test_timeout_minutes": 0}"#).unwrap();
        let err = Workflow::load(dir.path()).unwrap_err();
        assert!(err.message.contains("\"test_timeout_minutes\" is 0, not a number of minutes"), "{err}");
        assert_eq!(err.location.unwrap().line, 1);
    }
}
