//! Distribution, on the emulator with the real packer: a build copies its last step's image to
//! another region of the build account and into two other accounts (their own copies, made there
//! through an assumed role, tagged there, recorded), shares it with a fourth; channels publish an
//! SSM parameter in every place; resolve finds each copy; revoke, restore and delete reach every
//! copy in every account; a distribution a dead machine interrupted is finished by `recover`; a
//! catalog in an account and region of its own serves the build account; `doctor` checks every
//! place with the credentials paw acts there with; prune deletes an image's copies in every
//! account.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use serde_json::Value;

use crate::emulator::Emulator;
use crate::faults::FaultyNetwork;
use crate::harness::{Paw, planned_actions, read_until};
use crate::lifecycle::Cli;

const DISTRIBUTION: &str = r#"    "distribution": [
        {"region": "us-west-2", "ssm_parameter": "/images/{name}/{step}/{channel}"},
        {"region": "eu-west-1", "accounts": ["222222222222", "333333333333"], "copy_to_accounts": true,
         "kms_key_id": "alias/ami", "role_arn": "arn:aws:iam::{account}:role/paw-distribution",
         "ssm_parameter": "/images/{name}/{step}/{channel}"},
        {"region": "us-east-1", "accounts": ["444444444444"], "role_arn": "arn:aws:iam::{account}:role/paw-distribution",
         "ssm_parameter": "/shared/{step}/{channel}"},
    ],
    "workflow_id":"#;

const OWN: &str = "123456789012";
const PARAMETER: &str = "/images/wf/step3/prod";

/// The chain, distributed; its images deprecated after 30 days.
pub fn distributed(emulator: &Emulator) -> Paw {
    let paw = emulator.configure(Paw::example("chain"));
    paw.edit("wf/workflow_param.json", "    \"workflow_id\":", DISTRIBUTION);
    paw.edit(
        "wf/workflow_param.json",
        "    \"workflow_id\":",
        "    \"lifecycle\": {\"deprecate_after_days\": 30},\n    \"workflow_id\":",
    );
    paw
}

#[test]
fn a_build_distributes_its_images_to_every_region_and_account() {
    let emulator = Emulator::start();
    let paw = distributed(&emulator);
    let cli = Cli::new(&paw, &["-w", "wf"]);
    let run = cli.run(&["build"]);
    let out = &run.success().stdout;
    assert!(out.contains("eu-west-1 of account 222222222222: copying"), "{out}");

    let record = cli.json(&["images", "show", "step3"]);
    let ami = record["ami_id"].as_str().unwrap().to_string();
    let copies = record["copies"].as_object().unwrap();
    let keys: Vec<&str> = copies.keys().map(String::as_str).collect();
    assert_eq!(keys, ["222222222222:eu-west-1", "333333333333:eu-west-1", "us-west-2"], "{record:#}");
    assert!(cli.json(&["images", "show", "step2"])["copies"].as_object().unwrap().is_empty(), "only the last step");

    // Each account owns its copy, tagged there as the original.
    for account in ["222222222222", "333333333333"] {
        let seen = emulator.account_view(account, "eu-west-1", &[]);
        assert_eq!(seen["account"], account);
        let images = seen["images"].as_array().unwrap();
        assert_eq!(images.len(), 1, "{seen:#}");
        assert_eq!(images[0]["id"], copies[&format!("{account}:eu-west-1")]);
        assert_eq!(images[0]["owner"], account);
        assert_eq!(images[0]["tags"]["paw:step_id"], "step3");
        assert_eq!(images[0]["tags"]["paw:workflow_id"], record["workflow_id"]);
        // The lifecycle policy's deprecation, as the original's.
        assert!(images[0]["deprecation"].is_string(), "{seen:#}");
    }
    let west = emulator.account_view(OWN, "us-west-2", &[]);
    assert_eq!(west["images"][0]["id"], copies["us-west-2"]);
    // The fourth account shares the build account's image.
    assert_eq!(emulator.ec2().launch_permissions(&ami), ["444444444444"]);
    assert!(emulator.account_view("444444444444", "us-east-1", &[])["images"].as_array().unwrap().is_empty());

    // Again: nothing more to do.
    let again = cli.run(&["distribute", "step3"]);
    assert!(again.success().stdout.contains("eu-west-1 of account 333333333333: already there"), "{}", again.stdout);
    assert_eq!(cli.json(&["images", "show", "step3"])["copies"], record["copies"]);

    // Channels publish the copy of each place, in its account and region: planned, then done.
    let planned = cli.json(&["channel", "set", "prod", "step3", "--dry-run"]);
    let puts: Vec<(String, String, String)> = planned["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|action| action["action"] == "put_parameter")
        .map(|action| {
            let field = |key: &str| action[key].as_str().unwrap().to_string();
            (field("place"), field("name"), field("ami_id"))
        })
        .collect();
    assert_eq!(puts.len(), 4, "{planned:#}");
    assert!(emulator.account_view(OWN, "us-west-2", &[PARAMETER])["parameters"][PARAMETER].is_null(), "a dry run");
    cli.run(&["channel", "set", "prod", "step3"]).success();
    for (place, name, ami_id) in &puts {
        let (account, region) = place.split_once(':').unwrap_or((OWN, place));
        let seen = emulator.account_view(account, region, &[name]);
        assert_eq!(seen["parameters"][name], ami_id.as_str(), "{place}: {seen:#}");
    }
    for account in ["222222222222", "333333333333"] {
        let seen = emulator.account_view(account, "eu-west-1", &[PARAMETER]);
        assert_eq!(seen["parameters"][PARAMETER], copies[&format!("{account}:eu-west-1")], "{seen:#}");
    }
    assert_eq!(emulator.account_view(OWN, "us-west-2", &[PARAMETER])["parameters"][PARAMETER], copies["us-west-2"]);
    let shared = emulator.account_view("444444444444", "us-east-1", &["/shared/step3/prod"]);
    assert_eq!(shared["parameters"]["/shared/step3/prod"], ami.as_str());
    let resolved =
        cli.run(&["resolve", "step3", "--channel", "prod", "--region", "eu-west-1", "--account", "333333333333"]);
    assert_eq!(resolved.success().stdout.trim(), copies["333333333333:eu-west-1"]);
    cli.fails(&["resolve", "step3", "--account", "555555555555"], "has no copy in us-east-1 of account 555555555555");

    // Revoke and restore reach every copy in every account.
    // Planned first: the dry run names every copy, changes nothing, and is what the revocation does.
    let planned = cli.json(&["images", "revoke", "step3", "--reason", "broken", "--dry-run"]);
    let places = |plan: &Value, action: &str| -> Vec<Value> {
        let actions = plan["actions"].as_array().unwrap().iter();
        actions.filter(|a| a["action"] == action).map(|a| a["place"].clone()).collect()
    };
    let every_place = ["us-east-1", "222222222222:eu-west-1", "333333333333:eu-west-1", "us-west-2"];
    assert_eq!(places(&planned, "disable"), every_place, "{planned:#}");
    assert_eq!(emulator.account_view("222222222222", "eu-west-1", &[])["images"][0]["state"], "available");
    let applied = cli.json(&["images", "revoke", "step3", "--reason", "broken", "--yes"]);
    assert_eq!(applied, planned["changed"]);
    for account in ["222222222222", "333333333333"] {
        assert_eq!(emulator.account_view(account, "eu-west-1", &[])["images"][0]["state"], "disabled", "{account}");
    }
    let planned = cli.json(&["images", "restore", "step3", "--dry-run"]);
    assert_eq!(places(&planned, "enable"), every_place, "{planned:#}");
    assert_eq!(cli.json(&["images", "restore", "step3"]), planned["changed"]);
    assert_eq!(emulator.account_view("222222222222", "eu-west-1", &[])["images"][0]["state"], "available");

    // A second workflow's new image (step3 changed), deleted: every copy goes, in every account.
    paw.write("wf/step3/notes.txt", "version two");
    cli.run(&["--workflow-id", "second", "build"]).success();
    let second = cli.json(&["--workflow-id", "second", "images", "show", "step3"]);
    let copy_222 = second["copies"]["222222222222:eu-west-1"].as_str().unwrap().to_string();
    assert_eq!(emulator.account_view("222222222222", "eu-west-1", &[])["images"].as_array().unwrap().len(), 2);
    cli.run(&["--workflow-id", "second", "images", "delete", "step3", "--delete-snapshots", "--yes"]).success();
    let left = emulator.account_view("222222222222", "eu-west-1", &[]);
    assert!(left["images"].as_array().unwrap().iter().all(|image| image["id"] != copy_222.as_str()), "{left:#}");
    assert_eq!(left["images"].as_array().unwrap().len(), 1);

    // A target added later: the dry run plans only its copy, and distribute then does just that.
    paw.edit("wf/workflow_param.json", "\"distribution\": [", "\"distribution\": [{\"region\": \"ap-southeast-2\"},");
    let planned = cli.json(&["distribute", "step3", "--dry-run"]);
    let actions = planned_actions(&planned);
    assert_eq!(actions, [("copy".to_string(), "ap-southeast-2".to_string())], "{planned:#}");
    let done = cli.json(&["distribute", "step3"]);
    let copied: Vec<&str> = done
        .as_array()
        .unwrap()
        .iter()
        .filter(|place| place["result"] == "copied")
        .map(|place| place["region"].as_str().unwrap())
        .collect();
    assert_eq!(copied, ["ap-southeast-2"], "{done:#}");
    assert!(cli.json(&["images", "show", "step3"])["copies"]["ap-southeast-2"].is_string());
    assert_eq!(cli.json(&["distribute", "step3", "--dry-run"])["actions"], serde_json::json!([]));
}

#[test]
fn a_distribution_block_that_cannot_work_is_refused_at_its_line() {
    let emulator = Emulator::start();
    let paw = distributed(&emulator);
    let cli = Cli::new(&paw, &["-w", "wf"]);
    paw.edit("wf/workflow_param.json", "\"333333333333\"", "\"3333\"");
    let run = cli.fails(&["plan"], "target 2: \"3333\" is not an account id (12 digits)");
    assert!(run.stderr.contains("workflow_param.json:"), "{}", run.stderr);
    paw.edit("wf/workflow_param.json", "\"3333\"", "\"333333333333\"");
    // A region that cannot exist, and a role that is not an ARN: refused at validate, not after
    // the image exists.
    paw.edit("wf/workflow_param.json", "\"us-west-2\"", "\"mars-1\"");
    let run = cli.fails(&["validate"], "target 1: \"mars-1\" is not a region name (e.g. eu-west-1)");
    assert!(run.stderr.contains("workflow_param.json:"), "{}", run.stderr);
    paw.edit("wf/workflow_param.json", "\"mars-1\"", "\"us-west-2\"");
    let arn = "\"arn:aws:iam::{account}:role/paw-distribution\",\n         \"ssm";
    paw.edit("wf/workflow_param.json", arn, "\"paw-target\",\n         \"ssm");
    cli.fails(&["validate"], "target 2: role_arn \"paw-target\" is not a role's ARN");
    paw.edit("wf/workflow_param.json", "\"paw-target\",\n         \"ssm", arn);
    paw.edit(
        "wf/workflow_param.json",
        "\"role_arn\": \"arn:aws:iam::{account}:role/paw-distribution\",\n         \"ssm",
        "\"ssm",
    );
    cli.fails(
        &["plan"],
        "target 2: acts in other accounts (copy_to_accounts, ssm_parameter) but names no role_arn or profile",
    );
    paw.edit(
        "wf/workflow_param.json",
        "\"ssm_parameter\": \"/images/{name}/{step}/{channel}\"},\n        {\"region\": \"us-east-1\"",
        "\"role_arn\": \"arn:aws:iam::{account}:role/r\", \"ssm_parameter\": \"/i/{step}\"},\n        {\"region\": \"us-east-1\"",
    );
    cli.fails(&["distribute", "step1"], "the distribution block names no target for step \"step1\"");
}

/// The machine dies while CopyImage runs in account 222222222222 (a faulty network delays it, then
/// carries it out): the copy is made there, and nothing records it. `paw recover` settles the run
/// and finishes its distribution: the copy is found by its name, recorded and tagged, not made a
/// second time; the other account gets its copy.
#[test]
fn a_distribution_a_dead_machine_interrupted_is_finished_by_recover() {
    let emulator = Emulator::start();
    let delayed = [("FAULT_RATE", "1"), ("FAULT_KINDS", "delay"), ("FAULT_ACTIONS", "^CopyImage$")];
    let network = FaultyNetwork::start_with(&emulator.endpoint, &delayed);
    let paw = distributed(&emulator).env("AWS_ENDPOINT_URL", &network.endpoint);
    let cli = Cli::new(&paw, &["-w", "wf"]);
    let mut child = paw.command(&["-w", "wf", "build"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    read_until(&mut stdout, "eu-west-1 of account 222222222222: copying");
    // Once the network holds its CopyImage (us-west-2's was the first).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while network.faults().iter().filter(|fault| fault.ends_with("ec2 CopyImage")).count() < 2 {
        assert!(std::time::Instant::now() < deadline, "no CopyImage reached the network: {:?}", network.faults());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    crate::recovery::kill_machine(&mut child);
    // The delayed CopyImage is carried out after the machine died.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let made = loop {
        let images = emulator.account_view("222222222222", "eu-west-1", &[])["images"].clone();
        if let Some(image) = images.as_array().unwrap().first() {
            break image["id"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "the copy was never made");
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    let before = cli.json(&["images", "show", "step3"]);
    assert!(before["copies"].get("222222222222:eu-west-1").is_none(), "{before:#}");

    let run = cli.run(&["recover"]);
    let out = &run.success().stdout;
    assert!(out.contains(&format!("{made}, copied by a run that stopped, is finished now")), "{out}");
    let after = cli.json(&["images", "show", "step3"]);
    assert_eq!(after["copies"]["222222222222:eu-west-1"], made.as_str(), "{after:#}");
    assert!(after["copies"].get("333333333333:eu-west-1").is_some(), "{after:#}");
    let seen = emulator.account_view("222222222222", "eu-west-1", &[]);
    assert_eq!(seen["images"].as_array().unwrap().len(), 1, "no second copy: {seen:#}");
    assert_eq!(seen["images"][0]["tags"]["paw:step_id"], "step3");
    let again = cli.run(&["distribute", "step3"]);
    assert!(!again.success().stdout.contains("FAILED"), "{}", again.stdout);
    assert!(emulator.ec2().live_instances().is_empty());
}

/// The catalog in an account and region of its own (a central catalog for several build
/// accounts): its table is made and used there, with the role's credentials, and the build
/// account has none; the environment can say the same.
#[test]
fn a_catalog_in_an_account_of_its_own_serves_the_build_account() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let central = r#"    "catalog": {"uri": "dynamodb:central-images", "region": "eu-central-1",
                "role_arn": "arn:aws:iam::555555555555:role/paw-catalog"},
    "workflow_id":"#;
    paw.edit("wf/workflow_param.json", "    \"workflow_id\":", central);
    let cli = Cli::new(&paw, &["-w", "wf"]);
    cli.run(&["build"]).success();
    assert_eq!(
        emulator.account_view("555555555555", "eu-central-1", &[])["tables"],
        serde_json::json!(["central-images"])
    );
    assert!(emulator.account_view(OWN, "us-east-1", &[])["tables"].as_array().unwrap().is_empty());
    assert_eq!(cli.json(&["images", "list"]).as_array().unwrap().len(), 3);
    // The same catalog through the environment, from a folder that does not name it.
    let plain = emulator.configure(Paw::example("chain"));
    let env = [
        ("PAW_CATALOG", "dynamodb:central-images"),
        ("PAW_CATALOG_REGION", "eu-central-1"),
        ("PAW_CATALOG_ROLE_ARN", "arn:aws:iam::555555555555:role/paw-catalog"),
    ];
    let plan = plain.run_with(&env, &["-w", "wf", "plan", "--json"]);
    assert!(
        plan.success().json().as_array().unwrap().iter().all(|step| step["action"] == "up-to-date"),
        "{}",
        plan.stdout
    );
    paw.edit("wf/workflow_param.json", "\"role_arn\": \"arn", "\"profile\": \"x\", \"role_arn\": \"arn");
    cli.fails(&["plan"], "\"catalog\" names both a role_arn and a profile");
}

/// `paw doctor` checks every place of the distribution with the credentials paw acts there with:
/// the account they land in, the KMS key, Parameter Store; `--json` says, per account and region,
/// what paw does there and whether it may.
#[test]
fn doctor_checks_every_place_of_the_distribution() {
    let emulator = Emulator::start();
    let paw = distributed(&emulator);
    let key = emulator.make_kms_key("222222222222", "eu-west-1", "alias/ami");
    let run = paw.run(&["-w", "wf", "doctor", "--json"]);
    assert_eq!(run.code, 2, "333333333333 has no key alias/ami: {}", run.stdout);
    let checks = run.json();
    let check = |name: &str| -> Value {
        let found = checks.as_array().unwrap().iter().find(|check| check["check"] == name);
        found.unwrap_or_else(|| panic!("no check {name}: {checks:#}")).clone()
    };
    let ok = check("distribution to eu-west-1 of account 222222222222");
    assert_eq!(
        (ok["ok"].as_bool(), ok["account"].as_str(), ok["region"].as_str()),
        (Some(true), Some("222222222222"), Some("eu-west-1"))
    );
    let detail = ok["detail"].as_str().unwrap();
    assert!(detail.contains("as arn:aws:sts::222222222222:assumed-role/paw-distribution/"), "{detail}");
    assert!(detail.contains(&format!("key alias/ami ({key}) enabled")), "{detail}");
    assert_eq!(ok["does"], "shares the images with the account, which copies them (its own)");
    let missing = check("distribution to eu-west-1 of account 333333333333");
    assert_eq!(missing["ok"], false);
    assert!(missing["detail"].as_str().unwrap().contains("kms:DescribeKey"), "{missing:#}");
    assert_eq!(check("distribution to us-west-2")["ok"], true);
    let shared = check("distribution to us-east-1 of account 444444444444");
    assert_eq!((shared["ok"].as_bool(), shared["kms_key_id"].is_null()), (Some(true), true), "{shared:#}");
    assert!(!run.stdout.contains("testing"), "no secret is printed");
}

/// Prune keeps the newest image of each step and deletes the older ones: with their copies, in
/// every account that owns one.
#[test]
fn prune_deletes_the_copies_in_every_account() {
    let emulator = Emulator::start();
    let paw = distributed(&emulator);
    let cli = Cli::new(&paw, &["-w", "wf"]);
    cli.run(&["build"]).success();
    let old = cli.json(&["images", "show", "step3"]);
    paw.write("wf/step3/notes.txt", "version two");
    cli.run(&["--workflow-id", "second", "build"]).success();
    let new = cli.json(&["--workflow-id", "second", "images", "show", "step3"]);
    let ids = |account: &str| -> Vec<String> {
        let seen = emulator.account_view(account, "eu-west-1", &[]);
        seen["images"].as_array().unwrap().iter().map(|image| image["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids("222222222222").len(), 2);
    cli.run(&["images", "prune", "--keep", "1", "--delete-snapshots", "--yes"]).success();
    for account in ["222222222222", "333333333333"] {
        let key = format!("{account}:eu-west-1");
        assert_eq!(ids(account), [new["copies"][&key].as_str().unwrap()], "{account}: {old:#}");
    }
    assert_eq!(cli.json(&["images", "show", "step3"])["status"], "deregistered");
}
