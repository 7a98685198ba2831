//! No AMI is lost to the way packer hands over its output: however its streams close, every AMI a
//! build makes ends up recorded, or deregistered and named in the summary.

use std::collections::BTreeSet;

use crate::emulator::Emulator;
use crate::harness::{Paw, Run, copy_tree, examples_dir, packer};

/// A packer that runs the real one, then hands its output to paw as `PAW_TEST_PACKER_MODE` says.
const WRAPPER: &str = r#"#!/bin/sh
[ "$1" = build ] || exec "$REAL_PACKER" "$@"
out=$(mktemp)
"$REAL_PACKER" "$@" >"$out" 2>&1
code=$?
case "$PAW_TEST_PACKER_MODE" in
    # stderr closes first, then the whole output comes on stdout.
    stderr-first) exec 2>&-; sleep 1; cat "$out" ;;
    # Everything but the artifact report; stderr closes; the report two seconds later.
    late-artifact) grep -v ',artifact,' "$out"; exec 2>&-; sleep 2; grep ',artifact,' "$out" ;;
    # The artifact report never comes.
    no-artifact) grep -v ',artifact,' "$out" ;;
    # The AMI is made, then packer fails (as a failing post-processor does).
    fail-after-ami) cat "$out"; code=1 ;;
    # The same, and the artifact report is lost too.
    fail-unreported) grep -v ',artifact,' "$out"; code=1 ;;
esac
rm -f "$out"
exit $code
"#;

fn with_wrapper(emulator: &Emulator, paw: Paw, mode: &str) -> Paw {
    use std::os::unix::fs::PermissionsExt as _;
    paw.write("wrapper/packer", WRAPPER);
    std::fs::set_permissions(paw.path("wrapper/packer"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let wrapper = paw.path("wrapper/packer");
    emulator
        .configure(paw)
        .env("REAL_PACKER", packer().to_string_lossy())
        .env("PAW_PACKER", wrapper.to_string_lossy())
        .env("PAW_TEST_PACKER_MODE", mode)
}

fn records(paw: &Paw) -> Vec<serde_json::Value> {
    paw.run(&["-w", "wf", "images", "list", "--json"]).success().json().as_array().unwrap().clone()
}

/// Every AMI in EC2 is an available record of the catalog, and no build instance runs.
#[track_caller]
fn nothing_untracked(emulator: &Emulator, paw: &Paw) {
    let ec2 = emulator.ec2();
    let in_ec2: BTreeSet<String> = ec2.own_images().into_iter().map(|(id, _)| id).collect();
    let recorded: BTreeSet<String> = records(paw)
        .iter()
        .filter(|record| record["status"] == "available")
        .map(|record| record["ami_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(in_ec2, recorded, "EC2's AMIs and the catalog's differ");
    assert_eq!(ec2.live_instances(), Vec::<String>::new(), "build instances are still running");
}

#[test]
fn artifact_lines_after_stderr_has_closed_are_read() {
    for mode in ["stderr-first", "late-artifact"] {
        let emulator = Emulator::start();
        let paw = with_wrapper(&emulator, Paw::example("chain"), mode);
        let run = paw.run(&["-w", "wf", "build"]);
        assert!(run.success().stdout.contains("3 built, 0 reused"), "{mode}: {}", run.stdout);
        assert!(!run.stdout.contains("note:"), "{mode}: the AMIs came from packer's report:\n{}", run.stdout);
        assert_eq!(records(&paw).len(), 3, "{mode}");
        nothing_untracked(&emulator, &paw);
    }
}

#[test]
fn an_ami_packer_did_not_report_is_found_by_its_name_and_recorded() {
    let emulator = Emulator::start();
    let paw = with_wrapper(&emulator, Paw::example("chain"), "no-artifact");
    let run = paw.run(&["-w", "wf", "build"]);
    assert!(run.success().stdout.contains("3 built, 0 reused"), "{}", run.stdout);
    let records = records(&paw);
    let step1 = records.iter().find(|record| record["step_id"] == "step1").unwrap();
    let note =
        format!("step1 | === note: packer's output named no AMI; {} is named", step1["ami_id"].as_str().unwrap());
    assert!(run.stdout.contains(&note), "{}", run.stdout);
    nothing_untracked(&emulator, &paw);
    // Recorded as any build is: tags and fingerprint.
    let (tags, _) = emulator.ec2().image(step1["ami_id"].as_str().unwrap()).unwrap();
    assert_eq!(tags["paw:fingerprint"], step1["fingerprint"].as_str().unwrap());
}

fn failed_step_line(run: &Run) -> String {
    run.stdout.lines().filter(|line| line.starts_with("step1: ami-")).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_failed_build_says_what_became_of_its_ami() {
    // packer reported the AMI: paw made sure it is gone, and says so.
    let emulator = Emulator::start();
    let paw = with_wrapper(&emulator, Paw::example("chain"), "fail-after-ami");
    let run = paw.run(&["-w", "wf", "build", "--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report[0]["result"], "failed");
    let amis = report[0]["amis"].as_array().unwrap();
    assert_eq!(amis.len(), 1, "{report}");
    assert!(amis[0]["fate"].as_str().unwrap().starts_with("deregistered, snapshots deleted: snap-"), "{report}");
    assert_eq!(report[1]["result"], "skipped");
    assert_eq!(emulator.ec2().own_images(), []);

    // packer's report is lost too: paw finds the AMI by name, but a failed build cannot prove it
    // made it, so paw names it and leaves it.
    let emulator = Emulator::start();
    let paw = with_wrapper(&emulator, Paw::example("chain"), "fail-unreported");
    let run = paw.run(&["-w", "wf", "build"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let images = emulator.ec2().own_images();
    assert_eq!(images.len(), 1);
    let (id, name) = &images[0];
    assert_eq!(name, "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721/paw-2024-06-13-12-00-00/step1");
    assert!(
        failed_step_line(&run).starts_with(&format!("step1: {id}: left in EC2: named \"{name}\", made ")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("FAILED (AMIs below)"), "{}", run.stdout);
}

/// A tree of `count` steps, each with up to `fanout` children, on the example chain's templates.
pub fn tree_workflow(paw: &Paw, count: usize, fanout: usize) {
    let chain = examples_dir().join("chain");
    std::fs::create_dir_all(paw.path("wf")).unwrap();
    std::fs::copy(chain.join("workflow_param.json"), paw.path("wf/workflow_param.json")).unwrap();
    for index in 0..count {
        let step = format!("s{index:02}");
        copy_tree(&chain.join("step2/templates"), &paw.path(&format!("wf/{step}/templates")));
        let parent = if index == 0 { serde_json::Value::Null } else { format!("s{:02}", (index - 1) / fanout).into() };
        let param = serde_json::json!({
            "step_id": step,
            "previous_step_id": parent,
            "metadata": {"index": index},
            "packages": [format!("package-{index}")],
        });
        paw.write(&format!("wf/{step}/step_param.json"), &param.to_string());
    }
}

#[test]
fn a_21_step_tree_builds_every_step_once_and_leaves_nothing_untracked() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::new());
    tree_workflow(&paw, 21, 4);
    let run = paw.run(&["-w", "wf", "build", "--jobs", "4"]);
    assert!(run.success().stdout.contains("21 built, 0 reused, 0 up-to-date, 0 failed, 0 skipped"), "{}", run.stdout);
    assert_eq!(records(&paw).len(), 21);
    nothing_untracked(&emulator, &paw);
    let run = paw.run(&["-w", "wf", "build", "--jobs", "4"]);
    assert!(run.success().stdout.contains("0 built, 0 reused, 21 up-to-date"), "{}", run.stdout);
    assert_eq!(emulator.ec2().own_images().len(), 21);
}
