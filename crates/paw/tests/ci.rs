//! paw in CI, on the emulator with the real packer: the event stream against its schema, `plan
//! --detailed-exitcode`, GitHub Actions' and GitLab CI's ways, and the example pipelines (their
//! commands exist; their matrix job run three times at once builds each step once).

use std::path::{Path, PathBuf};

use serde_json::Value;

use paw_core::ami::AmiRef;
use paw_core::catalog::{TestKind, TestResult};
use paw_core::engine::pipeline::StageId;
use paw_core::engine::{Event, SkipReason, event_line};
use paw_core::notify::Notice;
use paw_core::{Error, ErrorKind};
use serde_json::json;

use crate::aws::WORKFLOW_ID;
use crate::emulator::Emulator;
use crate::harness::{Paw, Run, copy_tree, examples_dir};

/// The virtualenv's python running `check_ci.py` (jsonschema, PyYAML); fails without scripts/setup.
fn run_check_ci(args: &[&str]) -> std::process::Output {
    let python = examples_dir().join("../.venv/bin/python");
    assert!(python.is_file(), "no virtualenv: run scripts/setup");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_ci.py");
    std::process::Command::new(python).arg(script).args(args).output().expect("python runs")
}

/// `run_check_ci`'s answer, which must succeed.
pub fn check_ci(args: &[&str]) -> Value {
    let output = run_check_ci(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "check_ci.py {args:?} failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

pub fn schema() -> PathBuf {
    examples_dir().join("../schema/events-v1.json")
}

/// The event stream's types, every line checked against the schema; stdout holds nothing else.
fn event_types(paw: &Paw, run: &Run) -> Vec<String> {
    let file = paw.path("events.jsonl");
    std::fs::write(&file, &run.stdout).unwrap();
    let types = check_ci(&["events", schema().to_str().unwrap(), file.to_str().unwrap()]);
    types.as_array().unwrap().iter().map(|kind| kind.as_str().unwrap().to_string()).collect()
}

#[test]
fn the_event_stream_follows_its_schema_and_plan_says_what_it_holds_in_its_exit_code() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let plan = paw.run(&["-w", "wf", "plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "steps to build: {}", plan.stderr);

    let first = paw.run(&["-w", "wf", "build", "--events", "jsonl", "--events-packer"]);
    first.success();
    let types = event_types(&paw, &first);
    for kind in ["run_started", "step_started", "stage_started", "stage_finished", "packer_line", "built", "summary"] {
        assert!(types.contains(&kind.to_string()), "no {kind} in {types:?}");
    }
    // People's output went to stderr meanwhile.
    assert!(first.stderr.contains("3 built, 0 reused"), "{}", first.stderr);
    let last: Value = serde_json::from_str(first.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["type"].as_str(), last["built"].as_u64(), last["ok"].as_bool()),
        (Some("summary"), Some(3), Some(true))
    );

    assert_eq!(paw.run(&["-w", "wf", "plan", "--detailed-exitcode"]).code, 0, "nothing to build");
    let again = paw.run(&["-w", "wf", "build", "--events", "jsonl"]);
    assert_eq!(event_types(&paw, again.success()), ["run_started", "up_to_date", "summary"]);
    let reused = paw.run(&["-w", "wf", "--workflow-id", "wf-2", "build", "--events", "jsonl"]);
    assert!(event_types(&paw, reused.success()).contains(&"reused".to_string()));

    // A step that fails: its error, with where and what to do; its child skipped; exit non-zero.
    paw.edit("wf/step2/templates/.pkr.hcl", "inline = [", "inline = [\n      \"exit 3\",");
    let failed = paw.run(&["-w", "wf", "--workflow-id", "wf-3", "build", "--events", "jsonl"]);
    assert_ne!(failed.code, 0);
    let types = event_types(&paw, &failed);
    for kind in ["reused", "failed", "skipped", "summary"] {
        assert!(types.contains(&kind.to_string()), "no {kind} in {types:?}");
    }
    let error =
        failed.stdout.lines().map(|line| serde_json::from_str::<Value>(line).unwrap()).find(|e| e["type"] == "failed");
    let error = error.unwrap();
    assert_eq!(error["step"], "step2");
    assert!(!error["error"]["message"].as_str().unwrap().is_empty(), "{error}");
    let dry = paw.run(&["-w", "wf", "--workflow-id", "wf-4", "build", "--dry-run", "--events", "jsonl"]);
    assert!(event_types(&paw, dry.success()).contains(&"dry_run".to_string()));

    // An error: exit 1 whatever its kind, as Terraform's -detailed-exitcode.
    let broken = paw.run(&["-w", "wf", "plan", "--detailed-exitcode", "no-such-step"]);
    assert_eq!(broken.code, 1, "{}", broken.stderr);
    let both = paw.run(&["-w", "wf", "--json", "build", "--events", "jsonl"]);
    assert_eq!(both.code, 2, "--json and --events both want stdout: {}", both.stderr);
}

#[test]
fn github_actions_gets_annotations_groups_a_summary_outputs_and_masked_secrets() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let (output, summary) = (paw.path("github-output"), paw.path("github-summary"));
    let workspace = paw.path("");
    let github = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_WORKSPACE", workspace.to_str().unwrap()),
        ("GITHUB_OUTPUT", output.to_str().unwrap()),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
    ];
    // Credentials in workflow_param.json: masked before anything could print them.
    paw.edit(
        "wf/workflow_param.json",
        "\"instance_type\"",
        "\"aws_access_key_id\": \"testing\", \"aws_secret_access_key\": \"s3cr3t-in-the-file\", \"instance_type\"",
    );
    let run = paw.run_with(&github, &["-w", "wf", "build", "--verbose"]);
    run.success();
    assert!(run.stderr.contains("::add-mask::s3cr3t-in-the-file"), "{}", run.stderr);
    assert!(
        run.stderr.contains("::group::packer output of step2") && run.stderr.contains("::endgroup::"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("step2 | ==> "), "packer's lines are in the groups, not in the log: {}", run.stdout);
    let outputs = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<&str> = outputs.lines().collect();
    assert_eq!(lines.len(), 3, "{outputs}");
    assert!(lines[0].starts_with("ami_step1=ami-") && lines[2].starts_with("ami_step3=ami-"), "{outputs}");
    let markdown = std::fs::read_to_string(&summary).unwrap();
    assert!(markdown.contains("| step1 | built | [`ami-") && markdown.contains("3 built, 0 reused"), "{markdown}");

    // A template error: an annotation on its file and line, relative to the repository.
    paw.write("wf/step1/templates/.pkrvars.hcl", "source_ami_id = \"{{ builder.no_such_key }}\"\n");
    let failed = paw.run_with(&github, &["-w", "wf", "validate"]);
    assert_eq!(failed.code, 2);
    assert!(
        failed.stderr.contains("::error file=wf/step1/templates/.pkrvars.hcl,line=1,title=paw::undefined name"),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("%0Ahelp: "), "the help on the annotation's next line: {}", failed.stderr);
}

#[test]
fn gitlab_ci_gets_sections_and_a_dotenv_file() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let run = paw.run_with(&[("GITLAB_CI", "true")], &["-w", "wf", "build"]);
    run.success();
    assert!(run.stderr.contains("section_start:") && run.stderr.contains("[collapsed=true]"), "{}", run.stderr);
    assert!(run.stderr.contains("section_end:"), "{}", run.stderr);
    let dotenv = paw.read("paw.env");
    let step3 = dotenv.lines().find_map(|line| line.strip_prefix("ami_step3=")).unwrap();
    let shown = paw.run(&["-w", "wf", "--workflow-id", WORKFLOW_ID, "images", "show", "step3", "--json"]);
    assert_eq!(shown.success().json()["ami_id"], step3);
    // --ci none: not in CI, whatever the environment says.
    let plain = paw.run_with(&[("GITLAB_CI", "true")], &["-w", "wf", "--ci", "none", "plan"]);
    assert!(!plain.success().stderr.contains("section_start"));
}

#[test]
fn the_example_pipelines_run_commands_paw_has() {
    let ci = examples_dir().join("ci");
    let files = [ci.join("github-workflow.yml"), ci.join("github-nightly.yml"), ci.join("gitlab-ci.yml")];
    let mut args = vec!["commands"];
    args.extend(files.iter().map(|file| file.to_str().unwrap()));
    let found = check_ci(&args);
    let found = found.as_array().unwrap();
    assert!(found.len() >= 8, "{found:#?}");
    let paw = Paw::new();
    for command in found {
        let words: Vec<&str> = command["subcommand"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        // `channel set staging app`: the words past the subcommands are its arguments.
        let path: Vec<&str> = words.iter().copied().take_while(|word| !word.contains('/')).collect();
        let mut args = path.clone();
        args.push("--help");
        let mut help = paw.run(&args);
        if help.code != 0 && path.len() == 2 {
            help = paw.run(&[path[0], "--help"]);
        }
        assert_eq!(help.code, 0, "`paw {}` ({}): {}", path.join(" "), command["line"], help.stderr);
        for option in command["options"].as_array().unwrap().iter().filter_map(Value::as_str) {
            assert!(help.stdout.contains(option), "`paw {}` has no {option}: {}", path.join(" "), command["line"]);
        }
    }
}

#[test]
fn the_action_and_the_example_pipelines_follow_github_s_and_gitlab_s_schemas() {
    let checker = examples_dir().join("../.venv/bin/check-jsonschema");
    assert!(checker.is_file(), "no check-jsonschema in the virtualenv: run scripts/setup");
    for (schema, file) in [
        ("vendor.github-actions", "../action.yml"),
        ("vendor.github-workflows", "ci/github-workflow.yml"),
        ("vendor.github-workflows", "ci/github-nightly.yml"),
        ("vendor.gitlab-ci", "ci/gitlab-ci.yml"),
    ] {
        let output = std::process::Command::new(&checker)
            .args(["--builtin-schema", schema])
            .arg(examples_dir().join(file))
            .output()
            .unwrap();
        assert!(output.status.success(), "{file} against {schema}: {}", String::from_utf8_lossy(&output.stdout));
    }
}

/// The action's install step, run as a runner runs it, against a release folder made here: it
/// puts the archive's paw on PATH and says its version, and refuses an archive whose sum differs.
#[test]
fn the_action_installs_a_release_checked_against_its_sums() {
    let step = check_ci(&["action-step", examples_dir().join("../action.yml").to_str().unwrap(), "install"]);
    let paw = Paw::new();
    // The archive the action picks on this machine.
    let name = format!("paw-0.1.0-{}-unknown-linux-musl", std::env::consts::ARCH);
    let (release, runner) = (paw.path("release"), paw.path("runner"));
    std::fs::create_dir_all(release.join(&name)).unwrap();
    std::fs::create_dir_all(&runner).unwrap();
    let binary = assert_cmd::cargo::cargo_bin!("paw");
    std::fs::copy(binary, release.join(&name).join("paw")).unwrap();
    let sh = |script: &str| {
        let status = std::process::Command::new("sh").args(["-c", script]).current_dir(&release).status().unwrap();
        assert!(status.success(), "{script}");
    };
    sh(&format!("tar -czf {name}.tar.gz {name} && sha256sum {name}.tar.gz > SHA256SUMS"));
    let install = |env_dir: &str| {
        let (path_file, output_file) =
            (runner.join(format!("{env_dir}.path")), runner.join(format!("{env_dir}.output")));
        let output = std::process::Command::new("bash")
            .args(["-c", step["run"].as_str().unwrap()])
            .env("PAW_VERSION", "v0.1.0")
            .env("PAW_REPOSITORY", "OWNER/paw")
            .env("PAW_RELEASE_URL", format!("file://{}", release.display()))
            .env("RUNNER_TEMP", runner.join(env_dir))
            .env("GITHUB_PATH", &path_file)
            .env("GITHUB_OUTPUT", &output_file)
            .output()
            .unwrap();
        let read = |file: &Path| std::fs::read_to_string(file).unwrap_or_default();
        (output, read(&path_file), read(&output_file))
    };
    let (output, path, outputs) = install("good");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let on_path = Path::new(path.trim()).join("paw");
    assert!(on_path.is_file(), "{path}");
    let version =
        String::from_utf8(std::process::Command::new(&on_path).arg("--version").output().unwrap().stdout).unwrap();
    assert_eq!(outputs.trim(), format!("paw-version={}", version.trim()));
    assert!(step["env"]["PAW_REPOSITORY"].as_str().unwrap().contains("github.action_repository"));

    // A changed archive: its sum no longer matches, and nothing reaches PATH.
    sh(&format!("echo tampered >> {name}.tar.gz"));
    let (output, path, _) = install("tampered");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("FAILED"), "{}", String::from_utf8_lossy(&output.stdout));
    assert_eq!(path, "");
}

#[test]
fn the_matrix_job_run_three_times_at_once_builds_each_step_once() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let script = examples_dir().join("ci/build-job.sh");
    let bin = assert_cmd::cargo::cargo_bin!("paw");
    let jobs: Vec<std::process::Child> = (1..=3)
        .map(|runner| {
            // Each runner has its own checkout.
            let checkout = format!("runner-{runner}");
            copy_tree(&paw.path("wf"), &paw.path(&format!("{checkout}/workflow")));
            // The harness's environment for paw, and the job's own.
            let command = paw.command(&[]);
            let mut job = std::process::Command::new("sh");
            job.arg(&script).current_dir(paw.path(&checkout));
            for (key, value) in command.get_envs() {
                match value {
                    Some(value) => job.env(key, value),
                    None => job.env_remove(key),
                };
            }
            job.env("PAW", bin)
                .env("PAW_CATALOG", "dynamodb:paw_matrix")
                .env("PAW_WORKFLOW_ID", "commit-1234")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("sh runs")
        })
        .collect();
    for job in jobs {
        let output = job.wait_with_output().unwrap();
        let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "a job failed:\n{log}");
    }
    let amis = emulator.ec2().own_images();
    assert_eq!(amis.len(), 3, "each step built once: {amis:?}");
    let listed = paw.run(&[
        "-w",
        "runner-1/workflow",
        "--catalog",
        "dynamodb:paw_matrix",
        "--workflow-id",
        "commit-1234",
        "images",
        "list",
        "--json",
    ]);
    assert_eq!(listed.success().json().as_array().unwrap().len(), 3);
}

/// Every type of event, as paw writes it, is valid under the schema the README points at.
#[test]
fn every_event_type_follows_the_schema() {
    let source = AmiRef { id: "ami-0123456789abcdef0".into(), name: "base".into() };
    let error = Error::new(ErrorKind::Template, "undefined name")
        .at(paw_core::error::Location::at(Path::new("wf/s/templates/.pkr.hcl"), 3, 7))
        .help("define it");
    let skipped = SkipReason::ParentDidNotFinish("a".into());
    let tags = ["cost".to_string()];
    let tested = TestResult {
        name: "boot".into(),
        kind: TestKind::Template,
        passed: false,
        seconds: 12.5,
        log: "wf/.paw/logs/w1/a-test-boot.log".into(),
        reason: Some("exit status 1".into()),
    };
    let events = [
        Event::StepStarted { step: "amd64/a", source: &source },
        Event::Stage { step: "a", stage: StageId::PackerBuild },
        Event::StageFinished { step: "a", stage: StageId::PackerBuild, ok: true, seconds: 1.5 },
        Event::Waiting { step: "a", held_by: "host/42 since 2026-12-01T00:00:00Z" },
        Event::Packer { step: "a", line: "==> a: Creating AMI" },
        Event::DryRun { step: "a", command: "packer build ." },
        Event::Built { step: "a", ami_id: "ami-0123456789abcdef0" },
        Event::UpToDate { step: "a", ami_id: "ami-0123456789abcdef0", tags_set: &tags },
        Event::Reused { step: "a", ami_id: "ami-0123456789abcdef0", from: "wf-1" },
        Event::Failed { step: "a", error: &error },
        Event::Manual { step: "a" },
        Event::Skipped { step: "b", reason: &skipped },
        Event::Notice { step: "a", what: "adopted ami-0123456789abcdef0" },
        Event::CleanedUp { step: "a", what: "terminated i-1" },
        Event::TestStarted { step: "a", test: "boot" },
        Event::TestFinished { step: "a", result: &tested },
    ];
    let mut lines: Vec<String> = events
        .iter()
        .map(|event| {
            let (kind, fields) = event.record();
            event_line(kind, Some(event.step()), fields)
        })
        .collect();
    let planned = json!({"step_id": "a", "variant": null, "action": "build", "reason": "no AMI yet",
        "fingerprint": null, "source_ami_id": "ami-0123456789abcdef0"});
    let run = json!({"workflow_name": "wf", "workflow_ids": ["w1"], "region": "us-east-1", "dry_run": false,
        "steps": [planned]});
    lines.push(event_line("run_started", None, run));
    let summary = json!({"built": 1, "reused": 0, "up_to_date": 0, "failed": 0, "skipped": 0, "manual": 0,
        "ok": true, "steps": [{"step_id": "a", "variant": null, "result": "built"}]});
    lines.push(event_line("summary", None, summary));
    // Notices' details are events of the schema too, with types of their own.
    let record = paw_core::catalog::conformance::sample_record("w1", "a", "ami-0123456789abcdef0", "2026-12-06");
    let channel_move = paw_core::change::ChannelMove {
        line: paw_core::catalog::Line { name: "wf".into(), variant: None },
        channel: "prod".into(),
        step_id: "a".into(),
        ami_id: "ami-0123456789abcdef0".into(),
        workflow_id: "w1".into(),
        kind: paw_core::catalog::ChannelAction::Set,
        ssm_parameter: None,
        reason: Some("release".into()),
    };
    let workflow_dir = tempfile::tempdir().unwrap();
    copy_tree(&examples_dir().join("chain"), workflow_dir.path());
    let workflow = paw_core::workflow::Workflow::load(workflow_dir.path()).unwrap();
    for notice in [
        Notice::image_revoked(&record, Some("CVE-2026-1")),
        Notice::image_retired(&record, "deregistered"),
        channel_move.notice("us-east-1"),
        Notice::sample(&workflow, "us-east-1"),
    ] {
        lines.push(notice.detail.to_string());
    }
    assert!(lines[0].contains(r#""step":"a","variant":"amd64""#), "{}", lines[0]);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (schema_path, file_path) = (schema(), file.to_str().unwrap().to_string());
    let seen = check_ci(&["events", schema_path.to_str().unwrap(), &file_path]);
    let mut seen: Vec<&str> = seen.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&schema_path).unwrap()).unwrap();
    let mut declared: Vec<&str> =
        schema["properties"]["type"]["enum"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    seen.sort();
    declared.sort();
    assert_eq!(seen, declared, "every type the schema declares, and only those");
    // A line that breaks the schema is caught.
    std::fs::write(&file, r#"{"v": 1, "type": "built", "time": "t", "step": "a", "variant": null}"#).unwrap();
    let broken = run_check_ci(&["events", schema_path.to_str().unwrap(), &file_path]);
    assert!(!broken.status.success(), "a built event without its AMI id is refused");
}
