//! `paw catalog migrate`: every record of some steps, from one catalog to another.

use super::{Catalog, Recorded};
use crate::error::Result;

/// What `copy_records` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrateReport {
    pub copied: usize,
    /// Records the target already had, the same AMI in the same state.
    pub already_there: usize,
    /// Records the target has with another AMI that is still available: left alone.
    pub conflicts: Vec<String>,
}

/// Copies every record of the given steps (across all workflows) from one catalog to another.
/// Running it again copies nothing. A target that fails stops the copy with its error.
pub async fn copy_records(from: &dyn Catalog, to: &dyn Catalog, step_ids: &[String]) -> Result<MigrateReport> {
    let mut report = MigrateReport::default();
    for step_id in step_ids {
        for record in from.list_step(step_id).await? {
            match to.get(&record.workflow_id, &record.step_id).await? {
                Some(existing) if existing.ami_id == record.ami_id && existing.status == record.status => {
                    report.already_there += 1;
                }
                // The same AMI, since deregistered, revoked or restored.
                Some(existing) if existing.ami_id == record.ami_id => {
                    let revocation = record.revoked_reason.as_deref().zip(record.revoked_at.as_deref());
                    to.set_status(&record.workflow_id, &record.step_id, record.status, revocation).await?;
                    report.copied += 1;
                }
                _ => match to.try_record(&record).await? {
                    Recorded::Written => report.copied += 1,
                    Recorded::Taken(existing) => report.conflicts.push(format!(
                        "workflow \"{}\" step \"{}\": the target has {}, the source {}",
                        record.workflow_id, record.step_id, existing.ami_id, record.ami_id
                    )),
                },
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::conformance::sample_record;
    use crate::catalog::{Records, SqliteCatalog};

    #[tokio::test]
    async fn migrate_copies_once_and_reports_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let from = SqliteCatalog::open(&dir.path().join("from.sqlite")).unwrap();
        let to = SqliteCatalog::open(&dir.path().join("to.sqlite")).unwrap();
        from.record(&sample_record("w1", "s1", "ami-1", "2026-01-01T00:00:01.000000+0000")).await.unwrap();
        from.record(&sample_record("w2", "s1", "ami-2", "2026-01-01T00:00:02.000000+0000")).await.unwrap();
        from.record(&sample_record("w1", "s2", "ami-3", "2026-01-01T00:00:03.000000+0000")).await.unwrap();
        to.record(&sample_record("w2", "s1", "ami-other", "2026-01-01T00:00:04.000000+0000")).await.unwrap();
        let steps = from.step_ids().await.unwrap().unwrap();
        assert_eq!(steps, ["s1", "s2"]);
        let report = copy_records(&from, &to, &steps).await.unwrap();
        assert_eq!((report.copied, report.already_there), (2, 0));
        assert_eq!(report.conflicts, ["workflow \"w2\" step \"s1\": the target has ami-other, the source ami-2"]);
        assert_eq!(to.get("w1", "s2").await.unwrap().unwrap(), from.get("w1", "s2").await.unwrap().unwrap());
        let again = copy_records(&from, &to, &steps).await.unwrap();
        assert_eq!((again.copied, again.already_there), (0, 2));
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
        let err = copy_records(&from, &to, &["s1".to_string()]).await.unwrap_err();
        assert!(err.message.starts_with("the catalog failed"), "{}", err.message);
    }
}
