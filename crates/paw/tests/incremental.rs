//! Rebuild only what changed, reuse what another workflow built, build branches in parallel.

use crate::emulator::Emulator;
use crate::harness::{Paw, Run};

const WORKFLOW_ID: &str = "paw-2024-06-13-12-00-00";

fn set_workflow_id(paw: &Paw, id: &str) {
    paw.edit("wf/workflow_param.json", WORKFLOW_ID, id);
}

/// How many times packer ran for a workflow: one log per build.
fn packer_runs(paw: &Paw, workflow_id: &str) -> usize {
    std::fs::read_dir(paw.path(&format!("wf/.paw/logs/{workflow_id}"))).map_or(0, |dir| dir.count())
}

fn records(paw: &Paw, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["-w", "wf", "images", "list", "--json"];
    args.extend(extra);
    paw.run(&args).success().json().as_array().unwrap().clone()
}

fn ami_of<'a>(records: &'a [serde_json::Value], step: &str) -> &'a str {
    records.iter().find(|record| record["step_id"] == step).unwrap()["ami_id"].as_str().unwrap()
}

fn actions(run: &Run) -> Vec<(String, String)> {
    let plan = run.json();
    plan.as_array()
        .unwrap()
        .iter()
        .map(|step| (step["step_id"].as_str().unwrap().to_string(), step["action"].as_str().unwrap().to_string()))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn plan_needs_no_packer_and_changes_nothing() {
    let paw = Paw::example("chain").env("PAW_PACKER", "").env("PATH", "/nonexistent");
    let before = paw.snapshot();
    let run = paw.run(&["-w", "wf", "plan", "--json"]);
    let plan = run.success().json();
    assert_eq!(paw.snapshot(), before, "plan wrote something");
    assert_eq!(plan[0]["action"], "build");
    assert_eq!(plan[0]["reason"], "no AMI yet");
    assert_eq!(plan[0]["fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(plan[0]["source_ami_id"], "ami-785db401");
    assert_eq!(plan[1]["reason"], "the parent step step1 is rebuilt");
    assert_eq!(plan[1]["fingerprint"], serde_json::Value::Null);
    let table = paw.run(&["-w", "wf", "plan"]);
    assert!(table.success().stdout.contains("step3   build    the parent step step2 is rebuilt"), "{}", table.stdout);
}

#[test]
fn an_unchanged_workflow_builds_nothing_the_second_time() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.run(&["-w", "wf", "build"]).success();
    assert_eq!(packer_runs(&paw, WORKFLOW_ID), 3);
    let plan = paw.run(&["-w", "wf", "plan", "--json"]);
    assert_eq!(actions(&plan), pairs(&[("step1", "up-to-date"), ("step2", "up-to-date"), ("step3", "up-to-date")]));
    let run = paw.run(&["-w", "wf", "build"]);
    assert!(run.success().stdout.contains("0 built, 0 reused, 3 up-to-date, 0 failed, 0 skipped"), "{}", run.stdout);
    assert_eq!(packer_runs(&paw, WORKFLOW_ID), 3);
    // The fingerprint is on the AMI as a tag and in the record.
    let records = records(&paw, &[]);
    let ami = ami_of(&records, "step2");
    let (tags, _) = emulator.ec2().image(ami).unwrap();
    let record = records.iter().find(|record| record["step_id"] == "step2").unwrap();
    assert_eq!(tags["paw:fingerprint"], record["fingerprint"].as_str().unwrap());
    assert_eq!(plan.json()[1]["fingerprint"], record["fingerprint"]);
}

#[test]
fn a_new_workflow_id_with_nothing_changed_reuses_every_ami_without_packer() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.run(&["-w", "wf", "build"]).success();
    let first = records(&paw, &[]);
    set_workflow_id(&paw, "paw-2024-06-14-00-00-00");
    let plan = paw.run(&["-w", "wf", "plan", "--json"]);
    assert_eq!(actions(&plan), pairs(&[("step1", "reuse"), ("step2", "reuse"), ("step3", "reuse")]));
    let run = paw.run(&["-w", "wf", "build"]);
    assert!(run.success().stdout.contains("0 built, 3 reused, 0 up-to-date"), "{}", run.stdout);
    assert_eq!(packer_runs(&paw, "paw-2024-06-14-00-00-00"), 0);
    let second = records(&paw, &[]);
    for step in ["step1", "step2", "step3"] {
        assert_eq!(ami_of(&second, step), ami_of(&first, step));
        let record = second.iter().find(|record| record["step_id"] == step).unwrap();
        assert_eq!(record["workflow_id"], "paw-2024-06-14-00-00-00");
        assert_eq!(record["reused_from"], WORKFLOW_ID);
    }
    // And the next run of the new workflow finds everything up to date.
    let run = paw.run(&["-w", "wf", "build"]);
    assert!(run.success().stdout.contains("3 up-to-date"), "{}", run.stdout);
}

/// A key set for one run (`--param`, `PAW_PARAM_<KEY>`) is what templates see, is counted in the
/// fingerprint, and is shown by `paw steps`; the file is not touched.
#[test]
fn a_param_set_for_one_run_reaches_the_templates_and_the_fingerprint() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.run(&["-w", "wf", "build"]).success();
    let file = paw.read("wf/workflow_param.json");
    let plan = paw.run(&["-w", "wf", "--workflow-id", "paw-2", "plan", "--param", "instance_type=t3.small", "--json"]);
    assert_eq!(actions(&plan), pairs(&[("step1", "build"), ("step2", "build"), ("step3", "build")]));
    assert!(plan.json()[0]["reason"].as_str().unwrap().ends_with(": workflow_param.json"), "{}", plan.stdout);
    let same = paw.run_with(
        &[("PAW_PARAM_INSTANCE_TYPE", "t2.micro")],
        &["-w", "wf", "--workflow-id", "paw-2", "plan", "--json"],
    );
    assert_eq!(
        actions(&same),
        pairs(&[("step1", "reuse"), ("step2", "reuse"), ("step3", "reuse")]),
        "the file's own value"
    );

    let env = [("PAW_PARAM_INSTANCE_TYPE", "t3.small")];
    paw.run_with(&env, &["-w", "wf", "render", "step1", "--param", "extra={\"a\": 1}"]).success();
    assert!(paw.read("wf/step1/step1.pkrvars.hcl").contains("instance_type = \"t3.small\""));
    let steps = paw.run_with(&env, &["-w", "wf", "steps"]);
    assert!(
        steps.success().stdout.ends_with("workflow_param.json, for this run: instance_type = \"t3.small\"\n"),
        "{}",
        steps.stdout
    );
    let said = "workflow_param.json, for this run: instance_type = \"t3.small\", extra = {\"a\":1}";
    let steps = paw.run_with(&env, &["-w", "wf", "steps", "--param", "extra={\"a\": 1}"]);
    assert!(steps.success().stdout.contains(said), "{}", steps.stdout);
    assert_eq!(paw.read("wf/workflow_param.json"), file);
    let run = paw.run(&["-w", "wf", "steps", "--param", "root_base_ami_id=img-1"]);
    assert!(
        run.code == 2 && run.stderr.contains("error: --param root_base_ami_id: \"root_base_ami_id\" is \"img-1\""),
        "{}",
        run.stderr
    );
}

/// `--rebuild STEP` (to pick up the OS's updates) builds the step though its inputs match, and its
/// descendants on it; under the same workflow id it replaces the AMIs with --force only.
#[test]
fn a_rebuild_makes_new_amis_of_unchanged_steps_and_their_descendants() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.run(&["-w", "wf", "build"]).success();
    let first = records(&paw, &[]);
    let plan = paw.run(&["-w", "wf", "--workflow-id", "paw-2", "plan", "--rebuild", "step2", "--json"]);
    assert_eq!(actions(&plan), pairs(&[("step1", "reuse"), ("step2", "build"), ("step3", "build")]));
    assert_eq!(plan.json()[1]["reason"], "rebuilt on purpose (--rebuild), though its inputs match");
    let run = paw.run(&["-w", "wf", "--workflow-id", "paw-2", "build", "--rebuild", "step2"]);
    assert!(run.success().stdout.contains("2 built, 1 reused, 0 up-to-date"), "{}", run.stdout);
    let second = records(&paw, &["--workflow-id", "paw-2"]);
    assert_ne!(ami_of(&second, "step2"), ami_of(&first, "step2"));
    let fingerprint = |records: &[serde_json::Value]| {
        records.iter().find(|r| r["step_id"] == "step2").unwrap()["fingerprint"].clone()
    };
    assert_eq!(fingerprint(&second), fingerprint(&first), "the same inputs");

    let run = paw.run(&["-w", "wf", "build", "--rebuild"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("already has AMIs of the steps to build"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("step1 has {}, but rebuilt on purpose", ami_of(&first, "step1"))),
        "{}",
        run.stderr
    );
    let run = paw.run(&["-w", "wf", "build", "--rebuild", "step3", "--force"]);
    assert!(run.success().stdout.contains("1 built, 0 reused, 2 up-to-date"), "{}", run.stdout);
    assert_ne!(ami_of(&records(&paw, &[]), "step3"), ami_of(&first, "step3"));
    assert!(emulator.ec2().image(ami_of(&first, "step3")).is_none(), "the replaced AMI is deregistered");
    let run = paw.run(&["-w", "wf", "plan", "--rebuild", "step9"]);
    assert!(run.code == 2 && run.stderr.contains("step9"), "{}", run.stderr);
}

#[test]
fn changing_the_middle_step_rebuilds_it_and_the_steps_below_only() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.run(&["-w", "wf", "build"]).success();
    let first = records(&paw, &[]);
    set_workflow_id(&paw, "paw-2");
    paw.edit(
        "wf/step2/templates/.pkr.hcl",
        "instance_type = var.instance_type",
        "instance_type = var.instance_type # bigger disk next time",
    );
    let plan = paw.run(&["-w", "wf", "plan", "--json"]);
    assert_eq!(actions(&plan), pairs(&[("step1", "reuse"), ("step2", "build"), ("step3", "build")]));
    let reason = plan.json()[1]["reason"].as_str().unwrap().to_string();
    assert_eq!(
        reason,
        format!("changed since {} of workflow {WORKFLOW_ID}: templates/.pkr.hcl", ami_of(&first, "step2"))
    );
    assert_eq!(plan.json()[2]["reason"], "the parent step step2 is rebuilt");

    let run = paw.run(&["-w", "wf", "build"]);
    assert!(run.success().stdout.contains("2 built, 1 reused, 0 up-to-date"), "{}", run.stdout);
    assert_eq!(packer_runs(&paw, "paw-2"), 2);
    let second = records(&paw, &["--workflow-id", "paw-2"]);
    assert_eq!(ami_of(&second, "step1"), ami_of(&first, "step1"));
    assert_ne!(ami_of(&second, "step2"), ami_of(&first, "step2"));
    let step3 = second.iter().find(|record| record["step_id"] == "step3").unwrap();
    assert_eq!(step3["base_ami_id"], ami_of(&second, "step2"));
}

#[test]
fn changed_inputs_under_the_same_workflow_id_need_force() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.run(&["-w", "wf", "build"]).success();
    let first = records(&paw, &[]);
    let old_step2 = ami_of(&first, "step2").to_string();
    let ec2 = emulator.ec2();
    let (_, old_snapshots) = ec2.image(&old_step2).unwrap();
    paw.edit("wf/step2/step_param.json", "\"libssl3\"", "\"libssl3\", \"libyaml-0-2\"");

    let run = paw.run(&["-w", "wf", "build"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("workflow \"{WORKFLOW_ID}\" already has AMIs of the steps to build")));
    assert!(
        run.stderr.contains(&format!("step2 has {old_step2}, but changed since {old_step2}: step_param.json")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("step3 has"));
    assert!(run.stderr.contains("set a new workflow_id") && run.stderr.contains("paw build --force"));
    assert_eq!(packer_runs(&paw, WORKFLOW_ID), 3);

    let run = paw.run(&["-w", "wf", "build", "--force", "--delete-snapshots"]);
    assert!(run.success().stdout.contains("2 built, 0 reused, 1 up-to-date"), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("--force: deregistered {old_step2}")), "{}", run.stdout);
    assert!(ec2.image(&old_step2).is_none());
    for snapshot in old_snapshots {
        assert!(ec2.snapshot(&snapshot).is_none());
    }
    let second = records(&paw, &[]);
    assert_eq!(ami_of(&second, "step1"), ami_of(&first, "step1"));
    assert_ne!(ami_of(&second, "step2"), old_step2);
    assert_eq!(second.iter().filter(|record| record["status"] == "available").count(), 3);
}

/// Each provisioner notes when it ran, in `marks/<step>`, and takes two seconds.
fn mark_provisioner(paw: &Paw, step: &str) {
    let marks = paw.path("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let file = marks.join(step);
    paw.edit(
        &format!("wf/{step}/templates/.pkr.hcl"),
        "    inline = [",
        &format!(
            "    inline = [\n      \"date +%s.%N >> {0}\",\n      \"sleep 2\",\n      \"date +%s.%N >> {0}\",",
            file.display()
        ),
    );
}

fn window(paw: &Paw, step: &str) -> (f64, f64) {
    let text = paw.read(&format!("marks/{step}"));
    let times: Vec<f64> = text.lines().map(|line| line.parse().unwrap()).collect();
    (times[0], times[1])
}

#[test]
fn siblings_build_at_the_same_time() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("fanout"));
    mark_provisioner(&paw, "web");
    mark_provisioner(&paw, "worker");
    let run = paw.run(&["-w", "wf", "build"]);
    assert!(run.success().stdout.contains("4 built, 0 reused"), "{}", run.stdout);
    let (web, worker) = (window(&paw, "web"), window(&paw, "worker"));
    assert!(web.0 < worker.1 && worker.0 < web.1, "web {web:?} and worker {worker:?} did not overlap");
    // Every line of packer's output says which step it is from.
    assert!(run.stdout.contains("   web | ==> web.amazon-ebs.web: Launching"), "{}", run.stdout);
    assert!(run.stdout.contains("worker | ==> worker.amazon-ebs.worker: Launching"));
}

#[test]
fn jobs_1_builds_one_step_at_a_time() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("fanout"));
    mark_provisioner(&paw, "web");
    mark_provisioner(&paw, "worker");
    paw.run(&["-w", "wf", "build", "--jobs", "1"]).success();
    let (web, worker) = (window(&paw, "web"), window(&paw, "worker"));
    assert!(web.1 <= worker.0 || worker.1 <= web.0, "web {web:?} and worker {worker:?} overlapped with --jobs 1");
}

#[test]
fn a_failed_branch_spares_the_other_and_fails_the_run() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("fanout"));
    paw.edit(
        "wf/web/templates/.pkr.hcl",
        "    inline = [",
        "    inline = [\n      \"echo the web step breaks\",\n      \"exit 3\",",
    );
    let run = paw.run(&["-w", "wf", "build", "--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = run.json();
    let result =
        |step: &str| summary.as_array().unwrap().iter().find(|s| s["step_id"] == step).unwrap()["result"].clone();
    assert_eq!(result("base"), "built");
    assert_eq!(result("runtime"), "built");
    assert_eq!(result("web"), "failed");
    assert_eq!(result("worker"), "built");
    assert!(run.stderr.contains("web |     web.amazon-ebs.web: the web step breaks"), "{}", run.stderr);
    assert!(run.stderr.contains("error: 1 of 4 steps failed: web"));
    let records = records(&paw, &[]);
    assert_eq!(records.len(), 3);
    assert!(emulator.ec2().live_instances().is_empty());
}

#[test]
fn an_ami_that_another_workflow_reuses_is_not_deleted_from_under_it() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.run(&["-w", "wf", "build", "step1"]).success();
    set_workflow_id(&paw, "paw-2");
    paw.run(&["-w", "wf", "build", "step1"]).success();
    let ami = ami_of(&records(&paw, &[]), "step1").to_string();
    let run = paw.run(&["-w", "wf", "images", "delete", "step1", "--workflow-id", WORKFLOW_ID, "--yes"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains(&format!("{ami} is also recorded for workflow paw-2 step step1")), "{}", run.stderr);
    assert!(emulator.ec2().image(&ami).is_some());
    // The workflow that only reused it can let go with --force, and the AMI stays for the other.
    paw.edit("wf/step1/step_param.json", "\"python3-venv\"", "\"python3-venv\", \"python3-dev\"");
    let run = paw.run(&["-w", "wf", "build", "step1", "--force"]);
    assert!(
        run.success()
            .stdout
            .contains(&format!("--force: dropped the reuse of {ami} (it stays, for workflow {WORKFLOW_ID})")),
        "{}",
        run.stdout
    );
    assert!(emulator.ec2().image(&ami).is_some());
    assert_ne!(ami_of(&records(&paw, &[]), "step1"), ami);
}

/// Fail fast: a template error in the last step stops the run before the first packer build.
#[test]
fn a_broken_last_step_stops_the_build_before_any_instance_starts() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.edit("wf/step3/templates/.pkr.hcl", "region        = var.aws_region", "region        = var.aws_regoin");
    let run = paw.run(&["-w", "wf", "build"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("wf/step3: packer validate failed"), "{}", run.stderr);
    assert_eq!(packer_runs(&paw, WORKFLOW_ID), 0);
    assert_eq!(emulator.ec2().own_images(), []);
    assert_eq!(emulator.ec2().live_instances(), Vec::<String>::new());
}

/// The seed's manual step: a step folder without templates/. paw builds what comes before it, a
/// person makes its AMI from an instance, then paw builds what comes after it.
#[test]
fn a_manual_step_waits_for_its_ami_from_an_instance_then_its_descendants_build() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    std::fs::remove_dir_all(paw.path("wf/step3/templates")).unwrap();
    crate::harness::copy_tree(
        &crate::harness::examples_dir().join("chain/step2/templates"),
        &paw.path("wf/step4/templates"),
    );
    paw.write(
        "wf/step4/step_param.json",
        r#"{"step_id": "step4", "previous_step_id": "step3", "metadata": {}, "packages": ["curl"]}"#,
    );

    let run = paw.run(&["-w", "wf", "validate"]);
    assert!(run.success().stdout.contains("step3: a manual step (no templates/): nothing to render"), "{}", run.stdout);
    let plan = paw.run(&["-w", "wf", "plan", "--json"]).success().json();
    assert_eq!((plan[2]["step_id"].as_str(), plan[2]["action"].as_str()), (Some("step3"), Some("manual")));
    assert_eq!(plan[3]["reason"], "waits for the manual step step3");

    let run = paw.run(&["-w", "wf", "build"]);
    let stdout = &run.success().stdout;
    assert!(stdout.contains("2 built, 0 reused, 0 up-to-date, 0 failed, 1 skipped, 1 manual"), "{stdout}");
    assert!(
        stdout.contains(
            "step3 is a manual step: make its AMI with `paw images from-instance step3 --instance-id ID`; \
             then `paw build` builds step4"
        ),
        "{stdout}"
    );

    // A person makes step3's AMI from an instance of step2's.
    let ec2 = emulator.ec2();
    let instance = ec2.run_instance(ami_of(&records(&paw, &[]), "step2"));
    ec2.stop_instance(&instance);
    paw.run(&["-w", "wf", "images", "from-instance", "step3", "--instance-id", &instance, "--timeout", "60"]).success();
    let plan = paw.run(&["-w", "wf", "plan", "--json"]).success().json();
    assert_eq!(plan[2]["action"], "up-to-date");
    let run = paw.run(&["-w", "wf", "build"]);
    assert!(run.success().stdout.contains("1 built, 0 reused, 3 up-to-date"), "{}", run.stdout);
    let records = records(&paw, &[]);
    let step4 = records.iter().find(|record| record["step_id"] == "step4").unwrap();
    assert_eq!(step4["base_ami_id"], ami_of(&records, "step3"));
}

/// An AMI a person made from an instance for a template step is the step's AMI until the step's
/// inputs change; then the usual rules apply.
#[test]
fn an_ami_made_from_an_instance_for_a_template_step_is_up_to_date_until_its_inputs_change() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let ec2 = emulator.ec2();
    let instance = ec2.run_instance("ami-785db401");
    ec2.stop_instance(&instance);
    paw.run(&["-w", "wf", "images", "from-instance", "step1", "--instance-id", &instance, "--timeout", "60"]).success();
    let by_hand = ami_of(&records(&paw, &[]), "step1").to_string();
    let plan = paw.run(&["-w", "wf", "plan", "--json"]).success().json();
    assert_eq!(plan[0]["action"], "up-to-date");
    assert_eq!(plan[0]["reason"], format!("{by_hand} was made from {instance}"));
    let run = paw.run(&["-w", "wf", "build"]);
    assert!(run.success().stdout.contains("2 built, 0 reused, 1 up-to-date"), "{}", run.stdout);
    assert_eq!(records(&paw, &[]).iter().find(|r| r["step_id"] == "step2").unwrap()["base_ami_id"], by_hand);

    paw.edit(
        "wf/step1/templates/.pkr.hcl",
        "instance_type = var.instance_type",
        "instance_type = var.instance_type # c",
    );
    let plan = paw.run(&["-w", "wf", "plan", "--json"]).success().json();
    assert_eq!(plan[0]["action"], "build");
    assert_eq!(plan[0]["reason"], format!("changed since {by_hand}: templates/.pkr.hcl"));
    // Rebuilt by packer, as any step whose inputs changed: the hand-made AMI goes.
    let run = paw.run(&["-w", "wf", "build", "--force"]);
    assert!(run.success().stdout.contains("3 built, 0 reused, 0 up-to-date"), "{}", run.stdout);
    assert!(ec2.image(&by_hand).is_none());
    let records = records(&paw, &[]);
    let step1 = records.iter().find(|record| record["step_id"] == "step1").unwrap();
    assert_eq!(step1["from_instance"], serde_json::Value::Null);
}

/// CI builds a new version per commit without editing workflow_param.json: --workflow-id (or
/// PAW_WORKFLOW_ID) names the run's workflow.
#[test]
fn a_workflow_id_given_on_the_command_line_names_the_run() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.run(&["-w", "wf", "build"]).success();
    let run = paw.run(&["-w", "wf", "--workflow-id", "ci-42", "build"]);
    assert!(run.success().stdout.contains("0 built, 3 reused"), "{}", run.stdout);
    assert!(paw.read("wf/workflow_param.json").contains(WORKFLOW_ID));
    let paw = paw.env("PAW_WORKFLOW_ID", "ci-42");
    let listed = paw.run(&["-w", "wf", "images", "list", "--json"]).success().json();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert!(listed.as_array().unwrap().iter().all(|record| record["workflow_id"] == "ci-42"));
    let shown = paw.run(&["-w", "wf", "images", "show", "step2", "--json"]).success().json();
    assert_eq!(shown["reused_from"], WORKFLOW_ID);
    // One step across workflows, newest first, at most one.
    let paw = paw.env("PAW_WORKFLOW_ID", "");
    let all = paw.run(&["-w", "wf", "images", "list", "--step", "step1", "--json"]).success().json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let newest = paw.run(&["-w", "wf", "images", "list", "--step", "step1", "--limit", "1", "--json"]);
    let newest = newest.success().json();
    assert_eq!(newest.as_array().unwrap().len(), 1);
    assert_eq!(newest[0]["workflow_id"], "ci-42");
}

/// On a terminal (here a pseudo-terminal from `script`), a build shows one live line per step
/// that ends as its result; packer's own lines stay in the logs. Piped, it prints them as before.
#[test]
fn a_terminal_gets_one_live_line_per_step() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let command = paw.command(&["-w", "wf", "build"]);
    let paw_line = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|arg| format!("'{}'", arg.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let output = command
        .get_envs()
        .fold(std::process::Command::new("script"), |mut script, (key, value)| {
            match value {
                Some(value) => script.env(key, value),
                None => script.env_remove(key),
            };
            script
        })
        .current_dir(paw.path(""))
        .args(["-qec", &format!("stty cols 120 rows 40; {paw_line}"), "/dev/null"])
        .output()
        .expect("script runs");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    for step in ["step1", "step2", "step3"] {
        assert!(screen.contains(&format!("{step}   ")) && screen.contains("✓ built ami-"), "{screen}");
    }
    assert!(screen.matches("✓ built ami-").count() >= 3, "{screen}");
    assert!(!screen.contains("==> step1.amazon-ebs"), "packer's lines reached the terminal:\n{screen}");
    assert!(screen.contains("3 built, 0 reused"), "{screen}");
    // Piped, a build prints packer's lines with their step (a changed input: step1 is built again).
    paw.write("wf/step1/notes.txt", "a change");
    let run = paw.run(&["-w", "wf", "--workflow-id", "piped", "build"]);
    assert!(
        run.success().stdout.contains("step1 | ==> step1.amazon-ebs.step1: Launching a source AWS instance"),
        "{}",
        run.stdout
    );
}
