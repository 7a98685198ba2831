//! Who uses an image, on the emulator with the real packer (its launcher answers
//! DescribeImageReferences and image usage reports): an old image launched by a running instance,
//! one a launch template's default version names, one an SSM parameter holds and whose copy in
//! another account runs an instance there, each kept by `lifecycle plan` and refused by `delete`
//! and `revoke` with its users named, while an unused generation next to them goes; `images usage`
//! lists every kind of user, a shared image's other accounts among them.

use serde_json::Value;

use crate::emulator::Emulator;
use crate::harness::Paw;
use crate::lifecycle::Cli;

const SETTINGS: &str = r#"    "distribution": [
        {"region": "eu-west-1", "accounts": ["222222222222"], "copy_to_accounts": true,
         "role_arn": "arn:aws:iam::{account}:role/paw-distribution"}
    ],
    "lifecycle": {"keep": 1, "delete_after_days": 0},
    "workflow_id":"#;

/// The decision for one AMI in a lifecycle plan: (action, why).
fn decision(plan: &Value, ami: &str) -> (String, String) {
    let found = plan.as_array().unwrap().iter().find(|decision| decision["ami_id"] == ami);
    let found = found.unwrap_or_else(|| panic!("no decision for {ami}: {plan:#}"));
    (found["action"].as_str().unwrap().to_string(), found["reason"].as_str().unwrap().to_string())
}

/// The users' kinds and ids, as `images usage --json` lists them.
fn users(usage: &Value) -> Vec<(String, String)> {
    let users = usage["users"].as_array().unwrap_or_else(|| panic!("no users: {usage:#}"));
    users
        .iter()
        .map(|user| {
            let id = user.get("id").or(user.get("name")).or(user.get("arn")).unwrap();
            (user["kind"].as_str().unwrap().to_string(), id.as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn an_image_in_use_is_kept_and_refused_and_an_unused_one_is_retired() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.edit("wf/workflow_param.json", "    \"workflow_id\":", SETTINGS);
    let cli = Cli::new(&paw, &["-w", "wf"]);
    for generation in 1..=3 {
        paw.write("wf/step1/notes.txt", &format!("generation {generation}"));
        cli.run(&["--workflow-id", &format!("gen-{generation}"), "build"]).success();
    }
    let ami = |generation: u32, step: &str| cli.ami(&format!("gen-{generation}"), step);
    let (one, two, three) = (ami(1, "step1"), ami(1, "step2"), ami(1, "step3"));
    let unused = [ami(2, "step1"), ami(2, "step2"), ami(2, "step3")];

    // gen-1's images, each used its own way; gen-2's by nothing.
    let ec2 = emulator.ec2();
    let instance = ec2.run_instance(&one);
    let template = ec2.launch_template("web", &two, &ami(3, "step2"));
    emulator.put_image_parameter("/team/web/ami", &three);
    let shown = cli.json(&["--workflow-id", "gen-1", "images", "show", "step3"]);
    let copy = shown["copies"]["222222222222:eu-west-1"].as_str().unwrap().to_string();
    let remote = emulator.run_instance_as("222222222222", "eu-west-1", &copy);

    let plan = cli.json(&["lifecycle", "plan"]);
    let keep = |why: String| ("keep".to_string(), why);
    assert_eq!(decision(&plan, &one), keep("in use by 1 instance".into()));
    assert_eq!(decision(&plan, &two), keep(format!("in use by launch template {template} (version 1 ($Default))")));
    assert_eq!(
        decision(&plan, &three),
        keep("in use by 1 instance in eu-west-1 of account 222222222222, SSM parameter /team/web/ami".into())
    );
    for ami in &unused {
        assert_eq!(decision(&plan, ami), ("delete".into(), "0 days old (delete after 0)".into()), "{plan:#}");
    }
    let first = plan.as_array().unwrap().iter().find(|decision| decision["ami_id"] == one.as_str()).unwrap();
    assert_eq!(users(&first["usage"]), [("instance".to_string(), instance.clone())]);
    assert_eq!(first["usage"]["users"][0]["state"], "running");

    // Status, the report and `images show` say who uses each image, and when it was last seen in use.
    let status = cli.json(&["--workflow-id", "gen-1", "status"]);
    let seen: Vec<(Value, bool)> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|step| (step["usage"]["users"].clone(), step["usage"]["last_seen_in_use"].is_string()))
        .collect();
    assert_eq!(seen, [(1.into(), true), (1.into(), true), (2.into(), true)], "{status:#}");
    let table = cli.run(&["--workflow-id", "gen-1", "status"]);
    assert!(table.success().stdout.contains("USERS") && table.stdout.contains("LAST IN USE"), "{}", table.stdout);
    let unused_status = cli.json(&["--workflow-id", "gen-2", "status"]);
    assert_eq!(unused_status[0]["usage"]["users"], 0, "{unused_status:#}");
    let page = paw.path("report.html");
    cli.run(&["--workflow-id", "gen-1", "report", "--html", page.to_str().unwrap()]).success();
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("in use by 1 instance; last seen in use "), "the report says who uses step1's image");
    assert!(html.contains(&format!("in use by launch template {template} (version 1 ($Default))")));
    let shown = cli.run(&["--workflow-id", "gen-1", "images", "show", "step3"]);
    assert!(
        shown.success().stdout.contains("in use by 1 instance in eu-west-1 of account 222222222222"),
        "{}",
        shown.stdout
    );
    let shown = cli.json(&["--workflow-id", "gen-1", "images", "show", "step1"]);
    assert_eq!(users(&shown["usage"]), [("instance".to_string(), instance.clone())]);

    // Delete and revoke refuse each, naming its users; nothing changes.
    for (step, ami, users) in [
        ("step1", &one, "1 instance".to_string()),
        ("step2", &two, format!("launch template {template}")),
        ("step3", &three, "1 instance in eu-west-1 of account 222222222222".to_string()),
    ] {
        let refused = cli.fails(&["--workflow-id", "gen-1", "images", "delete", step, "--yes"], &users);
        assert!(refused.stderr.contains(&format!("{ami} is in use by")), "{}", refused.stderr);
        assert!(refused.stderr.contains("`paw images delete STEP --force --reason TEXT`"), "{}", refused.stderr);
        assert_eq!(ec2.image_state(ami).as_deref(), Some("available"));
    }
    cli.fails(
        &["--workflow-id", "gen-1", "images", "revoke", "step1", "--reason", "CVE", "--yes"],
        "in use by 1 instance",
    );
    assert_eq!(ec2.image_state(&one).as_deref(), Some("available"));

    // Apply retires the unused generation only; every copy of a kept image stays.
    cli.run(&["lifecycle", "apply", "--yes"]).success();
    for ami in &unused {
        assert_eq!(ec2.image_state(ami), None, "{ami} is deleted");
    }
    for ami in [&one, &two, &three] {
        assert_eq!(ec2.image_state(ami).as_deref(), Some("available"), "{ami} is kept");
    }
    let there = emulator.account_view("222222222222", "eu-west-1", &[]);
    assert!(there["images"].as_array().unwrap().iter().any(|image| image["id"] == copy.as_str()), "{there:#}");

    // Every kind of user, one image at a time: by step, or by AMI id.
    let by_ami = |ami: &str| cli.json(&["images", "usage", "--ami", ami]);
    assert_eq!(users(&by_ami(&one)), [("instance".to_string(), instance)]);
    let templates = by_ami(&two);
    assert_eq!(users(&templates), [("launch_template".to_string(), template.clone())]);
    assert_eq!(templates["users"][0]["versions"], serde_json::json!([{"number": 1, "default": true, "latest": false}]));
    let mut held = users(&by_ami(&three));
    held.sort();
    assert_eq!(held, [("instance".to_string(), remote), ("ssm_parameter".to_string(), "/team/web/ami".into())]);
    assert_eq!(by_ami(&three)["users"][0]["place"], "222222222222:eu-west-1");

    // The newest image: a channel's parameter, and another account that launches it shared.
    let newest = ami(3, "step3");
    cli.run(&["--workflow-id", "gen-3", "channel", "set", "prod", "step3", "--ssm-parameter", "/paw/web/prod"])
        .success();
    cli.run(&["--workflow-id", "gen-3", "images", "share", "step3", "--account", "333333333333"]).success();
    emulator.run_instance_as("333333333333", "us-east-1", &newest);
    let usage = cli.json(&["--workflow-id", "gen-3", "images", "usage", "step3"]);
    let found = usage["users"].as_array().unwrap();
    let parameter = found.iter().find(|user| user["kind"] == "ssm_parameter").expect("the channel's parameter");
    assert_eq!((&parameter["name"], &parameter["channel"]), (&"/paw/web/prod".into(), &"prod".into()));
    let account = found.iter().find(|user| user["kind"] == "account").unwrap_or_else(|| panic!("{usage:#}"));
    assert_eq!((&account["id"], &account["instances"]), (&"333333333333".into(), &1.into()), "{usage:#}");
    assert_eq!(usage["unknown"], serde_json::json!([]));
    let text = cli.run(&["--workflow-id", "gen-3", "images", "usage", "step3"]);
    for shown in ["PLACE", "SSM parameter", "channel prod", "account", "333333333333", "1 instance, 0 launch templates"]
    {
        assert!(text.success().stdout.contains(shown), "{shown}: {}", text.stdout);
    }

    // Forced, a revocation or a deletion of an image in use is done, and its record keeps who used it.
    cli.run(&["--workflow-id", "gen-1", "images", "revoke", "step1", "--reason", "CVE", "--force", "--yes"]).success();
    let record = cli.json(&["--workflow-id", "gen-1", "images", "show", "step1"]);
    assert_eq!(record["revoked_reason"], "CVE");
    assert_eq!(ec2.image_state(&one).as_deref(), Some("disabled"));
    let forced = ["--workflow-id", "gen-1", "images", "delete", "step2", "--force", "--reason", "replaced", "--yes"];
    cli.run(&forced).success();
    assert_eq!(ec2.image_state(&two), None);
    for (step, action, reason, usage) in [
        ("step1", "revoke", "CVE", "in use by 1 instance".to_string()),
        ("step2", "delete", "replaced", format!("in use by launch template {template} (version 1 ($Default))")),
    ] {
        let overrides = &cli.json(&["--workflow-id", "gen-1", "images", "show", step])["overrides"];
        assert_eq!(overrides.as_array().map(Vec::len), Some(1), "{overrides:#}");
        let noted = &overrides[0];
        assert_eq!(
            (&noted["action"], &noted["reason"], &noted["usage"]),
            (&action.into(), &reason.into(), &usage.into())
        );
        assert!(noted["by"].as_str().unwrap().contains('@') && noted["at"].is_string(), "{noted:#}");
    }
}
