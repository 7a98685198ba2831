//! Lifecycle policies, on the emulator with the real packer and both catalogs: what `paw lifecycle
//! plan` says is due across several workflows' images (newest kept, a channel's image and its
//! ancestors kept, a recently launched image kept), and what `apply` does in EC2 (deprecation on
//! every copy, DisableImage, deregistration), once.

use serde_json::Value;

use crate::aws::WORKFLOW_ID;
use crate::emulator::Emulator;
use crate::harness::Paw;
use crate::lifecycle::Cli;

#[test]
fn a_policy_is_planned_and_applied_over_workflows_on_sqlite() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let catalog = format!("sqlite:{}", paw.path("catalog.sqlite").display());
    policy_on(&emulator, &paw, &catalog);
}

#[test]
fn a_policy_is_planned_and_applied_over_workflows_on_dynamodb() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    policy_on(&emulator, &paw, "dynamodb:paw_policies");
}

/// The decision for one AMI: (action, why).
fn decision(plan: &Value, ami: &str) -> (String, String) {
    let found = plan.as_array().unwrap().iter().find(|decision| decision["ami_id"] == ami);
    let found = found.unwrap_or_else(|| panic!("no decision for {ami}: {plan:#}"));
    let action = found["action"].as_str().unwrap().to_string();
    let done = if found["done"] == true { " (done)" } else { "" };
    (format!("{action}{done}"), found["reason"].as_str().unwrap().to_string())
}

fn policy_on(emulator: &Emulator, paw: &Paw, catalog: &str) {
    let cli = Cli::new(paw, &["-w", "wf", "--catalog", catalog]);
    // Three generations: each changes step1, so every step is built anew.
    for generation in 1..=3 {
        paw.write("wf/step1/notes.txt", &format!("generation {generation}"));
        cli.run(&["--workflow-id", &format!("gen-{generation}"), "build"]).success();
    }
    let ami = |generation: u32, step: &str| cli.ami(&format!("gen-{generation}"), step);
    cli.run(&["--workflow-id", "gen-1", "images", "copy", "step1", "--to-region", "us-west-2"]).success();
    let copy = cli.json(&["--workflow-id", "gen-1", "images", "show", "step1"])["copies"]["us-west-2"].clone();
    cli.run(&["--workflow-id", "gen-2", "channel", "set", "prod", "step3"]).success();

    // Keep 1 per step; each step its own rule.
    paw.edit("wf/workflow_param.json", "\"instance_type\"", r#""lifecycle": {"keep": 1}, "instance_type""#);
    for (step, rule) in [
        ("step1", "\"deprecate_after_days\": 0"),
        ("step2", "\"disable_after_days\": 0"),
        ("step3", "\"delete_after_days\": 0, \"delete_snapshots\": true"),
    ] {
        paw.edit(
            &format!("wf/{step}/step_param.json"),
            "\"metadata\"",
            &format!("\"lifecycle\": {{{rule}}}, \"metadata\""),
        );
    }
    let plan = cli.json(&["lifecycle", "plan"]);
    assert_eq!(plan.as_array().unwrap().len(), 9, "{plan:#}");
    assert_eq!(decision(&plan, &ami(3, "step2")).1, "newest 1 of step step2");
    assert_eq!(decision(&plan, &ami(2, "step3")).1, "channel prod");
    assert_eq!(decision(&plan, &ami(2, "step2")).1, format!("ancestor of {}", ami(2, "step3")));
    assert_eq!(decision(&plan, &ami(1, "step1")).0, "deprecate");
    assert_eq!(decision(&plan, &ami(1, "step2")).0, "disable");
    assert_eq!(decision(&plan, &ami(1, "step3")), ("delete".into(), "0 days old (delete after 0)".into()));
    assert!(cli.run(&["lifecycle", "plan"]).success().stdout.contains("deprecate"));
    // Nothing changed by planning; apply needs a terminal or --yes.
    assert_eq!(emulator.ec2().image_state(&ami(1, "step3")).as_deref(), Some("available"));
    cli.fails(&["lifecycle", "apply"], "without confirmation");

    // An apply that stops half-way (the delete's plan is refused: someone protected the image)
    // leaves what it did done and whole; the next one finishes.
    emulator.ec2().protect(&ami(1, "step3"), true);
    let stopped = cli.run(&["lifecycle", "apply", "--yes"]);
    assert_eq!(stopped.code, 2, "{}", stopped.stderr);
    assert!(stopped.stderr.contains("is protected from deregistration; nothing was changed"), "{}", stopped.stderr);
    assert_eq!(emulator.ec2().image_state(&ami(1, "step2")).as_deref(), Some("disabled"), "done before the stop");
    assert_eq!(cli.json(&["--workflow-id", "gen-1", "images", "show", "step3"])["status"], "available");
    emulator.ec2().protect(&ami(1, "step3"), false);

    // Two applies at once (cron on two machines): one holds the lease and does the rest; each
    // action is carried out once.
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let mut command = paw.command(&["-w", "wf", "--catalog", catalog, "--json", "lifecycle", "apply", "--yes"]);
            command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let mut carried_out = 0;
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let done: Value = serde_json::from_slice(&output.stdout).unwrap();
        carried_out += done.as_array().unwrap().len();
    }
    assert_eq!(carried_out, 1, "the delete, once");
    let deprecated = emulator.ec2().image(&ami(1, "step1"));
    assert!(deprecated.is_some(), "deprecated, not deleted");
    assert!(emulator.ec2().deprecation_time(&ami(1, "step1")).is_some(), "EC2 deprecates it");
    assert!(emulator.ec2_in("us-west-2").deprecation_time(copy.as_str().unwrap()).is_some(), "and its copy");
    assert_eq!(emulator.ec2().image_state(&ami(1, "step2")).as_deref(), Some("disabled"));
    assert_eq!(cli.json(&["--workflow-id", "gen-1", "images", "show", "step2"])["status"], "disabled");
    assert_eq!(emulator.ec2().image_state(&ami(1, "step3")), None, "deregistered");
    assert_eq!(cli.json(&["--workflow-id", "gen-1", "images", "show", "step3"])["status"], "deregistered");
    for kept in [ami(3, "step1"), ami(2, "step3"), ami(2, "step1")] {
        assert_eq!(emulator.ec2().image_state(&kept).as_deref(), Some("available"), "{kept}");
    }
    // Applied once: the next plan finds it done, and apply does nothing.
    let again = cli.json(&["lifecycle", "plan"]);
    assert_eq!(decision(&again, &ami(1, "step1")).0, "deprecate (done)");
    assert_eq!(decision(&again, &ami(1, "step2")).0, "disable (done)");
    let noop = cli.run(&["lifecycle", "apply", "--yes"]);
    assert!(noop.success().stdout.contains("nothing to do"), "{}", noop.stdout);

    // Pointing a channel at a retired (deprecated) image is an override: on purpose, with a reason.
    let canary = ["--workflow-id", "gen-1", "channel", "set", "canary", "step1"];
    cli.fails(&canary, "is deprecated (from ");
    let forced: Vec<&str> = canary.iter().copied().chain(["--force", "--reason", "bisecting a regression"]).collect();
    assert_eq!(cli.json(&forced)["action"], "override");
    let history = cli.json(&["channel", "history", "canary", "step1"]);
    assert_eq!(history[0]["reason"], "bisecting a regression");

    // An image launched from lately is kept (EC2's lastLaunchedTime; a child's build launches its
    // parent too), and so is its parent; the last step's image, never launched, is not.
    paw.edit("wf/workflow_param.json", r#""keep": 1"#, r#""keep": 1, "protect_launched_within_days": 14"#);
    paw.write("wf/step1/notes.txt", "generation 4");
    cli.run(&["--workflow-id", "gen-4", "build"]).success();
    emulator.ec2().run_instance(&ami(3, "step3"));
    let plan = cli.json(&["lifecycle", "plan"]);
    for step in ["step2", "step3"] {
        assert_eq!(decision(&plan, &ami(3, step)).1, "launched 0 days ago (protected for 14)", "{step}");
    }
    let (action, why) = decision(&plan, &ami(3, "step1"));
    assert_eq!(action, "keep", "{why}");
}

#[test]
fn a_channel_history_is_an_audit_log_and_its_image_is_protected_from_deregistration() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain")).env("USER", "alice");
    let cli = Cli::new(&paw, &["-w", "wf"]);
    cli.run(&["build"]).success();
    paw.write("wf/step3/notes.txt", "version two");
    cli.run(&["--workflow-id", "wf-2", "build"]).success();
    let (one, two) = (cli.ami(WORKFLOW_ID, "step3"), cli.ami("wf-2", "step3"));
    let protection = |ami: &str| emulator.ec2().deregistration_protection(ami);

    cli.run(&["channel", "set", "prod", "step3", "--reason", "first release"]).success();
    assert_eq!(protection(&one).as_deref(), Some("enabled"));
    // Nobody deregisters prod's image: paw refuses before it touches anything (and EC2 would), and
    // the image and its record stay.
    let refused = cli.run(&["images", "delete", "step3", "--yes"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!("channel prod of step \"step3\" (wf) points at {one}")),
        "{}",
        refused.stderr
    );
    assert_eq!(emulator.ec2().image_state(&one).as_deref(), Some("available"));
    assert_eq!(cli.json(&["images", "show", "step3"])["status"], "available");

    cli.run(&["--workflow-id", "wf-2", "channel", "set", "prod", "step3"]).success();
    assert_eq!((protection(&two).as_deref(), protection(&one).as_deref()), (Some("enabled"), Some("disabled")));
    let planned = cli.json(&["channel", "rollback", "prod", "step3", "--reason", "boot loop", "--dry-run"]);
    let said: Vec<String> = planned["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|action| format!("{} {}", action["action"].as_str().unwrap(), action["ami_id"].as_str().unwrap()))
        .collect();
    assert_eq!(said, [format!("point_channel {one}"), format!("protect {one}"), format!("unprotect {two}")]);
    assert_eq!(protection(&one).as_deref(), Some("disabled"), "a dry run changes nothing");
    cli.run(&["channel", "rollback", "prod", "step3", "--reason", "boot loop"]).success();
    assert_eq!((protection(&one).as_deref(), protection(&two).as_deref()), (Some("enabled"), Some("disabled")));
    cli.run(&["--workflow-id", "wf-2", "channel", "set", "prod", "step3", "--reason", "fixed"]).success();

    // Every change is an entry: what, when, who, why; newest first.
    let history = cli.json(&["channel", "history", "prod", "step3"]);
    let entries = history.as_array().unwrap();
    let seen: Vec<(&str, &str, Option<&str>)> = entries
        .iter()
        .map(|entry| (entry["action"].as_str().unwrap(), entry["ami_id"].as_str().unwrap(), entry["reason"].as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("set", two.as_str(), Some("fixed")),
            ("rollback", one.as_str(), Some("boot loop")),
            ("set", two.as_str(), None),
            ("set", one.as_str(), Some("first release")),
        ]
    );
    for entry in entries {
        let by = entry["set_by"].as_str().unwrap();
        assert!(by.starts_with("alice@") && by.contains("(arn:aws:"), "{by}");
        assert!(entry["set_at"].as_str().unwrap().starts_with("20"), "{entry}");
    }
    let text = cli.run(&["channel", "history", "prod", "step3"]).success().stdout.clone();
    assert!(text.contains("rollback") && text.contains("boot loop") && text.contains("current"), "{text}");
    assert!(cli.run(&["channel", "list"]).success().stdout.contains("alice@"));
    // The rollback went back one image; a second one goes back through the stack of sets.
    cli.run(&["channel", "rollback", "prod", "step3"]).success();
    assert_eq!(cli.run(&["resolve", "step3", "--channel", "prod"]).success().stdout.trim(), one);
}
