//! `paw catalog migrate`: everything a catalog holds, from one catalog to another: every record of
//! some steps (with its test history) and every channel entry (the whole audit log). Planned whole
//! from both catalogs' contents, then applied: a target that holds anything that conflicts refuses
//! the migration before anything is written, and a second run copies nothing twice.

use std::collections::HashMap;

use serde::Serialize;

use super::{Catalog, ChannelEntry, ImageRecord, ImageStatus, Recorded, TestRun, conflict_error};
use crate::error::{Error, ErrorKind, Result};

/// What a migration copies, and what it leaves because the target has it already.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct MigratePlan {
    /// Records the target lacks, written whole (their test history with them).
    pub records: Vec<ImageRecord>,
    /// Records the target has with the same AMI in another state (since deregistered, revoked or
    /// restored): the source's state is set.
    pub statuses: Vec<ImageRecord>,
    /// Test runs the target's record of the same AMI lacks, appended: (workflow id, step id, run).
    pub test_runs: Vec<(String, String, TestRun)>,
    /// Channel entries the target lacks.
    pub channel_entries: Vec<ChannelEntry>,
    /// Records and channel entries the target has already, the same.
    pub records_there: usize,
    pub channel_entries_there: usize,
    /// What the target holds otherwise: each refuses the migration.
    pub conflicts: Vec<String>,
}

impl MigratePlan {
    /// Records written or changed.
    pub fn records_copied(&self) -> usize {
        self.records.len() + self.statuses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.statuses.is_empty()
            && self.test_runs.is_empty()
            && self.channel_entries.is_empty()
    }
}

/// Reads both catalogs and plans the copy of every record of the given steps (across all
/// workflows) and of every channel entry. Changes nothing.
pub async fn plan_migration(from: &dyn Catalog, to: &dyn Catalog, step_ids: &[String]) -> Result<MigratePlan> {
    let mut records = Vec::new();
    for step_id in step_ids {
        for record in from.list_step(step_id).await? {
            let there = to.get(&record.workflow_id, &record.step_id).await?;
            records.push((record, there));
        }
    }
    let entries = from.channel_entries().await?;
    let target_entries = to.channel_entries().await?;
    Ok(decide(records, entries, &target_entries))
}

/// The plan, from each source record beside the target's record of its key, and both catalogs'
/// channel entries: pure.
fn decide(
    records: Vec<(ImageRecord, Option<ImageRecord>)>,
    entries: Vec<ChannelEntry>,
    target_entries: &[ChannelEntry],
) -> MigratePlan {
    let mut plan = MigratePlan::default();
    for (record, there) in records {
        // A deregistered record of another AMI is replaced, as a build replaces it.
        let Some(there) =
            there.filter(|there| there.ami_id == record.ami_id || there.status != ImageStatus::Deregistered)
        else {
            plan.records.push(record);
            continue;
        };
        if there.ami_id != record.ami_id {
            plan.conflicts.push(format!(
                "workflow \"{}\" step \"{}\": the target has {}, the source {}",
                record.workflow_id, record.step_id, there.ami_id, record.ami_id
            ));
            continue;
        }
        let missing: Vec<&TestRun> = record.tests.iter().filter(|run| !there.tests.contains(run)).collect();
        plan.test_runs
            .extend(missing.iter().map(|run| (record.workflow_id.clone(), record.step_id.clone(), (*run).clone())));
        let same_status = there.status == record.status && there.revoked_reason == record.revoked_reason;
        match same_status && missing.is_empty() {
            true => plan.records_there += 1,
            false if !same_status => plan.statuses.push(record),
            false => {}
        }
    }
    let key = |entry: &ChannelEntry| {
        (ChannelEntry::pointer(entry.line().as_ref(), &entry.channel, &entry.step_id), entry.seq)
    };
    let there: HashMap<_, &ChannelEntry> = target_entries.iter().map(|entry| (key(entry), entry)).collect();
    for entry in entries {
        match there.get(&key(&entry)) {
            None => plan.channel_entries.push(entry),
            Some(existing) if **existing == entry => plan.channel_entries_there += 1,
            Some(existing) => plan.conflicts.push(format!(
                "channel {} of step \"{}\", entry {}: the target's points at {}, the source's at {}",
                entry.channel, entry.step_id, entry.seq, existing.ami_id, entry.ami_id
            )),
        }
    }
    plan
}

/// Applies the plan to `to`, after refusing it whole when the target conflicts. Every write is
/// one that a second run finds done: a record or entry already there, the same, is no conflict.
pub async fn apply_migration(to: &dyn Catalog, plan: &MigratePlan) -> Result<()> {
    if !plan.conflicts.is_empty() {
        return Err(Error::new(
            ErrorKind::Catalog,
            format!("{} holds {} entries that conflict with the source; nothing was copied", to.uri(), plan.conflicts.len()),
        )
        .details(plan.conflicts.join("\n"))
        .help("the target has other images, or another channel history, under the same keys: migrate into an empty catalog, or delete those there first"));
    }
    for record in &plan.records {
        match to.try_record(record).await? {
            Recorded::Written => {}
            Recorded::Taken(existing) if *existing == *record => {}
            Recorded::Taken(existing) => return Err(conflict_error(&to.uri(), &existing)),
        }
    }
    for record in &plan.statuses {
        let revocation = record.revoked_reason.as_deref().zip(record.revoked_at.as_deref());
        to.set_status(&record.workflow_id, &record.step_id, record.status, revocation).await?;
    }
    for (workflow_id, step_id, run) in &plan.test_runs {
        // Another run of this migration may have appended it meanwhile (or its answer was lost).
        let there = to.get(workflow_id, step_id).await?;
        if !there.is_some_and(|record| record.tests.contains(run)) {
            to.add_test_run(workflow_id, step_id, run, None).await?;
        }
    }
    for entry in &plan.channel_entries {
        if !to.add_channel_entry(entry).await? {
            let there = to.channel_entries().await?;
            if !there.contains(entry) {
                return Err(Error::new(
                    ErrorKind::Catalog,
                    format!(
                        "channel {} of step \"{}\" changed in {} during the migration",
                        entry.channel,
                        entry.step_id,
                        to.uri()
                    ),
                )
                .help("another paw set it meanwhile: run the migration again, and it will say what conflicts"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::conformance::sample_record;
    use crate::catalog::{ChannelAction, Channels as _, Line, Records, SqliteCatalog};

    fn entry(seq: u64, ami_id: &str, action: ChannelAction, reason: Option<&str>) -> ChannelEntry {
        let line = Line { name: "wf".into(), variant: None };
        let history: Vec<ChannelEntry> = Vec::new();
        ChannelEntry {
            seq,
            ami_id: ami_id.into(),
            workflow_id: "w1".into(),
            ..ChannelEntry::next(&line, "prod", "s1", action, ("alice@host", reason), &history)
        }
    }

    async fn migrate(from: &SqliteCatalog, to: &SqliteCatalog, steps: &[String]) -> Result<MigratePlan> {
        let plan = plan_migration(from, to, steps).await?;
        apply_migration(to, &plan).await?;
        Ok(plan)
    }

    #[tokio::test]
    async fn migrate_copies_records_and_channels_once_and_refuses_conflicts_whole() {
        let dir = tempfile::tempdir().unwrap();
        let from = SqliteCatalog::open(&dir.path().join("from.sqlite")).unwrap();
        let to = SqliteCatalog::open(&dir.path().join("to.sqlite")).unwrap();
        from.record(&sample_record("w1", "s1", "ami-1", "2026-01-01T00:00:01.000000+0000")).await.unwrap();
        from.record(&sample_record("w2", "s1", "ami-2", "2026-01-01T00:00:02.000000+0000")).await.unwrap();
        from.record(&sample_record("w1", "s2", "ami-3", "2026-01-01T00:00:03.000000+0000")).await.unwrap();
        let history = [
            entry(1, "ami-1", ChannelAction::Set, None),
            entry(2, "ami-2", ChannelAction::Override, Some("hotfix")),
            entry(3, "ami-1", ChannelAction::Rollback, Some("boot loop")),
        ];
        for entry in &history {
            assert!(from.add_channel_entry(entry).await.unwrap());
        }
        let steps = from.step_ids().await.unwrap().unwrap();

        // A target with another AMI under one key: refused whole, nothing copied.
        to.record(&sample_record("w2", "s1", "ami-other", "2026-01-01T00:00:04.000000+0000")).await.unwrap();
        let err = migrate(&from, &to, &steps).await.unwrap_err();
        assert!(err.message.ends_with("holds 1 entries that conflict with the source; nothing was copied"), "{err}");
        assert_eq!(err.details.unwrap(), "workflow \"w2\" step \"s1\": the target has ami-other, the source ami-2");
        assert!(to.get("w1", "s1").await.unwrap().is_none());
        assert!(to.channel_entries().await.unwrap().is_empty());

        let dir2 = tempfile::tempdir().unwrap();
        let empty = SqliteCatalog::open(&dir2.path().join("to.sqlite")).unwrap();
        let plan = migrate(&from, &empty, &steps).await.unwrap();
        assert_eq!((plan.records.len(), plan.channel_entries.len()), (3, 3));
        assert_eq!(empty.get("w1", "s2").await.unwrap().unwrap(), from.get("w1", "s2").await.unwrap().unwrap());
        let line = Line { name: "wf".into(), variant: None };
        assert_eq!(
            empty.channel_history(&line, "prod", "s1").await.unwrap(),
            from.channel_history(&line, "prod", "s1").await.unwrap()
        );
        let again = migrate(&from, &empty, &steps).await.unwrap();
        assert!(again.is_empty(), "{again:#?}");
        assert_eq!((again.records_there, again.channel_entries_there), (3, 3));

        // A conflicting channel history is refused too.
        let dir3 = tempfile::tempdir().unwrap();
        let other = SqliteCatalog::open(&dir3.path().join("to.sqlite")).unwrap();
        other.add_channel_entry(&entry(1, "ami-9", ChannelAction::Set, None)).await.unwrap();
        let err = migrate(&from, &other, &steps).await.unwrap_err();
        assert_eq!(
            err.details.unwrap(),
            "channel prod of step \"s1\", entry 1: the target's points at ami-9, the source's at ami-1"
        );
        assert!(other.get("w1", "s1").await.unwrap().is_none());
    }

    /// A target that cannot be written is an error, not a "conflict".
    #[tokio::test]
    async fn a_broken_target_stops_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let from = SqliteCatalog::open(&dir.path().join("from.sqlite")).unwrap();
        from.record(&sample_record("w1", "s1", "ami-1", "2026-01-01T00:00:01.000000+0000")).await.unwrap();
        let target = dir.path().join("to.sqlite");
        let to = SqliteCatalog::open(&target).unwrap();
        {
            let connection = rusqlite::Connection::open(&target).unwrap();
            connection.execute_batch("DROP TABLE images; CREATE TABLE images (x TEXT);").unwrap();
        }
        let err = migrate(&from, &to, &["s1".to_string()]).await.unwrap_err();
        assert!(err.message.starts_with("the catalog failed"), "{}", err.message);
    }
}
