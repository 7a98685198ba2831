//! `step_param.json`: a step's parent, inputs, upstream probes, instance types, lifecycle,
//! tests' timeout and SBOM.

use std::path::Component;

use super::*;

#[derive(Debug, Clone)]
pub struct StepParam {
    pub path: PathBuf,
    pub step_id: String,
    pub previous_step_id: Option<String>,
    pub metadata: Map<String, Value>,
    /// Files outside the step folder that the step's AMI depends on (glob patterns, relative to it).
    pub inputs: Vec<String>,
    /// EC2 instance types to build on, one per attempt (`-var instance_type=…`): the first, then
    /// the next when packer failed for a passing cause such as no capacity.
    pub instance_types: Vec<String>,
    /// `"lifecycle"`: this step's keys of the retention policy, over the workflow's.
    pub lifecycle: LifecyclePolicy,
    /// `"test_timeout_minutes"`: how long each of the step's image tests may run (30 by default).
    pub test_timeout: std::time::Duration,
    /// `"upstream"`: executables run at plan time whose output joins the fingerprint: what moves
    /// outside the folder (a package repository's Release file, a vendor's latest version).
    pub upstream: Vec<Probe>,
    /// `"sbom"`: the file, relative to the step folder, that the step's provisioners leave there
    /// (SPDX or CycloneDX JSON): stored with the image's statement. Not an input of the fingerprint.
    pub sbom: Option<String>,
    file: JsonFile,
}

pub const SBOM: &str = "sbom";

/// `"sbom": "sbom.spdx.json"`: a file in the step folder.
fn sbom(file: &JsonFile) -> Result<Option<String>> {
    let Some(name) = file.optional_string(SBOM)? else { return Ok(None) };
    let path = Path::new(&name);
    let inside = path.components().all(|part| matches!(part, Component::Normal(_) | Component::CurDir));
    // As the fingerprint names the folder's files: `/`-separated, without `./`.
    let normal: Vec<String> = path
        .components()
        .filter_map(|part| match part {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    if !inside || normal.is_empty() {
        return Err(file
            .key_error(SBOM, format!("\"{SBOM}\" is \"{name}\", not a file's path inside the step folder"))
            .help(format!("write e.g. \"{SBOM}\": \"sbom.spdx.json\", where the step's provisioners leave it")));
    }
    Ok(Some(normal.join("/")))
}

/// An upstream probe (`upstream::run_probes` runs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The executable as written: a path relative to the step folder.
    pub run: String,
    pub timeout: std::time::Duration,
    /// Whether it gets AWS credentials (the environment's and the profile's); not unless asked.
    pub aws: bool,
}

pub const UPSTREAM: &str = "upstream";
const DEFAULT_PROBE_TIMEOUT_SECONDS: u64 = 60;

/// `"upstream": ["./probes/apt-release.sh", {"run": "./probes/tag.sh", "timeout_seconds": 120, "aws": true}]`.
fn upstream(file: &JsonFile) -> Result<Vec<Probe>> {
    let example =
        r#""upstream": ["./probes/apt-release.sh", {"run": "./probes/tag.sh", "timeout_seconds": 120, "aws": true}]"#;
    let wrong =
        |what: String| file.key_error(UPSTREAM, format!("\"{UPSTREAM}\" {what}")).help(format!("write e.g. {example}"));
    let probes = match file.object.get(UPSTREAM) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(probes)) => probes,
        Some(_) => return Err(wrong("is not a list of probes".into())),
    };
    let mut read = Vec::new();
    for probe in probes {
        let (run, timeout, aws) = match probe {
            Value::String(run) => (run.clone(), None, None),
            Value::Object(keys) => {
                if let Some(unknown) =
                    keys.keys().find(|key| !matches!(key.as_str(), "run" | "timeout_seconds" | "aws"))
                {
                    return Err(wrong(format!("has a probe with an unknown key \"{unknown}\"")));
                }
                let Some(Value::String(run)) = keys.get("run") else {
                    return Err(wrong("has a probe without \"run\", the executable".into()));
                };
                (run.clone(), keys.get("timeout_seconds").filter(|value| !value.is_null()), keys.get("aws"))
            }
            other => return Err(wrong(format!("has {other}, neither a path nor a probe object"))),
        };
        if run.is_empty() || Path::new(&run).is_absolute() {
            return Err(wrong(format!("has \"{run}\", not a path relative to the step folder")));
        }
        let seconds = match timeout {
            None => DEFAULT_PROBE_TIMEOUT_SECONDS,
            Some(value) => value.as_u64().filter(|seconds| (1..=600).contains(seconds)).ok_or_else(|| {
                wrong(format!("gives {run} a timeout_seconds of {value}, not a number of seconds from 1 to 600"))
            })?,
        };
        let aws = match aws {
            None | Some(Value::Null) => false,
            Some(Value::Bool(aws)) => *aws,
            Some(other) => return Err(wrong(format!("gives {run} an \"aws\" of {other}, not true or false"))),
        };
        if read.iter().any(|probe: &Probe| probe.run == run) {
            return Err(wrong(format!("names {run} twice")));
        }
        read.push(Probe { run, timeout: std::time::Duration::from_secs(seconds), aws });
    }
    Ok(read)
}

/// The step_param.json key of the image tests' timeout, in minutes: like `"lifecycle"`, it says
/// nothing about the image, so it is not an input of its fingerprint.
pub const TEST_TIMEOUT: &str = "test_timeout_minutes";
pub(super) const DEFAULT_TEST_TIMEOUT_MINUTES: u64 = 30;

pub(super) fn test_timeout(file: &JsonFile) -> Result<std::time::Duration> {
    let minutes = match file.object.get(TEST_TIMEOUT) {
        None | Some(Value::Null) => DEFAULT_TEST_TIMEOUT_MINUTES,
        Some(value) => value.as_u64().filter(|minutes| (1..=24 * 60).contains(minutes)).ok_or_else(|| {
            file.key_error(
                TEST_TIMEOUT,
                format!("\"{TEST_TIMEOUT}\" is {value}, not a number of minutes from 1 to 1440"),
            )
            .help(format!("write e.g. \"{TEST_TIMEOUT}\": 10, or leave it out for {DEFAULT_TEST_TIMEOUT_MINUTES}"))
        })?,
    };
    Ok(std::time::Duration::from_secs(minutes * 60))
}

impl StepParam {
    pub fn load(path: &Path) -> Result<StepParam> {
        let file = JsonFile::load(path)?;
        Ok(StepParam {
            path: path.to_path_buf(),
            step_id: file.required_string("step_id", "step1")?,
            previous_step_id: file.optional_string("previous_step_id")?,
            metadata: file.optional_map("metadata")?,
            inputs: file.string_list("inputs")?,
            instance_types: file.string_list("instance_types")?,
            lifecycle: LifecyclePolicy::of(&file)?,
            test_timeout: test_timeout(&file)?,
            upstream: upstream(&file)?,
            sbom: sbom(&file)?,
            file,
        })
    }

    /// What templates see as `builder.step_param`.
    pub fn template_value(&self) -> Map<String, Value> {
        let mut map = self.file.object.clone();
        map.entry("previous_step_id").or_insert(Value::Null);
        map.entry("metadata").or_insert(Value::Object(Map::new()));
        map
    }

    pub fn json(&self) -> &JsonFile {
        &self.file
    }
}
