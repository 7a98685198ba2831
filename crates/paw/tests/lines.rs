//! Lines of images, on the emulator with the real packer: two workflow names that share a catalog
//! (SQLite and DynamoDB) and their step ids never see each other's images; a two-variant workflow
//! is built, resolved and promoted per variant; a tag change rebuilds nothing.

use serde_json::Value;

use crate::aws::WORKFLOW_ID;
use crate::emulator::Emulator;
use crate::harness::{Paw, copy_tree};
use crate::lifecycle::{Cli, deleted_by, field};

const TABLE: &str = "paw_two_teams";

#[test]
fn two_names_in_one_sqlite_catalog_never_cross() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let catalog = format!("sqlite:{}", paw.path("team-catalog.sqlite").display());
    two_teams_on(&emulator, &paw, &catalog);
}

#[test]
fn two_names_in_one_dynamodb_catalog_never_cross() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    two_teams_on(&emulator, &paw, &format!("dynamodb:{TABLE}"));
}

/// Team A's folder `wf` (name "wf") and team B's `team-b` (name "team-b"): the same step ids,
/// different templates, one catalog.
fn two_teams_on(emulator: &Emulator, paw: &Paw, catalog: &str) {
    copy_tree(&paw.path("wf"), &paw.path("team-b"));
    paw.write("team-b/step1/notes.txt", "team B's own base");
    let team_a = Cli::new(paw, &["-w", "wf", "--catalog", catalog]);
    let team_b = Cli::new(paw, &["-w", "team-b", "--catalog", catalog]);

    // B first, then A: A's images are the newest of every step id.
    paw.edit("team-b/workflow_param.json", WORKFLOW_ID, "b-1");
    team_b.run(&["build"]).success();
    team_a.run(&["build"]).success();
    // B under A's workflow id: refused before anything is built, at B's workflow_param.json.
    let refused =
        team_b.fails(&["--workflow-id", WORKFLOW_ID, "build"], &format!("the workflow id \"{WORKFLOW_ID}\" is wf's"));
    assert!(refused.stderr.contains("team-b/workflow_param.json"), "{}", refused.stderr);
    let (a1, a3) = (team_a.ami(WORKFLOW_ID, "step1"), team_a.ami(WORKFLOW_ID, "step3"));
    let (b1, b3) = (team_b.ami("b-1", "step1"), team_b.ami("b-1", "step3"));
    assert_ne!(a1, b1);
    assert_eq!(team_a.json(&["images", "show", "step1"])["workflow_name"], "wf");
    assert_eq!(emulator.ec2().image(&b1).unwrap().0.get("paw:name").map(String::as_str), Some("team-b"));

    // resolve: each team's newest, never the other's newer one.
    assert_eq!(team_a.run(&["resolve", "step1"]).success().stdout.trim(), a1);
    assert_eq!(team_b.run(&["resolve", "step1"]).success().stdout.trim(), b1);
    assert_eq!(team_b.run(&["resolve", "step3"]).success().stdout.trim(), b3);
    let listed = team_b.json(&["images", "list", "--step", "step3"]);
    assert_eq!(field(&listed, "ami_id"), [&Value::from(b3.clone())]);

    // Channels and their SSM parameters: the same channel and step, apart.
    team_a.run(&["channel", "set", "prod", "step3", "--ssm-parameter", "/a/app/prod"]).success();
    let set = team_b.json(&["channel", "set", "prod", "step3", "--ssm-parameter", "/b/app/prod"]);
    assert_eq!((set["seq"].as_u64(), set["ami_id"].as_str()), (Some(1), Some(b3.as_str())), "B's own history");
    assert_eq!(emulator.ssm_parameter("/a/app/prod"), Some(a3.clone()));
    assert_eq!(emulator.ssm_parameter("/b/app/prod"), Some(b3.clone()));
    assert_eq!(team_a.run(&["resolve", "step3", "--channel", "prod"]).success().stdout.trim(), a3);
    assert_eq!(team_b.run(&["resolve", "step3", "--channel", "prod"]).success().stdout.trim(), b3);
    assert_eq!(field(&team_a.json(&["channel", "list"]), "ami_id"), [&Value::from(a3.clone())]);
    team_b.fails(&["channel", "rollback", "prod", "step3"], "has no entry before");
    // Another name's image cannot be put in a channel.
    team_b.fails(&["--workflow-id", WORKFLOW_ID, "channel", "set", "staging", "step3"], "belongs to wf, not to team-b");

    // status and report: B's images only, current although A built the same steps since.
    assert_eq!(field(&team_b.json(&["status"]), "state"), ["current", "current", "current"]);
    let report = team_b.json(&["report", "--all-workflows"]);
    assert_eq!(report["image_count"], 3, "{report:#}");
    let lineage = team_a.json(&["images", "lineage", "step1", "--descendants"]);
    assert_eq!(lineage.as_array().unwrap().len(), 2, "A's step2 and step3 only: {lineage:#}");

    // prune: A deletes its own older step3 and never touches B's (older still) images.
    paw.write("wf/step3/notes.txt", "version two");
    team_a.run(&["--workflow-id", "a-2", "build"]).success();
    team_a.run(&["--workflow-id", "a-2", "channel", "set", "prod", "step3"]).success();
    let dry = team_a.json(&["images", "prune", "--keep", "1", "--dry-run"]);
    let decided: Vec<&str> = field(&dry, "ami_id").iter().filter_map(|ami| ami.as_str()).collect();
    assert!(!decided.contains(&b1.as_str()) && !decided.contains(&b3.as_str()), "{dry:#}");
    let pruned = team_a.json(&["images", "prune", "--keep", "1", "--yes"]);
    assert_eq!(deleted_by(&pruned), [&Value::from(a3.clone())], "{pruned:#}");
    assert_eq!(emulator.ec2().image_state(&a3), None, "deregistered");
    for ami in [&b1, &b3] {
        assert_eq!(emulator.ec2().image_state(ami).as_deref(), Some("available"), "{ami}");
    }
    team_b.run(&["images", "prune", "--keep", "1", "--yes"]).success();
    assert_eq!(emulator.ec2().image_state(&a1).as_deref(), Some("available"));
}

#[test]
fn a_two_variant_workflow_is_built_resolved_and_promoted_per_variant() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("variants"));
    let cli = Cli::new(&paw, &["-w", "wf"]);
    let steps = cli.run(&["steps"]).success().stdout.clone();
    assert!(steps.contains("workflow web with 2 variants"), "{steps}");
    assert!(steps.contains("web-2026-12-01-trusty") && steps.contains("instance_type = \"t2.small\""), "{steps}");

    let built = cli.json(&["build", "--jobs", "4"]);
    let labels: Vec<(String, String)> = built
        .as_array()
        .unwrap()
        .iter()
        .map(|step| (step["variant"].as_str().unwrap().to_string(), step["result"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(labels.iter().filter(|(_, result)| result == "built").count(), 4, "{built:#}");
    let (xenial, trusty) = (
        cli.json(&["--variant", "xenial", "images", "show", "app"])["ami_id"].as_str().unwrap().to_string(),
        cli.json(&["--variant", "trusty", "images", "show", "app"])["ami_id"].as_str().unwrap().to_string(),
    );
    assert_ne!(xenial, trusty);
    let by_id = cli.json(&["--variant", "xenial", "--workflow-id", "web-2026-12-01", "images", "show", "app"]);
    assert_eq!(by_id["ami_id"].as_str(), Some(xenial.as_str()), "--workflow-id names the variants' common id");
    let (tags, _) = emulator.ec2().image(&trusty).unwrap();
    assert_eq!((tags["paw:name"].as_str(), tags["paw:variant"].as_str()), ("web", "trusty"));
    assert!(tags["Name"].contains("ubuntu-trusty") && tags["Name"].ends_with("/web-2026-12-01-trusty/app"));
    let record = cli.json(&["--variant", "trusty", "images", "show", "app"]);
    assert_eq!(record["root_base_ami_id"], "ami-1e749f67");

    // Resolve and promote per variant; without one, paw asks which.
    assert_eq!(cli.run(&["--variant", "trusty", "resolve", "app"]).success().stdout.trim(), trusty);
    cli.fails(&["resolve", "app"], "the workflow has variants (xenial, trusty)");
    cli.run(&["--variant", "xenial", "channel", "set", "prod", "app", "--ssm-parameter", "/web/xenial/prod"]).success();
    cli.run(&["--variant", "trusty", "channel", "set", "prod", "app", "--ssm-parameter", "/web/trusty/prod"]).success();
    assert_eq!(emulator.ssm_parameter("/web/xenial/prod"), Some(xenial.clone()));
    assert_eq!(emulator.ssm_parameter("/web/trusty/prod"), Some(trusty.clone()));
    assert_eq!(
        cli.run(&["--variant", "trusty", "resolve", "app", "--channel", "prod"]).success().stdout.trim(),
        trusty
    );

    // Everything up to date, per variant; status and images list name the variants.
    let again = cli.json(&["build"]);
    assert!(field(&again, "result").iter().all(|result| **result == "up-to-date"), "{again:#}");
    let status = cli.run(&["status"]).success().stdout.clone();
    assert!(status.contains("trusty/app") && status.contains("xenial/base"), "{status}");
    let listed = cli.run(&["images", "list"]).success().stdout.clone();
    assert!(listed.contains("VARIANT") && listed.matches("trusty").count() >= 2, "{listed}");

    // A change in one variant's keys rebuilds that variant only.
    paw.edit("wf/workflow_param.json", "\"instance_type\": \"t2.small\"", "\"instance_type\": \"t2.medium\"");
    let plan = cli.json(&["plan"]);
    let actions: Vec<(&str, &str)> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|step| (step["variant"].as_str().unwrap(), step["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("xenial", "up-to-date"), ("xenial", "up-to-date"), ("trusty", "build"), ("trusty", "build")]);
    cli.fails(&["--variant", "arm64", "plan"], "--variant arm64: no such variant");
}

#[test]
fn a_tag_change_rebuilds_nothing_and_tags_the_images() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let cli = Cli::new(&paw, &["-w", "wf"]);
    cli.run(&["build"]).success();
    let step2 = cli.ami(WORKFLOW_ID, "step2");
    paw.edit(
        "wf/workflow_param.json",
        "\"bus:team\": \"platform\",",
        "\"bus:team\": \"platform\", \"cost:center\": \"42\",",
    );
    let plan = cli.json(&["plan"]);
    assert!(field(&plan, "action").iter().all(|action| **action == "up-to-date"), "{plan:#}");
    let built = cli.run(&["build"]).success().stdout.clone();
    assert!(built.contains("0 built, 0 reused, 3 up-to-date"), "{built}");
    assert!(built.contains("tags set: cost:center"), "{built}");
    let (tags, snapshots) = emulator.ec2().image(&step2).unwrap();
    assert_eq!(tags.get("cost:center").map(String::as_str), Some("42"));
    let snapshot_tags = emulator.ec2().snapshot(&snapshots[0]).unwrap();
    assert_eq!(snapshot_tags.get("cost:center").map(String::as_str), Some("42"), "on its snapshots too");
    // Set once: the next run finds them in place.
    let again = cli.run(&["build", "--verbose"]).success().stdout.clone();
    assert!(!again.contains("tags set"), "{again}");
    // fingerprint_ignore: a key named there changes nothing either.
    paw.edit(
        "wf/workflow_param.json",
        "\"instance_type\": \"t2.micro\",",
        "\"instance_type\": \"t2.micro\", \"fingerprint_ignore\": [\"build_note\"], \"build_note\": \"x\",",
    );
    assert!(field(&cli.json(&["plan"]), "action").iter().all(|action| **action == "up-to-date"));
}
