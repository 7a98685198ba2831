//! What every catalog backend must do, as one suite that each backend's tests run against it.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Catalog, ChannelEntry, ImageRecord, ImageStatus, InFlight, Recorded};
use crate::error::ErrorKind;

/// A record with recognisable values; `create_at` decides the order of listings.
pub fn sample_record(workflow_id: &str, step_id: &str, ami_id: &str, create_at: &str) -> ImageRecord {
    ImageRecord {
        workflow_id: workflow_id.into(),
        step_id: step_id.into(),
        ami_id: ami_id.into(),
        ami_name: format!("base/{workflow_id}/{step_id}"),
        create_at: create_at.into(),
        aws_console_url: format!(
            "https://us-east-1.console.aws.amazon.com/ec2/home?region=us-east-1#ImageDetails:imageId={ami_id}"
        ),
        base_ami_id: "ami-base".into(),
        base_ami_name: "base".into(),
        root_base_ami_id: "ami-root".into(),
        root_base_ami_name: "root".into(),
        details: json!({"id": ami_id, "tags": {"b": "1", "a": "2"}, "data": {"ImageId": ami_id, "Nested": [1, null]}}),
        metadata: json!({"what": "it's \"quoted\"", "n": 1}).as_object().unwrap().clone(),
        region: "us-east-1".into(),
        status: ImageStatus::Available,
        fingerprint: Some(format!("fp-{step_id}")),
        fingerprint_inputs: Some([("templates/.pkr.hcl".to_string(), "abc".to_string())].into()),
        reused_from: None,
        from_instance: None,
        copies: [("us-west-2".to_string(), format!("{ami_id}-west"))].into(),
        revoked_reason: None,
        revoked_at: None,
    }
}

/// Runs the suite. `prefix` keeps its workflow ids apart from anything else in the catalog;
/// `other` is a second handle on the same catalog, as a second paw process would have.
pub async fn check(catalog: &dyn Catalog, other: &dyn Catalog, prefix: &str) {
    let (wf_a, wf_b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    assert!(!catalog.schema().await.unwrap().is_empty());
    assert_eq!(catalog.get(&wf_a, "s1").await.unwrap(), None);
    assert!(catalog.list_workflow(&wf_a).await.unwrap().is_empty());

    let r1 = sample_record(&wf_a, "s1", "ami-1", "2026-01-01T00:00:01.000000+0000");
    let r2 = sample_record(&wf_a, "s2", "ami-2", "2026-01-01T00:00:02.000000+0000");
    let mut r3 = sample_record(&wf_b, "s1", "ami-3", "2026-01-01T00:00:03.000000+0000");
    r3.reused_from = Some(wf_a.clone());
    r3.from_instance = Some("i-0123".into());
    r3.fingerprint = None;
    r3.fingerprint_inputs = None;
    for record in [&r1, &r2, &r3] {
        catalog.record(record).await.unwrap();
    }
    assert_eq!(catalog.get(&wf_a, "s1").await.unwrap().as_ref(), Some(&r1));
    assert_eq!(other.get(&wf_b, "s1").await.unwrap().as_ref(), Some(&r3));

    let ids = |records: Vec<ImageRecord>| records.into_iter().map(|r| r.ami_id).collect::<Vec<_>>();
    assert_eq!(ids(catalog.list_workflow(&wf_a).await.unwrap()), ["ami-2", "ami-1"]);
    let across: Vec<_> = ids(catalog.list_step("s1").await.unwrap());
    let ours: Vec<_> = across.iter().filter(|id| *id == "ami-1" || *id == "ami-3").collect();
    assert_eq!(ours, ["ami-3", "ami-1"], "newest first");

    // By fingerprint, newest first; records without one are not found.
    let mut r4 = sample_record(&wf_b, "s2", "ami-4", "2026-01-01T00:00:04.000000+0000");
    r4.fingerprint = r1.fingerprint.clone();
    catalog.record(&r4).await.unwrap();
    let fingerprint = r1.fingerprint.clone().unwrap();
    let same: Vec<_> = ids(catalog.find_by_fingerprint(&fingerprint).await.unwrap())
        .into_iter()
        .filter(|id| id == "ami-1" || id == "ami-4")
        .collect();
    assert_eq!(same, ["ami-4", "ami-1"]);

    // An available record is never overwritten.
    let again = sample_record(&wf_a, "s1", "ami-9", "2026-01-01T00:00:09.000000+0000");
    let err = catalog.record(&again).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Catalog);
    assert!(err.message.contains("already has AMI ami-1"), "{}", err.message);
    assert_eq!(catalog.get(&wf_a, "s1").await.unwrap().unwrap().ami_id, "ami-1");

    // A deregistered one stays until a new AMI of the step replaces it.
    catalog.mark_deregistered(&wf_a, "s1").await.unwrap();
    assert_eq!(catalog.get(&wf_a, "s1").await.unwrap().unwrap().status, ImageStatus::Deregistered);
    catalog.record(&again).await.unwrap();
    assert_eq!(catalog.get(&wf_a, "s1").await.unwrap().unwrap().ami_id, "ami-9");

    // try_record says so, with the record that is there.
    let taken = catalog.try_record(&again).await.unwrap();
    assert_eq!(taken, Recorded::Taken(Box::new(catalog.get(&wf_a, "s1").await.unwrap().unwrap())));

    // A second process that recorded the same step a moment later is told, and changes nothing.
    // (Each backend's own tests race real concurrent writers where the backend is the real thing.)
    let first = sample_record(&wf_b, "race", "ami-first", "2026-01-01T00:00:10.000000+0000");
    let second = sample_record(&wf_b, "race", "ami-second", "2026-01-01T00:00:10.000000+0000");
    catalog.record(&first).await.unwrap();
    let err = other.record(&second).await.unwrap_err();
    assert!(err.message.contains("already has AMI ami-first"), "{}", err.message);
    assert_eq!(catalog.get(&wf_b, "race").await.unwrap().unwrap().ami_id, "ami-first");

    check_journal(catalog, other, &wf_a, &wf_b).await;
    check_lineage_and_revocation(catalog, other, prefix).await;
    let copies =
        [("eu-west-1".to_string(), "ami-eu".to_string()), ("us-west-2".to_string(), "ami-w".to_string())].into();
    catalog.set_copies(&wf_b, "race", &copies).await.unwrap();
    assert_eq!(other.get(&wf_b, "race").await.unwrap().unwrap().copies, copies);
    check_channels(catalog, other, prefix).await;
    check_missing_record(catalog, prefix).await;
}

/// Records by AMI and by base AMI; revoking and restoring keeps the reason only while revoked.
async fn check_lineage_and_revocation(catalog: &dyn Catalog, other: &dyn Catalog, prefix: &str) {
    let (wf_c, wf_d) = (format!("{prefix}-c"), format!("{prefix}-d"));
    let ami = format!("ami-{prefix}-lineage");
    let parent = sample_record(&wf_c, "p", &format!("{ami}-parent"), "2026-01-02T00:00:01.000000+0000");
    let mut child = sample_record(&wf_c, "c", &ami, "2026-01-02T00:00:02.000000+0000");
    child.base_ami_id = parent.ami_id.clone();
    let mut reuse = child.clone();
    reuse.workflow_id = wf_d.clone();
    reuse.create_at = "2026-01-02T00:00:03.000000+0000".into();
    reuse.reused_from = Some(wf_c.clone());
    for record in [&parent, &child, &reuse] {
        catalog.record(record).await.unwrap();
    }
    let workflows = |records: Vec<ImageRecord>| records.into_iter().map(|r| r.workflow_id).collect::<Vec<_>>();
    assert_eq!(workflows(other.find_by_ami(&ami).await.unwrap()), [wf_d.clone(), wf_c.clone()], "newest first");
    assert_eq!(workflows(other.find_by_base(&parent.ami_id).await.unwrap()), [wf_d.clone(), wf_c.clone()]);
    assert!(other.find_by_ami("ami-none").await.unwrap().is_empty());

    catalog
        .set_status(&wf_c, "c", ImageStatus::Revoked, Some(("CVE-1", "2026-01-03T00:00:00.000000+0000")))
        .await
        .unwrap();
    let revoked = other.get(&wf_c, "c").await.unwrap().unwrap();
    assert_eq!(revoked.status, ImageStatus::Revoked);
    assert_eq!((revoked.revoked_reason.as_deref(), revoked.revoked_at.is_some()), (Some("CVE-1"), true));
    // A revoked record is not overwritten by a new AMI either: only a deregistered one is.
    assert!(matches!(catalog.try_record(&child).await.unwrap(), Recorded::Taken(_)));
    catalog.set_status(&wf_c, "c", ImageStatus::Available, None).await.unwrap();
    let restored = other.get(&wf_c, "c").await.unwrap().unwrap();
    assert_eq!((restored.status, restored.revoked_reason, restored.revoked_at), (ImageStatus::Available, None, None));
}

/// Channel entries: one per number, history newest first, updates in place, never records.
async fn check_channels(catalog: &dyn Catalog, other: &dyn Catalog, prefix: &str) {
    let channel = format!("{prefix}-prod");
    let entry = |seq: u64, ami_id: &str| ChannelEntry {
        channel: channel.clone(),
        step_id: "s1".into(),
        seq,
        ami_id: ami_id.into(),
        workflow_id: format!("{prefix}-a"),
        set_at: "2026-01-04T00:00:00.000000+0000".into(),
        ssm_parameter: Some("/paw/s1".into()),
        rolled_back: false,
    };
    assert!(catalog.add_channel_entry(&entry(1, "ami-1")).await.unwrap());
    assert!(!other.add_channel_entry(&entry(1, "ami-9")).await.unwrap(), "the number is taken");
    assert!(other.add_channel_entry(&entry(2, "ami-2")).await.unwrap());
    let mut second = entry(2, "ami-2");
    second.rolled_back = true;
    catalog.update_channel_entry(&second).await.unwrap();
    let history = other.channel_history(&channel, "s1").await.unwrap();
    assert_eq!(history, [second, entry(1, "ami-1")]);
    assert_eq!(ChannelEntry::current(&history), Some(&entry(1, "ami-1")));
    assert!(other.channel_history(&channel, "s2").await.unwrap().is_empty());
    let all = catalog.channel_entries().await.unwrap();
    assert_eq!(all.iter().filter(|listed| listed.channel == channel).count(), 2);
    assert!(catalog.list_step("s1").await.unwrap().iter().all(|record| record.ami_id.starts_with("ami-")));
    let gone = catalog.update_channel_entry(&entry(9, "ami-9")).await.unwrap_err();
    assert_eq!(gone.to_string(), super::missing_channel_entry(&entry(9, "ami-9")).to_string());
    assert!(other.channel_history(&channel, "s1").await.unwrap().iter().all(|listed| listed.seq != 9), "not created");
}

/// A change to a record the catalog does not have is an error, and creates nothing.
async fn check_missing_record(catalog: &dyn Catalog, prefix: &str) {
    let workflow_id = format!("{prefix}-missing");
    let expected = super::missing_record(&workflow_id, "nowhere").to_string();
    let status = catalog.set_status(&workflow_id, "nowhere", ImageStatus::Deregistered, None).await.unwrap_err();
    assert_eq!(status.to_string(), expected);
    let copies = BTreeMap::from([("eu-west-1".to_string(), "ami-copy".to_string())]);
    let copied = catalog.set_copies(&workflow_id, "nowhere", &copies).await.unwrap_err();
    assert_eq!(copied.to_string(), expected);
    assert!(catalog.list_workflow(&workflow_id).await.unwrap().is_empty(), "nothing was created");
}

fn journal_entry(workflow_id: &str, step_id: &str, run_id: &str) -> InFlight {
    InFlight {
        workflow_id: workflow_id.into(),
        step_id: step_id.into(),
        run_id: run_id.into(),
        host: "host-a".into(),
        pid: 42,
        pid_started: Some(7),
        since: "2026-01-01T00:00:00.000000+0000".into(),
        expires_at: 1_000,
        ami_name: format!("base/{workflow_id}/{step_id}"),
        source_ami_id: "ami-base".into(),
        source_ami_name: "base".into(),
        build: None,
        resources: Default::default(),
    }
}

/// The build journal: one holder per step, conditional on the run, invisible to the records.
async fn check_journal(catalog: &dyn Catalog, other: &dyn Catalog, wf_a: &str, wf_b: &str) {
    let mine = journal_entry(wf_a, "s1", "run-1");
    let theirs = journal_entry(wf_a, "s1", "run-2");
    assert_eq!(catalog.begin_build(&mine).await.unwrap(), None);
    assert_eq!(other.begin_build(&theirs).await.unwrap(), Some(mine.clone()), "the step is held");
    assert!(!other.renew_build(&theirs).await.unwrap(), "only the holder renews");
    other.end_build(&theirs).await.unwrap();
    let mut renewed = mine.clone();
    renewed.expires_at = 2_000;
    renewed.resources.instances.push("i-1".into());
    assert!(catalog.renew_build(&renewed).await.unwrap());
    catalog.begin_build(&journal_entry(wf_b, "s1", "run-3")).await.unwrap();
    assert_eq!(other.builds_in_flight(wf_a).await.unwrap(), [renewed.clone()]);
    // Journal entries are not records.
    assert!(catalog.list_workflow(wf_a).await.unwrap().iter().all(|record| record.ami_id.starts_with("ami-")));
    assert!(catalog.list_step("s1").await.unwrap().iter().all(|record| record.ami_id.starts_with("ami-")));
    catalog.end_build(&renewed).await.unwrap();
    assert!(catalog.builds_in_flight(wf_a).await.unwrap().is_empty());
    assert_eq!(other.begin_build(&theirs).await.unwrap(), None, "free again");
    other.end_build(&theirs).await.unwrap();
    catalog.end_build(&journal_entry(wf_b, "s1", "run-3")).await.unwrap();
}
