//! The DynamoDB catalog on the emulator: the catalog suite, whole builds, the seed's own model
//! reading and writing the same table, and migration both ways.

use paw_aws::dynamodb::DynamoCatalog;
use paw_core::catalog::Records as _;

use crate::emulator::Emulator;
use crate::harness::Paw;

const TABLE: &str = "packer_ami_workflow_example";

#[test]
fn dynamodb_passes_the_catalog_suite() {
    let emulator = Emulator::start();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let config = emulator.sdk_config().await;
        let notices = std::sync::Mutex::new(Vec::new());
        let notice = |text: &str| notices.lock().unwrap().push(text.to_string());
        let catalog = DynamoCatalog::open(&config, TABLE, &notice).await.unwrap();
        let other = DynamoCatalog::open(&config, TABLE, &notice).await.unwrap();
        assert_eq!(*notices.lock().unwrap(), [format!("created the DynamoDB table {TABLE} (PAY_PER_REQUEST)")]);
        paw_core::catalog::conformance::check(&catalog, &other, "suite").await;
    });
}

#[test]
fn the_chain_builds_with_a_dynamodb_catalog_that_the_seed_reads() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    let catalog = format!("dynamodb:{TABLE}");
    let run = paw.run(&["-w", "wf", "--catalog", &catalog, "build"]);
    run.success();
    assert!(run.stderr.contains(&format!("paw: created the DynamoDB table {TABLE}")), "{}", run.stderr);
    assert!(!paw.path("wf/.paw/catalog.sqlite").exists());
    let records = paw.run(&["-w", "wf", "--catalog", &catalog, "images", "list", "--json"]).success().json();
    let steps: Vec<_> = records.as_array().unwrap().iter().map(|r| r["step_id"].as_str().unwrap()).collect();
    assert_eq!(steps, ["step3", "step2", "step1"]);

    // The seed's AmiData.get_image reads what paw wrote.
    let seed = emulator.seed_catalog(&[TABLE, "read", "paw-2024-06-13-12-00-00", "step2"]);
    let seed: serde_json::Value = serde_json::from_str(&seed).unwrap();
    let step2 = &records[1];
    for field in [
        "ami_id",
        "ami_name",
        "aws_console_url",
        "base_ami_id",
        "base_ami_name",
        "root_base_ami_id",
        "details",
        "metadata",
    ] {
        assert_eq!(seed[field], step2[field], "{field}");
    }
    assert_eq!(seed["metadata"]["what_is_included"], "the libraries the application needs");
    // The same instant, in Python's spelling.
    let create_at = step2["create_at"].as_str().unwrap();
    assert_eq!(seed["create_at"].as_str().unwrap().replace("+00:00", "+0000"), create_at);
}

#[test]
fn items_the_seed_wrote_are_listed_by_paw() {
    let emulator = Emulator::start();
    emulator.seed_catalog(&[TABLE, "write", "wf-seed", "step1", "ami-0000000000000aaa1"]);
    emulator.seed_catalog(&[TABLE, "write", "wf-seed", "step2", "ami-0000000000000aaa2"]);
    let paw = emulator.configure(Paw::example("chain"));
    let catalog = format!("dynamodb:{TABLE}");
    let run = paw.run(&["-w", "wf", "--catalog", &catalog, "images", "list", "--workflow-id", "wf-seed", "--json"]);
    let records = run.success().json();
    assert!(
        run.stderr.contains(&format!("paw: added the index paw_workflow_id_index to the DynamoDB table {TABLE}")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("paw_fingerprint_index"));
    let amis: Vec<_> = records.as_array().unwrap().iter().map(|r| r["ami_id"].as_str().unwrap()).collect();
    assert_eq!(amis, ["ami-0000000000000aaa2", "ami-0000000000000aaa1"]);
    assert_eq!(records[0]["status"], "available");
    assert_eq!(records[0]["region"], "us-east-1");
    assert_eq!(records[0]["metadata"]["written_by"], "the seed");
    assert!(run.stderr.contains("paw_workflow_name_index"));
    // The indexes are added once. The seed's items belong to no workflow name: a step's images of
    // this folder's name do not include them until they are adopted.
    let run = paw.run(&["-w", "wf", "--catalog", &catalog, "images", "list", "--step", "step1", "--json"]);
    assert_eq!(run.success().json(), serde_json::json!([]));
    assert!(!run.stderr.contains("added the index"), "{}", run.stderr);
    let candidates = paw.run(&["-w", "wf", "--catalog", &catalog, "catalog", "adopt"]).success().stdout.clone();
    assert!(candidates.contains("workflow wf-seed: step1, step2"), "{candidates}");
    let adopted = paw.run(&["-w", "wf", "--catalog", &catalog, "catalog", "adopt", "wf-seed"]).success().stdout.clone();
    assert!(adopted.starts_with("adopted 2 records into wf"), "{adopted}");
    let run = paw.run(&["-w", "wf", "--catalog", &catalog, "images", "list", "--step", "step1", "--json"]);
    assert_eq!(run.success().json()[0]["workflow_id"], "wf-seed");
    let resolved = paw.run(&["-w", "wf", "--catalog", &catalog, "resolve", "step2"]).success().stdout.clone();
    assert_eq!(resolved.trim(), "ami-0000000000000aaa2");
    // A seed item is never overwritten by paw.
    let shown =
        paw.run(&["-w", "wf", "--catalog", &catalog, "images", "show", "step2", "--workflow-id", "wf-seed", "--json"]);
    assert_eq!(shown.success().json()["ami_name"], "root/wf-seed/step2");
}

#[test]
fn the_catalog_key_in_workflow_param_chooses_dynamodb_and_the_command_line_wins() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.edit(
        "wf/workflow_param.json",
        "\"instance_type\"",
        &format!("\"catalog\": \"dynamodb:{TABLE}\", \"instance_type\""),
    );
    paw.run(&["-w", "wf", "build", "step1"]).success();
    let seed = emulator.seed_catalog(&[TABLE, "read", "paw-2024-06-13-12-00-00", "step1"]);
    assert!(seed.contains("\"step_id\": \"step1\""), "{seed}");
    let local = paw.run(&["-w", "wf", "--catalog", "sqlite:local.sqlite", "images", "list", "--json"]).success().json();
    assert_eq!(local, serde_json::json!([]));
}

/// A migration from the embedded catalog to DynamoDB and back keeps every record and every channel
/// entry (actor, reason, rollbacks): `resolve --channel` answers the same in all three catalogs.
#[test]
fn migrate_copies_records_and_channels_both_ways_once() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.run(&["-w", "wf", "build", "step1", "step2"]).success();
    for args in [
        &["channel", "set", "prod", "step1", "--reason", "first"][..],
        &["channel", "set", "prod", "step2"],
        &["channel", "set", "prod", "step2", "--reason", "again"],
        &["channel", "rollback", "prod", "step2", "--reason", "undo"],
    ] {
        paw.run(&[&["-w", "wf"][..], args].concat()).success();
    }
    let dynamo = format!("dynamodb:{TABLE}");
    let migrate = |from: &str, to: &str, more: &[&str]| {
        let args = [&["-w", "wf", "catalog", "migrate", "--from", from, "--to", to, "--json"][..], more].concat();
        paw.run(&args).success().json()
    };
    let planned = migrate("sqlite:wf/.paw/catalog.sqlite", &dynamo, &["--dry-run"]);
    assert_eq!((planned["copied"].as_u64(), planned["channel_entries"].as_u64()), (Some(2), Some(4)), "{planned:#}");
    let run = paw.run(&["-w", "wf", "--catalog", &dynamo, "images", "list", "--json"]);
    assert_eq!(run.success().json(), serde_json::json!([]), "a dry run writes nothing");
    let copied = migrate("sqlite:wf/.paw/catalog.sqlite", &dynamo, &[]);
    assert_eq!(copied["copied"], planned["copied"]);
    assert_eq!(copied["channel_entries"], planned["channel_entries"]);
    let again = migrate("sqlite:wf/.paw/catalog.sqlite", &dynamo, &[]);
    assert_eq!((again["copied"].as_u64(), again["already_there"].as_u64()), (Some(0), Some(2)));
    assert_eq!(
        (again["channel_entries"].as_u64(), again["channel_entries_already_there"].as_u64()),
        (Some(0), Some(4))
    );

    let back = migrate(&dynamo, "sqlite:copy.sqlite", &[]);
    assert_eq!((back["copied"].as_u64(), back["channel_entries"].as_u64()), (Some(2), Some(4)));
    let catalogs = ["sqlite:wf/.paw/catalog.sqlite", dynamo.as_str(), "sqlite:copy.sqlite"];
    let in_each = |args: &[&str]| -> Vec<serde_json::Value> {
        catalogs
            .iter()
            .map(|catalog| paw.run(&[&["-w", "wf", "--catalog", catalog][..], args].concat()).success().json())
            .collect()
    };
    let images = in_each(&["images", "list", "--json"]);
    assert!(images.iter().all(|list| *list == images[0]), "{images:#?}");
    for step in ["step1", "step2"] {
        let histories = in_each(&["channel", "history", "prod", step, "--json"]);
        assert!(histories.iter().all(|history| *history == histories[0]), "{histories:#?}");
        let resolved: Vec<String> = catalogs
            .iter()
            .map(|catalog| {
                paw.run(&["-w", "wf", "--catalog", catalog, "resolve", step, "--channel", "prod"])
                    .success()
                    .stdout
                    .clone()
            })
            .collect();
        assert!(resolved.iter().all(|ami| *ami == resolved[0] && ami.starts_with("ami-")), "{resolved:?}");
    }
    let history = &in_each(&["channel", "history", "prod", "step2", "--json"])[2];
    assert_eq!(history[0]["action"], "rollback");
    assert_eq!(history[0]["reason"], "undo");
    assert!(history[0]["set_by"].as_str().unwrap().contains('@'), "{history:#}");

    // A target whose channel history differs is refused whole: nothing copied.
    let other = ["-w", "wf", "--catalog", "sqlite:other.sqlite", "--workflow-id", "other"];
    paw.run(&[&other[..], &["build", "step1"]].concat()).success();
    paw.run(&[&other[..], &["channel", "set", "prod", "step1"]].concat()).success();
    let run =
        paw.run(&["-w", "wf", "catalog", "migrate", "--from", "sqlite:copy.sqlite", "--to", "sqlite:other.sqlite"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("entries that conflict with the source; nothing was copied"), "{}", run.stderr);
    let left = paw.run(&[&other[..], &["images", "list", "--json"]].concat()).success().json();
    assert_eq!(left.as_array().unwrap().len(), 1, "{left:#}");
    let history = paw.run(&[&other[..], &["channel", "history", "prod", "step1", "--json"]].concat()).success().json();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history:#}");

    // Without a workflow folder or --step, a DynamoDB source cannot say which steps it has.
    let bare = emulator.configure(Paw::new()).env("AWS_REGION", "us-east-1");
    let run = bare.run(&["catalog", "migrate", "--from", &dynamo, "--to", "sqlite:x.sqlite"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("cannot list its steps without scanning the table"), "{}", run.stderr);
    let run = bare.run(&["catalog", "migrate", "--from", &dynamo, "--to", "sqlite:x.sqlite", "--step", "step1"]);
    assert!(run.success().stdout.contains("copied from dynamodb:"), "{}", run.stdout);
}

#[test]
fn no_code_path_scans_a_table() {
    let source = include_str!("../../paw-aws/src/dynamodb.rs");
    assert!(!source.contains(".scan()") && !source.contains("Scan"), "the DynamoDB catalog must only Query");
}

#[test]
fn racing_writers_of_one_step_have_exactly_one_winner() {
    let emulator = Emulator::start();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let config = emulator.sdk_config().await;
        let quiet = |_: &str| {};
        let first = DynamoCatalog::open(&config, TABLE, &quiet).await.unwrap();
        let mut writers = Vec::new();
        for writer in 0..8 {
            let catalog = DynamoCatalog::open(&config, TABLE, &quiet).await.unwrap();
            let record = paw_core::catalog::conformance::sample_record(
                "wf",
                "race",
                &format!("ami-{writer}"),
                "2026-01-01T00:00:00.000000+0000",
            );
            writers.push(tokio::spawn(async move { catalog.record(&record).await }));
        }
        let mut wins = 0;
        let mut losses = Vec::new();
        for writer in writers {
            match writer.await.unwrap() {
                Ok(()) => wins += 1,
                Err(err) => losses.push(err.message),
            }
        }
        assert_eq!(wins, 1, "{losses:?}");
        let winner = first.get("wf", "race").await.unwrap().unwrap().ami_id;
        assert!(losses.iter().all(|loss| loss.contains(&format!("already has AMI {winner}"))), "{losses:?}");
    });
}

#[test]
fn a_missing_permission_is_named() {
    let emulator = Emulator::start_enforcing_iam();
    let (key, secret) = emulator.iam_user(&["dynamodb:DescribeTable", "ec2:DescribeImages"]);
    let paw =
        emulator.configure(Paw::example("chain")).env("AWS_ACCESS_KEY_ID", key).env("AWS_SECRET_ACCESS_KEY", secret);
    let run = paw.run(&["-w", "wf", "--catalog", &format!("dynamodb:{TABLE}"), "images", "list"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("error: dynamodb:CreateTable failed"), "{}", run.stderr);
    assert!(run.stderr.contains("help: the AWS credentials in use lack the permission dynamodb:CreateTable"));
    let run = paw.run(&["-w", "wf", "images", "from-instance", "step1", "--instance-id", "i-0123456789abcdef0"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("lack the permission ec2:DescribeInstances"), "{}", run.stderr);
    assert!(!run.stderr.contains(&secret_of(&paw)), "a secret was printed");
}

fn secret_of(paw: &Paw) -> String {
    paw.env_value("AWS_SECRET_ACCESS_KEY").expect("set above")
}
