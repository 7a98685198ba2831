//! A workflow folder: workflow_param.json plus one sub-folder per step, linked into a tree by
//! `previous_step_id`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::config::{self, ParamOverride, STEP_PARAM_FILE, StepParam, VARIANTS, WORKFLOW_PARAM_FILE, WorkflowParam};
use crate::error::{Error, ErrorKind, Result};
use crate::json::JsonFile;

/// The folder of a step's Jinja2 templates.
pub const TEMPLATES_DIR: &str = "templates";
/// A step's image tests: `tests/templates/` (packer templates) and executables in `tests/`.
pub const TESTS_DIR: &str = "tests";

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub parent: Option<String>,
    pub dir: PathBuf,
    pub param: StepParam,
    /// No `templates/`: the step's AMI is made by hand, from an instance (the seed's
    /// `create_image_manually`; `paw images from-instance`), never by packer.
    pub manual: bool,
}

/// How an image test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestKind {
    /// A packer template (`tests/templates/NAME.pkr.hcl`) that launches an instance from the image.
    Template,
    /// An executable (`tests/NAME`) run on the machine running paw.
    Local,
}

/// The suffix of a test template's name: `boot.pkr.hcl` is the test `boot`.
pub const TEMPLATE_SUFFIX: &str = ".pkr.hcl";

/// One image test of a step (engine::image_tests runs them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTest {
    pub name: String,
    pub kind: TestKind,
    pub path: PathBuf,
}

impl Step {
    /// The step's image tests, templates then executables, each by name; none without `tests/`.
    /// Hidden files, and files of `tests/` that are not executable (a test's data), are not tests.
    pub fn image_tests(&self) -> Result<Vec<ImageTest>> {
        let dir = self.dir.join(TESTS_DIR);
        let mut tests = Vec::new();
        for (path, name) in visible_files(&dir.join(TEMPLATES_DIR))? {
            if let Some(test) = name.strip_suffix(TEMPLATE_SUFFIX).filter(|test| !test.is_empty()) {
                tests.push(ImageTest { name: test.to_string(), kind: TestKind::Template, path });
            }
        }
        for (path, name) in visible_files(&dir)? {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(&path).map_err(|err| Error::io(&path, "read the test", err))?;
            if meta.permissions().mode() & 0o111 != 0 {
                tests.push(ImageTest { name, kind: TestKind::Local, path });
            }
        }
        Ok(tests)
    }
}

/// The files of a folder that are not hidden, by name; none when there is no such folder.
fn visible_files(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(Error::io(dir, "list the tests", err)),
    };
    let mut files: Vec<(PathBuf, String)> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| (entry.path(), entry.file_name().to_string_lossy().into_owned()))
        .filter(|(path, name)| !name.starts_with('.') && path.is_file())
        .collect();
    files.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(files)
}

#[derive(Debug, Clone)]
pub struct Workflow {
    pub root: PathBuf,
    pub param: WorkflowParam,
    /// The line of images it makes: workflow_param.json's `"name"`, else the folder's name.
    /// Resolve, prune, channels, status and report stay within it.
    pub name: String,
    /// The variant this is of the workflow (its `"variants"` entry merged in), when it has variants.
    pub variant: Option<String>,
    /// In build order: parents first, siblings by step id.
    steps: Vec<Step>,
    /// What each upstream probe of its steps printed in this run, by the probe's path
    /// (`upstream::run_probes`); None until they ran.
    probe_outputs: Option<BTreeMap<PathBuf, String>>,
}

impl Workflow {
    pub fn load(root: &Path) -> Result<Workflow> {
        Workflow::load_with(root, &[])
    }

    /// The workflow, with these keys of workflow_param.json set from outside the file.
    pub fn load_with(root: &Path, overrides: &[ParamOverride]) -> Result<Workflow> {
        let param = WorkflowParam::load(&param_path(root)?, overrides)?;
        Workflow::with_param(root, param, None)
    }

    /// The workflow folder's steps, with this workflow_param.json.
    fn with_param(root: &Path, param: WorkflowParam, variant: Option<String>) -> Result<Workflow> {
        let mut steps = Vec::new();
        for dir in step_dirs(root)? {
            let step_param = StepParam::load(&dir.join(STEP_PARAM_FILE))?;
            steps.push(Step {
                id: step_param.step_id.clone(),
                parent: step_param.previous_step_id.clone(),
                manual: !dir.join(TEMPLATES_DIR).exists(),
                dir,
                param: step_param,
            });
        }
        if steps.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                format!("no steps: no sub-folder of {} holds a {STEP_PARAM_FILE}", root.display()),
            )
            .help("add a step folder with a step_param.json and a templates/ folder (see `paw init`)"));
        }
        let steps = order_steps(steps)?;
        // Each step's lifecycle policy, over the workflow's, checked once for every command.
        for step in &steps {
            param.lifecycle.with_step(&step.param)?;
        }
        let name = match &param.name {
            Some(name) => name.clone(),
            None => folder_name(root, &param)?,
        };
        let mut workflow = Workflow { root: root.to_path_buf(), param, name, variant, steps, probe_outputs: None };
        let workflow_id = workflow.param.workflow_id.clone();
        workflow.set_workflow_id(&workflow_id);
        Ok(workflow)
    }

    /// The workflow once per variant (only `chosen`, when given), each with its variant's keys set
    /// over the file's and `overrides` over both; the workflow itself when it has no variants. The
    /// file's own keys are defaults for the variants: a key every variant sets (the root base AMI)
    /// may be left out of them.
    pub fn load_variants(root: &Path, overrides: &[ParamOverride], chosen: Option<&str>) -> Result<Vec<Workflow>> {
        let param_path = param_path(root)?;
        let file = JsonFile::load(&param_path)?;
        let variants = config::variants(&file)?;
        let names: Vec<&str> = variants.iter().map(|(name, _)| name.as_str()).collect();
        match chosen {
            Some(variant) if names.is_empty() => {
                return Err(Error::new(ErrorKind::Usage, format!("--variant {variant}: the workflow has no variants"))
                    .in_file(&param_path)
                    .help("leave out --variant, or add \"variants\" to workflow_param.json"));
            }
            Some(variant) if !names.contains(&variant) => {
                return Err(Error::new(ErrorKind::Usage, format!("--variant {variant}: no such variant"))
                    .at(file.key_location(VARIANTS))
                    .help(format!("the variants are: {}", names.join(", "))));
            }
            _ if names.is_empty() => return Ok(vec![Workflow::load_with(root, overrides)?]),
            _ => {}
        }
        let location = file.key_location(VARIANTS);
        let chosen_variants = variants.iter().filter(|(name, _)| chosen.is_none_or(|chosen| chosen == name));
        chosen_variants
            .map(|(variant, keys)| {
                let mut all: Vec<ParamOverride> = keys
                    .iter()
                    .map(|(key, value)| ParamOverride {
                        key: key.clone(),
                        value: value.clone(),
                        origin: format!("{location} (variants.{variant}.{key})"),
                    })
                    .collect();
                all.extend(overrides.iter().cloned());
                Workflow::with_param(root, WorkflowParam::load(&param_path, &all)?, Some(variant.clone()))
            })
            .collect()
    }

    /// Sets the run's workflow id. A variant's is the id and the variant's name, `<id>-<variant>`:
    /// its own records, AMI names and journal entries.
    pub fn set_workflow_id(&mut self, workflow_id: &str) {
        self.param.workflow_id = match &self.variant {
            Some(variant) => format!("{workflow_id}-{variant}"),
            None => workflow_id.to_string(),
        };
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn set_probe_outputs(&mut self, outputs: BTreeMap<PathBuf, String>) {
        self.probe_outputs = Some(outputs);
    }

    /// What the step's probe printed in this run; an internal error when the probes did not run:
    /// nothing is fingerprinted from an upstream that was not read.
    pub fn probe_output(&self, step: &Step, probe: &config::Probe) -> Result<&str> {
        let path = crate::upstream::probe_path(step, probe);
        let output = self.probe_outputs.as_ref().and_then(|outputs| outputs.get(&path));
        output.map(String::as_str).ok_or_else(|| {
            Error::bug(format!("the upstream probe {} of step \"{}\" did not run in this run", probe.run, step.id))
        })
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.id == id)
    }

    /// The named steps in build order, or all of them when none is named.
    pub fn select(&self, ids: &[String]) -> Result<Vec<&Step>> {
        if let Some(unknown) = ids.iter().find(|id| self.step(id).is_none()) {
            let known: Vec<_> = self.steps.iter().map(|step| step.id.as_str()).collect();
            return Err(Error::new(ErrorKind::Usage, format!("no step \"{unknown}\" in this workflow"))
                .help(format!("the steps are: {}", known.join(", "))));
        }
        Ok(self.steps.iter().filter(|step| ids.is_empty() || ids.contains(&step.id)).collect())
    }

    /// Where paw keeps its own files for this workflow (catalog, logs); ignored by git.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".paw")
    }
}

fn param_path(root: &Path) -> Result<PathBuf> {
    let param_path = root.join(WORKFLOW_PARAM_FILE);
    if !param_path.is_file() {
        return Err(Error::new(ErrorKind::Config, format!("no {WORKFLOW_PARAM_FILE} in {}", root.display()))
            .help("point paw at a workflow folder with -w DIR, or create one with `paw init DIR`"));
    }
    Ok(param_path)
}

/// The workflow folder's name, as the workflow's name when workflow_param.json names none: what a
/// name may not hold becomes '-' ("My images" is My-images), leading symbols go.
fn folder_name(root: &Path, param: &WorkflowParam) -> Result<String> {
    let absolute = std::fs::canonicalize(root).map_err(|err| Error::io(root, "find the folder", err))?;
    let folder = absolute.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let name: String = folder
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(64)
        .collect();
    crate::config::check_workflow_name(&name).map_err(|_| {
        Error::new(ErrorKind::Config, format!("the folder's name \"{folder}\" cannot be the workflow's name"))
            .in_file(&param.path)
            .help("name the workflow in workflow_param.json: \"name\": \"web-base\"")
    })?;
    Ok(name)
}

/// Sub-folders that hold a step_param.json, by name; hidden folders are paw's or git's own.
fn step_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(root).map_err(|err| Error::io(root, "list the folder", err))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| Error::io(root, "list the folder", err))?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.path().join(STEP_PARAM_FILE).is_file() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// A step id becomes part of file names and AMI names: keep it to a plain file-name component.
pub fn check_step_id(id: &str) -> std::result::Result<(), String> {
    if config::is_plain_name(id) {
        Ok(())
    } else {
        Err(format!(
            "step id \"{id}\" is not a safe file-name component: use letters, digits, '-', '_' and '.', starting with a letter or digit"
        ))
    }
}

/// Checks the graph and puts the steps in build order: a depth-first walk from the roots,
/// siblings by step id, so that each branch stays together.
fn order_steps(steps: Vec<Step>) -> Result<Vec<Step>> {
    let mut by_id: BTreeMap<String, Step> = BTreeMap::new();
    for step in steps {
        check_step_id(&step.id)
            .map_err(|message| Error::new(ErrorKind::Graph, message).at(step.param.json().key_location("step_id")))?;
        if let Some(existing) = by_id.get(&step.id) {
            return Err(Error::new(
                ErrorKind::Graph,
                format!("duplicate step id \"{}\", also used by {}", step.id, existing.param.path.display()),
            )
            .at(step.param.json().key_location("step_id"))
            .help("every step needs its own step_id"));
        }
        by_id.insert(step.id.clone(), step);
    }
    let mut children: HashMap<Option<&str>, Vec<&str>> = HashMap::new();
    for step in by_id.values() {
        if let Some(parent) = &step.parent
            && !by_id.contains_key(parent)
        {
            let known: Vec<_> = by_id.keys().map(String::as_str).collect();
            return Err(Error::new(
                ErrorKind::Graph,
                format!("step \"{}\" names previous_step_id \"{parent}\", which no step has", step.id),
            )
            .at(step.param.json().key_location("previous_step_id"))
            .help(format!("use one of: {}, or null for a first step", known.join(", "))));
        }
        // BTreeMap iteration is by id, so every child list is sorted.
        children.entry(step.parent.as_deref()).or_default().push(&step.id);
    }
    let mut order: Vec<String> = Vec::with_capacity(by_id.len());
    let mut stack: Vec<&str> = children.get(&None).cloned().unwrap_or_default();
    stack.reverse();
    while let Some(id) = stack.pop() {
        order.push(id.to_string());
        if let Some(kids) = children.get(&Some(id)) {
            stack.extend(kids.iter().rev());
        }
    }
    if order.len() < by_id.len() {
        // Every step has at most one parent, so steps that no root reaches sit on a cycle.
        let stuck = by_id.keys().find(|id| !order.contains(id)).expect("a step is unreached");
        let cycle = cycle_from(stuck, &by_id);
        let step = &by_id[cycle[0].as_str()];
        return Err(Error::new(ErrorKind::Graph, format!("the steps form a cycle: {}", cycle.join(" -> ")))
            .at(step.param.json().key_location("previous_step_id"))
            .help("one of these steps must start from another one, or have previous_step_id null"));
    }
    Ok(order.into_iter().map(|id| by_id.remove(&id).expect("ordered ids exist")).collect())
}

/// Follows parents from `start` until a step repeats; returns the cycle, closed, e.g. a -> b -> a.
fn cycle_from(start: &str, by_id: &BTreeMap<String, Step>) -> Vec<String> {
    let mut path = vec![start.to_string()];
    loop {
        let parent = by_id[path.last().expect("path is not empty").as_str()]
            .parent
            .clone()
            .expect("a step on a cycle has a parent");
        if let Some(first) = path.iter().position(|id| *id == parent) {
            let mut cycle = path.split_off(first);
            cycle.push(parent);
            return cycle;
        }
        path.push(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_workflow(steps: &[(&str, &str, Option<&str>)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(WORKFLOW_PARAM_FILE),
            r#"{"workflow_id": "w", "root_base_ami_id": "ami-1", "root_base_ami_name": "base"}"#,
        )
        .unwrap();
        for (folder, id, parent) in steps {
            std::fs::create_dir(dir.path().join(folder)).unwrap();
            let parent = parent.map_or("null".to_string(), |p| format!("\"{p}\""));
            std::fs::write(
                dir.path().join(folder).join(STEP_PARAM_FILE),
                format!("{{\"step_id\": \"{id}\",\n \"previous_step_id\": {parent}}}"),
            )
            .unwrap();
        }
        dir
    }

    fn order(steps: &[(&str, &str, Option<&str>)]) -> Result<Vec<String>> {
        let dir = write_workflow(steps);
        Workflow::load(dir.path()).map(|w| w.steps().iter().map(|s| s.id.clone()).collect())
    }

    #[test]
    fn parents_come_first_and_siblings_by_id() {
        let ids = order(&[
            ("z", "worker", Some("runtime")),
            ("a", "web", Some("runtime")),
            ("m", "runtime", Some("base")),
            ("b", "base", None),
            ("c", "tools", Some("base")),
        ])
        .unwrap();
        assert_eq!(ids, ["base", "runtime", "web", "worker", "tools"]);
    }

    #[test]
    fn a_cycle_is_named() {
        let err = order(&[("a", "a", None), ("b", "b", Some("c")), ("c", "c", Some("b"))]).unwrap_err();
        assert_eq!(err.message, "the steps form a cycle: b -> c -> b");
        assert_eq!(err.location.unwrap().line, 2);
    }

    #[test]
    fn unknown_parent_and_duplicates_are_refused() {
        let err = order(&[("a", "a", None), ("b", "b", Some("nope"))]).unwrap_err();
        assert_eq!(err.message, "step \"b\" names previous_step_id \"nope\", which no step has");
        let err = order(&[("a", "same", None), ("b", "same", None)]).unwrap_err();
        assert!(err.message.starts_with("duplicate step id \"same\""), "{}", err.message);
    }

    #[test]
    fn step_ids_must_be_file_name_components() {
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a b", "ä"] {
            assert!(check_step_id(bad).is_err(), "{bad}");
        }
        for good in ["step1", "S_2", "a.b-c", "9"] {
            assert!(check_step_id(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn folder_names_need_not_equal_step_ids() {
        let dir = write_workflow(&[("01-base", "base", None)]);
        let workflow = Workflow::load(dir.path()).unwrap();
        assert!(workflow.steps()[0].dir.ends_with("01-base"));
        assert!(workflow.select(&["nope".into()]).is_err());
    }

    #[tokio::test]
    async fn variants_set_keys_over_the_file_and_each_has_its_own_workflow_id() {
        let dir = write_workflow(&[("s", "s", None)]);
        let param = dir.path().join(WORKFLOW_PARAM_FILE);
        let with_variants = |variants: &str| {
            let text = format!(
                r#"{{"name": "web", "workflow_id": "w", "root_base_ami_name": "base", "size": "s",
                "variants": {variants}}}"#
            );
            std::fs::write(&param, text).unwrap();
        };
        with_variants(
            r#"{"amd64": {"root_base_ami_id": "ami-1"}, "arm64": {"root_base_ami_id": "ami-2", "size": "l"}}"#,
        );
        let size = Some(ParamOverride::from_arg("size=xl").unwrap());
        let all = Workflow::load_variants(dir.path(), &[], None).unwrap();
        let ids: Vec<(&str, &str, &str)> = all
            .iter()
            .map(|w| (w.param.workflow_id.as_str(), w.param.root_base_ami_id.as_str(), w.variant.as_deref().unwrap()))
            .collect();
        assert_eq!(ids, [("w-amd64", "ami-1", "amd64"), ("w-arm64", "ami-2", "arm64")]);
        assert_eq!(all[1].param.template_value("r")["size"], "l");
        assert_eq!(all[0].name, "web");
        let arm = Workflow::load_variants(dir.path(), &size.into_iter().collect::<Vec<_>>(), Some("arm64")).unwrap();
        assert_eq!(
            (arm.len(), &arm[0].param.template_value("r")["size"]),
            (1, &serde_json::json!("xl")),
            "--param wins"
        );
        let mut renamed = arm[0].clone();
        renamed.set_workflow_id("ci-7");
        assert_eq!(renamed.param.workflow_id, "ci-7-arm64");

        // The list of variants is not an input: adding one changes no other variant's fingerprint.
        let before = crate::fingerprint::fingerprint(&all[0], &all[0].steps()[0], "ami-1").await.unwrap();
        with_variants(r#"{"amd64": {"root_base_ami_id": "ami-1"}, "riscv": {"root_base_ami_id": "ami-3"}}"#);
        let after = Workflow::load_variants(dir.path(), &[], Some("amd64")).unwrap();
        assert_eq!(crate::fingerprint::fingerprint(&after[0], &after[0].steps()[0], "ami-1").await.unwrap(), before);

        let err = Workflow::load_variants(dir.path(), &[], Some("arm64")).unwrap_err();
        assert_eq!(
            (err.message.as_str(), err.help.as_deref()),
            ("--variant arm64: no such variant", Some("the variants are: amd64, riscv"))
        );
        for (variants, message) in [
            (r#"{"amd64": "x"}"#, "variant \"amd64\" is not an object of keys to set"),
            (r#"{"amd 64": {}}"#, "variant \"amd 64\" is not a variant name"),
            (
                r#"{"amd64": {"workflow_id": "x"}}"#,
                "variant \"amd64\" sets \"workflow_id\", which a variant cannot set",
            ),
            (r#"{"amd64": {"region_name": "eu-west-1"}}"#, "sets \"region_name\", which a variant cannot set"),
            (r#"{"amd64": {"root_base_ami_id": "img-1"}}"#, "\"root_base_ami_id\" is \"img-1\", not an AMI id"),
        ] {
            with_variants(variants);
            let err = Workflow::load_variants(dir.path(), &[], None).unwrap_err();
            assert!(err.message.contains(message), "{variants}: {}", err.message);
            assert!(
                err.location.unwrap().to_string().contains("workflow_param.json:2:"),
                "{variants}: at the variants key"
            );
        }
        std::fs::write(&param, r#"{"workflow_id": "w", "root_base_ami_id": "ami-1", "root_base_ami_name": "b"}"#)
            .unwrap();
        let err = Workflow::load_variants(dir.path(), &[], Some("arm64")).unwrap_err();
        assert_eq!(err.message, "--variant arm64: the workflow has no variants");
    }
}
