//! One error type for the whole library: what is wrong, where (file, line, column), and what to do.

use std::fmt;
use std::path::{Path, PathBuf};

/// What kind of thing went wrong; lets callers (and the exit code) tell input errors from failures.
/// In JSON (events, `--json` errors) as its name in lower case: `testfailed`, `aws`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// A workflow_param.json / step_param.json that cannot be used.
    Config,
    /// The step graph: duplicates, unknown parents, cycles, unsafe ids.
    Graph,
    /// A Jinja2 template that does not render.
    Template,
    /// A rendered file that is not valid HCL, or that packer rejects.
    Validation,
    /// An EC2 limit (AMI name, tags) that would be broken.
    Limit,
    /// The packer process failed or could not be run.
    Packer,
    /// An upstream probe failed, timed out or could not be run.
    Probe,
    /// An image's provenance did not verify.
    Unverified,
    /// The catalog could not be read or written.
    Catalog,
    /// An AWS call failed.
    Aws,
    /// An image failed one of its step's tests.
    TestFailed,
    /// The user interrupted the run.
    Interrupted,
    /// The user asked for something that cannot be done in the current state.
    Usage,
    /// Reading or writing a file failed.
    Io,
    /// A bug in paw (a panic it caught): nothing the user did wrong.
    Internal,
}

impl ErrorKind {
    /// The process's exit code for an error of this kind (the README's table): 2 for bad input,
    /// 130 for an interrupt, 70 for a bug in paw (sysexits' EX_SOFTWARE), 1 for anything that
    /// failed while running.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Interrupted => 130,
            ErrorKind::Config
            | ErrorKind::Graph
            | ErrorKind::Template
            | ErrorKind::Validation
            | ErrorKind::Limit
            | ErrorKind::Usage => 2,
            ErrorKind::Packer
            | ErrorKind::Probe
            | ErrorKind::Unverified
            | ErrorKind::Catalog
            | ErrorKind::Aws
            | ErrorKind::Io
            | ErrorKind::TestFailed => 1,
            ErrorKind::Internal => INTERNAL_ERROR_EXIT_CODE,
        }
    }
}

/// What a panic said (its payload is a `&str` or a `String` when it says anything).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    let text = payload.downcast_ref::<&str>().copied();
    text.or_else(|| payload.downcast_ref::<String>().map(String::as_str)).unwrap_or("(no message)")
}

/// The exit code of a bug in paw: a caught panic (sysexits' EX_SOFTWARE).
pub const INTERNAL_ERROR_EXIT_CODE: i32 = 70;

/// An error's message and its causes', each once, as one line (never a Debug dump).
pub fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(err) = current {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

/// The exit code of a run that a signal stopped: 128 + the signal's number, as a shell reports it
/// (SIGINT 130, SIGTERM 143, SIGHUP 129).
pub fn signal_exit_code(signal: i32) -> i32 {
    128 + signal
}

/// A place in a file; `line` and `column` start at 1, and 0 means "not known".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Location { path: path.into(), line: 0, column: 0 }
    }

    pub fn at(path: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location { path: path.into(), line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub location: Option<Location>,
    pub message: String,
    pub help: Option<String>,
    /// Extra text shown under the message as it is (packer's own output, for one).
    pub details: Option<String>,
}

/// What to do about a bug in paw.
pub const BUG_HELP: &str = "this is a bug in paw: please report it with the command that ran it";

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, location: None, message: message.into(), help: None, details: None }
    }

    /// A bug in paw itself (exit 70), which the user can only report.
    pub fn bug(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message).help(BUG_HELP)
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn in_file(self, path: &Path) -> Self {
        self.at(Location::file(path))
    }

    /// The error of a call made in another region than the workflow's: the region leads the message.
    pub fn in_region(mut self, region: &str) -> Self {
        self.message = format!("in {region}: {}", self.message);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    pub fn io(path: &Path, action: &str, err: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, format!("cannot {action}: {err}")).in_file(path)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(details) = &self.details {
            for line in details.trim_end().lines() {
                write!(f, "\n  | {line}")?;
            }
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
