//! Every way a run can stop, and runs at once, on the emulator with the real packer. After each,
//! nothing is left that paw does not know about (`assert_nothing_leaked`).

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use crate::aws::{WORKFLOW_ID, build_stuck_in_provisioning};
use crate::emulator::Emulator;
use crate::harness::{Paw, copy_tree, examples_dir};
use crate::regions::copy_step1_to_us_west_2;

/// No instance running, no key pair or security group of packer's, every AMI named for the
/// workflow recorded as available, and every available record's AMI in EC2.
pub fn assert_nothing_leaked(emulator: &Emulator, paw: &Paw, args: &[&str]) {
    let ec2 = emulator.ec2();
    assert!(ec2.live_instances().is_empty(), "instances left running: {:?}", ec2.live_instances());
    assert!(ec2.packer_key_pairs().is_empty(), "key pairs left: {:?}", ec2.packer_key_pairs());
    assert!(ec2.packer_security_groups().is_empty(), "security groups left: {:?}", ec2.packer_security_groups());
    let list: Vec<&str> = args.iter().copied().chain(["images", "list", "--json"]).collect();
    let records = paw.run(&list).success().json();
    let available: Vec<&str> = records
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["status"] == "available")
        .map(|record| record["ami_id"].as_str().unwrap())
        .collect();
    for (id, name) in ec2.own_images().iter().filter(|(_, name)| name.contains(WORKFLOW_ID)) {
        assert!(available.contains(&id.as_str()), "{id} ({name}) is in EC2 but not recorded as available");
    }
    for id in &available {
        assert!(ec2.image(id).is_some(), "{id} is recorded as available but not in EC2");
    }
}

/// The machine dies: paw and every process it started (packer, its watcher) are killed at once,
/// so nothing cleans up.
pub fn kill_machine(child: &mut std::process::Child) {
    use nix::sys::signal::{Signal, killpg};
    let paw = child.id();
    // Frozen first, so that it cannot see its children die and clean up after them.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(paw as i32), Signal::SIGSTOP).unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid pgrp ...: paw's children lead process groups of their own.
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        if fields.get(1) == Some(&paw.to_string().as_str()) {
            let group: i32 = fields[2].parse().unwrap();
            let _ = killpg(nix::unistd::Pid::from_raw(group), Signal::SIGKILL);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

const NO_SLEEP: (&str, &str) = ("      \"sleep 60\",\n", "");

#[test]
fn what_a_dead_machine_left_is_cleaned_up_by_recover() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let (mut child, _stdout) = build_stuck_in_provisioning(&emulator, &paw, &[]);
    kill_machine(&mut child);
    let ec2 = emulator.ec2();
    assert_eq!(ec2.live_instances().len(), 1, "packer died before its cleanup");
    assert_eq!((ec2.packer_key_pairs().len(), ec2.packer_security_groups().len()), (1, 1));
    let instance = ec2.live_instances().remove(0);

    let run = paw.run(&["-w", "wf", "recover"]);
    let out = &run.success().stdout;
    assert!(out.contains("settling the build of an interrupted run: paw "), "{out}");
    assert!(out.contains(&format!("terminated {instance} left by an interrupted run")), "{out}");
    assert!(out.contains("deleted the key pair packer_"), "{out}");
    assert!(out.contains("deleted the security group packer_"), "{out}");
    assert!(out.contains("step1") && out.contains("settled"), "{out}");
    assert_nothing_leaked(&emulator, &paw, &["-w", "wf"]);
    let again = paw.run(&["-w", "wf", "recover"]);
    assert!(again.success().stdout.contains("nothing to recover"), "{}", again.stdout);

    paw.edit("wf/step1/templates/.pkr.hcl", NO_SLEEP.0, NO_SLEEP.1);
    let run = paw.run(&["-w", "wf", "build"]);
    assert!(run.success().stdout.contains("3 built"), "{}", run.stdout);
    assert_nothing_leaked(&emulator, &paw, &["-w", "wf"]);
}

/// Starts a build whose step1 has a post-processor that runs for a minute, and returns it once the
/// post-processor runs: packer has made the AMI, paw has not recorded it.
fn build_stuck_in_post_processor(emulator: &Emulator, paw: &Paw) -> (std::process::Child, String) {
    let post_processor = "  post-processor \"shell-local\" {\n    inline = [\"sleep 60\"]\n  }\n}\n";
    let template = paw.read("wf/step1/templates/.pkr.hcl");
    let body = template.trim_end().strip_suffix('}').unwrap();
    paw.write("wf/step1/templates/.pkr.hcl", &format!("{body}{post_processor}"));
    let mut child = paw.command(&["-w", "wf", "build"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let seen: Vec<String> =
        stdout.lines().map(Result::unwrap).take_while(|line| !line.contains("Running post-processor")).collect();
    let made = emulator.ec2().own_images();
    assert_eq!(made.len(), 1, "{seen:#?}");
    (child, made[0].0.clone())
}

/// paw alone killed (SIGKILL) once the AMI exists: its watcher interrupts packer, and packer, whose
/// post-processor then fails, deregisters the AMI itself. Nothing is left; the next build builds.
#[test]
fn an_ami_made_before_paw_was_killed_is_removed_by_packer() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let (mut child, ami) = build_stuck_in_post_processor(&emulator, &paw);
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while emulator.ec2().image(&ami).is_some() {
        assert!(std::time::Instant::now() < deadline, "packer did not remove {ami} after paw died");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_nothing_leaked(&emulator, &paw, &["-w", "wf"]);
    paw.write(
        "wf/step1/templates/.pkr.hcl",
        &std::fs::read_to_string(examples_dir().join("chain/step1/templates/.pkr.hcl")).unwrap(),
    );
    let run = paw.run(&["-w", "wf", "build"]);
    let out = &run.success().stdout;
    assert!(out.contains("settling the build of an interrupted run"), "{out}");
    assert!(out.contains("3 built"), "{out}");
    assert_nothing_leaked(&emulator, &paw, &["-w", "wf"]);
}

/// The machine dies once the AMI and its copy in us-west-2 (`ami_regions`) exist: both are left,
/// unrecorded. The next build adopts them (the inputs still match) instead of failing on the
/// taken name, and builds the rest.
#[test]
fn an_ami_left_by_a_dead_machine_is_adopted_by_the_next_build() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    copy_step1_to_us_west_2(&paw);
    let (mut child, ami) = build_stuck_in_post_processor(&emulator, &paw);
    kill_machine(&mut child);
    assert!(emulator.ec2().image(&ami).is_some());
    let west = emulator.ec2_in("us-west-2");
    let copies = west.own_images();
    assert_eq!(copies.len(), 1, "packer copied the AMI before its post-processor");

    let run = paw.run(&["-w", "wf", "build"]);
    let out = &run.success().stdout;
    assert!(out.contains(&format!("adopted {ami} left by an interrupted run")), "{out}");
    assert!(out.contains("2 built, 0 reused, 1 up-to-date"), "{out}");
    let record = paw.run(&["-w", "wf", "images", "show", "step1", "--json"]).success().json();
    assert_eq!(record["ami_id"], ami.as_str());
    let (tags, _) = emulator.ec2().image(&ami).unwrap();
    assert_eq!(tags["paw:step_id"], "step1");
    assert_eq!(record["copies"]["us-west-2"], copies[0].0.as_str(), "{record:#}");
    assert_eq!(west.image(&copies[0].0).unwrap().0["paw:step_id"], "step1");
    assert_nothing_leaked(&emulator, &paw, &["-w", "wf"]);
}

/// Two `paw build` of one folder at once: each step is built once; the second run waits for the
/// first and uses its AMIs.
#[test]
fn two_runs_of_one_folder_build_each_step_once() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.edit("wf/step1/templates/.pkr.hcl", "    inline = [", "    inline = [\n      \"sleep 3\",");
    let spawn = || paw.command(&["-w", "wf", "build"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (first, second) = (spawn(), spawn());
    let outputs = [first.wait_with_output().unwrap(), second.wait_with_output().unwrap()];
    let texts: Vec<String> =
        outputs.iter().map(|output| String::from_utf8_lossy(&output.stdout).into_owned()).collect();
    for (output, text) in outputs.iter().zip(&texts) {
        assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    }
    let all = texts.join("\n");
    assert!(all.contains("waiting for step step1 (held by "), "{all}");
    assert_eq!(all.matches("=== built ").count(), 3, "{all}");
    assert_eq!(emulator.ec2().own_images().len(), 3);
    assert_nothing_leaked(&emulator, &paw, &["-w", "wf"]);
}

/// Two machines, each with its own copy of the workflow folder, build one workflow id into one
/// DynamoDB catalog at once: each step is built once, by whichever holds its lease.
#[test]
fn two_machines_share_one_build_through_dynamodb() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    copy_tree(&examples_dir().join("chain"), &paw.path("wf2"));
    for folder in ["wf", "wf2"] {
        paw.edit(&format!("{folder}/step1/templates/.pkr.hcl"), "    inline = [", "    inline = [\n      \"sleep 3\",");
    }
    // The table does not exist yet: both machines find it missing at once.
    let catalog = "dynamodb:paw_shared";
    let spawn = |folder: &str, host: &str| {
        paw.command(&["-w", folder, "--catalog", catalog, "build"])
            .env("PAW_HOST", host)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("wf", "machine-a"), spawn("wf2", "machine-b"));
    let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let all: String = outputs.iter().map(|output| String::from_utf8_lossy(&output.stdout).into_owned()).collect();
    for output in &outputs {
        assert!(output.status.success(), "{all}\n{}", String::from_utf8_lossy(&output.stderr));
    }
    assert!(all.contains("(held by machine-"), "{all}");
    assert_eq!(all.matches("=== built ").count(), 3, "{all}");
    assert_eq!(emulator.ec2().own_images().len(), 3);
    assert_nothing_leaked(&emulator, &paw, &["-w", "wf2", "--catalog", catalog]);
}

/// A machine dies holding a lease: another machine waits until the lease expires (PAW_LEASE_TTL),
/// settles what the dead one left, and builds.
#[test]
fn an_expired_lease_is_taken_over() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain")).env("PAW_LEASE_TTL", "4");
    let (mut child, _stdout) = build_stuck_in_provisioning(&emulator, &paw, &[("PAW_HOST", "machine-a")]);
    kill_machine(&mut child);
    let instance = emulator.ec2().live_instances().remove(0);
    paw.edit("wf/step1/templates/.pkr.hcl", NO_SLEEP.0, NO_SLEEP.1);

    let run = paw.run_with(&[("PAW_HOST", "machine-b")], &["-w", "wf", "build"]);
    let out = &run.success().stdout;
    assert!(out.contains("waiting for step step1 (held by machine-a/"), "{out}");
    assert!(out.contains("settling the build of an interrupted run: its lease from paw "), "{out}");
    assert!(out.contains(&format!("terminated {instance} left by an interrupted run")), "{out}");
    assert!(out.contains("3 built"), "{out}");
    assert_nothing_leaked(&emulator, &paw, &["-w", "wf"]);
}
