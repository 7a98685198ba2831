//! Every change to AWS planned whole, then applied (issue 34), on the emulator with the real packer:
//! an image that a channel points at and that was distributed to another region and two other
//! accounts is refused by `paw images delete` before anything is touched; `--dry-run` prints the
//! plan that `--force --reason` then carries out, every copy in every account and region; the
//! catalog and the channel say so. On the embedded catalog and on DynamoDB.

use serde_json::Value;

use crate::distribution::distributed;
use crate::emulator::Emulator;
use crate::lifecycle::Cli;

const OWN: &str = "123456789012";

/// The places the distributed chain's last image has a copy in: (account, region).
const PLACES: [(&str, &str); 4] =
    [(OWN, "us-east-1"), (OWN, "us-west-2"), ("222222222222", "eu-west-1"), ("333333333333", "eu-west-1")];

/// The image ids EC2 has in each place, and their states.
fn every_place(emulator: &Emulator) -> Vec<Value> {
    PLACES
        .iter()
        .map(|(account, region)| {
            let images = emulator.account_view(account, region, &[])["images"].clone();
            let ids: Vec<Value> = images
                .as_array()
                .unwrap()
                .iter()
                .map(|image| Value::from(format!("{} {}", image["id"], image["state"])))
                .collect();
            Value::from(ids)
        })
        .collect()
}

fn a_channels_image_is_refused_whole_then_deleted_everywhere(catalog: Option<&str>) {
    let emulator = Emulator::start();
    let paw = distributed(&emulator);
    let mut args = vec!["-w", "wf"];
    if let Some(catalog) = catalog {
        args.extend(["--catalog", catalog]);
    }
    let cli = Cli::new(&paw, &args);
    cli.run(&["build"]).success();
    cli.run(&["channel", "set", "prod", "step3"]).success();
    let record = cli.json(&["images", "show", "step3"]);
    let ami = record["ami_id"].as_str().unwrap().to_string();
    assert_eq!(emulator.ec2().deregistration_protection(&ami).as_deref(), Some("enabled"));
    let before = every_place(&emulator);

    // Refused before anything is touched, and it says how to move the channel first.
    let refused = cli.fails(
        &["images", "delete", "step3", "--delete-snapshots", "--yes"],
        &format!("channel prod of step \"step3\" (wf) points at {ami}; nothing was changed"),
    );
    assert!(refused.stderr.contains("`paw channel set prod step3 --workflow-id ID`"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--force --reason TEXT"), "{}", refused.stderr);
    assert_eq!(every_place(&emulator), before);
    assert_eq!(cli.json(&["images", "show", "step3"]), record);
    assert_eq!(cli.run(&["resolve", "step3", "--channel", "prod"]).success().stdout.trim(), ami);
    // --force needs a reason.
    let no_reason = cli.run(&["images", "delete", "step3", "--force", "--yes"]);
    assert_eq!(no_reason.code, 2, "{}", no_reason.stderr);
    assert!(no_reason.stderr.contains("--reason"), "{}", no_reason.stderr);

    // The plan, then the same plan applied.
    let forced = ["images", "delete", "step3", "--delete-snapshots", "--force", "--reason", "CVE-2026-0001"];
    let planned = cli.json(&[&forced[..], &["--dry-run"]].concat());
    assert_eq!(planned["dry_run"], true);
    assert_eq!(every_place(&emulator), before, "a dry run changes nothing");
    let text = cli.run(&[&forced[..], &["--dry-run"]].concat());
    assert!(text.success().stdout.contains("dry run: nothing was changed"), "{}", text.stdout);
    let applied = cli.json(&[&forced[..], &["--yes"]].concat());
    assert_eq!(applied["actions"], planned["actions"]);
    let verbs: Vec<&str> =
        planned["actions"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(
        verbs,
        [
            "deregister",
            "forget_copy",
            "deregister",
            "forget_copy",
            "deregister",
            "forget_copy",
            "unprotect",
            "deregister",
            "mark_deregistered",
            "clear_channel",
        ],
        "{planned:#}"
    );
    assert_eq!(applied["deleted_snapshots"].as_array().unwrap().len(), 4, "{applied:#}");

    // Every copy is gone, in every account and region; the catalog and the channel say so.
    let ids: Vec<&str> = std::iter::once(ami.as_str())
        .chain(record["copies"].as_object().unwrap().values().map(|id| id.as_str().unwrap()))
        .collect();
    for (place, images) in PLACES.iter().zip(every_place(&emulator)) {
        for id in &ids {
            assert!(!images.to_string().contains(id), "{id} is still in {place:?}: {images}");
        }
    }
    for snapshot in applied["deleted_snapshots"].as_array().unwrap() {
        assert!(!emulator.ec2().own_snapshots().contains(&snapshot.as_str().unwrap().to_string()));
    }
    let after = cli.json(&["images", "show", "step3"]);
    assert_eq!(after["status"], "deregistered");
    assert_eq!(after["copies"], serde_json::json!({}));
    cli.fails(&["resolve", "step3", "--channel", "prod"], &format!("points at nothing: its image {ami} was deleted"));
    let history = cli.json(&["channel", "history", "prod", "step3"]);
    assert_eq!(history[0]["action"], "deleted", "{history:#}");
    assert_eq!(history[0]["reason"], "CVE-2026-0001");
    assert_eq!(history[0]["ami_id"], ami.as_str());

    // Run again: nothing is left to do.
    cli.fails(&forced, "is already deregistered, in every place");
}

#[test]
fn a_channels_distributed_image_is_refused_whole_then_deleted_everywhere() {
    a_channels_image_is_refused_whole_then_deleted_everywhere(None);
}

#[test]
fn a_channels_distributed_image_is_refused_whole_then_deleted_everywhere_on_dynamodb() {
    a_channels_image_is_refused_whole_then_deleted_everywhere(Some("dynamodb:paw-plans"));
}
