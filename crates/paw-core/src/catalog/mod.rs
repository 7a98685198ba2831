//! The catalog: one record per (workflow_id, step_id) of every AMI paw made or adopted, so that the
//! next step, and people, can find it; beside the records, the build journal (leases) and the
//! channels. Three traits, one per part, that a `Catalog` store implements together; SQLite
//! (embedded, the default) here, DynamoDB in paw-aws; `conformance` has one suite per part, which
//! both pass.

mod adopt;
mod channel;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod journal;
mod line;
mod migrate;
mod record;
mod sqlite;
mod standing;
mod test_run;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use async_trait::async_trait;

pub use adopt::{Adopted, adopt, unnamed};
pub use channel::{ChannelAction, ChannelEntry, append_entry, check_channel_name, current_entries};
#[cfg(test)]
pub(crate) use journal::dead_runs_lock;
pub use journal::{HOST_ENV, InFlight, LEASE_TTL_ENV, PackerRun, lease_ttl, now_unix, this_host, this_user, who};
pub use line::Line;
pub use migrate::{MigratePlan, apply_migration, plan_migration};
pub use record::{CREATE_AT_FORMAT, ImageRecord, ImageStatus, Override, console_url, every_copy, now_create_at};
pub use sqlite::SqliteCatalog;
pub use standing::Standing;
pub use test_run::{TestKind, TestResult, TestRun, Verdict};

use crate::error::{Error, ErrorKind, Result};
use crate::workflow::Workflow;

/// What `try_record` did.
#[derive(Debug, PartialEq)]
pub enum Recorded {
    Written,
    /// The step already has this record, available or revoked (another paw may have recorded it meanwhile):
    /// nothing was written.
    Taken(Box<ImageRecord>),
}

/// The records of AMIs: one per (workflow_id, step_id).
#[async_trait]
pub trait Records: Send + Sync {
    /// Where the records live, for messages: `sqlite:PATH` or `dynamodb:TABLE`.
    fn uri(&self) -> String;

    async fn get(&self, workflow_id: &str, step_id: &str) -> Result<Option<ImageRecord>>;

    /// All steps of one workflow, newest first.
    async fn list_workflow(&self, workflow_id: &str) -> Result<Vec<ImageRecord>>;

    /// One step across all workflows and names, newest first: for copying a whole catalog, and
    /// for finding records older than names (`paw catalog adopt`).
    async fn list_step(&self, step_id: &str) -> Result<Vec<ImageRecord>>;

    /// Every record of one workflow name (all its variants, workflows and steps), newest first.
    async fn list_name(&self, name: &str) -> Result<Vec<ImageRecord>>;

    /// One step of one line across its workflows, newest first.
    async fn list_line(&self, line: &Line, step_id: &str) -> Result<Vec<ImageRecord>> {
        let records = self.list_name(&line.name).await?;
        Ok(records.into_iter().filter(|record| record.step_id == step_id && line.holds(record)).collect())
    }

    /// Assigns a record to a line (`paw catalog adopt`). A missing record is `missing_record`'s error.
    async fn set_line(&self, workflow_id: &str, step_id: &str, line: &Line) -> Result<()>;

    /// The records of AMIs made from exactly these inputs, newest first.
    async fn find_by_fingerprint(&self, fingerprint: &str) -> Result<Vec<ImageRecord>>;

    /// Adds a record, unless the same workflow and step has one that is not `deregistered`
    /// (available, or revoked): that one is never overwritten, in one atomic step for every process.
    async fn try_record(&self, record: &ImageRecord) -> Result<Recorded>;

    /// `try_record`, with another record already there as an error. The very record already
    /// there is this write's own: its answer was lost and the retry found it (never a conflict
    /// with ourselves).
    async fn record(&self, record: &ImageRecord) -> Result<()> {
        match self.try_record(record).await? {
            Recorded::Written => Ok(()),
            Recorded::Taken(existing) if *existing == *record => Ok(()),
            Recorded::Taken(existing) => Err(conflict_error(&self.uri(), &existing)),
        }
    }

    /// Every record of this AMI (its own workflow's, and those that reuse it), newest first.
    async fn find_by_ami(&self, ami_id: &str) -> Result<Vec<ImageRecord>>;

    /// Every record of `record`'s AMI, `record` first: it was read by its key, and an index (a
    /// DynamoDB GSI is eventually consistent) may not show a record written a moment ago.
    async fn records_of(&self, record: &ImageRecord) -> Result<Vec<ImageRecord>> {
        let others = self.find_by_ami(&record.ami_id).await?;
        let same = |other: &ImageRecord| other.workflow_id == record.workflow_id && other.step_id == record.step_id;
        let others = others.into_iter().filter(|other| !same(other));
        Ok(std::iter::once(record.clone()).chain(others).collect())
    }

    /// The records of every AMI built on this one (its children), newest first.
    async fn find_by_base(&self, base_ami_id: &str) -> Result<Vec<ImageRecord>>;

    /// Changes a record's status; `revocation` (reason, time) is kept while it is revoked, and
    /// dropped by any other status. A missing record is `missing_record`'s error.
    async fn set_status(
        &self,
        workflow_id: &str,
        step_id: &str,
        status: ImageStatus,
        revocation: Option<(&str, &str)>,
    ) -> Result<()>;

    /// Sets the record's copies in other regions (region → AMI id). A missing record is
    /// `missing_record`'s error.
    async fn set_copies(&self, workflow_id: &str, step_id: &str, copies: &BTreeMap<String, String>) -> Result<()>;

    /// Sets the record's copies' statements (place → envelope's text). A missing record is
    /// `missing_record`'s error.
    async fn set_copy_provenance(
        &self,
        workflow_id: &str,
        step_id: &str,
        statements: &BTreeMap<String, String>,
    ) -> Result<()>;

    /// Sets the record's statement (its DSSE envelope's text) and the SBOM it names, once the
    /// build has sealed it. A missing record is `missing_record`'s error.
    async fn set_provenance(&self, workflow_id: &str, step_id: &str, envelope: &str, sbom: Option<&str>) -> Result<()>;

    /// Appends a run to the record's test history, and sets its status when `status` is given, in
    /// one atomic step for every process. A missing record is `missing_record`'s error.
    async fn add_test_run(
        &self,
        workflow_id: &str,
        step_id: &str,
        run: &TestRun,
        status: Option<ImageStatus>,
    ) -> Result<()>;

    /// Appends a forced retirement to the record's overrides, unless its newest one is the same
    /// (a write repeated after its answer was lost). A missing record is `missing_record`'s error.
    async fn add_override(&self, workflow_id: &str, step_id: &str, entry: &Override) -> Result<()>;

    /// Marks a record deregistered; it stays for history.
    async fn mark_deregistered(&self, workflow_id: &str, step_id: &str) -> Result<()> {
        self.set_status(workflow_id, step_id, ImageStatus::Deregistered, None).await
    }

    /// Every step id the catalog has records of, or None when the backend cannot list them without
    /// reading everything (DynamoDB: paw never scans a table).
    async fn step_ids(&self) -> Result<Option<Vec<String>>>;
}

/// The build journal: one entry per step being built, which is the step's lease.
#[async_trait]
pub trait BuildJournal: Send + Sync {
    /// Takes the step's lease by writing its journal entry, in one atomic step for every process:
    /// None when taken, or the entry that holds the step now.
    async fn begin_build(&self, entry: &InFlight) -> Result<Option<InFlight>>;

    /// Rewrites the entry (renewed, or with more of the build in it) while its run still holds it;
    /// false once it does not (another run's, or gone).
    async fn renew_build(&self, entry: &InFlight) -> Result<bool>;

    /// Removes the entry, if it is still this run's; nothing when it is gone or another run's.
    async fn end_build(&self, entry: &InFlight) -> Result<()>;

    /// The journal entries of one workflow.
    async fn builds_in_flight(&self, workflow_id: &str) -> Result<Vec<InFlight>>;
}

/// Channels: each a numbered history of the AMIs a step's channel pointed at.
#[async_trait]
pub trait Channels: Send + Sync {
    /// Adds a channel's history entry, unless one with its number exists (another paw set the
    /// channel meanwhile): false then.
    async fn add_channel_entry(&self, entry: &ChannelEntry) -> Result<bool>;

    /// Every channel entry of every channel and step, in no particular order.
    async fn channel_entries(&self) -> Result<Vec<ChannelEntry>>;

    /// One line's channel's entries for one step, newest first.
    async fn channel_history(&self, line: &Line, channel: &str, step_id: &str) -> Result<Vec<ChannelEntry>>;
}

/// A catalog: the three parts, in one store (an SQLite file, a DynamoDB table).
#[async_trait]
pub trait Catalog: Records + BuildJournal + Channels {
    /// What the store is, for `paw doctor`: its schema version, or its table's state.
    async fn schema(&self) -> Result<String>;
}

/// The workflow's record of a step. A record under the same workflow id of another line is an
/// error: two folders share the id in one catalog, and neither may use or replace the other's
/// images. A record older than names is the workflow's own (its id says so).
pub async fn own_record(catalog: &dyn Records, workflow: &Workflow, step_id: &str) -> Result<Option<ImageRecord>> {
    let workflow_id = &workflow.param.workflow_id;
    let Some(record) = catalog.get(workflow_id, step_id).await? else { return Ok(None) };
    let ours = Line::of(workflow);
    match record.line() {
        Some(theirs) if theirs != ours => Err(Error::new(
            ErrorKind::Config,
            format!(
                "the workflow id \"{workflow_id}\" is {theirs}'s in {}: its step \"{step_id}\" is {}, not {ours}'s",
                catalog.uri(),
                record.ami_id
            ),
        )
        .in_file(&workflow.param.path)
        .help("give this workflow an id of its own: a new workflow_id, or --workflow-id ID")),
        _ => Ok(Some(record)),
    }
}

/// A change to a record the catalog does not have (`set_status`, `set_copies`): every backend
/// refuses it with this error rather than change nothing silently.
pub fn missing_record(workflow_id: &str, step_id: &str) -> Error {
    Error::new(
        ErrorKind::Catalog,
        format!("the catalog has no record of step \"{step_id}\" of workflow \"{workflow_id}\""),
    )
    .help("another paw may have deleted it meanwhile: `paw images list` shows what is recorded")
}

/// An already-recorded AMI for the same step: what the conflict error says.
pub fn conflict_error(catalog: &str, existing: &ImageRecord) -> Error {
    Error::new(
        ErrorKind::Catalog,
        format!(
            "the catalog {catalog} already has AMI {} for step \"{}\" of workflow \"{}\"",
            existing.ami_id, existing.step_id, existing.workflow_id
        ),
    )
    .help("another paw run recorded it first; use a new workflow_id, or `paw images delete` that AMI first")
}

/// Which catalog to use: `sqlite:PATH` or `dynamodb:TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogUri {
    Sqlite(PathBuf),
    DynamoDb(String),
}

impl FromStr for CatalogUri {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.split_once(':') {
            Some(("sqlite", path)) if !path.is_empty() => Ok(CatalogUri::Sqlite(PathBuf::from(path))),
            Some(("dynamodb", table)) if is_table_name(table) => Ok(CatalogUri::DynamoDb(table.to_string())),
            Some(("dynamodb", table)) => {
                Err(Error::new(ErrorKind::Usage, format!("\"{table}\" is not a DynamoDB table name"))
                    .help("a table name is 3 to 255 of the characters a-z, A-Z, 0-9, _, - and ."))
            }
            _ => Err(Error::new(ErrorKind::Usage, format!("\"{text}\" is not a catalog"))
                .help("write sqlite:PATH (e.g. sqlite:.paw/catalog.sqlite) or dynamodb:TABLE")),
        }
    }
}

/// DynamoDB's rule for table names: 3 to 255 of `[a-zA-Z0-9_.-]`.
fn is_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
}

impl CatalogUri {
    /// The catalog of a run: `explicit` (`--catalog` / PAW_CATALOG), else workflow_param.json's
    /// "catalog" (a relative SQLite path is relative to the workflow folder), else the embedded
    /// SQLite catalog in the workflow's `.paw/`.
    pub fn resolve(explicit: Option<&CatalogUri>, workflow: Option<&Workflow>) -> Result<CatalogUri> {
        if let Some(uri) = explicit {
            return Ok(uri.clone());
        }
        let Some(workflow) = workflow else {
            return Err(Error::new(ErrorKind::Usage, "no catalog: there is no workflow folder here")
                .help("name one with -w DIR, or a catalog with --catalog sqlite:PATH|dynamodb:TABLE"));
        };
        Ok(match &workflow.param.catalog {
            Some(uri) => {
                match uri.parse::<CatalogUri>().map_err(|err| err.at(workflow.param.json().key_location("catalog")))? {
                    CatalogUri::Sqlite(path) => CatalogUri::Sqlite(workflow.root.join(path)),
                    other => other,
                }
            }
            None => CatalogUri::Sqlite(workflow.state_dir().join("catalog.sqlite")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_uris() {
        assert_eq!("sqlite:a/b.sqlite".parse::<CatalogUri>().unwrap(), CatalogUri::Sqlite("a/b.sqlite".into()));
        assert_eq!("dynamodb:paw".parse::<CatalogUri>().unwrap(), CatalogUri::DynamoDb("paw".into()));
        assert!("postgres:x".parse::<CatalogUri>().is_err());
        assert!("sqlite:".parse::<CatalogUri>().is_err());
        assert_eq!("dynamodb:a.b_c-1".parse::<CatalogUri>().unwrap(), CatalogUri::DynamoDb("a.b_c-1".into()));
        for bad in ["dynamodb:bad name!", "dynamodb:ab", &format!("dynamodb:{}", "t".repeat(256))] {
            let err = bad.parse::<CatalogUri>().unwrap_err();
            assert!(err.message.contains("is not a DynamoDB table name"), "{bad}: {err}");
        }
    }
}
