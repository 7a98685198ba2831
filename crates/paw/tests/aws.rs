//! paw against the local AWS API emulator with the real packer: build, tag, record, and the
//! seed's AMI operations.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use crate::emulator::Emulator;
use crate::harness::Paw;
use crate::recovery::assert_nothing_leaked;

pub const ROOT_AMI: &str = "ami-785db401";
const ROOT_NAME: &str = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721";
pub const WORKFLOW_ID: &str = "paw-2024-06-13-12-00-00";

fn images(paw: &Paw) -> Vec<serde_json::Value> {
    paw.run(&["-w", "wf", "images", "list", "--json"]).success().json().as_array().unwrap().clone()
}

fn record<'a>(records: &'a [serde_json::Value], step: &str) -> &'a serde_json::Value {
    records
        .iter()
        .find(|record| record["step_id"] == step)
        .unwrap_or_else(|| panic!("no record of {step}: {records:#?}"))
}

#[test]
fn the_example_chain_builds_tags_and_records_three_amis() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let run = paw.run(&["-w", "wf", "build"]);
    run.success();
    assert!(
        run.stdout.contains("step1 | ==> step1.amazon-ebs.step1: Launching a source AWS instance..."),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("step3 |     step3.amazon-ebs.step3: installing the application for step3"));
    for step in ["step1", "step2", "step3"] {
        assert!(
            run.stdout.lines().any(|line| line.contains(step) && line.contains("built") && line.contains("ami-")),
            "{}",
            run.stdout
        );
    }

    let records = images(&paw);
    assert_eq!(records.len(), 3);
    let ec2 = emulator.ec2();
    let mut parent: Option<&serde_json::Value> = None;
    for step in ["step1", "step2", "step3"] {
        let record = record(&records, step);
        let ami = record["ami_id"].as_str().unwrap();
        let name = format!("{ROOT_NAME}/{WORKFLOW_ID}/{step}");
        assert_eq!(record["ami_name"], name);
        assert_eq!(record["status"], "available");
        assert_eq!(record["region"], "us-east-1");
        assert_eq!(record["root_base_ami_id"], ROOT_AMI);
        assert_eq!(record["details"]["data"]["ImageId"], ami);
        assert_eq!(record["details"]["tags"]["paw:step_id"], step);
        assert!(record["aws_console_url"].as_str().unwrap().ends_with(&format!("#ImageDetails:imageId={ami}")));
        let create_at = record["create_at"].as_str().unwrap();
        assert!(
            create_at.len() == 31 && create_at.ends_with("+0000") && create_at.as_bytes()[19] == b'.',
            "{create_at}"
        );
        // Lineage: each step starts from its parent's AMI.
        let (base_id, base_name) = match parent {
            None => (ROOT_AMI.to_string(), ROOT_NAME.to_string()),
            Some(parent) => {
                (parent["ami_id"].as_str().unwrap().to_string(), parent["ami_name"].as_str().unwrap().to_string())
            }
        };
        assert_eq!(record["base_ami_id"], base_id.as_str());
        assert_eq!(record["base_ami_name"], base_name.as_str());
        // Tags on the AMI and on every one of its snapshots.
        let (tags, snapshots) = ec2.image(ami).expect("the AMI exists");
        assert_eq!(tags["Name"], name);
        assert_eq!(tags["packer:base_ami_id"], base_id);
        assert_eq!(tags["packer:root_base_ami_name"], ROOT_NAME);
        assert_eq!(tags["paw:workflow_id"], WORKFLOW_ID);
        assert_eq!(tags["paw:step_id"], step);
        assert_eq!(tags["bus:team"], "platform");
        assert!(!snapshots.is_empty());
        for snapshot in snapshots {
            assert_eq!(ec2.snapshot(&snapshot).expect("the snapshot exists"), tags, "{snapshot}");
        }
        parent = Some(record);
    }
    // Newest first, and the full packer output is kept.
    assert_eq!(records[0]["step_id"], "step3");
    let logs = std::fs::read_dir(paw.path(&format!("wf/.paw/logs/{WORKFLOW_ID}"))).unwrap().count();
    assert_eq!(logs, 3);
    assert!(ec2.live_instances().is_empty());

    // One step across workflows, and one step's record.
    let across = paw.run(&["-w", "wf", "images", "list", "--step", "step2", "--json"]).success().json();
    assert_eq!(across.as_array().unwrap().len(), 1);
    let shown = paw.run(&["-w", "wf", "images", "show", "step2", "--json"]).success().json();
    assert_eq!(shown["ami_id"], record(&records, "step2")["ami_id"]);
    let table = paw.run(&["-w", "wf", "images", "list"]);
    assert!(table.success().stdout.contains("step1"), "{}", table.stdout);

    // Rendering now starts step2 from step1's recorded AMI, not a placeholder.
    paw.run(&["-w", "wf", "render", "step2"]).success();
    let step1_ami = record(&records, "step1")["ami_id"].as_str().unwrap();
    assert!(paw.read("wf/step2/step2.pkrvars.hcl").contains(&format!("source_ami_id = \"{step1_ami}\"")));
}

#[test]
fn a_named_step_needs_its_parents_ami_in_the_catalog() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let run = paw.run(&["-w", "wf", "build", "step2"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("step \"step2\" starts from step \"step1\", which has no AMI in sqlite:wf/.paw/catalog.sqlite"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("build the parent first: `paw build step1`"));
    assert!(!run.stdout.contains("Launching"));

    paw.run(&["-w", "wf", "build", "step1"]).success();
    paw.run(&["-w", "wf", "build", "step2"]).success();
    let records = images(&paw);
    assert_eq!(record(&records, "step2")["base_ami_id"], record(&records, "step1")["ami_id"]);
}

#[test]
fn dry_run_prints_the_packer_command_and_builds_nothing() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let run = paw.run(&["-w", "wf", "build", "step1", "--dry-run"]);
    run.success();
    assert!(run.stdout.contains("build -machine-readable -var-file=step1.pkrvars.hcl ."), "{}", run.stdout);
    let debug = paw.run(&["-w", "wf", "build", "step1", "--dry-run", "--packer-debug"]);
    assert!(
        debug.success().stdout.contains("build -machine-readable -debug -var-file=step1.pkrvars.hcl ."),
        "{}",
        debug.stdout
    );
    assert!(run.stdout.contains("dry run"));
    assert!(paw.path("wf/step1/step1.pkr.hcl").is_file());
    assert!(images(&paw).is_empty());
}

#[test]
fn a_taken_ami_name_stops_the_build_before_packer_runs() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.run(&["-w", "wf", "build", "step1"]).success();
    let ami = images(&paw)[0]["ami_id"].as_str().unwrap().to_string();
    // Another catalog that does not know the AMI: EC2 still does.
    let run = paw.run(&["-w", "wf", "--catalog", "sqlite:other.sqlite", "build", "step1"]);
    assert_eq!(run.code, 2);
    let name = format!("{ROOT_NAME}/{WORKFLOW_ID}/step1");
    assert!(run.stdout.contains(&format!("the AMI name \"{name}\" is already taken by {ami}")), "{}", run.stdout);
    // The other catalog does not know the AMI: `paw images delete` could not remove it.
    assert!(
        run.stdout.contains(&format!(
            "as the catalog does not know that AMI (a run stopped after packer made it?), look at it, then \
             deregister it with `aws ec2 deregister-image --image-id {ami}`"
        )),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("Launching a source AWS instance"));
}

/// A template that names its AMI itself (common in plain Packer projects) is refused before any
/// step is built, at the attribute: no build that fails at the end, no AMI that paw cannot find.
#[test]
fn a_template_that_names_its_ami_itself_stops_before_packer_runs() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.edit(
        "wf/step2/templates/.pkr.hcl",
        "var.output_ami_name",
        "\"team-base-${formatdate(\"YYYYMMDD\", timestamp())}\"",
    );
    let run = paw.run(&["-w", "wf", "build"]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let said = "wf/step2/step2.pkr.hcl:3:3: source \"amazon-ebs\" \"step2\" sets ami_name to";
    assert!(run.stderr.contains(said) && run.stdout.is_empty(), "checked before any step is built: {}", run.stderr);
    assert!(emulator.ec2().own_images().is_empty() && images(&paw).is_empty());
    assert!(emulator.ec2().live_instances().is_empty());

    paw.edit("wf/step2/templates/.pkr.hcl", "\"team-base-${formatdate(\"YYYYMMDD\", timestamp())}\"", "\"team-base\"");
    let run = paw.run(&["-w", "wf", "validate", "step2"]);
    let said = format!("names the AMI \"team-base\", not the step's \"{ROOT_NAME}/{WORKFLOW_ID}/step2\"");
    assert!(run.code == 2 && run.stderr.contains(&said), "{}", run.stderr);
}

#[test]
fn a_source_ami_that_does_not_exist_is_a_clear_error() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.edit("wf/workflow_param.json", ROOT_AMI, "ami-0123456789abcdef0");
    let run = paw.run(&["-w", "wf", "build"]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.contains("step \"step1\" starts from AMI ami-0123456789abcdef0"), "{}", run.stdout);
    assert!(run.stdout.contains("which is not available in us-east-1"));
    assert!(run.stdout.contains("step2 | === skipped: step1 did not finish"));
    assert!(images(&paw).is_empty());
}

/// Starts a build whose first step provisions for a minute, and returns it once packer's instance
/// is up and the provisioner runs.
pub fn build_stuck_in_provisioning(
    emulator: &Emulator,
    paw: &Paw,
    env: &[(&str, &str)],
) -> (std::process::Child, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    let mut build = paw.command(&["-w", "wf", "build"]);
    build.envs(env.iter().copied());
    start_stuck_in_provisioning(emulator, paw, build)
}

/// `build_stuck_in_provisioning`, with `build` the command that runs `paw build`.
pub fn start_stuck_in_provisioning(
    emulator: &Emulator,
    paw: &Paw,
    mut build: std::process::Command,
) -> (std::process::Child, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    paw.edit("wf/step1/templates/.pkr.hcl", "    inline = [", "    inline = [\n      \"sleep 60\",");
    let mut child = build.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    crate::harness::read_until(&mut stdout, "Running local shell script");
    assert_eq!(emulator.ec2().live_instances().len(), 1);
    (child, stdout)
}

/// `command` run as the first process of a new PID namespace, as a container's entry point is.
fn as_pid_1(command: &std::process::Command) -> std::process::Command {
    wrapped(&["unshare", "--pid", "--fork", "--kill-child"], command)
}

/// `command` run where /proc holds nothing but the `self/exe` link packer needs to start its
/// plugins (a mount namespace with a tmpfs on /proc): as on macOS, which has no /proc. The
/// command's process is paw's (sh execs it).
fn without_proc(command: &std::process::Command) -> std::process::Command {
    let packer = std::fs::canonicalize(crate::harness::packer()).unwrap();
    let script = format!(
        "mount -t tmpfs none /proc && mkdir /proc/self && ln -s '{}' /proc/self/exe && exec \"$@\"",
        packer.display()
    );
    wrapped(&["unshare", "--mount", "--propagation", "private", "sh", "-c", &script, "sh"], command)
}

/// `command` run by `prefix` (a program and its arguments), with the same environment and folder.
fn wrapped(prefix: &[&str], command: &std::process::Command) -> std::process::Command {
    let mut wrapped = std::process::Command::new(prefix[0]);
    wrapped.args(&prefix[1..]).arg(command.get_program()).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped.stdin(Stdio::null());
    wrapped
}

/// paw as a container's PID 1 (`docker run … paw build`), with no HOME: `docker stop`'s SIGTERM
/// still reaches it, packer still cleans up, nothing is left.
#[test]
fn paw_as_pid_1_without_home_stops_cleanly_on_sigterm() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let mut build = paw.command(&["-w", "wf", "build"]);
    build.env_remove("HOME");
    let (mut child, stdout) = start_stuck_in_provisioning(&emulator, &paw, as_pid_1(&build));
    // unshare's one child is paw, PID 1 of its namespace.
    let children = format!("/proc/{0}/task/{0}/children", child.id());
    let paw_pid: i32 = std::fs::read_to_string(&children).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{paw_pid}/status")).unwrap();
    let namespaced = status.lines().find(|line| line.starts_with("NSpid:")).unwrap();
    assert!(namespaced.ends_with("\t1"), "paw is PID 1 of its namespace: {namespaced}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(paw_pid), nix::sys::signal::Signal::SIGTERM).unwrap();
    let rest: Vec<String> = stdout.map(Result::unwrap).collect();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{rest:#?}\n{stderr}");
    assert!(rest.iter().any(|line| line.contains("Terminating the source AWS instance")), "{rest:#?}");
    assert!(emulator.ec2().own_images().is_empty());
    assert_nothing_leaked(&emulator, &paw, &["-w", "wf"]);
}

/// Ctrl-C, `docker stop` (SIGTERM) and a closed terminal (SIGHUP) all stop a build the same way:
/// packer cleans up, nothing is recorded, the exit code is 128 + the signal.
#[test]
fn a_signal_during_provisioning_records_nothing_and_leaves_no_instance_running() {
    use nix::sys::signal::Signal;
    for (signal, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143), (Signal::SIGHUP, 129)] {
        let emulator = Emulator::start();
        let paw = emulator.configure(Paw::example("chain"));
        let (mut child, stdout) = build_stuck_in_provisioning(&emulator, &paw, &[]);
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
        let rest: Vec<String> = stdout.map(Result::unwrap).collect();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{signal}: {rest:#?}\n{stderr}");
        assert!(stderr.contains(&format!("paw: {signal}: stopping; packer cleans up")), "{stderr}");
        assert!(rest.iter().any(|line| line.contains("interrupted: waiting for packer to clean up")), "{rest:#?}");
        assert!(rest.iter().any(|line| line.contains("Terminating the source AWS instance")), "{rest:#?}");
        assert!(rest.iter().any(|line| line.contains("step2 | === skipped: interrupted")), "{rest:#?}");
        assert!(images(&paw).is_empty());
        assert!(emulator.ec2().own_images().is_empty(), "{signal}");
        assert_nothing_leaked(&emulator, &paw, &["-w", "wf"]);
    }
}

/// paw killed outright (SIGKILL, the OOM killer) while packer provisions: packer does not depend on
/// paw, and its supervisor interrupts it, so it still terminates its instance; the next build runs.
/// Then the same, and the next build, where there is no /proc (as on macOS).
#[test]
fn packer_cleans_up_even_when_paw_is_killed() {
    // `env` execs paw: the process is paw's, as it is without it.
    killed_during_provisioning(|command| wrapped(&["env", "--"], command));
    killed_during_provisioning(without_proc);
}

fn killed_during_provisioning(wrap: fn(&std::process::Command) -> std::process::Command) {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let (mut child, _stdout) = start_stuck_in_provisioning(&emulator, &paw, wrap(&paw.command(&["-w", "wf", "build"])));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(child.wait().unwrap().code(), None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !emulator.ec2().live_instances().is_empty() {
        assert!(std::time::Instant::now() < deadline, "packer's instance still runs a minute after paw died");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let logs = paw.path(&format!("wf/.paw/logs/{WORKFLOW_ID}"));
    let log = std::fs::read_dir(&logs).unwrap().next().unwrap().unwrap().path();
    // packer finishes its cleanup after paw is gone; its last lines reach the log.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&log).unwrap().contains("Cleanly cancelled builds after being interrupted") {
        assert!(std::time::Instant::now() < deadline, "{}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(std::fs::read_to_string(&log).unwrap().contains("Terminating the source AWS instance"));
    assert!(images(&paw).is_empty());
    assert!(emulator.ec2().own_images().is_empty());
    paw.edit("wf/step1/templates/.pkr.hcl", "      \"sleep 60\",\n", "");
    let output = wrap(&paw.command(&["-w", "wf", "build"])).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && stdout.contains("3 built, 0 reused"), "{stdout}");
    assert_nothing_leaked(&emulator, &paw, &["-w", "wf"]);
}

/// A second signal while packer cleans up: paw says what it waits for, and keeps waiting. (A
/// stand-in packer that takes two seconds to clean up; the emulator's cleanup is too quick.)
#[test]
fn a_second_signal_names_what_is_still_being_cleaned_up() {
    use std::os::unix::fs::PermissionsExt as _;
    let paw = Paw::example("chain");
    paw.write(
        "slow-packer",
        "#!/bin/sh\n[ \"$1\" = build ] || exit 0\n\
         trap 'kill $provisioner; echo 1,,ui,say,cleaning up; sleep 2; exit 1' INT\n\
         echo 1,,ui,say,provisioning\nsleep 60 >/dev/null 2>&1 &\nprovisioner=$!\nwait\n",
    );
    std::fs::set_permissions(paw.path("slow-packer"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let emulator = Emulator::start();
    let slow_packer = paw.path("slow-packer").to_string_lossy().into_owned();
    let paw = emulator.configure(paw).env("PAW_PACKER", slow_packer);
    let mut child = paw.command(&["-w", "wf", "build"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(stdout.by_ref().map(Result::unwrap).any(|line| line.ends_with("| provisioning")));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    // The first signal has reached packer once it says it cleans up; the second comes meanwhile.
    assert!(stdout.by_ref().map(Result::unwrap).any(|line| line.ends_with("| cleaning up")));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let rest: Vec<String> = stdout.map(Result::unwrap).collect();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(143), "{rest:#?}\n{stderr}");
    assert!(stderr.contains("paw: SIGTERM: still waiting for packer to clean up: step1"), "{stderr}");
}

#[test]
fn from_instance_refuses_a_running_instance_and_records_a_stopped_one() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let ec2 = emulator.ec2();
    let instance = ec2.run_instance(ROOT_AMI);
    let run = paw.run(&["-w", "wf", "images", "from-instance", "step1", "--instance-id", &instance]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains(&format!("instance {instance} is running, not stopped")), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("aws ec2 stop-instances --instance-ids {instance}")));
    assert!(images(&paw).is_empty());

    ec2.stop_instance(&instance);
    let run = paw.run(&["-w", "wf", "images", "from-instance", "step1", "--instance-id", &instance, "--timeout", "60"]);
    assert!(run.success().stdout.contains("created ami-"), "{}", run.stdout);
    let records = images(&paw);
    let ami = record(&records, "step1")["ami_id"].as_str().unwrap();
    assert_eq!(record(&records, "step1")["ami_name"], format!("{ROOT_NAME}/{WORKFLOW_ID}/step1"));
    let (tags, snapshots) = ec2.image(ami).unwrap();
    assert_eq!(tags["paw:step_id"], "step1");
    assert_eq!(tags["packer:base_ami_id"], ROOT_AMI);
    for snapshot in snapshots {
        assert_eq!(ec2.snapshot(&snapshot).unwrap()["paw:step_id"], "step1");
    }
    // The next step builds from it.
    paw.run(&["-w", "wf", "build", "step2"]).success();
    assert_eq!(record(&images(&paw), "step2")["base_ami_id"], ami);

    // --no-wait records the AMI at once.
    let second = ec2.run_instance(ami);
    ec2.stop_instance(&second);
    let run =
        paw.run(&["-w", "wf", "images", "from-instance", "step3", "--instance-id", &second, "--no-wait", "--json"]);
    let made = run.success().json();
    assert_eq!(made["step_id"], "step3");
    assert_eq!(made["base_ami_id"], record(&images(&paw), "step2")["ami_id"]);
    assert!(ec2.image(made["ami_id"].as_str().unwrap()).is_some());

    let run = paw.run(&["-w", "wf", "images", "from-instance", "step3", "--instance-id", "i-0000000000000dead"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("there is no instance i-0000000000000dead in us-east-1"), "{}", run.stderr);
}

#[test]
fn delete_deregisters_the_ami_and_its_snapshots_and_keeps_the_record() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.run(&["-w", "wf", "build", "step1"]).success();
    let ami = images(&paw)[0]["ami_id"].as_str().unwrap().to_string();
    let ec2 = emulator.ec2();
    let (_, snapshots) = ec2.image(&ami).unwrap();

    let run = paw.run(&["-w", "wf", "images", "delete", "step1", "--delete-snapshots"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("refusing to deregister"), "{}", run.stderr);
    assert!(run.stderr.contains("pass --yes"));
    assert!(ec2.image(&ami).is_some());

    let run = paw.run(&["-w", "wf", "images", "delete", "step1", "--delete-snapshots", "--yes", "--json"]);
    let report = run.success().json();
    assert_eq!(report["deleted_snapshots"], serde_json::json!(snapshots));
    assert!(ec2.image(&ami).is_none());
    for snapshot in &snapshots {
        assert!(ec2.snapshot(snapshot).is_none(), "{snapshot} is still there");
    }
    let records = images(&paw);
    assert_eq!(records[0]["status"], "deregistered");
    // A deregistered AMI is never a source again.
    let run = paw.run(&["-w", "wf", "build", "step2"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("which has no AMI in"), "{}", run.stderr);
}

#[test]
fn base_ami_find_lists_canonicals_images_newest_first() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let run = paw.run(&["-w", "wf", "base-ami", "find", "--name", "ubuntu/images/hvm-ssd/ubuntu-*", "--json"]);
    let found = run.success().json();
    let ids: Vec<_> = found.as_array().unwrap().iter().map(|image| image["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&ROOT_AMI) && ids.contains(&"ami-1e749f67"), "{found:#}");
    let dates: Vec<_> =
        found.as_array().unwrap().iter().map(|image| image["creation_date"].as_str().unwrap()).collect();
    assert!(dates.windows(2).all(|pair| pair[0] >= pair[1]), "{dates:?}");
    let none =
        paw.run(&["-w", "wf", "base-ami", "find", "--name", "ubuntu/*", "--arch", "arm64", "--json"]).success().json();
    assert_eq!(none, serde_json::json!([]));
    let table = paw.run(&["-w", "wf", "base-ami", "find", "--name", "ubuntu/images/hvm-ssd/ubuntu-xenial-*"]);
    assert!(table.success().stdout.contains(ROOT_NAME), "{}", table.stdout);
}

#[test]
fn credentials_and_region_from_a_profile_or_the_params_and_no_secret_is_printed() {
    let emulator = Emulator::start();
    // A profile with the region and the credentials; nothing in the environment.
    let paw = Paw::example("chain").env("AWS_ENDPOINT_URL", &emulator.endpoint);
    paw.write(".aws-config-none", "[profile emulator]\nregion = us-east-1\n");
    paw.write(
        ".aws-credentials-none",
        "[emulator]\naws_access_key_id = testing\naws_secret_access_key = profile-secret-1234\n",
    );
    paw.edit("wf/workflow_param.json", "\"region_name\": \"us-east-1\",", "\"profile_name\": \"emulator\",");
    let run = paw.run(&["-w", "wf", "build", "step1"]);
    run.success();
    assert!(run.stdout.contains("step1.amazon-ebs.step1: Creating AMI"), "{}", run.stdout);

    // The seed's credential keys: accepted, with a warning, and never printed or logged.
    let paw = Paw::example("chain").env("AWS_ENDPOINT_URL", &emulator.endpoint);
    paw.edit(
        "wf/workflow_param.json",
        "\"region_name\": \"us-east-1\",",
        "\"region_name\": \"us-east-1\", \"aws_access_key_id\": \"testing\", \"aws_secret_access_key\": \"params-secret-5678\",",
    );
    paw.edit("wf/workflow_param.json", "paw-2024-06-13-12-00-00", "paw-from-params");
    let run = paw.run(&["-w", "wf", "build", "step1"]);
    run.success();
    assert!(run.stderr.contains("holds AWS credentials; secrets don't belong in files"), "{}", run.stderr);
    let logs: String = paw
        .snapshot()
        .iter()
        .filter(|(path, _)| path.to_string_lossy().contains(".paw/logs"))
        .map(|(_, content)| String::from_utf8_lossy(content).into_owned())
        .collect();
    assert!(!logs.is_empty());
    for text in [&run.stdout, &run.stderr, &logs] {
        assert!(!text.contains("params-secret-5678"), "a secret was printed or logged");
    }
}

#[test]
fn paw_catalog_in_the_environment_chooses_the_catalog() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let catalog = paw.path("elsewhere.sqlite").display().to_string();
    let paw = paw.env("PAW_CATALOG", format!("sqlite:{catalog}"));
    paw.run(&["-w", "wf", "build", "step1"]).success();
    assert!(paw.path("elsewhere.sqlite").is_file());
    assert!(!paw.path("wf/.paw/catalog.sqlite").exists());
    assert_eq!(images(&paw).len(), 1);
}

/// A plain Packer project, imported, builds as a paw step: its AMI named and recorded by paw,
/// packer's `{{ }}` intact, its script run from the step folder.
#[test]
fn an_imported_packer_project_builds() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::new());
    crate::offline::write_packer_project(&paw);
    paw.run(&["import", "web-app", "--into", "wf"]).success();
    let run = paw.run(&["-w", "wf", "build", "-v"]);
    assert!(run.success().stdout.contains("1 built"), "{}", run.stdout);
    assert!(run.stdout.contains("setting the web app up"), "{}", run.stdout);
    let records = images(&paw);
    assert_eq!(records[0]["ami_name"], "imported/web-app/web-app-1/web-app");
    let made: Vec<String> = emulator.ec2().own_images().into_iter().map(|(id, _)| id).collect();
    assert_eq!(made, [records[0]["ami_id"].as_str().unwrap()]);
}
