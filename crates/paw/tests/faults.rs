//! paw through a faulty network (tests/faults.py, between paw and the emulator): AWS throttling,
//! 500s, delays, connections dropped before or after the request was carried out, new AMIs
//! unknown to DescribeImages for 2 s and new DynamoDB items missing from its indexes, over several
//! seeds; and every write's answer lost once. After each round, asked of the emulator directly: no
//! instance, key pair or security group left, no AMI or snapshot the catalog does not know, no
//! record of an AMI that is gone, and a rerun without faults that finds nothing to do again.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Child;

use serde_json::Value;

use crate::aws::build_stuck_in_provisioning;
use crate::emulator::Emulator;
use crate::harness::{Paw, start_python_server};
use crate::recovery::kill_machine;

/// The share of paw's requests that get a fault.
const RATE: &str = "0.3";

pub struct FaultyNetwork {
    child: Child,
    pub endpoint: String,
    dir: tempfile::TempDir,
}

impl FaultyNetwork {
    /// Faults of every kind at `RATE`, at most 2 in a row per request, EC2 lagging 2 s, and
    /// DynamoDB's indexes `index_lag` seconds.
    fn start(upstream: &str, seed: u32, index_lag: &str) -> FaultyNetwork {
        let seed = seed.to_string();
        let settings =
            [("FAULT_SEED", seed.as_str()), ("FAULT_RATE", RATE), ("FAULT_LAG", "2"), ("FAULT_INDEX_LAG", index_lag)];
        FaultyNetwork::start_with(upstream, &settings)
    }

    pub fn start_with(upstream: &str, settings: &[(&str, &str)]) -> FaultyNetwork {
        let log = tempfile::tempdir().unwrap();
        let log_path = log.path().join("faults.log");
        let mut env = vec![("FAULT_UPSTREAM", upstream), ("FAULT_LOG", log_path.to_str().unwrap())];
        env.extend_from_slice(settings);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults.py");
        let (child, port, _port_dir) = start_python_server(&script, &env);
        FaultyNetwork { child, endpoint: format!("http://127.0.0.1:{port}"), dir: log }
    }

    /// The faults so far, one "kind service action" a line.
    pub fn faults(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("faults.log")).unwrap_or_default();
        log.lines().map(str::to_string).collect()
    }
}

impl Drop for FaultyNetwork {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One round: the chain built through the faults, then checked; `catalog` is paw's `--catalog`.
/// On DynamoDB, the items paw writes stay out of its index queries for a minute, so that revoke
/// and restore, right after the build, meet the lag.
fn round(seed: u32, catalog: Option<&str>) -> Vec<String> {
    let emulator = Emulator::start();
    let network = FaultyNetwork::start(&emulator.endpoint, seed, if catalog.is_some() { "60" } else { "2" });
    let paw = emulator.configure(Paw::example("chain"));
    let mut args = vec!["-w", "wf"];
    if let Some(catalog) = catalog {
        args.extend(["--catalog", catalog]);
    }
    let build = paw.run_with(&[("AWS_ENDPOINT_URL", &network.endpoint)], &[args.as_slice(), &["build"]].concat());
    let faults = network.faults();
    let context = format!("seed {seed}, faults: {faults:?}\n{}\n{}", build.stdout, build.stderr);
    assert_eq!(build.code, 0, "every call gets through in the end: the build finishes\n{context}");

    let ec2 = emulator.ec2();
    assert_eq!(ec2.live_instances(), Vec::<String>::new(), "{context}");
    assert_eq!(ec2.packer_key_pairs(), Vec::<String>::new(), "{context}");
    assert_eq!(ec2.packer_security_groups(), Vec::<String>::new(), "{context}");
    let records = paw.run(&[args.as_slice(), &["images", "list", "--json"]].concat()).success().json();
    let recorded: Vec<String> =
        records.as_array().unwrap().iter().map(|record| record["ami_id"].as_str().unwrap().to_string()).collect();
    let mut made: Vec<String> = ec2.own_images().into_iter().map(|(id, _)| id).collect();
    made.sort();
    let mut known = recorded.clone();
    known.sort();
    assert_eq!(made, known, "one AMI per step, each recorded, each there\n{context}");
    assert_eq!(recorded.len(), 3, "{context}");

    let rerun = paw.run(&[args.as_slice(), &["build", "--json"]].concat()).success().json();
    let outcomes: Vec<&str> = rerun.as_array().unwrap().iter().map(|step| step["result"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["up-to-date"; 3], "{context}");

    // The operations on images, through the faults too: each done once, as asked.
    let through = |more: &[&str]| {
        let run = paw.run_with(&[("AWS_ENDPOINT_URL", &network.endpoint)], &[args.as_slice(), more].concat());
        assert_eq!(run.code, 0, "{more:?}, seed {seed}, faults: {:?}\n{}", network.faults(), run.stderr);
    };
    through(&["channel", "set", "prod", "step3", "--ssm-parameter", "/paw/faults/prod"]);
    through(&["images", "revoke", "step2", "--reason", "CVE-1", "--yes"]);
    through(&["images", "restore", "step2"]);
    let history =
        paw.run(&[args.as_slice(), &["channel", "history", "prod", "step3", "--json"]].concat()).success().json();
    assert_eq!(history.as_array().unwrap().len(), 1, "one entry, though answers were lost: {history}");
    let step3 = recorded[0].clone();
    assert_eq!(emulator.ssm_parameter("/paw/faults/prod").as_deref(), Some(step3.as_str()));
    let records = paw.run(&[args.as_slice(), &["images", "list", "--json"]].concat()).success().json();
    assert!(records.as_array().unwrap().iter().all(|record| record["status"] == "available"), "{records}");
    network.faults()
}

#[test]
fn builds_through_throttles_errors_and_lost_answers_lose_and_leak_nothing() {
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 1..=4 {
        kinds.extend(round(seed, None).iter().map(|fault| fault.split(' ').next().unwrap().to_string()));
    }
    for seed in 5..=6 {
        let faults = round(seed, Some("dynamodb:paw-faults"));
        assert!(
            faults.iter().any(|fault| fault.contains(" dynamodb ")),
            "the catalog's calls get faults too: {faults:?}"
        );
        kinds.extend(faults.iter().map(|fault| fault.split(' ').next().unwrap().to_string()));
    }
    assert_eq!(kinds.len(), 6, "every kind of fault was met, and EC2's lag: {kinds:?}");
}

/// One round of the other operations on images, each through the faults: two workflows built
/// (the second changes step3), the second's step3 copied to us-west-2, shared, revoked, restored and
/// shared again by a distribution target added later, `prune --keep 1`,
/// `recover` after a machine died mid-build, and `from-instance`. Then, asked of the emulator in
/// both regions: nothing running, no key pair or group of packer's, every AMI and snapshot
/// accounted for, and the copy and recover, run again without faults, find nothing to do. Last, the
/// copied image, pointed at by a channel, is deleted with --force: every copy goes.
fn operations_round(catalog: &str, faults: &[(&str, &str)]) -> Vec<String> {
    let emulator = Emulator::start();
    let network = FaultyNetwork::start_with(&emulator.endpoint, faults);
    let paw = emulator.configure(Paw::example("chain")).env("PAW_CATALOG", catalog);
    let context = |run: &crate::harness::Run| {
        format!("{faults:?}, {catalog}, faults: {:?}\n{}\n{}", network.faults(), run.stdout, run.stderr)
    };
    let through = |workflow_id: &str, more: &[&str]| {
        let env = [("AWS_ENDPOINT_URL", network.endpoint.as_str()), ("PAW_WORKFLOW_ID", workflow_id)];
        let run = paw.run_with(&env, &[&["-w", "wf"], more].concat());
        assert_eq!(run.code, 0, "{workflow_id} {more:?}: {}", context(&run));
        run
    };
    through("wf-1", &["build"]);
    paw.write("wf/step3/notes.txt", "two");
    through("wf-2", &["build"]);
    through("wf-2", &["images", "copy", "step3", "--to-region", "us-west-2"]);
    through("wf-2", &["images", "share", "step3", "--account", "111122223333"]);
    through("wf-2", &["images", "revoke", "step3", "--reason", "faults", "--yes"]);
    through("wf-2", &["images", "restore", "step3"]);
    // A distribution target added after the build: its share, done by `distribute`.
    let target = r#"{"region": "us-east-1", "accounts": ["444455556666"], "steps": ["step3"]}"#;
    paw.edit(
        "wf/workflow_param.json",
        "    \"workflow_id\":",
        &format!("    \"distribution\": [{target}],\n    \"workflow_id\":"),
    );
    through("wf-2", &["distribute", "step3"]);
    let pruned = through("wf-2", &["images", "prune", "--keep", "1", "--delete-snapshots", "--yes", "--json"]).json();
    let deleted: Vec<&Value> =
        pruned.as_array().unwrap().iter().filter(|decision| decision["action"] == "deleted").collect();
    assert_eq!(deleted.len(), 1, "wf-1's step3: {pruned:#}");

    let (mut child, _stdout) = build_stuck_in_provisioning(&emulator, &paw, &[("PAW_WORKFLOW_ID", "wf-3")]);
    kill_machine(&mut child);
    let recovered = through("wf-3", &["recover"]);
    assert!(recovered.stdout.contains("deleted the key pair packer_"), "{}", context(&recovered));
    let instance = emulator.ec2().run_instance("ami-785db401");
    emulator.ec2().stop_instance(&instance);
    through("wf-4", &["images", "from-instance", "step1", "--instance-id", &instance, "--timeout", "60"]);

    let (east, west) = (emulator.ec2(), emulator.ec2_in("us-west-2"));
    let context = format!("{faults:?}, {catalog}, faults: {:?}", network.faults());
    assert_eq!(east.live_instances(), Vec::<String>::new(), "{context}");
    assert_eq!(east.packer_key_pairs(), Vec::<String>::new(), "{context}");
    assert_eq!(east.packer_security_groups(), Vec::<String>::new(), "{context}");
    let mut records = Vec::new();
    for step in ["step1", "step2", "step3"] {
        let list = paw.run(&["-w", "wf", "images", "list", "--step", step, "--json"]).success().json();
        records.extend(list.as_array().unwrap().iter().filter(|record| record["status"] != "deregistered").cloned());
    }
    let ids = |found: Vec<String>| found.into_iter().collect::<BTreeSet<String>>();
    let recorded = ids(records.iter().map(|record| record["ami_id"].as_str().unwrap().to_string()).collect());
    let copies =
        ids(records.iter().filter_map(|record| record["copies"]["us-west-2"].as_str()).map(str::to_string).collect());
    let context = format!("{context}\nimages: {:?}\nrecords: {records:#?}", east.own_images());
    assert_eq!(ids(east.own_images().into_iter().map(|(id, _)| id).collect()), recorded, "{context}");
    assert_eq!(ids(west.own_images().into_iter().map(|(id, _)| id).collect()), copies, "{context}");
    assert_eq!(copies.len(), 1, "one copy: {context}");
    for (region, ec2) in [("us-east-1", &east), ("us-west-2", &west)] {
        let of_images: BTreeSet<String> =
            ec2.own_images().iter().flat_map(|(id, _)| ec2.image(id).unwrap().1).collect();
        assert_eq!(ids(ec2.own_snapshots()), of_images, "every snapshot in {region} is an AMI's: {context}");
    }
    let copy = copies.first().unwrap();
    assert_eq!(west.launch_permissions(copy), ["111122223333"], "{context}");
    let distributed = records.iter().find(|record| record["copies"]["us-west-2"].is_string()).unwrap();
    let mut launchers = east.launch_permissions(distributed["ami_id"].as_str().unwrap());
    launchers.sort();
    assert_eq!(launchers, ["111122223333", "444455556666"], "{context}");
    assert_eq!(east.image_state(distributed["ami_id"].as_str().unwrap()).as_deref(), Some("available"), "{context}");

    let again = paw
        .run_with(&[("PAW_WORKFLOW_ID", "wf-2")], &["-w", "wf", "images", "copy", "step3", "--to-region", "us-west-2"]);
    assert!(again.success().stdout.contains(&format!("us-west-2: already there {copy}")), "{}", again.stdout);
    for planned in [&["distribute", "step3"][..], &["images", "share", "step3", "--account", "111122223333"]] {
        let plan =
            paw.run_with(&[("PAW_WORKFLOW_ID", "wf-2")], &[&["-w", "wf", "--json"], planned, &["--dry-run"]].concat());
        assert_eq!(plan.success().json()["actions"], serde_json::json!([]), "{planned:?}: nothing left to do");
    }
    let again = paw.run_with(&[("PAW_WORKFLOW_ID", "wf-3")], &["-w", "wf", "recover"]);
    assert!(again.success().stdout.contains("nothing to recover"), "{}", again.stdout);

    // A channel's image, copied and shared, deleted on purpose: one plan, every write through the
    // faults; nothing of it is left in either region, and a run without faults finds nothing to do.
    let ami = records.iter().find(|record| record["copies"]["us-west-2"].is_string()).unwrap()["ami_id"].clone();
    through("wf-2", &["channel", "set", "prod", "step3"]);
    let forced = ["images", "delete", "step3", "--delete-snapshots", "--force", "--reason", "faults", "--yes"];
    let deleted = through("wf-2", &[&forced[..], &["--json"]].concat()).json();
    assert_eq!(deleted["ami_id"], ami, "{context}");
    assert!(!east.own_images().iter().any(|(id, _)| *id == ami), "{context}");
    assert_eq!(west.own_images(), Vec::<(String, String)>::new(), "{context}");
    for ec2 in [&east, &west] {
        let of_images: BTreeSet<String> =
            ec2.own_images().iter().flat_map(|(id, _)| ec2.image(id).unwrap().1).collect();
        assert_eq!(ids(ec2.own_snapshots()), of_images, "{context}");
    }
    let record = paw.run_with(&[("PAW_WORKFLOW_ID", "wf-2")], &["-w", "wf", "images", "show", "step3", "--json"]);
    assert_eq!(record.success().json()["status"], "deregistered");
    assert_eq!(record.json()["copies"], serde_json::json!({}));
    let history =
        paw.run_with(&[("PAW_WORKFLOW_ID", "wf-2")], &["-w", "wf", "channel", "history", "prod", "step3", "--json"]);
    let actions: Vec<Value> =
        history.success().json().as_array().unwrap().iter().map(|entry| entry["action"].clone()).collect();
    assert_eq!(actions, ["deleted", "set"], "one entry each, though answers were lost");
    let again = paw.run_with(&[("PAW_WORKFLOW_ID", "wf-2")], &[&["-w", "wf"][..], &forced].concat());
    assert!(again.stderr.contains("is already deregistered, in every place"), "{}", again.stderr);

    // A channel set twice and rolled back, the lifecycle applied, and the catalog migrated to a
    // table of its own: every write through the faults, each done once, and nothing left to do.
    through("wf-2", &["channel", "set", "staging", "step1"]);
    through("wf-4", &["channel", "set", "staging", "step1"]);
    through("wf-2", &["channel", "rollback", "staging", "step1", "--reason", "faults"]);
    let history =
        paw.run_with(&[("PAW_WORKFLOW_ID", "wf-2")], &["-w", "wf", "channel", "history", "staging", "step1", "--json"]);
    let actions: Vec<Value> =
        history.success().json().as_array().unwrap().iter().map(|entry| entry["action"].clone()).collect();
    assert_eq!(actions, ["rollback", "set", "set"], "{context}");
    paw.edit(
        "wf/workflow_param.json",
        "\"instance_type\"",
        r#""lifecycle": {"deprecate_after_days": 0}, "instance_type""#,
    );
    through("wf-2", &["lifecycle", "apply", "--yes"]);
    let plan = paw.run_with(&[("PAW_WORKFLOW_ID", "wf-2")], &["-w", "wf", "lifecycle", "plan", "--json"]);
    let plan = plan.success().json();
    let due: Vec<&Value> =
        plan.as_array().unwrap().iter().filter(|d| d["action"] != "keep" && d["done"] != true).collect();
    assert!(due.is_empty(), "every action of the policy done once: {due:#?}\n{context}");
    let migrate = ["catalog", "migrate", "--from", catalog, "--to", "dynamodb:paw-migrated", "--json"];
    let copied = through("wf-2", &migrate).json();
    let again = paw.run_with(&[("PAW_WORKFLOW_ID", "wf-2")], &[&["-w", "wf"][..], &migrate].concat());
    let again = again.success().json();
    assert_eq!((again["copied"].as_u64(), &again["already_there"]), (Some(0), &copied["copied"]), "{context}");
    network.faults()
}

/// The writes paw makes: each of them, when its answer is lost, is retried by the SDK.
const WRITES: &str = "^(Copy|Create|Delete|Deregister|Disable|Enable|Modify|Terminate|Put|Update|TransactWrite)";

#[test]
fn copy_share_prune_recover_and_from_instance_through_faults_lose_and_leak_nothing() {
    let settings = [("FAULT_SEED", "11"), ("FAULT_RATE", RATE), ("FAULT_LAG", "2")];
    operations_round("sqlite:wf/.paw/catalog.sqlite", &settings);
    // Every write's first answer lost, the retry answered: each is done once, or recognised as done.
    let lost = [("FAULT_RATE", "1"), ("FAULT_MAX_IN_A_ROW", "1"), ("FAULT_KINDS", "lost"), ("FAULT_ACTIONS", WRITES)];
    let faults = operations_round("dynamodb:paw-operations", &lost);
    for action in [
        "ec2 CopyImage",
        "ec2 CreateTags",
        "ec2 ModifyImageAttribute",
        "ec2 ModifySnapshotAttribute",
        "ec2 DisableImage",
        "ec2 EnableImage",
        "ec2 DeregisterImage",
        "ec2 DeleteSnapshot",
        "ec2 EnableImageDeregistrationProtection",
        "ec2 DisableImageDeregistrationProtection",
        "ec2 TerminateInstances",
        "ec2 DeleteKeyPair",
        "ec2 DeleteSecurityGroup",
        "ec2 CreateImage",
        "dynamodb PutItem",
        "dynamodb UpdateItem",
    ] {
        assert!(faults.contains(&format!("lost {action}")), "{action}'s answer was lost: {faults:?}");
    }
}

/// A call whose every attempt fails says so: the request was sent but no answer came (not "cannot
/// reach"), or AWS throttled it, with the attempts made and what to do.
#[test]
fn a_call_that_fails_through_every_attempt_says_how() {
    let emulator = Emulator::start();
    let find = ["-w", "wf", "base-ami", "find", "--name", "ubuntu*"];
    for (kind, said, help) in [
        (
            "lost",
            "error: ec2:DescribeImages failed: AWS did not answer (",
            "help: run again: paw knows what it already did",
        ),
        ("throttle", "RequestLimitExceeded: injected throttle", "help: AWS throttled paw through all 5 attempts"),
        ("error", "InternalError: injected error", "help: an error on AWS's side, through all 5 attempts"),
    ] {
        let always = [("FAULT_RATE", "1"), ("FAULT_MAX_IN_A_ROW", "99"), ("FAULT_KINDS", kind)];
        let network = FaultyNetwork::start_with(&emulator.endpoint, &always);
        let paw = emulator.configure(Paw::example("chain"));
        let run = paw.run_with(&[("AWS_ENDPOINT_URL", &network.endpoint)], &find);
        assert_eq!(run.code, 1, "{kind}: {}", run.stderr);
        assert!(run.stderr.contains(said) && run.stderr.contains(help), "{kind}: {}", run.stderr);
        assert_eq!(network.faults().len(), 5, "{kind}: the SDK made 5 attempts");
        if kind == "lost" {
            assert!(run.stderr.contains("; 5 attempts)") && !run.stderr.contains("cannot reach"), "{}", run.stderr);
        }
    }
}

/// Who uses an image, asked through a network that denies, throttles, loses or fails every
/// DescribeImageReferences: no answer reads as "unused". The lifecycle keeps each old image and says
/// why, apply and prune retire nothing, delete refuses; healed, an image in use keeps its
/// ancestors, and once nothing uses them the policy retires them.
#[test]
fn no_image_is_retired_on_a_usage_answer_denied_throttled_lost_or_failed() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.edit(
        "wf/workflow_param.json",
        "\"instance_type\"",
        r#""lifecycle": {"keep": 1, "delete_after_days": 0}, "instance_type""#,
    );
    for generation in 1..=2 {
        paw.write("wf/step1/notes.txt", &format!("generation {generation}"));
        paw.run(&["-w", "wf", "--workflow-id", &format!("gen-{generation}"), "build"]).success();
    }
    let ami = |step: &str| {
        let shown = paw.run(&["-w", "wf", "--workflow-id", "gen-1", "images", "show", step, "--json"]);
        shown.success().json()["ami_id"].as_str().unwrap().to_string()
    };
    let old = [ami("step1"), ami("step2"), ami("step3")];
    let ec2 = emulator.ec2();
    for (kind, said) in [
        ("deny", "UnauthorizedOperation: injected deny"),
        ("throttle", "RequestLimitExceeded: injected throttle"),
        ("lost", "AWS did not answer"),
        ("error", "InternalError: injected error"),
    ] {
        let always = [
            ("FAULT_RATE", "1"),
            ("FAULT_MAX_IN_A_ROW", "99"),
            ("FAULT_KINDS", kind),
            ("FAULT_ACTIONS", "^DescribeImageReferences$"),
        ];
        let network = FaultyNetwork::start_with(&emulator.endpoint, &always);
        // Two attempts a call: the SDK's backoff between five would only make the test slow.
        let env = [("AWS_ENDPOINT_URL", network.endpoint.as_str()), ("AWS_MAX_ATTEMPTS", "2")];
        let plan = paw.run_with(&env, &["-w", "wf", "lifecycle", "plan", "--json"]).success().json();
        for ami in &old {
            let decision = plan.as_array().unwrap().iter().find(|decision| decision["ami_id"] == ami.as_str()).unwrap();
            let reason = decision["reason"].as_str().unwrap();
            assert_eq!(decision["action"], "keep", "{kind}: {decision:#}");
            assert!(reason.starts_with("usage unknown: us-east-1: ec2:DescribeImageReferences failed: "), "{reason}");
            assert!(reason.contains(said), "{kind}: {reason}");
        }
        paw.run_with(&env, &["-w", "wf", "lifecycle", "apply", "--yes"]).success();
        let pruned = paw.run_with(&env, &["-w", "wf", "images", "prune", "--keep", "1", "--yes", "--json"]);
        assert!(crate::lifecycle::deleted_by(&pruned.success().json()).is_empty(), "{kind}: {}", pruned.stdout);
        let refused = paw.run_with(&env, &["-w", "wf", "--workflow-id", "gen-1", "images", "delete", "step3", "--yes"]);
        assert_eq!(refused.code, 2, "{kind}: {}", refused.stderr);
        assert!(refused.stderr.contains(&format!("who uses {} is not known", old[2])), "{}", refused.stderr);
        assert!(refused.stderr.contains("give it ec2:DescribeImageReferences"), "{}", refused.stderr);
        for ami in &old {
            assert_eq!(ec2.image_state(ami).as_deref(), Some("available"), "{kind}: {ami} is kept");
        }
        assert!(network.faults().iter().all(|fault| fault == &format!("{kind} ec2 DescribeImageReferences")));
    }
    // Healed: an instance of the last image keeps it, and its ancestors with it, so that it can be
    // rebuilt; once it is gone, the policy retires them.
    let instance = ec2.run_instance(&old[2]);
    let plan = paw.run(&["-w", "wf", "lifecycle", "plan", "--json"]).success().json();
    let reasons: Vec<&str> = old
        .iter()
        .map(|ami| {
            let decision = plan.as_array().unwrap().iter().find(|decision| decision["ami_id"] == ami.as_str()).unwrap();
            decision["reason"].as_str().unwrap()
        })
        .collect();
    let (ancestor_of_2, ancestor_of_3) = (format!("ancestor of {}", old[1]), format!("ancestor of {}", old[2]));
    assert_eq!(reasons, [ancestor_of_2.as_str(), ancestor_of_3.as_str(), "in use by 1 instance"], "{plan:#}");
    ec2.terminate_instance(&instance);
    paw.run(&["-w", "wf", "lifecycle", "apply", "--yes"]).success();
    for ami in &old {
        assert_eq!(ec2.image_state(ami), None, "{ami} is retired");
    }
}

/// A stand-in packer: `packer build` fails with `line` as packer's error, `times` times (a count
/// kept in the folder), then the real packer runs; every other command is the real packer's.
fn failing_packer(paw: &Paw, line: &str, times: u32) -> String {
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = build ]; then\n  echo \"$*\" >> '{count}'\n  \
         if [ \"$(wc -l < '{count}')\" -le {times} ]; then echo '1700000000,,ui,error,{line}'; exit 1; fi\nfi\n\
         exec '{real}' \"$@\"\n",
        count = paw.path("builds").display(),
        real = crate::harness::packer().display(),
    );
    paw.write("failing-packer", &script);
    let path = paw.path("failing-packer");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

/// packer fails for want of capacity: the step is built again, on the next of its instance types,
/// and the summary says so; a provisioner that fails is not retried.
#[test]
fn a_step_that_failed_for_want_of_capacity_is_built_again_and_a_failed_provisioner_is_not() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain")).env("PAW_RETRY_DELAY", "0");
    paw.edit(
        "wf/step1/step_param.json",
        "\"metadata\"",
        "\"instance_types\": [\"c6i.large\", \"m6i.large\"],\n    \"metadata\"",
    );
    let capacity = "Build 'amazon-ebs' errored: Error launching source instance: InsufficientInstanceCapacity: \
                    We currently do not have sufficient t2.micro capacity in the Availability Zone you requested";
    let packer = failing_packer(&paw, capacity, 1);
    let run = paw.run_with(&[("PAW_PACKER", &packer)], &["-w", "wf", "build", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let notice =
        "packer failed (no capacity for the instance type), and cleaned up; attempt 2 of 3 in 0 s, on m6i.large";
    assert!(run.stderr.contains(notice), "{}", run.stderr);
    let steps = run.json();
    let how: Vec<(u64, &str)> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|step| (step["attempt"].as_u64().unwrap(), step["instance_type"].as_str().unwrap_or("-")))
        .collect();
    assert_eq!(how, [(2, "m6i.large"), (1, "-"), (1, "-")]);
    let builds = paw.read("builds");
    let builds: Vec<&str> = builds.lines().collect();
    assert_eq!(builds.len(), 4);
    assert!(builds[0].contains("-var=instance_type=c6i.large") && builds[1].contains("-var=instance_type=m6i.large"));
    assert!(!builds[2].contains("-var=instance_type"), "step2 names no instance types: {}", builds[2]);
    assert_eq!(emulator.ec2().own_images().len(), 3, "one AMI per step");

    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain")).env("PAW_RETRY_DELAY", "0");
    let packer = failing_packer(&paw, "Script exited with non-zero exit status: 3", 9);
    let run = paw.run_with(&[("PAW_PACKER", &packer)], &["-w", "wf", "build"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(paw.read("builds").lines().count(), 1, "not retried: {}", run.stderr);
    assert!(!run.stderr.contains("attempt 2"), "{}", run.stderr);
}
