//! `paw import`: a one-step workflow made from a plain Packer (HCL2) project. Its `*.pkr.hcl` and
//! `*.pkrvars.hcl` files become the step's templates, with packer's own `{{ }}` wrapped in
//! `{% raw %}`, and each Amazon source's `ami_name` and `source_ami` set to the variables paw fills
//! in; every other file is copied into the step folder, where packer runs. What was changed, and
//! what is left to the user, is returned line by line. The folder is written whole or not at all
//! (`files::write_folder_whole`).

use std::path::{Path, PathBuf};

use hcl::eval::{Context, Evaluate};
use serde_json::{Map, Value, json};

use crate::ami::AMI_BUILDERS;
use crate::config::{SCHEMA_KEY, STEP_PARAM_SCHEMA_REF, WORKFLOW_PARAM_SCHEMA_REF, schema_files};
use crate::error::{Error, ErrorKind, Result};
use crate::render::wrapped_in_raw;

/// A root base AMI id to replace, when the project finds its AMI by a filter.
const PLACEHOLDER_AMI: &str = "ami-00000000000000000";

const VARIABLES: &str = "# Added by `paw import`: paw gives every build its AMI's name and its source AMI.\n\
variable \"output_ami_name\" {\n  type = string\n}\n\n\
variable \"source_ami_id\" {\n  type = string\n}\n";

const VALUES: &str = "# Added by `paw import`: the values paw renders for this step.\n\
output_ami_name = \"{{ builder.output_ami_name }}\"\n\
source_ami_id   = \"{{ builder.source_ami_id }}\"\n";

pub struct Imported {
    pub dir: PathBuf,
    pub step_id: String,
    /// What was changed or added, and what is left to do, one line each.
    pub changes: Vec<String>,
}

pub fn import(project: &Path, into: &Path) -> Result<Imported> {
    let entries = std::fs::read_dir(project).map_err(|err| Error::io(project, "read the Packer project", err))?;
    let mut files: Vec<PathBuf> = entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect();
    files.sort();
    if !files.iter().any(|path| name_of(path).ends_with(".pkr.hcl")) {
        return Err(Error::new(ErrorKind::Usage, "no *.pkr.hcl file: not a Packer HCL2 project")
            .in_file(project)
            .help(
                "name the folder that holds the project's .pkr.hcl files (JSON templates: `packer hcl2_upgrade` first)",
            ));
    }
    if std::fs::read_dir(into).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(Error::new(ErrorKind::Usage, "the folder is not empty; paw import writes only a new folder")
            .in_file(into)
            .help("name a new folder with --into DIR"));
    }
    let step_id = step_id_for(project);
    let mut plan = Plan::default();
    for path in &files {
        plan.add(project, path)?;
    }
    plan.finish(&step_id, into)
}

/// The project folder's name (`.` resolved), as written; empty for `/`.
pub fn project_name(project: &Path) -> String {
    let absolute = std::path::absolute(project).unwrap_or_else(|_| project.to_path_buf());
    absolute.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The step's id: the project folder's name, in the letters a step id may hold.
fn step_id_for(project: &Path) -> String {
    let name: String = project_name(project)
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() { "image".into() } else { name }
}

fn name_of(path: &Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

/// What the new folder will hold, gathered before anything is written.
#[derive(Default)]
struct Plan {
    /// (path in the step folder, content, permissions to keep: an executable's).
    files: Vec<(String, Vec<u8>, Option<u32>)>,
    changes: Vec<String>,
    root_base_ami_id: Option<String>,
    region: Option<String>,
    filter: Option<Value>,
    declares: Vec<String>,
}

impl Plan {
    fn add(&mut self, project: &Path, path: &Path) -> Result<()> {
        let name = name_of(path);
        if name.starts_with('.') || !path.is_file() {
            if path.is_dir() && !name.starts_with('.') {
                self.add_folder(project, path)?;
            }
            return Ok(());
        }
        let bytes = std::fs::read(path).map_err(|err| Error::io(path, "read", err))?;
        if !(name.ends_with(".pkr.hcl") || name.ends_with(".pkrvars.hcl")) {
            self.files.push((name, bytes, executable_mode(path)));
            return Ok(());
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::new(ErrorKind::Usage, "not UTF-8 text").in_file(path).help("save it as UTF-8"))?;
        let body = hcl::parse(&text).map_err(|err| {
            Error::new(ErrorKind::Usage, format!("not valid HCL: {err}"))
                .in_file(path)
                .help("fix it so that `packer validate` accepts it, then import again")
        })?;
        self.learn(&body);
        let template = self.rewrite(&name, &text);
        self.files.push((format!("templates/.{name}"), template.into_bytes(), None));
        Ok(())
    }

    /// A folder of the project (scripts, files to upload): copied as it is.
    fn add_folder(&mut self, project: &Path, dir: &Path) -> Result<()> {
        for entry in ignore::WalkBuilder::new(dir).hidden(false).git_ignore(false).build() {
            let entry =
                entry.map_err(|err| Error::new(ErrorKind::Io, format!("cannot read {}: {err}", dir.display())))?;
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(path).map_err(|err| Error::io(path, "read", err))?;
            let relative = path.strip_prefix(project).unwrap_or(path).to_string_lossy().replace('\\', "/");
            self.files.push((relative, bytes, executable_mode(path)));
        }
        Ok(())
    }

    /// The project's source AMI, region and declared variables, as far as they are plain values.
    fn learn(&mut self, body: &hcl::Body) {
        let plain = |expr: &hcl::Expression| match expr.evaluate(&Context::new()) {
            Ok(hcl::Value::String(text)) => Some(text),
            _ => None,
        };
        for block in body.blocks() {
            match (block.identifier(), block.labels()) {
                ("variable", [name]) => self.declares.push(name.as_str().to_string()),
                ("source", [kind, _]) if AMI_BUILDERS.contains(&kind.as_str()) => {
                    for attribute in block.body().attributes() {
                        match attribute.key() {
                            "source_ami" => {
                                self.root_base_ami_id = self.root_base_ami_id.take().or(plain(attribute.expr()))
                            }
                            "region" => self.region = self.region.take().or(plain(attribute.expr())),
                            _ => {}
                        }
                    }
                    for filter in block.body().blocks().filter(|inner| inner.identifier() == "source_ami_filter") {
                        let value = |key: &str| {
                            let attribute = filter.body().attributes().find(|attribute| attribute.key() == key)?;
                            attribute.expr().evaluate(&Context::new()).ok()
                        };
                        let name = match value("filters") {
                            Some(hcl::Value::Object(filters)) => {
                                filters.get("name").and_then(|name| name.as_str()).map(str::to_string)
                            }
                            _ => None,
                        };
                        if let (Some(name), Some(hcl::Value::Array(owners))) = (name, value("owners")) {
                            let owners: Vec<&str> = owners.iter().filter_map(|owner| owner.as_str()).collect();
                            self.filter = Some(json!({"name": name, "owners": owners}));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The file as a template: packer's `{{ }}` wrapped in raw, and in each Amazon source block
    /// `ami_name` and `source_ami` set to paw's variables (a `source_ami_filter` commented out).
    fn rewrite(&mut self, name: &str, text: &str) -> String {
        let mut lines = Vec::new();
        // Depth of braces inside an Amazon source block (0: outside; 1: its own attributes), and
        // inside a source_ami_filter block in it (commented out, line by line).
        let (mut depth, mut filter_depth) = (0usize, 0usize);
        for (number, line) in text.lines().enumerate() {
            let at = format!("{name}:{}", number + 1);
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let opens = depth == 0
                && trimmed.starts_with("source")
                && AMI_BUILDERS.iter().any(|kind| trimmed.contains(&format!("\"{kind}\"")));
            let mut out = line.to_string();
            let in_filter = filter_depth > 0;
            let starts_filter = !in_filter && depth == 1 && trimmed.starts_with("source_ami_filter");
            if in_filter {
                out = format!("# {line}");
            } else if starts_filter {
                out = format!("# {line}");
                self.changes.push(format!("{at}: source_ami_filter commented out (paw gives the source AMI)"));
                if !has_source_ami(text) {
                    lines.push(format!("{indent}source_ami = var.source_ami_id"));
                }
            } else if let Some((key, variable)) =
                [("ami_name", "var.output_ami_name"), ("source_ami", "var.source_ami_id")]
                    .into_iter()
                    .find(|(key, _)| depth == 1 && is_attribute(trimmed, key))
            {
                // The key and its `=` as they were written (aligned with their neighbours).
                let assignment = &line[..line.find('=').expect("an attribute has =") + 1];
                out = format!("{assignment} {variable}");
                self.changes.push(format!("{at}: `{}` → `{key} = {variable}`", trimmed.trim_end()));
            }
            let (open, close) = braces(line);
            if in_filter || starts_filter {
                filter_depth = (filter_depth + open).saturating_sub(close);
            }
            if opens || depth > 0 {
                depth = (depth + open).saturating_sub(close);
            }
            if let Some(wrapped) = wrapped_in_raw(&out) {
                self.changes.push(format!("{at}: packer's {{{{ }}}} wrapped in {{% raw %}}"));
                out = wrapped;
            }
            lines.push(out);
        }
        let mut template = lines.join("\n");
        if text.ends_with('\n') {
            template.push('\n');
        }
        template
    }

    fn finish(mut self, step_id: &str, into: &Path) -> Result<Imported> {
        if !self.declares.iter().any(|name| name == "output_ami_name") {
            self.files.push(("templates/.paw.variables.pkr.hcl".into(), VARIABLES.as_bytes().to_vec(), None));
            self.changes
                .push("added templates/.paw.variables.pkr.hcl: variables output_ami_name and source_ami_id".into());
        }
        self.files.push(("templates/.paw.pkrvars.hcl".into(), VALUES.as_bytes().to_vec(), None));
        self.changes.push("added templates/.paw.pkrvars.hcl: their values, from paw".into());
        let mut param = Map::new();
        param.insert(SCHEMA_KEY.into(), json!(WORKFLOW_PARAM_SCHEMA_REF));
        param.insert("workflow_id".into(), json!(format!("{step_id}-1")));
        if let Some(region) = &self.region {
            param.insert("region_name".into(), json!(region));
        }
        let root = match self.root_base_ami_id.clone().filter(|id| id.starts_with("ami-")) {
            Some(id) => id,
            None => {
                self.changes.push(format!(
                    "left to do: workflow_param.json's root_base_ami_id is a placeholder ({PLACEHOLDER_AMI}): {}",
                    if self.filter.is_some() {
                        "`paw base-ami update` sets it from root_base_ami_filter (the project's source_ami_filter)"
                    } else {
                        "write the source AMI's id there"
                    }
                ));
                PLACEHOLDER_AMI.to_string()
            }
        };
        param.insert("root_base_ami_id".into(), json!(root));
        param.insert("root_base_ami_name".into(), json!(format!("imported/{step_id}")));
        self.changes.push(
            "left to do: workflow_param.json's root_base_ami_name is a stand-in: write the source AMI's name there \
             (paw names each AMI <root_base_ami_name>/<workflow_id>/<step_id>)"
                .into(),
        );
        if let Some(filter) = &self.filter {
            param.insert("root_base_ami_filter".into(), filter.clone());
        }
        let param = serde_json::to_string_pretty(&Value::Object(param)).expect("JSON serialises") + "\n";
        let step_param = json!({SCHEMA_KEY: STEP_PARAM_SCHEMA_REF, "step_id": step_id, "previous_step_id": null});
        let step_param = serde_json::to_string_pretty(&step_param).expect("JSON serialises") + "\n";
        let mut written = vec![
            ("workflow_param.json".to_string(), param.into_bytes(), None),
            (format!("{step_id}/step_param.json"), step_param.into_bytes(), None),
        ];
        written.extend(self.files.into_iter().map(|(path, bytes, mode)| (format!("{step_id}/{path}"), bytes, mode)));
        written.extend(schema_files().map(|(path, text)| (path.to_string(), text.into_bytes(), None)));
        // The folder whole, or nothing: a failure leaves no partial workflow behind.
        if let Some(parent) = into.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| Error::io(parent, "create the folder", err))?;
        }
        crate::files::write_folder_whole(into, &written).map_err(|err| Error::io(into, "create", err))?;
        Ok(Imported { dir: into.to_path_buf(), step_id: step_id.to_string(), changes: self.changes })
    }
}

fn is_attribute(trimmed: &str, key: &str) -> bool {
    trimmed
        .strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('=') && !rest.trim_start().starts_with("=="))
}

fn has_source_ami(text: &str) -> bool {
    text.lines().any(|line| is_attribute(line.trim_start(), "source_ami"))
}

/// The braces a line opens and closes, outside strings and comments.
fn braces(line: &str) -> (usize, usize) {
    let (mut open, mut close, mut in_string, mut escaped) = (0, 0, false, false);
    for c in line.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '#' if !in_string => break,
            '{' if !in_string => open += 1,
            '}' if !in_string => close += 1,
            _ => {}
        }
    }
    (open, close)
}

/// 0o755 for an executable file (a script the build runs), to keep; None for any other.
fn executable_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o111 != 0).then_some(0o755)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project that finds its source AMI by a filter: the filter is commented out, paw's source
    /// AMI takes its place, and its name and owners become the workflow's root_base_ami_filter.
    #[test]
    fn a_source_ami_filter_becomes_the_root_base_ami_filter() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("Base Image");
        std::fs::create_dir(&project).unwrap();
        let source = "source \"amazon-ebs\" \"base\" {\n  ami_name = \"base\"\n  source_ami_filter {\n    filters = {\n      \
                      name = \"ubuntu/images/*22.04*\"\n    }\n    owners      = [\"099720109477\"]\n    most_recent = true\n  }\n  \
                      region = \"eu-west-1\"\n}\n\nbuild {\n  sources = [\"source.amazon-ebs.base\"]\n}\n";
        std::fs::write(project.join("base.pkr.hcl"), source).unwrap();
        let into = dir.path().join("wf");
        let imported = import(&project, &into).unwrap();
        assert_eq!(imported.step_id, "base-image");
        let template = std::fs::read_to_string(into.join("base-image/templates/.base.pkr.hcl")).unwrap();
        let expected = "source \"amazon-ebs\" \"base\" {\n  ami_name = var.output_ami_name\n  source_ami = var.source_ami_id\n#   \
                        source_ami_filter {\n#     filters = {\n#       name = \"ubuntu/images/*22.04*\"\n#     }\n#     owners      = \
                        [\"099720109477\"]\n#     most_recent = true\n#   }\n  region = \"eu-west-1\"\n}\n";
        assert!(template.starts_with(expected), "{template}");
        let param: Value =
            serde_json::from_str(&std::fs::read_to_string(into.join("workflow_param.json")).unwrap()).unwrap();
        assert_eq!(param["root_base_ami_id"], PLACEHOLDER_AMI);
        assert_eq!(param["root_base_ami_filter"], json!({"name": "ubuntu/images/*22.04*", "owners": ["099720109477"]}));
        assert!(imported.changes.iter().any(|change| change.contains("`paw base-ami update` sets it")));
        assert_eq!(param[SCHEMA_KEY], WORKFLOW_PARAM_SCHEMA_REF, "editors find the schema, as after paw init");
        let step: Value =
            serde_json::from_str(&std::fs::read_to_string(into.join("base-image/step_param.json")).unwrap()).unwrap();
        assert_eq!(step[SCHEMA_KEY], STEP_PARAM_SCHEMA_REF);
        for (path, text) in schema_files() {
            assert_eq!(std::fs::read_to_string(into.join(path)).unwrap(), text);
        }
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!left.iter().any(|name| name.ends_with(".partial")), "{left:?}");
    }
}
