//! How results reach people (tables, plain lines) and scripts (JSON on stdout): every command
//! returns a `Report`, and `print` renders it one way or the other. The build's live events are
//! rendered by `TextReporter`.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use std::collections::BTreeSet;
use std::sync::Mutex;

use paw_core::Error;
use paw_core::build::stages::PACKER_BUILD;
use paw_core::build::{Event, Reporter};
use serde_json::Value;

/// What a command found or did.
pub trait Report {
    /// For scripts: printed as JSON on stdout with --json.
    fn json(&self) -> Value;

    /// For people: tables and lines.
    fn text(&self) -> String;

    /// The command's error once its report is printed (failed build steps, left-alone records).
    fn error(&self) -> Option<Error> {
        None
    }
}

pub fn print(report: &dyn Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(&report.json()).expect("JSON values serialise"));
    } else {
        let text = report.text();
        if !text.is_empty() {
            println!("{}", text.trim_end());
        }
    }
}

pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_style(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic).set_header(header);
    for row in rows {
        table.add_row(row);
    }
    table.to_string()
}

/// Renders the engine's events as lines prefixed with their step, aligned. Packer's output goes to
/// stdout, or to stderr when stdout carries JSON.
pub struct TextReporter {
    width: usize,
    to_stderr: bool,
    /// The steps whose packer is running, for a second signal to name.
    in_packer: Mutex<BTreeSet<String>>,
}

impl TextReporter {
    pub fn new<'a>(step_ids: impl Iterator<Item = &'a str>, to_stderr: bool) -> TextReporter {
        TextReporter { width: step_ids.map(str::len).max().unwrap_or(0), to_stderr, in_packer: Mutex::default() }
    }

    pub fn steps_in_packer(&self) -> Vec<String> {
        self.in_packer.lock().expect("not poisoned").iter().cloned().collect()
    }

    fn line(&self, step: &str, text: &str) {
        let line = format!("{step:>width$} | {text}", width = self.width);
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

impl Reporter for TextReporter {
    fn event(&self, event: Event<'_>) {
        let packer_state = match &event {
            Event::Stage { step, stage } => Some((*step, *stage == PACKER_BUILD)),
            Event::Failed { step, .. } | Event::Built { step, .. } => Some((*step, false)),
            _ => None,
        };
        if let Some((step, in_packer)) = packer_state {
            let mut steps = self.in_packer.lock().expect("not poisoned");
            if in_packer {
                steps.insert(step.to_string())
            } else {
                steps.remove(step)
            };
        }
        match event {
            Event::StepStarted { step, source } => {
                self.line(step, &format!("=== building from {} ({})", source.id, source.name))
            }
            // Each stage is visible in what it prints; the stages themselves are for progress views.
            Event::Stage { .. } => {}
            Event::Packer { step, line } => self.line(step, line),
            Event::DryRun { step, command } => {
                self.line(step, &format!("dry run: would run in the step folder: {command}"))
            }
            Event::Built { step, ami_id } => self.line(step, &format!("=== built {ami_id}, tagged and recorded")),
            Event::UpToDate { step, ami_id } => self.line(step, &format!("=== up to date: {ami_id}")),
            Event::Reused { step, ami_id, from } => {
                self.line(step, &format!("=== reused {ami_id} of workflow {from} (same inputs), recorded"))
            }
            Event::Failed { step, error } => {
                for (index, text) in format!("{error}").lines().enumerate() {
                    self.line(step, &if index == 0 { format!("=== FAILED: {text}") } else { text.to_string() });
                }
            }
            Event::Skipped { step, reason } => self.line(step, &format!("=== skipped: {reason}")),
            Event::Manual { step } => {
                self.line(step, "=== manual step: no AMI yet; a person makes it from an instance")
            }
            Event::Notice { step, what } => self.line(step, &format!("=== note: {what}")),
            Event::CleanedUp { step, what } => self.line(step, &format!("=== cleanup: {what}")),
        }
    }
}
