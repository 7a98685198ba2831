//! Bases that follow their upstream: a root base AMI read from an SSM parameter at each run.

use crate::emulator::Emulator;
use crate::harness::Paw;

const PARAMETER: &str = "/vendor/ubuntu/server/current/ami-id";
const FIRST: &str = "ami-785db401";
const FIRST_NAME: &str = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721";
const MOVED: &str = "ami-1e749f67";
const MOVED_NAME: &str = "ubuntu/images/hvm-ssd/ubuntu-trusty-14.04-amd64-server-20170727";

/// The chain example in two variants: `follows` reads its base from PARAMETER, `pinned` keeps
/// FIRST in the file.
fn two_variants(emulator: &Emulator) -> Paw {
    let paw = emulator.configure(Paw::example("chain"));
    let pinned = format!(
        r#""root_base_ami_id": "{FIRST}",
    "root_base_ami_name": "{FIRST_NAME}","#
    );
    let variants = format!(
        r#""variants": {{
        "follows": {{"root_base_ami": {{"ssm_parameter": "{PARAMETER}"}}}},
        "pinned": {{"root_base_ami_id": "{FIRST}", "root_base_ami_name": "{FIRST_NAME}"}},
    }},"#
    );
    paw.edit("wf/workflow_param.json", &pinned, &variants);
    // The seed's templates read the root base AMI from the context; a followed one is there too.
    let comment =
        "# built on {{ builder.workflow_param.root_base_ami_id }} {{ builder.workflow_param.root_base_ami_name }}\n";
    let vars = paw.read("wf/step1/templates/.pkrvars.hcl");
    paw.write("wf/step1/templates/.pkrvars.hcl", &format!("{comment}{vars}"));
    paw
}

/// How many times packer ran under a workflow id: one log per build.
fn packer_runs(paw: &Paw, workflow_id: &str) -> usize {
    std::fs::read_dir(paw.path(&format!("wf/.paw/logs/{workflow_id}"))).map_or(0, |dir| dir.count())
}

fn plan(paw: &Paw, workflow_id: &str) -> Vec<(String, String, String)> {
    let plan = paw.run(&["-w", "wf", "--workflow-id", workflow_id, "plan", "--json"]).success().json();
    let field = |step: &serde_json::Value, key: &str| step[key].as_str().unwrap_or_default().to_string();
    plan.as_array()
        .unwrap()
        .iter()
        .map(|step| (field(step, "variant"), field(step, "action"), field(step, "reason")))
        .collect()
}

/// The record of the `follows` variant's step1 under a workflow id.
fn first_step_record(paw: &Paw, workflow_id: &str) -> serde_json::Value {
    let args = ["-w", "wf", "--variant", "follows", "--workflow-id", workflow_id, "images", "show", "step1", "--json"];
    paw.run(&args).success().json()
}

#[test]
fn a_moved_base_parameter_rebuilds_its_chain_and_nothing_else() {
    let emulator = Emulator::start();
    emulator.put_image_parameter(PARAMETER, FIRST);
    let paw = two_variants(&emulator);
    paw.run(&["-w", "wf", "--workflow-id", "night-1", "build"]).success();
    assert_eq!((packer_runs(&paw, "night-1-follows"), packer_runs(&paw, "night-1-pinned")), (3, 3));
    let first = first_step_record(&paw, "night-1");
    assert_eq!(first["root_base_ami_id"], FIRST, "{first:#}");
    assert_eq!(first["root_base_ami_from"], serde_json::json!({"ssm_parameter": PARAMETER}), "{first:#}");
    assert!(first["ami_name"].as_str().unwrap().starts_with(&format!("{FIRST_NAME}/night-1-follows/")), "{first:#}");
    paw.run(&["-w", "wf", "--variant", "follows", "--workflow-id", "night-1", "render", "step1"]).success();
    let rendered = paw.read("wf/step1/step1.pkrvars.hcl");
    assert!(rendered.starts_with(&format!("# built on {FIRST} {FIRST_NAME}\n")), "{rendered}");

    emulator.put_image_parameter(PARAMETER, MOVED);
    let moved = format!("base moved: {FIRST} → {MOVED} (the SSM parameter {PARAMETER})");
    let rebuilt = |parent: &str| format!("the parent step {parent} is rebuilt");
    let expected = [
        ("follows", "build", moved.as_str()),
        ("follows", "build", &rebuilt("step1")),
        ("follows", "build", &rebuilt("step2")),
    ];
    let got = plan(&paw, "night-1");
    assert_eq!(got[..3].iter().map(|(v, a, r)| (v.as_str(), a.as_str(), r.as_str())).collect::<Vec<_>>(), expected);
    assert!(got[3..].iter().all(|(variant, action, _)| variant == "pinned" && action == "up-to-date"), "{got:#?}");

    // The next night's run: the moved chain is built, the pinned one reused, without packer.
    paw.run(&["-w", "wf", "--workflow-id", "night-2", "build"]).success();
    assert_eq!((packer_runs(&paw, "night-2-follows"), packer_runs(&paw, "night-2-pinned")), (3, 0));
    let first = first_step_record(&paw, "night-2");
    assert_eq!((&first["root_base_ami_id"], &first["base_ami_id"]), (&MOVED.into(), &MOVED.into()), "{first:#}");
    assert!(first["ami_name"].as_str().unwrap().starts_with(&format!("{MOVED_NAME}/night-2-follows/")), "{first:#}");

    // Run again: nothing moved, nothing is built, packer is not started.
    let again = paw.run(&["-w", "wf", "--workflow-id", "night-2", "build"]);
    assert!(
        again.success().stdout.contains("0 built, 0 reused, 6 up-to-date, 0 failed, 0 skipped"),
        "{}",
        again.stdout
    );
    assert_eq!((packer_runs(&paw, "night-2-follows"), packer_runs(&paw, "night-2-pinned")), (3, 0));
}

#[test]
fn a_base_parameter_that_cannot_be_read_stops_the_run_and_names_it() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let pinned = format!(
        r#""root_base_ami_id": "{FIRST}",
    "root_base_ami_name": "{FIRST_NAME}","#
    );
    paw.edit("wf/workflow_param.json", &pinned, &format!(r#""root_base_ami": {{"ssm_parameter": "{PARAMETER}"}},"#));
    let before = paw.snapshot();
    for command in [&["plan"][..], &["build"], &["render"]] {
        let mut args = vec!["-w", "wf"];
        args.extend(command);
        let run = paw.run(&args);
        assert_eq!(run.code, 2, "{command:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("there is no SSM parameter {PARAMETER} in this region")),
            "{command:?}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("workflow_param.json:13:"), "{command:?}: names the key's line: {}", run.stderr);
    }
    assert_eq!(paw.snapshot(), before, "nothing written");
    assert!(emulator.ec2().own_images().is_empty(), "nothing built");

    // A parameter that names no AMI of the region is no base either.
    emulator.put_image_parameter(PARAMETER, MOVED);
    emulator.put_image_parameter(PARAMETER, "ami-0123456789abcdef0");
    let run = paw.run(&["-w", "wf", "plan"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("names ami-0123456789abcdef0, which is not an available AMI of this region"),
        "{}",
        run.stderr
    );
}

/// Step 2 of the chain probes `upstream.txt` outside the workflow, as a probe would a vendor's
/// Release file.
fn probed_chain(emulator: &Emulator) -> Paw {
    use std::os::unix::fs::PermissionsExt;
    let paw = emulator.configure(Paw::example("chain"));
    paw.write("upstream.txt", "Release 2026-12-01\n");
    let probe = "#!/bin/sh\n# What a mirror says today, and whether AWS credentials reached the probe.\n\
                 cat ../../upstream.txt\necho \"${AWS_ACCESS_KEY_ID:-no credentials}\" > ../../probe-saw\n";
    paw.write("wf/step2/probe.sh", probe);
    std::fs::set_permissions(paw.path("wf/step2/probe.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    paw.edit(
        "wf/step2/step_param.json",
        "\"step_id\": \"step2\",",
        "\"step_id\": \"step2\",\n    \"upstream\": [\"./probe.sh\"],",
    );
    paw
}

#[test]
fn a_probe_whose_output_changed_rebuilds_its_step_and_descendants_and_a_failing_one_stops_the_plan() {
    let emulator = Emulator::start();
    let paw = probed_chain(&emulator);
    paw.run(&["-w", "wf", "build"]).success();
    assert_eq!(paw.read("probe-saw"), "no credentials\n");
    let records = paw.run(&["-w", "wf", "images", "list", "--json"]).success().json();
    let step2 = records.as_array().unwrap().iter().find(|record| record["step_id"] == "step2").unwrap();
    let step2_ami = step2["ami_id"].as_str().unwrap().to_string();
    assert!(step2["fingerprint_inputs"]["probe:./probe.sh"].is_string(), "{step2:#}");

    let plan = paw.run(&["-w", "wf", "--workflow-id", "next", "plan", "--json"]).success().json();
    let actions: Vec<&str> = plan.as_array().unwrap().iter().map(|step| step["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["reuse", "reuse", "reuse"], "the same upstream: {plan:#}");

    paw.write("upstream.txt", "Release 2026-12-06\n");
    let plan = paw.run(&["-w", "wf", "--workflow-id", "next", "plan", "--json"]).success().json();
    let got: Vec<(&str, &str)> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|step| (step["action"].as_str().unwrap(), step["reason"].as_str().unwrap()))
        .collect();
    let changed = format!("changed since {step2_ami} of workflow paw-2024-06-13-12-00-00: probe:./probe.sh");
    assert_eq!(got[1..], [("build", changed.as_str()), ("build", "the parent step step2 is rebuilt")], "{plan:#}");
    assert_eq!(got[0].0, "reuse");

    // A probe that fails stops the plan, and the build, before anything starts: named, with what it said.
    paw.write("wf/step2/probe.sh", "#!/bin/sh\necho 'mirror.example.org: connection refused' >&2\nexit 7\n");
    for command in ["plan", "build"] {
        let run = paw.run(&["-w", "wf", "--workflow-id", "next", command]);
        assert_eq!(run.code, 1, "{command}: {}", run.stderr);
        assert!(run.stderr.contains("step2/step_param.json:"), "{command}: {}", run.stderr);
        assert!(
            run.stderr.contains("the upstream probe ./probe.sh of step \"step2\" failed (exit status 7)"),
            "{command}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("mirror.example.org: connection refused"), "{command}: {}", run.stderr);
    }
    assert!(!paw.path("wf/.paw/logs/next").exists(), "no packer ran");
}
