//! What every catalog backend must do: one suite per part (records, build journal, channels),
//! each on the edges a backend can get wrong (a missing item, writers racing, results that span
//! pages), and `check`, which runs the three on one store with what holds across them. Each
//! backend's tests run `check` on it.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use serde_json::json;

use super::{
    BuildJournal, Catalog, ChannelAction, ChannelEntry, Channels, ImageRecord, ImageStatus, InFlight, Line, Recorded,
    Records, TestKind, TestResult, TestRun, Verdict,
};
use crate::error::ErrorKind;

/// A record with recognisable values; `create_at` decides the order of listings.
pub fn sample_record(workflow_id: &str, step_id: &str, ami_id: &str, create_at: &str) -> ImageRecord {
    ImageRecord {
        workflow_id: workflow_id.into(),
        workflow_name: Some("sample".into()),
        variant: None,
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
        root_base_ami_from: None,
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
        tests: Vec::new(),
        overrides: Vec::new(),
        provenance: None,
        sbom: None,
        copy_provenance: BTreeMap::new(),
    }
}

/// Runs the three suites on one store, and checks that its parts stay apart. `prefix` keeps the
/// suite's workflow ids apart from anything else in the catalog; `other` is a second handle on the
/// same catalog, as a second paw process would have.
pub async fn check(catalog: &dyn Catalog, other: &dyn Catalog, prefix: &str) {
    assert!(!catalog.schema().await.unwrap().is_empty());
    records(catalog, other, prefix).await;
    lines(catalog, other, prefix).await;
    tests(catalog, other, prefix).await;
    journal(catalog, other, prefix).await;
    channels(catalog, other, prefix).await;
    // Journal entries and channel entries (the channels suite's are of step s1) are not records.
    let building = journal_entry(&format!("{prefix}-parts"), "s1", "run-1");
    catalog.begin_build(&building).await.unwrap();
    assert!(catalog.list_workflow(&building.workflow_id).await.unwrap().is_empty());
    for listed in
        other.list_step("s1").await.unwrap().into_iter().filter(|listed| listed.workflow_id.starts_with(prefix))
    {
        assert_eq!(catalog.get(&listed.workflow_id, "s1").await.unwrap().as_ref(), Some(&listed));
    }
    catalog.end_build(&building).await.unwrap();
}

/// The records: written once per step unless deregistered, listed newest first across pages, and
/// changed only where they exist.
pub async fn records(catalog: &dyn Records, other: &dyn Records, prefix: &str) {
    let (wf_a, wf_b) = (format!("{prefix}-a"), format!("{prefix}-b"));
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

    // Recording the very same record again is a retry whose answer was lost: done, not a conflict.
    catalog.record(&r1).await.unwrap();
    other.record(&r1).await.unwrap();
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

    check_lineage_and_revocation(catalog, other, prefix).await;
    let copies =
        [("eu-west-1".to_string(), "ami-eu".to_string()), ("us-west-2".to_string(), "ami-w".to_string())].into();
    catalog.set_copies(&wf_b, "race", &copies).await.unwrap();
    assert_eq!(other.get(&wf_b, "race").await.unwrap().unwrap().copies, copies);
    catalog
        .set_provenance(&wf_b, "race", "{\"payload\":\"e30=\"}", Some("{\"spdxVersion\":\"SPDX-2.3\"}"))
        .await
        .unwrap();
    let attested = other.get(&wf_b, "race").await.unwrap().unwrap();
    assert_eq!(attested.provenance.as_deref(), Some("{\"payload\":\"e30=\"}"));
    assert_eq!(attested.sbom.as_deref(), Some("{\"spdxVersion\":\"SPDX-2.3\"}"));
    assert_eq!(attested.copies, copies, "the rest of the record is as it was");
    let statements = BTreeMap::from([("eu-west-1".to_string(), "{\"payload\":\"e30=\"}".to_string())]);
    catalog.set_copy_provenance(&wf_b, "race", &statements).await.unwrap();
    assert_eq!(other.get(&wf_b, "race").await.unwrap().unwrap().copy_provenance, statements);
    catalog.set_provenance(&wf_b, "race", "{}", None).await.unwrap();
    assert_eq!(other.get(&wf_b, "race").await.unwrap().unwrap().sbom, None, "a statement without an SBOM drops it");
    check_missing_record(catalog, prefix).await;
    check_racing_writers(catalog, other, prefix).await;
    check_paging(catalog, other, prefix).await;
}

/// Eight writers (two handles) record the same step at once: exactly one is written, and every
/// other is told which record won.
async fn check_racing_writers(catalog: &dyn Records, other: &dyn Records, prefix: &str) {
    let workflow_id = format!("{prefix}-racing");
    let attempts: Vec<ImageRecord> = (0..8)
        .map(|n| sample_record(&workflow_id, "s1", &format!("ami-racer-{n}"), "2026-01-05T00:00:00.000000+0000"))
        .collect();
    let results = join_all(attempts.iter().enumerate().map(|(n, record)| async move {
        let handle = if n % 2 == 0 { catalog } else { other };
        handle.try_record(record).await.unwrap()
    }))
    .await;
    let winner = catalog.get(&workflow_id, "s1").await.unwrap().unwrap();
    assert_eq!(results.iter().filter(|result| **result == Recorded::Written).count(), 1, "{results:?}");
    for result in &results {
        if let Recorded::Taken(existing) = result {
            assert_eq!(existing.ami_id, winner.ami_id);
        }
    }
}

/// More records than one answer holds (DynamoDB pages at 1 MB): every listing has them all, in
/// order.
async fn check_paging(catalog: &dyn Records, other: &dyn Records, prefix: &str) {
    const RECORDS: usize = 24;
    let step_id = format!("{prefix}-paged");
    let padding = "x".repeat(50_000);
    for n in 0..RECORDS {
        let mut record = sample_record(
            &format!("{prefix}-page-{n:02}"),
            &step_id,
            &format!("ami-page-{n:02}"),
            &format!("2026-01-06T00:00:{n:02}.000000+0000"),
        );
        record.fingerprint = Some(format!("fp-{step_id}"));
        record.details = json!({"padding": padding});
        catalog.record(&record).await.unwrap();
    }
    let newest_first: Vec<String> = (0..RECORDS).rev().map(|n| format!("ami-page-{n:02}")).collect();
    let ids = |records: Vec<ImageRecord>| records.into_iter().map(|r| r.ami_id).collect::<Vec<_>>();
    assert_eq!(ids(other.list_step(&step_id).await.unwrap()), newest_first);
    assert_eq!(ids(other.find_by_fingerprint(&format!("fp-{step_id}")).await.unwrap()), newest_first);
    assert!(other.find_by_base("ami-base").await.unwrap().len() >= RECORDS);
}

/// Records by AMI and by base AMI; revoking and restoring keeps the reason only while revoked.
async fn check_lineage_and_revocation(catalog: &dyn Records, other: &dyn Records, prefix: &str) {
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

/// Lines: two workflow names with the same step ids list apart; a record older than names is in
/// neither until `set_line` assigns it.
pub async fn lines(catalog: &dyn Records, other: &dyn Records, prefix: &str) {
    let line =
        |name: &str, variant: Option<&str>| Line { name: format!("{prefix}-{name}"), variant: variant.map(Into::into) };
    let (team_a, team_b, team_b_arm) = (line("team-a", None), line("team-b", None), line("team-b", Some("arm64")));
    let named = |workflow: &str, ami_id: &str, second: u32, line: Option<&Line>| {
        let mut record = sample_record(
            &format!("{prefix}-{workflow}"),
            "base",
            ami_id,
            &format!("2026-02-01T00:00:{second:02}.000000+0000"),
        );
        record.workflow_name = line.map(|line| line.name.clone());
        record.variant = line.and_then(|line| line.variant.clone());
        record
    };
    catalog.record(&named("a1", "ami-a1", 1, Some(&team_a))).await.unwrap();
    catalog.record(&named("b1", "ami-b1", 2, Some(&team_b))).await.unwrap();
    catalog.record(&named("b1-arm", "ami-b1-arm", 3, Some(&team_b_arm))).await.unwrap();
    catalog.record(&named("old", "ami-old", 4, None)).await.unwrap();
    let ids = |records: Vec<ImageRecord>| records.into_iter().map(|r| r.ami_id).collect::<Vec<_>>();
    assert_eq!(ids(other.list_line(&team_a, "base").await.unwrap()), ["ami-a1"]);
    assert_eq!(ids(other.list_line(&team_b, "base").await.unwrap()), ["ami-b1"]);
    assert_eq!(ids(other.list_line(&team_b_arm, "base").await.unwrap()), ["ami-b1-arm"]);
    assert_eq!(ids(other.list_name(&team_b.name).await.unwrap()), ["ami-b1-arm", "ami-b1"]);
    assert!(other.list_line(&team_a, "app").await.unwrap().is_empty());

    catalog.set_line(&format!("{prefix}-old"), "base", &team_a).await.unwrap();
    assert_eq!(ids(other.list_line(&team_a, "base").await.unwrap()), ["ami-old", "ami-a1"]);
    assert_eq!(other.get(&format!("{prefix}-old"), "base").await.unwrap().unwrap().line(), Some(team_a.clone()));
    catalog.set_line(&format!("{prefix}-old"), "base", &team_b_arm).await.unwrap();
    assert_eq!(ids(other.list_line(&team_b_arm, "base").await.unwrap()), ["ami-old", "ami-b1-arm"]);
    let missing = catalog.set_line(&format!("{prefix}-missing"), "nowhere", &team_a).await.unwrap_err();
    assert_eq!(missing.to_string(), super::missing_record(&format!("{prefix}-missing"), "nowhere").to_string());
}

/// A test run of `passed` tests named `name`.
pub fn sample_test_run(name: &str, passed: bool) -> TestRun {
    TestRun {
        at: "2026-03-01T00:00:00Z".into(),
        by: "paw test (me@here)".into(),
        tests_digest: "digest".into(),
        results: vec![TestResult {
            name: name.into(),
            kind: TestKind::Local,
            passed,
            seconds: 1.25,
            log: format!("/logs/{name}.log"),
            reason: (!passed).then(|| "exit status 1\nno \"agent\" running".to_string()),
        }],
    }
}

/// An image's test history: appended in order, with the status set in the same write, by racing
/// writers without a run lost; refused for a record that is not there. Its forced retirements too.
pub async fn tests(catalog: &dyn Records, other: &dyn Records, prefix: &str) {
    let workflow_id = format!("{prefix}-tested");
    catalog
        .record(&sample_record(&workflow_id, "base", "ami-tested", "2026-03-01T00:00:00.000000+0000"))
        .await
        .unwrap();
    catalog
        .add_test_run(&workflow_id, "base", &sample_test_run("boot", false), Some(ImageStatus::Failed))
        .await
        .unwrap();
    let failed = other.get(&workflow_id, "base").await.unwrap().unwrap();
    assert_eq!((failed.status, failed.verdict()), (ImageStatus::Failed, Verdict::Failed));
    assert_eq!(failed.tests, [sample_test_run("boot", false)]);
    assert_eq!(failed.test_badge().as_deref(), Some("failed: boot"));
    // Two paw processes testing at once: both runs are kept.
    let (first, second) = (sample_test_run("a", true), sample_test_run("b", true));
    let (one, two) = futures_util::future::join(
        catalog.add_test_run(&workflow_id, "base", &first, None),
        other.add_test_run(&workflow_id, "base", &second, None),
    )
    .await;
    one.unwrap();
    two.unwrap();
    catalog
        .add_test_run(&workflow_id, "base", &sample_test_run("boot", true), Some(ImageStatus::Available))
        .await
        .unwrap();
    let passed = other.get(&workflow_id, "base").await.unwrap().unwrap();
    let names: Vec<&str> = passed.tests.iter().map(|run| run.results[0].name.as_str()).collect();
    assert_eq!(names.len(), 4);
    assert_eq!((names[0], names[3]), ("boot", "boot"));
    assert!(names.contains(&"a") && names.contains(&"b"));
    assert_eq!((passed.status, passed.verdict()), (ImageStatus::Available, Verdict::Passed));
    let missing = catalog.add_test_run(&format!("{prefix}-missing"), "x", &first, None).await.unwrap_err();
    assert_eq!(missing.to_string(), super::missing_record(&format!("{prefix}-missing"), "x").to_string());

    // Forced retirements: appended, the status left alone, a repeated write once.
    let forced = |reason: &str| super::Override {
        at: "2026-03-02T00:00:00.000000+0000".into(),
        by: "me@host".into(),
        action: "delete".into(),
        reason: reason.into(),
        usage: "in use by 1 instance".into(),
    };
    for entry in [forced("CVE"), forced("CVE"), forced("replaced")] {
        catalog.add_override(&workflow_id, "base", &entry).await.unwrap();
    }
    let overridden = other.get(&workflow_id, "base").await.unwrap().unwrap();
    assert_eq!(overridden.overrides, [forced("CVE"), forced("replaced")]);
    assert_eq!((overridden.status, overridden.tests.len()), (ImageStatus::Available, 4));
    let missing = catalog.add_override(&format!("{prefix}-missing"), "x", &forced("CVE")).await.unwrap_err();
    assert_eq!(missing.to_string(), super::missing_record(&format!("{prefix}-missing"), "x").to_string());
}

/// Channel entries, an append-only log: one per number (also for writers racing), history newest
/// first, a rollback an entry of its own.
pub async fn channels(catalog: &dyn Channels, other: &dyn Channels, prefix: &str) {
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
        action: ChannelAction::Set,
        set_by: Some("ci@runner-1 (arn:aws:sts::123456789012:assumed-role/ci/1)".into()),
        reason: None,
        workflow_name: Some(format!("{prefix}-team")),
        variant: None,
    };
    let line = Line { name: format!("{prefix}-team"), variant: None };
    assert!(catalog.add_channel_entry(&entry(1, "ami-1")).await.unwrap());
    assert!(!other.add_channel_entry(&entry(1, "ami-9")).await.unwrap(), "the number is taken");
    assert!(other.add_channel_entry(&entry(2, "ami-2")).await.unwrap());
    // A rollback is an entry of its own: back to the image before, with why.
    let rollback =
        ChannelEntry { action: ChannelAction::Rollback, reason: Some("boot loop".into()), ..entry(3, "ami-1") };
    assert!(other.add_channel_entry(&rollback).await.unwrap());
    let history = other.channel_history(&line, &channel, "s1").await.unwrap();
    assert_eq!(history, [rollback.clone(), entry(2, "ami-2"), entry(1, "ami-1")]);
    assert_eq!(ChannelEntry::current(&history), Some(&rollback));
    let stack: Vec<&str> = ChannelEntry::stack(&history).iter().map(|entry| entry.ami_id.as_str()).collect();
    assert_eq!(stack, ["ami-1"], "nothing left to roll back to");
    assert!(other.channel_history(&line, &channel, "s2").await.unwrap().is_empty());
    let all = catalog.channel_entries().await.unwrap();
    assert_eq!(all.iter().filter(|listed| listed.channel == channel).count(), 3);

    let racers: Vec<ChannelEntry> = (0..8).map(|n| entry(4, &format!("ami-racer-{n}"))).collect();
    let added = join_all(racers.iter().enumerate().map(|(n, racer)| async move {
        let handle = if n % 2 == 0 { catalog } else { other };
        handle.add_channel_entry(racer).await.unwrap()
    }))
    .await;
    assert_eq!(added.iter().filter(|added| **added).count(), 1, "{added:?}");
    assert_eq!(other.channel_history(&line, &channel, "s1").await.unwrap().len(), 4);

    // The same channel and step of another line, of another variant, and older than names: apart.
    let variant = Line { variant: Some("arm64".into()), ..line.clone() };
    let other_line = Line { name: format!("{prefix}-team2"), variant: None };
    let in_line = |line: &Line, ami_id: &str| ChannelEntry {
        workflow_name: Some(line.name.clone()),
        variant: line.variant.clone(),
        ..entry(1, ami_id)
    };
    assert!(catalog.add_channel_entry(&in_line(&variant, "ami-arm")).await.unwrap());
    assert!(catalog.add_channel_entry(&in_line(&other_line, "ami-other")).await.unwrap());
    let unnamed = ChannelEntry { workflow_name: None, ..entry(1, "ami-unnamed") };
    assert!(catalog.add_channel_entry(&unnamed).await.unwrap());
    assert_eq!(other.channel_history(&variant, &channel, "s1").await.unwrap(), [in_line(&variant, "ami-arm")]);
    assert_eq!(other.channel_history(&other_line, &channel, "s1").await.unwrap(), [in_line(&other_line, "ami-other")]);
    assert_eq!(other.channel_history(&line, &channel, "s1").await.unwrap().len(), 4);
    let all = other.channel_entries().await.unwrap();
    assert!(all.contains(&unnamed), "entries older than names are listed, with no line");
}

/// A change to a record the catalog does not have is an error, and creates nothing.
async fn check_missing_record(catalog: &dyn Records, prefix: &str) {
    let workflow_id = format!("{prefix}-missing");
    let expected = super::missing_record(&workflow_id, "nowhere").to_string();
    let status = catalog.set_status(&workflow_id, "nowhere", ImageStatus::Deregistered, None).await.unwrap_err();
    assert_eq!(status.to_string(), expected);
    let copies = BTreeMap::from([("eu-west-1".to_string(), "ami-copy".to_string())]);
    let copied = catalog.set_copies(&workflow_id, "nowhere", &copies).await.unwrap_err();
    assert_eq!(copied.to_string(), expected);
    let attested = catalog.set_provenance(&workflow_id, "nowhere", "{}", None).await.unwrap_err();
    assert_eq!(attested.to_string(), expected);
    let attested = catalog.set_copy_provenance(&workflow_id, "nowhere", &copies).await.unwrap_err();
    assert_eq!(attested.to_string(), expected);
    assert!(catalog.list_workflow(&workflow_id).await.unwrap().is_empty(), "nothing was created");
}

/// A journal entry of another machine's run (`host-a`).
pub fn journal_entry(workflow_id: &str, step_id: &str, run_id: &str) -> InFlight {
    InFlight {
        workflow_id: workflow_id.into(),
        step_id: step_id.into(),
        run_id: run_id.into(),
        host: "host-a".into(),
        pid: 42,
        lock_path: Some("/tmp/paw-runs/run.lock".into()),
        since: "2026-01-01T00:00:00.000000+0000".into(),
        expires_at: 1_000,
        ami_name: format!("base/{workflow_id}/{step_id}"),
        source_ami_id: "ami-base".into(),
        source_ami_name: "base".into(),
        build: None,
        resources: Default::default(),
    }
}

/// The build journal: one holder per step (also for runs racing), renewed and ended only by its
/// run; a gone entry is neither renewed nor an error to end.
pub async fn journal(catalog: &dyn BuildJournal, other: &dyn BuildJournal, prefix: &str) {
    let (wf_a, wf_b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    let mine = journal_entry(&wf_a, "s1", "run-1");
    let theirs = journal_entry(&wf_a, "s1", "run-2");
    assert_eq!(catalog.begin_build(&mine).await.unwrap(), None);
    assert_eq!(other.begin_build(&theirs).await.unwrap(), Some(mine.clone()), "the step is held");
    assert!(!other.renew_build(&theirs).await.unwrap(), "only the holder renews");
    other.end_build(&theirs).await.unwrap();
    let mut renewed = mine.clone();
    renewed.expires_at = 2_000;
    renewed.resources.instances.push("i-1".into());
    assert!(catalog.renew_build(&renewed).await.unwrap());
    catalog.begin_build(&journal_entry(&wf_b, "s1", "run-3")).await.unwrap();
    assert_eq!(other.builds_in_flight(&wf_a).await.unwrap(), [renewed.clone()]);
    catalog.end_build(&renewed).await.unwrap();
    assert!(catalog.builds_in_flight(&wf_a).await.unwrap().is_empty());
    assert!(!catalog.renew_build(&renewed).await.unwrap(), "a gone entry is not renewed");
    assert!(catalog.builds_in_flight(&wf_a).await.unwrap().is_empty(), "nor written again");
    catalog.end_build(&renewed).await.unwrap();
    assert_eq!(other.begin_build(&theirs).await.unwrap(), None, "free again");
    other.end_build(&theirs).await.unwrap();
    catalog.end_build(&journal_entry(&wf_b, "s1", "run-3")).await.unwrap();

    let racers: Vec<InFlight> = (0..8).map(|n| journal_entry(&wf_a, "raced", &format!("run-{n}"))).collect();
    let holders = join_all(racers.iter().enumerate().map(|(n, racer)| async move {
        let handle = if n % 2 == 0 { catalog } else { other };
        handle.begin_build(racer).await.unwrap()
    }))
    .await;
    let winners: Vec<&InFlight> =
        racers.iter().zip(&holders).filter(|(_, holder)| holder.is_none()).map(|(racer, _)| racer).collect();
    let [winner] = winners.as_slice() else { panic!("{} runs took the lease: {holders:?}", winners.len()) };
    assert!(holders.iter().flatten().all(|holder| holder.run_id == winner.run_id));
    catalog.end_build(winner).await.unwrap();
}
