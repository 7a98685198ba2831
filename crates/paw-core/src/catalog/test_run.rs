//! An image's test history, as the catalog keeps it on its record: one entry per run of the
//! step's tests (`paw build` right after the image is recorded, `paw test` later), oldest first.
//! The latest entry is the image's verdict.

use serde::{Deserialize, Serialize};

pub use crate::workflow::TestKind;

/// One run of a step's tests on an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestRun {
    /// When it began, RFC 3339 UTC.
    pub at: String,
    /// `paw build` or `paw test`, and who ran it (`user@host`).
    pub by: String,
    /// The hash of the step's `tests/` folder the run used: when it differs from the folder's
    /// now, the tests changed since (`paw plan` says so; the build and `paw test` run them again).
    pub tests_digest: String,
    pub results: Vec<TestResult>,
}

/// One test's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// The file's name: `boot` for `tests/templates/boot.pkr.hcl`, `tags.sh` for `tests/tags.sh`.
    pub name: String,
    pub kind: TestKind,
    pub passed: bool,
    pub seconds: f64,
    /// The test's full output.
    pub log: String,
    /// Why it failed: the last lines of its output, or its timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl TestRun {
    pub fn passed(&self) -> bool {
        self.results.iter().all(|result| result.passed)
    }

    /// How long its tests ran, together.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.results.iter().map(|result| result.seconds).sum())
    }

    /// The first test that failed.
    pub fn failure(&self) -> Option<&TestResult> {
        self.results.iter().find(|result| !result.passed)
    }
}

/// What an image's latest test run says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No test run yet (the step had no tests, or its run was interrupted).
    Untested,
    Passed,
    Failed,
}

impl Verdict {
    pub fn of(tests: &[TestRun]) -> Verdict {
        match tests.last() {
            None => Verdict::Untested,
            Some(run) if run.passed() => Verdict::Passed,
            Some(_) => Verdict::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Untested => "untested",
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
        }
    }
}
