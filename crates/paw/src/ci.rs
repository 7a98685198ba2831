//! paw at home in CI: GitHub Actions (`GITHUB_ACTIONS=true`, or `--ci github`) and GitLab CI
//! (`GITLAB_CI=true`, or `--ci gitlab`). Errors become annotations on the file and line they name;
//! each step's packer output is one collapsible group, written when the step ends (steps build in
//! parallel, and groups cannot interleave); the run ends with a summary and the AMI ids as the
//! job's outputs (`ami_<step>`).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use paw_core::Error;
use paw_core::engine::{Event, Outcome, Reporter, StepOutcome, Summary};
use paw_core::workflow::Workflow;

use crate::cli::CiArg;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CiSystem {
    GitHub,
    GitLab,
}

impl CiSystem {
    /// `--ci`, else what the environment says (GitHub's and GitLab's runners set these).
    pub fn detect(forced: Option<CiArg>) -> Option<CiSystem> {
        match forced {
            Some(CiArg::Github) => Some(CiSystem::GitHub),
            Some(CiArg::Gitlab) => Some(CiSystem::GitLab),
            Some(CiArg::None) => None,
            None if env_is("GITHUB_ACTIONS", "true") => Some(CiSystem::GitHub),
            None if env_is("GITLAB_CI", "true") => Some(CiSystem::GitLab),
            None => None,
        }
    }

    /// The repository's root, to which annotations' paths are relative.
    fn workspace(self) -> Option<PathBuf> {
        let variable = match self {
            CiSystem::GitHub => "GITHUB_WORKSPACE",
            CiSystem::GitLab => "CI_PROJECT_DIR",
        };
        std::env::var_os(variable).map(PathBuf::from)
    }

    /// Secrets paw read from workflow_param.json, masked in the job's log before anything can print
    /// them (GitLab masks only variables defined in its settings).
    pub fn mask_secrets(self, workflows: &[Workflow]) {
        if self != CiSystem::GitHub {
            return;
        }
        for credentials in workflows.iter().filter_map(|workflow| workflow.param.credentials.as_ref()) {
            let secrets = std::iter::once(&credentials.secret_access_key).chain(&credentials.session_token);
            for secret in secrets {
                // On stderr, as every workflow command of paw's: stdout may carry data (--events).
                eprintln!("::add-mask::{}", secret.expose());
            }
        }
    }

    /// The error as an annotation on the file and line it names (GitHub), printed besides the
    /// error's own lines.
    pub fn annotate(self, error: &Error) {
        if self != CiSystem::GitHub {
            return;
        }
        let mut properties = Vec::new();
        if let Some(location) = &error.location {
            properties.push(format!("file={}", escape_property(&self.relative(&location.path))));
            if location.line > 0 {
                properties.push(format!("line={}", location.line));
            }
            if location.column > 0 {
                properties.push(format!("col={}", location.column));
            }
        }
        properties.push("title=paw".to_string());
        let text = match &error.help {
            Some(help) => format!("{}\nhelp: {help}", error.message),
            None => error.message.clone(),
        };
        // Workflow commands are read from the job's output, stdout and stderr alike.
        eprintln!("::error {}::{}", properties.join(","), escape_data(&text));
    }

    fn relative(self, path: &Path) -> String {
        let absolute = std::env::current_dir().map(|cwd| cwd.join(path)).unwrap_or_else(|_| path.to_path_buf());
        let relative = self.workspace().and_then(|root| absolute.strip_prefix(root).ok().map(Path::to_path_buf));
        relative.unwrap_or_else(|| path.to_path_buf()).display().to_string()
    }

    /// The run's end: the summary, and the AMI of each step that has one as `ami_<step>`
    /// (`ami_<variant>_<step>` with variants): in `$GITHUB_STEP_SUMMARY` and `$GITHUB_OUTPUT`, or
    /// GitLab's dotenv file `paw.env` (declare it as a `reports: dotenv` artifact).
    pub fn finish(self, outcomes: &[StepOutcome], region: &str) -> std::io::Result<()> {
        let amis: Vec<(String, &str)> =
            outcomes.iter().filter_map(|step| Some((output_name(step), step.outcome.ami()?.id.as_str()))).collect();
        let lines: String = amis.iter().map(|(name, ami)| format!("{name}={ami}\n")).collect();
        match self {
            CiSystem::GitHub => {
                if let Some(path) = std::env::var_os("GITHUB_OUTPUT") {
                    append(Path::new(&path), &lines)?;
                }
                if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
                    append(Path::new(&path), &summary_markdown(outcomes, region))?;
                }
                Ok(())
            }
            CiSystem::GitLab => std::fs::write(GITLAB_DOTENV, lines),
        }
    }
}

/// GitLab's dotenv artifact, in the job's folder.
pub const GITLAB_DOTENV: &str = "paw.env";

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|set| set == value)
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)?.write_all(text.as_bytes())
}

/// `ami_<step>`, `ami_<variant>_<step>`: every character but letters, digits and `_` becomes `_`,
/// as both systems' variable names allow.
pub fn output_name(step: &StepOutcome) -> String {
    let name = match &step.variant {
        Some(variant) => format!("ami_{variant}_{}", step.step_id),
        None => format!("ami_{}", step.step_id),
    };
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

fn summary_markdown(outcomes: &[StepOutcome], region: &str) -> String {
    let mut text = String::from("### paw build\n\n| step | result | AMI | packer (s) |\n|---|---|---|---|\n");
    for step in outcomes {
        let ami = step.outcome.ami().map_or("-".to_string(), |ami| {
            format!("[`{}`]({})", ami.id, paw_core::catalog::console_url(region, &ami.id))
        });
        let packer = match &step.outcome {
            Outcome::Built { packer_time, .. } => format!("{:.1}", packer_time.as_secs_f64()),
            _ => "-".to_string(),
        };
        let result = match &step.outcome {
            Outcome::Failed { error, .. } => format!("failed: {}", error.message.replace('|', "\\|")),
            Outcome::Skipped(reason) => format!("skipped: {reason}"),
            outcome => outcome.name().to_string(),
        };
        text.push_str(&format!("| {} | {result} | {ami} | {packer} |\n", step.label()));
    }
    text.push_str(&format!("\n{}\n", Summary::of(outcomes)));
    text
}

/// GitHub's workflow commands: `%`, CR and LF escaped in the message, `:` and `,` too in properties.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Each step's packer output, held until the step ends and then written as one collapsible group.
pub struct CiLog {
    system: CiSystem,
    held: Mutex<HashMap<String, Vec<String>>>,
}

impl CiLog {
    pub fn new(system: CiSystem) -> CiLog {
        CiLog { system, held: Mutex::new(HashMap::new()) }
    }

    fn flush(&self, step: &str) {
        let Some(lines) = self.held.lock().expect("not poisoned").remove(step) else { return };
        let mut out = std::io::stderr().lock();
        let title = format!("packer output of {step}");
        let _ = match self.system {
            CiSystem::GitHub => writeln!(out, "::group::{title}\n{}\n::endgroup::", lines.join("\n")),
            CiSystem::GitLab => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| since.as_secs());
                let name: String = step
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
                    .collect();
                writeln!(
                    out,
                    "\x1b[0Ksection_start:{now}:paw_{name}[collapsed=true]\r\x1b[0K{title}\n{}\n\x1b[0Ksection_end:{now}:paw_{name}\r\x1b[0K",
                    lines.join("\n")
                )
            }
        };
    }
}

impl Reporter for CiLog {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::Packer { step, line } => {
                self.held.lock().expect("not poisoned").entry(step.to_string()).or_default().push(line.to_string());
            }
            Event::Failed { step, error } => {
                self.flush(step);
                self.system.annotate(error);
            }
            Event::Built { step, .. } | Event::DryRun { step, .. } => self.flush(step),
            _ => {}
        }
    }
}
