//! Renders a step's Jinja2 templates exactly as the seed does (Jinja2 3, `builder` context), then
//! checks that the result parses as HCL.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use minijinja::value::{Serde, ValueKind};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::{Map, Value as Json};

use crate::error::{Error, ErrorKind, Location, Result};
use crate::limits;
use crate::workflow::{Step, Workflow};

const TEMPLATES_DIR: &str = "templates";
const RENDERED_SUFFIXES: [&str; 2] = ["pkr.hcl", "pkrvars.hcl"];
/// Stands in for the AMI of a parent that is not built yet: well-formed, so validation accepts it,
/// and owned by nobody, so a build from it can never start.
pub const PLACEHOLDER_AMI_ID: &str = "ami-00000000000000000";

/// The AMI a step starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAmi {
    pub id: String,
    pub name: String,
}

impl SourceAmi {
    pub fn placeholder(parent: &str) -> SourceAmi {
        SourceAmi { id: PLACEHOLDER_AMI_ID.to_string(), name: format!("paw-placeholder/{parent}-is-not-built-yet") }
    }

    pub fn is_placeholder(&self) -> bool {
        self.id == PLACEHOLDER_AMI_ID
    }
}

/// The seed's naming rule: `<root_base_ami_name without trailing "/">/<workflow_id>/<step_id>`.
pub fn output_ami_name(workflow: &Workflow, step: &Step) -> String {
    format!("{}/{}/{}", workflow.param.root_base_ami_name.trim_end_matches('/'), workflow.param.workflow_id, step.id)
}

/// The tag that holds a built AMI's fingerprint.
pub const FINGERPRINT_TAG: &str = "paw:fingerprint";

/// The tags of a step's AMI: the seed's, then `aws_tags`, then paw's own (which nothing overrides).
pub fn ami_tags(workflow: &Workflow, step: &Step, source: &SourceAmi) -> Vec<(String, String)> {
    let param = &workflow.param;
    let mut tags = vec![
        ("Name".to_string(), output_ami_name(workflow, step)),
        ("packer:base_ami_id".to_string(), source.id.clone()),
        ("packer:base_ami_name".to_string(), source.name.clone()),
        ("packer:root_base_ami_id".to_string(), param.root_base_ami_id.clone()),
        ("packer:root_base_ami_name".to_string(), param.root_base_ami_name.clone()),
    ];
    for (key, value) in &param.aws_tags {
        limits::set_tag(&mut tags, key, value);
    }
    limits::set_tag(&mut tags, "paw:workflow_id", &param.workflow_id);
    limits::set_tag(&mut tags, "paw:step_id", &step.id);
    tags
}

/// EC2's limits on the step's AMI name and tags, checked before anything runs.
pub fn check_limits(workflow: &Workflow, step: &Step, source: &SourceAmi) -> Result<()> {
    let json = workflow.param.json();
    limits::check_ami_name(&output_ami_name(workflow, step)).map_err(|message| {
        Error::new(ErrorKind::Limit, format!("step \"{}\": {message}", step.id))
            .at(json.key_location("root_base_ami_name"))
            .help("the name is <root_base_ami_name>/<workflow_id>/<step_id>: shorten or rename one of them")
    })?;
    // The paw:fingerprint tag is added at build time; count it now so that it cannot tip the limit.
    let mut tags = ami_tags(workflow, step, source);
    limits::set_tag(&mut tags, FINGERPRINT_TAG, "");
    limits::check_tags(&tags).map_err(|message| {
        Error::new(ErrorKind::Limit, format!("step \"{}\": {message}", step.id)).at(json.key_location("aws_tags")).help(
            format!(
                "paw adds {} tags of its own to aws_tags; keep the total within EC2's limits",
                tags.len() - workflow.param.aws_tags.len()
            ),
        )
    })
}

/// What templates see as `builder`.
pub fn builder_context(workflow: &Workflow, step: &Step, source: &SourceAmi, aws_region: &str) -> Json {
    let mut builder = Map::new();
    builder.insert("source_ami_id".into(), source.id.clone().into());
    builder.insert("source_ami_name".into(), source.name.clone().into());
    builder.insert("output_ami_name".into(), output_ami_name(workflow, step).into());
    builder.insert("workflow_param".into(), workflow.param.template_value(aws_region).into());
    builder.insert("step_param".into(), step.param.template_value().into());
    Json::Object(builder)
}

/// One rendered file, not yet written.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub path: PathBuf,
    pub text: String,
}

/// Renders every template of the step in memory; nothing is written if any of them fails.
pub fn render_step(workflow: &Workflow, step: &Step, source: &SourceAmi, aws_region: &str) -> Result<Vec<Rendered>> {
    let context = Value::from(Serde(builder_context(workflow, step, source, aws_region)));
    template_files(step)?
        .into_iter()
        .map(|template| {
            let source = crate::json::read_text(&template)?;
            let file_name = template.file_name().expect("a template has a name").to_string_lossy();
            Ok(Rendered {
                path: step.dir.join(format!("{}{file_name}", step.id)),
                text: render_template(&template, &source, &context)?,
            })
        })
        .collect()
}

/// The step's templates: files in `templates/` whose names end in `pkr.hcl` or `pkrvars.hcl`.
fn template_files(step: &Step) -> Result<Vec<PathBuf>> {
    let dir = step.dir.join(TEMPLATES_DIR);
    let entries = std::fs::read_dir(&dir).map_err(|err| {
        Error::new(ErrorKind::Config, format!("step \"{}\" has no readable {TEMPLATES_DIR}/ folder: {err}", step.id))
            .in_file(&dir)
            .help("put the Jinja2 templates .pkr.hcl, .variables.pkr.hcl and .pkrvars.hcl there (see `paw init`)")
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file() && is_rendered_name(path))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::new(ErrorKind::Config, format!("step \"{}\" has no templates", step.id))
            .in_file(&dir)
            .help("add at least a .pkr.hcl template; only names ending in pkr.hcl or pkrvars.hcl are rendered"));
    }
    Ok(files)
}

fn is_rendered_name(path: &Path) -> bool {
    let name = path.file_name().map(|name| name.to_string_lossy()).unwrap_or_default();
    RENDERED_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

fn render_template(path: &Path, source: &str, context: &Value) -> Result<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(|out, _state, value| out.write_str(&python_str(value)).map_err(minijinja::Error::from));
    let name = path.display().to_string();
    env.template_from_named_str(&name, source)
        .and_then(|template| template.render(minijinja::context! { builder => context }))
        .map_err(|err| template_error(path, source, &err))
}

fn template_error(path: &Path, source: &str, err: &minijinja::Error) -> Error {
    let location = Location::at(path, err.line().unwrap_or(0), 0);
    let detail = err.detail().map(|detail| format!(": {detail}")).unwrap_or_default();
    match err.kind() {
        minijinja::ErrorKind::UndefinedError => {
            let expression = err.range().and_then(|range| source.get(range)).unwrap_or("?").trim();
            Error::new(ErrorKind::Template, format!("undefined name in `{expression}`{detail}"))
                .at(location)
                .help("define the key in workflow_param.json or step_param.json, or guard it with `is defined`")
        }
        minijinja::ErrorKind::SyntaxError => Error::new(ErrorKind::Template, format!("template syntax error{detail}"))
            .at(location)
            .help("fix the Jinja2 syntax on that line"),
        kind => Error::new(ErrorKind::Template, format!("template error: {kind}{detail}")).at(location),
    }
}

/// Writes the rendered files after removing the step folder's old rendered files (as the seed does).
pub fn write_rendered(step: &Step, files: &[Rendered]) -> Result<()> {
    let entries = std::fs::read_dir(&step.dir).map_err(|err| Error::io(&step.dir, "list the step folder", err))?;
    for entry in entries.filter_map(|entry| entry.ok()) {
        let path = entry.path();
        if path.is_file() && is_rendered_name(&path) {
            std::fs::remove_file(&path).map_err(|err| Error::io(&path, "remove the old rendered file", err))?;
        }
    }
    for file in files {
        std::fs::write(&file.path, &file.text).map_err(|err| Error::io(&file.path, "write", err))?;
    }
    Ok(())
}

/// A step rendered, written and checked: ready for `packer validate` or `packer build`.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub source: SourceAmi,
    pub files: Vec<Rendered>,
    pub hcl: HclSummary,
}

impl Prepared {
    /// The rendered `*.pkrvars.hcl` files, handed to packer with `-var-file`.
    pub fn var_files(&self) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|file| file.path.to_string_lossy().ends_with(".pkrvars.hcl"))
            .map(|file| file.path.clone())
            .collect()
    }
}

/// Everything up to packer: EC2's limits, render, write, HCL check.
pub fn prepare_step(workflow: &Workflow, step: &Step, source: SourceAmi, aws_region: &str) -> Result<Prepared> {
    check_limits(workflow, step, &source)?;
    let files = render_step(workflow, step, &source, aws_region)?;
    write_rendered(step, &files)?;
    let hcl = check_hcl(&files)?;
    Ok(Prepared { source, files, hcl })
}

/// What the HCL check learnt about the rendered files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HclSummary {
    /// A `packer { required_plugins { ... } }` block: `packer init` must run first (packer ≥ 1.7).
    pub requires_plugins: bool,
}

/// Parses every rendered file as HCL; errors point at the rendered file's line and column.
pub fn check_hcl(files: &[Rendered]) -> Result<HclSummary> {
    let mut requires_plugins = false;
    for file in files {
        let body = hcl::parse(&file.text).map_err(|err| match err {
            hcl::Error::Parse(parse) => {
                Error::new(ErrorKind::Validation, format!("not valid HCL after rendering: {}", parse.message()))
                    .at(Location::at(&file.path, parse.location().line(), parse.location().column()))
                    .help("fix the template that produced this file, then render again")
            }
            other => {
                Error::new(ErrorKind::Validation, format!("not valid HCL after rendering: {other}")).in_file(&file.path)
            }
        })?;
        requires_plugins |= body
            .blocks()
            .filter(|block| block.identifier() == "packer")
            .any(|block| block.body().blocks().any(|inner| inner.identifier() == "required_plugins"));
    }
    Ok(HclSummary { requires_plugins })
}

/// Formats a value as Python's `str()` does, so output matches Jinja2's byte for byte.
fn python_str(value: &Value) -> String {
    match value.as_str() {
        Some(text) => text.to_string(),
        None => python_repr(value),
    }
}

/// Python's `repr()`, as Jinja2 shows values inside lists and dicts.
fn python_repr(value: &Value) -> String {
    match value.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::None => "None".into(),
        ValueKind::Bool => if value.is_true() { "True" } else { "False" }.into(),
        ValueKind::Number if value.is_integer() => value.to_string(),
        ValueKind::Number => python_float(f64::try_from(value.clone()).unwrap_or(f64::NAN)),
        ValueKind::String => python_string_repr(value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = value.try_iter().into_iter().flatten().map(|item| python_repr(&item)).collect();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let items: Vec<String> = value
                .try_iter()
                .into_iter()
                .flatten()
                .map(|key| {
                    let item = value.get_item(&key).unwrap_or_default();
                    format!("{}: {}", python_repr(&key), python_repr(&item))
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        _ => value.to_string(),
    }
}

fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let magnitude = x.abs();
    if magnitude >= 1e16 || (magnitude != 0.0 && magnitude < 1e-4) {
        let formatted = format!("{x:e}");
        let (mantissa, exponent) = formatted.split_once('e').expect("{:e} has an exponent");
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(digits) => ('-', digits),
            None => ('+', exponent),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let formatted = x.to_string();
    if formatted.contains('.') { formatted } else { format!("{formatted}.0") }
}

fn python_string_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_reprs() {
        let value = Value::from(Serde(serde_json::json!({
            "s": "it's", "q": "a\"b'c", "n": null, "t": true, "i": 3, "f": 0.5, "l": [1, "x", false]
        })));
        assert_eq!(
            python_str(&value),
            r#"{'s': "it's", 'q': 'a"b\'c', 'n': None, 't': True, 'i': 3, 'f': 0.5, 'l': [1, 'x', False]}"#
        );
        assert_eq!(python_str(&Value::from("plain")), "plain");
    }

    /// The expected files come from Jinja2 3 itself: tests/render/generate_expected.py.
    #[test]
    fn renders_byte_for_byte_as_jinja2() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/render");
        let workflow = Workflow::load(&fixture.join("workflow")).unwrap();
        let sources =
            [("step_a", "ami-0123456789abcdef0", "base/images/"), ("step_b", "ami-0fedcba9876543210", "parent-ami")];
        for (step_id, id, name) in sources {
            let step = workflow.step(step_id).unwrap();
            let source = SourceAmi { id: id.into(), name: name.into() };
            let files = render_step(&workflow, step, &source, "eu-west-3").unwrap();
            assert_eq!(files.len(), 2);
            for file in files {
                let name = file.path.file_name().unwrap();
                let expected = std::fs::read_to_string(fixture.join("expected").join(name)).unwrap();
                assert_eq!(file.text, expected, "{}", file.path.display());
            }
        }
    }

    #[test]
    fn python_floats() {
        assert_eq!(python_float(5.0), "5.0");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(1e15), "1000000000000000.0");
        assert_eq!(python_float(1.5e-5), "1.5e-05");
        assert_eq!(python_float(0.0001), "0.0001");
        assert_eq!(python_float(-2.25), "-2.25");
    }
}
