//! `paw init` and `paw steps`: the workflow folder itself; and paw's own shell completions and man
//! page.

use std::path::{Path, PathBuf};

use paw_core::catalog::Line;
use paw_core::config::WORKFLOW_PARAM_FILE;
use paw_core::workflow::Workflow;
use serde_json::{Value, json};

use crate::context::Context;
use crate::output::{Report, table};

pub struct Created {
    dir: PathBuf,
    files: Vec<PathBuf>,
}

pub fn init(dir: &Path) -> paw_core::Result<Created> {
    let files = paw_core::scaffold::init(dir)?;
    Ok(Created { dir: dir.to_path_buf(), files: files.into_iter().map(|file| dir.join(file)).collect() })
}

impl Report for Created {
    fn json(&self) -> Value {
        json!({ "created": self.files })
    }

    fn text(&self) -> String {
        let mut lines: Vec<String> = self.files.iter().map(|file| format!("created {}", file.display())).collect();
        lines.push(format!(
            "next: edit {}, then run `paw validate -w {}`",
            self.dir.join(WORKFLOW_PARAM_FILE).display(),
            self.dir.display()
        ));
        lines.join("\n")
    }
}

pub struct Imported(paw_core::import::Imported);

/// `into` defaults to `./<project folder's name>-workflow`.
pub fn import(project: &Path, into: Option<PathBuf>) -> paw_core::Result<Imported> {
    let into = into.unwrap_or_else(|| {
        let name = paw_core::import::project_name(project);
        PathBuf::from(format!("{}-workflow", if name.is_empty() { "packer" } else { &name }))
    });
    Ok(Imported(paw_core::import::import(project, &into)?))
}

impl Report for Imported {
    fn json(&self) -> Value {
        json!({ "workflow": self.0.dir, "step_id": self.0.step_id, "changes": self.0.changes })
    }

    fn text(&self) -> String {
        let mut lines = vec![format!("created {} with one step, {}:", self.0.dir.display(), self.0.step_id)];
        lines.extend(self.0.changes.iter().map(|change| format!("  {change}")));
        lines.push(format!("next: `paw validate -w {}`", self.0.dir.display()));
        lines.join("\n")
    }
}

/// The workflow once per variant (once without variants): they share their steps.
pub struct Steps<'a>(&'a [Workflow]);

pub fn steps(cx: &Context) -> paw_core::Result<Steps<'_>> {
    Ok(Steps(cx.workflows()?))
}

impl Report for Steps<'_> {
    fn json(&self) -> Value {
        let steps: Vec<_> = self
            .0
            .iter()
            .flat_map(|workflow| workflow.steps().iter().map(move |step| (workflow, step)))
            .map(|(workflow, step)| {
                json!({
                    "workflow_name": workflow.name,
                    "variant": workflow.variant,
                    "workflow_id": workflow.param.workflow_id,
                    "step_id": step.id,
                    "previous_step_id": step.parent,
                    "folder": step.dir,
                    "metadata": step.param.metadata,
                    "manual": step.manual,
                })
            })
            .collect();
        json!(steps)
    }

    fn text(&self) -> String {
        let first = &self.0[0];
        let rows = first
            .steps()
            .iter()
            .map(|step| {
                vec![
                    step.id.clone(),
                    step.parent.clone().unwrap_or_else(|| "-".into()),
                    step.dir.display().to_string(),
                    Value::Object(step.param.metadata.clone()).to_string(),
                    if step.manual { "manual" } else { "templates" }.to_string(),
                ]
            })
            .collect();
        let steps = table(&["STEP", "PARENT", "FOLDER", "METADATA", "AMI MADE BY"], rows);
        let set_for_run = |workflow: &Workflow| -> Vec<String> {
            workflow.param.overridden().map(|(key, value)| format!("{key} = {value}")).collect()
        };
        if first.variant.is_none() {
            let mut text = format!("workflow {} (id {})\n{steps}", Line::of(first), first.param.workflow_id);
            let overridden = set_for_run(first);
            if !overridden.is_empty() {
                text.push_str(&format!("\nworkflow_param.json, for this run: {}", overridden.join(", ")));
            }
            return text;
        }
        let variants = self
            .0
            .iter()
            .map(|workflow| {
                vec![
                    workflow.variant.clone().unwrap_or_default(),
                    workflow.param.workflow_id.clone(),
                    set_for_run(workflow).join(", "),
                ]
            })
            .collect();
        format!(
            "workflow {} with {} variants, each its own line of images\n{steps}\n{}",
            first.name,
            self.0.len(),
            table(&["VARIANT", "WORKFLOW ID", "KEYS SET (variant, then --param)"], variants)
        )
    }
}

/// A text to print as it is (a completion script, a man page); JSON holds it as one string.
pub struct Text(String);

impl Report for Text {
    fn json(&self) -> Value {
        json!({ "text": self.0 })
    }

    fn text(&self) -> String {
        self.0.clone()
    }
}

pub fn completions(shell: clap_complete::Shell) -> Text {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut crate::cli::command(), "paw", &mut script);
    Text(String::from_utf8_lossy(&script).into_owned())
}

/// Every command and option as Markdown: the book's `reference/commands.md`, which a test keeps
/// equal to this.
pub fn command_reference() -> Text {
    let options = clap_markdown::MarkdownOptions::new().title("Command reference".to_string()).show_footer(false);
    // Built first, so that each subcommand has the global options it refers to (`--events`
    // conflicts with `--json`); building names subcommands `paw-images-list`, so their own names
    // are given back, and clap's `help` subcommands are left out.
    let mut command = for_each_command(crate::cli::command(), &|command| command.disable_help_subcommand(true));
    command.build();
    let command = for_each_command(command, &|command| {
        let name = command.get_name().to_string();
        command.display_name(name)
    });
    let markdown = clap_markdown::help_markdown_command_custom(&command, &options);
    // A built subcommand's usage already names its parents (`paw images list`), and clap-markdown
    // puts them before it again: `paw images paw images list`.
    let lines =
        markdown.lines().map(|line| match line.strip_prefix("**Usage:** `").and_then(|usage| usage.find(" paw ")) {
            Some(at) => format!("**Usage:** `{}", &line["**Usage:** `".len() + at + 1..]),
            None => line.to_string(),
        });
    Text(lines.map(|line| line + "\n").collect())
}

/// `command` and each of its subcommands, at any depth, changed by `change`.
fn for_each_command(command: clap::Command, change: &dyn Fn(clap::Command) -> clap::Command) -> clap::Command {
    let names: Vec<String> = command.get_subcommands().map(|sub| sub.get_name().to_string()).collect();
    let command =
        names.iter().fold(command, |command, name| command.mut_subcommand(name, |sub| for_each_command(sub, change)));
    change(command)
}

pub fn man() -> paw_core::Result<Text> {
    let mut page = Vec::new();
    clap_mangen::Man::new(crate::cli::command())
        .render(&mut page)
        .map_err(|err| paw_core::Error::new(paw_core::ErrorKind::Io, format!("cannot write the man page: {err}")))?;
    Ok(Text(String::from_utf8_lossy(&page).into_owned()))
}
