//! Renders a step's Jinja2 templates exactly as the seed does (Jinja2 3, `builder` context), then
//! checks that the result parses as HCL.

mod hcl_check;
mod jinja;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use minijinja::value::Serde;
use minijinja::{Environment, Value};
use serde_json::{Map, Value as Json};

use crate::ami::{self, AmiRef};
use crate::error::{Error, ErrorKind, Location, Result};
use crate::workflow::{Step, TEMPLATES_DIR, Workflow};

pub use hcl_check::{HclSummary, check_hcl, parse_rendered};
pub use jinja::packer_syntax::wrapped_in_raw;

const RENDERED_SUFFIXES: [&str; 2] = ["pkr.hcl", "pkrvars.hcl"];
/// What templates see as `builder`.
pub fn builder_context(workflow: &Workflow, step: &Step, source: &AmiRef, aws_region: &str) -> Json {
    let mut builder = Map::new();
    builder.insert("source_ami_id".into(), source.id.clone().into());
    builder.insert("source_ami_name".into(), source.name.clone().into());
    builder.insert("output_ami_name".into(), ami::output_ami_name(workflow, step).into());
    builder.insert("workflow_param".into(), workflow.param.template_value(aws_region).into());
    builder.insert("step_param".into(), step.param.template_value().into());
    Json::Object(builder)
}

/// One of the step's test templates (`tests/templates/`), rendered in memory and checked as HCL
/// (an error points at the template): the step's `builder` context, plus the image under test
/// (`test_ami_id`, `test_ami_name`) and the absolute path of the step's `tests/` folder
/// (`test_dir`), for provisioners' files.
pub fn render_test(
    workflow: &Workflow,
    step: &Step,
    source: &AmiRef,
    aws_region: &str,
    image: &AmiRef,
    template: &Path,
) -> Result<String> {
    let mut builder = builder_context(workflow, step, source, aws_region);
    let test_dir = std::path::absolute(step.dir.join(crate::workflow::TESTS_DIR))
        .map_err(|err| Error::io(&step.dir, "find the tests folder", err))?;
    builder["test_ami_id"] = image.id.clone().into();
    builder["test_ami_name"] = image.name.clone().into();
    builder["test_dir"] = test_dir.to_string_lossy().into_owned().into();
    let source_text = crate::json::read_text(template)?;
    let text = render_template(template, &source_text, &Value::from(Serde(builder)))?;
    let rendered = Rendered { path: template.to_path_buf(), text };
    parse_rendered(&rendered)?;
    Ok(rendered.text)
}

/// One rendered file, not yet written.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub path: PathBuf,
    pub text: String,
}

/// Renders every template of the step in memory; nothing is written if any of them fails.
pub fn render_step(workflow: &Workflow, step: &Step, source: &AmiRef, aws_region: &str) -> Result<Vec<Rendered>> {
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
        .filter(|path| path.is_file() && is_template_name(&path.file_name().unwrap_or_default().to_string_lossy()))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::new(ErrorKind::Config, format!("step \"{}\" has no templates", step.id))
            .in_file(&dir)
            .help("add at least a .pkr.hcl template; only names ending in pkr.hcl or pkrvars.hcl are rendered"));
    }
    Ok(files)
}

/// A template, in `templates/`: a name ending in `pkr.hcl` or `pkrvars.hcl` (`.pkr.hcl` itself).
fn is_template_name(name: &str) -> bool {
    RENDERED_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

/// A rendered file, straight in the step folder (`<step_id>.pkr.hcl`, ...): what rendering
/// replaces and the fingerprint leaves out. Hidden files are not, as the seed's `*.pkr.hcl` glob
/// does not match them either.
pub fn is_rendered_output(name: &str) -> bool {
    !name.starts_with('.') && is_template_name(name)
}

fn render_template(path: &Path, source: &str, context: &Value) -> Result<String> {
    render_template_with(path, source, minijinja::context! { builder => context })
}

/// Renders one template with `context` as its globals, as Jinja2's `Template(source).render(**context)`.
/// Whatever the template holds, this returns: it renders on a thread of its own, so that a panic
/// in minijinja or in paw's filters becomes an error naming the template, never a crash of a run
/// that may have packer builds to clean up.
fn render_template_with(path: &Path, source: &str, context: Value) -> Result<String> {
    let outcome = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("paw-render".into())
            .stack_size(jinja::syntax::STACK_BYTES)
            .spawn_scoped(scope, || {
                CATCHING_PANICS.set(true);
                render_on_this_thread(path, source, context)
            })
            .map(|render| render.join())
    });
    match outcome {
        Ok(Ok(rendered)) => rendered,
        Ok(Err(panic)) => {
            let what = crate::error::panic_message(panic.as_ref());
            Err(Error::new(ErrorKind::Internal, format!("paw crashed rendering this template: {what}"))
                .in_file(path)
                .help("this is a bug in paw, not in the template: please report it with the template"))
        }
        Err(err) => Err(Error::io(path, "start a thread to render", err)),
    }
}

fn render_on_this_thread(path: &Path, source: &str, context: Value) -> Result<String> {
    static JINJA2: LazyLock<Environment<'static>> = LazyLock::new(jinja::environment);
    let prepared = jinja::syntax::prepare(source).map_err(|refusal| {
        Error::new(ErrorKind::Template, refusal.message).at(Location::at(path, refusal.line, 0)).help(refusal.help)
    })?;
    let name = path.display().to_string();
    let render = || {
        let template = JINJA2.template_from_named_str(&name, &prepared)?;
        let mut out = BoundedOutput::default();
        template.render_captured_to(context, &mut out)?;
        Ok(String::from_utf8_lossy(&out.0).into_owned())
    };
    render().map_err(|err| template_error(path, &prepared, &err))
}

thread_local! {
    static CATCHING_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True on a thread that renders a template: a panic there becomes the render's error, so the
/// binary's panic hook has nothing to print.
pub fn panics_are_caught() -> bool {
    CATCHING_PANICS.get()
}

/// A rendered file in the making, refused once it would pass jinja::MAX_BYTES: minijinja then
/// reports the line that wrote past it.
#[derive(Default)]
struct BoundedOutput(Vec<u8>);

impl std::io::Write for BoundedOutput {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + bytes.len() > jinja::MAX_BYTES {
            return Err(std::io::Error::other(format!(
                "the rendered file would be over paw's limit of {} MiB",
                jinja::MAX_BYTES >> 20
            )));
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn template_error(path: &Path, source: &str, err: &minijinja::Error) -> Error {
    let line = err.line().unwrap_or(0);
    let location = Location::at(path, line, 0);
    let detail = err.detail().unwrap_or_default();
    let line_text = source.lines().nth(line.saturating_sub(1)).unwrap_or_default();
    if matches!(err.kind(), minijinja::ErrorKind::SyntaxError | minijinja::ErrorKind::UndefinedError)
        && let Some(rewritten) = wrapped_in_raw(line_text)
    {
        return Error::new(
            ErrorKind::Template,
            "packer's own template syntax (`{{ .Name }}`, `{{timestamp}}`, ...) is read as Jinja2 here",
        )
        .at(location)
        .help(format!(
            "wrap it in {{% raw %}}...{{% endraw %}} so that Jinja2 passes it to packer untouched:\n    {}",
            rewritten.trim()
        ));
    }
    let (message, help) = match err.kind() {
        minijinja::ErrorKind::UndefinedError => {
            let expression = err.range().and_then(|range| source.get(range)).unwrap_or("?").trim();
            // A loop's iterable is wrapped by the syntax pass; the name is in the detail.
            let message = match detail {
                "" => format!("undefined name in `{expression}`"),
                detail if expression.contains(jinja::syntax::ITERABLE_FILTER) => format!("undefined name: {detail}"),
                detail => format!("undefined name in `{expression}`: {detail}"),
            };
            (message, "define the key in workflow_param.json or step_param.json, or guard it with `is defined`")
        }
        minijinja::ErrorKind::SyntaxError => syntax_error(detail),
        minijinja::ErrorKind::OutOfFuel => (
            format!(
                "the template does too much work: over {} steps or {} MiB of values",
                jinja::FUEL,
                (jinja::FUEL * 64) >> 20
            ),
            "look for a loop that never ends or a value that grows without bound (a width, a count, a repeat) on that line",
        ),
        minijinja::ErrorKind::WriteFailure => (
            format!("the rendered file would be over paw's limit of {} MiB", jinja::MAX_BYTES >> 20),
            "look for a loop or a width on that line that makes far more text than a packer template needs",
        ),
        // minijinja has no `%` on strings; Python's %-formatting is the format filter's job.
        minijinja::ErrorKind::InvalidOperation if detail.contains("% operator on unsupported types string") => (
            "paw does not support Python's `%` operator on strings".into(),
            "use the format filter, which Jinja2 has too: `\"%s-%d\" | format(a, b)`",
        ),
        minijinja::ErrorKind::InvalidOperation if detail.starts_with("paw does not support") => (
            detail.to_string(),
            "paw renders as Jinja2 3.1 does, or refuses; see \"Differences from the seed\" in the README",
        ),
        minijinja::ErrorKind::InvalidOperation if detail.contains("paw's limit is") => (
            format!("template error: {detail}"),
            "look for a width, count or repeat on that line far larger than a packer template needs",
        ),
        minijinja::ErrorKind::InvalidOperation if detail.starts_with("unable to calculate") => (
            format!("paw does not support integers beyond 128 bits, nor division by zero: {detail}"),
            "keep integers within ±2**127 (Jinja2's have no bound); see \"Differences from the seed\" in the README",
        ),
        kind => {
            let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
            (
                format!("template error: {kind}{detail}"),
                "paw renders as Jinja2 3.1 does, and refuses what it cannot render the same; see the README",
            )
        }
    };
    Error::new(ErrorKind::Template, message).at(location).help(help)
}

/// minijinja's syntax errors, with the constructs Jinja2 accepts and minijinja's parser does not
/// named, and their rewrite.
fn syntax_error(detail: &str) -> (String, &'static str) {
    if detail.starts_with("unexpected `+`") {
        return (
            "paw does not support Jinja2's unary `+` (`{{ +3 }}`)".into(),
            "leave the `+` out: `{{ 3 }}`; for a number from a string use `| int` or `| float`",
        );
    }
    if detail.starts_with("unexpected `,`, expected end of") {
        return (
            "paw does not support tuples without parentheses (`{{ 1, 2 }}`, `{% for x in a, b %}`)".into(),
            "put the tuple in parentheses: `{{ (1, 2) }}`, `{% for x in (a, b) %}`",
        );
    }
    if detail.starts_with("invalid integer (too large)") {
        return (
            "paw does not support integers beyond 128 bits (Jinja2's have no bound)".into(),
            "write a smaller number, or the number as a string",
        );
    }
    (format!("template syntax error: {detail}"), "fix the Jinja2 syntax on that line")
}

/// Writes the rendered files after removing the step folder's old rendered files (as the seed does).
pub fn write_rendered(step: &Step, files: &[Rendered]) -> Result<()> {
    let entries = std::fs::read_dir(&step.dir).map_err(|err| Error::io(&step.dir, "list the step folder", err))?;
    for entry in entries.filter_map(|entry| entry.ok()) {
        let path = entry.path();
        if path.is_file() && is_rendered_output(&entry.file_name().to_string_lossy()) {
            std::fs::remove_file(&path).map_err(|err| Error::io(&path, "remove the old rendered file", err))?;
        }
    }
    for file in files {
        std::fs::write(&file.path, &file.text).map_err(|err| Error::io(&file.path, "write", err))?;
    }
    Ok(())
}

/// A step folder's rendered files, held by one process from rendering until packer has read them
/// (or `packer validate` has checked them): two paw processes in one workflow folder never
/// rewrite a step's files under the other's packer. The lock is on the step folder itself, so
/// it leaves no file behind. Released on drop.
pub struct StepLock {
    _held: nix::fcntl::Flock<std::fs::File>,
}

impl StepLock {
    pub async fn acquire(step: &Step) -> Result<StepLock> {
        use nix::fcntl::{Flock, FlockArg};
        let mut folder =
            std::fs::File::open(&step.dir).map_err(|err| Error::io(&step.dir, "open the step folder", err))?;
        loop {
            match Flock::lock(folder, FlockArg::LockExclusiveNonblock) {
                Ok(held) => return Ok(StepLock { _held: held }),
                Err((back, nix::errno::Errno::EWOULDBLOCK)) => {
                    folder = back;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err((_, errno)) => {
                    return Err(Error::io(&step.dir, "lock the step folder", std::io::Error::from(errno)));
                }
            }
        }
    }
}

/// A step rendered, written and checked: ready for `packer validate` or `packer build`.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub source: AmiRef,
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

/// Everything up to packer: EC2's limits, render, write, HCL check; off the async task (it reads,
/// renders and writes files).
pub async fn prepare_step(workflow: &Workflow, step: &Step, source: AmiRef, aws_region: &str) -> Result<Prepared> {
    let (workflow, step, region) = (workflow.clone(), step.clone(), aws_region.to_string());
    crate::blocking::off_the_task(move || prepare(&workflow, &step, source, &region)).await
}

fn prepare(workflow: &Workflow, step: &Step, source: AmiRef, aws_region: &str) -> Result<Prepared> {
    ami::check_limits(workflow, step, &source)?;
    let files = render_step(workflow, step, &source, aws_region)?;
    write_rendered(step, &files)?;
    let hcl = check_hcl(&files, &ami::output_ami_name(workflow, step))?;
    if !step.param.instance_types.is_empty() && !hcl.declares_instance_type {
        return Err(Error::new(
            ErrorKind::Config,
            "\"instance_types\" needs the step's templates to declare `variable \"instance_type\"`",
        )
        .at(step.param.json().key_location("instance_types"))
        .help(
            "paw passes each type to packer as -var instance_type=…: declare `variable \"instance_type\" { type = \
             string }` and set `instance_type = var.instance_type` in the source block",
        ));
    }
    Ok(Prepared { source, files, hcl })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected files come from Jinja2 3 itself: tests/render/generate_expected.py.
    #[test]
    fn renders_byte_for_byte_as_jinja2() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/render");
        let workflow = Workflow::load(&fixture.join("workflow")).unwrap();
        let sources =
            [("step_a", "ami-0123456789abcdef0", "base/images/"), ("step_b", "ami-0fedcba9876543210", "parent-ami")];
        for (step_id, id, name) in sources {
            let step = workflow.step(step_id).unwrap();
            let source = AmiRef { id: id.into(), name: name.into() };
            let files = render_step(&workflow, step, &source, "eu-west-3").unwrap();
            assert_eq!(files.len(), 2);
            for file in files {
                let name = file.path.file_name().unwrap();
                let expected = std::fs::read_to_string(fixture.join("expected").join(name)).unwrap();
                assert_eq!(file.text, expected, "{}", file.path.display());
            }
        }
    }

    /// One meaning of "rendered output", for what rendering replaces and what the fingerprint
    /// leaves out: a hidden file of the step folder is neither replaced nor left out.
    #[test]
    fn rendered_outputs_are_the_step_folders_visible_pkr_files() {
        let dir = tempfile::tempdir().unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/render");
        let workflow = Workflow::load(&fixture.join("workflow")).unwrap();
        let mut step = workflow.step("step_a").unwrap().clone();
        step.dir = dir.path().to_path_buf();
        for name in ["step_a.pkr.hcl", "step_a.old.pkrvars.hcl", ".hidden.pkr.hcl", "notes.txt"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let new = Rendered { path: dir.path().join("step_a.pkr.hcl"), text: "new".into() };
        write_rendered(&step, &[new]).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".hidden.pkr.hcl", "notes.txt", "step_a.pkr.hcl"]);
        assert!(!is_rendered_output(".hidden.pkr.hcl") && is_rendered_output("step_a.old.pkrvars.hcl"));
    }

    /// One case of tests/jinja/corpus.txt (its format is described at its top).
    struct CorpusCase {
        name: String,
        context: Json,
        refused: Option<String>,
        template: String,
    }

    fn corpus_cases(text: &str) -> Vec<CorpusCase> {
        let mut cases: Vec<CorpusCase> = Vec::new();
        for line in text.split('\n') {
            if let Some(header) = line.strip_prefix("### ") {
                let mut parts = header.split(" | ");
                let name = parts.next().unwrap().trim().to_string();
                let context = serde_json::from_str(parts.next().unwrap_or("{}")).unwrap();
                let refused = parts.next().map(|part| part.strip_prefix("refused: ").unwrap().to_string());
                cases.push(CorpusCase { name, context, refused, template: String::new() });
            } else if let Some(case) = cases.last_mut() {
                case.template.push_str(line);
                case.template.push('\n');
            }
        }
        for case in &mut cases {
            case.template.truncate(case.template.len() - 1);
            if case.template.ends_with('\n') {
                case.template.pop();
            }
        }
        cases
    }

    /// Every case renders as Jinja2 3 does (tests/jinja/expected.json, written by Jinja2 itself),
    /// or fails as Jinja2 does, or is one paw refuses on purpose, with a message that says so.
    #[test]
    fn the_corpus_renders_as_jinja2_does() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jinja");
        let cases = corpus_cases(&std::fs::read_to_string(dir.join("corpus.txt")).unwrap());
        let generated: Json =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
        let expected = generated["cases"].as_object().unwrap();
        assert_eq!(cases.len(), expected.len(), "run generate_expected.py after changing the corpus");
        let mut failures = Vec::new();
        for case in &cases {
            let path = Path::new(&case.name);
            let result = render_template_with(path, &case.template, Value::from(Serde(&case.context)));
            let jinja2 = &expected[&case.name];
            let failure = match (&result, jinja2.get("output").and_then(Json::as_str), &case.refused) {
                (Ok(text), Some(output), None) if text == output => continue,
                (Err(err), None, None) if jinja2.get("error").is_some() => {
                    let _ = err;
                    continue;
                }
                (Err(err), _, Some(refused)) if err.to_string().contains(refused.as_str()) => continue,
                (Ok(text), _, _) => format!("rendered {text:?}"),
                (Err(err), _, _) => format!("failed: {err}"),
            };
            failures.push(format!("{}: {failure}\n    Jinja2: {jinja2}", case.name));
        }
        assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
    }

    /// Every built-in filter, test and global of Jinja2 (as expected.json lists them) has a case.
    #[test]
    fn the_corpus_covers_every_jinja2_builtin() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jinja");
        let corpus = std::fs::read_to_string(dir.join("corpus.txt")).unwrap();
        let generated: Json =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
        let names = |kind: &str| -> Vec<String> {
            generated["jinja2"][kind]
                .as_array()
                .unwrap()
                .iter()
                .map(|name| name.as_str().unwrap().to_string())
                .collect()
        };
        let used = |patterns: &[String]| patterns.iter().any(|pattern| corpus.contains(pattern.as_str()));
        let mut missing = Vec::new();
        for filter in names("filters") {
            if !used(&[format!("| {filter}"), format!("|{filter}")]) {
                missing.push(format!("filter {filter}"));
            }
        }
        for test in names("tests") {
            if !used(&[format!("is {test} "), format!("is not {test} "), format!("(\"{test}\""), format!("is {test}(")])
            {
                missing.push(format!("test {test}"));
            }
        }
        for global in names("globals") {
            if !used(&[format!("{global}(")]) {
                missing.push(format!("global {global}"));
            }
        }
        assert_eq!(names("filters").len(), 54);
        assert!(missing.is_empty(), "the corpus has no case for: {missing:?}");
    }
}
