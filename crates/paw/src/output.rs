//! How results reach people (tables, plain lines) and scripts (JSON on stdout): every command
//! returns a `Report`, and `print` renders it one way or the other. The build's live events are
//! rendered by `TextReporter`.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use std::collections::{BTreeSet, HashMap};
use std::io::IsTerminal as _;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use paw_core::Error;
use paw_core::catalog::TestResult;
use paw_core::engine::pipeline::StageId;
use paw_core::engine::{Event, Reporter, RunEvent};
use std::sync::Arc;

use crate::ci::{CiLog, CiSystem};
use crate::events::EventStream;
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

    /// The exit code of a command that did not fail: 0, or what it says (`plan --detailed-exitcode`).
    fn exit_code(&self) -> i32 {
        0
    }
}

/// The report: JSON on stdout with --json; else text, on stdout, or on stderr when stdout carries
/// the event stream.
pub fn print(report: &dyn Report, output: &RunOutput) {
    if output.json {
        print_line(&serde_json::to_string_pretty(&report.json()).expect("JSON values serialise"));
    } else {
        let text = report.text();
        match (text.is_empty(), output.events.is_some()) {
            (true, _) => {}
            (false, true) => eprintln!("{}", text.trim_end()),
            (false, false) => print_line(text.trim_end()),
        }
    }
}

/// Writes a line to stdout. A reader that has gone (`paw man --markdown | head`) is no error of
/// paw's, and the rest is dropped; any other failure to write is.
fn print_line(text: &str) {
    use std::io::Write;
    if let Err(err) = writeln!(std::io::stdout().lock(), "{text}")
        && err.kind() != std::io::ErrorKind::BrokenPipe
    {
        panic!("cannot write to stdout: {err}");
    }
}

pub use paw_core::plural;

pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    // Fit a terminal's width; a terminal too narrow to say (or none) gets the table as it is.
    let arrangement = match table.width() {
        Some(width) if width >= 60 => ContentArrangement::Dynamic,
        _ => ContentArrangement::Disabled,
    };
    table.load_style(UTF8_BORDERS_ONLY).set_content_arrangement(arrangement).set_header(header);
    for row in rows {
        table.add_row(row);
    }
    table.to_string()
}

/// A plan's actions, in the order they are (or were) applied: one way every command shows them.
pub fn plan_table(actions: &[paw_core::change::Action]) -> String {
    if actions.is_empty() {
        return "nothing to do".into();
    }
    let rows = actions
        .iter()
        .enumerate()
        .map(|(at, action)| {
            let (verb, place, what) = action.describe();
            vec![(at + 1).to_string(), verb.to_string(), place, what]
        })
        .collect();
    table(&["#", "ACTION", "WHERE", "WHAT"], rows)
}

/// A plan printed and not applied (`--dry-run`): its actions, as a table or `{"dry_run": true,
/// "actions": [...]}`.
pub struct Planned(pub Vec<paw_core::change::Action>);

impl Report for Planned {
    fn json(&self) -> Value {
        serde_json::json!({"dry_run": true, "actions": self.0})
    }

    fn text(&self) -> String {
        format!("{}\ndry run: nothing was changed", plan_table(&self.0))
    }
}

/// The steps whose packer runs, as the events tell: what a second signal names.
#[derive(Default)]
pub struct PackerSteps(Mutex<BTreeSet<String>>);

impl PackerSteps {
    pub fn list(&self) -> Vec<String> {
        self.0.lock().expect("not poisoned").iter().cloned().collect()
    }

    fn follow(&self, event: &Event<'_>) {
        let state = match event {
            Event::Stage { step, stage } => Some((*step, *stage == StageId::PackerBuild)),
            Event::Failed { step, .. } | Event::Built { step, .. } => Some((*step, false)),
            _ => None,
        };
        if let Some((step, in_packer)) = state {
            let mut steps = self.0.lock().expect("not poisoned");
            if in_packer {
                steps.insert(step.to_string())
            } else {
                steps.remove(step)
            };
        }
    }
}

/// How a build shows what it does: to people as lines, or one live line per step on a terminal;
/// besides, to programs as an event stream (`--events`), and to a CI system (`ci`).
pub struct BuildReporter {
    view: View,
    events: Option<Arc<EventStream>>,
    ci: Option<CiLog>,
    in_packer: PackerSteps,
}

enum View {
    Lines(TextReporter),
    Live(ProgressReporter),
}

/// Where a run's output goes, decided once from the command line and the environment.
#[derive(Clone, Default)]
pub struct RunOutput {
    /// `--json`: the report is JSON on stdout.
    pub json: bool,
    /// `--events jsonl`: stdout is the event stream; people's output goes to stderr.
    pub events: Option<Arc<EventStream>>,
    pub ci: Option<CiSystem>,
}

impl RunOutput {
    /// Whether stdout belongs to a program (JSON, events): then people's output goes to stderr.
    pub fn stdout_is_data(&self) -> bool {
        self.json || self.events.is_some()
    }
}

impl BuildReporter {
    /// Live lines on a terminal, unless the user wants packer's output (`verbose`), stdout is for a
    /// program, or the run is in CI (which keeps each step's packer output in a group).
    pub fn choose<'a>(
        step_ids: impl Iterator<Item = &'a str> + Clone,
        output: &RunOutput,
        verbose: bool,
    ) -> BuildReporter {
        let live = !output.stdout_is_data()
            && !verbose
            && output.ci.is_none()
            && std::io::stdout().is_terminal()
            && std::io::stderr().is_terminal();
        let view = if live {
            View::Live(ProgressReporter::new(step_ids))
        } else {
            View::Lines(TextReporter::new(step_ids, output.stdout_is_data(), output.ci.is_none()))
        };
        BuildReporter {
            view,
            events: output.events.clone(),
            ci: output.ci.map(CiLog::new),
            in_packer: PackerSteps::default(),
        }
    }

    pub fn packer_steps(&self) -> &PackerSteps {
        &self.in_packer
    }
}

impl Reporter for BuildReporter {
    fn run_event(&self, event: &RunEvent<'_>) {
        if let Some(events) = &self.events {
            events.run_event(event);
        }
    }

    fn event(&self, event: Event<'_>) {
        self.in_packer.follow(&event);
        if let Some(events) = &self.events {
            events.event(event.clone());
        }
        if let Some(ci) = &self.ci {
            ci.event(event.clone());
        }
        match &self.view {
            View::Lines(lines) => lines.event(event),
            View::Live(live) => live.event(event),
        }
    }
}

/// One line per step, redrawn in place: its state, how long it has taken, a spinner while it runs;
/// a finished step keeps one line with its result. packer's own output stays in its log.
pub struct ProgressReporter {
    bars: MultiProgress,
    steps: HashMap<String, ProgressBar>,
}

impl ProgressReporter {
    fn new<'a>(step_ids: impl Iterator<Item = &'a str> + Clone) -> ProgressReporter {
        let width = step_ids.clone().map(str::len).max().unwrap_or(0);
        let style = ProgressStyle::with_template(&format!("{{spinner}} {{prefix:>{width}}} {{elapsed:>4}}  {{msg}}"))
            .expect("a valid template")
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
        let bars = MultiProgress::new();
        let steps = step_ids
            .map(|step| {
                let bar = bars.add(ProgressBar::new_spinner().with_style(style.clone()).with_prefix(step.to_string()));
                bar.set_message("waiting");
                bar.enable_steady_tick(std::time::Duration::from_millis(100));
                (step.to_string(), bar)
            })
            .collect();
        ProgressReporter { bars, steps }
    }

    fn bar(&self, step: &str) -> Option<&ProgressBar> {
        self.steps.get(step)
    }

    fn finish(&self, step: &str, text: String) {
        if let Some(bar) = self.bar(step) {
            bar.finish_with_message(text);
        }
    }
}

/// What a line of packer's output says the build is doing, if it says.
fn packer_state(line: &str) -> Option<&'static str> {
    const STATES: [(&str, &str); 7] = [
        ("Launching a source AWS instance", "launching the instance"),
        ("Waiting for instance", "waiting for the instance"),
        ("Running local shell script", "provisioning"),
        ("Provisioning with", "provisioning"),
        ("Stopping the source instance", "stopping the instance"),
        ("Creating AMI", "creating the AMI"),
        ("Copying AMI", "copying the AMI"),
    ];
    STATES.iter().find(|(marker, _)| line.contains(marker)).map(|(_, state)| *state)
}

impl Reporter for ProgressReporter {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::StepStarted { step, source } => {
                if let Some(bar) = self.bar(step) {
                    bar.reset_elapsed();
                    bar.set_message(format!("starting from {}", source.id));
                }
            }
            Event::Stage { step, stage } => {
                if let Some(bar) = self.bar(step) {
                    bar.set_message(stage.as_str());
                }
            }
            Event::StageFinished { .. } => {}
            Event::Packer { step, line } => {
                if let (Some(bar), Some(state)) = (self.bar(step), packer_state(line)) {
                    bar.set_message(state);
                }
            }
            Event::DryRun { step, command } => self.finish(step, format!("dry run: {command}")),
            Event::Built { step, ami_id } => self.finish(step, format!("✓ built {ami_id}")),
            Event::UpToDate { step, ami_id, tags_set } => {
                self.finish(step, format!("✓ up to date: {ami_id}{}", tags_note(tags_set)))
            }
            Event::Reused { step, ami_id, from } => self.finish(step, format!("✓ reused {ami_id} of {from}")),
            Event::Failed { step, error } => {
                // The whole error, above the live lines; the step's line keeps its first line.
                let _ = self.bars.println(format!("{step}: {error}"));
                self.finish(step, format!("✗ failed: {}", error.message));
            }
            Event::Manual { step } => self.finish(step, "manual step: its AMI is made from an instance".into()),
            Event::Skipped { step, reason } => self.finish(step, format!("- skipped: {reason}")),
            Event::Waiting { step, held_by } => {
                if let Some(bar) = self.bar(step) {
                    bar.set_message(format!("waiting: another run builds it ({held_by})"));
                }
            }
            Event::Notice { step, what } => {
                let _ = self.bars.println(format!("{step}: note: {what}"));
            }
            Event::CleanedUp { step, what } => {
                let _ = self.bars.println(format!("{step}: cleanup: {what}"));
            }
            Event::TestStarted { step, test } => {
                if let Some(bar) = self.bar(step) {
                    bar.set_message(format!("testing: {test}"));
                }
            }
            Event::TestFinished { step, result } => {
                let _ = self.bars.println(format!("{step}: {}", test_line(result)));
            }
        }
    }
}

/// Renders the engine's events as lines prefixed with their step, aligned (packer's own lines too,
/// unless a CI log groups them). They go to stdout, or to stderr when stdout carries data.
pub struct TextReporter {
    width: usize,
    to_stderr: bool,
    packer_lines: bool,
}

impl TextReporter {
    pub fn new<'a>(step_ids: impl Iterator<Item = &'a str>, to_stderr: bool, packer_lines: bool) -> TextReporter {
        TextReporter { width: step_ids.map(str::len).max().unwrap_or(0), to_stderr, packer_lines }
    }

    fn line(&self, step: &str, text: &str) {
        let line = format!("{step:>width$} | {text}", width = self.width);
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            print_line(&line);
        }
    }
}

impl Reporter for TextReporter {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::StepStarted { step, source } => {
                self.line(step, &format!("=== building from {} ({})", source.id, source.name))
            }
            // Each stage is visible in what it prints; the stages themselves are for progress views.
            Event::Stage { .. } | Event::StageFinished { .. } => {}
            Event::Packer { step, line } if self.packer_lines => self.line(step, line),
            Event::Packer { .. } => {}
            Event::DryRun { step, command } => {
                self.line(step, &format!("dry run: would run in the step folder: {command}"))
            }
            Event::Built { step, ami_id } => self.line(step, &format!("=== built {ami_id}, tagged and recorded")),
            Event::UpToDate { step, ami_id, tags_set } => {
                self.line(step, &format!("=== up to date: {ami_id}{}", tags_note(tags_set)))
            }
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
            Event::Waiting { step, held_by } => {
                self.line(step, &format!("=== waiting for step {step} (held by {held_by})"))
            }
            Event::Notice { step, what } => self.line(step, &format!("=== note: {what}")),
            Event::CleanedUp { step, what } => self.line(step, &format!("=== cleanup: {what}")),
            Event::TestStarted { step, test } => self.line(step, &format!("=== testing: {test}")),
            Event::TestFinished { step, result } => {
                for (index, text) in test_line(result).lines().enumerate() {
                    self.line(step, &if index == 0 { format!("=== {text}") } else { format!("    {text}") });
                }
            }
        }
    }
}

/// A test's result as one line (a failure's reason on the lines after): its verdict, time and log.
pub fn test_line(result: &TestResult) -> String {
    let verdict = if result.passed { "passed" } else { "FAILED" };
    let mut line = format!("test {} {verdict} in {:.1} s (log: {})", result.name, result.seconds, result.log);
    if let Some(reason) = &result.reason {
        line.push('\n');
        line.push_str(reason);
    }
    line
}

/// What an up-to-date step's tags needed: nothing, or the keys set.
fn tags_note(tags_set: &[String]) -> String {
    if tags_set.is_empty() { String::new() } else { format!(" (tags set: {})", tags_set.join(", ")) }
}
