//! The images after the build, on the emulator with the real packer: lineage, status, revocation,
//! channels and resolve (on both catalogs), prune, and base-ami update.

use serde_json::Value;

use crate::aws::{ROOT_AMI, WORKFLOW_ID};
use crate::emulator::Emulator;
use crate::harness::{Paw, Run};

/// paw with these leading arguments (`-w wf`, and a catalog).
pub struct Cli<'a> {
    paw: &'a Paw,
    args: Vec<&'a str>,
}

impl<'a> Cli<'a> {
    pub fn new(paw: &'a Paw, args: &[&'a str]) -> Cli<'a> {
        Cli { paw, args: args.to_vec() }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let all: Vec<&str> = self.args.iter().copied().chain(args.iter().copied()).collect();
        self.paw.run(&all)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        self.run(&all).success().json()
    }

    /// The step's AMI in workflow `workflow_id`.
    pub fn ami(&self, workflow_id: &str, step: &str) -> String {
        self.json(&["--workflow-id", workflow_id, "images", "show", step])["ami_id"].as_str().unwrap().to_string()
    }

    /// The command is refused as bad input or a request that cannot be met now: exit 2.
    #[track_caller]
    pub fn fails(&self, args: &[&str], message: &str) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 2, "{args:?} should fail with exit 2:\n{}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: expected {message:?} in:\n{}", run.stderr);
        run
    }
}

/// The AMIs a prune decided to delete.
pub fn deleted_by(pruned: &Value) -> Vec<&Value> {
    let decisions = pruned.as_array().unwrap().iter();
    decisions.filter(|decision| decision["action"] == "deleted").map(|decision| &decision["ami_id"]).collect()
}

pub fn field<'v>(values: &'v Value, key: &str) -> Vec<&'v Value> {
    values.as_array().unwrap().iter().map(|value| &value[key]).collect()
}

#[test]
fn lineage_status_and_revocation() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let cli = Cli::new(&paw, &["-w", "wf"]);
    cli.run(&["build"]).success();
    let (ami1, ami2, ami3) =
        (cli.ami(WORKFLOW_ID, "step1"), cli.ami(WORKFLOW_ID, "step2"), cli.ami(WORKFLOW_ID, "step3"));

    // Ancestry, from the image to the root base AMI.
    let lineage = cli.json(&["images", "lineage", "step3"]);
    assert_eq!(field(&lineage, "ami_id"), [&ami3, &ami2, &ami1, ROOT_AMI]);
    let steps: Vec<Value> = field(&lineage, "step_id").into_iter().cloned().collect();
    assert_eq!(steps, [Value::from("step3"), "step2".into(), "step1".into(), Value::Null]);
    assert_eq!(lineage[3]["workflow_id"], Value::Null);
    assert_eq!(lineage[3]["status"], "available");
    assert!(field(&lineage, "status")[..3].iter().all(|status| *status == "available"));
    let descendants = cli.json(&["images", "lineage", "step1", "--descendants"]);
    assert_eq!(field(&descendants, "ami_id"), [&ami2, &ami3]);
    assert_eq!(field(&descendants, "base_ami_id"), [&ami1, &ami2]);
    assert!(cli.run(&["images", "lineage", "step1"]).success().stdout.contains("(root base AMI)"));

    // Staleness: an input of step2 changes; step3, built on it, is stale with it.
    let status = cli.json(&["status"]);
    assert_eq!(field(&status, "state"), ["current", "current", "current"]);
    paw.write("wf/step2/notes.txt", "a new input");
    let status = cli.json(&["status"]);
    assert_eq!(field(&status, "state"), ["current", "stale", "stale"]);
    assert_eq!(status[1]["reasons"][0], "inputs changed: notes.txt");
    assert_eq!(status[2]["reasons"][0], "parent step2 is stale");
    std::fs::remove_file(paw.path("wf/step2/notes.txt")).unwrap();

    // A new workflow id reuses step1..3; revoking step2 revokes its AMI in both workflows.
    cli.run(&["--workflow-id", "wf-two", "build"]).success();
    assert_eq!(cli.ami("wf-two", "step2"), ami2);
    let revoked = cli.json(&["images", "revoke", "step2", "--reason", "CVE-2026-1 in libssl", "--yes"]);
    let workflows: Vec<&Value> = field(&revoked, "workflow_id");
    assert_eq!(workflows.len(), 2, "{revoked:#}");
    assert!(workflows.contains(&&Value::from(WORKFLOW_ID)) && workflows.contains(&&Value::from("wf-two")));
    let shown = cli.json(&["images", "show", "step2"]);
    assert_eq!(
        (shown["status"].as_str(), shown["revoked_reason"].as_str()),
        (Some("revoked"), Some("CVE-2026-1 in libssl"))
    );
    assert_eq!(emulator.ec2().image_state(&ami2).as_deref(), Some("disabled"));
    assert_eq!(emulator.ec2().image(&ami2).unwrap().0["paw:revoked"], "CVE-2026-1 in libssl");
    let status = cli.json(&["status"]);
    assert_eq!(field(&status, "state"), ["current", "revoked", "stale"]);
    assert_eq!(status[2]["reasons"][0], "parent step2 is revoked");
    // Never up to date, never reused, never a source.
    let plan = cli.json(&["plan"]);
    assert_eq!(plan[1]["action"], "build");
    assert_eq!(plan[1]["reason"], "revoked: CVE-2026-1 in libssl");
    let plan = cli.json(&["--workflow-id", "wf-three", "plan"]);
    assert_eq!(field(&plan, "action"), ["reuse", "build", "build"]);
    cli.fails(&["build", "step3"], "whose AMI ");
    cli.fails(&["resolve", "step2", "--workflow-id", WORKFLOW_ID], "cannot be used: revoked: CVE-2026-1 in libssl");

    // Restored: one AMI, every record of it.
    let restored = cli.json(&["images", "restore", "step2"]);
    assert_eq!(field(&restored, "status"), ["available", "available"]);
    assert_eq!(emulator.ec2().image_state(&ami2).as_deref(), Some("available"));
    assert!(!emulator.ec2().image(&ami2).unwrap().0.contains_key("paw:revoked"));
    assert_eq!(field(&cli.json(&["status"]), "state"), ["current", "current", "current"]);

    // --cascade: every image built on it, in every workflow.
    let revoked = cli.json(&["images", "revoke", "step1", "--reason", "bad base", "--cascade", "--yes"]);
    assert_eq!(revoked.as_array().unwrap().len(), 6, "{revoked:#}");
    assert_eq!(emulator.ec2().image_state(&ami3).as_deref(), Some("disabled"));
    cli.fails(&["images", "restore", "step3", "--workflow-id", "no-such-workflow"], "no AMI of step \"step3\"");
    cli.fails(&["images", "revoke", "step9", "--reason", "x", "--yes"], "no AMI of step \"step9\"");
    cli.fails(&["images", "revoke", "step1", "--reason", "again"], "without confirmation");

    // A deregistered image cannot be revoked.
    paw.write("wf/step1/notes.txt", "a new input");
    cli.run(&["--workflow-id", "wf-three", "build", "step1"]).success();
    cli.run(&["--workflow-id", "wf-three", "images", "delete", "step1", "--yes"]).success();
    cli.fails(&["--workflow-id", "wf-three", "images", "revoke", "step1", "--reason", "x", "--yes"], "is deregistered");
}

/// Channels and resolve, with SSM publishing, on a catalog given by `args`.
fn channels_on(emulator: &Emulator, paw: &Paw, args: &[&str]) {
    let cli = Cli::new(paw, args);
    cli.run(&["build"]).success();
    paw.write("wf/step3/notes.txt", "version two");
    cli.run(&["--workflow-id", "wf-two", "build"]).success();
    let (one, two) = (cli.ami(WORKFLOW_ID, "step3"), cli.ami("wf-two", "step3"));
    assert_ne!(one, two);
    // Lineage on this catalog: wf-two's step3 on the step2 it reused, down to the root.
    let lineage = cli.json(&["--workflow-id", "wf-two", "images", "lineage", "step3"]);
    let workflows: Vec<Value> = field(&lineage, "workflow_id").into_iter().cloned().collect();
    assert_eq!(workflows, [Value::from("wf-two"), "wf-two".into(), "wf-two".into(), Value::Null]);
    let step1 = cli.ami(WORKFLOW_ID, "step1");
    let descendants = cli.json(&["images", "lineage", "step1", "--descendants"]);
    assert_eq!(
        descendants.as_array().unwrap().len(),
        4,
        "step2 twice (reused), step3 of each workflow: {descendants:#}"
    );
    assert!(field(&descendants, "base_ami_id").iter().any(|base| **base == step1.as_str()));

    let set = cli.json(&["channel", "set", "prod", "step3", "--ssm-parameter", "/paw/app/prod"]);
    assert_eq!((set["ami_id"].as_str(), set["seq"].as_u64()), (Some(one.as_str()), Some(1)));
    assert_eq!(emulator.ssm_parameter("/paw/app/prod"), Some(one.clone()));
    // The parameter is remembered for the channel and step.
    let text = cli.run(&["--workflow-id", "wf-two", "channel", "set", "prod", "step3"]);
    assert!(text.success().stdout.contains("published to SSM parameter /paw/app/prod"), "{}", text.stdout);
    assert_eq!(emulator.ssm_parameter("/paw/app/prod"), Some(two.clone()));
    assert_eq!(cli.run(&["resolve", "step3", "--channel", "prod"]).success().stdout.trim(), two);
    let history = cli.json(&["channel", "history", "prod", "step3"]);
    assert_eq!(field(&history, "ami_id"), [&two, &one]);
    let list = cli.json(&["channel", "list"]);
    assert_eq!(field(&list, "ami_id"), [&two]);

    let rolled = cli.json(&["channel", "rollback", "prod", "step3"]);
    assert_eq!(
        (rolled["from"]["ami_id"].as_str(), rolled["to"]["ami_id"].as_str()),
        (Some(two.as_str()), Some(one.as_str()))
    );
    assert_eq!(emulator.ssm_parameter("/paw/app/prod"), Some(one.clone()));
    assert_eq!(cli.run(&["resolve", "step3", "--channel", "prod"]).success().stdout.trim(), one);
    cli.fails(&["channel", "rollback", "prod", "step3"], "has no entry before");
    let history = cli.run(&["channel", "history", "prod", "step3"]).success().stdout.clone();
    assert!(history.contains("rollback") && history.contains("current"), "{history}");

    // Without a channel: the newest available image of the step; with --workflow-id, that one's.
    assert_eq!(cli.run(&["resolve", "step3"]).success().stdout.trim(), two);
    assert_eq!(cli.run(&["--workflow-id", WORKFLOW_ID, "resolve", "step3"]).success().stdout.trim(), one);
    let resolved = cli.json(&["resolve", "step3", "--channel", "prod"]);
    assert_eq!((resolved["workflow_id"].as_str(), resolved["channel"].as_str()), (Some(WORKFLOW_ID), Some("prod")));

    // A revoked image: resolve fails clearly, and no channel may point at it.
    cli.run(&["images", "revoke", "step3", "--reason", "broken app", "--yes"]).success();
    cli.fails(&["resolve", "step3", "--channel", "prod"], "cannot be used: revoked: broken app");
    cli.fails(&["channel", "set", "staging", "step3"], "cannot be used: revoked: broken app");
    assert_eq!(cli.run(&["resolve", "step3"]).success().stdout.trim(), two, "the newest available one");

    // Bad input.
    assert!(cli.run(&["channel", "history", "no-such", "step3"]).success().stdout.contains("no channel yet"));
    cli.fails(&["resolve", "step3", "--channel", "canary"], "wf has no channel canary for step \"step3\"");
    cli.fails(&["channel", "set", "pr#od", "step3"], "\"pr#od\" is not a channel name");
    cli.fails(&["channel", "set", "prod", "step9"], "no AMI of step \"step9\"");
    cli.fails(&["resolve", "step9"], "step \"step9\" of wf has no available image");
}

#[test]
fn channels_and_resolve_on_sqlite() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    channels_on(&emulator, &paw, &["-w", "wf"]);
}

#[test]
fn channels_and_resolve_on_dynamodb_unseen_by_the_seed() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let table = "paw_lifecycle";
    channels_on(&emulator, &paw, &["-w", "wf", "--catalog", "dynamodb:paw_lifecycle"]);
    // The seed's own queries see AMI items only: no channel or journal item.
    let cli = Cli::new(&paw, &["-w", "wf", "--catalog", "dynamodb:paw_lifecycle"]);
    let ours: Vec<String> =
        field(&cli.json(&["images", "list"]), "ami_id").iter().map(|id| id.as_str().unwrap().to_string()).collect();
    let seeds: Vec<String> =
        serde_json::from_str(&emulator.seed_catalog(&[table, "query-workflow", WORKFLOW_ID])).unwrap();
    assert_eq!(seeds, ours);
    let by_step: Vec<String> = serde_json::from_str(&emulator.seed_catalog(&[table, "query-step", "step3"])).unwrap();
    assert_eq!(by_step.len(), 2, "{by_step:?}");
}

/// Three workflows: step3 changes in the second, step2 (and so step3) in the third. A channel
/// points at the first one's step3. `--keep 1` keeps each step's newest image, the channel's, and
/// the ancestors of both; it deletes the second workflow's step3 only.
#[test]
fn prune_keeps_the_newest_the_channels_and_their_ancestors() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let cli = Cli::new(&paw, &["-w", "wf"]);
    cli.run(&["--workflow-id", "wf-1", "build"]).success();
    paw.write("wf/step3/notes.txt", "two");
    cli.run(&["--workflow-id", "wf-2", "build"]).success();
    paw.write("wf/step2/notes.txt", "three");
    cli.run(&["--workflow-id", "wf-3", "build"]).success();
    cli.run(&["--workflow-id", "wf-1", "channel", "set", "prod", "step3"]).success();
    let old_step2 = cli.ami("wf-1", "step2");
    let (prod, doomed, newest) = (cli.ami("wf-1", "step3"), cli.ami("wf-2", "step3"), cli.ami("wf-3", "step3"));
    let snapshots = emulator.ec2().image(&doomed).unwrap().1;

    let dry = cli.json(&["images", "prune", "--keep", "1", "--dry-run"]);
    let decision = |ami: &str| {
        dry.as_array()
            .unwrap()
            .iter()
            .find(|decision| decision["ami_id"] == ami)
            .unwrap_or_else(|| panic!("{ami}: {dry:#}"))
            .clone()
    };
    assert_eq!(
        (decision(&newest)["action"].as_str(), decision(&newest)["reason"].as_str()),
        (Some("kept"), Some("newest 1"))
    );
    assert_eq!(decision(&prod)["reason"], "channel prod");
    assert_eq!(decision(&old_step2)["reason"], format!("ancestor of {prod}"));
    assert_eq!(decision(&doomed)["action"], "deleted");
    assert_eq!(deleted_by(&dry), [&Value::from(doomed.clone())]);
    assert!(emulator.ec2().image(&doomed).is_some(), "a dry run changes nothing");
    let text = cli.run(&["images", "prune", "--keep", "1", "--delete-snapshots", "--dry-run"]);
    let said = "1 image would be deleted (dry run); snapshots would be freed: 15 GiB";
    assert!(text.success().stdout.contains(said), "{}", text.stdout);
    let young = cli.json(&["images", "prune", "--keep", "1", "--older-than", "1", "--dry-run"]);
    assert!(young.as_array().unwrap().iter().all(|decision| decision["action"] == "kept"), "{young:#}");

    // An image someone protected from deregistration by hand is kept, and the plan says why.
    emulator.ec2().protect(&doomed, true);
    let protected = cli.json(&["images", "prune", "--keep", "1", "--yes"]);
    let reason = format!("{doomed} in us-east-1 is protected from deregistration");
    assert!(
        protected.as_array().unwrap().iter().any(|d| d["ami_id"] == doomed.as_str() && d["reason"] == reason.as_str())
    );
    assert!(deleted_by(&protected).is_empty(), "{protected:#}");
    emulator.ec2().protect(&doomed, false);

    cli.fails(&["images", "prune", "--keep", "1"], "without confirmation");
    cli.fails(&["images", "prune", "--keep", "0", "--yes"], "--keep 0 would delete every image");
    let run = cli.run(&["images", "prune", "--keep", "1", "--delete-snapshots", "--yes"]);
    assert!(run.success().stdout.contains("1 image deleted; snapshots freed: 15 GiB"), "{}", run.stdout);
    assert!(emulator.ec2().image(&doomed).is_none());
    assert!(snapshots.iter().all(|snapshot| emulator.ec2().snapshot(snapshot).is_none()));
    assert_eq!(cli.json(&["--workflow-id", "wf-2", "images", "show", "step3"])["status"], "deregistered");
    for kept in [&newest, &prod, &old_step2] {
        assert!(emulator.ec2().image(kept).is_some(), "{kept}");
    }
    // Again: nothing more to delete.
    let again = cli.json(&["images", "prune", "--keep", "1", "--yes"]);
    assert!(again.as_array().unwrap().iter().all(|decision| decision["action"] == "kept"), "{again:#}");
}

/// `root_base_ami_filter` finds a newer root base AMI: step1 is stale; `base-ami update` moves the
/// params to it, keeping the file's comments and layout.
#[test]
fn base_ami_update_follows_the_filter() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let cli = Cli::new(&paw, &["-w", "wf"]);
    cli.fails(&["base-ami", "update"], "workflow_param.json has no \"root_base_ami_filter\"");
    let filter =
        r#"    "root_base_ami_filter": {"name": "ubuntu/images/hvm-ssd/ubuntu-*", "owners": ["099720109477"]},"#;
    paw.edit("wf/workflow_param.json", "    \"instance_type\"", &format!("{filter}\n    \"instance_type\""));
    cli.run(&["build"]).success();
    let newest = cli.json(&["base-ami", "find", "--name", "ubuntu/images/hvm-ssd/ubuntu-*"])[0].clone();
    let newest_id = newest["id"].as_str().unwrap();
    assert_ne!(newest_id, ROOT_AMI);

    let status = cli.json(&["status"]);
    assert_eq!(field(&status, "state"), ["stale", "stale", "stale"]);
    let reason = status[0]["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with(&format!("root base superseded: {newest_id} (")), "{reason}");
    assert_eq!(status[1]["reasons"][0], "parent step1 is stale");

    let before = paw.read("wf/workflow_param.json");
    let dry = cli.run(&["base-ami", "update", "--dry-run"]);
    assert!(dry.success().stdout.contains(&format!("root_base_ami_id: {ROOT_AMI} → {newest_id}")), "{}", dry.stdout);
    assert_eq!(paw.read("wf/workflow_param.json"), before);
    cli.run(&["base-ami", "update"]).success();
    let after = paw.read("wf/workflow_param.json");
    let expected = before.replace(&format!("\"{ROOT_AMI}\""), &format!("\"{newest_id}\"")).replace(
        "\"ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721\"",
        &serde_json::to_string(newest["name"].as_str().unwrap()).unwrap(),
    );
    assert_eq!(after, expected, "only the two values change");
    assert!(after.contains("// Canonical's Ubuntu 16.04 image"), "comments stay");
    assert!(cli.run(&["base-ami", "update"]).success().stdout.starts_with("already newest"));
    let status = cli.json(&["status"]);
    assert!(status[0]["reasons"][0].as_str().unwrap().starts_with("base moved: "), "{status:#}");
    assert_eq!(cli.json(&["plan"])[0]["action"], "build");

    paw.edit("wf/workflow_param.json", r#""owners": ["099720109477"]"#, r#""owners": "099720109477""#);
    let run = cli.fails(&["status"], "\"root_base_ami_filter\" needs \"owners\"");
    assert!(run.stderr.contains("workflow_param.json:"), "{}", run.stderr);
}
