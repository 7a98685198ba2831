//! Every copy in every region, on the emulator with the real packer: packer's `ami_regions`,
//! `paw images copy`, `share`, and the operations that act on every copy.

use crate::emulator::Emulator;
use crate::harness::{Paw, planned_actions};

fn show(paw: &Paw, step: &str) -> serde_json::Value {
    paw.run(&["-w", "wf", "images", "show", step, "--json"]).success().json()
}

/// Step1's template gets packer's `ami_regions = ["us-west-2"]`.
pub fn copy_step1_to_us_west_2(paw: &Paw) {
    paw.edit(
        "wf/step1/templates/.pkr.hcl",
        "  source_ami    = var.source_ami_id\n",
        "  source_ami    = var.source_ami_id\n  ami_regions   = [\"us-west-2\"]\n",
    );
}

#[test]
fn copies_in_every_region_are_tagged_recorded_shared_revoked_and_deleted() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    copy_step1_to_us_west_2(&paw);
    paw.run(&["-w", "wf", "build"]).success();

    // packer's copy: tagged and recorded like the original.
    let step1 = show(&paw, "step1");
    let west = step1["copies"]["us-west-2"].as_str().unwrap_or_else(|| panic!("{step1:#}")).to_string();
    let west_ec2 = emulator.ec2_in("us-west-2");
    let (tags, snapshots) = west_ec2.image(&west).unwrap();
    assert_eq!((tags["paw:step_id"].as_str(), tags["Name"].as_str()), ("step1", step1["ami_name"].as_str().unwrap()));
    assert!(!snapshots.is_empty());
    assert!(snapshots.iter().all(|snapshot| west_ec2.snapshot(snapshot).unwrap()["paw:step_id"] == "step1"));
    let list = paw.run(&["-w", "wf", "images", "list"]);
    assert!(list.success().stdout.contains(&format!("us-west-2:{west}")), "{}", list.stdout);
    assert_eq!(paw.run(&["-w", "wf", "resolve", "step1", "--region", "us-west-2"]).success().stdout.trim(), west);
    let run = paw.run(&["-w", "wf", "resolve", "step1", "--region", "eu-west-1"]);
    assert!(run.code == 2 && run.stderr.contains("has no copy in eu-west-1"), "{}", run.stderr);

    // paw's own copy. A region EC2 does not know refuses the whole copy: nothing is made.
    let step3 = show(&paw, "step3")["ami_id"].as_str().unwrap().to_string();
    let eu_ec2 = emulator.ec2_in("eu-west-1");
    let run =
        paw.run(&["-w", "wf", "images", "copy", "step3", "--to-region", "eu-west-1", "--to-region", "xx-nowhere-1"]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("\"xx-nowhere-1\" is not an EC2 region; nothing was changed"), "{}", run.stderr);
    assert!(show(&paw, "step3")["copies"].as_object().unwrap().is_empty() && eu_ec2.own_images().is_empty());
    // The plan the dry run prints is what the copy then does.
    let copy =
        ["-w", "wf", "--json", "images", "copy", "step3", "--to-region", "eu-west-1", "--to-region", "us-east-1"];
    let planned = paw.run(&[&copy[..], &["--dry-run"]].concat()).success().json();
    let actions = planned_actions(&planned);
    assert_eq!(
        actions,
        [("copy".to_string(), "eu-west-1".to_string())],
        "us-east-1 is the image's own region: {planned:#}"
    );
    assert!(eu_ec2.own_images().is_empty(), "a dry run");
    let done = paw.run(&copy).success().json();
    let results: Vec<(&str, &str)> = done
        .as_array()
        .unwrap()
        .iter()
        .map(|copied| (copied["region"].as_str().unwrap(), copied["result"].as_str().unwrap()))
        .collect();
    assert_eq!(results, [("eu-west-1", "copied"), ("us-east-1", "already there")], "{done:#}");
    let eu = show(&paw, "step3")["copies"]["eu-west-1"].as_str().unwrap().to_string();
    let (tags, eu_snapshots) = eu_ec2.image(&eu).unwrap();
    assert_eq!(tags["paw:step_id"], "step3");
    assert!(eu_snapshots.iter().all(|snapshot| eu_ec2.snapshot(snapshot).unwrap()["paw:step_id"] == "step3"));
    let again = paw.run(&["-w", "wf", "images", "copy", "step3", "--to-region", "eu-west-1"]);
    assert!(again.success().stdout.contains(&format!("eu-west-1: already there {eu}")), "{}", again.stdout);
    assert_eq!(eu_ec2.own_images().len(), 1, "no second copy");

    // Sharing: every copy, and its snapshots, planned, then done; then withdrawn.
    let account = "111122223333";
    let share = ["-w", "wf", "--json", "images", "share", "step1", "--account", account];
    let planned = paw.run(&[&share[..], &["--dry-run"]].concat()).success().json();
    let places: Vec<&str> =
        planned["actions"].as_array().unwrap().iter().map(|a| a["place"].as_str().unwrap()).collect();
    assert_eq!(places, ["us-east-1", "us-west-2"], "{planned:#}");
    assert!(west_ec2.launch_permissions(&west).is_empty(), "a dry run");
    let shared = paw.run(&share).success().json();
    let regions: Vec<&str> = shared.as_array().unwrap().iter().map(|s| s["region"].as_str().unwrap()).collect();
    assert_eq!(regions, places, "{shared:#}");
    let again = paw.run(&[&share[..], &["--dry-run"]].concat()).success().json();
    assert_eq!(again["actions"], serde_json::json!([]), "shared already");
    let east_ec2 = emulator.ec2();
    let east = step1["ami_id"].as_str().unwrap();
    for (ec2, ami) in [(&east_ec2, east), (&west_ec2, west.as_str())] {
        assert_eq!(ec2.launch_permissions(ami), [account]);
        for snapshot in ec2.image(ami).unwrap().1 {
            assert_eq!(ec2.create_volume_permissions(&snapshot), [account]);
        }
    }
    paw.run(&["-w", "wf", "images", "share", "step1", "--account", account, "--remove"]).success();
    assert!(west_ec2.launch_permissions(&west).is_empty());
    let run = paw.run(&["-w", "wf", "images", "share", "step1", "--account", "12345"]);
    assert!(run.code == 2 && run.stderr.contains("\"12345\" is not an AWS account id"), "{}", run.stderr);

    // Revocation disables every copy; restoring enables them again.
    paw.run(&["-w", "wf", "images", "revoke", "step1", "--reason", "test", "--yes"]).success();
    assert_eq!(west_ec2.image_state(&west).as_deref(), Some("disabled"));
    paw.run(&["-w", "wf", "images", "restore", "step1"]).success();
    assert_eq!(west_ec2.image_state(&west).as_deref(), Some("available"));

    // Deleting leaves no AMI and no snapshot in any region.
    let east_snapshots = east_ec2.image(&step3).unwrap().1;
    paw.run(&["-w", "wf", "images", "delete", "step3", "--delete-snapshots", "--yes"]).success();
    assert!(east_ec2.image(&step3).is_none() && eu_ec2.image(&eu).is_none());
    for snapshot in east_snapshots.iter().chain(&eu_snapshots) {
        assert!(east_ec2.snapshot(snapshot).is_none() && eu_ec2.snapshot(snapshot).is_none(), "{snapshot}");
    }
}
