//! Image tests, on the emulator with the real packer: a build tests each new image before its
//! children start from it (a template test that boots an instance from it, and executables run
//! here), records the verdict, and deregisters or keeps (`--keep-failed`) an image that fails;
//! `paw test` tests existing images; channels take only tested images; a failed image is never
//! reused; an interrupted test leaves no instance, and the next build tests the image first.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use serde_json::Value;

use crate::emulator::Emulator;
use crate::harness::{Paw, examples_dir, read_until};
use crate::lifecycle::Cli;

const FANOUT_ID: &str = "fanout-2024-06-13-12-00-00";

/// A test run here that asks EC2 (through the emulator, with the AWS settings paw gives it) for
/// the image under test, and passes when its tags say it is the step's, tagged by paw.
fn tags_test() -> String {
    let python = std::fs::canonicalize(examples_dir().join("../.venv/bin/python")).expect("scripts/setup made .venv");
    format!(
        r#"#!{}
import os, boto3
ec2 = boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["PAW_REGION"])
image = ec2.describe_images(ImageIds=[os.environ["PAW_AMI_ID"]])["Images"][0]
tags = {{tag["Key"]: tag["Value"] for tag in image.get("Tags", [])}}
print("tags of", image["ImageId"], tags)
assert tags["paw:step_id"] == os.environ["PAW_STEP_ID"], tags
assert tags["paw:workflow_id"] == os.environ["PAW_WORKFLOW_ID"], tags
"#,
        python.display()
    )
}

fn make_executable(paw: &Paw, relative: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(paw.path(relative), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The fanout example (a template test on base, an executable on the others), with a second
/// test on base that checks the image's tags in EC2.
fn fanout(emulator: &Emulator) -> Paw {
    let paw = emulator.configure(Paw::example("fanout"));
    paw.write("wf/base/tests/tags", &tags_test());
    make_executable(&paw, "wf/base/tests/tags");
    paw
}

/// The step's record, as `images show --json` gives it.
fn record(cli: &Cli<'_>, step: &str) -> Value {
    cli.json(&["images", "show", step])
}

/// No instance, key pair, security group or volume left; every AMI of this account is recorded,
/// available or failed (kept on purpose).
fn assert_nothing_left(emulator: &Emulator, cli: &Cli<'_>) {
    let ec2 = emulator.ec2();
    assert!(ec2.live_instances().is_empty(), "instances left: {:?}", ec2.live_instances());
    assert!(ec2.packer_key_pairs().is_empty(), "key pairs left: {:?}", ec2.packer_key_pairs());
    assert!(ec2.packer_security_groups().is_empty(), "groups left: {:?}", ec2.packer_security_groups());
    assert!(ec2.volumes().is_empty(), "volumes left: {:?}", ec2.volumes());
    let records = cli.json(&["images", "list"]);
    for (id, name) in ec2.own_images() {
        let kept = records.as_array().unwrap().iter().any(|record| {
            record["ami_id"] == id.as_str() && (record["status"] == "available" || record["status"] == "failed")
        });
        assert!(kept, "{id} ({name}) is in EC2 but not recorded: {records:#}");
    }
}

#[test]
fn a_build_tests_every_new_image_and_records_the_verdict() {
    let emulator = Emulator::start();
    let paw = fanout(&emulator);
    let cli = Cli::new(&paw, &["-w", "wf"]);
    let run = cli.run(&["build"]);
    let out = &run.success().stdout;
    assert!(out.contains("base | === testing: boot"), "{out}");
    assert!(out.contains("base | === test boot passed in"), "{out}");
    assert!(out.contains("base | === test tags passed in"), "{out}");
    assert!(out.contains("web | === test image-env passed in"), "{out}");
    assert!(out.contains("amazon-ebsvolume.boot: Launching a source AWS instance"), "the test booted the image: {out}");
    // A child starts only once its parent's image passed.
    let passed = out.find("base | === test tags passed").unwrap();
    let child = out.find("runtime | === building from").unwrap();
    assert!(passed < child, "{out}");
    assert!(out.contains("│ base      built    ami-") && out.contains("2 passed"), "{out}");
    assert!(out.contains("4 built, 0 reused, 0 up-to-date, 0 failed"), "{out}");

    let base = record(&cli, "base");
    let history = base["tests"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    let results = history[0]["results"].as_array().unwrap();
    let names: Vec<&str> = results.iter().map(|result| result["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["boot", "tags"]);
    assert_eq!(results[0]["kind"], "template");
    assert_eq!(results[1]["kind"], "local");
    assert!(results.iter().all(|result| result["passed"] == true), "{base:#}");
    let tags_log = std::fs::read_to_string(results[1]["log"].as_str().unwrap()).unwrap();
    assert!(tags_log.contains(&format!("tags of {}", base["ami_id"].as_str().unwrap())), "{tags_log}");
    assert!(history[0]["by"].as_str().unwrap().starts_with("paw build ("), "{base:#}");
    let (tags, _) = emulator.ec2().image(base["ami_id"].as_str().unwrap()).unwrap();
    assert_eq!(tags["paw:tests"], "passed");
    let list = cli.run(&["images", "list"]).success().stdout.clone();
    assert!(list.contains("TESTS") && list.contains("passed"), "{list}");
    assert_nothing_left(&emulator, &cli);

    // `paw test` runs them again on the existing images: a second entry of the history.
    let tested = cli.json(&["test", "base", "web"]);
    assert_eq!(tested.as_array().unwrap().len(), 2);
    assert!(tested.as_array().unwrap().iter().all(|step| step["passed"] == true), "{tested:#}");
    assert_eq!(record(&cli, "base")["tests"].as_array().unwrap().len(), 2);
    assert_eq!(record(&cli, "runtime")["tests"].as_array().unwrap().len(), 1);
    cli.fails(&["test", "nowhere"], "no step \"nowhere\"");

    // A changed test is no input of the image: nothing is rebuilt; plan says the tests changed,
    // and the build runs them again, on that image only.
    paw.edit("wf/web/tests/image-env", "set -eu", "set -eu\necho changed");
    let plan = cli.json(&["plan"]);
    assert!(plan.as_array().unwrap().iter().all(|step| step["action"] == "up-to-date"), "{plan:#}");
    let web_reason = plan[2]["reason"].as_str().unwrap();
    assert!(web_reason.contains("its tests changed since they last ran: the build runs them again"), "{plan:#}");
    let run = cli.run(&["build"]);
    assert!(run.success().stdout.contains("0 built, 0 reused, 4 up-to-date"), "{}", run.stdout);
    assert_eq!(record(&cli, "web")["tests"].as_array().unwrap().len(), 3, "tested again");
    assert_eq!(record(&cli, "base")["tests"].as_array().unwrap().len(), 2, "its tests did not change");
    let again = cli.run(&["build"]);
    assert_eq!(record(&cli, "web")["tests"].as_array().unwrap().len(), 3, "not again: {}", again.stdout);
    // Another run reuses the images, and tests again the one whose tests changed since.
    paw.edit("wf/web/tests/image-env", "echo changed", "echo changed again");
    let reused = cli.run(&["--workflow-id", "w2", "build"]);
    assert!(reused.success().stdout.contains("0 built, 4 reused"), "{}", reused.stdout);
    let tests_of = |step: &str| cli.json(&["--workflow-id", "w2", "images", "show", step])["tests"].clone();
    assert_eq!(tests_of("web").as_array().unwrap().len(), 4, "its history, and a run of the changed tests");
    assert_eq!(tests_of("base").as_array().unwrap().len(), 2, "its tests did not change");
    assert_nothing_left(&emulator, &cli);
}

#[test]
fn a_failing_test_fails_its_image_and_skips_its_children() {
    let emulator = Emulator::start();
    let paw = fanout(&emulator);
    let cli = Cli::new(&paw, &["-w", "wf"]);
    paw.edit("wf/runtime/tests/image-env", "set -eu", "set -eu\necho 'the agent is not running' >&2\nexit 3");
    let run = cli.run(&["build"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    let runtime = record(&cli, "runtime");
    let ami = runtime["ami_id"].as_str().unwrap().to_string();
    assert!(out.contains(&format!("runtime | === FAILED: {ami} failed the test image-env")), "{out}");
    assert!(out.contains("the agent is not running"), "the reason is the output's last lines: {out}");
    assert!(out.contains("web | === skipped: runtime did not finish"), "{out}");
    assert!(out.contains("worker | === skipped: runtime did not finish"), "{out}");
    assert!(out.contains("1 built, 0 reused, 0 up-to-date, 1 failed, 2 skipped"), "{out}");
    // The summary names the test and its log; the image is gone with its snapshot.
    let result = &runtime["tests"][0]["results"][0];
    let log = result["log"].as_str().unwrap();
    assert!(out.contains(&format!("runtime: {ami} failed the test image-env; the test's output is in {log}")), "{out}");
    assert!(std::fs::read_to_string(log).unwrap().contains("the agent is not running"));
    assert!(out.contains(&format!("runtime: {ami}: deregistered; deleted snapshots: snap-")), "{out}");
    assert_eq!((runtime["status"].as_str(), result["passed"].as_bool()), (Some("deregistered"), Some(false)));
    assert!(result["reason"].as_str().unwrap().starts_with("exit status 3"), "{runtime:#}");
    assert!(emulator.ec2().image(&ami).is_none());
    let status = cli.run(&["status"]).success().stdout.clone();
    assert!(status.contains(&format!("{ami} was deregistered after it failed its test image-env")), "{status}");
    assert_nothing_left(&emulator, &cli);

    // --keep-failed: the image stays, marked failed and tagged, and is never a source.
    let run = cli.run(&["build", "--keep-failed"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(!run.stdout.contains("(--keep-failed keeps it)"), "{}", run.stdout);
    assert!(run.stdout.contains("kept (failed: never a source, never reused)"), "{}", run.stdout);
    let kept = record(&cli, "runtime");
    let kept_ami = kept["ami_id"].as_str().unwrap().to_string();
    assert_eq!(kept["status"], "failed");
    let (tags, snapshots) = emulator.ec2().image(&kept_ami).unwrap();
    assert_eq!(tags["paw:tests"], "failed");
    assert!(emulator.ec2().snapshot(&snapshots[0]).is_some());
    let lineage = cli.run(&["images", "lineage", "runtime"]).success().stdout.clone();
    assert!(lineage.contains("failed: image-env"), "{lineage}");
    let status = cli.json(&["status"]);
    assert_eq!(status[1]["state"], "failed", "{status:#}");
    let plan = cli.json(&["plan"]);
    assert_eq!(plan[1]["action"], "build");
    assert!(plan[1]["reason"].as_str().unwrap().contains("failed its test image-env"), "{plan:#}");
    cli.fails(&["resolve", "runtime"], "has no available image");
    cli.fails(&["build", "web"], "whose AMI");
    cli.fails(&["build", "web"], "failed its test image-env");

    // Another workflow with the same inputs reuses base (it passed), never the failed runtime.
    let other = cli.json(&["--workflow-id", "other", "plan"]);
    assert_eq!((other[0]["action"].as_str(), other[1]["action"].as_str()), (Some("reuse"), Some("build")), "{other:#}");

    // The channel gate: a failed image is refused, unless overridden with a reason.
    cli.fails(&["channel", "set", "prod", "runtime"], "channel prod points at images that passed their tests");
    let forced = cli.run(&["channel", "set", "prod", "runtime", "--force", "--reason", "hotfix, tested by hand"]);
    forced.success();
    let history = cli.json(&["channel", "history", "prod", "runtime"]);
    assert_eq!(history[0]["action"], "override");
    assert_eq!(history[0]["reason"], "hotfix, tested by hand");

    // Fixed, `paw test` passes it: available again, and a channel takes it without an override.
    paw.edit("wf/runtime/tests/image-env", "exit 3", "exit 0");
    let tested = cli.json(&["test", "runtime"]);
    assert_eq!(tested[0]["passed"], true);
    assert_eq!(record(&cli, "runtime")["status"], "available");
    assert_eq!(emulator.ec2().image(&kept_ami).unwrap().0["paw:tests"], "passed");
    cli.run(&["channel", "set", "staging", "runtime"]).success();

    // A failed `paw test` marks the image failed but keeps it (it may be in use): exit 1.
    paw.edit("wf/runtime/tests/image-env", "exit 0", "exit 4");
    let run = cli.run(&["test", "runtime"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("the images of runtime failed their tests"), "{}", run.stderr);
    assert_eq!(record(&cli, "runtime")["status"], "failed");
    assert!(emulator.ec2().image(&kept_ami).is_some());
    assert_nothing_left(&emulator, &cli);
}

/// Ctrl-C while a template test's instance runs: packer terminates it, the image stays recorded
/// but untested, and the next build tests it before its children start from it.
#[test]
fn an_interrupted_test_leaves_no_instance_and_the_next_build_tests_the_image() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("fanout"));
    let cli = Cli::new(&paw, &["-w", "wf"]);
    let (mut child, stdout) = build_stuck_in_test(&emulator, &paw);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let rest: Vec<String> = stdout.map(Result::unwrap).collect();
    assert!(rest.iter().any(|line| line.contains("interrupted during the test boot")), "{rest:#?}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(emulator.ec2().live_instances().is_empty(), "the test's instance is left");
    let base = record(&cli, "base");
    assert_eq!(base["status"], "available");
    assert!(base.get("tests").is_none(), "no verdict for an interrupted run: {base:#}");
    let status = cli.json(&["status"]);
    assert_eq!(status[0]["state"], "untested", "{status:#}");
    cli.fails(&["channel", "set", "prod", "base"], "has not been tested");
    cli.fails(&["build", "runtime"], "whose AMI");
    cli.fails(&["build", "runtime"], "has not been tested");
    assert_nothing_left(&emulator, &cli);

    paw.edit("wf/base/tests/templates/boot.pkr.hcl", STUCK.1, STUCK.0);
    let plan = cli.json(&["plan"]);
    assert!(plan[0]["reason"].as_str().unwrap().contains("untested: the build runs its tests"), "{plan:#}");
    let run = cli.run(&["build"]);
    let out = &run.success().stdout;
    let tested = out.find("base | === test boot passed").expect(out);
    assert!(tested < out.find("runtime | === building from").unwrap(), "{out}");
    assert!(out.contains("3 built, 0 reused, 1 up-to-date"), "{out}");
    assert!(out.contains("│ base      up-to-date   ") && out.contains("1 passed"), "{out}");
    assert_eq!(record(&cli, "base")["tests"][0]["results"][0]["passed"], true);
    assert_nothing_left(&emulator, &cli);
    assert_eq!(FANOUT_ID, record(&cli, "base")["workflow_id"]);
}

/// Starts a build of the fanout example whose base test template provisions for a minute, and
/// returns it once the test's instance runs, with the rest of its output to read.
fn build_stuck_in_test(
    emulator: &Emulator,
    paw: &Paw,
) -> (std::process::Child, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    paw.edit("wf/base/tests/templates/boot.pkr.hcl", STUCK.0, STUCK.1);
    let mut child = paw.command(&["-w", "wf", "build"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let seen = read_until(&mut stdout, "amazon-ebsvolume.boot: Running local shell script");
    assert_eq!(emulator.ec2().live_instances().len(), 1, "{seen:#?}");
    (child, stdout)
}

const STUCK: (&str, &str) = ("      \"echo 'checking", "      \"sleep 60\",\n      \"echo 'checking");

/// The machine dies during a test: the test's instance is left running, and the journal knows it;
/// `paw recover` terminates it. The image stays recorded, untested.
#[test]
fn recover_settles_a_test_a_dead_machine_left() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("fanout"));
    let cli = Cli::new(&paw, &["-w", "wf"]);
    let (mut child, _stdout) = build_stuck_in_test(&emulator, &paw);
    crate::recovery::kill_machine(&mut child);
    let instance = emulator.ec2().live_instances().remove(0);
    let run = cli.run(&["recover"]);
    let out = &run.success().stdout;
    assert!(out.contains(&format!("terminated {instance} left by an interrupted run")), "{out}");
    assert!(emulator.ec2().live_instances().is_empty());
    assert_eq!(cli.json(&["status"])[0]["state"], "untested");
    assert_nothing_left(&emulator, &cli);
}

/// A test template that does not render, or that packer rejects, stops the build before anything
/// is made, and says which file.
#[test]
fn a_broken_test_template_stops_the_build_before_anything_is_made() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("fanout"));
    let cli = Cli::new(&paw, &["-w", "wf"]);
    let template = "wf/base/tests/templates/boot.pkr.hcl";
    paw.edit(template, "{{ builder.test_ami_id }}\"\n", "{{ builder.test_ami_id.nope() }}\"\n");
    let run = cli.fails(&["build"], "boot.pkr.hcl:");
    assert!(run.stderr.contains("template"), "{}", run.stderr);
    paw.edit(template, "{{ builder.test_ami_id.nope() }}\"\n", "{{ builder.test_ami_id }}\"\n");
    paw.edit(template, "  instance_type =", "  no_such_setting = true\n  instance_type =");
    let run = cli.fails(&["build"], "packer validate failed");
    assert!(run.stderr.contains("no_such_setting"), "{}", run.stderr);
    assert!(run.stderr.contains("fix the test template"), "{}", run.stderr);
    assert!(emulator.ec2().own_images().is_empty());
    cli.fails(&["validate"], "no_such_setting");
    assert_nothing_left(&emulator, &cli);
}
