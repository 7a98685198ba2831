//! `step_param.json`: a step's parent, inputs, instance types, lifecycle and tests' timeout.

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
    file: JsonFile,
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
