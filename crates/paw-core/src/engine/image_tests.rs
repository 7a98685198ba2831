//! A step's image tests, run on one of its images: in `paw build` right after the image is
//! recorded (the `TestImage` stage), and on existing images by `paw test` (ops::test).
//!
//! Two kinds, in the step's `tests/` folder, each named by its file:
//! - `tests/templates/NAME.pkr.hcl`: a Jinja2 packer template, rendered with the step's `builder`
//!   context plus the image under test, that launches an instance from it and runs provisioners
//!   without making an AMI (`amazon-ebsvolume`; from packer 1.7, `amazon-ebs` with
//!   `skip_create_ami = true`); packer's exit code is the verdict, and packer cleans up its
//!   instance as in any build (interrupted included);
//! - `tests/NAME` executables: run here, with the image and the AWS settings in their environment,
//!   for checks that need no instance of their own.
//!
//! Each has the step's timeout (`test_timeout_minutes`) and a log under `.paw/logs/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::events::{Event, LeftAmi, StepFailure};
use super::lease::Lease;
use super::services::Services;
use crate::ami::AmiRef;
use crate::catalog::{ImageRecord, ImageStatus, TestResult, TestRun};
use crate::change;
use crate::error::{Error, ErrorKind, Result};
use crate::packer::{BuildRequest, Packer};
use crate::render;
use crate::workflow::{ImageTest, Step, TEMPLATE_SUFFIX, TESTS_DIR, TestKind, Workflow};

/// How many of a failed test's last output lines its record keeps as the reason.
const REASON_LINES: usize = 5;

/// What tests run with besides the services: packer, and the AWS settings for packer's and the
/// executables' environment (never printed).
pub struct Tester<'a> {
    pub packer: &'a dyn Packer,
    pub env: &'a [(String, String)],
    /// Who runs the tests, for the history: `paw build` or `paw test`, and `user@host`.
    pub by: String,
}

impl<'a> Tester<'a> {
    /// The tester of `paw build`, run by this machine's user.
    pub fn of_build(packer: &'a dyn Packer, env: &'a [(String, String)]) -> Tester<'a> {
        Tester { packer, env, by: format!("paw build ({})", crate::catalog::who()) }
    }
}

/// The image under test, of `step`, built from `source`.
pub struct Subject<'a> {
    pub step: &'a Step,
    pub image: AmiRef,
    pub source: AmiRef,
}

/// Runs every test on the image, in order, each to its end (a failure does not stop the others:
/// the history says all that failed). An interrupt stops the run: its error, and no history.
/// `lease`: the step's, while a build holds it, so that the journal knows the test's instance.
pub async fn run(
    cx: &Services<'_>,
    tester: &Tester<'_>,
    subject: &Subject<'_>,
    tests: &[ImageTest],
    lease: Option<&Lease>,
) -> Result<TestRun> {
    let digest = crate::fingerprint::tests_digest(subject.step)?.unwrap_or_default();
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut results = Vec::new();
    for test in tests {
        if cx.cancel.is_cancelled() {
            return Err(interrupted(&test.name));
        }
        cx.reporter.event(Event::TestStarted { step: &subject.step.id, test: &test.name });
        let started = Instant::now();
        let log = log_path(cx, subject.step, &test.name)?;
        let verdict = match test.kind {
            TestKind::Template => run_template(cx, tester, subject, test, &log, lease).await?,
            TestKind::Local => run_local(cx, tester, subject, test, &log).await?,
        };
        let result = TestResult {
            name: test.name.clone(),
            kind: test.kind,
            passed: verdict.is_none(),
            seconds: started.elapsed().as_secs_f64(),
            log: log.display().to_string(),
            reason: verdict,
        };
        cx.reporter.event(Event::TestFinished { step: &subject.step.id, result: &result });
        results.push(result);
    }
    Ok(TestRun { at, by: tester.by.clone(), tests_digest: digest, results })
}

/// Every test template of the step renders, parses and passes `packer validate`, for an image yet
/// to be made (a placeholder): a broken test stops a build before any instance starts, as a broken
/// template does, not after its image is made. Each is checked in a scratch folder of `.paw/`.
pub async fn validate_templates(
    workflow: &Workflow,
    packer: &dyn Packer,
    step: &Step,
    source: &AmiRef,
    aws_region: &str,
) -> Result<()> {
    let image = AmiRef::placeholder(&step.id);
    for test in step.image_tests()?.into_iter().filter(|test| test.kind == TestKind::Template) {
        let scratch = workflow.state_dir().join("tests").join(&workflow.param.workflow_id).join(format!(
            "validate-{}-{}-{}",
            step.id,
            test.name,
            std::process::id()
        ));
        write_template(workflow, step, source, aws_region, &image, &test, &scratch)?;
        let checked = packer.validate(&scratch, &[], false).await;
        let _ = std::fs::remove_dir_all(&scratch);
        checked.map_err(|err| {
            let help =
                format!("fix the test template {}; packer's message above says what it rejects", test.path.display());
            err.help(help)
        })?;
    }
    Ok(())
}

/// A test template, rendered for `image` into the folder `dir` (made if need be), where packer
/// then runs on it alone.
fn write_template(
    workflow: &Workflow,
    step: &Step,
    source: &AmiRef,
    aws_region: &str,
    image: &AmiRef,
    test: &ImageTest,
    dir: &Path,
) -> Result<()> {
    let text = render::render_test(workflow, step, source, aws_region, image, &test.path)?;
    std::fs::create_dir_all(dir).map_err(|err| Error::io(dir, "create the test's folder", err))?;
    let rendered = dir.join(format!("{}{TEMPLATE_SUFFIX}", test.name));
    std::fs::write(&rendered, text).map_err(|err| Error::io(&rendered, "write", err))
}

/// The last lines of a test's output that say something: why it failed.
fn last_lines(output: &str) -> String {
    let mut last: Vec<&str> = output.lines().filter(|line| !line.trim().is_empty()).rev().take(REASON_LINES).collect();
    last.reverse();
    last.join("\n")
}

fn interrupted(test: &str) -> Error {
    Error::new(ErrorKind::Interrupted, format!("interrupted during the test {test}"))
        .help("the image stays untested: `paw test STEP` tests it, and a build tests it before using it")
}

/// The test's log, by an absolute path: the catalog's history names it for anyone who reads it.
fn log_path(cx: &Services<'_>, step: &Step, test: &str) -> Result<PathBuf> {
    let path = super::log_path(cx.workflow, &format!("{}-test-{test}", step.id));
    std::path::absolute(&path).map_err(|err| Error::io(&path, "find the log's folder", err))
}

/// A template test: rendered into a folder of its own beside its log, then `packer build` there,
/// under a timeout. None when it passed, else why not. An AMI the template made (it must not:
/// `amazon-ebsvolume`, or `skip_create_ami = true` from packer 1.7) is deregistered and fails the test.
async fn run_template(
    cx: &Services<'_>,
    tester: &Tester<'_>,
    subject: &Subject<'_>,
    test: &ImageTest,
    log: &Path,
    lease: Option<&Lease>,
) -> Result<Option<String>> {
    let dir = log.with_extension("d");
    write_template(cx.workflow, subject.step, &subject.source, cx.region, &subject.image, test, &dir)?;
    let run_lock = match lease {
        Some(lease) => lease.run_lock()?,
        None => None,
    };
    let request = BuildRequest {
        step_dir: &dir,
        var_files: &[],
        vars: &[],
        debug: false,
        env: tester.env,
        log_path: log,
        run_lock: run_lock.as_ref(),
    };
    let step_id = &subject.step.id;
    let on_line = |line: &str| {
        if let Some(lease) = lease {
            lease.note_packer_line(line);
        }
        cx.reporter.event(Event::Packer { step: step_id, line });
    };
    // On the timeout, packer is interrupted as by Ctrl-C, and waited for while it cleans up.
    let stop = cx.cancel.child_token();
    let timeout = subject.step.param.test_timeout;
    let build = tester.packer.build(&request, &on_line, &stop);
    tokio::pin!(build);
    let (output, timed_out_now) = tokio::select! {
        output = &mut build => (output?, false),
        () = tokio::time::sleep(timeout) => {
            stop.cancel();
            (build.await?, true)
        }
    };
    if !output.amis.is_empty() {
        for (region, ami_id) in &output.amis {
            cx.undo_image(step_id, region, ami_id).await;
        }
        return Ok(Some(format!(
            "the test template made an AMI ({}), deregistered: a test makes none (amazon-ebsvolume, or \
             skip_create_ami = true from packer 1.7)",
            output.amis.iter().map(|(_, ami_id)| ami_id.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    match output.failure {
        None => Ok(None),
        Some(_) if timed_out_now => Ok(Some(timed_out(timeout))),
        Some(failure) if failure.kind == ErrorKind::Interrupted => Err(interrupted(&test.name)),
        Some(failure) => {
            let reason = last_lines(&failure.details.unwrap_or_default());
            Ok(Some(if reason.is_empty() { failure.message } else { reason }))
        }
    }
}

fn timed_out(timeout: Duration) -> String {
    format!("timed out after {} min (test_timeout_minutes)", timeout.as_secs() / 60)
}

/// An executable test, in the step's `tests/` folder, its output to its log, under a timeout.
/// None when it exited 0, else why not.
async fn run_local(
    cx: &Services<'_>,
    tester: &Tester<'_>,
    subject: &Subject<'_>,
    test: &ImageTest,
    log: &Path,
) -> Result<Option<String>> {
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent).map_err(|err| Error::io(parent, "create the log folder", err))?;
    }
    let output = std::fs::File::create(log).map_err(|err| Error::io(log, "create the log", err))?;
    let errors = output.try_clone().map_err(|err| Error::io(log, "create the log", err))?;
    let workflow = cx.workflow;
    let own = [
        ("PAW_AMI_ID", subject.image.id.as_str()),
        ("PAW_AMI_NAME", subject.image.name.as_str()),
        ("PAW_REGION", cx.region),
        ("PAW_STEP_ID", subject.step.id.as_str()),
        ("PAW_WORKFLOW_ID", workflow.param.workflow_id.as_str()),
        ("PAW_WORKFLOW_NAME", workflow.name.as_str()),
        ("PAW_VARIANT", workflow.variant.as_deref().unwrap_or_default()),
    ];
    let path = std::path::absolute(&test.path).map_err(|err| Error::io(&test.path, "find the test", err))?;
    let child = tokio::process::Command::new(&path)
        .current_dir(subject.step.dir.join(TESTS_DIR))
        .envs(tester.env.iter().map(|(key, value)| (key, value)))
        .envs(own)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    // A test that cannot start (no interpreter, not a program) fails, as it would anywhere.
    let mut child = match child {
        Ok(child) => child,
        Err(err) => return Ok(Some(format!("cannot run {}: {err}", path.display()))),
    };
    let timeout = subject.step.param.test_timeout;
    let status = tokio::select! {
        status = child.wait() => status.map_err(|err| Error::io(&test.path, "wait for the test", err))?,
        () = tokio::time::sleep(timeout) => {
            crate::process::stop_group(&mut child).await;
            return Ok(Some(timed_out(timeout)));
        }
        () = cx.cancel.cancelled() => {
            crate::process::stop_group(&mut child).await;
            return Err(interrupted(&test.name));
        }
    };
    if status.success() {
        return Ok(None);
    }
    let last = last_lines(&std::fs::read_to_string(log).unwrap_or_default());
    let code = status.code().map_or_else(|| status.to_string(), |code| format!("exit status {code}"));
    Ok(Some(if last.is_empty() { code } else { format!("{code}\n{last}").trim_end().to_string() }))
}

/// What becomes of an image that failed its tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Deregistered, with its snapshots and copies: a new build's image (`paw build`).
    Deregister,
    /// Kept, marked failed and tagged `paw:tests=failed` (`--keep-failed`; `paw test`, as the
    /// image may be in use: `paw images revoke` is the tool to withdraw it).
    Keep,
}

/// The tag that says an image's latest verdict in EC2, where people see it.
pub const TESTS_TAG: &str = "paw:tests";

/// Writes a test run to the image's history, with what it means: passed, the image is available
/// again if it had failed before; failed, an available image becomes `failed`, and is then kept or
/// deregistered (`on_failure`). The image and its copies are tagged with the verdict (unless
/// deregistered). Returns the failure, as the step's error, with what became of the image.
pub async fn record_verdict(
    cx: &Services<'_>,
    record: &ImageRecord,
    run: &TestRun,
    on_failure: OnFailure,
) -> std::result::Result<(), StepFailure> {
    let passed = run.passed();
    let status = match (passed, record.status) {
        (true, ImageStatus::Failed) => Some(ImageStatus::Available),
        (false, ImageStatus::Available) => Some(ImageStatus::Failed),
        _ => None,
    };
    cx.catalog.add_test_run(&record.workflow_id, &record.step_id, run, status).await?;
    let Some(failed) = run.failure() else {
        tag_verdict(cx, record, "passed").await?;
        return Ok(());
    };
    if on_failure == OnFailure::Keep {
        tag_verdict(cx, record, "failed").await?;
    }
    let mut failed_record = record.clone();
    failed_record.status = status.unwrap_or(record.status);
    let fate = withdraw(cx, &failed_record, on_failure).await?;
    let others = run.results.iter().filter(|result| !result.passed).count() - 1;
    let also = if others > 0 { format!(" (and {others} more)") } else { String::new() };
    let mut error =
        Error::new(ErrorKind::TestFailed, format!("{} failed the test {}{also}", record.ami_id, failed.name))
            .help(format!("the test's output is in {}", failed.log));
    if let Some(reason) = &failed.reason {
        error = error.details(reason.clone());
    }
    Err(StepFailure {
        error: Box::new(error),
        amis: vec![LeftAmi { ami_id: record.ami_id.clone(), fate }],
        transient: None,
    })
}

/// What becomes of a recorded image the build failed (its tests, its statement): kept, marked
/// failed (`--keep-failed`), or deregistered with its snapshots and copies. Its fate, in words.
pub async fn withdraw(cx: &Services<'_>, record: &ImageRecord, on_failure: OnFailure) -> Result<String> {
    Ok(match on_failure {
        OnFailure::Keep => {
            if record.status == ImageStatus::Available {
                cx.catalog.set_status(&record.workflow_id, &record.step_id, ImageStatus::Failed, None).await?;
            }
            "kept (failed: never a source, never reused)".to_string()
        }
        OnFailure::Deregister => {
            let mut failed_record = record.clone();
            failed_record.status = ImageStatus::Failed;
            let request = change::DeleteRequest { delete_snapshots: true, ..change::DeleteRequest::default() };
            let done = change::delete_image(&cx.executor(), std::slice::from_ref(&failed_record), &request).await?;
            format!("deregistered{} (--keep-failed keeps it)", change::delete::snapshots_said(&done))
        }
    })
}

/// `paw:tests=VERDICT` on the image and its copies, where each is.
async fn tag_verdict(cx: &Services<'_>, record: &ImageRecord, verdict: &str) -> Result<()> {
    let tag = [(TESTS_TAG.to_string(), verdict.to_string())];
    for (region, ami_id) in record.every_copy() {
        let ec2 = crate::ec2::ec2_in(cx.ec2, &record.region, &region);
        ec2.create_tags(&[ami_id], &tag).await.map_err(|err| err.in_region(&region))?;
    }
    Ok(())
}
